-- The fault matrix: every way the server or the network can misbehave, with every kind of
-- credential and every operation, through the libcurl transport, against the fake server.
-- Each case must end in its documented error kind, within its timeout, with no secret in
-- anything returned, and leave the client usable. README's "Fault matrix" lists the same
-- cases (checked at the end). The OpenResty transport runs its own copy of the matrix.
-- Memory safety of the same paths is checked by running this suite under valgrind
-- (make test-valgrind) and ASan/UBSan (make test-asan).
local H = require "spec.helpers"
local server = require "spec.support.server"
local util = require "spec.support.util"
local cptokens = require "cptokens"

local ALICE_PW = H.ALICE_PW
local TOKEN = "FAULTMATRIXTOKEN0000000000000042"
local ROOT_WHM = H.ROOT_WHM
local SECRETS = { ALICE_PW, TOKEN, ROOT_WHM }

-- Sanitizers and valgrind slow everything down: the time budgets get this much slack, and
-- the timeouts that must not fire (connecting, loading trust) scale the same way.
local SLACK = H.seconds(1.5)

local FAULTS = require "spec.support.fault_cases"

-- Where each case's target is, for the libcurl transport.
local TARGETS = {
  untrusted = function(srv) return srv.url end, -- with no cafile: the system store
  wronghost = function(srv) return srv.wronghost_url end,
  expired = function(srv) return srv.expired_url end,
  refused = function() return "https://127.0.0.1:" .. util.free_ports(1)[1] end,
  unresolvable = function() return FAULTS.UNRESOLVABLE_URL end,
}

local OPS = {
  create = function(c) return c:create("matrix_new") end,
  list = function(c) return c:list() end,
  rename = function(c) return c:rename("matrix", "matrix_renamed") end,
  revoke = function(c) return c:revoke("matrix") end,
}
local ALL_OPS = { "create", "list", "rename", "revoke" }

