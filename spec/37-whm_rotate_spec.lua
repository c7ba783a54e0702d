-- whm:rotate, whm:prune: the guarantees of client:rotate (lock and journal, verify
-- before store, revoke last, nothing lost on a failure) for WHM API tokens, whose new
-- token keeps the ACLs and IP list of the rotation it replaces.
local server = require "spec.support.server"
local util = require "spec.support.util"
local cptokens = require "cptokens"
local store = require "cptokens.store"
local rotate = require "cptokens.rotate"

local ROOT_WHM = "ROOTWHMTOKEN0000000000000000000A"
local RES_WHM = "RESWHMTOKEN00000000000000000000B"

describe("whm:rotate (WHM API tokens)", function()
  local srv, dir

  setup(function()
    srv = server.start()
    dir = util.tmpdir("whm_rotate")
  end)
  teardown(function()
    if srv then srv:stop() end
    util.rmdir(dir)
  end)
  before_each(function() srv:reset() end)
  after_each(function() rotate._test_hook = nil end)

  local n = 0
  local function path()
    n = n + 1
    return dir .. "/whm" .. n .. ".json"
  end
  local function whm(user, token)
    return assert(cptokens.whm { url = srv.whm_url, cafile = srv.cafile, user = user, token = token })
  end
  local function held(user, prefix)
    local out = {}
    for _, t in ipairs(srv:whm_tokens(user)) do
      if not prefix or t.name:find("^" .. prefix .. "%-") then out[#out + 1] = t end
    end
    return out
  end

  for _, who in ipairs({ { "root", ROOT_WHM }, { "res", RES_WHM } }) do
    it("rotates for " .. who[1] .. ": stored, verified with the new token, the old revoked, ACLs and IPs kept",
      function()
        local w = whm(who[1], who[2])
        local file = path()
        local first = assert(w:rotate { prefix = "ci", store = file, acls = { "list-accts", "manage-api-tokens" },
                                        whitelist_ips = { "127.0.0.0/8", "2001:db8::1" }, expires_in = "7d" })
        assert.are.same({ "list-accts", "manage-api-tokens" }, first.acls)
        local opts, meta = assert(store.load(file))
        assert.are.equal("whm", meta.kind)
        assert.are.equal(first.token, opts.token)
        assert.are.equal(who[1], opts.user)
        -- the next rotation, with the stored token itself: same ACLs and IPs, the old one revoked
        local again = assert(cptokens.whm(opts))
        local second, report = assert(again:rotate { prefix = "ci", store = file, expires_in = "7d" })
        assert.are.same(first.acls, second.acls)
        assert.are.same(first.whitelist_ips, second.whitelist_ips)
        assert.are.same({ first.name }, report.revoked)
        assert.is_true(report.switched, "went on with the new token before revoking its own")
        local left = held(who[1], "ci")
        assert.are.equal(1, #left)
        assert.are.equal(second.token, left[1].token)
        assert.are.equal(second.token, (store.load(file)).token)
        -- verified by a call made with the new token itself
        local verified = false
        for _, rec in ipairs(srv:log()) do
          if rec.uri == "/json-api/api_token_get_details" then verified = true end
        end
        assert.is_true(verified)
        -- given acls replace the inherited ones
        local third = assert(cptokens.whm((store.load(file))):rotate { prefix = "ci", store = file,
                                                                       acls = { "list-accts" } })
        assert.are.same({ "list-accts" }, third.acls)
        assert.are.same(first.whitelist_ips, third.whitelist_ips)
      end)
  end

  it("a failed verification revokes the new token and touches nothing old", function()
    local w = whm("root", ROOT_WHM)
    local file = path()
    local first = assert(w:rotate { prefix = "v", store = file, acls = { "list-accts" } })
    rotate._test_hook = function(step)
      if step == "create" then srv:fault("status", { status = 500, func = "api_token_get_details", times = 1 }) end
    end
    local tok, err = w:rotate { prefix = "v", store = file }
    assert.is_nil(tok)
    assert.are.equal("verify", err.step)
    assert.is_true(err.new_revoked)
    assert.are.equal(first.token, (store.load(file)).token)
    local left = held("root", "v")
    assert.are.equal(1, #left)
    assert.are.equal(first.name, left[1].name)
  end)

  it("a new token that cannot authenticate from here is never stored (an IP list elsewhere)", function()
    local w = whm("root", ROOT_WHM)
    local file = path()
    local tok, err = w:rotate { prefix = "far", store = file, whitelist_ips = { "192.0.2.0/24" } }
    assert.is_nil(tok)
    assert.are.equal("verify", err.step)
    assert.are.equal("auth", err.kind)
    assert.are.same({}, held("root", "far"))
    assert.is_nil((store.load(file)))
  end)

  it("a store that fails revokes the new token; a store function gets the record", function()
    local w = whm("res", RES_WHM)
    local tok, err = w:rotate { prefix = "s", store = function() return nil, "disk full" end }
    assert.is_nil(tok)
    assert.are.equal("store", err.step)
    assert.is_true(err.new_revoked)
    assert.are.same({}, held("res", "s"))
    local got
    tok = assert(w:rotate { prefix = "s", store = function(t) got = t; return true end, acls = { "passwd" } })
    assert.are.equal(tok.token, got.token)
    assert.are.same({ "passwd" }, got.acls)
  end)

  it("refuses what it cannot do before sending, and a cPanel token file as a WHM store", function()
    local w = whm("root", ROOT_WHM)
    local _, err = w:rotate { prefix = "bad prefix", store = path() }
    assert.are.equal("invalid", err.kind)
    _, err = w:rotate { prefix = "x", store = path(), acls = "all" }
    assert.are.equal("invalid", err.kind)
    assert.has_error(function() w:rotate { prefix = "x", store = path(), acl = {} } end)
    local file = path()
    assert(store.save(file, { name = "t", token = "T" }, { url = srv.whm_url, user = "root" }))
    _, err = w:rotate { prefix = "x", store = file }
    assert.are.equal("store", err.step)
    assert.is_truthy(err.message:find("cPanel user's token", 1, true), err.message)
    assert.are.equal(0, srv:count())
  end)

  it("a run killed after create is finished by the next from the journal", function()
    local w = whm("root", ROOT_WHM)
    local file = path()
    assert(w:rotate { prefix = "k", store = file })
    rotate._test_hook = function(step) if step == "create" then error("killed") end end
    assert.has_error(function() w:rotate { prefix = "k", store = file } end)
    rotate._test_hook = nil
    assert.are.equal(2, #held("root", "k"))
    local tok, report = assert(w:rotate { prefix = "k", store = file })
    assert.are.equal(1, #report.orphans)
    local left = held("root", "k")
    assert.are.equal(1, #left)
    assert.are.equal(tok.name, left[1].name)
  end)

  it("prune revokes expired rotations only", function()
    local w = whm("root", ROOT_WHM)
    srv:seed_whm_token("root", { name = "p-20200101000000", expires_at = 1000, create_time = 1 })
    srv:seed_whm_token("root", { name = "p-20200102000000", create_time = 2 })
    local report = assert(w:prune { prefix = "p" })
    assert.are.same({ "p-20200101000000" }, report.revoked)
    assert.are.equal(1, report.kept)
  end)
end)
