-- Every operation, with every credential kind, against the fake cPanel server.
local H = require "spec.helpers"
local server = require "spec.support.server"
local cptokens = require "cptokens"

local ALICE_PW = H.ALICE_PW
local BOB_PW = H.BOB_PW
local ROOT_WHM = H.ROOT_WHM
local RES_WHM = H.RES_WHM

describe("operations", function()
  local srv

  setup(function() srv = server.start() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  local function client(opts) return H.client(srv, opts) end

  -- Creates a token for user with a password client; returns the token table.
  local function bootstrap(user, pw, name, otp)
    local c = client { user = user, password = pw, otp = otp }
    local tok = assert(c:create(name))
    c:close()
    return tok
  end

  local function find(list, name)
    for _, t in ipairs(list) do
      if t.name == name then return t end
    end
  end

  -- The same life cycle with any client: create, list, rename, revoke.
  local function life_cycle(c, user)
    local before, base = os.time(), #srv:tokens(user)
    local tok, err = c:create("cycle", { expires_in = "24h" })
    assert.is_nil(err)
    assert.are.equal("cycle", tok.name)
    assert.is_truthy(tok.token:match("^[0-9A-Z]+$"))
    assert.are.equal(32, #tok.token)
    assert.is_true(tok.create_time >= before - 1 and tok.create_time <= os.time() + 1)
    assert.is_true(tok.expires_at >= before + 86400 and tok.expires_at <= os.time() + 86400)
    -- The server holds exactly what we were given.
    local stored = srv:tokens(user)
    assert.are.equal(base + 1, #stored)
    assert.are.equal(tok.token, find(stored, "cycle").token)
    assert.are.equal(tostring(tok.expires_at), tostring(find(stored, "cycle").expires_at))

    local list = assert(c:list())
    assert.are.equal(base + 1, #list)
    assert.are.same({ name = "cycle", create_time = tok.create_time, expires_at = tok.expires_at,
                      has_full_access = true }, find(list, "cycle"))

    assert.is_true(assert(c:rename("cycle", "cycle-old")))
    list = assert(c:list())
    assert.is_nil(find(list, "cycle"))
    assert.is_table(find(list, "cycle-old"))
    assert.are.equal(tok.token, find(srv:tokens(user), "cycle-old").token) -- same secret

    local ok, existed = c:revoke("cycle-old")
    assert.is_true(ok)
    assert.is_true(existed)
    ok, existed = c:revoke("cycle-old")
    assert.is_true(ok)
    assert.is_false(existed)
    assert.are.equal(base, #assert(c:list()))
  end

  it("works with an API token", function()
    local boot = bootstrap("alice", ALICE_PW, "boot")
    local c = client { user = "alice", token = boot.token }
    life_cycle(c, "alice")
    c:close()
  end)

  it("works with a password (HTTP Basic)", function()
    local c = client { user = "alice", password = ALICE_PW }
    life_cycle(c, "alice")
    local log = srv:log()
    assert.are.equal("basic", log[#log].auth)
    c:close()
  end)

  it("works with a password and a two-factor code, and fails without the code", function()
    local c = client { user = "bob", password = BOB_PW, otp = H.BOB_OTP }
    life_cycle(c, "bob")
    local log = srv:log()
    assert.is_true(log[#log].otp_present)
    c:close()
    local no_otp = client { user = "bob", password = BOB_PW }
    local list, err = no_otp:list()
    assert.is_nil(list)
    assert.are.equal("auth", err.kind)
    assert.are.equal(401, err.status)
  end)

  it("works with a WHM token acting for the user (root and an owning reseller)", function()
    local c = client { url = srv.whm_url, user = "alice", whm_token = ROOT_WHM }
    life_cycle(c, "alice")
    local log = srv:log()
    assert.are.equal("whm", log[#log].auth)
    assert.are.equal("/json-api/cpanel", log[#log].uri)
    c:close()
    local r = client { url = srv.whm_url, user = "alice", whm_user = "res", whm_token = RES_WHM }
    life_cycle(r, "alice")
    r:close()
  end)

  it("reports WHM's own failure shape as an api error", function()
    local r = client { url = srv.whm_url, user = "bob", whm_user = "res", whm_token = RES_WHM }
    local list, err = r:list()
    assert.is_nil(list)
    assert.are.equal("api", err.kind)
    assert.are.same({ "User parameter is invalid or was not supplied" }, err.errors)
    assert.are.equal("cptokens: api: User parameter is invalid or was not supplied",
                     tostring(err))
  end)

  it("creates tokens that never expire, or expire at an epoch or an ISO time", function()
    local c = client { user = "alice", password = ALICE_PW }
    local never = assert(c:create("never"))
    assert.is_nil(never.expires_at)
    local at = os.time() + 3600
    local e = assert(c:create("epoch", { expires_at = at }))
    assert.are.equal(at, e.expires_at)
    local iso = assert(c:create("iso", { expires_at = "2999-12-31T23:59:59Z" }))
    assert.are.equal(32503679999, iso.expires_at)
    local by_name = {}
    for _, t in ipairs(assert(c:list())) do by_name[t.name] = t end
    assert.is_nil(by_name.never.expires_at)
    assert.are.equal(at, by_name.epoch.expires_at)
    assert.are.equal(32503679999, by_name.iso.expires_at)
  end)

  it("revokes a token the server made when its reply is unusable, and says so", function()
    for _, cr in ipairs { { user = "alice", password = ALICE_PW },
                          { url = srv.whm_url, user = "alice", whm_token = srv.accounts.root.token } } do
      local c = client(cr)
      for _, how in ipairs { "long", "missing", "number" } do
        srv:fault("bad_create", { value = how, times = 1 })
        local tok, err = c:create("unusable")
        assert.is_nil(tok)
        assert.are.equal("protocol", err.kind, tostring(err))
        assert.is_true(err.created)
        assert.is_true(err.revoked)
        assert.is_truthy(err.message:find("was revoked", 1, true), err.message)
        assert.are.same({}, srv:tokens("alice"), how)
      end
      srv:fault("bad_create", { times = 1 })
      local res = cptokens.batch { { client = c, op = "create", name = "unusable" } }
      assert.is_false(res[1].ok)
      assert.is_true(res[1].err.revoked)
      assert.are.same({}, srv:tokens("alice"))
      c:close()
    end
  end)

  it("refuses an expiry that is not in the future, epoch 0 and 1970 included: never is no expiry", function()
    local c = client { user = "alice", password = ALICE_PW }
    local before = srv:count()
    for _, o in ipairs { { expires_at = 0 }, { expires_at = "0" }, { expires_at = "1970-01-01T00:00:00Z" },
                         { expires_at = os.time() - 10 }, { expires_in = "0s" }, { expires_at = "+0s" } } do
      local k, v = next(o)
      local tok, err = c:create("past", o)
      assert.is_nil(tok, k .. " = " .. tostring(v))
      assert.are.equal("invalid", err.kind, tostring(err))
      assert.is_nil(err.message:find("\n"))
    end
    local res = cptokens.batch { { client = c, op = "create", name = "past", expires_at = 0 } }
    assert.is_false(res[1].ok)
    assert.are.equal("invalid", res[1].err.kind)
    assert.are.equal(before, srv:count(), "nothing was sent")
    assert.are.same({}, srv:tokens("alice"))
  end)

  it("sorts the list by create_time then name, whatever order the server sends", function()
    local now = os.time()
    for i, name in ipairs { "b", "a", "d", "c", "e" } do
      srv:seed_token("alice", { name = name, token = ("%032d"):format(i),
                                create_time = now - (i <= 2 and 100 or 50) })
    end
    local c = client { user = "alice", password = ALICE_PW }
    for _ = 1, 5 do -- the fake shuffles each time
      local names = {}
      for _, t in ipairs(assert(c:list())) do names[#names + 1] = t.name end
      assert.are.same({ "a", "b", "c", "d", "e" }, names)
    end
  end)

  it("reads loosely typed fields: expires_at and status in all their forms", function()
    local now = os.time()
    local forms = { n = now + 10, q = tostring(now + 20), null = "null", empty = "", zero = "0",
                    nzero = 0 }
    local i = 0
    for name, v in pairs(forms) do
      i = i + 1
      srv:seed_token("alice", { name = name, token = ("%032d"):format(i), create_time = now - i,
                                expires_at = v ~= "null" and v or nil })
    end
    srv:set { loose = true }
    local c = client { user = "alice", password = ALICE_PW }
    local by_name = {}
    for _, t in ipairs(assert(c:list())) do by_name[t.name] = t end
    assert.are.equal(now + 10, by_name.n.expires_at)
    assert.are.equal(now + 20, by_name.q.expires_at)
    for _, never in ipairs { "null", "empty", "zero", "nzero" } do
      assert.is_nil(by_name[never].expires_at, never)
      assert.is_false(cptokens.time.is_expired(by_name[never]))
    end
    if math.type then assert.are.equal("integer", math.type(by_name.q.expires_at)) end
    -- status "1" and a quoted create_time are a success too
    local tok = assert(c:create("loose"))
    assert.are.equal("number", type(tok.create_time))
  end)

  it("keeps per-account state apart", function()
    local a = client { user = "alice", password = ALICE_PW }
    local b = client { user = "bob", password = BOB_PW, otp = H.BOB_OTP }
    assert(a:create("mine"))
    assert.are.same({}, assert(b:list()))
    assert.are.equal(1, #assert(a:list()))
  end)

  it("lists without ever returning a secret", function()
    local c = client { user = "alice", password = ALICE_PW }
    local tok = assert(c:create("secretive", { expires_in = "1h" }))
    H.assert_no_secret(assert(c:list()), { tok.token, ALICE_PW })
  end)

  it("authenticates with a token the client made, and that token can revoke itself", function()
    local boot = bootstrap("alice", ALICE_PW, "self")
    local c = client { user = "alice", token = boot.token }
    local ok, existed = c:revoke("self")
    assert.is_true(ok and existed)
    local list, err = c:list()
    assert.is_nil(list)
    assert.are.equal("auth", err.kind)
    assert.are.equal(401, err.status)
  end)
end)
