-- The fuzz corpora (fuzz/corpus/), replayed through the public entry points on every run of
-- the suite (and so under valgrind and ASan too), with the contracts the fuzz targets check.
-- An input that once crashed or broke a contract is added to the corpus: this spec then keeps
-- it fixed. The input formats are described at the top of fuzz/fuzz_response.c and
-- fuzz/fuzz_request.c.
local cptokens = require "cptokens"
local core = require "cptokens.core"
local util = require "spec.support.util"

local OPS = { [0] = "create", "list", "rename", "revoke" }
local STATUSES = { 200, 200, 200, 200, 201, 204, 301, 302, 401, 403, 404, 500, 503 }
local CTYPES = { [0] = "application/json", false, "text/html; charset=utf-8", "application/json; charset=UTF-8" }
local KINDS = core.KINDS -- kind -> true, from the C core

local function files(dir)
  local p = assert(io.popen("ls " .. dir .. " 2>/dev/null"))
  local out = {}
  for name in p:lines() do out[#out + 1] = name end
  p:close()
  assert(#out > 0, "no corpus in " .. dir)
  return out
end

local function read(path) return assert(util.read_file(path)) end

local function bits(byte, shift, mask) return math.floor(byte / 2 ^ shift) % (mask + 1) end

local function check_error(label, v, err)
  assert.is_nil(v, label)
  assert.is_true(cptokens.is_error(err), label .. ": " .. tostring(err))
  assert.is_true(KINDS[err.kind] ~= nil, label .. ": kind " .. tostring(err.kind))
  assert.are.equal("string", type(err.message))
  assert.is_nil(err.message:find("[%z\1-\31\127]"), label .. ": one line: " .. err.message)
end

describe("fuzz corpus: replies through core.response", function()
  for _, name in ipairs(files("fuzz/corpus/response")) do
    it(name, function()
      local data = read("fuzz/corpus/response/" .. name)
      if #data < 2 then return end
      local b0 = data:byte(1)
      local op = OPS[bits(b0, 0, 3)]
      local rq = { op = op, whm = bits(b0, 2, 1) == 1, name = "deploy" }
      if op == "create" and bits(b0, 5, 1) == 1 then rq.expires_at = 1900000000 end
      local status = STATUSES[data:byte(2) % #STATUSES + 1]
      local ctype = CTYPES[bits(b0, 3, 3)] or nil
      local v, err = core.response(rq, status, ctype, data:sub(3))
      if v == nil then
        check_error(name, v, err)
      elseif op == "list" then
        for _, t in ipairs(v) do
          assert.are.equal("string", type(t.name))
          assert.is_nil(t.token, "a list never holds a secret")
        end
      elseif op == "create" then
        assert.are.equal("string", type(v.token))
      else
        assert.is_true(v)
      end
    end)
  end

  it("an API error message stays one line whatever the server sends (found by fuzz_response)", function()
    local body = '{"data":null,"errors":["line one\\nline two\\r\\u001b[31m","other"],"status":0}'
    local v, err = core.response({ op = "rename", name = "a" }, 200, "application/json", body)
    check_error("multi-line", v, err)
    assert.are.equal("api", err.kind)
    assert.are.same({ "line one\nline two\r\27[31m", "other" }, err.errors) -- kept as sent
  end)
end)

describe("fuzz corpus: requests through cptokens.new and _prepare", function()
  -- Splits an input as fuzz_request.c does.
  local function parse(data)
    local b0, pos, pieces = data:byte(1), 2, {}
    for i = 1, 7 do
      local n = data:byte(pos) or 0
      pieces[i] = data:sub(pos + 1, pos + n)
      pos = pos + 1 + math.min(n, #data - pos)
    end
    local expires = 0
    if #data - pos + 1 >= 8 then
      -- big-endian, signed: integers wrap into it by themselves (5.3+), floats need a hand
      for i = 0, 7 do expires = expires * 256 + data:byte(pos + i) end
      if not math.type and data:byte(pos) >= 128 then expires = expires - 2 ^ 64 end
    end
    return OPS[bits(b0, 0, 3)], bits(b0, 2, 3), pieces, expires
  end

  for _, name in ipairs(files("fuzz/corpus/request")) do
    it(name, function()
      local op, cred, p, expires = parse(read("fuzz/corpus/request/" .. name))
      local opts = { url = p[1], user = p[2] }
      if cred == 0 then opts.token = p[4]
      elseif cred == 2 then opts.whm_token, opts.whm_user = p[4], (p[3] ~= "" and p[3] or nil)
      else opts.password = p[4] end
      if cred == 3 then opts.otp = p[5] end
      local c, err = cptokens.new(opts)
      if not c then return check_error(name, c, err) end
      local args = { op }
      if op ~= "list" then args[2] = p[6] end
      if op == "rename" then args[3] = p[7] end
      if op == "create" and expires ~= 0 then args[3] = expires end
      local ok, rq
      ok, rq, err = pcall(c._prepare, c, args[1], args[2], args[3])
      c:close()
      if not ok then -- misuse raises: only an expiry that is not a whole number can get here
        assert.is_truthy(tostring(rq):find("expires_at must be a whole number", 1, true), tostring(rq))
        return
      end
      if not rq then return check_error(name, rq, err) end
      assert.is_nil(rq.url:find("[%z\1-\32\127]"), "url: " .. rq.url)
      for k, v in pairs(rq.headers) do
        assert.is_nil(v:find("[%z\1-\31\127]"), "header " .. k)
      end
      assert.is_nil(rq.body:find("[^%w%-%._~%%=&]"), "body: " .. rq.body)
    end)
  end
end)
