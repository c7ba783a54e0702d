--- cptokens.cli.args: the command line's definition, one table, and its parsing.
--
--   local pos, opts = args.parse(argv)   -- pos = { command, positionals... }, opts[name] = value | true
--
-- The table below (options, commands) is the only definition: cli/parser.lua builds the
-- lua-argparse parser from it (usage errors, "did you mean", the bash/zsh/fish completion
-- scripts), and parse() reads it for its fast path.
--
-- Parsing: first, anything that would carry a secret on the command line (`--token=...`,
-- `--password ...`) is refused with the way to pass it instead. Then a command line that is
-- plainly well formed (a command first, then only options it takes and at most its
-- positionals) is read directly from the table; everything else (help, --version, options
-- before the command, a typo, a missing value, anything unusual) goes to lua-argparse, which
-- is then loaded. The fast path never rejects anything: what it does not take, argparse
-- decides; spec/71-cli_args_spec.lua checks that both read every command line the same way.
-- (Compiling lua-argparse and building the parser cost a `cptokens list` process about as
-- much as the rest of the tool's Lua; see bench/RESULTS.md, row 7b.)
--
-- Adding a command group (issues 13 and 14: `whm ...`, `accounts`, `fleet ...`): write
-- cli/<group>.lua returning { <command> = function(ctx, client, args) -> exit status },
-- add its commands to COMMANDS below (module = "<group>"), their options to LOCAL, and
-- their help texts to cli/help.lua. Nothing else dispatches by name. A command with
-- subcommands (`whm create`, ...) is one entry with `subcommands`: each is indexed as
-- "<group> <sub>" and becomes a nested lua-argparse command (parser.lua).
local type, ipairs = type, ipairs

local M = {}

-- Options every command accepts (also before the command). flag: takes no value.
M.GLOBAL = {
  { name = "url", arg = "URL", help = "the server: https://host:2083 (cPanel) or https://host:2087 (WHM)" },
  { name = "user", arg = "USER", help = "the cPanel account whose tokens are managed" },
  { name = "cafile", arg = "FILE", help = "trust anchors (default: the system store)" },
  { name = "capath", arg = "DIR", help = "a hashed directory of trust anchors" },
  { name = "insecure", flag = true, help = "do not verify the server's certificate (avoid)" },
  { name = "timeout", arg = "SECONDS", help = "the whole request (default 30)" },
  { name = "connect-timeout", arg = "SECONDS", help = "connecting (default 10)" },
  { name = "token-file", arg = "FILE", help = "an API token (or a token file), - for standard input" },
  { name = "password-file", arg = "FILE", help = "the account password, - for standard input" },
  { name = "otp-file", arg = "FILE", help = "with a password: the two-factor code" },
  { name = "whm-token-file", arg = "FILE", help = "a WHM token acting for --user" },
  { name = "whm-user", arg = "NAME", help = "the WHM account owning the WHM token (default root)" },
  { name = "profile", arg = "NAME", help = "a profile of the configuration file (or CPANEL_PROFILE)" },
  { name = "config", arg = "FILE", help = "the configuration file (default ~/.config/cptokens/config)" },
  { name = "json", flag = true, help = "one JSON document on standard output" },
  { name = "quiet", flag = true, help = "no report on standard output (errors, warnings and create's token stay)" },
}

-- Options of some commands only.
M.LOCAL = {
  { name = "expires-in", arg = "DURATION", help = "expire after DURATION (24h, 30d, 2w, 1d12h)" },
  { name = "expires-at", arg = "TIME", help = "expire at TIME (epoch seconds or ISO 8601)" },
  { name = "out", arg = "FILE", help = "the token file to write (mode 0600, atomic)" },
  { name = "keep", arg = "N", help = "old rotations to keep (default 0)" },
  { name = "verify-url", arg = "URL", help = "the cPanel URL the new token is checked on (WHM on another port)" },
  { name = "prefix", arg = "PREFIX", help = "only the rotations of PREFIX" },
  { name = "within", arg = "DURATION", help = "the window for expiring tokens (default 7d)" },
  { name = "dry-run", flag = true, help = "say what would be created and revoked; change nothing" },
  { name = "exec", arg = "CMD", help = "hand the new token file's JSON to CMD's standard input (sh -c CMD)" },
  { name = "exec-timeout", arg = "SECONDS", help = "how long --exec CMD may take (default 60)" },
  -- WHM API tokens (many: may be given several times; the value is then an array)
  { name = "acl", arg = "ACL", many = true, help = "grant ACL (repeatable; none: full access)" },
  { name = "allow-ip", arg = "CIDR", many = true, help = "allow an address or CIDR range (repeatable)" },
  { name = "any-ip", flag = true, help = "clear the IP allow-list (any address)" },
  { name = "rename", arg = "NEW", help = "the token's new name" },
  { name = "never-expires", flag = true, help = "the token never expires" },
  -- fleet
  { name = "group", arg = "NAME", help = "a group of WHM profiles of the configuration file" },
  { name = "format", arg = "FORMAT", help = "table (the default), json or csv" },
  { name = "store-dir", arg = "DIR", help = "the directory of the token files (<server>.<account>.token)" },
  { name = "per-server", arg = "N", help = "requests in flight to one server (default 8)" },
  { name = "concurrency", arg = "N", help = "requests in flight in all (default 50)" },
}

-- The commands, in help order. args: the positionals' labels (many: any number of the
-- last); min: how many are required (checked by the caller, after --help); missing: what a
-- usage error says is missing; module: cli/<module>.lua has run[name]; builtin: main runs it.
M.COMMANDS = {
  { name = "list", module = "tokens", args = {}, min = 0, options = {},
    summary = "the account's tokens: name, created, expiry, state", usage = "cptokens list" },
  { name = "create", module = "tokens", args = { "NAME" }, min = 1, missing = "NAME",
    options = { "expires-in", "expires-at", "out", "exec", "exec-timeout" },
    summary = "create a token; print it (or save it with --out FILE, or hand it to --exec CMD)",
    usage = "cptokens create NAME [--expires-in DURATION | --expires-at TIME] [--out FILE | --exec CMD]" },
  { name = "revoke", module = "tokens", args = { "NAME" }, many = true, min = 1, missing = "NAME", options = {},
    summary = "revoke tokens (a missing name is not an error)", usage = "cptokens revoke NAME..." },
  { name = "rename", module = "tokens", args = { "OLD", "NEW" }, min = 2, missing = "OLD and NEW", options = {},
    summary = "rename a token (its secret does not change)", usage = "cptokens rename OLD NEW" },
  { name = "rotate", module = "rotate", args = { "PREFIX" }, min = 1, missing = "PREFIX",
    options = { "expires-in", "expires-at", "out", "keep", "verify-url", "dry-run", "exec", "exec-timeout" },
    summary = "new token PREFIX-<time>, saved to FILE; old ones revoked",
    usage = "cptokens rotate PREFIX --out FILE [--exec CMD] [--expires-in DURATION | --expires-at TIME] [--keep N]"
      .. " [--verify-url URL] [--dry-run]" },
  { name = "prune", module = "rotate", args = {}, min = 0, options = { "prefix", "dry-run" },
    summary = "revoke expired tokens (of PREFIX's rotations only)", usage = "cptokens prune [--prefix PREFIX] [--dry-run]" },
  { name = "audit", module = "rotate", args = {}, min = 0, options = { "within" },
    summary = "report expired and soon-expiring tokens (exit 3 if any)", usage = "cptokens audit [--within DURATION]" },
  -- WHM API tokens (cli/whm.lua; connect = "whm": a WHM account's credential). A command
  -- with subcommands: each is indexed as "whm <sub>" (M.command["whm create"]).
  { name = "whm", module = "whm", connect = "whm", args = {}, min = 0, options = {},
    summary = "the WHM account's own API tokens: ACLs, IP allow-lists, expiry",
    usage = "cptokens whm create|list|update|revoke|details|audit|rotate ...",
    subcommands = {
      { name = "create", args = { "NAME" }, min = 1, missing = "NAME",
        options = { "acl", "allow-ip", "expires-in", "expires-at", "out" },
        summary = "create a WHM token; print it (or save it with --out FILE)",
        usage = "cptokens whm create NAME [--acl ACL]... [--allow-ip CIDR]... [--expires-in DURATION"
          .. " | --expires-at TIME] [--out FILE]" },
      { name = "list", args = {}, min = 0, options = {},
        summary = "the WHM tokens: name, created, expiry, state, ACLs, IPs", usage = "cptokens whm list" },
      { name = "update", args = { "NAME" }, min = 1, missing = "NAME",
        options = { "rename", "acl", "allow-ip", "any-ip", "expires-in", "expires-at", "never-expires" },
        summary = "change a WHM token in place (its secret does not change)",
        usage = "cptokens whm update NAME [--rename NEW] [--acl ACL]... [--allow-ip CIDR]... [--any-ip]"
          .. " [--expires-in DURATION | --expires-at TIME | --never-expires]" },
      { name = "revoke", args = { "NAME" }, many = true, min = 1, missing = "NAME", options = {},
        summary = "revoke WHM tokens (a missing name is not an error)", usage = "cptokens whm revoke NAME..." },
      { name = "details", args = {}, min = 0, options = {},
        summary = "which WHM token is this? (its value from --token-file FILE, - for standard input)",
        usage = "cptokens whm details --token-file FILE" },
      { name = "audit", args = {}, min = 0, options = { "within" },
        summary = "expired, expiring and risky WHM tokens (exit 3 if any)", usage = "cptokens whm audit [--within DURATION]" },
      { name = "rotate", args = { "PREFIX" }, min = 1, missing = "PREFIX",
        options = { "expires-in", "expires-at", "out", "keep" },
        summary = "new WHM token PREFIX-<time> with the same ACLs and IPs, saved to FILE; old ones revoked",
        usage = "cptokens whm rotate PREFIX --out FILE [--expires-in DURATION | --expires-at TIME] [--keep N]" },
    } },
  { name = "accounts", module = "whm", connect = "whm", args = {}, min = 0, options = {},
    summary = "the accounts this WHM credential can act for", usage = "cptokens accounts" },
  -- Every account of every server (cli/fleet.lua; connect = "self": the module opens its
  -- WHM clients, one per server of a --group, or one from the connection options).
  { name = "fleet", module = "fleet", connect = "self", args = {}, min = 0, options = {},
    summary = "every account of a server or of a group of servers: list, audit, prune, rotate",
    usage = "cptokens fleet list|audit|prune|rotate ...",
    subcommands = {
      { name = "list", args = {}, min = 0, options = { "group", "format", "per-server", "concurrency" },
        summary = "every account's tokens and the WHM tokens of each server",
        usage = "cptokens fleet list [--profile P | --group G] [--format table|json|csv]" },
      { name = "audit", args = {}, min = 0, options = { "group", "format", "within", "per-server", "concurrency" },
        summary = "never-expiring, expired, expiring and risky tokens of every account (exit 3 if any)",
        usage = "cptokens fleet audit [--profile P | --group G] [--within DURATION] [--format table|json|csv]" },
      { name = "prune", args = {}, min = 0,
        options = { "group", "format", "prefix", "dry-run", "per-server", "concurrency" },
        summary = "revoke the expired tokens of every account",
        usage = "cptokens fleet prune [--profile P | --group G] [--prefix PREFIX] [--dry-run] [--format table|json|csv]" },
      { name = "rotate", args = { "PREFIX" }, min = 1, missing = "PREFIX",
        options = { "group", "format", "store-dir", "expires-in", "expires-at", "keep", "per-server", "concurrency" },
        summary = "rotate PREFIX in every account: one token file per server and account",
        usage = "cptokens fleet rotate PREFIX --store-dir DIR [--profile P | --group G] [--expires-in DURATION"
          .. " | --expires-at TIME] [--keep N] [--format table|json|csv]" },
    } },
  { name = "version", args = {}, min = 0, options = {}, builtin = true,
    summary = "the version (as --version; with --json a JSON document)", usage = "cptokens version" },
  { name = "help", args = { "COMMAND" }, min = 0, options = {}, topics = true,
    summary = "the tool's help, or a command's", usage = "cptokens help [COMMAND]" },
}

-- Flags that would carry a secret on the command line: refused, saying how instead.
M.SECRET_FLAGS = {
  token = "CPANEL_TOKEN=... in the environment or --token-file FILE",
  password = "CPANEL_PASSWORD=... in the environment or --password-file FILE",
  ["whm-token"] = "WHM_TOKEN=... in the environment or --whm-token-file FILE",
  otp = "CPANEL_OTP=... in the environment or --otp-file FILE",
  pass = "CPANEL_PASSWORD=... in the environment or --password-file FILE",
  passwd = "CPANEL_PASSWORD=... in the environment or --password-file FILE",
  ["api-token"] = "CPANEL_TOKEN=... in the environment or --token-file FILE",
  secret = "CPANEL_TOKEN=... in the environment or --token-file FILE",
}

-- Indexes: command by name; option by name; for each command, the options it takes.
M.command = {}
M.option = {}
local takes = {}
for _, o in ipairs(M.GLOBAL) do M.option[o.name] = o end
for _, o in ipairs(M.LOCAL) do M.option[o.name] = o end
local function index(c)
  M.command[c.name] = c
  local set = {}
  for _, o in ipairs(M.GLOBAL) do set[o.name] = true end
  for _, n in ipairs(c.options) do set[n] = true end
  takes[c.name] = set
end
for _, c in ipairs(M.COMMANDS) do
  index(c)
  for _, s in ipairs(c.subcommands or {}) do
    s.sub, s.group, s.name = s.name, c, c.name .. " " .. s.name
    s.module, s.connect = c.module, c.connect
    index(s)
  end
end
M.takes = takes

local function usage(...) return require("cptokens.cli.common").usage(...) end

-- Refuses what would put a secret on the command line (before "--"), and what is not a string.
local function refuse_secrets(argv)
  for i, a in ipairs(argv) do
    if type(a) ~= "string" then usage("argument %d is not a string", i) end
    if a == "--" then break end
    local name = a:match("^%-%-([^=]+)")
    if name and M.SECRET_FLAGS[name] then
      usage("--%s would put the secret on the command line, visible to every user through ps;"
        .. " use %s (- for standard input)", name, M.SECRET_FLAGS[name])
    end
  end
end

--- The fast path: pos, opts for a plainly well-formed command line, else nil (argparse
-- decides). Takes: the command first; `--name value`, `--name=value` (each at most once)
-- and flags of options the command takes; positionals ("-" is one) up to the command's
-- number. Anything else (a short option, "--", a value that starts with "-", help) is left.
function M.quick(argv)
  local cmd, i = M.command[argv[1]], 2
  if cmd and cmd.subcommands then cmd, i = M.command[argv[1] .. " " .. tostring(argv[2])], 3 end
  if not cmd or cmd.topics or cmd.builtin then return nil end
  local set = takes[cmd.name]
  local pos, opts = { cmd.name }, {}
  local max = cmd.many and math.huge or #cmd.args
  local n = #argv
  while i <= n do
    local a = argv[i]
    if a:sub(1, 2) == "--" then
      local name, value = a:match("^%-%-([^=]+)=(.*)$")
      name = name or a:sub(3)
      local o = set[name] and M.option[name]
      if not o then return nil end
      if o.flag then
        if value then return nil end
        opts[name] = true
      else
        if opts[name] ~= nil and not o.many then return nil end
        if not value then
          value = argv[i + 1]
          if value == nil or (value:sub(1, 1) == "-" and #value > 1) then return nil end
          i = i + 1
        end
        if o.many then
          opts[name] = opts[name] or {}
          opts[name][#opts[name] + 1] = value
        else
          opts[name] = value
        end
      end
    elseif a:sub(1, 1) == "-" and #a > 1 then
      return nil
    else
      if #pos - 1 >= max then return nil end
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return pos, opts
end

--- argv -> pos, opts; usage errors raise (common.Exit, exit 2).
function M.parse(argv)
  refuse_secrets(argv)
  local pos, opts = M.quick(argv)
  if pos then return pos, opts end
  return require("cptokens.cli.parser").parse(argv)
end

return M
