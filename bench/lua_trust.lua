--[[
Trust and shared connections, for `make bench` (run from the repository root).

  lua5.4 bench/lua_trust.lua MODE KIND PATH HEADERFILE ROUNDS URL...
    seq N        N accounts in sequence: for each, a new client, one list(), close()
    batch C      one list job per URL (each URL a "server"), one client each, concurrency C
    accounts N C N accounts of the first URL through one batch, concurrency C

KIND is cafile or capath and PATH its value: the trust every client of the run has.
Prints "cold <seconds>" for the first round (it loads the trust store: once per process),
then "round <seconds>" for each of ROUNDS timed rounds. Before every round the pooled
connections are closed (cptokens.close_idle()), so each round opens its connections and
does its TLS handshakes anew: what a round measures is the cost of trust per connection
and per client, the loaded store aside. Every reply is checked (10 tokens).

HEADERFILE holds "Authorization: cpanel USER:TOKEN" (the bench's dummy credential, kept
off argv; the bench server ignores it).
]]
local build = os.getenv("CPTOKENS_BUILD") or "build/5.4"
package.cpath = build .. "/?.so;" .. package.cpath
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path

local cptokens = require "cptokens"
local socket = require "socket"

local mode, kind, path, headerfile, rounds = arg[1], arg[2], arg[3], arg[4], tonumber(arg[5])
assert(kind == "cafile" or kind == "capath", "KIND must be cafile or capath")
local f = assert(io.open(headerfile, "r"))
local token = f:read("*a"):match("Authorization: cpanel [^:\r\n]+:([^\r\n]+)")
f:close()

local function new(url, user)
  local c, err = cptokens.new { url = url, user = user, token = token, [kind] = path }
  return assert(c, err and tostring(err))
end

local function check(list, err, what)
  if not list then error(what .. ": " .. tostring(err)) end
  assert(#list == 10, what .. ": not 10 tokens")
end

local run
if mode == "seq" then
  local url, n = arg[7], tonumber(arg[6])
  run = function()
    for i = 1, n do
      local c = new(url, ("acct%04d"):format(i))
      local list, err = c:list()
      check(list, err, "account " .. i)
      c:close()
    end
  end
elseif mode == "batch" then
  local concurrency = tonumber(arg[6])
  local urls = {}
  for i = 7, #arg do urls[#urls + 1] = arg[i] end
  run = function()
    local jobs = {}
    for i, url in ipairs(urls) do jobs[i] = { client = new(url, ("acct%04d"):format(i)), op = "list" } end
    local results = cptokens.batch(jobs, { concurrency = concurrency })
    for i, r in ipairs(results) do check(r.value, r.err, "job " .. i) end
    for _, j in ipairs(jobs) do j.client:close() end
  end
elseif mode == "accounts" then
  local n, concurrency, url = tonumber(arg[6]), tonumber(arg[7]), arg[8]
  run = function()
    local jobs = {}
    for i = 1, n do jobs[i] = { client = new(url, ("acct%04d"):format(i)), op = "list" } end
    local results = cptokens.batch(jobs, { concurrency = concurrency })
    for i, r in ipairs(results) do check(r.value, r.err, "job " .. i) end
    for _, j in ipairs(jobs) do j.client:close() end
  end
else
  error("usage: lua_trust.lua seq|batch|accounts KIND PATH HEADERFILE ROUNDS ...")
end

local function timed()
  cptokens.close_idle()
  collectgarbage("collect")
  local t0 = socket.gettime()
  run()
  return socket.gettime() - t0
end

io.write(("cold %.6f\n"):format(timed()))
for _ = 1, rounds do io.write(("round %.6f\n"):format(timed())) end
