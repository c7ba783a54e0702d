--- cptokens.cli.parser: the lua-argparse parser built from cli/args.lua's table.
--
--   parser.parse(argv) -> pos, opts     (usage errors raise common.Exit, exit 2, one line)
--   parser.build()     -> the argparse parser (`make completions` asks it for the bash, zsh
--                         and fish scripts in completions/)
--
--   parser.completions() -> { [file name in completions/] = script text }
--
-- argparse's own help, usage and exits are off: the tool prints its help texts
-- (cli/help.lua) and turns argparse's messages into its own one-line usage errors, with
-- argparse's "did you mean" suggestions kept. A name the user typed is shown through
-- common.shown_arg (never what follows "=", which may be a secret).
local argparse = require "argparse"
local args = require "cptokens.cli.args"
local common = require "cptokens.cli.common"

local ipairs, pairs, type, assert = ipairs, pairs, type, assert
local usage, shown_arg = common.usage, common.shown_arg

local M = {}

local function add_option(p, o)
  if o.flag then
    p:flag("--" .. o.name, o.help):target(o.name)
  elseif o.many then
    p:option("--" .. o.name, o.help):argname(o.arg):target(o.name):count("*")
  else
    p:option("--" .. o.name, o.help):argname(o.arg):target(o.name):overwrite(false)
  end
end

--- The parser: every option of args.GLOBAL at the top (argparse lets them follow the
-- command too), each command with its positionals (none required here: the tool says what
-- is missing after --help had its chance) and its own options.
function M.build()
  local p = argparse("cptokens", "Manage the API tokens of a cPanel account.")
    :add_help(false):require_command(false):command_target("command")
  -- (targets of their own: argparse also sets result[<command name>], and `help` is one)
  p:flag("-h --help", "Show the help (of a command, after it)."):target("_help")
  p:flag("-V -v --version", "Print the version."):target("_version")
  for _, o in ipairs(args.GLOBAL) do add_option(p, o) end
  local names = {}
  for _, c in ipairs(args.COMMANDS) do names[#names + 1] = c.name end
  local function command(parent, c, label)
    local cmd = parent:command(label, c.summary .. "."):add_help(false):target("_command_" .. c.name)
    for i, arg in ipairs(c.args) do
      local a = cmd:argument(arg):target("arg" .. i)
      a:args((c.many and i == #c.args) and "*" or "?")
      if c.topics then a:choices(names) end
    end
    for _, n in ipairs(c.options) do add_option(cmd, args.option[n]) end
    return cmd
  end
  for _, c in ipairs(args.COMMANDS) do
    local cmd = command(p, c, c.name)
    if c.subcommands then
      cmd:require_command(false):command_target("subcommand")
      for _, s in ipairs(c.subcommands) do command(cmd, s, s.sub) end
    end
  end
  return p
end

--- The completion scripts argparse writes for the parser, by their file in completions/
-- (`make completions` writes them; `make install` puts them where each shell looks).
function M.completions()
  local p = M.build()
  return { ["cptokens.bash"] = p:get_bash_complete(), ["_cptokens"] = p:get_zsh_complete(),
           ["cptokens.fish"] = p:get_fish_complete() }
end

--- Writes completions() into the folder dir (for `make completions`).
function M.write_completions(dir)
  for name, text in pairs(M.completions()) do
    local f = assert(io.open(dir .. "/" .. name, "w"))
    assert(f:write(text))
    assert(f:close())
  end
end

-- " (did you mean '--json'? see 'cptokens help')" from argparse's "\nDid you mean ...?"
local function hint(tip)
  local one = tip:match("^\nDid you mean '(.-)'%?$")
  local several = tip:match("^\nDid you mean one of these: (.-)%?$")
  if one then return " (did you mean '" .. shown_arg(one) .. "'? see 'cptokens help')" end
  if several then return " (did you mean one of " .. shown_arg(several) .. "? see 'cptokens help')" end
  return " (see 'cptokens help')"
end

-- The command named on argv (the first word that is one; with its subcommand), for messages.
local function command_of(argv)
  for i, a in ipairs(argv) do
    if a == "--" then return nil end
    local cmd = args.command[a]
    if cmd then return cmd.subcommands and args.command[a .. " " .. tostring(argv[i + 1])] or cmd end
  end
end

-- argparse's message -> the tool's usage error (raises).
local function refuse(msg, argv)
  local cmd = command_of(argv)
  local name, tip = msg:match("^unknown option '(.-)'(.*)$")
  if name then
    local long = name:match("^%-%-(.+)$")
    if cmd and long and args.option[long] and not args.takes[cmd.name][long] then
      usage("%s: --%s does not apply to this command (usage: %s)", cmd.name, long, cmd.usage)
    end
    usage("unknown option %s%s", shown_arg(name), long and hint(tip) or hint("")) -- (-p: no guesses)
  end
  name, tip = msg:match("^unknown command '(.-)'(.*)$")
  if name then usage("unknown command '%s'%s", shown_arg(name), hint(tip)) end
  name = msg:match("^option '(.-)' does not take arguments$")
  if name then usage("%s takes no value", name) end
  name = msg:match("^option '(.-)' requires an argument$")
  if name then usage("%s needs a value", name) end
  name = msg:match("^option '(.-)' must be used at most 1 time")
  if name then usage("%s is given more than once", name) end
  if msg == "too many arguments" and cmd then
    usage("%s: too many arguments (usage: %s)", cmd.name, cmd.usage)
  end
  if msg:match("^argument 'COMMAND' must be one of ") then -- help TOPIC
    local seen, ended
    for _, a in ipairs(argv) do
      if seen and (ended or a:sub(1, 1) ~= "-") and a ~= "--" then
        usage("unknown command '%s' (see 'cptokens help')", shown_arg(a))
      end
      ended = ended or (seen and a == "--")
      seen = seen or a == "help"
    end
  end
  usage("%s (see 'cptokens help')", shown_arg(msg))
end

function M.parse(argv)
  local ok, res = M.build():pparse(argv)
  if not ok then refuse(res, argv) end
  local opts = {}
  for _, o in ipairs(args.GLOBAL) do opts[o.name] = res[o.name] or nil end
  for _, o in ipairs(args.LOCAL) do
    local v = res[o.name]
    if o.many and type(v) == "table" and #v == 0 then v = nil end
    opts[o.name] = v or nil
  end
  opts.help, opts.version = res._help or nil, res._version or nil
  local name = res.command
  if name and res.subcommand then name = name .. " " .. res.subcommand end
  local pos = { name }
  local cmd = args.command[name]
  for i = 1, cmd and #cmd.args or 0 do
    local v = res["arg" .. i]
    if type(v) == "table" then
      for _, x in ipairs(v) do pos[#pos + 1] = x end
    elseif v ~= nil then
      pos[#pos + 1] = v
    end
  end
  return pos, opts
end

return M
