--- cptokens: the command-line tool (bin/cptokens only launches this).
--
--   local code = require("cptokens.cli").main(arg [, env [, streams]])
--
-- `env` is a table of environment variables or a function like os.getenv
-- (default os.getenv); `streams` may replace { stdin, stdout, stderr } (for
-- in-process tests). main() never raises and never lets a Lua traceback out:
-- it returns the exit status.
--
-- Exit statuses: 0 success; 1 an operation failed (one line on stderr:
-- "cptokens: <kind>: <message>"); 2 usage errors (the command line or the
-- configuration is wrong and nothing was sent); 3 `audit` found tokens that
-- are expired or expire within the window; 128 + N `create` or `rotate` got
-- signal N and went on to a safe point first (see process()).
--
-- Secrets never come from argv (visible to every user through ps): only from
-- the environment or from files. Nothing but `create` ever prints a secret:
-- everything the tool writes goes through one scrubber (every form of every
-- secret it holds) and, for human output, escapes what would act on a terminal.
--
-- bin/cptokens calls process(arg), which first makes the process safe to hold
-- secrets (no core dumps, signals guarded: see csrc/proc.c), then main().
--
-- Portable across Lua 5.1-5.4 and LuaJIT.

local cptokens = require "cptokens"
local core = require "cptokens.core"
local time = cptokens.time

local type, tostring, tonumber, pairs, ipairs = type, tostring, tonumber, pairs, ipairs
local select, setmetatable, getmetatable, pcall, xpcall = select, setmetatable, getmetatable, pcall, xpcall
local error, require = error, require
local string_format, string_rep = string.format, string.rep
local table_concat, table_sort = table.concat, table.sort
local math_floor, math_huge = math.floor, math.huge

local _M = { _VERSION = cptokens._VERSION }

local EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_ALERT = 0, 1, 2, 3
_M.EXIT = { OK = EXIT_OK, FAIL = EXIT_FAIL, USAGE = EXIT_USAGE, ALERT = EXIT_ALERT }

local DEFAULT_WITHIN = "7d"

---------------------------------------------------------------------------
-- Help texts
---------------------------------------------------------------------------

local CONNECTION_HELP = [[
Connection (flags, or the environment):
  --url URL             CPANEL_URL    https://host:2083 (cPanel) or https://host:2087 (WHM)
  --user USER           CPANEL_USER   the cPanel account whose tokens are managed
  --cafile FILE         CPANEL_CAFILE trust anchors (default: the system store)
  --capath DIR          CPANEL_CAPATH
  --insecure            do not verify the server's certificate (avoid)
  --timeout SECONDS     whole request (default 30); --connect-timeout SECONDS (default 10)

Credentials (exactly one; never as a command-line value, which every user sees in ps):
  CPANEL_TOKEN=...      or --token-file FILE        an API token
  CPANEL_PASSWORD=...   or --password-file FILE     the account password
    CPANEL_OTP=...      or --otp-file FILE          with a password: the two-factor code
  WHM_TOKEN=...         or --whm-token-file FILE    a WHM token acting for --user
    --whm-user NAME                                 the WHM account owning it (default root)
  FILE may be - for standard input. One trailing newline is ignored. A token file
  written by `create --out` or `rotate --out` also works, and supplies --url,
  --user and --cafile when they are not given otherwise.

Output:
  --json                one JSON document on standard output, with stable keys
]]

local HELP = {}

HELP[""] = [[
Usage: cptokens COMMAND [ARGS] [OPTIONS]

Manage the API tokens of a cPanel account, without ever putting a secret on
the command line or printing one (except the new token `create` hands you).

Commands:
  list                         the account's tokens: name, created, expiry, state
  create NAME                  create a token; print it (or save it with --out FILE)
  revoke NAME...               revoke tokens (a missing name is not an error)
  rename OLD NEW               rename a token (its secret does not change)
  rotate PREFIX --out FILE     new token PREFIX-<time>, saved to FILE; old ones revoked
  prune [--prefix PREFIX]      revoke expired tokens (of PREFIX's rotations only)
  audit [--within D]           report expired and soon-expiring tokens (exit 3 if any)
  help [COMMAND]               this text, or a command's

Run `cptokens help COMMAND` or `cptokens COMMAND --help` for details,
`cptokens --version` for the version.

]] .. CONNECTION_HELP .. [[

Exit status: 0 success; 1 the operation failed (the error on stderr); 2 usage
or configuration error (nothing was sent); 3 audit found expired or expiring
tokens; 128+N create or rotate received signal N and stopped where no new
token is left unseen (130: SIGINT).
]]

HELP.list = [[
Usage: cptokens list [--json] [CONNECTION]

Lists the account's tokens, oldest first: name, creation time, expiry (ISO 8601
UTC, or "never") and state ("expires in 3d", "expired 2h ago", "never expires").
Secrets are never listed: cPanel keeps only a hash of each token.

]] .. CONNECTION_HELP

HELP.create = [[
Usage: cptokens create NAME [--expires-in DURATION | --expires-at TIME] [--out FILE] [CONNECTION]

Creates a full-access token named NAME (1 to 50 of A-Z a-z 0-9 _ -).
  --expires-in DURATION   e.g. 24h, 30d, 2w, 1d12h, "24 hours"
  --expires-at TIME       epoch seconds, or ISO 8601 such as 2026-12-31T23:59:59Z
  (neither: the token never expires)
  --out FILE              write the token to FILE and print only its name and expiry.
                          FILE is a JSON token file (name, token, expiry, url, user),
                          mode 0600, written atomically and durably; --token-file
                          reads it back (its url and user then serve as defaults)

Without --out, the token alone is printed on standard output, so that
    TOKEN=$(cptokens create deploy --expires-in 24h)
works. It is shown this once: cPanel keeps only a hash. With --json the document
holds the token (or, with --out, the file name instead). If it cannot be handed
over (a closed pipe, a full disk, Ctrl-C or another signal), it is revoked.

]] .. CONNECTION_HELP

HELP.revoke = [[
Usage: cptokens revoke NAME... [CONNECTION]

Revokes each named token. A name with no token is reported but is not an
error (revoking is idempotent). Stops at the first failure (exit 1).

]] .. CONNECTION_HELP

HELP.rename = [[
Usage: cptokens rename OLD NEW [CONNECTION]

Renames a token. Its secret does not change.

]] .. CONNECTION_HELP

