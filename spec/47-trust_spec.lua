-- Trust and shared connections (csrc/trust.c): each trust configuration (a cafile, a capath,
-- the system store) is loaded once per process and shared by every client, connection and
-- batch that has it; clients of one host with the same trust settings share connections; and
-- verification is exactly as strict as before with every kind of store, sequentially and in a
-- batch, cold and warm. Also: a name lookup that never answers is bounded by the timeout.
-- No test touches the machine's trust settings: the "system-sized" stores are the machine's
-- bundle (or hashed directory) copied with the test CA added, in a temporary directory.
local H = require "spec.helpers"
local server = require "spec.support.server"
local util = require "spec.support.util"
local cptokens = require "cptokens"
local core = require "cptokens.core"

local ALICE_PW = H.ALICE_PW
local BOB_PW, BOB_OTP = H.BOB_PW, H.BOB_OTP
local TOKEN = "TRUSTSPECTOKEN000000000000000047"
local SECRETS = { ALICE_PW, BOB_PW, BOB_OTP, TOKEN }
local SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
local SYSTEM_DIR = "/etc/ssl/certs"

local q = util.shell_quote

local function sh(cmd)
  assert(util.execute(cmd .. " >/dev/null 2>&1"), "failed: " .. cmd)
end

-- A hashed CA directory (openssl rehash) holding the given certificate files.
local function hashed_dir(path, files)
  sh("mkdir -p " .. q(path))
  for i, f in ipairs(files) do sh("ln -s " .. q(f) .. " " .. q(path .. "/ca" .. i .. ".pem")) end
  sh("openssl rehash " .. q(path))
  return path
end

local function stats() return core._trust_stats() end

