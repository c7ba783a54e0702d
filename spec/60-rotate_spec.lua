-- Rotation, pruning and auditing against the fake cPanel server (no mocked transport),
-- including a process killed (SIGKILL) after each step of a rotation.
local H = require "spec.helpers"
local server = require "spec.support.server"
local util = require "spec.support.util"
local cptokens = require "cptokens"
local rotate = require "cptokens.rotate"
local store = require "cptokens.store"

local ALICE_PW = H.ALICE_PW
local ROOT_WHM = H.ROOT_WHM
local DAY = 86400

local shell_quote, capture, read_file, write_file = util.shell_quote, util.capture, util.read_file, util.write_file
local LUA = util.LUA -- for the subprocesses

-- A token value as cPanel makes them: 32 characters 0-9A-Z.
local function token_value(i)
  return ("T%031d"):format(i)
end

describe("rotation", function()
  local srv, tmp

  setup(function()
    srv = server.start()
    tmp = util.tmpdir("rotate")
  end)
  teardown(function()
    if srv then srv:stop() end
    util.rmdir(tmp)
  end)
  before_each(function()
    srv:reset()
    rotate._test_hook = nil
  end)
  after_each(function() rotate._test_hook = nil end)

  local function client(opts) return H.client(srv, opts) end

  -- The names the server holds for alice (sorted), optionally only prefix's rotations.
  local function names(prefix)
    local out = {}
    for _, t in ipairs(srv:tokens("alice")) do
      if not prefix or rotate.matches(t.name, prefix) then out[#out + 1] = t.name end
    end
    table.sort(out)
    return out
  end

  local function server_token(name)
    for _, t in ipairs(srv:tokens("alice")) do
      if t.name == name then return t end
    end
  end

  local function sorted(t)
    local c = {}
    for i, v in ipairs(t) do c[i] = v end
    table.sort(c)
    return c
  end

  -- A fresh directory under tmp.
  local dirs = 0
  local function fresh_dir()
    dirs = dirs + 1
    local d = tmp .. "/d" .. dirs
    assert(util.execute("mkdir -p " .. shell_quote(d)))
    return d
  end

  local function remember(into)
    return function(tok)
      into[#into + 1] = tok
      return true
    end
  end

  local function fails(kind, step, value, err)
    assert.is_nil(value)
    assert.is_true(cptokens.is_error(err), "expected an error object, got " .. tostring(err))
    assert.are.equal(kind, err.kind, tostring(err))
    assert.are.equal(step, err.step, tostring(err))
    assert.is_nil(err.message:find("\n"), "message is one line")
    if step then assert.is_truthy(err.message:find(step, 1, true), err.message) end
    return err
  end

  describe("rotate", function()
    it("creates <prefix>-<UTC YYYYMMDDHHMMSS> with the expiry, verifies it, stores it before revoking",
      function()
      local now = os.time()
      srv:seed_token("alice", { name = "deploy-20200101000000", token = token_value(1), create_time = now - 1000 })
      local c = client()
      local seen = {}
      local before = os.time()
      local tok, report = c:rotate {
        prefix = "deploy", expires_in = "30d",
        store = function(t)
          -- at this point the old token is still there, and no revoke was sent
          seen.tok = t
          seen.log_len = #srv:log()
          seen.names = names()
          return true
        end,
      }
      local after = os.time()
      assert.is_table(tok, tostring(report))
      local stamp = tok.name:match("^deploy%-(%d+)$")
      assert.is_truthy(stamp, tok.name)
      assert.are.equal(14, #stamp)
      assert.is_true(stamp >= os.date("!%Y%m%d%H%M%S", before) and stamp <= os.date("!%Y%m%d%H%M%S", after))
      assert.is_true(tok.expires_at >= before + 30 * DAY and tok.expires_at <= after + 30 * DAY)
      assert.are.equal(tostring(tok.expires_at), tostring(server_token(tok.name).expires_at))
      assert.are.equal(tok.token, server_token(tok.name).token)
      assert.are.same({ name = tok.name, token = tok.token, create_time = tok.create_time,
                        expires_at = tok.expires_at }, seen.tok)
      assert.are.same(sorted { "deploy-20200101000000", tok.name }, seen.names)
      assert.are.same({ created = tok.name, revoked = { "deploy-20200101000000" }, kept = {}, orphans = {},
                        foreign = {}, switched = false }, report)
      assert.are.same({ tok.name }, names())

      -- The order on the wire: list, create, verify with the new token, (store), revoke.
      local log = srv:log()
      local steps = {}
      for i, rec in ipairs(log) do
        local fn = rec.uri:match("^/execute/Tokens/(.*)$")
        steps[#steps + 1] = fn .. "/" .. rec.auth
        if fn == "revoke" then assert.is_true(i > seen.log_len, "revoke after store") end
      end
      assert.are.same({ "list/basic", "create_full_access/basic", "list/cpanel", "revoke/basic" }, steps)
      assert.are.equal(3, seen.log_len, "stored after the verifying call")
    end)

    it("accepts expires_at as an epoch or ISO 8601, and no expiry at all", function()
      local c = client()
      local at = os.time() + 3600
      local tok = assert(c:rotate { prefix = "a", expires_at = at, store = remember {} })
      assert.are.equal(at, tok.expires_at)
      tok = assert(c:rotate { prefix = "b", expires_at = "2999-12-31T23:59:59Z", store = remember {} })
      assert.are.equal(32503679999, tok.expires_at)
      tok = assert(c:rotate { prefix = "c", store = remember {} })
      assert.is_nil(tok.expires_at)
    end)

    for _, keep in ipairs { 0, 1, 2, 3 } do
      it("keeps the " .. keep .. " newest old token(s) with keep = " .. keep, function()
        local now = os.time()
        local old = { "deploy-20200101000000", "deploy-20200101000100", "deploy-20200101000200" }
        for i, name in ipairs(old) do
          srv:seed_token("alice", { name = name, token = token_value(i), create_time = now - 1000 + i * 100 })
        end
        local tok, report = assert(client():rotate { prefix = "deploy", keep = keep, store = remember {} })
        local want_kept, want_revoked = {}, {}
        for i = #old, 1, -1 do
          if #old - i < keep then want_kept[#want_kept + 1] = old[i] else want_revoked[#want_revoked + 1] = old[i] end
        end
        assert.are.same(want_kept, report.kept)
        assert.are.same(want_revoked, report.revoked)
        local all = { tok.name }
        for _, n in ipairs(want_kept) do all[#all + 1] = n end
        assert.are.same(sorted(all), names())
      end)
    end

    it("touches only names of the form <prefix>-<14 digits>[-N]", function()
      local now = os.time()
      local others = { "deploy", "deploy-old-manual", "deployer-20200101000000", "deploy-2020010100000",
                       "deploy-202001010000001", "deploy-20200101000000-x", "deploy-20200101000000-0",
                       "xdeploy-20200101000000", "deploy_20200101000000", "Deploy-20200101000000",
                       "deploy-20200101000000-20200101000000" }
      for i, name in ipairs(others) do
        srv:seed_token("alice", { name = name, token = token_value(i), create_time = now - 500 })
      end
      srv:seed_token("alice", { name = "deploy-20200101000000", token = token_value(50), create_time = now - 400 })
      srv:seed_token("alice", { name = "deploy-20200101000000-2", token = token_value(51), create_time = now - 400 })
      local tok, report = assert(client():rotate { prefix = "deploy", store = remember {} })
      assert.are.same({ "deploy-20200101000000-2", "deploy-20200101000000" }, report.revoked)
      local want = { tok.name }
      for _, n in ipairs(others) do want[#want + 1] = n end
      assert.are.same(sorted(want), names())
      assert.is_true(rotate.matches("deploy-20200101000000-99", "deploy"))
      assert.is_false(rotate.matches("deploy-20200101000000-100", "deploy"))
    end)

    describe("refuses before anything is sent", function()
      local bad = {
        { "an empty prefix", "" },
        { "a prefix with a space", "bad prefix" },
        { "a prefix with a slash", "a/b" },
        { "a prefix with a dot", "a.b" },
        { "a prefix with a newline", "a\nb" },
        { "a prefix with a non-ASCII letter", "d\195\169ploy" },
        { "a prefix too long for the suffix (33 characters)", ("x"):rep(33) },
      }
      for _, case in ipairs(bad) do
        it(case[1], function()
          local stored = {}
          local res, err = client():rotate { prefix = case[2], store = remember(stored) }
          fails("invalid", nil, res, err)
          assert.is_truthy(err.message:find("prefix", 1, true))
          assert.are.equal(0, srv:count(), "nothing was sent")
          assert.are.equal(0, #stored)
        end)
      end

      it("an expiry in the past, or unreadable", function()
        local c = client()
        for _, o in ipairs { { expires_at = os.time() - 10 }, { expires_at = "2001-01-01T00:00:00Z" },
                             { expires_in = "soon" }, { expires_in = "0h" }, { keep = -1 }, { keep = 1.5 } } do
          o.prefix, o.store = "deploy", remember {}
          fails("invalid", nil, c:rotate(o))
        end
        assert.are.equal(0, srv:count(), "nothing was sent")
      end)

      it("a store path in a directory that does not exist, or cannot be written", function()
        for _, path in ipairs { tmp .. "/no/such/dir/token.json", "/proc/cptokens-token.json",
                                tmp .. "/afile/token.json", tmp } do
          write_file(tmp .. "/afile", "x")
          local res, err = client():rotate { prefix = "deploy", store = path }
          fails("invalid", "store", res, err)
          assert.is_truthy(err.message:find(path, 1, true), err.message)
          assert.is_truthy(err.message:find("nothing was sent", 1, true), err.message)
        end
        assert.are.equal(0, srv:count(), "nothing was sent")
        assert.are.same({}, names())
      end)

      it("a store path holding something that is not a token file", function()
        local path = fresh_dir() .. "/precious.txt"
        write_file(path, "not a token file\n")
        local res, err = client():rotate { prefix = "deploy", store = path }
        fails("invalid", "store", res, err)
        assert.is_truthy(err.message:find("refusing to overwrite", 1, true), err.message)
        assert.are.equal("not a token file\n", read_file(path))
        assert.are.equal(0, srv:count())
      end)

      it("a store path holding another account's token", function()
        local path = fresh_dir() .. "/token.json"
        assert(store.save(path, { name = "x", token = token_value(1), create_time = 1 },
                          { url = srv.url, user = "bob" }))
        local before = read_file(path)
        local res, err = client():rotate { prefix = "deploy", store = path }
        fails("invalid", "store", res, err)
        assert.are.equal(before, read_file(path))
        assert.are.equal(0, srv:count())
      end)

      it("raises for misuse", function()
        local c = client()
        local cases = {
          { nil, "'prefix' is required" }, { "deploy", "options must be a table" },
          { { store = remember {} }, "'prefix' is required" },
          { { prefix = "deploy" }, "'store' is required" },
          { { prefix = 42, store = remember {} }, "prefix must be a string" },
          { { prefix = "deploy", store = 42 }, "'store' must be a function or a path" },
          { { prefix = "deploy", store = remember {}, keep = "1" }, "'keep' must be a number" },
          { { prefix = "deploy", store = remember {}, verify = "yes" }, "'verify' must be a boolean" },
          { { prefix = "deploy", store = remember {}, expries_in = "1d" }, "unknown option 'expries_in'" },
          { { prefix = "deploy", store = remember {}, expires_in = "1d", expires_at = 5 }, "not both" },
          { { prefix = "deploy", store = remember {}, expires_in = {} }, "must be a string or a number" },
          { { prefix = "deploy", store = "/tmp/x.json", current = "deploy-1" }, "'current' is for a store function" },
        }
        for _, case in ipairs(cases) do
          local ok, msg = pcall(c.rotate, c, case[1])
          assert.is_false(ok)
          assert.is_truthy(tostring(msg):find(case[2], 1, true), tostring(msg))
        end
        assert.are.equal(0, srv:count())
      end)
    end)

    describe("when the store fails", function()
      it("revokes the new token, touches nothing old, and says the store step failed", function()
        srv:seed_token("alice", { name = "deploy-20200101000000", token = token_value(1), create_time = os.time() - 100 })
        local made = {}
        local res, err = client():rotate { prefix = "deploy", store = function(t)
          made[#made + 1] = t
          return nil, "disk full"
        end }
        fails("invalid", "store", res, err)
        assert.is_truthy(err.message:find("disk full", 1, true), err.message)
        assert.is_truthy(err.message:find("was revoked", 1, true), err.message)
        assert.are.equal(1, #made)
        assert.are.equal(made[1].name, err.new_name)
        assert.is_true(err.new_revoked)
        assert.are.same({ "deploy-20200101000000" }, names())
        assert.are.equal(1, srv:count { uri = "/execute/Tokens/revoke" })
        H.assert_no_secret(err, { made[1].token })
      end)

      it("treats a store function that raises, or returns nothing, as a failure; hides the token", function()
        local made = {}
        local res, err = client():rotate { prefix = "deploy", store = function(t)
          made[#made + 1] = t
          error("cannot write " .. t.token .. " anywhere")
        end }
        fails("invalid", "store", res, err)
        assert.is_truthy(err.message:find("<token>", 1, true), err.message)
        H.assert_no_secret(err, { made[1].token })
        res, err = client():rotate { prefix = "deploy", store = function() end }
        fails("invalid", "store", res, err)
        assert.are.same({}, names())
      end)

      it("keeps the kind of an error object the store function returns", function()
        local res, err = client():rotate { prefix = "deploy", store = function()
          return nil, cptokens.error("timeout", "vault did not answer")
        end }
        fails("timeout", "store", res, err)
        assert.are.same({}, names())
      end)

      it("says so when the new token cannot be revoked either", function()
        local res, err = client():rotate { prefix = "deploy", store = function()
          srv:fault("status", { status = 503, times = 1 })
          return nil, "disk full"
        end }
        fails("invalid", "store", res, err)
        assert.is_false(err.new_revoked)
        assert.is_truthy(err.message:find("by hand", 1, true), err.message)
        assert.are.equal(1, #names("deploy")) -- left for the next run (an orphan) or a person
      end)
    end)

    describe("when the verification fails", function()
      it("revokes the new token, never stores it, touches nothing old (a 500 on the verifying call)", function()
        srv:seed_token("alice", { name = "deploy-20200101000000", token = token_value(1), create_time = os.time() - 100 })
        rotate._test_hook = function(step)
          if step == "create" then srv:fault("status", { status = 500, times = 1 }) end
        end
        local stored = {}
        local res, err = client():rotate { prefix = "deploy", store = remember(stored) }
        fails("http", "verify", res, err)
        assert.are.equal(500, err.status)
        assert.is_true(err.new_revoked)
        assert.are.equal(0, #stored, "verified before it is stored")
        assert.are.same({ "deploy-20200101000000" }, names())
      end)

      it("revokes the new token when the server refuses it (401)", function()
        rotate._test_hook = function(step)
          if step == "create" then srv:fault("status", { status = 401, times = 1 }) end
        end
        local stored = {}
        local res, err = client():rotate { prefix = "deploy", store = remember(stored) }
        fails("auth", "verify", res, err)
        assert.are.equal(0, #stored)
        assert.are.same({}, names())
      end)

      it("with a store path: a 503 at verify leaves the file holding the old token, which works", function()
        local path = fresh_dir() .. "/v.json"
        assert(client():rotate { prefix = "vf", store = path })
        local opts0, meta0 = assert(store.load(path))
        local c = assert(cptokens.new(opts0))
        srv:fault("status", { status = 503, func = "list", skip = 1, times = 1 })
        local res, err = c:rotate { prefix = "vf", store = path }
        fails("http", "verify", res, err)
        local opts, meta = assert(store.load(path))
        assert.are.equal(meta0.name, meta.name)
        assert.are.equal(opts0.token, opts.token)
        assert.is_table(assert(cptokens.new(opts)):list(), "the stored token still authenticates")
        assert.are.same({ meta0.name }, names("vf"))
      end)

      it("does not verify with verify = false", function()
        local tok = assert(client():rotate { prefix = "deploy", verify = false, store = remember {} })
        assert.are.equal(0, srv:count { auth = "cpanel" })
        assert.are.same({ tok.name }, names())
      end)
    end)

    describe("when another step fails", function()
      it("list: nothing is created", function()
        srv:fault("status", { status = 500, times = 1 })
        local stored = {}
        local res, err = client():rotate { prefix = "deploy", store = remember(stored) }
        fails("http", "list", res, err)
        assert.are.equal(0, #stored)
        assert.are.same({}, names())
      end)

      it("create: nothing is stored or revoked", function()
        srv:seed_token("alice", { name = "deploy-20200101000000", token = token_value(1), create_time = os.time() - 100 })
        rotate._test_hook = function(step)
          if step == "list" then srv:fault("status", { status = 500, times = 1 }) end
        end
        local stored = {}
        local res, err = client():rotate { prefix = "deploy", store = remember(stored) }
        fails("http", "create", res, err)
        assert.are.equal(0, #stored)
        assert.are.same({ "deploy-20200101000000" }, names())
      end)

      it("revoke: the rotation stands, the new token is kept, report.errors names what remains", function()
        srv:seed_token("alice", { name = "deploy-20200101000000", token = token_value(1), create_time = os.time() - 200 })
        srv:seed_token("alice", { name = "deploy-20200101000100", token = token_value(2), create_time = os.time() - 100 })
        rotate._test_hook = function(step)
          if step == "store" then srv:fault("status", { status = 500, times = 1 }) end
        end
        local stored = {}
        local tok, report = client():rotate { prefix = "deploy", store = remember(stored) }
        assert.is_table(tok, tostring(report))
        assert.are.equal(tok.token, stored[1].token)
        assert.are.same({ "deploy-20200101000000" }, report.revoked)
        assert.are.equal(1, #report.errors)
        assert.are.equal("deploy-20200101000100", report.errors[1].name)
        assert.are.equal("http", report.errors[1].err.kind)
        assert.are.same(sorted { tok.name, "deploy-20200101000100" }, names())
      end)
    end)

    describe("self-rotation", function()
      it("a token client that revokes its own token goes on with the new one", function()
        local first = {}
        assert(client():rotate { prefix = "deploy", store = remember(first) })
        local c = client { token = first[1].token }
        local current = first[1].name
        for round = 1, 3 do
          local got = {}
          local tok, report = c:rotate { prefix = "deploy", store = remember(got), current = current }
          current = tok and tok.name
          assert.is_table(tok, tostring(report))
          assert.is_true(report.switched, "round " .. round)
          assert.are.equal(1, #report.revoked)
          assert.is_table(c:list(), "subsequent calls work")
          assert.are.same({ tok.name }, names())
        end
        assert.are.equal("token", c:info().credential)
      end)

      it("also when its own token is revoked first and later revocations need the new one", function()
        local now = os.time()
        srv:seed_token("alice", { name = "deploy-20200101000000", token = token_value(1), create_time = now - 200 })
        srv:seed_token("alice", { name = "deploy-20200101000100", token = token_value(2), create_time = now - 100 })
        -- the client's own token is the newest old one: it is revoked first
        local c = client { token = token_value(2) }
        local tok, report = c:rotate { prefix = "deploy", store = remember {}, current = "deploy-20200101000100" }
        assert.is_table(tok, tostring(report))
        assert.is_nil(report.errors)
        assert.is_true(report.switched)
        assert.are.same({ "deploy-20200101000100", "deploy-20200101000000" }, report.revoked)
        assert.are.same({ tok.name }, names())
        assert.is_table(c:list())
        assert.are.equal(0, srv:count { status = 401 }, "no call was made with a revoked token")
      end)

      it("without current, a token client that revoked its own token stops at the first refusal", function()
        local now = os.time()
        srv:seed_token("alice", { name = "deploy-20200101000000", token = token_value(1), create_time = now - 200 })
        srv:seed_token("alice", { name = "deploy-20200101000100", token = token_value(2), create_time = now - 100 })
        local c = client { token = token_value(2) }
        local tok, report = c:rotate { prefix = "deploy", store = remember {} }
        assert.is_table(tok, tostring(report))
        assert.are.same({ "deploy-20200101000100" }, report.revoked)
        assert.are.equal(1, #report.errors)
        assert.are.equal("auth", report.errors[1].err.kind)
        -- one failed login, never a retry with the same refused credential (cPHulk)
        assert.are.equal(1, srv:count { auth = "cpanel", status = 401 })
      end)

      it("with a store path holding the client's own token, switches before revoking it", function()
        local path = fresh_dir() .. "/self.json"
        assert(client():rotate { prefix = "deploy", store = path })
        local c = assert(cptokens.new(assert(store.load(path))))
        for _ = 1, 2 do
          local tok, report = c:rotate { prefix = "deploy", store = path }
          assert.is_table(tok, tostring(report))
          assert.is_true(report.switched)
          assert.is_nil(report.errors)
          assert.are.same({ tok.name }, names())
        end
        assert.are.equal(0, srv:count { status = 401 })
        assert.is_table(c:list())
      end)

      it("a token client whose token is not rotated keeps it", function()
        srv:seed_token("alice", { name = "admin", token = token_value(9), create_time = os.time() - 100 })
        srv:seed_token("alice", { name = "deploy-20200101000000", token = token_value(1), create_time = os.time() - 50 })
        local c = client { token = token_value(9) }
        local tok, report = assert(c:rotate { prefix = "deploy", store = remember {} })
        assert.is_false(report.switched)
        -- revoke the new token behind the client's back: the client still works with its own
        assert(client():revoke(tok.name))
        assert.is_table(c:list())
      end)
    end)

    it("gives unique names to rotations within one second, in creation order", function()
      local c = client()
      local stamp, tok
      for _ = 1, 5 do
        stamp = os.date("!%Y%m%d%H%M%S")
        srv:reset()
        srv:seed_token("alice", { name = "deploy-" .. stamp, token = token_value(1), create_time = os.time() })
        srv:seed_token("alice", { name = "deploy-" .. stamp .. "-2", token = token_value(2), create_time = os.time() })
        tok = assert(c:rotate { prefix = "deploy", keep = 5, store = remember {} })
        if os.date("!%Y%m%d%H%M%S") == stamp then break end
      end
      assert.are.equal("deploy-" .. stamp .. "-3", tok.name)
      -- Back to back: all distinct, and each newer than the one before.
      srv:reset()
      local made = {}
      for i = 1, 4 do made[i] = assert(c:rotate { prefix = "deploy", keep = 10, store = remember {} }).name end
      for i = 2, 4 do
        assert.are_not.equal(made[i - 1], made[i])
        local s1, n1 = rotate.parse_name(made[i - 1], "deploy")
        local s2, n2 = rotate.parse_name(made[i], "deploy")
        assert.is_true(s1 < s2 or (s1 == s2 and n1 < n2), made[i - 1] .. " before " .. made[i])
      end
      assert.are.equal(4, #names("deploy"))
    end)

    it("fits a 32-character prefix with a two-digit suffix into cPanel's 50", function()
      local prefix = ("p"):rep(32)
      local c = client()
      local stamp, tok
      for _ = 1, 5 do
        stamp = os.date("!%Y%m%d%H%M%S")
        srv:reset()
        srv:seed_token("alice", { name = prefix .. "-" .. stamp, create_time = os.time() })
        for n = 2, 9 do srv:seed_token("alice", { name = prefix .. "-" .. stamp .. "-" .. n, create_time = os.time() }) end
        tok = assert(c:rotate { prefix = prefix, keep = 20, store = remember {} })
        if os.date("!%Y%m%d%H%M%S") == stamp then break end
      end
      assert.are.equal(prefix .. "-" .. stamp .. "-10", tok.name)
      assert.are.equal(50, #tok.name)
    end)

    it("stores to a path: a token file that recreates a working client", function()
      local path = fresh_dir() .. "/deploy.json"
      local tok, report = client():rotate { prefix = "deploy", expires_in = "1d", store = path }
      assert.is_table(tok, tostring(report))
      assert.are.equal("600", util.file_mode(path))
      local opts, meta = assert(store.load(path))
      assert.are.same({ url = srv.url, user = "alice", token = tok.token, cafile = srv.cafile }, opts)
      assert.are.same({ name = tok.name, create_time = tok.create_time, expires_at = tok.expires_at,
                        history = {} }, meta)
      local c = assert(cptokens.new(opts))
      assert.is_table(c:list())
      -- and rotating from it again: the file follows
      local tok2 = assert(c:rotate { prefix = "deploy", expires_in = "1d", store = path })
      local _, meta2 = assert(store.load(path))
      assert.are.equal(tok2.name, meta2.name)
      assert.are.same({ tok2.name }, names())
      assert.is_table(c:list())
    end)

    it("works for a WHM client, verifying and storing against the cPanel URL", function()
      local path = fresh_dir() .. "/deploy.json"
      local w = client { url = srv.whm_url, whm_token = ROOT_WHM }
      -- the WHM port does not take user tokens: without verify_url, verification would fail
      local res, err = w:rotate { prefix = "deploy", store = remember {} }
      fails("invalid", nil, res, err)
      assert.is_truthy(err.message:find("verify_url", 1, true))
      local tok = assert(w:rotate { prefix = "deploy", store = path, verify_url = srv.url })
      local opts = assert(store.load(path))
      assert.are.equal(srv.url, opts.url)
      assert.are.equal(tok.token, opts.token)
      assert.is_table(assert(cptokens.new(opts)):list())
    end)

    it("with a store function and current = <name>, revokes newer orphans that never reached the store", function()
      local now = os.time()
      srv:seed_token("alice", { name = "deploy-20190101000000", token = token_value(1), create_time = now - 300 })
      srv:seed_token("alice", { name = "deploy-20200101000000", token = token_value(2), create_time = now - 200 })
      srv:seed_token("alice", { name = "deploy-20200101000100", token = token_value(3), create_time = now - 100 })
      local tok, report = assert(client():rotate { prefix = "deploy", keep = 1, store = remember {},
                                                    current = "deploy-20200101000000" })
      assert.are.same({ "deploy-20200101000100" }, report.orphans)
      assert.are.same({ "deploy-20200101000000" }, report.kept)
      assert.are.same({ "deploy-20200101000100", "deploy-20190101000000" }, report.revoked)
      assert.are.same(sorted { tok.name, "deploy-20200101000000" }, names())
      -- without current, the same tokens are all just old ones
      srv:reset()
      srv:seed_token("alice", { name = "deploy-20200101000000", token = token_value(2), create_time = now - 200 })
      srv:seed_token("alice", { name = "deploy-20200101000100", token = token_value(3), create_time = now - 100 })
      local _, report2 = assert(client():rotate { prefix = "deploy", keep = 1, store = remember {} })
      assert.are.same({}, report2.orphans)
      assert.are.same({ "deploy-20200101000100" }, report2.kept)
    end)

    it("never puts a secret in an error or a report", function()
      local made = {}
      local tok, report = assert(client():rotate { prefix = "deploy", store = remember(made) })
      H.assert_no_secret(report, { tok.token, ALICE_PW })
      local _, err = client():rotate { prefix = "deploy", store = function(t)
        made[#made + 1] = t
        return nil, "no room for " .. t.token
      end }
      H.assert_no_secret(err, { made[#made].token, tok.token, ALICE_PW })
    end)
  end)

  describe("a store path owns only its own tokens", function()
    it("one prefix, two stores: neither rotation revokes the other's token; each names it as foreign", function()
      local dir = fresh_dir()
      local a, b = dir .. "/a.json", dir .. "/b.json"
      assert(client():rotate { prefix = "deploy", store = a })
      local _, report = assert(client():rotate { prefix = "deploy", store = b })
      local _, ma = assert(store.load(a))
      assert.are.same({ ma.name }, report.foreign)
      assert.are.same({}, report.revoked)
      for _ = 1, 2 do
        local tok, rep = assert(client():rotate { prefix = "deploy", store = a })
        assert.are.equal(1, #rep.foreign)
        assert.are_not.equal(tok.name, rep.foreign[1])
      end
      for _, path in ipairs { a, b } do
        assert.is_table(assert(cptokens.new(assert(store.load(path)))):list(), path .. " still works")
      end
      assert.are.equal(2, #names("deploy"))
    end)

    it("keeps `keep` older tokens in the file's history and revokes them as they age out", function()
      local path = fresh_dir() .. "/k.json"
      local made = {}
      for i = 1, 4 do
        made[i] = assert(client():rotate { prefix = "deploy", keep = 2, store = path }).name
      end
      local _, meta = assert(store.load(path))
      assert.are.same({ made[3], made[2] }, meta.history)
      assert.are.same(sorted { made[2], made[3], made[4] }, names("deploy"))
    end)

    it("refuses a token file of another server with the same user name; nothing is sent", function()
      local path = fresh_dir() .. "/o.json"
      assert(store.save(path, { name = "deploy-x", token = token_value(3), create_time = 1 },
        { url = "https://cpanel.other.example:2083", user = "alice" }))
      local before = #srv:log()
      local res, err = client():rotate { prefix = "deploy", store = path }
      fails("invalid", "store", res, err)
      assert.is_truthy(err.message:find("cpanel.other.example", 1, true), err.message)
      assert.are.equal(before, #srv:log())
      assert.are.equal("deploy-x", select(2, store.load(path)).name)
    end)

    it("rotates through a symbolic link: the link stays, its target holds the new token", function()
      local dir = fresh_dir()
      assert(util.execute("mkdir " .. shell_quote(dir .. "/real")))
      assert(client():rotate { prefix = "deploy", store = dir .. "/real/t.json" })
      assert(util.execute("ln -s real/t.json " .. shell_quote(dir .. "/t.json")))
      local tok = assert(client():rotate { prefix = "deploy", store = dir .. "/t.json" })
      assert.are.equal(tok.token, assert(store.load(dir .. "/real/t.json")).token)
      assert.are.same({ tok.name }, names("deploy"))
      assert.are.equal("real/t.json", (capture("readlink " .. shell_quote(dir .. "/t.json")):gsub("%s+$", "")))
    end)

    it("serialises rotations of one store: overlapping runs never lose or orphan a token", function()
      local dir = fresh_dir()
      local path = dir .. "/c.json"
      assert(client():rotate { prefix = "deploy", store = path })
      local script = dir .. "/rot.lua"
      write_file(script, [[
local build = os.getenv("CPTOKENS_BUILD") or "build/5.4"
package.cpath = build .. "/?.so;" .. package.cpath
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local cptokens = require "cptokens"
local path = os.getenv("CPT_STORE")
local c = assert(cptokens.new(assert(cptokens.store.load(path))))
local tok, err = c:rotate { prefix = "deploy", store = path, lock_timeout = ]] .. H.seconds(20) .. [[ }
os.exit(tok and 0 or (err.step == "lock" and 4 or 1))
]])
      srv:fault("latency", { ms = 150 })
      local cmd = {}
      for i = 1, 3 do
        cmd[i] = "(sleep 0." .. (i - 1) .. "; CPT_STORE=" .. shell_quote(path) .. " " .. shell_quote(LUA) .. " "
          .. shell_quote(script) .. "; echo status=$?) &"
      end
      local out = capture(table.concat(cmd, " ") .. " wait")
      srv:clear_faults()
      local ok = 0
      for st in out:gmatch("status=(%d+)") do
        assert.are.equal("0", st, out)
        ok = ok + 1
      end
      assert.are.equal(3, ok)
      local opts, meta = assert(store.load(path))
      assert.is_table(assert(cptokens.new(opts)):list())
      assert.are.same({ meta.name }, names("deploy"))
    end)

    it("a second rotation that cannot get the lock in time fails at step lock, sending nothing", function()
      local path = fresh_dir() .. "/l.json"
      assert(client():rotate { prefix = "deploy", store = path })
      local lock = assert(store.lock(path, 0))
      local before = #srv:log()
      local res, err = client():rotate { prefix = "deploy", store = path, lock_timeout = 0.2 }
      lock:release()
      fails("invalid", "lock", res, err)
      assert.is_truthy(err.message:find("another process", 1, true), err.message)
      assert.are.equal(before, #srv:log())
    end)
  end)

  describe("crash safety: the process killed (SIGKILL) after each step", function()
    local script

    setup(function()
      script = tmp .. "/rotate-and-die.lua"
      write_file(script, [[
local build = os.getenv("CPTOKENS_BUILD") or "build/5.4"
package.cpath = build .. "/?.so;" .. package.cpath
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local cptokens = require "cptokens"
local rotate = require "cptokens.rotate"
local path, step = os.getenv("CPT_STORE"), os.getenv("CPT_KILL_AFTER")
local keep = tonumber(os.getenv("CPT_KEEP"))
rotate._test_hook = function(done)
  if done == step then
    local f = assert(io.open("/proc/self/stat"))
    local pid = f:read("*a"):match("^(%d+)")
    f:close()
    os.execute("kill -KILL " .. pid)
    os.exit(3) -- not reached
  end
end
-- The scheduled-script pattern: the token in the file rotates itself.
local client = assert(cptokens.new(assert(cptokens.store.load(path))))
local tok, err = client:rotate { prefix = "deploy", expires_in = "1h", keep = keep, store = path }
if not tok then
  io.stderr:write(tostring(err), "\n")
  os.exit(2)
end
os.exit(0)
]])
    end)

    -- Runs the script; returns its exit status as the shell reports it (137: SIGKILL).
    local function run_and_kill(path, step, keep)
      local cmd = "CPT_STORE=" .. shell_quote(path) .. " CPT_KILL_AFTER=" .. step .. " CPT_KEEP=" .. keep
        .. " " .. shell_quote(LUA) .. " " .. shell_quote(script) .. " 2>" .. shell_quote(path .. ".stderr") .. "; echo status=$?"
      return tonumber(capture(cmd):match("status=(%d+)")), read_file(path .. ".stderr")
    end

    for _, keep in ipairs { 0, 1 } do
      for _, step in ipairs { "list", "create", "store", "verify", "revoke" } do
        it("after " .. step .. " (keep = " .. keep .. "): the stored token works, a rerun converges", function()
          local dir = fresh_dir()
          local path = dir .. "/deploy.json"
          srv:seed_token("alice", { name = "deploy-old-manual", token = token_value(7), create_time = os.time() - 50 })
          -- A settled state: keep + 1 rotations, the newest in the file.
          local boot = client()
          for _ = 1, keep + 1 do assert(boot:rotate { prefix = "deploy", keep = keep, store = path }) end
          boot:close()
          local before = names("deploy")
          assert.are.equal(keep + 1, #before)
          local _, meta0 = assert(store.load(path))

          local status, stderr = run_and_kill(path, step, keep)
          os.remove(path .. ".stderr")
          assert.are.equal(137, status, "killed by SIGKILL: " .. tostring(stderr))

          -- The stored token authenticates, the file is whole, private, and alone.
          local opts, meta = assert(store.load(path))
          local c = assert(cptokens.new(opts))
          assert.is_table(c:list(), "the stored token still authenticates")
          assert.are.equal(opts.token, server_token(meta.name).token)
          assert.are.equal("600", util.file_mode(path))
          assert.are.same({ "deploy.json", "deploy.json.lock" }, util.list_dir(dir))

          -- What the kill left behind, step by step.
          local now_names = names("deploy")
          if step == "list" then
            assert.are.same(before, now_names)
            assert.are.equal(meta0.name, meta.name)
          elseif step == "create" or step == "verify" then
            assert.are.equal(keep + 2, #now_names) -- one orphan nobody has
            assert.are.equal(meta0.name, meta.name)
          elseif step == "store" then
            assert.are.equal(keep + 2, #now_names)
            assert.are_not.equal(meta0.name, meta.name)
          else
            assert.are.equal(keep + 1, #now_names)
            assert.are_not.equal(meta0.name, meta.name)
          end

          -- The same rotation again converges: keep + 1 tokens, the stored one among them.
          local tok, report = c:rotate { prefix = "deploy", expires_in = "1h", keep = keep, store = path }
          assert.is_table(tok, tostring(report))
          if step == "create" or step == "verify" then
            assert.are.equal(1, #report.orphans)
            assert.is_nil(server_token(report.orphans[1]))
          else
            assert.are.same({}, report.orphans)
          end
          local final = names("deploy")
          assert.are.equal(keep + 1, #final)
          local opts2, meta2 = assert(store.load(path))
          assert.are.equal(tok.name, meta2.name)
          local found = false
          for _, n in ipairs(final) do found = found or n == meta2.name end
          assert.is_true(found, "the stored token is among the survivors")
          assert.is_table(assert(cptokens.new(opts2)):list())
          assert.is_table(c:list(), "the rotating client goes on with the new token")
          assert.is_table(server_token("deploy-old-manual"), "other tokens untouched")
          assert.are.same({ "deploy.json", "deploy.json.lock" }, util.list_dir(dir))
        end)
      end
    end
  end)

  describe("prune", function()
    local now

    before_each(function()
      now = os.time()
      local seeds = {
        { "deploy-20200101000000", now - 100 }, -- expired
        { "deploy-20200101000100", now + 1000 }, -- valid
        { "ci-old", now - 5000 },                -- expired, no prefix
        { "never", nil },                        -- never expires
        { "deploy-manual", now - 10 },           -- expired, not a rotation name
      }
      for i, s in ipairs(seeds) do
        srv:seed_token("alice", { name = s[1], token = token_value(i), create_time = now - 10000,
                                  expires_at = s[2] })
      end
    end)

    it("revokes every expired token and reports it", function()
      local report = assert(client():prune {})
      assert.are.same(sorted { "deploy-20200101000000", "ci-old", "deploy-manual" }, sorted(report.revoked))
      assert.are.equal(2, report.kept)
      assert.is_nil(report.errors)
      assert.are.same(sorted { "deploy-20200101000100", "never" }, names())
      -- the default options, and nothing left to do
      report = assert(client():prune())
      assert.are.same({}, report.revoked)
    end)

    it("only among a prefix's rotations with prefix", function()
      local report = assert(client():prune { prefix = "deploy" })
      assert.are.same({ "deploy-20200101000000" }, report.revoked)
      assert.are.equal(1, report.kept)
      assert.are.same(sorted { "deploy-20200101000100", "ci-old", "never", "deploy-manual" }, names())
    end)

    it("judges expiry at an explicit now, as the server does (valid at expires_at itself)", function()
      local report = assert(client():prune { now = now + 1000 })
      assert.is_nil(server_token("deploy-20200101000000"))
      assert.is_table(server_token("deploy-20200101000100"), "not expired at now == expires_at")
      assert.are.equal(3, #report.revoked)
      report = assert(client():prune { now = now + 1001 })
      assert.are.same({ "deploy-20200101000100" }, report.revoked)
    end)

    it("refuses expired = false, bad options, and a bad prefix", function()
      local c = client()
      for _, o in ipairs { { expired = false }, { expired = "yes" }, { now = "soon" }, { prefx = "x" },
                           { prefix = 3 } } do
        assert.has_error(function() c:prune(o) end)
      end
      fails("invalid", nil, c:prune { prefix = "bad prefix" })
      assert.are.equal(0, srv:count())
    end)

    it("returns a list failure as nil, err and reports revoke failures in report.errors", function()
      srv:fault("status", { status = 500, times = 1 })
      local res, err = client():prune {}
      fails("http", nil, res, err)
      assert.are.equal(500, err.status)
      assert.are.equal(5, #names())
      -- the server fails the first revoke (made to, just before it is sent); the others go on
      local Client = require("cptokens.core").Client
      local revoke = Client.revoke
      local first = true
      Client.revoke = function(self, name)
        if first then
          first = false
          srv:fault("status", { status = 500, times = 1 })
        end
        return revoke(self, name)
      end
      local ok, report = pcall(function() return client():prune {} end)
      Client.revoke = revoke
      assert.is_true(ok, tostring(report))
      assert.are.equal(2, #report.revoked)
      assert.are.equal(1, #report.errors)
      assert.are.equal("http", report.errors[1].err.kind)
      assert.is_table(server_token(report.errors[1].name), "still there")
    end)
  end)

  describe("audit", function()
    it("classifies every token: expired, expiring within the window, never, fine (boundaries included)", function()
      local now = 1900000000
      local week = 7 * DAY
      local seeds = {
        { "expired", now - 1, "expired", -1 },
        { "at-expiry", now, "expiring", 0 },
        { "soon", now + 60, "expiring", 60 },
        { "window-edge", now + week, "expiring", week },
        { "past-window", now + week + 1, "fine", week + 1 },
        { "never-null", nil, "never", nil },
        { "never-zero", 0, "never", nil },
      }
      for i, s in ipairs(seeds) do
        srv:seed_token("alice", { name = s[1], token = token_value(i), create_time = now - 100 + i,
                                  expires_at = s[2] })
      end
      local report = assert(client():audit { within = "7d", now = now })
      assert.are.equal(#seeds, #report.tokens)
      local by_name = {}
      for _, t in ipairs(report.tokens) do by_name[t.name] = t end
      for _, s in ipairs(seeds) do
        assert.are.equal(s[3], by_name[s[1]].state, s[1])
        assert.are.equal(s[4], by_name[s[1]].remaining, s[1])
      end
      local function list_names(list)
        local out = {}
        for _, t in ipairs(list) do out[#out + 1] = t.name end
        return sorted(out)
      end
      assert.are.same({ "expired" }, list_names(report.expired))
      assert.are.same(sorted { "at-expiry", "soon", "window-edge" }, list_names(report.expiring))
      assert.are.same(sorted { "never-null", "never-zero" }, list_names(report.never))
      assert.are.same({ "past-window" }, list_names(report.fine))
      H.assert_no_secret(report, { token_value(1), token_value(2) })
      -- another window
      report = assert(client():audit { within = "1m", now = now })
      assert.are.same(sorted { "at-expiry", "soon" }, list_names(report.expiring))
      assert.are.same(sorted { "window-edge", "past-window" }, list_names(report.fine))
      -- audit never revokes
      assert.are.equal(#seeds, #names())
    end)

    it("defaults to a 7-day window and the current time", function()
      srv:seed_token("alice", { name = "six-days", expires_at = os.time() + 6 * DAY })
      srv:seed_token("alice", { name = "eight-days", expires_at = os.time() + 8 * DAY })
      local report = assert(client():audit())
      assert.are.equal("six-days", report.expiring[1].name)
      assert.are.equal("eight-days", report.fine[1].name)
    end)

    it("refuses a bad window, and raises for misuse", function()
      local c = client()
      fails("invalid", nil, c:audit { within = "soon" })
      assert.are.equal(0, srv:count())
      assert.has_error(function() c:audit { within = {} } end)
      assert.has_error(function() c:audit { whithin = "7d" } end)
      assert.has_error(function() c:audit { now = "now" } end)
    end)
  end)
end)
