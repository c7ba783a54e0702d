--[[
cptokens.batch() against the bench server's 50 ms replies, for `make bench`.

  lua5.4 bench/lua_batch.lua URL CAFILE HEADERFILE RUNS SEQ_RUNS [JOBS CONCURRENCY ACCOUNTS]

URL is the server's /slow base. ACCOUNTS clients (users bench01..bench20, the
bench's dummy token; the fixed reply ignores credentials) share JOBS list jobs
round-robin. After one untimed batch, prints for each of RUNS timed batches
"batch <start epoch> <end epoch>" (seconds), then "one <seconds>" for a batch of
CONCURRENCY jobs (one round: the connection set-up shows there), then for each
of SEQ_RUNS "seq <seconds>" for the same jobs run one after another with
client:list() (each client's connection already open). Every result is checked.
]]
local build = os.getenv("CPTOKENS_BUILD") or "build/5.4"
package.cpath = build .. "/?.so;" .. package.cpath
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path

local cptokens = require "cptokens"
local socket = require "socket"

local url, cafile, headerfile = arg[1], arg[2], arg[3]
local runs, seq_runs = tonumber(arg[4]), tonumber(arg[5])
local njobs, concurrency, naccounts = tonumber(arg[6] or 200), tonumber(arg[7] or 20), tonumber(arg[8] or 20)

local f = assert(io.open(headerfile, "r"))
local token = f:read("*a"):match("Authorization: cpanel [^:\r\n]+:([^\r\n]+)")
f:close()

local clients = {}
for i = 1, naccounts do
  clients[i] = assert(cptokens.new{ url = url, user = ("bench%02d"):format(i), token = token, cafile = cafile })
end
local function make_jobs(n)
  local jobs = {}
  for i = 1, n do jobs[i] = { client = clients[(i - 1) % naccounts + 1], op = "list" } end
  return jobs
end
local jobs = make_jobs(njobs)

local function check(results, n)
  assert(#results == n, "batch: wrong number of results")
  for i = 1, n do
    local r = results[i]
    if not r.ok then error("batch job " .. i .. ": " .. tostring(r.err)) end
    assert(#r.value == 10, "batch job " .. i .. ": not 10 tokens")
  end
end

check(cptokens.batch(jobs, { concurrency = concurrency }), njobs)
for _ = 1, runs do
  collectgarbage("collect")
  local t0 = socket.gettime()
  local results = cptokens.batch(jobs, { concurrency = concurrency })
  local t1 = socket.gettime()
  check(results, njobs)
  io.write(string.format("batch %.6f %.6f\n", t0, t1))
  io.flush()
end

local one = make_jobs(concurrency)
collectgarbage("collect")
local t0 = socket.gettime()
check(cptokens.batch(one, { concurrency = concurrency }), concurrency)
io.write(string.format("one %.6f\n", socket.gettime() - t0))

for _, c in ipairs(clients) do assert(c:list()) end
for _ = 1, seq_runs do
  collectgarbage("collect")
  t0 = socket.gettime()
  for i = 1, njobs do
    local list, err = jobs[i].client:list()
    if not list then error(tostring(err)) end
  end
  io.write(string.format("seq %.6f\n", socket.gettime() - t0))
  io.flush()
end
for _, c in ipairs(clients) do c:close() end
