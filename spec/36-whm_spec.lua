-- cptokens.whm: WHM API tokens (ACLs, IP allow-lists, expiry) for root and a reseller,
-- against the fake server: every operation through libcurl, the requests as sent, the
-- replies decoded through _prepare + core.response, refusals before sending, batches,
-- audit risks, accounts and for_user. (OpenResty: spec/80; rotation: spec/37.)
local H = require "spec.helpers"
local server = require "spec.support.server"
local cptokens = require "cptokens"
local core = require "cptokens.core"
local cjson = require "cjson"

local ROOT_WHM = "ROOTWHMTOKEN0000000000000000000A"
local RES_WHM = "RESWHMTOKEN00000000000000000000B"
local LONE_WHM = "LONEWHMTOKEN000000000000000000C"
local V6_FULL = "2001:0db8:0000:0000:0000:0000:0000:0001"

local function names(list)
  local out = {}
  for i, t in ipairs(list) do out[i] = t.name end
  return out
end

describe("cptokens.whm (WHM API tokens)", function()
  local srv

  setup(function() srv = server.start() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  local function whm(user, token)
    return assert(cptokens.whm { url = srv.whm_url, cafile = srv.cafile, user = user, token = token })
  end
  local function last() local log = srv:log(); return log[#log] end

  for _, who in ipairs({ { "root", ROOT_WHM }, { "res", RES_WHM } }) do
    local user, secret = who[1], who[2]
    describe("as " .. user, function()
      it("creates a restricted token: ACLs, IPs as the server normalised them, expiry", function()
        local w = whm(user, secret)
        local before = os.time()
        local tok = assert(w:create("backup-bot", { acls = { "list-accts", "create-acct" },
          whitelist_ips = { "203.0.113.0/24", "2001:db8::1", "10.0.0.1/32", "203.0.113.0/24" },
          expires_in = "30d" }))
        assert.are.equal("backup-bot", tok.name)
        assert.are.equal(32, #tok.token)
        assert.is_true(tok.create_time >= before - 1)
        assert.is_true(math.abs(tok.expires_at - (before + 30 * 86400)) <= 2)
        assert.are.same({ "create-acct", "list-accts" }, tok.acls)
        assert.is_false(tok.full_access)
        assert.are.same({ "10.0.0.1", V6_FULL, "203.0.113.0/24" }, tok.whitelist_ips)
        local rec = last()
        assert.are.equal("POST", rec.method)
        assert.are.equal("/json-api/api_token_create", rec.uri)
        assert.are.equal("1", rec.args["api.version"])
        assert.are.equal("list-accts", rec.args["acl-0"])
        assert.are.equal("create-acct", rec.args["acl-1"])
        assert.are.equal("2001:db8::1", rec.args["whitelist_ip-1"])
        assert.are.equal("application/x-www-form-urlencoded", rec.content_type)
        assert.are.equal(tok.token, srv:whm_tokens(user)[1].token)
        w:close()
      end)

      it("lists, sorted by create_time then name, granted ACLs only, no secret", function()
        local w = whm(user, secret)
        srv:seed_whm_token(user, { name = "b", create_time = 1700000000, acls = { "list-accts" } })
        srv:seed_whm_token(user, { name = "a", create_time = 1700000000, whitelist_ips = { "192.0.2.1" },
                                   expires_at = 1900000000 })
        srv:seed_whm_token(user, { name = "z", create_time = 1600000000, acls = { "passwd", "all" } })
        local list = assert(w:list())
        assert.are.same({ "z", "a", "b" }, names(list))
        assert.are.same({ name = "b", create_time = 1700000000, acls = { "list-accts" }, full_access = false },
          list[3])
        assert.are.same({ name = "a", create_time = 1700000000, expires_at = 1900000000, acls = {},
                          full_access = true, whitelist_ips = { "192.0.2.1" } }, list[2])
        if user == "root" then
          assert.is_true(list[1].full_access) -- "all"
          assert.are.same({ "all", "passwd" }, list[1].acls)
        else -- a reseller's list flags only the ACLs it holds ("all" is not one)
          assert.is_false(list[1].full_access)
          assert.are.same({ "passwd" }, list[1].acls)
        end
        H.assert_no_secret(list, { secret })
        for _, t in ipairs(srv:whm_tokens(user)) do H.assert_no_secret(list, { t.token }) end
        assert.are.equal("GET", last().method)
        assert.are.equal("/json-api/api_token_list", last().uri)
        assert.are.equal("1", last().args["api.version"])
        w:close()
      end)

      it("updates in place: rename, ACLs, IPs cleared, never expires; the secret stays", function()
        local w = whm(user, secret)
        local tok = assert(w:create("bot", { acls = { "list-accts" }, whitelist_ips = { "192.0.2.0/24" },
                                             expires_in = "1d" }))
        local rec = assert(w:update("bot", { new_name = "bot2", acls = { "create-acct", "list-accts" },
                                             whitelist_ips = false, expires = false }))
        assert.are.same({ name = "bot2", create_time = tok.create_time, acls = { "create-acct", "list-accts" },
                          full_access = false }, rec)
        local sent = last()
        assert.are.equal("POST", sent.method)
        assert.are.equal("any", sent.args.whitelist_ip)
        assert.are.equal("0", sent.args.expires_at)
        assert.are.equal("bot2", sent.args.new_name)
        assert.are.equal(tok.token, srv:whm_tokens(user)[1].token)
        rec = assert(w:update("bot2", { whitelist_ips = { "2001:db8::/32" }, expires_at = os.time() + 3600 }))
        assert.are.same({ "2001:0db8:0000:0000:0000:0000:0000:0000/32" }, rec.whitelist_ips)
        assert.is_number(rec.expires_at)
        w:close()
      end)

      it("revokes one or several in one call, OK when nothing matched", function()
        local w = whm(user, secret)
        for _, n in ipairs({ "a", "b", "c" }) do srv:seed_whm_token(user, { name = n }) end
        assert.is_true(w:revoke("a"))
        assert.is_true(w:revoke { "b", "c", "nothing" })
        assert.are.same({}, srv:whm_tokens(user))
        local sent = last()
        assert.are.equal("b", sent.args["token_name-0"])
        assert.are.equal("nothing", sent.args["token_name-2"])
        assert.is_true(w:revoke("nothing"))
        w:close()
      end)

      it("tells what a token value is, or false; the value never in a URL", function()
        local w = whm(user, secret)
        local t = srv:seed_whm_token(user, { name = "who", acls = { "list-accts" } })
        local rec = assert(w:details(t.token))
        assert.are.same({ name = "who", create_time = rec.create_time, acls = { "list-accts" },
                          full_access = false }, rec)
        assert.are.equal("POST", last().method)
        assert.is_nil(last().uri:find(t.token, 1, true))
        assert.is_false(w:details("UNKNOWNTOKEN00000000000000000000"))
        srv:seed_whm_token(user, { name = "old", token = "EXPIREDTOKEN00000000000000000000", expires_at = 1000 })
        assert.is_false(w:details("EXPIREDTOKEN00000000000000000000"))
        w:close()
      end)
    end)
  end

  it("a reseller's tokens never exceed its ACLs; its list flags only what it holds", function()
    local w = whm("res", RES_WHM)
    local _, err = w:create("x", { acls = { "list-accts", "kill-acct" } })
    assert.are.equal("api", err.kind)
    assert.are.same({ "Invalid or unauthorized ACL(s) specified: kill-acct" }, err.errors)
    assert.are.same({}, srv:whm_tokens("res"))
    assert(w:create("y", { acls = { "passwd" } }))
    assert.are.same({ "passwd" }, w:list()[1].acls)
    w:close()
  end)

  it("a full-access token: no ACL list", function()
    local w = whm("root", ROOT_WHM)
    local tok = assert(w:create("full"))
    assert.is_true(tok.full_access)
    assert.are.same({}, tok.acls)
    assert.is_nil(tok.whitelist_ips)
    assert.is_nil(tok.expires_at)
    assert.is_nil(last().args["acl-0"])
    assert.is_true(w:list()[1].full_access)
    w:close()
  end)

  it("WHM's failures are kind api with metadata.reason in err.errors", function()
    local w = whm("root", ROOT_WHM)
    assert(w:create("dup"))
    local _, err = w:create("dup")
    assert.are.equal("api", err.kind)
    assert.are.equal("The system failed to create the API token: A conflicting API token with the name "
      .. "\226\128\156dup\226\128\157 already exists.", err.errors[1])
    assert.are.equal(err.errors[1], err.message)
    _, err = w:update("ghost", { acls = { "list-accts" } })
    assert.are.equal("api", err.kind)
    assert.is_truthy(err.errors[1]:find("does not exist", 1, true))
    w:close()
  end)

  it("a refused WHM credential is kind auth (403 cpanelresult), naming the account only", function()
    local w = whm("root", "WRONGWHMTOKEN000000000000000000A")
    for _, call in ipairs({ function() return w:list() end, function() return w:create("x") end,
                            function() return w:revoke("x") end, function() return w:accounts() end,
                            function() return w:details("ABC") end,
                            function() return w:update("x", { new_name = "y" }) end }) do
      local v, err = call()
      assert.is_nil(v)
      assert.are.equal("auth", err.kind)
      assert.are.equal(403, err.status)
      assert.is_truthy(err.message:find("the WHM token of root", 1, true))
      H.assert_no_secret(err, { "WRONGWHMTOKEN000000000000000000A" })
    end
    w:close()
  end)

  it("a restricted token is limited to its ACLs and its addresses", function()
    local t = srv:seed_whm_token("root", { name = "ro", acls = { "list-accts" } })
    local ro = whm("root", t.token)
    assert.are.equal(4, #assert(ro:accounts()))
    local _, err = ro:list()
    assert.are.equal("auth", err.kind)
    local far = srv:seed_whm_token("root", { name = "far", whitelist_ips = { "192.0.2.0/24" } })
    _, err = whm("root", far.token):accounts()
    assert.are.equal("auth", err.kind)
    local near = srv:seed_whm_token("root", { name = "near", whitelist_ips = { "127.0.0.0/8" } })
    assert(whm("root", near.token):accounts())
  end)

  it("refuses before sending: names, ACLs, addresses, expiries, options", function()
    local w = whm("root", ROOT_WHM)
    local many = {}
    for i = 1, 101 do many[i] = "192.0.2." .. (i % 250) end
    local cases = {
      { function() return w:create("bad name") end, "whm_create: invalid token name \"bad name\"" },
      { function() return w:create(("x"):rep(51)) end, "invalid token name" },
      { function() return w:create("x", { acls = { "list accts" } }) end, "invalid ACL name \"list accts\"" },
      { function() return w:create("x", { acls = { "-x" } }) end, "invalid ACL name" },
      { function() return w:create("x", { acls = {} }) end, "acls is empty" },
      { function() return w:create("x", { whitelist_ips = { "203.0.113.0/33" } }) end, "invalid address" },
      { function() return w:create("x", { whitelist_ips = { "2001:db8::/129" } }) end, "invalid address" },
      { function() return w:create("x", { whitelist_ips = { "300.1.1.1" } }) end, "invalid address" },
      { function() return w:create("x", { whitelist_ips = { "any" } }) end, "invalid address" },
      { function() return w:create("x", { whitelist_ips = { "1.2.3.4\r\n" } }) end, "invalid address" },
      { function() return w:create("x", { whitelist_ips = many }) end, "1 to 100" },
      { function() return w:create("x", { whitelist_ips = {} }) end, "1 to 100" },
      { function() return w:create("x", { expires_at = 1000 }) end, "not in the future" },
      { function() return w:create("x", { expires_in = "soon" }) end, "whm_create: " },
      { function() return w:update("x", {}) end, "nothing to change" },
      { function() return w:update("x", { new_name = "x" }) end, "must differ" },
      { function() return w:update("x", { new_name = "a b" }) end, "invalid new name" },
      { function() return w:update("x", { acls = {} }) end, "\"all\" } for full access" },
      { function() return w:update("x", { expires_at = 1000 }) end, "not in the future" },
      { function() return w:revoke({}) end, "give 1 to 1000 token names" },
      { function() return w:revoke({ "ok", "not ok" }) end, "invalid token name \"not ok\"" },
      { function() return w:details("") end, "the token value must be" },
      { function() return w:details("a\nb") end, "the token value must be" },
      { function() return w:accounts { search = "a", searchtype = "color" } end, "searchtype" },
    }
    for _, case in ipairs(cases) do
      local v, err = case[1]()
      assert.is_nil(v, case[2])
      assert.are.equal("invalid", err.kind, case[2])
      assert.is_truthy(err.message:find(case[2], 1, true), err.message .. " / " .. case[2])
    end
    local _, err = w:details("SECRETVALUE\n")
    assert.is_nil(err.message:find("SECRETVALUE", 1, true))
    assert.has_error(function() w:create("x", { acl = { "a" } }) end, "cptokens.whm: whm_create: unknown option 'acl'")
    assert.has_error(function() w:update("x", { expires = true }) end)
    assert.has_error(function() w:create("x", { acls = "list-accts" }) end)
    assert.has_error(function() w:revoke(5) end)
    assert.has_error(function() cptokens.whm { url = srv.whm_url, user = "root" } end)
    assert.has_error(function() cptokens.whm { url = srv.whm_url, user = "root", token = "a", password = "b" } end)
    assert.has_error(function() cptokens.whm { url = srv.whm_url, user = "root", token = "a", whm_token = "b" } end)
    assert.are.equal(0, srv:count())
    w:close()
  end)

  it("accounts: root all, a reseller its own, zero accounts {}; search", function()
    local root = whm("root", ROOT_WHM)
    assert.are.equal(4, #assert(root:accounts()))
    assert.are.same({ { user = "alice", domain = "alice.example", owner = "res", suspended = false } },
      assert(whm("res", RES_WHM):accounts()))
    assert.are.same({}, assert(whm("lone", LONE_WHM):accounts()))
    assert.are.same({ "bob" }, names((function()
      local out = {}
      for i, a in ipairs(assert(root:accounts { search = "bob", searchtype = "user", searchmethod = "exact" })) do
        out[i] = { name = a.user }
      end
      return out
    end)()))
  end)

  it("for_user: a client acting for an account through this WHM token", function()
    local res = whm("res", RES_WHM)
    local alice = assert(res:for_user("alice"))
    local tok = assert(alice:create("via-res"))
    assert.are.equal(tok.token, srv:tokens("alice")[1].token)
    assert.are.equal("/json-api/cpanel", last().uri)
    assert.are.equal("res", last().auth_user)
    res:close()
    assert.are.same({ "via-res" }, names(assert(alice:list()))) -- its own credential copy
    local _, err = whm("res", RES_WHM):for_user("bob"):list()
    assert.are.equal("api", err.kind)
    _, err = whm("res", RES_WHM):for_user("a b")
    assert.are.equal("invalid", err.kind)
  end)

  it("a password credential reaches WHM API 1 with HTTP Basic", function()
    local w = assert(cptokens.whm { url = srv.whm_url, cafile = srv.cafile, user = "root", password = "pw" })
    local _, err = w:list() -- the fake takes WHM tokens only: refused, but sent as Basic
    assert.are.equal("auth", err.kind)
    assert.are.equal("basic", last().auth)
    assert.are.equal("/json-api/api_token_list", last().uri)
    _, err = w:for_user("alice")
    assert.are.equal("invalid", err.kind)
  end)

  it("closes: idempotent, then misuse raises; tostring shows no secret", function()
    local w = whm("root", ROOT_WHM)
    assert.are.equal("cptokens.Whm (root at " .. srv.whm_url .. ")", tostring(w))
    assert.is_true(w:close())
    assert.is_true(w:close())
    assert.are.equal("cptokens.Whm (closed)", tostring(w))
    assert.has_error(function() w:list() end, "cptokens.whm: the client is closed")
  end)

  it("audit flags every risk per token", function()
    local w = whm("root", ROOT_WHM)
    local exp = os.time() + 30 * 86400
    srv:seed_whm_token("root", { name = "full", create_time = 1 })
    srv:seed_whm_token("root", { name = "all", create_time = 2, acls = { "all" }, expires_at = exp,
                                 whitelist_ips = { "192.0.2.1" } })
    srv:seed_whm_token("root", { name = "session", create_time = 3,
                                 acls = { "create-user-session", "list-accts" }, expires_at = exp,
                                 whitelist_ips = { "192.0.2.1" } })
    srv:seed_whm_token("root", { name = "mgmt", create_time = 4,
                                 acls = { "passwd", "manage-api-tokens", "cpanel-api" }, expires_at = exp,
                                 whitelist_ips = { "192.0.2.1" } })
    srv:seed_whm_token("root", { name = "open", create_time = 5, acls = { "list-accts" }, expires_at = exp })
    srv:seed_whm_token("root", { name = "forever", create_time = 6, acls = { "list-accts" },
                                 whitelist_ips = { "192.0.2.1" } })
    srv:seed_whm_token("root", { name = "safe", create_time = 7, acls = { "list-accts" }, expires_at = exp,
                                 whitelist_ips = { "192.0.2.1" } })
    srv:seed_whm_token("root", { name = "soon", create_time = 8, acls = { "list-accts" },
                                 expires_at = os.time() + 3600, whitelist_ips = { "192.0.2.1" } })
    local report = assert(w:audit { within = "14d" })
    local by = {}
    for _, t in ipairs(report.tokens) do by[t.name] = t end
    assert.are.same({ "full_access", "no_ip_allowlist", "no_expiry" }, by.full.risks)
    assert.are.same({ "full_access" }, by.all.risks)
    assert.are.same({ "create-user-session" }, by.session.risks)
    assert.are.same({ "passwd", "manage-api-tokens", "cpanel-api" }, by.mgmt.risks)
    assert.are.same({ "no_ip_allowlist" }, by.open.risks)
    assert.are.same({ "no_expiry" }, by.forever.risks)
    assert.are.same({}, by.safe.risks)
    assert.are.equal("fine", by.safe.state)
    assert.are.equal("expiring", by.soon.state)
    assert.are.equal("never", by.forever.state)
    assert.are.same({ "full", "all", "session", "mgmt", "open", "forever" }, names(report.risky))
    H.assert_no_secret(report, { ROOT_WHM })
  end)

  describe("through _prepare and core.response", function()
    local c = assert(cptokens.new { url = "https://h.example:2087", user = "root", whm_token = "W" })

    it("builds the requests a transport sends", function()
      local rq = assert(c:_prepare("whm_create", "bot", { "list-accts", "a.b_c" }, 2000000000,
                                   { "2001:db8::1", "192.0.2.0/24" }))
      assert.are.equal("POST", rq.method)
      assert.are.equal("/json-api/api_token_create?api.version=1", rq.path)
      assert.are.equal("token_name=bot&acl-0=list-accts&acl-1=a.b_c&expires_at=2000000000"
        .. "&whitelist_ip-0=2001%3Adb8%3A%3A1&whitelist_ip-1=192.0.2.0%2F24", rq.body)
      assert.are.equal("application/x-www-form-urlencoded", rq.headers["Content-Type"])
      rq = assert(c:_prepare("whm_update", "bot", nil, nil, 0, nil, "any"))
      assert.are.equal("token_name=bot&expires_at=0&whitelist_ip=any", rq.body)
      rq = assert(c:_prepare("whm_revoke", { "a", "b" }))
      assert.are.equal("token_name-0=a&token_name-1=b", rq.body)
      rq = assert(c:_prepare("whm_list"))
      assert.are.equal("GET", rq.method)
      assert.are.equal("https://h.example:2087/json-api/api_token_list?api.version=1", rq.url)
      rq = assert(c:_prepare("whm_details", "SECRET"))
      assert.are.equal("/json-api/api_token_get_details?api.version=1", rq.path)
      assert.are.equal("token=SECRET", rq.body)
      local cp = assert(cptokens.new { url = "https://h.example:2083", user = "alice", token = "T" })
      local _, err = cp:_prepare("whm_list")
      assert.are.equal("whm_list: this is a WHM API 1 call: it needs a WHM credential (whm_token)", err.message)
    end)

    it("decodes WHM API 1 replies, strictly", function()
      local meta = ',"metadata":{"command":"x","reason":"OK","result":1,"version":1}}'
      local list = assert(c:_prepare("whm_list"))
      local v = assert(core.response(list, 200, "application/json", '{"data":{"tokens":{'
        .. '"b":{"name":"b","create_time":"20","expires_at":"0","acls":{"list-accts":1,"passwd":0,"all":0},'
        .. '"whitelist_ips":null},'
        .. '"a":{"name":"a","create_time":20,"expires_at":null,"acls":{"all":1},"whitelist_ips":["1.2.3.4"]}}}'
        .. meta))
      assert.are.same({ { name = "a", create_time = 20, acls = { "all" }, full_access = true,
                          whitelist_ips = { "1.2.3.4" } },
                        { name = "b", create_time = 20, acls = { "list-accts" }, full_access = false } }, v)
      assert.are.same({}, assert(core.response(list, 200, "application/json", '{"data":{"tokens":{}}' .. meta)))
      local det = assert(c:_prepare("whm_details", "S"))
      assert.is_false(core.response(det, 200, "application/json", '{"metadata":{"result":1,"reason":"OK"}}'))
      local _, err = core.response(list, 200, "application/json",
        '{"data":{},"metadata":{"command":"api_token_list","reason":"The system failed to read the API tokens: x",'
        .. '"result":0}}')
      assert.are.equal("api", err.kind)
      assert.are.same({ "The system failed to read the API tokens: x" }, err.errors)
      local bad = {
        '{"status":1,"statusmsg":"Ok","tokens":[]}', -- API 0's shape
        '{"data":{"tokens":{"a":{"create_time":1}}},"metadata":{"result":"yes"}}',
        '{"data":{"tokens":{"a":{"name":"a"}}}' .. meta,
        '{"data":{"tokens":{"a":{"name":"a","create_time":1,"acls":"all"}}}' .. meta,
        '{"data":{"tokens":{"a":{"name":"a","create_time":1,"acls":[1]}}}' .. meta,
        '{"data":{"tokens":{"a":{"name":"a","create_time":1,"whitelist_ips":"1.2.3.4"}}}' .. meta,
        '{"data":{"tokens":{"a":{"name":"a","create_time":1,"expires_at":"soon"}}}' .. meta,
        '{"data":{"tokens":{"a":7}}' .. meta,
        '{"data":{"tokens":"none"}' .. meta,
      }
      for _, body in ipairs(bad) do
        _, err = core.response(list, 200, "application/json", body)
        assert.are.equal("protocol", err and err.kind, body)
        assert.is_truthy(err.message:find("^whm_list: "), err.message)
      end
      local create = assert(c:_prepare("whm_create", "n"))
      _, err = core.response(create, 200, "application/json", '{"data":{"name":"n","create_time":1}' .. meta)
      assert.are.equal("protocol", err.kind)
      assert.is_true(err.created)
      assert.is_truthy(err.message:find("^whm_create: the server made the token"))
    end)
  end)

  it("cPanel-user tokens: list entries carry whitelist_ips and features when the server lists any", function()
    local c = assert(cptokens.new { url = "https://h.example:2083", user = "alice", token = "T" })
    local rq = assert(c:_prepare("list"))
    local v = assert(core.response(rq, 200, "application/json", '{"status":1,"data":['
      .. '{"name":"a","create_time":1,"has_full_access":1,"features":["x"],"whitelist_ips":["192.0.2.1"]},'
      .. '{"name":"b","create_time":2,"has_full_access":1,"features":[],"whitelist_ips":null}]}'))
    assert.are.same({ name = "a", create_time = 1, has_full_access = true, features = { "x" },
                      whitelist_ips = { "192.0.2.1" } }, v[1])
    assert.are.same({ name = "b", create_time = 2, has_full_access = true }, v[2])
    local _, err = core.response(rq, 200, "application/json",
      '{"status":1,"data":[{"name":"a","create_time":1,"whitelist_ips":"192.0.2.1"}]}')
    assert.are.equal("protocol", err.kind)
  end)

  it("a create whose reply has no usable token is revoked: nothing is left behind", function()
    local w = whm("root", ROOT_WHM)
    srv:fault("bad_create", { times = 1 })
    local _, err = w:create("lost")
    assert.are.equal("protocol", err.kind)
    assert.is_true(err.revoked)
    assert.are.same({}, srv:whm_tokens("root"))
  end)

  it("runs in batches, beside other operations, on WHM objects or core clients", function()
    local root, res = whm("root", ROOT_WHM), whm("res", RES_WHM)
    srv:seed_whm_token("res", { name = "old" })
    local r = cptokens.batch {
      { client = root, op = "whm_create", name = "b1", acls = { "list-accts" }, expires_in = "1d" },
      { client = res, op = "whm_create", name = "b2", whitelist_ips = { "192.0.2.9" } },
      { client = res, op = "whm_list" },
      { client = res, op = "whm_revoke", names = { "old" } },
      { client = root, op = "whm_create", name = "bad", acls = { "no way" } },
      { client = root, op = "listaccts" },
      { client = res._client, op = "whm_update", name = "b2", expires_at = 0, whitelist_ip = "any" },
    }
    assert.is_true(r[1].ok)
    assert.are.same({ "list-accts" }, r[1].value.acls)
    assert.is_number(r[1].value.expires_at)
    assert.are.same({ "192.0.2.9" }, r[2].value.whitelist_ips)
    assert.is_true(r[3].ok)
    assert.is_true(r[4].ok)
    assert.is_false(r[5].ok)
    assert.are.equal("invalid", r[5].err.kind)
    assert.are.equal(4, #r[6].value)
    assert.is_true(r[7].ok)
    assert.is_nil(r[7].value.whitelist_ips)
    local held = {}
    for _, t in ipairs(srv:whm_tokens("res")) do held[#held + 1] = t.name end
    assert.are.same({ "b2" }, held)
    assert.has_error(function() cptokens.batch { { client = root, op = "whm_list", expires_in = "1d" } } end)
    local results = cjson.encode(H.strings(r))
    assert.is_nil(results:find(ROOT_WHM, 1, true))
  end)
end)
