-- Proves the fake cPanel/WHM server (spec/support) behaves as /work/shared/cpanel-api.md says.
-- Talks to it with the curl command line, verifying TLS through the test CA.
local H = require "spec.helpers"
local server = require "spec.support.server"
local cjson = require "cjson"
local socket = require "socket"

local LQ, RQ = "\226\128\156", "\226\128\157"
local function q(s) return LQ .. s .. RQ end

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function urlencode(s)
  return (tostring(s):gsub("[^%w%-_%.~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function query(params)
  local parts = {}
  for k, v in pairs(params or {}) do parts[#parts + 1] = urlencode(k) .. "=" .. urlencode(v) end
  table.sort(parts)
  return table.concat(parts, "&")
end

describe("fake cPanel server", function()
  local srv

  setup(function() srv = server.start() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  -- opts: auth = {user, token} | {user, password} | {whm = user, token}, headers, form (POST), query,
  -- method, max_time, no_ca, extra (raw curl args)
  local function curl(url, opts)
    opts = opts or {}
    local args = { "curl", "-sS", "--max-time", tostring(opts.max_time or 10) }
    if not opts.no_ca then args[#args + 1] = "--cacert " .. sh_quote(srv.cafile) end
    local headers = {}
    for _, h in ipairs(opts.headers or {}) do headers[#headers + 1] = h end
    local a = opts.auth
    if a and a.password then
      args[#args + 1] = "-u " .. sh_quote(a[1] .. ":" .. a.password)
    elseif a and a.whm then
      headers[#headers + 1] = "Authorization: whm " .. a.whm .. ":" .. a.token
    elseif a then
      headers[#headers + 1] = "Authorization: " .. (a.scheme or "cpanel") .. " " .. a[1] .. ":" .. a.token
    end
    for _, h in ipairs(headers) do args[#args + 1] = "-H " .. sh_quote(h) end
    if opts.form then args[#args + 1] = "--data " .. sh_quote(query(opts.form)) end
    if opts.method then args[#args + 1] = "-X " .. opts.method end
    if opts.extra then args[#args + 1] = opts.extra end
    if opts.query then url = url .. "?" .. query(opts.query) end
    args[#args + 1] = "-w " .. sh_quote("\n@@%{http_code}@@%{content_type}@@%{redirect_url}@@")
    args[#args + 1] = sh_quote(url) .. " 2>/dev/null; echo $?"
    local t0 = socket.gettime()
    local p = assert(io.popen(table.concat(args, " ")))
    local out = p:read("*a")
    p:close()
    local body, code, ctype, location, rc = out:match("^(.*)\n@@(%d+)@@(.-)@@(.-)@@(%d+)\n$")
    assert(body, "unexpected curl output: " .. out)
    local r = { body = body, code = tonumber(code), ctype = ctype, location = location, rc = tonumber(rc),
      elapsed = socket.gettime() - t0 }
    function r.json() return cjson.decode(body) end
    return r
  end

  local alice = { "alice", password = H.ALICE_PW }

  -- call a Tokens function on the cPanel port; how = "get" (default) or "post"
  local function uapi(func, params, auth, how)
    local opts = { auth = auth or alice }
    if how == "post" then opts.form = params else opts.query = params end
    local r = curl(srv.url .. "/execute/Tokens/" .. func, opts)
    assert.equal(200, r.code)
    assert.equal("application/json", r.ctype)
    return r.json(), r
  end

  local function create(name, expires_at, auth)
    local res = uapi("create_full_access", { name = name, expires_at = expires_at }, auth)
    assert.equal(1, res.status, res.errors ~= cjson.null and res.errors[1] or nil)
    return res.data.token
  end

  local function failure(res, message)
    assert.equal(0, res.status)
    assert.equal(cjson.null, res.data)
    assert.same({ message }, res.errors)
  end

  local function names(list)
    local out = {}
    for _, t in ipairs(list) do out[#out + 1] = t.name end
    table.sort(out)
    return out
  end

  local function is_denied(r)
    assert.equal(401, r.code)
    assert.matches("^text/html", r.ctype)
    assert.matches("^<html><head><title>Access denied</title>", r.body)
  end

  describe("TLS", function()
    it("verifies through the CA for the IP and the localhost name", function()
      assert.equal(401, curl(srv.url .. "/execute/Tokens/list").code)
      assert.equal(401, curl(srv.localhost_url .. "/execute/Tokens/list").code)
      assert.equal(403, curl(srv.whm_url .. "/json-api/cpanel").code)
      assert.equal(200, curl(srv.other_url .. "/x").code)
    end)

    it("fails verification without the CA", function()
      local r = curl(srv.url .. "/execute/Tokens/list", { no_ca = true })
      assert.equal(60, r.rc)
      assert.equal(0, r.code)
    end)

    it("serves the same handler over plain HTTP", function()
      local r = curl(srv.http_url .. "/execute/Tokens/list", { auth = alice })
      assert.equal(200, r.code)
      assert.equal(1, r.json().status)
      assert.equal(1, srv:count("http"))
    end)
  end)

  describe("authentication", function()
    it("denies missing, wrong and unknown credentials with 401 HTML", function()
      is_denied(curl(srv.url .. "/execute/Tokens/list"))
      is_denied(curl(srv.url .. "/execute/Tokens/list", { auth = { "alice", password = "nope" } }))
      is_denied(curl(srv.url .. "/execute/Tokens/list", { auth = { "mallory", password = "x" } }))
      is_denied(curl(srv.url .. "/execute/Tokens/list", { auth = { "alice", token = "WRONGTOKEN" } }))
      is_denied(curl(srv.url .. "/execute/Tokens/list", { headers = { "Authorization: Bearer abc" } }))
      is_denied(curl(srv.url .. "/execute/Tokens/list", { auth = { whm = "root", token = srv.accounts.root.token } }))
    end)

    it("accepts a token with a case-insensitive scheme", function()
      local token = create("t1")
      for _, scheme in ipairs({ "cpanel", "CPanel", "CPANEL" }) do
        local r = curl(srv.url .. "/execute/Tokens/list", { auth = { "alice", token = token, scheme = scheme } })
        assert.equal(200, r.code)
        assert.equal(1, r.json().status)
      end
      -- a token belongs to its account only
      is_denied(curl(srv.url .. "/execute/Tokens/list", { auth = { "bob", token = token } }))
    end)

    it("denies a revoked token, and a token may revoke itself", function()
      local token = create("self")
      local res = uapi("revoke", { name = "self" }, { "alice", token = token }, "post")
      assert.equal(1, res.data)
      is_denied(curl(srv.url .. "/execute/Tokens/list", { auth = { "alice", token = token } }))
    end)

    it("denies expired tokens and honours never-expiring ones", function()
      local now = os.time()
      local cases = {
        { "past", tostring(now - 10), false }, { "pastnum", now - 10, false },
        { "future", tostring(now + 3600), true }, { "futurenum", now + 3600, true },
        { "empty", "", true }, { "zero", "0", true }, { "null", cjson.null, true }, { "absent", nil, true },
      }
      for i, c in ipairs(cases) do
        local value = string.format("TOKEN%027d", i)
        srv:seed_token("alice", { name = c[1], token = value, expires_at = c[2] })
        local r = curl(srv.url .. "/execute/Tokens/list", { auth = { "alice", token = value } })
        assert.equal(c[3] and 200 or 401, r.code, c[1])
      end
      -- expired tokens stay listed until revoked
      assert.same({ "absent", "empty", "future", "futurenum", "null", "past", "pastnum", "zero" },
        names(uapi("list").data))
    end)

    it("requires the OTP header for bob's password but not for his tokens", function()
      local bob = { "bob", password = H.BOB_PW }
      is_denied(curl(srv.url .. "/execute/Tokens/list", { auth = bob }))
      is_denied(curl(srv.url .. "/execute/Tokens/list", { auth = bob, headers = { "X-CPANEL-OTP: 000000" } }))
      local r = curl(srv.url .. "/execute/Tokens/create_full_access",
        { auth = bob, headers = { "X-CPANEL-OTP: 424242" }, form = { name = "bobtok" } })
      assert.equal(200, r.code)
      local token = r.json().data.token
      r = curl(srv.url .. "/execute/Tokens/list", { auth = { "bob", token = token } })
      assert.equal(200, r.code)
      assert.same({ "bobtok" }, names(r.json().data))
      local log = srv:log()
      assert.is_false(log[1].otp_present)
      assert.is_true(log[2].otp_present)
      assert.is_false(log[#log].otp_present)
    end)

    it("limits token auth to /execute and /json-api/cpanel", function()
      local token = create("t")
      for _, path in ipairs({ "/frontend/jupiter/index.html", "/json-api/listaccts", "/" }) do
        local r = curl(srv.url .. path, { auth = { "alice", token = token } })
        assert.equal(403, r.code)
        assert.equal("Token authentication allows access to UAPI or API 2 calls only.", r.body)
      end
      assert.equal(200, curl(srv.url .. "/frontend/jupiter/index.html", { auth = alice }).code)
      -- /json-api/cpanel on the cPanel port answers like WHM, as the authenticated user
      local r = curl(srv.url .. "/json-api/cpanel", { auth = { "alice", token = token }, query = {
        cpanel_jsonapi_apiversion = 3, cpanel_jsonapi_module = "Tokens", cpanel_jsonapi_func = "list" } })
      assert.equal(200, r.code)
      local res = r.json()
      assert.equal("list", res.func)
      assert.same({ "t" }, names(res.result.data))
      r = curl(srv.url .. "/json-api/cpanel", { auth = { "alice", token = token }, query = {
        cpanel_jsonapi_user = "bob", cpanel_jsonapi_apiversion = 3, cpanel_jsonapi_module = "Tokens",
        cpanel_jsonapi_func = "list" } })
      assert.equal("User parameter is invalid or was not supplied", r.json().error)
    end)
  end)

  describe("Tokens", function()
    it("creates over GET with the exact envelope", function()
      local t0 = os.time()
      local res, r = uapi("create_full_access", { name = "ci" })
      assert.matches('^{"data":{.*},"errors":null,"messages":null,"warnings":null,"metadata":{},"status":1}$',
        r.body)
      assert.matches("^[0-9A-Z]+$", res.data.token)
      assert.equal(32, #res.data.token)
      assert.equal(cjson.null, res.data.whitelist_ips)
      assert.is_true(res.data.create_time >= t0 - 1 and res.data.create_time <= os.time() + 1)
      assert.not_equal(res.data.token, create("ci2"))
      assert.equal(res.data.token, srv:tokens("alice")[1].token)
    end)

    it("merges query and form on POST, and lists expires_at as sent", function()
      local exp = tostring(os.time() + 86400)
      local r = curl(srv.url .. "/execute/Tokens/create_full_access?expires_at=" .. exp,
        { auth = alice, form = { name = "merged" } })
      assert.equal(1, r.json().status)
      create("forever")
      create("empty", "")
      create("zero", "0")
      local res, raw = uapi("list", nil, nil, "post")
      assert.matches('"features":%[%]', raw.body)
      local by = {}
      for _, t in ipairs(res.data) do by[t.name] = t end
      assert.equal(exp, by.merged.expires_at)
      assert.matches('"expires_at":"' .. exp .. '"', raw.body)
      assert.equal(cjson.null, by.forever.expires_at)
      assert.equal("", by.empty.expires_at)
      assert.equal("0", by.zero.expires_at)
      for _, t in pairs(by) do
        assert.equal(1, t.has_full_access)
        assert.same({}, t.features)
        assert.equal(cjson.null, t.whitelist_ips)
        assert.is_number(t.create_time)
      end
      local rec = srv:log()[1]
      assert.same({ name = "merged", expires_at = exp }, rec.args)
      assert.equal("POST", rec.method)
      assert.equal("application/x-www-form-urlencoded", rec.content_type)
    end)

    it("lists in arbitrary order", function()
      for i = 1, 8 do create("n" .. i) end
      local orders = {}
      for _ = 1, 15 do
        local list = uapi("list").data
        assert.equal(8, #list)
        local o = {}
        for i, t in ipairs(list) do o[i] = t.name end
        orders[table.concat(o, ",")] = true
      end
      local distinct = 0
      for _ in pairs(orders) do distinct = distinct + 1 end
      assert.is_true(distinct > 1)
    end)

    it("renames without changing the secret", function()
      local token = create("old")
      local res = uapi("rename", { name = "old", new_name = "new" }, nil, "post")
      assert.equal(1, res.status)
      assert.equal(cjson.null, res.data)
      local stored = srv:tokens("alice")
      assert.equal(1, #stored)
      assert.same({ "new", token }, { stored[1].name, stored[1].token })
      assert.equal(200, curl(srv.url .. "/execute/Tokens/list", { auth = { "alice", token = token } }).code)
    end)

    it("validates rename in order", function()
      create("a")
      create("b")
      failure(uapi("rename", { name = "a" }), "Provide the " .. q("new_name") .. " argument.")
      failure(uapi("rename", { name = "zz", new_name = "" }), "The " .. q("new_name") .. " argument cannot be empty.")
      failure(uapi("rename", { new_name = "c" }), "Provide the " .. q("name") .. " argument.")
      failure(uapi("rename", { name = "a", new_name = "a" }),
        q("new_name") .. " must be a different value from " .. q("name") .. ".")
      failure(uapi("rename", { name = "zz", new_name = "bad name" }), "The API token " .. q("zz") .. " does not exist.")
      failure(uapi("rename", { name = "a", new_name = "bad name" }), q("bad name") .. " is not a valid API token name."
        .. " An API token name must not be longer than 50 characters and may only contain the following"
        .. " characters: a-z A-Z 0-9 _ -")
      failure(uapi("rename", { name = "a", new_name = "b" }), "An API token with the name " .. q("b") .. " already exists.")
    end)

    it("revokes with data 1, then 0", function()
      create("r")
      local res = uapi("revoke", { name = "r" })
      assert.equal(1, res.status)
      assert.equal(1, res.data)
      res = uapi("revoke", { name = "r" }, nil, "post")
      assert.equal(1, res.status)
      assert.equal(0, res.data)
      failure(uapi("revoke", {}), "Provide the " .. q("name") .. " argument.")
      assert.same({}, uapi("list").data)
    end)

    it("validates create in order, with exact messages", function()
      local now = os.time()
      local bad_name = function(n)
        return q(n) .. " is not a valid API token name. An API token name must not be longer than 50 characters"
          .. " and may only contain the following characters: a-z A-Z 0-9 _ -"
      end
      failure(uapi("create_full_access", {}), "Provide the " .. q("name") .. " argument.")
      failure(uapi("create_full_access", { name = "", expires_at = "x" }),
        "The " .. q("name") .. " argument cannot be empty.")
      -- expires_at is validated before the name
      failure(uapi("create_full_access", { name = "bad name", expires_at = "abc" }),
        q("abc") .. " is not a valid UNIX epoch timestamp.")
      failure(uapi("create_full_access", { name = "bad name", expires_at = tostring(now - 5) }),
        "The " .. q(tostring(now - 5)) .. " value must be a future date.")
      failure(uapi("create_full_access", { name = "ok", expires_at = "-5" }), q("-5") .. " is not a valid UNIX epoch timestamp.")
      failure(uapi("create_full_access", { name = "ok", expires_at = "67767976233522000" }),
        q("67767976233522000") .. " is not a valid UNIX epoch timestamp.")
      failure(uapi("create_full_access", { name = "ok", expires_at = "99999999999999999999" }),
        q("99999999999999999999") .. " is not a valid UNIX epoch timestamp.")
      failure(uapi("create_full_access", { name = "bad name" }), bad_name("bad name"))
      failure(uapi("create_full_access", { name = "bad/slash" }), bad_name("bad/slash"))
      failure(uapi("create_full_access", { name = string.rep("a", 51) }), bad_name(string.rep("a", 51)))
      create(string.rep("a", 50))
      create("Max_exp-1", "67767976233521999")
      failure(uapi("create_full_access", { name = "Max_exp-1" }),
        "A conflicting API token with the name " .. q("Max_exp-1") .. " already exists.")
      local by = {}
      for _, t in ipairs(uapi("list").data) do by[t.name] = t end
      assert.equal("67767976233521999", by["Max_exp-1"].expires_at)
    end)

    it("answers feature-off for carol on every function", function()
      local carol = { "carol", password = H.CAROL_PW }
      for _, func in ipairs({ "create_full_access", "list", "rename", "revoke" }) do
        failure(uapi(func, { name = "x", new_name = "y" }, carol), "You do not have the feature " .. q("apitokens") .. ".")
      end
    end)

    it("answers unknown modules and functions with a failure envelope", function()
      local res = uapi("update", { name = "x" })
      assert.equal(0, res.status)
      assert.matches("update", res.errors[1])
      local r = curl(srv.url .. "/execute/Nope/list", { auth = alice })
      assert.equal(200, r.code)
      assert.equal(0, r.json().status)
      assert.matches("Nope", r.json().errors[1])
    end)

    it("keeps state per account", function()
      local bob = { "bob", token = "BOBTOKEN000000000000000000000000" }
      srv:seed_token("bob", { name = "bobs", token = bob.token })
      create("alices")
      assert.same({ "alices" }, names(uapi("list").data))
      assert.same({ "bobs" }, names(uapi("list", nil, bob).data))
      assert.same({}, srv:tokens("carol"))
    end)

    it("sends status and create_time as strings in loose mode", function()
      srv:set({ loose = true })
      local res, r = uapi("create_full_access", { name = "l" })
      assert.equal("1", res.status)
      assert.is_string(res.data.create_time)
      assert.matches('"status":"1"}$', r.body)
      assert.equal("0", uapi("revoke", {}).status)
      assert.is_string(uapi("list").data[1].create_time)
      srv:reset()
      assert.equal(1, uapi("list").status)
    end)

    it("echoes seeded expires_at values raw", function()
      srv:seed_token("alice", { name = "num", expires_at = 1784131088 })
      srv:seed_token("alice", { name = "str", expires_at = "1784131088", create_time = 1700000000 })
      local _, r = uapi("list")
      assert.matches('"name":"num","create_time":%d+,"expires_at":1784131088,', r.body)
      assert.matches('"name":"str","create_time":1700000000,"expires_at":"1784131088",', r.body)
    end)
  end)

  describe("WHM", function()
    local function whm(user, func, params, auth, how)
      local p = { cpanel_jsonapi_user = user, cpanel_jsonapi_apiversion = 3, cpanel_jsonapi_module = "Tokens",
        cpanel_jsonapi_func = func }
      for k, v in pairs(params or {}) do p[k] = v end
      local opts = { auth = auth or { whm = "root", token = srv.accounts.root.token } }
      if how == "post" then opts.form = p else opts.query = p end
      return curl(srv.whm_url .. "/json-api/cpanel", opts)
    end
    local user_invalid = '{"data":{"reason":"User parameter is invalid or was not supplied","result":"0"},'
      .. '"type":"text","error":"User parameter is invalid or was not supplied"}'

    it("lets root act for any account with the wrapped shape", function()
      local r = whm("alice", "create_full_access", { name = "w" }, nil, "post")
      assert.equal(200, r.code)
      assert.equal("application/json", r.ctype)
      local res = r.json()
      assert.equal(3, res.apiversion)
      assert.equal("create_full_access", res.func)
      assert.equal("Tokens", res.module)
      assert.equal(1, res.result.status)
      assert.equal(32, #res.result.data.token)
      assert.equal(res.result.data.token, srv:tokens("alice")[1].token)
      assert.same({ "w" }, names(whm("alice", "list").json().result.data))
      assert.same({}, whm("bob", "list").json().result.data)
      res = whm("alice", "create_full_access", { name = "w" }).json()
      assert.same({ "A conflicting API token with the name " .. q("w") .. " already exists." }, res.result.errors)
      assert.equal(0, res.result.status)
      assert.equal("You do not have the feature " .. q("apitokens") .. ".", whm("carol", "list").json().result.errors[1])
    end)

    it("lets a reseller act only for its own accounts", function()
      local res_auth = { whm = "res", token = srv.accounts.res.token }
      assert.equal(1, whm("alice", "list", nil, res_auth).json().result.status)
      local r = whm("bob", "list", nil, res_auth)
      assert.equal(200, r.code)
      assert.equal(user_invalid, r.body)
      assert.equal(user_invalid, whm("nobody", "list").body)
      assert.equal(user_invalid, whm(nil, "list").body)
    end)

    it("denies bad WHM tokens and cPanel credentials with 403 and cpanelresult JSON, as WHM does", function()
      local function whm_denied(r)
        assert.equal(403, r.code)
        assert.matches("^application/json", r.ctype)
        assert.are.equal("Access denied", cjson.decode(r.body).cpanelresult.error)
      end
      whm_denied(whm("alice", "list", nil, { whm = "root", token = "WRONG" }))
      whm_denied(whm("alice", "list", nil, { whm = "res", token = srv.accounts.root.token }))
      whm_denied(whm("alice", "list", nil, alice))
      local token = create("t")
      whm_denied(whm("alice", "list", nil, { "alice", token = token }))
      whm_denied(whm("alice", "list", nil, { "root", token = srv.accounts.root.token }))
    end)
  end)

  describe("log and control", function()
    it("records each request without the Authorization value", function()
      local token = create("logged")
      curl(srv.url .. "/execute/Tokens/list?x=1", { auth = { "alice", token = token },
        extra = "-A cptokens-test/1" })
      curl(srv.whm_url .. "/json-api/cpanel?cpanel_jsonapi_user=alice",
        { auth = { whm = "root", token = srv.accounts.root.token } })
      curl(srv.url .. "/execute/Tokens/list")
      local log = srv:log()
      assert.equal(4, #log)
      assert.same({ "cpanel", "GET", "/execute/Tokens/create_full_access", "basic", "alice" },
        { log[1].port, log[1].method, log[1].uri, log[1].auth, log[1].auth_user })
      assert.same({ "GET", "cpanel", "alice", "cptokens-test/1" },
        { log[2].method, log[2].auth, log[2].auth_user, log[2].user_agent })
      assert.same({ x = "1" }, log[2].args)
      assert.same({ "whm", "whm", "root" }, { log[3].port, log[3].auth, log[3].auth_user })
      assert.is_nil(log[4].auth)
      assert.is_false(log[4].has_authorization)
      for _, rec in ipairs(log) do
        assert.is_number(rec.connection)
        assert.equal(1, rec.connection_requests)
      end
      local text = cjson.encode(log)
      assert.is_nil(text:find(token, 1, true))
      assert.is_nil(text:find(srv.accounts.root.token, 1, true))
      assert.is_nil(text:find("Pa55word", 1, true))
      assert.equal(4, srv:count())
      assert.equal(3, srv:count("cpanel"))
      assert.equal(1, srv:count({ auth = "whm" }))
    end)

    it("counts keep-alive requests on one connection", function()
      curl(srv.url .. "/execute/Tokens/list", { auth = alice,
        extra = "--next --cacert " .. sh_quote(srv.cafile) .. " -u alice:" .. H.ALICE_PW .. " -o /dev/null "
          .. sh_quote(srv.url .. "/execute/Tokens/list") })
      local log = srv:log()
      assert.equal(2, #log)
      assert.equal(log[1].connection, log[2].connection)
      assert.same({ 1, 2 }, { log[1].connection_requests, log[2].connection_requests })
    end)

    it("does not expose control through the API ports", function()
      create("keep")
      for _, path in ipairs({ "/reset", "/log", "/tokens?user=alice" }) do
        assert.equal(404, curl(srv.url .. path, { auth = alice, method = "POST" }).code)
        assert.equal(404, curl(srv.http_url .. path, { auth = alice }).code)
      end
      assert.equal(1, #srv:tokens("alice"))
    end)

    it("resets state, faults, switches and log", function()
      create("gone")
      srv:fault("status", { status = 503 })
      srv:set({ loose = true })
      srv:reset()
      assert.equal(0, srv:count())
      assert.same({}, srv:tokens("alice"))
      assert.same({}, srv:log())
      assert.equal(1, uapi("list").status)
    end)

    it("rejects unknown fault modes", function()
      assert.has_error(function() srv:fault("nonsense") end)
    end)
  end)

  describe("the other listener", function()
    it("logs what reaches it and whether credentials came along", function()
      local r = curl(srv.other_url .. "/execute/Tokens/list", { headers = { "Authorization: cpanel alice:SECRET" } })
      assert.equal(200, r.code)
      assert.same({ status = 1, data = {} }, r.json())
      curl(srv.other_url .. "/y")
      local log = srv:log()
      assert.same({ "other", "/execute/Tokens/list", true }, { log[1].port, log[1].uri, log[1].has_authorization })
      assert.is_false(log[2].has_authorization)
      assert.is_nil(cjson.encode(log):find("SECRET", 1, true))
      assert.equal(0, srv:count())
      assert.equal(2, srv:count("other"))
    end)
  end)

  describe("faults", function()
    local list = function(opts)
      opts = opts or {}
      opts.auth = opts.auth or alice
      return curl(srv.url .. "/execute/Tokens/list", opts)
    end

    it("status: HTML error with the given code, limited by times", function()
      srv:fault("status", { status = 503, times = 1 })
      local r = list()
      assert.equal(503, r.code)
      assert.matches("^text/html", r.ctype)
      assert.equal(200, list().code)
      srv:fault("status")
      assert.equal(500, curl(srv.whm_url .. "/json-api/cpanel").code)
      assert.equal(500, list().code)
      srv:clear_faults()
      assert.equal(200, list().code)
      assert.equal(5, srv:count())
    end)

    it("login: a 200 HTML login page", function()
      srv:fault("login")
      local r = list()
      assert.equal(200, r.code)
      assert.matches("^text/html", r.ctype)
      assert.matches('<form action="/login/"', r.body, 1, true)
    end)

    it("malformed and notenvelope: raw JSON-typed bodies", function()
      srv:fault("malformed", { times = 1 })
      local r = list()
      assert.same({ 200, "application/json", '{"status":1,"data":[' }, { r.code, r.ctype, r.body })
      for _, body in ipairs({ "[]", '"hello"', '{"data":[]}' }) do
        srv:fault("notenvelope", { body = body, times = 1 })
        r = list()
        assert.same({ 200, "application/json", body }, { r.code, r.ctype, r.body })
      end
    end)

    it("json_status: a JSON body with an error status", function()
      srv:fault("json_status", { status = 403 })
      local r = list()
      assert.same({ 403, "application/json", '{"status":0,"errors":["Access denied"]}' }, { r.code, r.ctype, r.body })
    end)

    it("truncated: fewer bytes than Content-Length", function()
      srv:fault("truncated")
      assert.equal(18, list().rc)
    end)

    it("reset: connection closed without a reply", function()
      srv:fault("reset")
      local r = list()
      assert.equal(0, r.code)
      assert.equal(52, r.rc)
      assert.equal(1, srv:count())
    end)

    it("hang: never answers", function()
      srv:fault("hang", { seconds = 3 })
      local r = list({ max_time = 1 })
      assert.equal(28, r.rc)
      srv:clear_faults()
      assert.equal(200, list().code) -- the hanging request blocks nothing else
    end)

    it("drip: a valid body one byte per second", function()
      srv:fault("drip", { seconds = 2 })
      local r = list()
      assert.equal(200, r.code)
      assert.equal(1, r.json().status)
      assert.is_true(r.elapsed >= 1.8)
      srv:fault("drip", { seconds = 5 })
      assert.equal(28, list({ max_time = 1 }).rc)
    end)

    it("redirect: 302 to the other listener", function()
      srv:fault("redirect", { times = 1 })
      local r = list()
      assert.equal(302, r.code)
      assert.equal(srv.other_url .. "/execute/Tokens/list", r.location)
      srv:fault("redirect", { times = 1 })
      r = list({ extra = "-L" })
      assert.equal(200, r.code)
      assert.equal(1, srv:count("other"))
    end)

    it("slow and latency: delayed normal answers", function()
      srv:fault("slow", { seconds = 0.5, times = 1 })
      local r = list()
      assert.equal(200, r.code)
      assert.is_true(r.elapsed >= 0.45)
      srv:fault("latency", { ms = 300 })
      r = list()
      assert.equal(1, r.json().status)
      assert.is_true(r.elapsed >= 0.28)
    end)

    it("huge: list answers many synthetic tokens after auth", function()
      srv:fault("huge", { count = 2000 })
      is_denied(list({ auth = { "alice", password = "x" } }))
      local data = list().json().data
      assert.equal(2000, #data)
      assert.equal(32, #create("still-works"))
      assert.equal(2000, #list().json().data)
    end)

    it("bigbody: valid JSON of the given size", function()
      srv:fault("bigbody", { bytes = 100000 })
      local r = list()
      assert.equal(100000, #r.body)
      assert.equal(1, r.json().status)
    end)

    it("fixed_list: a prebuilt list with no auth and no state", function()
      srv:fault("fixed_list", { count = 5 })
      local r = curl(srv.url .. "/execute/Tokens/list")
      assert.equal(200, r.code)
      assert.equal(5, #r.json().data)
      r = curl(srv.whm_url .. "/json-api/cpanel?cpanel_jsonapi_func=list")
      assert.equal(5, #r.json().result.data)
      is_denied(curl(srv.url .. "/execute/Tokens/revoke?name=x"))
    end)
  end)
end)
