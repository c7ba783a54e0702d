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
-- The parts, in lua/cptokens/cli/ (each loaded only when a run needs it, so that a
-- `cptokens list` process compiles little more than what it runs):
--   args.lua     the command line's definition (options, commands, which module runs each)
--                and its parsing; parser.lua builds the lua-argparse parser from it for
--                usage errors, "did you mean" and the completion scripts (completions/)
--   common.lua   exit statuses, errors, the scrubber, terminal escaping, output; json.lua
--   connect.lua  the credential (environment or files, never argv) and the client
--   tokens.lua   list, create, revoke, rename;  rotate.lua  rotate, prune, audit
--   whm.lua      whm create|list|update|revoke|details|audit|rotate, accounts (WHM API tokens)
--   fleet.lua    fleet list|audit|prune|rotate (every account of a server or a group of them)
--   help.lua     the help texts
-- A new command group is one module and its entries in args.lua (see there).
--
-- Portable across Lua 5.1-5.4 and LuaJIT.

local core = require "cptokens.core"
local common = require "cptokens.cli.common"
local args = require "cptokens.cli.args"
local connect_mod = require "cptokens.cli.connect"

local type, tostring, tonumber, ipairs, getmetatable, pcall, xpcall = type, tostring, tonumber, ipairs,
  getmetatable, pcall, xpcall
local error, require = error, require
local math_huge = math.huge

local EXIT = common.EXIT
local EXIT_OK, EXIT_FAIL = EXIT.OK, EXIT.FAIL
local Exit, exit_with, usage, one_line = common.Exit, common.exit_with, common.usage, common.one_line
local shown_arg, say, out, interrupted = common.shown_arg, common.say, common.out, common.interrupted

local _M = { _VERSION = core._VERSION, EXIT = EXIT }

local DEFAULT_WITHIN = "7d"
local wants_json