describe("trust", function()
  local srv, dir
  local T = {} -- the CA files and directories made in setup

  setup(function()
    srv = server.start()
    dir = util.tmpdir("trust")
    -- the test CA as a hashed directory
    T.capath = hashed_dir(dir .. "/capath", { srv.cafile })
    -- the machine's bundle with the test CA appended: "system-sized"
    T.big_cafile = dir .. "/system-sized.pem"
    util.write_file(T.big_cafile, assert(util.read_file(SYSTEM_BUNDLE)) .. "\n"
      .. assert(util.read_file(srv.cafile)))
    -- the machine's hashed directory with the test CA added
    local files = {}
    for name in util.capture("ls " .. q(SYSTEM_DIR)):gmatch("[^\n]+") do
      if name:match("%.pem$") then files[#files + 1] = SYSTEM_DIR .. "/" .. name end
    end
    assert(#files > 50, "the machine's CA directory looks empty")
    files[#files + 1] = srv.cafile
    T.big_capath = hashed_dir(dir .. "/system-sized", files)
    -- a CA that did not sign the server's certificate
    T.other_ca = dir .. "/other-ca.pem"
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2"
      .. " -subj '/CN=cptokens other test CA' -keyout " .. q(dir .. "/other-ca.key") .. " -out " .. q(T.other_ca))
  end)

  teardown(function()
    if srv then srv:stop() end
    util.rmdir(dir)
  end)

  before_each(function()
    srv:reset()
    srv:seed_token("alice", { name = "trust", token = TOKEN })
  end)

  local function client(opts)
    local o = { url = srv.url, user = "alice", token = TOKEN,
                timeout = H.seconds(5), connect_timeout = H.seconds(2) }
    for k, v in pairs(opts or {}) do
      if v == false then o[k] = nil else o[k] = v end -- false: remove a default
    end
    return assert(cptokens.new(o))
  end

  -- Every kind of trust configuration, and whether it trusts the fake server's CA.
  local function configs()
    return {
      { name = "the system store", opts = {}, trusted = false },
      { name = "cafile: the test CA", opts = { cafile = srv.cafile }, trusted = true },
      { name = "capath: the test CA, hashed", opts = { capath = T.capath }, trusted = true },
      { name = "cafile: system-sized bundle + test CA", opts = { cafile = T.big_cafile }, trusted = true },
      { name = "capath: system-sized directory + test CA", opts = { capath = T.big_capath }, trusted = true },
      { name = "cafile: the machine's bundle", opts = { cafile = SYSTEM_BUNDLE }, trusted = false },
      { name = "capath: the machine's directory", opts = { capath = SYSTEM_DIR }, trusted = false },
      { name = "cafile: another CA", opts = { cafile = T.other_ca }, trusted = false },
      { name = "cafile: another CA, capath: the test CA", opts = { cafile = T.other_ca, capath = T.capath },
        trusted = true },
    }
  end

  -- The URLs each configuration is tried against, and what each must give.
  local function targets(cfg)
    return {
      { what = "the server", url = srv.url, ok = cfg.trusted },
      { what = "a certificate for another host name", url = srv.wronghost_url, ok = false },
      { what = "an expired certificate", url = srv.expired_url, ok = false },
    }
  end

  local function check(label, ok, v, err)
    if ok then
      assert(v, label .. ": " .. tostring(err))
      assert.are.equal("table", type(v), label)
    else
      assert.is_nil(v, label .. ": expected a tls failure")
      assert.is_true(cptokens.is_error(err), label)
      assert.are.equal("tls", err.kind, label .. ": " .. tostring(err))
      assert.is_nil(err.status, label)
      H.assert_no_secret(err, SECRETS)
    end
  end

  it("libcurl's OpenSSL takes the shared stores here", function()
    -- Otherwise every spec below passes without testing the shared store at all.
    assert.is_true(stats().shared_stores, "libcurl does not use this module's OpenSSL")
  end)

  it("the system store is libcurl's hashed CA directory, without the bundle", function()
    local file, path = core._trust_locations()
    assert.is_nil(file)
    assert.are.equal(SYSTEM_DIR, path)
    -- given locations are used as given, alone
    assert.are.same({ srv.cafile }, { core._trust_locations(srv.cafile) })
  end)

  it("is exactly as strict with every trust configuration, one call at a time, cold and warm", function()
    for round = 1, 2 do
      for _, cfg in ipairs(configs()) do
        for _, t in ipairs(targets(cfg)) do
          local label = ("round %d, %s, %s"):format(round, cfg.name, t.what)
          local opts = { url = t.url }
          for k, v in pairs(cfg.opts) do opts[k] = v end
          local d = client(opts)
          check(label, t.ok, d:list())
          check(label .. " (the same client again)", t.ok, d:list())
          d:close()
        end
      end
    end
    -- only the trusting clients' requests reached the API
    local trusting = 0
    for _, cfg in ipairs(configs()) do if cfg.trusted then trusting = trusting + 1 end end
    assert.are.equal(2 * 2 * trusting, srv:count())
  end)

  it("is exactly as strict in a batch mixing every trust configuration, cold and warm", function()
    -- The trusting configurations come first, so that a store or TLS session they loaded
    -- would be there for the others to wrongly pick up (libcurl's own CA cache, kept per
    -- multi handle and keyed by the CA file name, would do that).
    local cfgs = configs()
    table.sort(cfgs, function(a, b) return a.trusted and not b.trusted end)
    local jobs, want = {}, {}
    for _, cfg in ipairs(cfgs) do
      for _, t in ipairs(targets(cfg)) do
        local opts = { url = t.url }
        for k, v in pairs(cfg.opts) do opts[k] = v end
        for _ = 1, 2 do
          jobs[#jobs + 1] = { client = client(opts), op = "list" }
          want[#jobs] = { ok = t.ok, label = cfg.name .. ", " .. t.what }
        end
      end
    end
    for round = 1, 3 do
      for _, concurrency in ipairs { 1, 8 } do
        local results = cptokens.batch(jobs, { concurrency = concurrency })
        for i, r in ipairs(results) do
          local label = ("round %d, concurrency %d, job %d: %s"):format(round, concurrency, i, want[i].label)
          check(label, want[i].ok, r.value, r.err)
        end
      end
    end
    for _, j in ipairs(jobs) do j.client:close() end
  end)

  it("loads a trust configuration once per process, whatever the clients, connections, batches", function()
    -- A copy: a path no other spec has loaded yet.
    local bundle = dir .. "/once.pem"
    util.write_file(bundle, assert(util.read_file(T.big_cafile)))
    local before = stats().loads
    local first = client { cafile = bundle }
    assert(first:list())
    assert.are.equal(before + 1, stats().loads, "the first client loads it")
    -- many clients in sequence, each with a call, closed or not
    for i = 1, 30 do
      local c = client { cafile = bundle }
      assert(c:list())
      if i % 2 == 0 then c:close() end
    end
    -- a batch of new clients, with new connections (more than are idle)
    local jobs = {}
    for i = 1, 24 do jobs[i] = { client = client { cafile = bundle }, op = "list" } end
    for _, r in ipairs(cptokens.batch(jobs, { concurrency = 12 })) do assert(r.ok, tostring(r.err)) end
    -- even with every pooled connection dropped, the store stays loaded
    for _, j in ipairs(jobs) do j.client:close() end
    first:close()
    collectgarbage("collect")
    cptokens.close_idle()
    assert(client({ cafile = bundle }):list())
    assert.are.equal(before + 1, stats().loads, "loaded once")

    -- the same for a hashed directory
    before = stats().loads
    for _ = 1, 10 do assert(client({ capath = T.big_capath }):list()) end
    assert.is_true(stats().loads <= before + 1)
    before = stats().loads
    for _ = 1, 10 do assert(client({ capath = T.big_capath }):list()) end
    assert.are.equal(before, stats().loads)

    -- and the system store: once it is loaded, new clients do not load it again
    check("system store", false, client({}):list())
    before = stats().loads
    for _ = 1, 10 do check("system store", false, client({}):list()) end
    assert.are.equal(before, stats().loads)
  end)

  it("loads a CA file again, for new clients, once it has changed", function()
    local file = dir .. "/changing.pem"
    util.write_file(file, assert(util.read_file(T.other_ca)))
    local old = client { cafile = file }
    check("before the change", false, old:list())
    local before = stats().loads
    -- now it holds the test CA too
    util.write_file(file, assert(util.read_file(T.other_ca)) .. assert(util.read_file(srv.cafile)))
    local new = client { cafile = file }
    check("a client made after the change", true, new:list())
    assert.are.equal(before + 1, stats().loads)
    -- the old client keeps what it trusted, and does not get the new client's connection
    check("the client made before the change", false, old:list())
    old:close()
    new:close()
  end)

  it("clients of one host with the same trust share a connection; each request carries only its own credential",
    function()
      srv:set { set_cookie = true } -- replies set a session cookie: it must never be sent back
      cptokens.close_idle()
      local plan = {
        { opts = { token = TOKEN }, auth = "cpanel", user = "alice" },
        { opts = { user = "bob", password = BOB_PW, otp = BOB_OTP, token = false }, auth = "basic", user = "bob",
          otp = true },
        { opts = { password = ALICE_PW, token = false }, auth = "basic", user = "alice" },
        { opts = { user = "carol", password = "wrong", token = false }, auth = "basic", user = "carol", fails = "auth" },
      }
      local n = 0
      for round = 1, 3 do
        for _, p in ipairs(plan) do
          local opts = { cafile = T.big_cafile }
          for k, v in pairs(p.opts) do opts[k] = v end
          local c = client(opts)
          local list, err = c:list()
          if p.fails then
            assert.are.equal(p.fails, err and err.kind, tostring(err))
          else
            assert(list, tostring(err))
          end
          n = n + 1
          if round ~= 2 then c:close() end -- closed or merely dropped: the same
        end
      end
      local log = srv:log()
      assert.are.equal(n, #log)
      for i, rec in ipairs(log) do
        local p = plan[(i - 1) % #plan + 1]
        assert.are.equal(log[1].connection, rec.connection, "request " .. i .. " reused the connection")
        assert.are.equal(i, rec.connection_requests)
        assert.are.equal(p.auth, rec.auth, "request " .. i)
        assert.are.equal(p.user, rec.auth_user, "request " .. i)
        assert.are.equal(p.otp == true, rec.otp_present, "request " .. i .. ": the OTP header")
        assert.is_false(rec.cookie_present, "request " .. i .. " sent a cookie back")
      end
    end)

  it("never hands a connection to a client with other trust settings, nor an insecure one", function()
    cptokens.close_idle()
    local function last() local log = srv:log() return log[#log].connection end
    assert(client({ cafile = srv.cafile }):list())
    local verified = last()
    assert(client({ capath = T.capath }):list()) -- the same CA, but other settings
    local other = last()
    assert.are_not.equal(verified, other)
    assert(client({ insecure = true }):list())
    local insecure = last()
    assert.are_not.equal(verified, insecure)
    assert.are_not.equal(other, insecure)
    -- verifying clients without the test CA are refused, though verified and insecure
    -- connections to that very server are idle in other pools
    local before = srv:count()
    for _, cfg in ipairs(configs()) do
      if not cfg.trusted then check(cfg.name, false, client(cfg.opts):list()) end
    end
    assert.are.equal(before, srv:count(), "no request reached the server")
    -- and each pool keeps its own connection
    assert(client({ cafile = srv.cafile }):list())
    assert.are.equal(verified, last())
    assert(client({ insecure = true }):list())
    assert.are.equal(insecure, last())

    -- insecure first, on a host no pool has yet: a verifying client still checks
    local url = srv.localhost_url
    assert(client({ url = url, insecure = true }):list())
    local insecure_conn = last()
    check("system store after insecure", false, client({ url = url }):list())
    check("another CA after insecure", false, client({ url = url, cafile = T.other_ca }):list())
    assert(client({ url = url, cafile = srv.cafile }):list())
    assert.are_not.equal(insecure_conn, last(), "the verifying client made its own connection")
  end)

  it("a CA file that holds no certificate fails as tls at the call, and nothing is cached", function()
    local bad = dir .. "/not-pem.txt"
    util.write_file(bad, "this is not a certificate\n")
    local before = stats().loads
    local c = client { cafile = bad }
    local _, err = c:list()
    check("sequential", false, nil, err)
    assert.matches("certificate file", err.message)
    local r = cptokens.batch { { client = c, op = "list" }, { client = client { cafile = srv.cafile }, op = "list" } }
    check("batch", false, r[1].value, r[1].err)
    check("batch, a good job beside it", true, r[2].value, r[2].err)
    assert.are.equal(before, stats().loads)
    -- fixed on disk: a new client loads it
    util.write_file(bad, assert(util.read_file(srv.cafile)))
    check("once fixed", true, client({ cafile = bad }):list())
    assert.are.equal(2, #srv:log(), "the good batch job and the call once fixed")
  end)

  it("close_idle() closes the pooled connections no open client uses", function()
    -- this Lua process's TCP connections to the server (its pid read in-process, not a
    -- shell's): its socket descriptors matched against the kernel's table by inode, so that
    -- other descriptors (pipes, files, libcurl's wake-up pairs) cannot move the count
    local f = assert(io.open("/proc/self/stat", "r"))
    local pid = assert(f:read("*l"):match("^(%d+)"))
    f:close()
    local port = assert(tonumber(srv.url:match(":(%d+)")))
    local function fds()
      local mine = {}
      for ino in util.capture("ls -l /proc/" .. pid .. "/fd"):gmatch("socket:%[(%d+)%]") do
        mine[ino] = true
      end
      local n = 0
      for _, table_path in ipairs { "/proc/net/tcp", "/proc/net/tcp6" } do
        for line in (util.read_file(table_path) or ""):gmatch("[^\n]+") do
          local fields = {}
          for w in line:gmatch("%S+") do fields[#fields + 1] = w end
          local rport = fields[3] and fields[3]:match(":(%x+)$")
          if rport and tonumber(rport, 16) == port and mine[fields[10]] then n = n + 1 end
        end
      end
      return n
    end
    -- trust configurations of this test alone: no other client holds their pools
    local a, b = dir .. "/idle-a.pem", dir .. "/idle-b.pem"
    util.write_file(a, assert(util.read_file(srv.cafile)))
    util.write_file(b, assert(util.read_file(srv.cafile)))
    local capath = hashed_dir(dir .. "/idle-capath", { srv.cafile })
    collectgarbage("collect")
    cptokens.close_idle()
    local base = fds()
    local c = {}
    for i, opts in ipairs { { cafile = a }, { capath = capath }, { cafile = b } } do
      c[i] = client(opts)
      assert(c[i]:list())
    end
    c[1]:close()
    c[2]:close()
    local open = fds()
    assert.are.equal(base + 3, open, "three connections are open")
    assert.are.equal(2, cptokens.close_idle(), "the two unused pools")
    assert.are.equal(open - 2, fds(), "their two connections are closed")
    assert(c[3]:list())
    c[3]:close()
    cptokens.close_idle()
    assert.are.equal(base, fds())
  end)
end)

describe("a name lookup that never answers", function()
  local srv, dir, shim

  setup(function()
    srv = server.start()
    dir = util.tmpdir("hangdns")
    shim = dir .. "/hang_dns.so"
    sh("cc -shared -fPIC -o " .. q(shim) .. " spec/support/hang_dns.c -ldl")
  end)

  teardown(function()
    if srv then srv:stop() end
    util.rmdir(dir)
  end)

  -- Runs a child Lua with the shim preloaded (getaddrinfo of hang.cptokens.test blocks 10 s).
  local function child(script)
    local path = dir .. "/child.lua"
    util.write_file(path, [[
      package.cpath = os.getenv("CPTOKENS_BUILD") .. "/?.so;" .. package.cpath
      package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
      local cptokens = require "cptokens"
      local socket = require "socket"
      local CAFILE, URL = ...
      local function new(url, timeout, connect_timeout)
        return assert(cptokens.new { url = url, user = "alice", password = "]] .. H.ALICE_PW .. [[",
                                     cafile = CAFILE, timeout = timeout, connect_timeout = connect_timeout })
      end
      ]] .. script)
    local build = os.getenv("CPTOKENS_BUILD") or "build/5.4"
    local out = util.capture("CPTOKENS_BUILD=" .. q(build) .. " CPTOKENS_HANG_SECONDS=10 LD_PRELOAD=" .. q(shim)
      .. " " .. util.LUA .. " " .. q(path) .. " " .. q(srv.cafile) .. " " .. q(srv.url) .. " 2>&1")
    return out
  end

  -- The child is not under valgrind; with ASan it runs about 3 times slower.
  local SLACK = H.asan and 4 or 1.5

  it("returns timeout within the timeout, for a single call", function()
    local out = child [[
      for _, t in ipairs { { 2, 1 }, { 1.5, 10 } } do
        local c = new("https://hang.cptokens.test:2083", t[1], t[2])
        local t0 = socket.gettime()
        local v, err = c:list()
        print(("single %s %.3f %s"):format(err and err.kind or "ok", socket.gettime() - t0, t[1]))
      end
    ]]
    local n = 0
    for kind, took, timeout in out:gmatch("single (%S+) (%S+) (%S+)") do
      n = n + 1
      assert.are.equal("timeout", kind, out)
      assert.is_true(tonumber(took) < tonumber(timeout) + SLACK, "took " .. took .. " s: " .. out)
    end
    assert.are.equal(2, n, out)
  end)

  it("returns timeout within the timeout in a batch, and the other jobs succeed", function()
    local out = child [[
      local jobs = {}
      for i = 1, 6 do
        local url = i % 3 == 1 and "https://hang.cptokens.test:2083" or URL
        jobs[i] = { client = new(url, 2, 1), op = "list" }
      end
      local t0 = socket.gettime()
      local results = cptokens.batch(jobs, { concurrency = 3 })
      local took = socket.gettime() - t0
      for i, r in ipairs(results) do print(("job %d %s"):format(i, r.ok and "ok" or r.err.kind)) end
      print(("batch %.3f"):format(took))
    ]]
    for i = 1, 6 do
      local kind = out:match("job " .. i .. " (%S+)")
      assert.are.equal(i % 3 == 1 and "timeout" or "ok", kind, out)
    end
    local took = tonumber(out:match("batch (%S+)"))
    assert.is_true(took and took < 2 + SLACK, out)
  end)
end)