describe("fault matrix (libcurl transport)", function()
  local srv

  setup(function() srv = server.start() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function()
    srv:reset()
    srv:seed_token("alice", { name = "matrix", token = TOKEN })
  end)

  local CREDS = {
    password = function() return { url = srv.url, password = ALICE_PW } end,
    token = function() return { url = srv.url, token = TOKEN } end,
    whm_token = function() return { url = srv.whm_url, whm_token = ROOT_WHM, whm_user = "root" } end,
  }

  local function new_client(cred, case)
    local opts = CREDS[cred]()
    opts.user = "alice"
    opts.cafile = srv.cafile
    opts.timeout, opts.connect_timeout = H.seconds(5), H.seconds(2)
    for k, v in pairs(case.opts or {}) do opts[k] = v end
    if case.target == "untrusted" then opts.cafile = nil end
    if case.target then opts.url = TARGETS[case.target](srv) end
    local c, err = cptokens.new(opts)
    assert(c, err and tostring(err))
    return c, opts
  end

  local function check_failure(case, label, took, budget, v, err, extra)
    assert.is_nil(v, label .. ": expected a failure")
    assert.is_nil(extra, label .. ": a failure is exactly nil, err")
    assert.is_true(cptokens.is_error(err), label .. ": expected an error object, got " .. tostring(err))
    assert.are.equal(case.kind, err.kind, label .. ": " .. tostring(err))
    assert.are.equal(case.status, err.status, label .. ": " .. tostring(err))
    if case.errors then assert.are.same(case.errors, err.errors, label) end
    if case.says then assert.is_truthy(err.message:find(case.says, 1, true), label .. ": " .. err.message) end
    assert.is_nil(err.message:find("[\r\n]"), label .. ": the message is one line")
    assert.are.equal("cptokens: " .. case.kind .. ": " .. err.message, tostring(err))
    assert.is_true(took < budget + SLACK, ("%s: took %.2f s, budget %.2f s"):format(label, took, budget))
    if case.min then
      assert.is_true(took >= case.min, ("%s: gave up after %.2f s, before the timeout"):format(label, took))
    end
    H.assert_no_secret(err, SECRETS)
  end

  for _, case in ipairs(FAULTS.cases) do
    it(case.name .. " -> " .. case.kind, function()
      for _, cred in ipairs(FAULTS.uapi_creds(case)) do
        local c, opts = new_client(cred, case)
        -- A warm connection first (where the server is ours), so faults also hit a reused one.
        if not case.target then assert(c:list()) end
        local mode, params = FAULTS.fault(case, cred)
        if mode then srv:fault(mode, params) end
        for _, op in ipairs(case.ops or ALL_OPS) do
          local label = case.name .. " / " .. cred .. " / " .. op
          local t0 = H.clock()
          local v, err, extra = OPS[op](c)
          check_failure(case, label, H.clock() - t0, opts.timeout, v, err, extra)
        end
        H.assert_no_secret({ tostring(c), c:info() }, SECRETS)
        if mode then srv:clear_faults() end
        -- The client is still good once the server behaves.
        if not case.target then
          assert(c:list(), case.name .. " / " .. cred .. ": the client recovers")
        end
        c:close()
      end
      if not case.fault then
        -- No fault mode: nothing but TLS or the network refused, and nothing reached the API.
        assert.are.equal(0, srv:count())
      end
      -- Credentials never go anywhere the caller did not name.
      assert.are.equal(0, srv:count("other"))
    end)
  end

  -- The same matrix for the WHM API 1 operations of cptokens.whm (root's WHM token).
  local WHM_OPS = {
    create = function(w) return w:create("matrix_new", { acls = { "list-accts" } }) end,
    list = function(w) return w:list() end,
    rename = function(w) return w:update("matrix", { new_name = "matrix_renamed" }) end,
    revoke = function(w) return w:revoke { "matrix", "other" } end,
    details = function(w) return w:details(TOKEN) end,
    accounts = function(w) return w:accounts() end,
  }
  local WHM_ALL = { "create", "list", "rename", "revoke", "details", "accounts" }

  for _, case in ipairs(FAULTS.cases) do
    if FAULTS.applies(case, "whm") then
      it("WHM operations: " .. case.name .. " -> " .. case.kind, function()
        srv:seed_whm_token("root", { name = "matrix", token = TOKEN })
        local opts = { url = srv.whm_url, user = "root", token = ROOT_WHM, cafile = srv.cafile,
                       timeout = H.seconds(5), connect_timeout = H.seconds(2) }
        for k, v in pairs(case.opts or {}) do opts[k] = v end
        if case.target == "untrusted" then opts.cafile = nil end
        if case.target then opts.url = TARGETS[case.target](srv) end
        local w = assert(cptokens.whm(opts))
        if not case.target then assert(w:list()) end
        local mode, params = FAULTS.fault(case, "whm")
        if mode then srv:fault(mode, params) end
        for _, op in ipairs(case.ops or WHM_ALL) do
          local t0 = H.clock()
          local v, err, extra = WHM_OPS[op](w)
          check_failure(case, case.name .. " / whm / " .. op, H.clock() - t0, opts.timeout, v, err, extra)
        end
        H.assert_no_secret({ tostring(w), w:info() }, SECRETS)
        if mode then srv:clear_faults() end
        if not case.target then assert(w:list(), case.name .. " / whm: the client recovers") end
        w:close()
        if not case.fault then assert.are.equal(0, srv:count()) end
        assert.are.equal(0, srv:count("other"))
      end)
    end
  end

  it("a create whose request was sent on a reused connection that then died is not resent", function()
    -- libcurl retries a request on a fresh connection when a reused one dies before the reply.
    -- For create (and rename/revoke) that would be a blind retry of a non-idempotent call: the
    -- server may have made the token already. It must fail with "network" after one request.
    for _, op in ipairs { "create", "rename", "revoke" } do
      local c = new_client("password", {})
      assert(c:list())
      local before = srv:count()
      srv:fault("reset", { times = 1 })
      local v, err = OPS[op](c)
      assert.is_nil(v, op)
      assert.are.equal("network", err.kind, op .. ": " .. tostring(err))
      assert.are.equal(before + 1, srv:count(), op .. ": the request was sent once")
      c:close()
    end
    -- A list (safe to repeat) may be retried by libcurl, and then succeeds.
    local c = new_client("password", {})
    assert(c:list())
    srv:fault("reset", { times = 1 })
    local list, err = c:list()
    assert(list or err.kind == "network", tostring(err))
    c:close()
  end)

  it("the docs' fault matrix (docs/security.md) lists every case with its error kind", function()
    local f = assert(io.open("docs/security.md", "rb"))
    local readme = f:read("*a")
    f:close()
    local rows = {}
    for line in readme:gmatch("[^\n]+") do
      local name, kind = line:match("^|%s*(.-)%s*|%s*`(%l+)`")
      if name then rows[name] = kind end
    end
    for _, case in ipairs(FAULTS.cases) do
      assert.are.equal(case.kind, rows[case.name], "README row for: " .. case.name)
    end
  end)
end)
