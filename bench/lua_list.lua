--[[
client:list() in a loop, for `make bench` (run from the repository root).

  lua5.4 bench/lua_list.lua MODE URL CAFILE HEADERFILE ARGS...
    time WARMUP N   prints the seconds taken by N calls (after WARMUP untimed ones)
    loop N          N calls, nothing printed (for valgrind and callgrind)
    rss N1 N2       prints VmRSS in KiB of this process after N1 calls and after N2 calls in all

HEADERFILE holds "Authorization: cpanel USER:TOKEN" (the bench's dummy credential,
kept off argv). Every reply is checked: 10 tokens (or any count with MODE loop).
]]
local build = os.getenv("CPTOKENS_BUILD") or "build/5.4"
package.cpath = build .. "/?.so;" .. package.cpath
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path

local cptokens = require "cptokens"
local socket = require "socket"

local mode, url, cafile, headerfile = arg[1], arg[2], arg[3], arg[4]
local f = assert(io.open(headerfile, "r"))
local user, token = f:read("*a"):match("Authorization: cpanel ([^:\r\n]+):([^\r\n]+)")
f:close()
assert(user and token, "no Authorization line in " .. headerfile)

local client = assert(cptokens.new{ url = url, user = user, token = token, cafile = cafile })

local function calls(n)
  for _ = 1, n do
    local list, err = client:list()
    if not list then error(tostring(err)) end
  end
end

-- VmRSS of this very process: /proc/self is the Lua interpreter reading it.
local function rss_kib()
  local s = assert(io.open("/proc/self/status", "r"))
  local kib = s:read("*a"):match("VmRSS:%s*(%d+)")
  s:close()
  return tonumber(kib)
end

if mode == "time" then
  local warmup, n = tonumber(arg[5]), tonumber(arg[6])
  calls(warmup)
  assert(#client:list() == 10)
  local t0 = socket.gettime()
  calls(n)
  io.write(string.format("%.9f\n", socket.gettime() - t0))
elseif mode == "loop" then
  calls(tonumber(arg[5]))
elseif mode == "rss" then
  local n1, n2 = tonumber(arg[5]), tonumber(arg[6])
  calls(n1)
  collectgarbage("collect")
  collectgarbage("collect")
  local a = rss_kib()
  calls(n2 - n1)
  collectgarbage("collect")
  collectgarbage("collect")
  io.write(string.format("%d %d\n", a, rss_kib()))
else
  error("usage: lua_list.lua time|loop|rss URL CAFILE HEADERFILE ...")
end
client:close()
