--[[
cptokens.fleet audits against the bench server's fleet bases, for `make bench`.

  lua5.4 bench/lua_fleet.lua URLS_FILE CAFILE HEADERFILE ACCOUNTS_EACH PER_SERVER CONCURRENCY

URLS_FILE holds one WHM base URL a line (each one "server": its own host:port). One audit
of every account of every server; prints "fleet <seconds> <accounts reached> <failures>
<tokens> <VmHWM KiB>" (the peak resident size of this process, read from /proc/self/status
at the end). Every account must be reached and every token counted, or it fails.
]]
local build = os.getenv("CPTOKENS_BUILD") or "build/5.4"
package.cpath = build .. "/?.so;" .. package.cpath
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path

local cptokens = require "cptokens"
local socket = require "socket"
local bench_server = require "bench.server"

local urls_file, cafile, headerfile = arg[1], arg[2], arg[3]
local each, per_server, concurrency = tonumber(arg[4]), tonumber(arg[5]), tonumber(arg[6])

local f = assert(io.open(headerfile, "r"))
local token = f:read("*a"):match("Authorization: cpanel [^:\r\n]+:([^\r\n]+)")
f:close()

local servers = {}
for url in assert(io.open(urls_file, "r")):lines() do
  servers[#servers + 1] = { label = "s" .. #servers + 1, url = url, user = "root", token = token, cafile = cafile,
                            timeout = 60 }
end

local t0 = socket.gettime()
local fleet = cptokens.fleet(servers, { per_server = per_server, concurrency = concurrency,
                                       chunk = tonumber(os.getenv("FLEET_CHUNK") or "") })
local report = fleet:audit { within = "14d" }
local t1 = socket.gettime()
fleet:close()

local s = report.summary
local want = #servers * each
if s.reached ~= want or s.failed + s.not_sent + s.servers_failed ~= 0
  or s.tokens ~= want * bench_server.FLEET_TOKENS then
  local first = report.failures[1]
  io.stderr:write(("lua_fleet: reached %d of %d, %d failed, %d not sent, %d tokens; first failure: %s\n")
    :format(s.reached, want, s.failed, s.not_sent, s.tokens, first and tostring(first.err) or "none"))
  os.exit(1)
end
local hwm = 0
for line in io.lines("/proc/self/status") do
  hwm = tonumber(line:match("^VmHWM:%s*(%d+)")) or hwm
end
print(("fleet %.4f %d %d %d %d"):format(t1 - t0, s.reached, s.failed, s.tokens, hwm))
