-- `cptokens rotate` under a hostile world: a failing verify, overlapping runs, two files
-- with one prefix, a token file of another server. Real processes (bin/cptokens from the
-- tree) against the fake server; secrets reach the tool through its environment file only.
local server = require "spec.support.server"
local util = require "spec.support.util"
local store = require "cptokens.store"
local cptokens = require "cptokens"

local shell_quote, capture = util.shell_quote, util.capture
local LUA = util.LUA

describe("cptokens rotate (command line)", function()
  local srv, tmp
  local seq = 0

  setup(function()
    srv = server.start()
    tmp = util.tmpdir("clirot")
  end)
  teardown(function()
    if srv then srv:stop() end
    util.rmdir(tmp)
  end)
  before_each(function() srv:reset() end)

  -- The shell command that runs the tool with env (a 0600 file the shell sources).
  local function command(args, env)
    seq = seq + 1
    local base = tmp .. "/r" .. seq
    local build = os.getenv("CPTOKENS_BUILD") or "build/5.4"
    local lines = {
      "unset CPANEL_URL CPANEL_USER CPANEL_CAFILE CPANEL_TOKEN CPANEL_PASSWORD CPANEL_OTP WHM_TOKEN",
      "export CPANEL_CAFILE=" .. shell_quote(srv.cafile),
      "export LUA_PATH=" .. shell_quote("lua/?.lua;lua/?/init.lua;;"),
      "export LUA_CPATH=" .. shell_quote(build .. "/?.so;;"),
    }
    for k, v in pairs(env or {}) do lines[#lines + 1] = "export " .. k .. "=" .. shell_quote(v) end
    util.write_private(base .. ".env", table.concat(lines, "\n") .. "\n")
    local quoted = {}
    for i, a in ipairs(args) do quoted[i] = shell_quote(a) end
    return "(. " .. shell_quote(base .. ".env") .. " && " .. shell_quote(LUA) .. " bin/cptokens "
      .. table.concat(quoted, " ") .. " </dev/null >" .. shell_quote(base .. ".out") .. " 2>"
      .. shell_quote(base .. ".err") .. "; echo $? >" .. shell_quote(base .. ".code") .. ")", base
  end

  local function result(base)
    return { code = tonumber((util.read_file(base .. ".code") or ""):match("%d+")),
             out = util.read_file(base .. ".out") or "", err = util.read_file(base .. ".err") or "" }
  end

  local function run(args, env)
    local cmd, base = command(args, env)
    assert(util.execute(cmd))
    return result(base)
  end

  local function bootstrap(path, prefix)
    local r = run({ "rotate", prefix, "--out", path },
                  { CPANEL_URL = srv.url, CPANEL_USER = "alice", CPANEL_PASSWORD = srv.accounts.alice.password })
    assert.are.equal(0, r.code, r.err)
  end

  local function works(path)
    local opts = assert(store.load(path))
    local c = assert(cptokens.new(opts))
    local ok = c:list()
    c:close()
    return ok ~= nil
  end

  local function names(prefix)
    local out = {}
    for _, t in ipairs(srv:tokens("alice")) do
      if t.name:find("^" .. prefix .. "%-") then out[#out + 1] = t.name end
    end
    table.sort(out)
    return out
  end

  it("a 503 at verify leaves the token file holding the old token, which still authenticates", function()
    local path = tmp .. "/v.json"
    bootstrap(path, "vf")
    local before = util.read_file(path)
    srv:fault("status", { status = 503, func = "list", skip = 1, times = 1 })
    local r = run { "rotate", "vf", "--token-file", path, "--out", path }
    assert.are.equal(1, r.code)
    assert.is_truthy(r.err:find("verify failed", 1, true), r.err)
    assert.is_truthy(r.err:find("was revoked and no old token was touched", 1, true), r.err)
    assert.are.equal(before, util.read_file(path))
    assert.is_true(works(path))
    -- and the cron job's next run succeeds
    r = run { "rotate", "vf", "--token-file", path, "--out", path }
    assert.are.equal(0, r.code, r.err)
    assert.is_true(works(path))
    assert.are.equal(1, #names("vf"))
  end)

  it("overlapping runs of one file (cron) are serialised: all succeed, one token survives", function()
    local path = tmp .. "/o.json"
    bootstrap(path, "ov")
    srv:fault("latency", { ms = 100 })
    local cmds, bases = {}, {}
    for i = 1, 3 do
      local cmd, base = command { "rotate", "ov", "--token-file", path, "--out", path }
      cmds[i] = "(sleep 0." .. (i - 1) * 2 .. "; " .. cmd .. ") &"
      bases[i] = base
    end
    capture(table.concat(cmds, " ") .. " wait")
    srv:clear_faults()
    for i = 1, 3 do
      local r = result(bases[i])
      assert.are.equal(0, r.code, r.err)
    end
    assert.is_true(works(path))
    assert.are.same({ select(2, store.load(path)).name }, names("ov"))
  end)

  it("one prefix, two files: the second never revokes the first's token, and warns with its name", function()
    local a, b = tmp .. "/a.json", tmp .. "/b.json"
    bootstrap(a, "two")
    bootstrap(b, "two")
    local r = run { "rotate", "two", "--token-file", b, "--out", b }
    assert.are.equal(0, r.code, r.err)
    local held_by_a = select(2, store.load(a)).name
    assert.is_truthy(r.err:find("warning: rotate: " .. held_by_a, 1, true), r.err)
    assert.is_true(works(a), "the first file's token was left alone")
    assert.is_true(works(b))
  end)

  it("takes --expires-at, and --verify-url for WHM on a port other than 2087 (issue 15, point 7)", function()
    local pw = { CPANEL_URL = srv.url, CPANEL_USER = "alice", CPANEL_PASSWORD = srv.accounts.alice.password }
    local at = os.time() + 86400
    local path = tmp .. "/at.json"
    local r = run({ "rotate", "at", "--out", path, "--expires-at", tostring(at) }, pw)
    assert.are.equal(0, r.code, r.err)
    local t = names("at")
    assert.are.equal(1, #t)
    for _, tok in ipairs(srv:tokens("alice")) do
      if tok.name == t[1] then assert.are.equal(tostring(at), tostring(tok.expires_at)) end
    end
    r = run({ "rotate", "at", "--out", path, "--expires-at", "2999-01-01T00:00:00Z", "--expires-in", "1d" }, pw)
    assert.are.equal(2, r.code, r.err)
    assert.is_truthy(r.err:find("not both", 1, true), r.err)
    r = run({ "rotate", "at", "--out", path, "--expires-at", "tomorrow" }, pw)
    assert.are.equal(2, r.code, r.err)
    -- through WHM: the fake WHM port is not 2087, so the cPanel URL cannot be guessed
    local whm = { CPANEL_URL = srv.whm_url, CPANEL_USER = "alice", WHM_TOKEN = srv.accounts.root.token }
    local wpath = tmp .. "/whm.json"
    local n = #srv:log()
    r = run({ "rotate", "w", "--out", wpath }, whm)
    assert.are.equal(1, r.code, r.err)
    assert.is_truthy(r.err:find("--verify-url URL", 1, true), r.err)
    assert.are.same({}, names("w"))
    r = run({ "rotate", "w", "--out", wpath, "--verify-url", srv.url }, whm)
    assert.are.equal(0, r.code, r.err)
    assert.are.equal(1, #names("w"))
    assert.is_true(works(wpath))
    assert.is_true(#srv:log() > n)
  end)

  it("refuses --out onto a token file of another server with the same user; nothing is sent", function()
    local path = tmp .. "/other.json"
    assert(store.save(path, { name = "x-1", token = "OTHERSERVERTOKEN0000000000000000", create_time = 1 },
                      { url = "https://cpanel.other.example:2083", user = "alice" }))
    local before = util.read_file(path)
    local n = #srv:log()
    local r = run({ "rotate", "x", "--out", path },
                  { CPANEL_URL = srv.url, CPANEL_USER = "alice", CPANEL_PASSWORD = srv.accounts.alice.password })
    assert.are_not.equal(0, r.code)
    assert.is_truthy(r.err:find("cpanel.other.example", 1, true), r.err)
    assert.are.equal(before, util.read_file(path))
    assert.are.equal(n, #srv:log())
  end)
end)
