-- cptokens.fleet: every account a WHM credential can act for, on one server or many.
local H = require "spec.helpers"
local server = require "spec.support.server"
local util = require "spec.support.util"
local cptokens = require "cptokens"
local fleet = require "cptokens.fleet"

describe("cptokens.fleet", function()
  local srv, localhost_whm

  setup(function()
    srv = server.start()
    localhost_whm = "https://localhost:" .. srv.ports.whm
  end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  -- A server entry for the WHM user `user` (root by default) of the fake.
  local function entry(label, user, extra)
    user = user or "root"
    local e = { label = label, url = srv.whm_url, user = user, token = srv.accounts[user].token,
                cafile = srv.cafile, timeout = H.seconds(10) }
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end

  local function by_user(report)
    local t = {}
    for _, a in ipairs(report.accounts) do t[a.server .. "/" .. a.user] = a end
    return t
  end

  local function requests(filter) return H.requests(srv, filter) end

  describe("enumeration", function()
    it("root: every account, root itself skipped, suspended ones marked, one failure alone", function()
      srv:set { list_self = true }
      local now = os.time()
      srv:seed_token("alice", { name = "forever" })
      srv:seed_token("alice", { name = "old", expires_at = now - 100 })
      srv:seed_token("bob", { name = "soon", expires_at = now + 3 * 86400 })
      srv:seed_token("dave", { name = "later", expires_at = now + 60 * 86400 })
      local f = cptokens.fleet { entry("one") }
      local r = f:audit { within = "14d" }
      f:close()
      local a = by_user(r)
      assert.same({ "one/alice", "one/bob", "one/carol", "one/dave" },
        (function() local k = {} for n in pairs(a) do k[#k + 1] = n end table.sort(k) return k end)())
      assert.same({ "root" }, r.servers[1].skipped)
      assert.is_true(a["one/carol"].suspended)
      assert.is_false(a["one/alice"].suspended)
      -- carol has no apitokens feature: her list fails, nobody else's
      assert.is_false(a["one/carol"].ok)
      assert.equal("api", a["one/carol"].err.kind)
      for _, u in ipairs { "alice", "bob", "dave" } do assert.is_true(a["one/" .. u].ok, u) end
      local s = r.summary
      assert.same({ 4, 3, 1, 0, 4, 1, 1, 1, 1 },
        { s.accounts, s.reached, s.failed, s.not_sent, s.tokens, s.never, s.expired, s.expiring, s.fine })
      assert.equal(1, s.suspended)
      local states = {}
      for _, t in ipairs(r.tokens) do states[t.server .. "/" .. t.account .. "/" .. t.name] = t.state end
      assert.same({ ["one/alice/forever"] = "never", ["one/alice/old"] = "expired",
                    ["one/bob/soon"] = "expiring", ["one/dave/later"] = "fine" }, states)
      H.assert_no_secret(r, { srv.accounts.root.token })
    end)

    it("a reseller sees only its own accounts, and skips itself", function()
      srv:set { list_self = true }
      srv:seed_accounts(3, { prefix = "r", owner = "res" })
      local r = fleet.new({ entry("res", "res") }):audit()
      local users = {}
      for _, a in ipairs(r.accounts) do users[#users + 1] = a.user end
      table.sort(users)
      assert.same({ "alice", "r00001", "r00002", "r00003" }, users)
      assert.same({ "res" }, r.servers[1].skipped)
      assert.equal(4, r.summary.reached)
    end)

    it("zero accounts: an empty report, no failure, progress told the total 0", function()
      local calls = {}
      local r = fleet.new({ entry("lone", "lone") },
        { progress = function(...) calls[#calls + 1] = { ... } end }):audit()
      assert.equal(0, #r.accounts)
      assert.equal(0, r.summary.failed + r.summary.servers_failed)
      assert.same({ 0, 0, 0 }, calls[#calls])
    end)

    it("WHM tokens of each credential, with their risks", function()
      srv:seed_whm_token("root", { name = "everything" })
      srv:seed_whm_token("root", { name = "narrow", acls = { "list-accts" }, whitelist_ips = { "127.0.0.1" },
                                   expires_at = os.time() + 86400 * 30 })
      local r = fleet.new({ entry("one") }):audit()
      local w = {}
      for _, t in ipairs(r.servers[1].whm_tokens) do w[t.name] = t end
      assert.same({ "full_access", "no_ip_allowlist", "no_expiry" }, w.everything.risks)
      assert.same({}, w.narrow.risks)
      assert.equal("root", w.everything.account)
      assert.equal("whm", w.everything.kind)
      assert.same({ 2, 1 }, { r.summary.whm_tokens, r.summary.whm_risky })
    end)
  end)

  describe("cPHulk: the first refused login stops that server", function()
    it("a bad credential: one failed login on that server, the other server unharmed", function()
      local bad = entry("bad", "root", { token = "WRONGWHM000000000000000000000000" })
      local good = entry("good", "root", { url = localhost_whm })
      local r = fleet.new({ bad, good }, { per_server = 4 }):audit()
      assert.equal(1, requests { status = 403 })
      assert.equal("auth", r.servers[1].err.kind)
      assert.equal(1, r.summary.servers_failed)
      assert.matches("not sent: authentication failed for root at bad", r.servers[1].whm_err.message, 1, true)
      assert.equal(4, r.servers[2].accounts)
      assert.equal(3, r.summary.reached) -- carol has no apitokens
    end)

    it("refused mid-run: exactly one refused request; every other account reported as not sent", function()
      srv:seed_accounts(30)
      srv:fault("whm_denied", { func = "list" })
      local r = fleet.new({ entry("one") }, { chunk = 5, concurrency = 10 }):audit()
      assert.equal(1, requests { status = 403 })
      assert.equal(1, requests { func = "list" })
      assert.same({ 34, 0, 1, 33 }, { r.summary.accounts, r.summary.reached, r.summary.failed, r.summary.not_sent })
      assert.equal(33, #r.not_sent)
      for _, n in ipairs(r.not_sent) do
        assert.matches("^not sent: authentication failed for root at one %(HTTP 403%)", n.reason)
        assert.equal("one", n.server)
        assert.is_string(n.account)
      end
    end)

    it("refused in a later chunk (a credential revoked mid-run): the server stops there", function()
      srv:seed_accounts(30)
      srv:fault("whm_denied", { func = "list", skip = 7 })
      local r = fleet.new({ entry("one") }, { chunk = 5, per_server = 1 }):audit()
      assert.equal(1, requests { status = 403 })
      assert.equal(8, requests { func = "list" })
      assert.same({ 34, 6, 2, 26 }, { r.summary.accounts, r.summary.reached, r.summary.failed, r.summary.not_sent })
    end)

    it("one account's failing Tokens::list does not stop the others", function()
      srv:seed_accounts(10)
      srv:fault("status", { status = 500, user = "u00004" })
      local r = fleet.new({ entry("one") }):audit()
      local a = by_user(r)
      assert.equal("http", a["one/u00004"].err.kind)
      assert.equal(500, a["one/u00004"].err.status)
      assert.equal(12, r.summary.reached) -- 14 minus carol and u00004
      assert.equal(2, r.summary.failed)
      assert.equal(0, r.summary.not_sent)
    end)
  end)

  describe("prune", function()
    local function seed(now)
      srv:seed_token("alice", { name = "deploy-20200101000000", expires_at = now - 100 })
      srv:seed_token("alice", { name = "other-old", expires_at = now - 100 })
      srv:seed_token("alice", { name = "deploy-20990101000000", expires_at = now + 1000 })
      srv:seed_token("dave", { name = "deploy-20200101000001", expires_at = now - 5 })
    end

    it("dry_run lists what would go and changes nothing on the server", function()
      seed(os.time())
      local before = { alice = srv:tokens("alice"), dave = srv:tokens("dave") }
      local r = fleet.new({ entry("one") }):prune { prefix = "deploy", dry_run = true }
      local a = by_user(r)
      assert.same({ "deploy-20200101000000" }, a["one/alice"].would_revoke)
      assert.same({ "deploy-20200101000001" }, a["one/dave"].would_revoke)
      assert.equal(2, r.summary.would_revoke)
      assert.equal(0, r.summary.revoked)
      assert.same(before, { alice = srv:tokens("alice"), dave = srv:tokens("dave") })
      assert.equal(0, requests { func = "revoke" })
    end)

    it("revokes the expired tokens with the prefix, nothing else", function()
      seed(os.time())
      local r = fleet.new({ entry("one") }):prune { prefix = "deploy" }
      assert.equal(2, r.summary.revoked)
      local names = {}
      for _, t in ipairs(srv:tokens("alice")) do names[#names + 1] = t.name end
      table.sort(names)
      assert.same({ "deploy-20990101000000", "other-old" }, names)
      assert.same({}, srv:tokens("dave"))
    end)
  end)

  it("rotate: one token file per server and account, holding the token the server has", function()
    local dir = util.tmpdir("fleet")
    local ok, err = pcall(function()
      local f = fleet.new { entry("one", "root", { cpanel_url = srv.url }) }
      local r = f:rotate { prefix = "deploy", store_dir = dir, expires_in = "30d" }
      local a = by_user(r)
      assert.equal("suspended: the account cannot log in to verify a new token", a["one/carol"].skipped)
      assert.equal(3, r.summary.rotated)
      for _, u in ipairs { "alice", "bob", "dave" } do
        assert.is_true(a["one/" .. u].ok, tostring(a["one/" .. u].err))
        local opts = assert(cptokens.store.load(dir .. "/one." .. u .. ".token"))
        local held = srv:tokens(u)
        assert.equal(1, #held)
        assert.equal(held[1].token, opts.token)
        assert.equal(a["one/" .. u].rotated.created, held[1].name)
      end
      local h = io.open(dir .. "/one.carol.token")
      assert.is_nil(h)
      H.assert_no_secret(r, { srv:tokens("alice")[1].token, srv.accounts.root.token })
      -- a second run replaces each account's token and revokes the first
      local first = srv:tokens("alice")[1].name
      r = f:rotate { prefix = "deploy", store_dir = dir, expires_in = "30d" }
      assert.equal(3, r.summary.rotated)
      assert.same({ first }, by_user(r)["one/alice"].rotated.revoked)
      f:close()
    end)
    util.rmdir(dir)
    assert(ok, err)
  end)

  it("rotate's on_token gets each new token once it is stored; an error it raises ends the run", function()
    local dir = util.tmpdir("fleet")
    local ok, err = pcall(function()
      local f = fleet.new { entry("one", "root", { cpanel_url = srv.url }) }
      local seen = {}
      local r = f:rotate { prefix = "deploy", store_dir = dir, expires_in = "30d",
                           on_token = function(token, label, user, path)
                             -- stored before the call: the file holds this very token
                             assert.equal(token, assert(cptokens.store.load(path)).token)
                             seen[#seen + 1] = label .. "/" .. user .. "=" .. token
                           end }
      assert.equal(3, r.summary.rotated)
      table.sort(seen)
      local want = {}
      for _, u in ipairs { "alice", "bob", "dave" } do want[#want + 1] = "one/" .. u .. "=" .. srv:tokens(u)[1].token end
      assert.same(want, seen)
      H.assert_no_secret(r, { srv:tokens("alice")[1].token })
      local calls = 0
      local raised, e = pcall(f.rotate, f, { prefix = "deploy", store_dir = dir, expires_in = "30d",
                                             on_token = function() calls = calls + 1; error("caller's bug") end })
      assert.is_false(raised)
      assert.matches("caller's bug", tostring(e))
      assert.equal(1, calls) -- the first rotation's token is in its file; no further rotation started
      f:close()
    end)
    util.rmdir(dir)
    assert(ok, err)
  end)

  it("stop from the progress callback: nothing more is sent, the rest reported not sent; an err entry fails alone", function()
    srv:seed_accounts(20)
    local f
    f = fleet.new({ entry("one"), { label = "broken", err = "its token file is unreadable" } }, { chunk = 5,
      progress = function(done) if done >= 5 then f:stop("stopped by the spec") end end })
    local r = f:audit()
    f:close()
    assert.equal(5, requests { func = "list" })
    assert.equal(19, r.summary.not_sent)
    for _, n in ipairs(r.not_sent) do assert.equal("not sent: stopped by the spec", n.reason) end
    assert.equal("invalid", r.servers[2].err.kind)
    assert.equal(1, r.summary.servers_failed)
    assert.has_error(function() f:stop() end)
    -- a later run starts afresh
    r = fleet.new({ entry("one") }):audit()
    assert.equal(0, r.summary.not_sent)
  end)

  it("progress: done never goes back, the last call is (total, total, failures)", function()
    srv:seed_accounts(23)
    local calls = {}
    fleet.new({ entry("one") }, { chunk = 4,
      progress = function(done, total, failures) calls[#calls + 1] = { done, total, failures } end }):audit()
    assert.is_true(#calls >= 7)
    for i = 2, #calls do
      assert.is_true(calls[i][1] >= calls[i - 1][1])
      assert.equal(27, calls[i][2])
    end
    assert.same({ 27, 27, 1 }, calls[#calls]) -- carol fails
  end)

  describe("limits on requests in flight, measured by the server", function()
    it("per_server holds one server at its limit", function()
      srv:seed_accounts(40)
      srv:fault("latency", { ms = 40 })
      local r = fleet.new({ entry("one") }, { per_server = 4, concurrency = 50 }):audit()
      assert.equal(43, r.summary.reached)
      assert.equal(4, srv:inflight().max)
    end)

    it("the limit is per server: two servers go to twice the limit, and the global limit caps all", function()
      srv:seed_accounts(40)
      srv:fault("latency", { ms = 40 })
      fleet.new({ entry("a"), entry("b", "root", { url = localhost_whm }) }, { per_server = 3 }):audit()
      assert.equal(6, srv:inflight().max)
      srv:reset()
      srv:seed_accounts(40)
      srv:fault("latency", { ms = 40 })
      fleet.new({ entry("a"), entry("b", "root", { url = localhost_whm }) },
        { per_server = 3, concurrency = 4 }):audit()
      assert.equal(4, srv:inflight().max)
    end)
  end)

  describe("misuse raises", function()
    it("names the problem", function()
      assert.has_error(function() fleet.new({ entry("a"), entry("a") }) end,
        'cptokens.fleet: server 2: label "a" is used twice')
      assert.has_error(function() fleet.new({ entry("a") }, { per_server = 0 }) end,
        "cptokens.fleet: per_server must be a whole number from 1 to 1000")
      assert.has_error(function() fleet.new({ entry("a") }, { bogus = 1 }) end,
        "cptokens.fleet: unknown option 'bogus'")
      assert.has_error(function() fleet.new({ entry("a") }):rotate { prefix = "x" } end,
        "cptokens.fleet: rotate: store_dir (the directory of the token files) is required")
      assert.has_error(function() fleet.new({ entry("a") }):rotate { prefix = "x", store_dir = "/tmp", on_token = 1 } end,
        "cptokens.fleet: rotate: on_token must be a function")
    end)
  end)
end)
