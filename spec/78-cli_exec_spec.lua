-- `--exec CMD` (create, rotate) and `--dry-run` (prune, rotate), run as a user would: the
-- new token reaches CMD's standard input as the token file's JSON and nowhere else; a command
-- that fails, hangs or reads nothing means the token did not reach its user (create revokes
-- it; rotate fails at its store step and the token file keeps its working token); a dry run
-- changes nothing on the server or in the file. Stand-ins for `vault kv put`, `gh secret set`,
-- `kubectl create secret ... --from-file=token=/dev/stdin` and `systemd-creds encrypt`: shell
-- commands that store standard input, fail, hang, or ignore it.
local server = require "spec.support.server"
local util = require "spec.support.util"
local cli = require "spec.support.cli"
local store = require "cptokens.store"
local cptokens = require "cptokens"
local cjson = require "cjson"

local q = util.shell_quote

describe("cptokens --exec and --dry-run", function()
  local srv, tmp, run, alice

  setup(function()
    srv = server.start()
    tmp = util.tmpdir("cliexec")
    run = cli.runner(srv, tmp)
  end)
  teardown(function()
    if srv then srv:stop() end
    util.rmdir(tmp)
  end)
  before_each(function()
    srv:reset()
    alice = { CPANEL_URL = srv.url, CPANEL_USER = "alice", CPANEL_PASSWORD = srv.accounts.alice.password }
  end)

  local function names()
    local out = {}
    for _, t in ipairs(srv:tokens("alice")) do out[#out + 1] = t.name end
    table.sort(out)
    return out
  end

  local function works(opts)
    local c = assert(cptokens.new(opts))
    local ok = c:list()
    c:close()
    return ok ~= nil
  end

  local function no_secret(r, secret)
    assert.is_nil(r.out:find(secret, 1, true), "the token is not on standard output")
    assert.is_nil(r.err:find(secret, 1, true), "the token is not on standard error")
  end

  describe("create --exec", function()
    it("hands the token file's JSON to the command's standard input, and nothing else", function()
      local got, env = tmp .. "/vault.json", tmp .. "/vault.env"
      local r = run({ "create", "ci", "--expires-in", "1d", "--exec",
                      "env > " .. q(env) .. "; cat > " .. q(got) .. "; echo stored" }, alice)
      assert.are.equal(0, r.code, r.err)
      assert.matches("^created ci, expires .*; token handed to %-%-exec\n$", r.out)
      assert.matches("stored", r.err, nil, true) -- the command's own output goes to stderr
      local doc = cjson.decode((assert(util.read_file(got))))
      assert.are.equal("ci", doc.name)
      assert.are.equal(srv.url, doc.url)
      assert.are.equal("alice", doc.user)
      assert.is_true(works { url = doc.url, user = doc.user, token = doc.token, cafile = srv.cafile })
      no_secret(r, doc.token)
      -- neither the new token nor the tool's own credential is in the command's environment
      local e = assert(util.read_file(env))
      assert.is_nil(e:find(doc.token, 1, true))
      assert.is_nil(e:find(srv.accounts.alice.password, 1, true))
      assert.is_nil(e:match("CPANEL_PASSWORD="))
      assert.matches("CPANEL_URL=", e) -- what is not a secret stays
    end)

    it("and with --out as well: the file and the command hold the same token; --json says so", function()
      local got, path = tmp .. "/both.json", tmp .. "/both-out.json"
      local r = run({ "create", "both", "--out", path, "--json", "--exec", "cat > " .. q(got) }, alice)
      assert.are.equal(0, r.code, r.err)
      local doc = cjson.decode(r.out)
      assert.are.equal(true, doc.exec)
      assert.are.equal(cjson.null, doc.token)
      assert.are.equal(path, doc.out)
      local handed = cjson.decode((assert(util.read_file(got))))
      assert.are.equal(handed.token, assert(store.load(path)).token)
      no_secret(r, handed.token)
    end)

    local failing = {
      { "a command that fails", { "--exec", "cat >/dev/null; exit 3" }, "exited with status 3" },
      { "a command that reads nothing", { "--exec", "true" }, "without reading the token" },
      { "a command that is not found", { "--exec", "no-such-vault-cli kv put x -" }, "status 127" },
      { "a command that hangs", { "--exec", "sleep 60", "--exec-timeout", "1" },
        "did not finish within 1 s" },
    }
    for _, case in ipairs(failing) do
      it(case[1] .. ": exit 1, the reason, and the new token revoked", function()
        local args = { "create", "lost" }
        for _, a in ipairs(case[2]) do args[#args + 1] = a end
        local t0 = os.time()
        local r = run(args, alice)
        assert.are.equal(1, r.code, r.err)
        assert.matches(case[3], r.err, nil, true)
        assert.matches("the new token lost was revoked", r.err, nil, true)
        assert.are.same({}, names())
        assert.are.equal("", r.out)
        assert.is_true(os.time() - t0 < 20, "a hanging command is stopped")
      end)
    end

    it("a command left running in the background is stopped with its process group", function()
      local mark = tmp .. "/bg-alive"
      local r = run({ "create", "bg", "--exec-timeout", "1", "--exec",
                      "(sleep 3; touch " .. q(mark) .. ") & cat >/dev/null; wait" }, alice)
      assert.are.equal(1, r.code, r.err)
      util.execute("sleep 3.5")
      assert.is_nil(util.read_file(mark), "the background child was stopped too")
    end)

    it("refuses an empty command and --exec-timeout without --exec (exit 2, nothing sent)", function()
      local before = #srv:log()
      assert.are.equal(2, run({ "create", "x", "--exec", "" }, alice).code)
      assert.are.equal(2, run({ "create", "x", "--exec-timeout", "5" }, alice).code)
      assert.are.equal(2, run({ "create", "x", "--exec", "cat", "--exec-timeout", "soon" }, alice).code)
      assert.are.equal(before, #srv:log())
    end)
  end)

  describe("rotate --exec", function()
    local function bootstrap(path)
      local r = run({ "rotate", "ci", "--out", path }, alice)
      assert.are.equal(0, r.code, r.err)
      return assert(store.load(path))
    end

    it("the command and the file get the new token, then the old one is revoked", function()
      local path, got = tmp .. "/rot.json", tmp .. "/rot-vault.json"
      local old = bootstrap(path)
      local r = run({ "rotate", "ci", "--out", path, "--token-file", path, "--exec", "cat > " .. q(got) },
        { CPANEL_URL = srv.url, CPANEL_USER = "alice" })
      assert.are.equal(0, r.code, r.err)
      local new = assert(store.load(path))
      local handed = cjson.decode((assert(util.read_file(got))))
      assert.are.equal(new.token, handed.token)
      assert.are_not.equal(old.token, new.token)
      assert.is_true(works(new))
      assert.is_false(works(old))
      assert.are.equal(1, #names())
      no_secret(r, new.token)
    end)

    it("a failing command fails the store step: the file keeps the old, working token", function()
      local path = tmp .. "/rotf.json"
      local old = bootstrap(path)
      local before = names()
      local r = run({ "rotate", "ci", "--out", path, "--token-file", path, "--exec", "cat >/dev/null; exit 1" },
        { CPANEL_URL = srv.url, CPANEL_USER = "alice" })
      assert.are.equal(1, r.code, r.err)
      assert.matches("store failed", r.err, nil, true)
      assert.matches("was revoked and no old token was touched", r.err, nil, true)
      assert.are.equal(old.token, assert(store.load(path)).token)
      assert.is_true(works(old))
      assert.are.same(before, names())
    end)
  end)

  describe("the library's deliver", function()
    it("delivered, then the store fails: both hold a valid token; the next rotation converges", function()
      local c = assert(cptokens.new { url = srv.url, user = "alice", password = srv.accounts.alice.password,
                                       cafile = srv.cafile })
      local lock = tmp .. "/deliver"
      local held, delivered
      assert(c:rotate { prefix = "dv", lock = lock, store = function(t) held = t; return true end })
      local first = held
      local tok, err = c:rotate { prefix = "dv", lock = lock, current = first.name,
        deliver = function(t, conn)
          assert.are.equal(srv.url, conn.url)
          delivered = t
          return true
        end,
        store = function() return nil, "the disk is full" end }
      assert.is_nil(tok)
      assert.are.equal("store", err.step)
      assert.is_true(err.delivered)
      assert.is_false(err.new_revoked)
      assert.matches("the disk is full", err.message, nil, true)
      assert.is_true(works { url = srv.url, user = "alice", token = first.token, cafile = srv.cafile })
      assert.is_true(works { url = srv.url, user = "alice", token = delivered.token, cafile = srv.cafile })
      -- the next rotation stores a newer token, then revokes both older ones
      local third = assert(c:rotate { prefix = "dv", lock = lock, current = first.name,
                                      store = function() return true end })
      assert.are.same({ third.name }, names())
      c:close()
    end)

    it("a failing deliver is a failing store: the new token is revoked", function()
      local c = assert(cptokens.new { url = srv.url, user = "alice", password = srv.accounts.alice.password,
                                       cafile = srv.cafile })
      local stored = 0
      local tok, err = c:rotate { prefix = "dv", store = function() stored = stored + 1; return true end,
                                  deliver = function() error("vault is sealed") end }
      assert.is_nil(tok)
      assert.are.equal("store", err.step)
      assert.matches("vault is sealed", err.message, nil, true)
      assert.is_true(err.new_revoked)
      assert.are.equal(0, stored, "the store is not called after a failed deliver")
      assert.are.same({}, names())
      c:close()
    end)
  end)

  describe("--dry-run", function()
    it("prune --dry-run names the expired tokens and revokes none", function()
      srv:seed_token("alice", { name = "old-a", create_time = 1000, expires_at = 2000 })
      srv:seed_token("alice", { name = "old-b", create_time = 1000, expires_at = 3000 })
      srv:seed_token("alice", { name = "live", create_time = 1000 })
      local r = run({ "prune", "--dry-run" }, alice)
      assert.are.equal(0, r.code, r.err)
      assert.matches("would revoke old%-a\n", r.out)
      assert.matches("would revoke old%-b\n", r.out)
      assert.matches("2 expired tokens would be revoked, 1 kept %(dry run: nothing was revoked%)", r.out)
      local j = run({ "prune", "--dry-run", "--json" }, alice)
      local doc = cjson.decode(j.out)
      assert.are.equal(true, doc.dry_run)
      table.sort(doc.would_revoke)
      assert.are.same({ "old-a", "old-b" }, doc.would_revoke)
      assert.are.equal(1, doc.kept)
      assert.are.same({ "live", "old-a", "old-b" }, names())
      -- and without it they go
      assert.are.equal(0, run({ "prune" }, alice).code)
      assert.are.same({ "live" }, names())
    end)

    it("rotate --dry-run says what it would create and revoke, and changes nothing", function()
      local path = tmp .. "/dry.json"
      assert.are.equal(0, run({ "rotate", "ci", "--out", path }, alice).code)
      local before_file, before = assert(util.read_file(path)), names()
      local mark = #srv:log()
      local r = run({ "rotate", "ci", "--out", path, "--dry-run", "--token-file", path, "--exec", "cat > /dev/null" },
        { CPANEL_URL = srv.url, CPANEL_USER = "alice" })
      assert.are.equal(0, r.code, r.err)
      assert.matches("^would create ci%-[%d%-]+, never expires, save it to .* and hand it to %-%-exec\n", r.out)
      assert.matches("would revoke " .. before[1]:gsub("%-", "%%-") .. "\n", r.out)
      assert.matches("dry run: nothing was created, stored or revoked", r.out, nil, true)
      local j = run({ "rotate", "ci", "--out", path, "--dry-run", "--json", "--keep", "1", "--token-file", path },
        { CPANEL_URL = srv.url, CPANEL_USER = "alice" })
      assert.are.equal(0, j.code, j.err)
      local doc = cjson.decode(j.out)
      assert.are.equal(true, doc.dry_run)
      assert.matches("^ci%-[%d%-]+$", doc.would_create)
      assert.are.same({}, doc.would_revoke)
      assert.are.same(before, doc.kept)
      assert.are.same(before, names())
      assert.are.equal(before_file, util.read_file(path))
      for _, e in ipairs(srv:log(mark + 1)) do
        assert.is_nil(tostring(e.func or e.path or ""):match("create"), "no create was sent")
        assert.is_nil(tostring(e.func or e.path or ""):match("revoke"), "no revoke was sent")
      end
    end)
  end)
end)
