-- cptokens.batch: many operations at once through libcurl's multi interface.
local H = require "spec.helpers"
local server = require "spec.support.server"
local cptokens = require "cptokens"

describe("cptokens.batch", function()
  local srv, alice, bob, whm

  setup(function()
    srv = server.start()
    local function new(opts) return H.client(srv, opts) end
    alice = new { user = "alice", password = srv.accounts.alice.password }
    bob = new { user = "bob", password = srv.accounts.bob.password, otp = srv.accounts.bob.otp }
    whm = new { url = srv.whm_url, user = "carol", whm_token = srv.accounts.root.token }
  end)
  teardown(function()
    for _, c in ipairs { alice, bob, whm } do c:close() end
    if srv then srv:stop() end
  end)
  before_each(function() srv:reset() end)

  describe("never locking the operator out (cPHulk)", function()
    local function new(opts) return H.client(srv, opts) end

    it("100 jobs sharing one bad credential make exactly one failed login; the rest say why", function()
      for _, bad in ipairs {
        { user = "alice", password = "wrong-password" },
        { user = "alice", token = "WRONGTOKEN000000000000000000000X" },
        { url = srv.whm_url, user = "alice", whm_token = "WRONGWHM000000000000000000000000" },
      } do
        srv:reset()
        local jobs = {}
        for i = 1, 100 do
          -- many clients with the same credential: one gate, whichever client
          local c = i % 2 == 0 and new(bad) or nil
          jobs[i] = { client = c or (jobs[1] and jobs[1].client) or new(bad), op = i % 3 == 0 and "list" or "revoke",
                      name = "t" .. i }
        end
        local results = cptokens.batch(jobs, { concurrency = 20 })
        local refused, held = 0, 0
        for _, r in ipairs(results) do
          assert.is_false(r.ok)
          assert.are.equal("auth", r.err.kind)
          if r.err.not_sent then
            held = held + 1
            assert.is_truthy(r.err.message:find("not sent", 1, true), r.err.message)
            assert.is_truthy(r.err.message:find("cPHulk", 1, true), r.err.message)
          else
            refused = refused + 1
          end
        end
        assert.are.equal(1, refused)
        assert.are.equal(99, held)
        assert.are.equal(1, srv:count(), "exactly one request reached the server")
      end
    end)

    it("a login page (HTML with status 200) is a refusal too: one request, the rest held back", function()
      srv:fault("login")
      local jobs = {}
      for i = 1, 10 do jobs[i] = { client = alice, op = "list" } end
      local results = cptokens.batch(jobs, { concurrency = 5 })
      srv:clear_faults()
      assert.are.equal(1, srv:count())
      for i, r in ipairs(results) do
        assert.are.equal("auth", r.err.kind)
        assert.are.equal(i > 1, r.err.not_sent == true)
      end
    end)

    it("a refused credential stops only its own jobs: other credentials and servers go on", function()
      local bad = new { user = "alice", password = "wrong-password" }
      local w = new { url = srv.whm_url, user = "alice", whm_token = srv.accounts.root.token }
      local jobs = {}
      for i = 1, 30 do
        local c = ({ bad, alice, w })[i % 3 + 1]
        jobs[i] = { client = c, op = "list" }
      end
      local results = cptokens.batch(jobs, { concurrency = 8 })
      for i, r in ipairs(results) do
        if jobs[i].client == bad then
          assert.is_false(r.ok)
        else
          assert.is_true(r.ok, tostring(r.err))
        end
      end
      assert.are.equal(1, srv:count { status = 401 })
      assert.are.equal(20, srv:count { status = 200 })
      bad:close()
      w:close()
    end)

    it("the first job of a credential goes alone, then the rest run concurrently #novalgrind", function()
      srv:fault("latency", { ms = 100 })
      local jobs = {}
      for i = 1, 9 do jobs[i] = { client = alice, op = "list" } end
      local results = cptokens.batch(jobs, { concurrency = 8 })
      srv:clear_faults()
      for _, r in ipairs(results) do assert.is_true(r.ok, tostring(r.err)) end
      local log = srv:log()
      assert.are.equal(9, #log)
      -- the probe was answered before any other request arrived
      for i = 2, #log do assert.is_true(log[i].time >= log[1].time + 0.09, "request " .. i) end
      -- and the other eight all arrived before the first of them was answered
      assert.is_true(log[9].time < log[2].time + 0.09, "the others ran concurrently")
    end)
  end)

  it("returns results in job order, each as the single call would", function()
    local jobs = {}
    for i = 1, 12 do
      jobs[i] = { client = alice, op = "create", name = "t" .. i, expires_in = i .. "h" }
    end
    local now = os.time()
    local results = cptokens.batch(jobs, { concurrency = 4 })
    assert.are.equal(12, #results)
    for i, r in ipairs(results) do
      assert.is_true(r.ok, tostring(r.err))
      assert.are.equal("t" .. i, r.value.name)
      assert.are.equal(32, #r.value.token)
      assert.is_true(math.abs(r.value.expires_at - (now + i * 3600)) <= 2)
    end
    -- the server holds exactly those tokens, with those secrets
    local stored = {}
    for _, t in ipairs(srv:tokens("alice")) do stored[t.name] = t.token end
    for i, r in ipairs(results) do assert.are.equal(stored["t" .. i], r.value.token) end

    local lists = cptokens.batch { { client = alice, op = "list" }, { client = bob, op = "list" } }
    assert.are.same(assert(alice:list()), lists[1].value)
    assert.are.same({}, lists[2].value)
  end)

  it("keeps per-job errors to their job", function()
    assert(alice:create("dup"))
    local results = cptokens.batch({
      { client = alice, op = "create", name = "dup" },              -- api
      { client = alice, op = "create", name = "bad name" },         -- invalid, never sent
      { client = alice, op = "create", name = "ok1" },
      { client = alice, op = "create", name = "p", expires_in = "soon" }, -- invalid
      { client = alice, op = "rename", name = "nope", new_name = "nope2" }, -- api
      { client = whm, op = "list" },                                -- api: carol lacks the feature
      { client = alice, op = "revoke", name = "dup" },
      { client = alice, op = "revoke", name = "never-was" },
    }, { concurrency = 3 })
    local kinds = {}
    for i, r in ipairs(results) do kinds[i] = r.ok and "ok" or r.err.kind end
    assert.are.same({ "api", "invalid", "ok", "invalid", "api", "api", "ok", "ok" }, kinds)
    assert.are.same({ "A conflicting API token with the name “dup” already exists." },
                    results[1].err.errors)
    assert.is_true(results[7].value)
    assert.is_true(results[7].existed)
    assert.is_false(results[8].existed)
    assert.is_true(cptokens.is_error(results[2].err))
    assert.is_truthy(tostring(results[2].err):find("^cptokens: invalid: create:"))
    -- the refused jobs never reached the server
    for _, rec in ipairs(srv:log()) do
      assert.are_not.equal("bad name", rec.args.name)
      assert.are_not.equal("p", rec.args.name)
    end
  end)

  it("reports transport failures per job and the others still succeed", function()
    srv:fault("status", { status = 503, times = 1 })
    local results = cptokens.batch({ { client = alice, op = "list" }, { client = alice, op = "list" },
                                     { client = alice, op = "list" } }, { concurrency = 1 })
    assert.are.equal("http", results[1].err.kind)
    assert.are.equal(503, results[1].err.status)
    assert.is_true(results[2].ok and results[3].ok)
  end)

  it("keeps within the concurrency bound (the server counts the connections)", function()
    srv:fault("latency", { ms = 100 })
    local jobs = {}
    for i = 1, 24 do jobs[i] = { client = alice, op = "list" } end
    local results = cptokens.batch(jobs, { concurrency = 4 })
    for _, r in ipairs(results) do assert.is_true(r.ok, tostring(r.err)) end
    local conns, n = {}, 0
    for _, rec in ipairs(srv:log()) do
      if not conns[rec.connection] then conns[rec.connection], n = true, n + 1 end
    end
    assert.is_true(n <= 4, n .. " connections for concurrency 4")
    assert.is_true(n >= 2, "the jobs ran concurrently")
    assert.are.equal(24, #srv:log())
  end)

  it("creates and revokes across several accounts and credential kinds", function()
    local jobs = {}
    for _, c in ipairs { alice, bob } do
      for i = 1, 3 do jobs[#jobs + 1] = { client = c, op = "create", name = "x" .. i } end
    end
    local aw = H.client(srv, { url = srv.whm_url, whm_token = H.ROOT_WHM })
    jobs[#jobs + 1] = { client = aw, op = "create", name = "via-whm", expires_in = "1d" }
    for _, r in ipairs(cptokens.batch(jobs)) do assert.is_true(r.ok, tostring(r.err)) end
    assert.are.equal(4, #srv:tokens("alice"))
    assert.are.equal(3, #srv:tokens("bob"))
    jobs = {}
    for _, c in ipairs { alice, bob } do
      for i = 1, 3 do jobs[#jobs + 1] = { client = c, op = "revoke", name = "x" .. i } end
    end
    jobs[#jobs + 1] = { client = aw, op = "revoke", name = "via-whm" }
    for _, r in ipairs(cptokens.batch(jobs, { concurrency = 2 })) do
      assert.is_true(r.ok and r.existed, tostring(r.err))
    end
    assert.are.same({}, srv:tokens("alice"))
    assert.are.same({}, srv:tokens("bob"))
    aw:close()
  end)

  it("does nothing for no jobs, and raises on misuse", function()
    assert.are.same({}, cptokens.batch {})
    assert.has_error(function() cptokens.batch("x") end)
    assert.has_error(function() cptokens.batch({ 1 }) end)
    assert.has_error(function() cptokens.batch({ { client = alice, op = "fly" } }) end)
    assert.has_error(function() cptokens.batch({ { client = alice, op = "list", nmae = "x" } }) end)
    assert.has_error(function() cptokens.batch({ { client = {}, op = "list" } }) end)
    assert.has_error(function() cptokens.batch({ { client = alice, op = "revoke" } }) end)
    assert.has_error(function() cptokens.batch({}, { concurrency = 0 }) end)
    assert.has_error(function() cptokens.batch({}, { concurency = 2 }) end)
    local closed = assert(cptokens.new { url = srv.url, user = "alice", token = "T" })
    closed:close()
    assert.has_error(function() cptokens.batch({ { client = closed, op = "list" } }) end)
  end)
  describe("per_server", function()
    it("holds the requests in flight to one server at the limit, measured by the server", function()
      srv:fault("latency", { ms = 50 })
      local c = H.client(srv, { url = srv.whm_url, user = "alice", whm_token = srv.accounts.root.token })
      local jobs = {}
      for i = 1, 30 do jobs[i] = { client = c, op = "list" } end
      local results = cptokens.batch(jobs, { concurrency = 20, per_server = 3 })
      for i = 1, 30 do assert.is_true(results[i].ok, tostring(results[i].err)) end
      assert.equal(3, srv:inflight().max)
      srv:reset()
      srv:fault("latency", { ms = 50 })
      cptokens.batch(jobs, { concurrency = 20 })
      assert.is_true(srv:inflight().max > 3, "without per_server the batch goes wider")
      c:close()
    end)

    it("refuses a per_server that is not a whole number from 1 to 1000", function()
      for _, bad in ipairs { 0, 1.5, 1001, "8" } do
        assert.has_error(function() cptokens.batch({}, { per_server = bad }) end,
          "cptokens.batch: per_server must be a whole number from 1 to 1000")
      end
    end)
  end)
end)