HELP.rotate = [[
Usage: cptokens rotate PREFIX --out FILE [--expires-in DURATION] [--keep N] [CONNECTION]

Creates a new token PREFIX-YYYYMMDDHHMMSS (UTC), checks that it works, stores it
in FILE (a JSON token file, written atomically and durably, keeping the file's
owner and mode) and only then revokes the token FILE held before and the older
ones it kept, keeping the N newest (--keep, default 0). The new token is never
printed. A failure before that point revokes the new token, and FILE still holds
the previous one. Rotations of one FILE never overlap (FILE.lock: a second one
waits up to 30 s); a run killed at any moment is finished by the next one.
A token with the prefix that FILE does not hold is left alone, with a warning.
The credential may be the token file itself (--token-file FILE --out FILE):
the tool goes on with the new token. Exits 1 if a revocation of an old token
failed (one line on stderr for each; the next run retries it).

]] .. CONNECTION_HELP

HELP.prune = [[
Usage: cptokens prune [--prefix PREFIX] [CONNECTION]

Revokes expired tokens. With --prefix, only the rotations of PREFIX (the tokens
`cptokens rotate PREFIX` makes, named PREFIX-YYYYMMDDHHMMSS) are considered.
Exits 1 if a revocation failed (one line on stderr for each).

]] .. CONNECTION_HELP

HELP.audit = [[
Usage: cptokens audit [--within DURATION] [CONNECTION]

Reports every token as expired, expiring (within DURATION, default 7d), never
expiring, or fine. Exits 3 when a token is expired or expiring, so that cron
can alert on it:
    0 8 * * *  cptokens audit --within 14d || echo "cPanel tokens need attention"

]] .. CONNECTION_HELP

HELP.help = [[
Usage: cptokens help [COMMAND]
]]

---------------------------------------------------------------------------
-- Options
---------------------------------------------------------------------------

-- Options every command accepts. flag = takes no value.
local GLOBAL = {
  url = {}, user = {}, cafile = {}, capath = {},
  insecure = { flag = true }, timeout = {}, ["connect-timeout"] = {},
  ["token-file"] = {}, ["password-file"] = {}, ["otp-file"] = {}, ["whm-token-file"] = {},
  ["whm-user"] = {},
  json = { flag = true }, help = { flag = true }, version = { flag = true },
}

-- Options of one command: name -> { commands }.
local LOCAL = {
  ["expires-in"] = { create = true, rotate = true },
  ["expires-at"] = { create = true },
  out = { create = true, rotate = true },
  keep = { rotate = true },
  prefix = { prune = true },
  within = { audit = true },
}

-- Flags that would carry a secret on the command line: refused, saying how instead.
local SECRET_FLAGS = {
  token = "CPANEL_TOKEN=... in the environment or --token-file FILE",
  password = "CPANEL_PASSWORD=... in the environment or --password-file FILE",
  ["whm-token"] = "WHM_TOKEN=... in the environment or --whm-token-file FILE",
  otp = "CPANEL_OTP=... in the environment or --otp-file FILE",
  pass = "CPANEL_PASSWORD=... in the environment or --password-file FILE",
  passwd = "CPANEL_PASSWORD=... in the environment or --password-file FILE",
  ["api-token"] = "CPANEL_TOKEN=... in the environment or --token-file FILE",
  secret = "CPANEL_TOKEN=... in the environment or --token-file FILE",
}

-- Commands: positional arity (min, max; max nil = any) and usage line.
local COMMANDS = {
  list = { min = 0, max = 0, usage = "cptokens list" },
  create = { min = 1, max = 1,
    usage = "cptokens create NAME [--expires-in DURATION | --expires-at TIME] [--out FILE]" },
  revoke = { min = 1, usage = "cptokens revoke NAME..." },
  rename = { min = 2, max = 2, usage = "cptokens rename OLD NEW" },
  rotate = { min = 1, max = 1,
    usage = "cptokens rotate PREFIX --out FILE [--expires-in DURATION] [--keep N]" },
  prune = { min = 0, max = 0, usage = "cptokens prune [--prefix PREFIX]" },
  audit = { min = 0, max = 0, usage = "cptokens audit [--within DURATION]" },
  help = { min = 0, max = 1, usage = "cptokens help [COMMAND]" },
}

---------------------------------------------------------------------------
-- Control flow: failures are thrown as tables and turned into exit codes.
---------------------------------------------------------------------------

local Exit = {}

local function exit_with(code, message)
  error(setmetatable({ code = code, message = message }, Exit), 0)
end

local function usage(fmt, ...)
  exit_with(EXIT_USAGE, "cptokens: " .. string_format(fmt, ...))
end

local function one_line(s)
  s = tostring(s)
  return (s:gsub("[\r\n]+%s*", " "):gsub("%s+$", ""))
end

-- An error object from the library (or a rotation step) as one line.
local function error_line(err, prefix)
  local text
  if type(err) == "table" and err.kind then
    text = "cptokens: " .. tostring(err.kind) .. ": " .. (prefix or "") .. tostring(err.message)
    if err.step and not tostring(err.message):find(tostring(err.step), 1, true) then
      text = text .. " (step: " .. tostring(err.step) .. ")"
    end
  else
    text = "cptokens: " .. (prefix or "") .. tostring(err)
  end
  return one_line(text)
end

local function fail(err, prefix)
  exit_with(EXIT_FAIL, error_line(err, prefix))
end

