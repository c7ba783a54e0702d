--[[
Small file and shell helpers shared by the specs, their servers (spec/support/) and the
benchmark harness (bench/). One copy of each; nothing here knows about cptokens.

  local util = require "spec.support.util"
  util.read_file(path)           -> the whole file, or nil, err
  util.write_file(path, text)    (raises on failure)
  util.write_private(path, text) the same, but the file is created mode 0600 before the text goes in
  util.shell_quote(s)            s as one sh word
  util.execute(cmd)              -> true when the shell command exited 0
  util.capture(cmd)              -> its stdout
  util.tail(path, n)             -> the file's last n lines (for error messages)
  util.tmpdir(name)              -> a new directory /tmp/cptokens-<name>.XXXXXX
  util.rmdir(dir)                removes such a directory and everything in it
  util.list_dir(dir)             -> the names in dir (ls -A), sorted
  util.file_mode(path)           -> its permission bits in octal, e.g. "600"
  util.free_ports(n)             -> n distinct TCP ports on 127.0.0.1 that nothing listens on (luasocket)
  util.integers(v)               v with lua-cjson's whole floats made integers again (Lua 5.3+)
  util.LUA                       the interpreter running this process, to run child processes with

Works under Lua 5.1 to 5.4 and LuaJIT. Paths are relative to the repository root, where
busted and bench/bench.lua run.
]]
local util = {}

function util.read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("*a")
  f:close()
  return s
end

function util.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  assert(f:write(text))
  f:close()
end

function util.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- os.execute returns the status in Lua 5.1 and LuaJIT, true|nil, "exit", code in 5.2+.
function util.execute(cmd)
  local a, _, code = os.execute(cmd)
  if type(a) == "number" then return a == 0 end
  return a == true and (code == nil or code == 0)
end

function util.capture(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  return out
end

--- Secrets go into files made with umask 077 first, so they are never readable by others.
function util.write_private(path, text)
  util.execute("umask 077; : > " .. util.shell_quote(path))
  util.write_file(path, text)
end

function util.tail(path, lines)
  local text = util.read_file(path)
  if not text then return "(no " .. path .. ")" end
  local all = {}
  for line in text:gmatch("[^\n]+") do all[#all + 1] = line end
  local out = {}
  for i = math.max(1, #all - lines + 1), #all do out[#out + 1] = all[i] end
  return table.concat(out, "\n")
end

local TMPDIR = "^/tmp/cptokens%-[%w_]+%.%w+$"

--- A fresh directory /tmp/cptokens-<name>.XXXXXX (name: letters, digits, _).
function util.tmpdir(name)
  assert(tostring(name):match("^[%w_]+$"), "util.tmpdir: a name of letters, digits and _")
  local dir = util.capture("mktemp -d /tmp/cptokens-" .. name .. ".XXXXXX"):gsub("%s+$", "")
  assert(dir:match(TMPDIR), "mktemp failed")
  return dir
end

--- Removes a directory util.tmpdir made (rm -rf); anything else (or nil) is left alone.
function util.rmdir(dir)
  if type(dir) == "string" and dir:match(TMPDIR) then util.execute("rm -rf " .. util.shell_quote(dir)) end
end

function util.list_dir(dir)
  local out = {}
  for f in util.capture("ls -A " .. util.shell_quote(dir)):gmatch("[^\n]+") do out[#out + 1] = f end
  table.sort(out)
  return out
end

function util.file_mode(path)
  return (util.capture("stat -c %a " .. util.shell_quote(path)):gsub("%s+$", ""))
end

--- Ports the kernel hands out now (bound, then closed): free to listen on, or refused.
function util.free_ports(n)
  local socket = require "socket"
  local socks, ports = {}, {}
  for i = 1, n do
    socks[i] = assert(socket.bind("127.0.0.1", 0))
    local _, port = socks[i]:getsockname()
    ports[i] = tonumber(port)
  end
  for _, s in ipairs(socks) do s:close() end
  return ports
end

--- lua-cjson decodes every number as a float; gives Lua 5.3+ integers back (tables in place).
function util.integers(v)
  if type(v) == "table" then
    for k, x in pairs(v) do v[k] = util.integers(x) end
  elseif type(v) == "number" and math.tointeger then
    return math.tointeger(v) or v
  end
  return v
end

-- The interpreter running this suite (lua5.x, luajit, or make test-asan's build/asan/lua).
util.LUA = os.getenv("CPTOKENS_LUA")
  or (type(arg) == "table" and type(arg[-1]) == "string" and arg[-1])
  or (rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+")))

return util
