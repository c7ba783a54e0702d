--[[
A 10,000-token list() against cjson.decode of the same body, for `make bench`.

  lua5.4 bench/lua_big.lua URL CAFILE HEADERFILE BIGBODY SMALLBODY SAMPLES

URL is the server's /big base, which answers BIGBODY's bytes. After two
untimed rounds, takes SAMPLES alternating samples, each after a full garbage
collection: prints "list <seconds>" for one client:list() (HTTPS transfer,
decoding, checks, shaping and sorting of 10,000 tokens) and "decode <seconds>"
for one cjson.decode(BIGBODY). Then "small <seconds>": cjson.decode of
SMALLBODY (the 10-token reply), per call, median of 5 rounds of 5,000.
]]
local build = os.getenv("CPTOKENS_BUILD") or "build/5.4"
package.cpath = build .. "/?.so;" .. package.cpath
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path

local cptokens = require "cptokens"
local cjson = require "cjson"
local socket = require "socket"

local url, cafile, headerfile, bigbody, smallbody = arg[1], arg[2], arg[3], arg[4], arg[5]
local samples = tonumber(arg[6])

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local f = assert(io.open(headerfile, "r"))
local user, token = f:read("*a"):match("Authorization: cpanel ([^:\r\n]+):([^\r\n]+)")
f:close()
local client = assert(cptokens.new{ url = url, user = user, token = token, cafile = cafile })
local big, small = slurp(bigbody), slurp(smallbody)

local function list()
  local l, err = client:list()
  if not l then error(tostring(err)) end
  assert(#l == 10000, "the big list does not have 10,000 tokens")
end

for _ = 1, 2 do
  list()
  assert(#cjson.decode(big).data == 10000)
end
for _ = 1, samples do
  collectgarbage("collect")
  local t0 = socket.gettime()
  list()
  local t1 = socket.gettime()
  collectgarbage("collect")
  local t2 = socket.gettime()
  cjson.decode(big)
  local t3 = socket.gettime()
  io.write(string.format("list %.9f\ndecode %.9f\n", t1 - t0, t3 - t2))
end

local times = {}
for r = 1, 5 do
  collectgarbage("collect")
  local t0 = socket.gettime()
  for _ = 1, 5000 do cjson.decode(small) end
  times[r] = (socket.gettime() - t0) / 5000
end
table.sort(times)
io.write(string.format("small %.9f\n", times[3]))
client:close()