-- For the specs: a scrubber of its own, { add(secret), text(s) }; the JSON encoder.
function _M._scrubber(users)
  local secrets = {}
  local scrub = common.new_scrubber(secrets, users or {})
  return { add = function(v) secrets[#secrets + 1] = v end, text = scrub }
end
_M._json = function(...) return require("cptokens.cli.json").encode(...) end
_M._obj = function(...) return require("cptokens.cli.json").obj(...) end

-- --------------------------------------------------------------------------
-- Option values, checked before anything is sent (usage errors, exit 2)
-- --------------------------------------------------------------------------

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
  local d, msg = require("cptokens.time").parse_duration(v)
  if not d then usage("--%s: %s", opt, msg) end
  return d
end

-- --------------------------------------------------------------------------
-- main
-- --------------------------------------------------------------------------

local function help(ctx, topic)
  local texts = require("cptokens.cli.help")
  -- a subcommand's help is its group's ("whm create" -> "whm")
  local text = texts[topic or ""] or (topic and texts[topic:match("^(%S+) ") or false])
  if not text then usage("unknown command '%s' (see 'cptokens help')", shown_arg(topic)) end
  out(ctx, text, true)
  return EXIT_OK
end

-- Option values checked before anything else happens (usage errors, exit 2).
local function check_values(ctx, name, opts)
  if opts.timeout then ctx.timeout = parse_seconds("timeout", opts.timeout) end
  if opts["connect-timeout"] then
    ctx.connect_timeout = parse_seconds("connect-timeout", opts["connect-timeout"])
  end
  if opts["expires-in"] and opts["expires-at"] then
    usage("%s: give --expires-in or --expires-at, not both", name)
  end
  if opts["expires-in"] then check_duration("expires-in", opts["expires-in"]) end
  if opts["expires-at"] then
    local e, msg = require("cptokens.time").to_epoch(opts["expires-at"])
    if not e then usage("--expires-at: %s", msg) end
    ctx.expires_at = e
  end
  if opts.keep then
    if not opts.keep:match("^%d+$") or #opts.keep > 6 then
      usage("--keep %s: expected a whole number (0 or more)", one_line(opts.keep))
    end
    ctx.keep = tonumber(opts.keep)
  end
  if name == "audit" or name == "whm audit" or name == "fleet audit" then
    ctx.within_seconds = check_duration("within", opts.within or DEFAULT_WITHIN)
  end
  if opts.prefix == "" then usage("--prefix: empty") end
  if opts.out == "" or opts.out == "-" then
    usage("--out: expected a file name (without --out, create prints the token on standard output)")
  end
  if opts.exec == "" then usage("--exec: empty (a command for sh -c)") end
  if opts["exec-timeout"] then
    if not opts.exec then usage("--exec-timeout: only with --exec CMD") end
    ctx.exec_timeout = parse_seconds("exec-timeout", opts["exec-timeout"])
  end
  if (name == "rotate" or name == "whm rotate") and not opts.out then
    usage("%s: --out FILE is required (the new token is stored there, never printed)", name)
  end
end

-- Commands that create a token, and what main() says of them after a signal.
local DEFERS_SIGNALS = {
  create = "create did not complete (see above)",
  rotate = "the rotation was left to finish first (its outcome is above)",
}
DEFERS_SIGNALS["whm create"], DEFERS_SIGNALS["whm rotate"] = DEFERS_SIGNALS.create, DEFERS_SIGNALS.rotate
-- (fleet rotate: each account's rotation runs to its end; the run then stops, see cli/fleet.lua)
DEFERS_SIGNALS["fleet rotate"] = "the rotation of each account was left to finish first; the other"
  .. " accounts were not touched"

local function dispatch(ctx, argv)
  local pos, opts = args.parse(argv)
  ctx.opts = opts
  if opts.version or pos[1] == "version" then
    if opts.json then
      common.out_json(ctx, require("cptokens.cli.json").obj("name", "cptokens", "version", _M._VERSION))
    else
      out(ctx, "cptokens " .. tostring(_M._VERSION) .. "\n", true)
    end
    return EXIT_OK
  end
  local name = pos[1]
  if name == nil then
    if opts.help then return help(ctx) end
    usage("no command given (try 'cptokens help')")
  end
  local cmd = args.command[name]
  if opts.help then return help(ctx, name) end
  if cmd.subcommands then
    usage("%s: missing a subcommand (usage: %s; see 'cptokens help %s')", name, cmd.usage, name)
  end
  local rest = {}
  for i = 2, #pos do rest[#rest + 1] = pos[i] end
  if #rest < cmd.min then
    usage("%s: missing %s (usage: %s)", name, cmd.missing or "arguments", cmd.usage)
  end
  if cmd.topics then return help(ctx, rest[1]) end
  -- No token name has "=": such an argument is more likely `-- --token=SECRET`.
  for i, a in ipairs(rest) do
    if a:find("=", 1, true) then
      usage("%s: %s '%s' is not a token name (what follows '=' is not shown: it may be a secret)",
        name, cmd.args[i] or cmd.args[#cmd.args], shown_arg(a))
    end
  end
  check_values(ctx, name, opts)
  local run = require("cptokens.cli." .. cmd.module)
  if run.check then run.check(ctx, cmd, opts, rest) end
  local client
  if cmd.connect ~= "self" then
    client = (cmd.connect == "whm" and connect_mod.connect_whm or connect_mod.connect)(ctx, opts, cmd)
  end
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
  return run[cmd.sub or name](ctx, client, rest, cmd)
end

-- Whether argv asks for --json (for a command line that could not be parsed).
wants_json = function(argv)
  if type(argv) ~= "table" then return false end
  for _, a in ipairs(argv) do
    if a == "--" then return false end
    if a == "--json" then return true end
  end
  return false
end

--- Runs the tool; returns the exit status. Never raises.
-- @param args array of arguments (e.g. the global `arg`)
-- @param env nil (os.getenv), a table, or a function name -> value
-- @param streams optional { stdin, stdout, stderr }
function _M.main(argv, env, streams)
  streams = streams or {}
  local ctx = {
    stdin = streams.stdin or io.stdin,
    stdout = streams.stdout or io.stdout,
    stderr = streams.stderr or io.stderr,
    secrets = {}, -- every secret the run holds (the scrubber's list)
    users = {},   -- the account names the credential is sent with
  }
  ctx.scrub = common.new_scrubber(ctx.secrets, ctx.users)
  ctx.default_within = DEFAULT_WITHIN
  local function handler(e)
    if getmetatable(e) == Exit then return e end
    return { code = EXIT_FAIL, message = "cptokens: internal error: " .. tostring(e) }
  end
  local ok, res = xpcall(function()
    ctx.getenv = connect_mod.getenv_of(env)
    if type(argv) ~= "table" then error("main: args must be a table") end
    return dispatch(ctx, argv)
  end, handler)
  if ctx.client then pcall(ctx.client.close, ctx.client) end
  local code
  if ok then
    code = type(res) == "number" and res or EXIT_OK
  else
    code = res.code
    -- under --json, the failure is also a document on standard output (unless one was written)
    local json = ctx.opts and ctx.opts.json or (not ctx.opts and wants_json(argv))
    if json and not ctx.json_written then pcall(common.out_json, ctx, common.json_error(res)) end
    pcall(ctx.stdout.flush, ctx.stdout)
    say(ctx, res.message)
    if res.cause then
      local hok, lines = pcall(require("cptokens.cli.hints").lines, ctx, res.cause)
      for _, line in ipairs(hok and lines or {}) do say(ctx, "cptokens: hint: " .. line) end
    end
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
function _M.process(argv)
  local ok, err = core.no_core_dumps()
  if not ok then
    pcall(io.stderr.write, io.stderr, "cptokens: warning: core dumps stay possible: " .. one_line(err) .. "\n")
  end
  core.guard_signals()
  return _M.main(argv)
end

return _M