---------------------------------------------------------------------------
-- What reaches the user: secrets scrubbed, the terminal protected
---------------------------------------------------------------------------

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local q = {}
    for k = 1, 4 do
      local v = math_floor(n / 64 ^ (4 - k)) % 64
      q[k] = B64:sub(v + 1, v + 1)
    end
    if not b then q[3] = "=" end
    if not c then q[4] = "=" end
    out[#out + 1] = table_concat(q)
  end
  return table_concat(out)
end

local MIN_SECRET = 4   -- shorter values cannot be told apart from ordinary text
local WORD_SECRET = 12 -- shorter ones (a 6-digit code) are replaced only as whole words

-- s with every occurrence of form replaced by "<secret>". With word, not where the form
-- runs on into a letter or digit on either side (424242 inside an epoch stays).
local function replace_form(s, form, word)
  local from, parts = 1, nil
  local head, tail = word and form:sub(1, 1):match("%w"), word and form:sub(-1):match("%w")
  while true do
    local a, b = s:find(form, from, true)
    if not a then break end
    if (head and s:sub(a - 1, a - 1):match("%w")) or (tail and s:sub(b + 1, b + 1):match("%w")) then
      from = a + 1
    else
      parts = parts or {}
      parts[#parts + 1] = s:sub(1, a - 1)
      s, from = s:sub(b + 1), 1
    end
  end
  if not parts then return s end
  parts[#parts + 1] = s
  return table_concat(parts, "<secret>")
end

--- The one scrubber of everything the tool prints. secrets and users are lists the caller
-- keeps appending to (the credential, a token file's text, tokens created during the run;
-- the account and WHM user names). Each secret is replaced raw, as USER:SECRET (the header
-- forms contain it) and in base64, alone and as USER:SECRET (HTTP Basic).
local function new_scrubber(secrets, users)
  local forms, nsecrets, nusers = {}, -1, -1
  local function build()
    local seen, list = {}, {}
    local function add(f) if not seen[f] then seen[f] = true list[#list + 1] = f end end
    for _, sec in ipairs(secrets) do
      if type(sec) == "string" and #sec >= MIN_SECRET then
        add(sec)
        add(base64(sec))
        for _, u in ipairs(users) do add(base64(u .. ":" .. sec)) end
      end
    end
    table_sort(list, function(x, y) return #x > #y end) -- the longest forms first
    forms, nsecrets, nusers = list, #secrets, #users
  end
  return function(s)
    s = tostring(s)
    if #secrets ~= nsecrets or #users ~= nusers then build() end
    for _, f in ipairs(forms) do s = replace_form(s, f, #f < WORD_SECRET) end
    return s
  end
end

-- For the specs: a scrubber of its own, { add(secret), text(s) }.
function _M._scrubber(users)
  local secrets = {}
  local scrub = new_scrubber(secrets, users or {})
  return { add = function(v) secrets[#secrets + 1] = v end, text = scrub }
end

-- Whether the bytes of s from i on start a UTF-8 character that is printable (not a C1
-- control): its length, or nil.
local function utf8_printable(s, i)
  local c = s:byte(i)
  local n, lo, hi
  if c >= 0xC2 and c <= 0xDF then n, lo, hi = 1, 0x80, 0xBF
  elseif c == 0xE0 then n, lo, hi = 2, 0xA0, 0xBF
  elseif c == 0xED then n, lo, hi = 2, 0x80, 0x9F
  elseif c >= 0xE1 and c <= 0xEF then n, lo, hi = 2, 0x80, 0xBF
  elseif c == 0xF0 then n, lo, hi = 3, 0x90, 0xBF
  elseif c == 0xF4 then n, lo, hi = 3, 0x80, 0x8F
  elseif c >= 0xF1 and c <= 0xF3 then n, lo, hi = 3, 0x80, 0xBF
  else return nil end
  for k = 1, n do
    local d = s:byte(i + k)
    if not d or d < (k == 1 and lo or 0x80) or d > (k == 1 and hi or 0xBF) then return nil end
  end
  if c == 0xC2 and s:byte(i + 1) < 0xA0 then return nil end -- U+0080..U+009F
  return n + 1
end

--- Text for a terminal: every byte that could act on it (C0 controls but the newlines the
-- tool writes itself when keep_lf, DEL, C1 controls raw or UTF-8, bytes that are not UTF-8)
-- shown as \xNN. Printable UTF-8 (cPanel's quotes) stays.
local function terminal_text(s, keep_lf)
  if not s:find(keep_lf and "[^\n -~]" or "[^ -~]") then return s end
  local out, i, n = {}, 1, #s
  while i <= n do
    local c = s:byte(i)
    local len = ((c >= 0x20 and c < 0x7f) or (keep_lf and c == 10)) and 1
      or (c >= 0xC2 and utf8_printable(s, i))
    if len then
      out[#out + 1] = s:sub(i, i + len - 1)
      i = i + len
    else
      out[#out + 1] = string_format("\\x%02x", c)
      i = i + 1
    end
  end
  return table_concat(out)
end

--- A name (of a token, from the server or argv) in human output: one unambiguous word,
-- everything but printable ASCII (space and backslash included) shown as \xNN, so that it
-- can neither act on the terminal nor fake a row or a column.
local function shown(name)
  return (tostring(name):gsub("[^%w%-_]", function(c)
    local b = c:byte()
    if b > 0x20 and b < 0x7f and c ~= "\\" then return c end
    return string_format("\\x%02x", b)
  end))
end

--- An argument as a usage error may show it: what follows "=" may be a secret
-- (`cptokens -- --token=X`), so it is never shown.
local function shown_arg(a)
  a = tostring(a)
  local head = a:match("^([^=]*)=")
  if head then a = head .. "=..." end
  return terminal_text(one_line(a))
end

--- One line on standard error, scrubbed and made safe for a terminal. Never raises.
local function say(ctx, line)
  pcall(ctx.stderr.write, ctx.stderr, terminal_text(ctx.scrub(one_line(line))) .. "\n")
end

---------------------------------------------------------------------------
-- JSON with a fixed key order (cjson does not order keys)
---------------------------------------------------------------------------

local Object = {}
local Verbatim = {} -- a string written as it is: the token `create` hands over
local NULL = setmetatable({}, { __tostring = function() return "null" end })

--- An ordered JSON object: obj("k1", v1, "k2", v2, ...); nil values become null.
local function obj(...)
  return setmetatable({ n = select("#", ...), ... }, Object)
end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
                  ["\b"] = "\\b", ["\f"] = "\\f" }

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESCAPES[c] or string_format("\\u%04x", c:byte())
  end) .. '"'
end

local function json_number(x)
  if x ~= x or x == math_huge or x == -math_huge then return "null" end
  if x == math_floor(x) and x >= -9007199254740991 and x <= 9007199254740991 then
    return string_format("%d", x)
  end
  if math.type and math.type(x) == "integer" then return string_format("%d", x) end
  return string_format("%.17g", x)
end

local encode

local function verbatim(s) return setmetatable({ s }, Verbatim) end

-- scrub (optional) is applied to every string value.
local function encode_into(v, out, scrub)
  local t = type(v)
  if v == nil or v == NULL then
    out[#out + 1] = "null"
  elseif t == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif t == "number" then
    out[#out + 1] = json_number(v)
  elseif t == "string" then
    out[#out + 1] = json_string(scrub and scrub(v) or v)
  elseif t == "table" and getmetatable(v) == Verbatim then
    out[#out + 1] = json_string(v[1])
  elseif t == "table" and getmetatable(v) == Object then
    out[#out + 1] = "{"
    for i = 1, v.n, 2 do
      if i > 1 then out[#out + 1] = "," end
      out[#out + 1] = json_string(v[i])
      out[#out + 1] = ":"
      encode_into(v[i + 1], out, scrub)
    end
    out[#out + 1] = "}"
  elseif t == "table" then
    out[#out + 1] = "["
    for i = 1, #v do
      if i > 1 then out[#out + 1] = "," end
      encode_into(v[i], out, scrub)
    end
    out[#out + 1] = "]"
  else
    error("cannot encode a " .. t .. " as JSON")
  end
end

function encode(v, scrub)
  local out = {}
  encode_into(v, out, scrub)
  return table_concat(out)
end

_M._json = encode
_M._obj = obj

---------------------------------------------------------------------------
-- Argument parsing
---------------------------------------------------------------------------

--- Parses argv into { command, positionals, options }; usage errors throw.
-- Never echoes what follows "=" or the rest of a short option (it may be a secret).
local function parse_args(args)
  local opts, pos = {}, {}
  local n = #args
  local i = 1
  local ended = false
  while i <= n do
    local a = args[i]
    if type(a) ~= "string" then
      usage("argument %d is not a string", i)
    end
    if ended or a == "-" or a:sub(1, 1) ~= "-" then
      pos[#pos + 1] = a
    elseif a == "--" then
      ended = true
    elseif a == "-h" then
      opts.help = true
    elseif a == "-V" then
      opts.version = true
    elseif a:sub(1, 2) == "--" then
      local name, value = a:match("^%-%-([^=]*)=(.*)$")
      if not name then name = a:sub(3) end
      if SECRET_FLAGS[name] then
        usage("--%s would put the secret on the command line, visible to every user through ps;"
          .. " use %s (- for standard input)", name, SECRET_FLAGS[name])
      end
      local spec = GLOBAL[name] or (LOCAL[name] and {})
      if not spec or not name:match("^[%w][%w%-]*$") then
        usage("unknown option --%s (see 'cptokens help')", name:match("^[%w%-]*") or "")
      end
      if spec.flag then
        if value then usage("--%s takes no value", name) end
        opts[name] = true
      else
        if value == nil then
          local nxt = args[i + 1]
          if nxt == nil or (type(nxt) == "string" and nxt:sub(1, 2) == "--" and #nxt > 2) then
            usage("--%s needs a value", name)
          end
          value = nxt
          i = i + 1
        end
        if opts[name] ~= nil then usage("--%s is given more than once", name) end
        opts[name] = value
      end
    else
      usage("unknown option %s (see 'cptokens help')", a:sub(1, 2))
    end
    i = i + 1
  end
  return pos, opts
end

local function getenv_of(env)
  if env == nil then return os.getenv end
  if type(env) == "function" then return env end
  if type(env) == "table" then return function(k) return env[k] end end
  error("cptokens.cli.main: env must be a table or a function")
end

-- An environment variable, "" counting as unset.
local function envvar(ctx, name)
  local v = ctx.getenv(name)
  if v == "" then return nil end
  return v
end

local function parse_seconds(opt, v)
  if type(v) ~= "string" or not (v:match("^%d+$") or v:match("^%d+%.%d+$") or v:match("^%.%d+$")) then
    usage("--%s %s: expected a number of seconds such as 30 or 2.5", opt, one_line(v))
  end
  local n = tonumber(v)
  if not n or n <= 0 or n ~= n or n == math_huge then
    usage("--%s %s: expected a positive number of seconds", opt, one_line(v))
  end
  return n
end

local function check_duration(opt, v)
  local d, msg = time.parse_duration(v)
  if not d then usage("--%s: %s", opt, msg) end
  return d
end

---------------------------------------------------------------------------
-- Secrets and the client
---------------------------------------------------------------------------

-- Reads a secret from a file (or standard input for "-"): the whole file,
-- minus one trailing newline. Usage errors (exit 2) for unreadable or empty.
local MAX_SECRET_FILE = 65536

-- Warns (one line on stderr) when a secret file can be read by its group or by others, as
-- ssh does. A warning, not a refusal: the secret is already exposed, a deliberate 0640
-- root:service file is a working set-up, and a refusal would stop the cron rotation that
-- keeps the service's token alive (README, "Secret files").
local function check_mode(ctx, opt, path)
  local mode, kind = core.file_mode(path)
  if not mode or kind ~= "file" then return end -- a pipe, a device, /dev/stdin: not ours to judge
  local group, others = math_floor(mode / 32) % 2 == 1, math_floor(mode / 4) % 2 == 1
  if not (group or others) then return end
  say(ctx, string_format("cptokens: warning: --%s %s can be read by %s (mode %04o): whoever can read"
    .. " it holds the secret; chmod 600 it", opt, path,
    group and others and "its group and others" or group and "its group" or "others", mode))
end

local function read_secret(ctx, opt, path)
  local data
  if path == "-" then
    if ctx.stdin_used then
      usage("--%s -: standard input is already used by --%s", opt, ctx.stdin_used)
    end
    ctx.stdin_used = opt
    data = ctx.stdin:read(MAX_SECRET_FILE + 1) or ""
  else
    local f, msg = io.open(path, "rb")
    if not f then usage("--%s: cannot read %s", opt, one_line(msg or path)) end
    local ok, res, rerr = pcall(f.read, f, MAX_SECRET_FILE + 1)
    f:close()
    if not ok or (res == nil and rerr) then
      usage("--%s: cannot read %s: %s", opt, one_line(path), one_line(ok and rerr or res))
    end
    data = res or ""
    check_mode(ctx, opt, path)
  end
  if #data > MAX_SECRET_FILE then
    usage("--%s %s: too large to hold a secret", opt, path == "-" and "- (standard input)" or one_line(path))
  end
  if data:sub(-1) == "\n" then
    data = data:sub(1, -2)
    if data:sub(-1) == "\r" then data = data:sub(1, -2) end
  end
  if data == "" then
    usage("--%s %s: the secret is empty", opt, path == "-" and "- (standard input)" or one_line(path))
  end
  -- A file written by `cptokens create --out` or by rotation's store may be a
  -- JSON document holding the token; take the token from it.
  if opt == "token-file" and data:sub(1, 1) == "{" then
    local okj, cjson = pcall(require, "cjson.safe")
    local doc = okj and cjson.decode(data)
    if type(doc) == "table" and type(doc.token) == "string" and doc.token ~= "" then
      ctx.secrets[#ctx.secrets + 1] = data
      data = doc.token
      -- its connection settings are defaults (flags and the environment win)
      local conn = {}
      for _, k in ipairs { "url", "user", "cafile", "capath" } do
        if type(doc[k]) == "string" and doc[k] ~= "" then conn[k] = doc[k] end
      end
      ctx.file_conn = conn
    end
  end
  ctx.secrets[#ctx.secrets + 1] = data
  return data
end

-- The credential: exactly one source, from the environment or a file.
local function credentials(ctx, opts)
  local stdin_user
  for _, o in ipairs { "token-file", "password-file", "whm-token-file", "otp-file" } do
    if opts[o] == "-" then
      if stdin_user then usage("--%s -: standard input is already used by --%s", o, stdin_user) end
      stdin_user = o
    end
  end
  local sources = {}
  local function add(kind, label, value, file_opt)
    sources[#sources + 1] = { kind = kind, label = label, value = value, file_opt = file_opt }
  end
  local empty = {}
  for _, e in ipairs { { "token", "CPANEL_TOKEN" }, { "password", "CPANEL_PASSWORD" },
                       { "whm_token", "WHM_TOKEN" } } do
    local v = envvar(ctx, e[2])
    if v then add(e[1], e[2], v) elseif ctx.getenv(e[2]) == "" then empty[#empty + 1] = e[2] end
  end
  for _, f in ipairs { { "token", "token-file" }, { "password", "password-file" },
                       { "whm_token", "whm-token-file" } } do
    if opts[f[2]] then add(f[1], "--" .. f[2], nil, f[2]) end
  end
  if #sources == 0 then
    usage("no credentials: set CPANEL_TOKEN (or CPANEL_PASSWORD, or WHM_TOKEN), or use --token-file,"
      .. " --password-file or --whm-token-file FILE%s",
      #empty > 0 and (" (" .. table_concat(empty, ", ") .. " is set but empty)") or "")
  end
  if #sources > 1 then
    local labels = {}
    for i, s in ipairs(sources) do labels[i] = s.label end
    usage("several credentials given (%s); give exactly one", table_concat(labels, ", "))
  end
  local src = sources[1]
  local cred = { kind = src.kind }
  if src.value then
    cred.value = src.value
    ctx.secrets[#ctx.secrets + 1] = src.value
  else
    cred.file = opts[src.file_opt]
    cred.value = read_secret(ctx, src.file_opt, cred.file)
  end

  -- Two-factor code: only with a password.
  local otp_env, otp_file = envvar(ctx, "CPANEL_OTP"), opts["otp-file"]
  if otp_env and otp_file then usage("CPANEL_OTP and --otp-file are both given; give one") end
  if otp_env or otp_file then
    if cred.kind ~= "password" then
      usage("a two-factor code (%s) goes with a password only", otp_file and "--otp-file" or "CPANEL_OTP")
    end
    if otp_env then
      cred.otp = otp_env
      ctx.secrets[#ctx.secrets + 1] = otp_env
    else
      cred.otp = read_secret(ctx, "otp-file", otp_file)
    end
  end
  if opts["whm-user"] and cred.kind ~= "whm_token" then
    usage("--whm-user goes with a WHM token only (WHM_TOKEN or --whm-token-file)")
  end
  return cred
end

local function connect(ctx, opts)
  local cred = credentials(ctx, opts)
  -- A token file written by create --out or rotate also names its server.
  local file = ctx.file_conn or {}
  local url = opts.url or envvar(ctx, "CPANEL_URL") or file.url
  if not url then usage("no server: use --url URL or set CPANEL_URL (e.g. https://host.example.com:2083)") end
  local user = opts.user or envvar(ctx, "CPANEL_USER") or file.user
  if not user then usage("no account: use --user USER or set CPANEL_USER") end
  local o = {
    url = url, user = user,
    cafile = opts.cafile or envvar(ctx, "CPANEL_CAFILE") or file.cafile,
    capath = opts.capath or envvar(ctx, "CPANEL_CAPATH") or file.capath,
  }
  if opts.insecure then o.insecure = true end
  o.timeout, o.connect_timeout = ctx.timeout, ctx.connect_timeout
  o[cred.kind] = cred.value
  o.otp = cred.otp
  if cred.kind == "whm_token" then o.whm_user = opts["whm-user"] end
  ctx.users[#ctx.users + 1] = user
  if cred.kind == "whm_token" then ctx.users[#ctx.users + 1] = opts["whm-user"] or "root" end
  ctx.cred = cred
  local ok, client, err = pcall(cptokens.new, o)
  if not ok then
    usage("%s", (one_line(client):gsub("^cptokens[.:]%s*", "")))
  end
  if not client then
    exit_with(EXIT_USAGE, error_line(err))
  end
  ctx.client = client
  return client
end

---------------------------------------------------------------------------
-- Output
---------------------------------------------------------------------------

local function write_out(ctx, s)
  local ok, err = ctx.stdout:write(s)
  if not ok then fail("io: cannot write to standard output: " .. one_line(err)) end
end

--- Human text on standard output: scrubbed, safe for a terminal (names are also shown()).
local function out(ctx, s)
  write_out(ctx, terminal_text(ctx.scrub(s), true))
end

--- One JSON document on standard output; every string in it scrubbed but verbatim() ones.
local function out_json(ctx, v)
  write_out(ctx, encode(v, ctx.scrub) .. "\n")
end

local function flush(ctx)
  local ok, err = ctx.stdout:flush()
  if not ok then return nil, err or "flush failed" end
  return true
end

local function iso(epoch)
  if epoch == nil then return nil end
  return (time.iso8601(epoch)) or tostring(epoch)
end

-- Aligned columns, two spaces apart; the last column is not padded.
local function table_text(header, rows)
  local widths = {}
  for c, h in ipairs(header) do widths[c] = #h end
  for _, r in ipairs(rows) do
    for c, v in ipairs(r) do if #v > widths[c] then widths[c] = #v end end
  end
  local lines = {}
  local function line(r)
    local cells = {}
    for c, v in ipairs(r) do
      cells[c] = c < #r and (v .. string_rep(" ", widths[c] - #v)) or v
    end
    lines[#lines + 1] = table_concat(cells, "  ")
  end
  line(header)
  for _, r in ipairs(rows) do line(r) end
  return table_concat(lines, "\n") .. "\n"
end

-- "expires 2026-12-31T23:59:59Z" or "never expires"
local function expiry_text(tok)
  if tok.expires_at == nil then return "never expires" end
  return "expires " .. iso(tok.expires_at)
end

-- "expires in 3d", "expired 2h ago", "never expires"
local function state_text(tok, now)
  local rem = time.remaining(tok, now)
  if rem == nil then return "never expires" end
  if rem < 0 then return (time.format_remaining(rem)) end
  return "expires in " .. time.format_remaining(rem)
end

local function names_of(list)
  local names = {}
  for i, t in ipairs(list or {}) do
    names[i] = type(t) == "table" and t.name or tostring(t)
  end
  return names
end

---------------------------------------------------------------------------
-- Rotation, pruning, audit, storage: from cptokens.rotate / cptokens.store
-- when they exist.
---------------------------------------------------------------------------

local function optional_module(name)
  local ok, mod = pcall(require, name)
  if ok then return mod end
  if type(mod) == "string" and mod:find("module '" .. name .. "' not found", 1, true) then
    return nil
  end
  error(mod, 0) -- the module exists but failed to load: an internal error
end

-- Calls client:<method>(opts), or the same function of cptokens.rotate.
local function extension(ctx, client, method, opts)
  local f = client[method]
  if type(f) ~= "function" then
    local mod = optional_module("cptokens.rotate")
    f = client[method]
    if type(f) ~= "function" and type(mod) == "table" and type(mod[method]) == "function" then
      f = mod[method]
    end
  end
  if type(f) ~= "function" then
    exit_with(EXIT_FAIL, "cptokens: " .. method .. " is not available in this installation"
      .. " (cptokens.rotate is missing)")
  end
  ctx.in_extension = method
  return f(client, opts)
end

local function store_module()
  local store = optional_module("cptokens.store")
  if type(store) == "table" and type(store.save) == "function" then return store end
  return nil
end

-- Checks that a secret file could be written at path, before creating anything.
-- What a token file written for client records: its URL (for a WHM client, the
-- cPanel port the user's token works on), user and trust anchors.
local function file_conn(client)
  local conn = client:info()
  if conn.credential == "whm_token" then
    conn.url = conn.url:gsub("^(https://[^/]+):2087", "%1:2083")
  end
  return conn
end

-- With conn, a token file of another server or account at path is refused too.
local function check_out(path, conn)
  local store = store_module()
  local ok, msg
  if store and type(store.check) == "function" then
    ok, msg = store.check(path, conn)
  else
    ok, msg = require("cptokens.core").writable(path)
  end
  if not ok then
    exit_with(EXIT_USAGE, error_line(msg, "--out: "))
  end
end

-- Saves a new token durably (0600, atomic). true, or nil, err.
local function save_token(client, path, tok)
  local store = store_module()
  if store then return store.save(path, tok, file_conn(client)) end
  return require("cptokens.core").atomic_write(path, tok.token .. "\n")
end

---------------------------------------------------------------------------
-- Commands
---------------------------------------------------------------------------

local run = {}
local check_values

function run.list(ctx, client)
  local list, err = client:list()
  if not list then fail(err) end
  local now = os.time()
  if ctx.opts.json then
    local items = {}
    for i, t in ipairs(list) do
      local rem = time.remaining(t, now)
      items[i] = obj("name", t.name, "create_time", t.create_time, "created", iso(t.create_time),
        "expires_at", t.expires_at, "expires", iso(t.expires_at),
        "expired", rem ~= nil and rem < 0, "remaining", rem,
        "has_full_access", t.has_full_access == true)
    end
    out_json(ctx, obj("tokens", items))
    return EXIT_OK
  end
  local rows = {}
  for i, t in ipairs(list) do
    rows[i] = { shown(t.name), iso(t.create_time) or "", iso(t.expires_at) or "never", state_text(t, now) }
  end
  out(ctx, table_text({ "NAME", "CREATED", "EXPIRES", "STATE" }, rows))
  return EXIT_OK
end

-- The signal received since signals were deferred: 128 + its number and its name, or nil.
local function interrupted()
  local signo, name = core.pending_signal()
  if signo then return 128 + signo, name end
  return nil
end

-- Hands the new token tok over: saved to path, or printed. Raises (an Exit, or any error)
-- when it could not; calls delivered() once the token has reached its user.
local function deliver(ctx, client, tok, path, delivered)
  local code, sig = interrupted()
  if code then
    ctx.signal_said = true
    exit_with(code, "cptokens: interrupted by " .. sig .. " before the token was delivered")
  end
  if path then
    local ok, serr = save_token(client, path, tok)
    if not ok then
      exit_with(EXIT_FAIL, "cptokens: io: cannot save the token to " .. path .. ": "
        .. error_line(serr):gsub("^cptokens: ", ""))
    end
    delivered()
    ctx.signal_note = "the token " .. shown(tok.name) .. " was saved to " .. path .. " and stays valid"
    if ctx.opts.json then
      out_json(ctx, obj("name", tok.name, "create_time", tok.create_time, "expires_at", tok.expires_at,
        "token", NULL, "out", path))
    else
      out(ctx, string_format("created %s, %s; token saved to %s\n", shown(tok.name), expiry_text(tok), path))
    end
    return
  end
  local text
  if ctx.opts.json then
    text = encode(obj("name", tok.name, "create_time", tok.create_time, "expires_at", tok.expires_at,
      "token", verbatim(tok.token), "out", NULL), ctx.scrub) .. "\n"
  else
    text = tok.token .. "\n"
  end
  local ok, werr = ctx.stdout:write(text)
  if ok then ok, werr = flush(ctx) end
  if not ok then
    exit_with(EXIT_FAIL, "cptokens: io: cannot write the token to standard output: " .. tostring(werr))
  end
  -- printed, but a signal now (the terminal hung up, Ctrl-C on TOKEN=$(...)) means that its
  -- reader has most likely lost it
  code, sig = interrupted()
  if code then
    ctx.signal_said = true
    exit_with(code, "cptokens: interrupted by " .. sig .. " while the token was handed over")
  end
  delivered()
  ctx.signal_note = "the token " .. shown(tok.name) .. " was printed and stays valid"
end

function run.create(ctx, client, pos)
  local opts = ctx.opts
  local name = pos[1]
  local copts
  if opts["expires-in"] then
    copts = { expires_in = opts["expires-in"] }
  elseif opts["expires-at"] then
    copts = { expires_at = ctx.expires_at }
  end
  local path = opts.out
  if path then
    check_out(path, file_conn(client)) -- a bad path is a usage error (exit 2)
    -- the file's lock, as rotate takes it: never a save in the middle of a rotation of it
    local lock, lerr = require("cptokens.store").lock(path, 30)
    if not lock then exit_with(EXIT_FAIL, error_line(lerr, "--out: ")) end
    ctx.out_lock = lock -- held until the process ends
    check_out(path, file_conn(client)) -- again, now that no rotation can change it
  end

  local tok, err = client:create(name, copts)
  if not tok then fail(err) end
  ctx.secrets[#ctx.secrets + 1] = tok.token

  -- Nobody has seen the new token yet: on every path where it does not reach its user
  -- (a write or a save that fails, a signal, any error at all), it is revoked.
  local done = false
  local ok, e = pcall(deliver, ctx, client, tok, path, function() done = true end)
  if ok then return EXIT_OK end
  if done then error(e, 0) end
  local is_exit = getmetatable(e) == Exit
  local code = is_exit and e.code or EXIT_FAIL
  local why = is_exit and e.message or ("cptokens: internal error: " .. tostring(e))
  local rok, rerr = client:revoke(tok.name)
  local after = rok and ("; the new token " .. shown(tok.name) .. " was revoked, nothing is left behind")
    or ("; revoking the new token " .. shown(tok.name) .. " also failed (" .. error_line(rerr)
      .. "): revoke it with 'cptokens revoke " .. shown(tok.name) .. "'")
  exit_with(code, one_line(why) .. after)
end

function run.revoke(ctx, client, pos)
  local revoked, missing = {}, {}
  local function report()
    if ctx.opts.json then
      out_json(ctx, obj("revoked", revoked, "missing", missing))
    end
  end
  for _, name in ipairs(pos) do
    local ok, existed = client:revoke(name)
    if not ok then
      report()
      fail(existed)
    end
    if existed then
      revoked[#revoked + 1] = name
      if not ctx.opts.json then out(ctx, "revoked " .. shown(name) .. "\n") end
    else
      missing[#missing + 1] = name
      if not ctx.opts.json then out(ctx, "no token named " .. shown(name) .. " (nothing to revoke)\n") end
    end
  end
  report()
  return EXIT_OK
end

function run.rename(ctx, client, pos)
  local ok, err = client:rename(pos[1], pos[2])
  if not ok then fail(err) end
  if ctx.opts.json then
    out_json(ctx, obj("name", pos[1], "new_name", pos[2]))
  else
    out(ctx, "renamed " .. shown(pos[1]) .. " to " .. shown(pos[2]) .. "\n")
  end
  return EXIT_OK
end

-- Revocations that failed inside rotate/prune: report.errors = { { name, err } }.
-- One line each on stderr; returns the JSON form and whether there were any.
local function partial_errors(ctx, what, report)
  local list = {}
  for _, e in ipairs(type(report.errors) == "table" and report.errors or {}) do
    local err = e.err
    local kind = type(err) == "table" and err.kind or "error"
    local message = type(err) == "table" and err.message or tostring(err)
    list[#list + 1] = obj("name", e.name, "kind", kind, "message", one_line(message))
    say(ctx, error_line({ kind = kind, message = message },
      what .. ": revoking " .. shown(e.name) .. " failed: "))
  end
  return list, #list > 0
end

function run.rotate(ctx, client, pos)
  local opts = ctx.opts
  local path = opts.out
  local ropts = { prefix = pos[1], store = path, expires_in = opts["expires-in"], keep = ctx.keep }
  check_out(path)
  local tok, report = extension(ctx, client, "rotate", ropts)
  if not tok then fail(report) end
  if type(tok) == "table" and tok.token then ctx.secrets[#ctx.secrets + 1] = tok.token end
  report = type(report) == "table" and report or {}
  local created = report.created or (type(tok) == "table" and tok.name) or nil
  local revoked, kept, orphans = names_of(report.revoked), names_of(report.kept), names_of(report.orphans)
  local is_orphan = {}
  for _, n in ipairs(orphans) do is_orphan[n] = true end
  local errors, failed = partial_errors(ctx, "rotate", report)
  local foreign = names_of(report.foreign)
  for _, n in ipairs(foreign) do
    say(ctx, "cptokens: warning: rotate: " .. shown(n) .. " has the prefix " .. shown(pos[1])
      .. " but " .. path .. " does not hold it; left alone (another token file may hold it:"
      .. " give each file its own prefix, or revoke it by hand if nobody does)")
  end
  if opts.json then
    out_json(ctx, obj("created", created, "create_time", type(tok) == "table" and tok.create_time or nil,
      "expires_at", type(tok) == "table" and tok.expires_at or nil, "out", path,
      "revoked", revoked, "kept", kept, "orphans", orphans, "foreign", foreign,
      "switched", report.switched == true, "errors", errors))
  else
    out(ctx, string_format("created %s, %s; token saved to %s\n", shown(created),
      expiry_text(type(tok) == "table" and tok or {}), path))
    for _, n in ipairs(revoked) do
      out(ctx, "revoked " .. shown(n) .. (is_orphan[n] and " (an orphan: newer than the stored token, never stored)"
        or "") .. "\n")
    end
    for _, n in ipairs(kept) do out(ctx, "kept " .. shown(n) .. "\n") end
  end
  return failed and EXIT_FAIL or EXIT_OK
end

function run.prune(ctx, client)
  local res, err = extension(ctx, client, "prune", { prefix = ctx.opts.prefix })
  if not res then fail(err) end
  local revoked = names_of(res.revoked)
  local kept = res.kept
  if type(kept) == "table" then kept = #kept end
  local errors, failed = partial_errors(ctx, "prune", res)
  if ctx.opts.json then
    out_json(ctx, obj("revoked", revoked, "kept", kept or 0, "errors", errors))
  else
    for _, n in ipairs(revoked) do out(ctx, "revoked " .. shown(n) .. "\n") end
    out(ctx, string_format("%d expired token%s revoked, %d kept\n", #revoked, #revoked == 1 and "" or "s",
      kept or 0))
  end
  return failed and EXIT_FAIL or EXIT_OK
end

local AUDIT_STATES = { "expired", "expiring", "never", "fine" }

function run.audit(ctx, client)
  local within = ctx.opts.within or DEFAULT_WITHIN
  local within_s = ctx.within_seconds
  local res, err = extension(ctx, client, "audit", { within = within })
  if not res then fail(err) end
  local now = type(res.now) == "number" and res.now or os.time()
  -- Every token with its state, from res.tokens or the per-state lists.
  local tokens = {}
  if type(res.tokens) == "table" then
    for i, t in ipairs(res.tokens) do tokens[i] = t end
  else
    for _, st in ipairs(AUDIT_STATES) do
      for _, t in ipairs(res[st] or {}) do
        local c = {}
        for k, v in pairs(t) do c[k] = v end
        c.state = c.state or st
        tokens[#tokens + 1] = c
      end
    end
    table_sort(tokens, function(a, b)
      if a.create_time ~= b.create_time then return (a.create_time or 0) < (b.create_time or 0) end
      return a.name < b.name
    end)
  end
  local counts = {}
  for _, st in ipairs(AUDIT_STATES) do counts[st] = #(res[st] or {}) end
  local alert = counts.expired > 0 or counts.expiring > 0

  if ctx.opts.json then
    local items = {}
    for i, t in ipairs(tokens) do
      local rem = t.remaining
      if rem == nil then rem = time.remaining(t, now) end
      items[i] = obj("name", t.name, "create_time", t.create_time, "expires_at", t.expires_at,
        "expires", iso(t.expires_at), "state", t.state, "remaining", rem)
    end
    out_json(ctx, obj("within", within, "within_seconds", within_s,
      "expired", names_of(res.expired), "expiring", names_of(res.expiring),
      "never", names_of(res.never), "fine", names_of(res.fine), "tokens", items))
  else
    local rows = {}
    for i, t in ipairs(tokens) do
      rows[i] = { shown(t.name), iso(t.expires_at) or "never", tostring(t.state), state_text(t, now) }
    end
    out(ctx, table_text({ "NAME", "EXPIRES", "STATE", "DETAIL" }, rows))
    out(ctx, string_format("%d expired, %d expiring within %s, %d never expire, %d fine\n",
      counts.expired, counts.expiring, within, counts.never, counts.fine))
  end
  return alert and EXIT_ALERT or EXIT_OK
end

---------------------------------------------------------------------------
-- main
---------------------------------------------------------------------------

local function help(ctx, topic)
  local text = HELP[topic or ""]
  if not text then usage("unknown command '%s' (see 'cptokens help')", shown_arg(topic)) end
  out(ctx, text)
  return EXIT_OK
end

-- Option values checked before anything else happens (usage errors, exit 2).
function check_values(ctx, name, opts)
  if opts.timeout then ctx.timeout = parse_seconds("timeout", opts.timeout) end
  if opts["connect-timeout"] then
    ctx.connect_timeout = parse_seconds("connect-timeout", opts["connect-timeout"])
  end
  if opts["expires-in"] and opts["expires-at"] then
    usage("%s: give --expires-in or --expires-at, not both", name)
  end
  if opts["expires-in"] then check_duration("expires-in", opts["expires-in"]) end
  if opts["expires-at"] then
    local e, msg = time.to_epoch(opts["expires-at"])
    if not e then usage("--expires-at: %s", msg) end
    ctx.expires_at = e
  end
  if opts.keep then
    if not opts.keep:match("^%d+$") or #opts.keep > 6 then
      usage("--keep %s: expected a whole number (0 or more)", one_line(opts.keep))
    end
    ctx.keep = tonumber(opts.keep)
  end
  if name == "audit" then
    ctx.within_seconds = check_duration("within", opts.within or DEFAULT_WITHIN)
  end
  if opts.prefix == "" then usage("--prefix: empty") end
  if opts.out == "" or opts.out == "-" then
    usage("--out: expected a file name (without --out, create prints the token on standard output)")
  end
  if name == "rotate" and not opts.out then
    usage("rotate: --out FILE is required (the new token is stored there, never printed)")
  end
end

-- The positional arguments' names, for messages.
local ARG_LABELS = { create = { "NAME" }, revoke = { "NAME" }, rename = { "OLD", "NEW" }, rotate = { "PREFIX" } }

-- Commands that create a token, and what main() says of them after a signal.
local DEFERS_SIGNALS = {
  create = "create did not complete (see above)",
  rotate = "the rotation was left to finish first (its outcome is above)",
}

local function dispatch(ctx, args)
  local pos, opts = parse_args(args)
  ctx.opts = opts
  if opts.version then
    out(ctx, "cptokens " .. tostring(cptokens._VERSION) .. "\n")
    return EXIT_OK
  end
  local name = pos[1]
  if name == nil then
    if opts.help then return help(ctx) end
    usage("no command given (try 'cptokens help')")
  end
  local cmd = COMMANDS[name]
  if not cmd then usage("unknown command '%s' (see 'cptokens help')", shown_arg(name)) end
  if opts.help then return help(ctx, name) end
  for o in pairs(opts) do
    if LOCAL[o] and not LOCAL[o][name] then
      usage("%s: --%s does not apply to this command (usage: %s)", name, o, cmd.usage)
    end
  end
  local args_ = {}
  for i = 2, #pos do args_[#args_ + 1] = pos[i] end
  if #args_ < cmd.min then
    local what = ({ create = "NAME", revoke = "NAME", rename = "OLD and NEW", rotate = "PREFIX" })[name]
    usage("%s: missing %s (usage: %s)", name, what or "arguments", cmd.usage)
  end
  if cmd.max and #args_ > cmd.max then
    usage("%s: too many arguments: %d extra (usage: %s)", name, #args_ - cmd.max, cmd.usage)
  end
  if name == "help" then return help(ctx, args_[1]) end
  -- No token name has "=": such an argument is more likely `-- --token=SECRET`.
  for i, a in ipairs(args_) do
    if a:find("=", 1, true) then
      local label = ARG_LABELS[name][i] or ARG_LABELS[name][#ARG_LABELS[name]]
      usage("%s: %s '%s' is not a token name (what follows '=' is not shown: it may be a secret)",
        name, label, shown_arg(a))
    end
  end
  check_values(ctx, name, opts)
  local client = connect(ctx, opts)
  if DEFERS_SIGNALS[name] then
    -- From here on a signal is recorded, not fatal: the command runs to a point where no
    -- token is left undelivered, and main() then exits 128 + the signal's number.
    core.defer_signals(true)
    ctx.deferred = true
    ctx.signal_note = DEFERS_SIGNALS[name]
    local code, sig = interrupted()
    if code then
      ctx.signal_said = true
      exit_with(code, "cptokens: interrupted by " .. sig .. "; nothing was sent")
    end
  end
  return run[name](ctx, client, args_)
end

--- Runs the tool; returns the exit status. Never raises.
-- @param args array of arguments (e.g. the global `arg`)
-- @param env nil (os.getenv), a table, or a function name -> value
-- @param streams optional { stdin, stdout, stderr }
function _M.main(args, env, streams)
  streams = streams or {}
  local ctx = {
    stdin = streams.stdin or io.stdin,
    stdout = streams.stdout or io.stdout,
    stderr = streams.stderr or io.stderr,
    secrets = {}, -- every secret the run holds (the scrubber's list)
    users = {},   -- the account names the credential is sent with
  }
  ctx.scrub = new_scrubber(ctx.secrets, ctx.users)
  local function handler(e)
    if getmetatable(e) == Exit then return e end
    return { code = EXIT_FAIL, message = "cptokens: internal error: " .. tostring(e) }
  end
  local ok, res = xpcall(function()
    ctx.getenv = getenv_of(env)
    if type(args) ~= "table" then error("main: args must be a table") end
    return dispatch(ctx, args)
  end, handler)
  if ctx.client then pcall(ctx.client.close, ctx.client) end
  local code
  if ok then
    code = type(res) == "number" and res or EXIT_OK
  else
    code = res.code
    pcall(ctx.stdout.flush, ctx.stdout)
    say(ctx, res.message)
  end
  local pok, flushed, ferr = pcall(ctx.stdout.flush, ctx.stdout)
  if not (pok and flushed) and code == EXIT_OK then
    code = EXIT_FAIL
    say(ctx, "cptokens: io: cannot write to standard output: " .. tostring(pok and ferr or flushed))
  end
  -- A signal while create or rotate ran: they went on to a safe point; now it takes effect.
  local signo, signame = core.pending_signal()
  if signo and ctx.deferred then
    if not ctx.signal_said then
      say(ctx, "cptokens: interrupted by " .. signame .. "; " .. ctx.signal_note)
    end
    code = 128 + signo
  end
  pcall(ctx.stderr.flush, ctx.stderr)
  return code
end

--- bin/cptokens: makes the process fit to hold secrets, then runs main(args) and returns
-- its exit status. No core dumps (a core holds the credential); SIGINT, SIGTERM, SIGHUP
-- and SIGPIPE guarded (csrc/proc.c): they act at once, as usual, except while create or
-- rotate runs, when they are recorded and the command goes on to where no new token is
-- left undelivered (a write to a closed pipe then fails instead of killing the process).
function _M.process(args)
  local ok, err = core.no_core_dumps()
  if not ok then
    pcall(io.stderr.write, io.stderr, "cptokens: warning: core dumps stay possible: " .. one_line(err) .. "\n")
  end
  core.guard_signals()
  return _M.main(args)
end

return _M
