-- OpenResty: cptokens inside a real nginx (Debian nginx-light + the Lua module, loading the
-- LuaJIT build of cptokens.core), calling the fake cPanel server through the ngx transport
-- (cosockets), and the same calls through libcurl from the same nginx for comparison.
-- The test nginx is spec/support/openresty (its own prefix, one worker); the fake cPanel
-- server is the usual one (spec/support/server.lua).
local H = require "spec.helpers"
local server = require "spec.support.server"
local runner = require "spec.support.openresty.runner"
local util = require "spec.support.util"
local socket = require "socket"
local cptokens = require "cptokens"

local ALICE_PW = H.ALICE_PW
local TOKEN = "OPENRESTYTOKEN" .. ("0"):rep(16) .. "42"
local SECRETS = {
  alice_pw = ALICE_PW, bob_pw = H.BOB_PW, bob_otp = H.BOB_OTP, carol_pw = H.CAROL_PW,
  wrong_pw = "wrong-Pa55", token = TOKEN, root_whm = H.ROOT_WHM,
  res_whm = H.RES_WHM,
}
local SLACK = 1.5
local FAULTS = require "spec.support.fault_cases"

-- A port nothing listens on.
local function refused_port() return util.free_ports(1)[1] end

describe("transport option (outside nginx)", function()
  local URL = "https://127.0.0.1:2083"

  it("'curl' is accepted, reported and kept in info(); without it the transport is libcurl", function()
    local c = assert(cptokens.new { url = URL, user = "alice", token = "T", transport = "curl" })
    assert.are.equal("curl", cptokens.transport(c))
    assert.are.equal("curl", c:info().transport)
    c:close()
    local auto = assert(cptokens.new { url = URL, user = "alice", token = "T" })
    assert.are.equal("curl", cptokens.transport(auto))
    assert.is_nil(auto:info().transport)
    auto:close()
  end)

  it("'ngx' outside nginx is invalid; any other value is misuse", function()
    local opts = { url = URL, user = "alice", token = "T", transport = "ngx" }
    local c, err = cptokens.new(opts)
    assert.is_nil(c)
    assert.are.equal("invalid", err.kind)
    assert.matches("OpenResty", err.message)
    assert.are.equal("ngx", opts.transport, "the caller's table is not changed")
    for _, bad in ipairs { "libcurl", "NGX", 1, true } do
      assert.has_error(function()
        cptokens.new { url = URL, user = "alice", token = "T", transport = bad }
      end, 'cptokens.new: option \'transport\' must be "curl" or "ngx"')
    end
  end)

  it("cptokens.ngx loads anywhere and says when cosockets are unavailable", function()
    local t = require "cptokens.ngx"
    local ok, why = t.available()
    assert.is_false(ok)
    assert.matches("OpenResty", why)
  end)

  it("cptokens.ngx knows which TLS settings it cannot honour", function()
    local t = require "cptokens.ngx"
    assert.is_nil(t.unsupported { url = "https://cpanel.example.com:2083" })
    assert.is_nil(t.unsupported { url = "https://127.0.0.1:2083", insecure = true })
    assert.is_nil(t.unsupported { url = "http://127.0.0.1:2082" })
    assert.matches("cafile", t.unsupported { url = "https://cpanel.example.com:2083", cafile = "/ca.pem" })
    assert.matches("capath", t.unsupported { url = "https://cpanel.example.com:2083", capath = "/certs" })
    assert.matches("host names only", t.unsupported { url = "https://127.0.0.1:2083" })
    assert.matches("host names only", t.unsupported { url = "https://[::1]:2083/base" })
  end)
end)

describe("OpenResty #novalgrind", function()
  if not runner.available() then
    pending("the LuaJIT build " .. runner.build .. "/cptokens/core.so is missing (make LUA_VERSION=luajit)")
    return
  end

  local srv, ng, ng_system -- the fake server; a test nginx trusting its CA; one trusting the system CAs
  local LH, LH_WHM         -- https://localhost:<port>: a host name, so the ngx transport can verify it

  setup(function()
    srv = server.start()
    LH = "https://localhost:" .. srv.ports.cpanel
    LH_WHM = "https://localhost:" .. srv.ports.whm
    local conf = {
      urls = { localhost = LH }, cafile = srv.cafile, secrets = SECRETS,
      control = { host = "127.0.0.1", port = srv.ports.control },
      hosts = { ["wronghost.test"] = "127.0.0.2" }, -- a name the certificate does not carry
    }
    local account = { url = LH, user = "alice", token = TOKEN }
    ng = runner.start { srv = srv, conf = conf, account = account }
    ng_system = runner.start { srv = srv, conf = conf, account = account, trust = "system" }
  end)

  teardown(function()
    for _, s in ipairs { ng_system or false, ng or false, srv or false } do
      if s then s:stop() end
    end
  end)

  before_each(function()
    srv:reset()
    srv:seed_token("alice", { name = "matrix", token = TOKEN })
  end)

  local function ok(r, label)
    assert.is_table(r, label)
    assert.is_true(r.ok, (label or r.op) .. ": " .. tostring(r.err and r.err.text))
    return r.value
  end

  local function fails(r, kind, status, errors, label, says)
    label = (label or "") .. " " .. tostring(r.op)
    assert.is_false(r.ok, label .. ": expected a failure")
    assert.are.equal(kind, r.err.kind, label .. ": " .. tostring(r.err.text))
    assert.are.equal(status, r.err.status, label .. ": " .. tostring(r.err.text))
    if errors then assert.are.same(errors, r.err.errors, label) end
    if says then assert.is_truthy(r.err.message:find(says, 1, true), label .. ": " .. r.err.message) end
    assert.is_nil(r.err.message:find("[\r\n]"), label .. ": the message is one line")
    assert.are.equal("cptokens: " .. kind .. ": " .. r.err.message, r.err.text)
  end

  -- A case for the test app: the credential's own URL, and the CA for libcurl.
  local function case_for(transport, cred, extra)
    local c = { transport = transport, cred = cred, url = (cred == "whm_token" or cred == "reseller") and LH_WHM or LH,
                opts = { timeout = H.seconds(5), connect_timeout = H.seconds(2) } }
    if transport == "curl" then c.opts.cafile = "test_ca" end
    for k, v in pairs(extra or {}) do
      if k == "opts" then
        for ko, ov in pairs(v) do c.opts[ko] = ov end
      else
        c[k] = v
      end
    end
    return c
  end

  -- What two transports must agree on: outcome, kind, status, cPanel's messages, values
  -- (creation times and expiries only as present or not: they follow the clock).
  local function normalize(results)
    local out = {}
    for i, r in ipairs(results) do
      local n = { op = r.op, ok = r.ok }
      if r.err then n.kind, n.status, n.errors = r.err.kind, r.err.status, r.err.errors end
      if type(r.value) == "table" then
        local function strip(v)
          local t = {}
          for k, x in pairs(v) do
            if k == "create_time" or k == "expires_at" then x = type(x) end
            t[k] = type(x) == "table" and strip(x) or x
          end
          return t
        end
        n.value = strip(r.value)
      end
      out[i] = n
    end
    return out
  end

  ------------------------------------------------------------------ phases

  it("require 'cptokens' works in init_by_lua, where calls go through libcurl", function()
    local code, body = ng:get("/init")
    assert.are.equal(200, code, body)
    local s = runner.decode(body)
    assert.are.equal("init", s.phase)
    assert.is_true(s.require_ok)
    assert.are.equal(cptokens._VERSION, s.version)
    assert.are.equal("curl", s.transport)
    assert.is_true(s.list_ok, s.list_err and s.list_err.text)
    assert.are.equal("invalid", s.forced_ngx.kind)
    assert.matches("init phase", s.forced_ngx.message)
  end)

  it("uses cosockets in rewrite, access, content and ngx.timer, libcurl in header_filter", function()
    local code, body, headers = ng:get("/phases")
    assert.are.equal(200, code, body)
    local p = runner.decode(body)
    for _, phase in ipairs { "rewrite", "access", "content" } do
      assert.are.same({ auto = "ngx", forced = "ngx" }, p[phase], phase)
    end
    -- header_filter: auto falls back to libcurl; a forced ngx is refused before any I/O
    assert.are.equal("curl,invalid,invalid", headers["x-header-filter"])
    code, body = ng:get("/timer")
    assert.are.equal(200, code, body)
    local t = runner.decode(body)
    assert.are.equal("ngx", t.transport)
    assert.is_true(t.ok, t.err and t.err.text)
  end)

  it("docs/openresty.md shows the nginx.conf block these tests run, and it works", function()
    local f = assert(io.open("docs/openresty.md", "rb"))
    local readme = f:read("*a")
    f:close()
    local section = readme:match("^# OpenResty.*$")
    assert.is_string(section, "docs/openresty.md is the OpenResty page")
    local function lines(s)
      local t = {}
      for line in s:gmatch("[^\n]*") do
        line = line:gsub("%s+$", "")
        if line ~= "" then t[#t + 1] = line end
      end
      local indent = math.huge
      for _, l in ipairs(t) do indent = math.min(indent, #l:match("^%s*")) end
      for i, l in ipairs(t) do t[i] = l:sub(indent + 1) end
      return t
    end
    local shown = section:match("```nginx\n(.-)```")
    assert.is_string(shown, "README's OpenResty section has an nginx block")
    assert.are.same(lines(runner.readme_block()), lines(shown))
    for line in runner.template():gmatch("load_module [^\n]+") do
      assert.is_truthy(section:find(line, 1, true), "README shows: " .. line)
    end
    -- README's server block, as run by the test nginx: the list through the ngx transport
    local code, body = ng:get("/tokens", 10, ng.readme_url)
    assert.are.equal(200, code, body)
    assert.are.equal("matrix\n", body)
    local log = srv:log()
    assert.are.equal("cpanel", log[#log].auth)
  end)

  ------------------------------------------------------------------ operations

  local LIFE = {
    { "create", "cycle", { expires_in = "24h" } }, { "list" }, { "rename", "cycle", "cycle-old" }, { "list" },
    { "revoke", "cycle-old" }, { "revoke", "cycle-old" }, { "list" },
  }

  local function find(list, name)
    for _, t in ipairs(list) do
      if t.name == name then return t end
    end
  end

  local function check_life(rs, base, label)
    local i = #rs - #LIFE
    local tok = ok(rs[i + 1], label)
    assert.are.equal("cycle", tok.name)
    assert.is_true(tok.token_ok, label)
    assert.is_true(math.abs(tok.expires_at - tok.create_time - 86400) <= 2, label)
    local list = ok(rs[i + 2], label)
    assert.are.equal(base + 1, #list, label)
    assert.are.same({ name = "cycle", create_time = tok.create_time, expires_at = tok.expires_at,
                      has_full_access = true }, find(list, "cycle"))
    assert.are.same({ ok = true }, ok(rs[i + 3], label))
    list = ok(rs[i + 4], label)
    assert.is_nil(find(list, "cycle"), label)
    assert.is_table(find(list, "cycle-old"), label)
    assert.are.same({ ok = true, existed = true }, ok(rs[i + 5], label))
    assert.are.same({ ok = true, existed = false }, ok(rs[i + 6], label))
    assert.are.equal(base, #ok(rs[i + 7], label), label)
  end

  local CREDS = {
    -- name, the account, its tokens before the life cycle, the auth scheme the server sees
    { cred = "token", user = "alice", base = 2, auth = "cpanel" }, -- "matrix", and "boot" made first
    { cred = "password", user = "alice", base = 1, auth = "basic" },
    { cred = "otp", user = "bob", base = 0, auth = "basic", otp = true },
    { cred = "whm_token", user = "alice", base = 1, auth = "whm" },
    { cred = "reseller", user = "alice", base = 1, auth = "whm" },
  }

  for _, k in ipairs(CREDS) do
    it("create, list, rename, revoke from content_by_lua_block with " .. k.cred .. ", as libcurl does", function()
      local outs = {}
      for _, transport in ipairs { "auto", "curl" } do
        srv:reset()
        srv:seed_token("alice", { name = "matrix", token = TOKEN })
        local ops = {}
        if k.cred == "token" then ops = { { "create", "boot" }, { "use_token" } } end
        for _, op in ipairs(LIFE) do ops[#ops + 1] = op end
        local case = case_for(transport, k.cred == "token" and "password" or k.cred, { ops = ops, user = k.user })
        local out = ng:run(case)
        local label = k.cred .. " / " .. transport
        assert.are.equal(transport == "auto" and "ngx" or "curl", out.transport, label)
        check_life(out.results, k.base, label)
        assert.are.equal(0, out.leaks, label .. ": no secret in anything returned")
        local last = srv:log()[#srv:log()]
        assert.are.equal(k.auth, last.auth, label)
        if k.otp then assert.is_true(last.otp_present, label) end
        if k.auth == "whm" then assert.are.equal("/json-api/cpanel", last.uri, label) end
        outs[transport] = normalize(out.results)
      end
      assert.are.same(outs.curl, outs.auto)
    end)
  end

  ------------------------------------------------------------------ non-blocking

  -- Request A (a list the fake answers after 1 s) is sent; once the fake has it, request B
  -- (a trivial location on the same worker) is timed; then A's answer is read.
  local function a_and_b(transport)
    srv:fault("slow", { seconds = 1, times = 1 })
    local case = case_for(transport, "password", { ops = { { "list" } } })
    local a = socket.tcp()
    a:settimeout(10)
    assert(a:connect("127.0.0.1", ng.port))
    local t0 = socket.gettime()
    assert(a:send("GET /run" .. runner.query(case) .. " HTTP/1.0\r\nHost: test\r\n\r\n"))
    while srv:count() < 1 do
      assert(socket.gettime() - t0 < 5, "request A never reached the fake server")
      socket.sleep(0.005)
    end
    local tb = socket.gettime()
    local code, body = ng:get("/ping", 10)
    local b = socket.gettime() - tb
    assert.are.equal(200, code)
    assert.are.equal("pong\n", body)
    local reply = assert(a:receive("*a"))
    local took_a = socket.gettime() - t0
    a:close()
    local out = runner.decode(assert(reply:match("\r\n\r\n(.*)$")))
    assert.are.equal(transport == "auto" and "ngx" or "curl", out.transport)
    ok(out.results[1], "request A")
    assert.is_true(took_a >= 0.95, "request A took " .. took_a)
    return b, took_a
  end

  it("does not block the worker: B is answered in under 200 ms while A waits 1 s (ngx)", function()
    local b = a_and_b("auto")
    print(("\n  openresty: B answered in %.1f ms while A waited (ngx transport)"):format(b * 1000))
    assert.is_true(b < 0.2, ("B took %.3f s"):format(b))
  end)

  it("with transport = 'curl' the worker is blocked: B waits for A (the proof can fail)", function()
    local b = a_and_b("curl")
    print(("\n  openresty: B answered in %.1f ms while A waited (libcurl transport)"):format(b * 1000))
    assert.is_true(b >= 0.8, ("B took %.3f s"):format(b))
  end)

  ------------------------------------------------------------------ TLS

  it("TLS: an untrusted certificate is refused inside nginx; insecure = true connects", function()
    -- ng_system trusts the system CAs only (lua_ssl_trusted_certificate), not the test CA
    local out = ng_system:run(case_for("auto", "password", { ops = { { "list" } } }))
    assert.are.equal("ngx", out.transport)
    fails(out.results[1], "tls", nil, nil, "untrusted")
    assert.matches("certificate", out.results[1].err.message)
    out = ng_system:run(case_for("auto", "password", { ops = { { "list" } }, opts = { insecure = true } }))
    assert.are.equal("ngx", out.transport)
    ok(out.results[1], "insecure")
    -- and an insecure connection is never handed to a verifying client from the pool
    out = ng_system:run(case_for("auto", "password", { ops = { { "list" } } }))
    fails(out.results[1], "tls", nil, nil, "untrusted after insecure")
  end)

  it("TLS: the host name is checked against the certificate", function()
    local out = ng:run(case_for("ngx", "password", { url = "https://wronghost.test:" .. srv.ports.cpanel,
                                                     ops = { { "list" } } }))
    fails(out.results[1], "tls", nil, nil, "wrong host")
    assert.are.equal(0, srv:count())
  end)

  it("TLS: a verified IP address or a cafile means libcurl (auto) or is refused (transport = 'ngx')", function()
    -- nginx matches certificates against host names only; its CA is lua_ssl_trusted_certificate
    local ip = srv.url
    local out = ng:run(case_for("ngx", "password", { url = ip, ops = { { "list" } } }))
    assert.are.equal("invalid", out.new_error.kind)
    assert.matches("host name", out.new_error.message)
    out = ng:run(case_for("auto", "password", { url = ip, ops = { { "list" } } }))
    assert.are.equal("curl", out.transport)
    fails(out.results[1], "tls", nil, nil, "IP without cafile: libcurl, system CAs") -- verification kept
    out = ng:run(case_for("auto", "password", { url = ip, ops = { { "list" } }, opts = { cafile = "test_ca" } }))
    assert.are.equal("curl", out.transport)
    ok(out.results[1], "IP with cafile")
    out = ng:run(case_for("ngx", "password", { ops = { { "list" } }, opts = { cafile = "test_ca" } }))
    assert.are.equal("invalid", out.new_error.kind)
    assert.matches("lua_ssl_trusted_certificate", out.new_error.message)
    out = ng:run(case_for("auto", "password", { ops = { { "list" } }, opts = { cafile = "test_ca" } }))
    assert.are.equal("curl", out.transport)
    ok(out.results[1], "cafile, auto")
    -- an IP address with insecure = true needs no name check: cosockets
    out = ng:run(case_for("auto", "password", { url = ip, ops = { { "list" } }, opts = { insecure = true } }))
    assert.are.equal("ngx", out.transport)
    ok(out.results[1], "IP, insecure")
  end)

  it("keeps connections alive per host, port and verification mode", function()
    local out = ng:run(case_for("ngx", "password", { ops = { { "list" }, { "list" } } }))
    ok(out.results[1])
    ok(out.results[2])
    out = ng:run(case_for("ngx", "password", { ops = { { "list" } } }))
    ok(out.results[1])
    local log = srv:log()
    assert.are.equal(3, #log)
    assert.are.equal(log[1].connection, log[2].connection, "the same connection within a request")
    assert.are.equal(log[1].connection, log[3].connection, "and across requests (the pool)")
    assert.are.equal(log[1].connection_requests + 2, log[3].connection_requests)
    out = ng:run(case_for("ngx", "password", { ops = { { "list" } }, opts = { insecure = true } }))
    ok(out.results[1])
    log = srv:log()
    assert.are_not.equal(log[1].connection, log[4].connection, "insecure: a pool of its own")
  end)

  ------------------------------------------------------------------ behaviour, both transports

  local BEHAVIOURS = {
    { name = "a duplicate name: api, with cPanel's message", ops = { { "create", "dup" }, { "create", "dup" } },
      expect = function(rs)
        ok(rs[1])
        fails(rs[2], "api", 200, { "A conflicting API token with the name \226\128\156dup\226\128\157 already exists." })
      end },
    { name = "renaming a token that does not exist: api", ops = { { "rename", "nope", "nope2" } },
      expect = function(rs)
        fails(rs[1], "api", 200, { "The API token \226\128\156nope\226\128\157 does not exist." })
      end },
    { name = "an account without the feature: api", cred = "carol", user = "carol", ops = { { "list" } },
      expect = function(rs)
        fails(rs[1], "api", 200, { "You do not have the feature \226\128\156apitokens\226\128\157." })
      end },
    { name = "a wrong password: auth 401", cred = "wrong_password", ops = { { "list" } },
      expect = function(rs) fails(rs[1], "auth", 401) end },
    { name = "a two-factor account without the code: auth 401", cred = "nootp", user = "bob", ops = { { "list" } },
      expect = function(rs) fails(rs[1], "auth", 401) end },
    { name = "an expired token: auth 401", cred = "token", ops = { { "list" } },
      setup = function()
        srv:seed_token("alice", { name = "matrix", token = TOKEN, create_time = os.time() - 100,
                                  expires_at = tostring(os.time() - 10) })
      end,
      expect = function(rs) fails(rs[1], "auth", 401) end },
    { name = "a token revokes itself, then is refused", cred = "token",
      ops = { { "revoke", "matrix" }, { "list" } },
      expect = function(rs)
        assert.are.same({ ok = true, existed = true }, ok(rs[1]))
        fails(rs[2], "auth", 401)
      end },
    { name = "bad names and expiries are refused before anything is sent",
      ops = { { "create", "bad name" }, { "revoke", "a/b" }, { "rename", "ok", "not ok" },
              { "create", ("x"):rep(51) }, { "create", "p", { expires_in = "soon" } } },
      expect = function(rs)
        for _, r in ipairs(rs) do fails(r, "invalid") end
        assert.are.equal(0, srv:count())
      end },
    { name = "plain http to a loopback host", url = function() return srv.http_url end, ops = { { "list" } },
      expect = function(rs) assert.are.equal(1, #ok(rs[1])) end },
    { name = "loosely typed fields", ops = { { "list" }, { "create", "loose" } },
      setup = function()
        local now = os.time()
        for i, v in ipairs { now + 10, tostring(now + 20), "", "0", 0 } do
          srv:seed_token("alice", { name = "t" .. i, token = ("%032d"):format(i), create_time = now - i,
                                    expires_at = v })
        end
        srv:set { loose = true }
      end,
      expect = function(rs)
        local list = ok(rs[1])
        assert.are.equal(6, #list)
        local by = {}
        for _, t in ipairs(list) do by[t.name] = t end
        assert.is_number(by.t1.expires_at)
        assert.is_number(by.t2.expires_at)
        for _, never in ipairs { "t3", "t4", "t5", "matrix" } do assert.is_nil(by[never].expires_at, never) end
        assert.is_number(ok(rs[2]).create_time)
      end },
  }

  for _, b in ipairs(BEHAVIOURS) do
    it("as libcurl: " .. b.name, function()
      local outs = {}
      for _, transport in ipairs { "ngx", "curl" } do
        srv:reset()
        srv:seed_token("alice", { name = "matrix", token = TOKEN })
        if b.setup then b.setup() end
        local case = case_for(transport, b.cred or "password", { ops = b.ops, user = b.user })
        if b.url then case.url = b.url() end
        local out = ng:run(case)
        assert.are.equal(transport, out.transport)
        b.expect(out.results)
        assert.are.equal(0, out.leaks)
        outs[transport] = normalize(out.results)
      end
      assert.are.same(outs.curl, outs.ngx)
    end)
  end

  ------------------------------------------------------------------ the fault matrix

  -- The cases of spec/support/fault_cases.lua, every one through both transports. Where
  -- each target is: the ngx transport verifies host names only, so it connects to names;
  -- the untrusted case runs in the nginx that trusts only the system CAs (and libcurl gets
  -- no cafile).
  local TARGETS = {
    untrusted = function() return LH end,
    wronghost = function(transport)
      return transport == "ngx" and "https://wronghost.test:" .. srv.ports.cpanel or srv.wronghost_url
    end,
    expired = function() return "https://localhost:" .. srv.ports.expired end,
    refused = function() return "https://localhost:" .. refused_port() end,
    unresolvable = function() return FAULTS.UNRESOLVABLE_URL end,
  }

  local OPS = {
    create = { "create", "matrix_new" }, list = { "list" },
    rename = { "rename", "matrix", "matrix_renamed" }, revoke = { "revoke", "matrix" },
  }

  for _, m in ipairs(FAULTS.cases) do
    it("fault matrix through ngx as through libcurl: " .. m.name .. " -> " .. m.kind, function()
      for _, cred in ipairs(FAULTS.uapi_creds(m)) do
        local outs = {}
        for _, transport in ipairs { "ngx", "curl" } do
          srv:reset()
          srv:seed_token("alice", { name = "matrix", token = TOKEN })
          local label = m.name .. " / " .. cred .. " / " .. transport
          local case = case_for(transport, cred, { opts = m.opts })
          local untrusted = m.target == "untrusted"
          if untrusted then case.opts.cafile = nil end
          if m.target then case.url = TARGETS[m.target](transport) end
          local mode, params = FAULTS.fault(m, cred)
          local fault = mode and { mode, params } or nil
          -- a warm connection first, so that faults also hit a reused one; then the client recovers
          case.warm, case.recover, case.fault = fault ~= nil, fault ~= nil, fault
          case.ops = {}
          for _, op in ipairs(m.ops or { "create", "list", "rename", "revoke" }) do case.ops[#case.ops + 1] = OPS[op] end
          local out = (untrusted and transport == "ngx" and ng_system or ng):run(case)
          assert.is_nil(out.new_error, label)
          assert.are.equal(transport, out.transport, label)
          if case.warm then ok(out.warm, label .. " (warm)") end
          local budget = case.opts.timeout
          for _, r in ipairs(out.results) do
            fails(r, m.kind, m.status, m.errors, label, m.says)
            assert.is_true(r.took < budget + SLACK, ("%s: took %.2f s"):format(label, r.took))
            if m.min then assert.is_true(r.took >= m.min, ("%s: gave up after %.2f s"):format(label, r.took)) end
          end
          if case.recover then ok(out.recovered, label .. ": the client recovers") end
          assert.are.equal(0, out.leaks, label .. ": no secret in anything returned")
          if not fault then assert.are.equal(0, srv:count(), label .. ": nothing reached the API") end
          assert.are.equal(0, srv:count("other"), label .. ": credentials went nowhere else")
          outs[transport] = normalize(out.results)
        end
        assert.are.same(outs.curl, outs.ngx)
      end
    end)
  end

  ------------------------------------------------------------------ WHM API tokens

  -- cptokens.whm inside nginx: every operation, for root and a reseller, through the
  -- cosocket transport exactly as through libcurl.
  local WHM_LIFE = {
    { "whm", "create", "w1", { acls = { "list-accts", "create-acct" },
                               whitelist_ips = { "127.0.0.0/8", "2001:db8::1" }, expires_in = "1d" } },
    { "whm", "list" },
    { "whm_details_last" },
    { "whm", "update", "w1", { new_name = "w2", acls = { "list-accts" }, whitelist_ips = false,
                               expires = false } },
    { "whm", "details", "UNKNOWNTOKEN00000000000000000000" },
    { "whm", "create", "bad name" },
    { "whm", "revoke", { "w2", "nothing" } },
    { "whm", "list" },
    { "whm", "accounts" },
    { "whm", "audit", { within = "14d", now = 1800000000 } },
  }

  for _, who in ipairs({ { "whm_root", 4 }, { "whm_res", 1 } }) do
    it("WHM API tokens from content_by_lua_block with " .. who[1] .. ", as libcurl does", function()
      local outs = {}
      for _, transport in ipairs { "auto", "curl" } do
        srv:reset()
        local case = case_for(transport, who[1], { ops = WHM_LIFE, url = LH_WHM })
        local out = ng:run(case)
        local label = who[1] .. " / " .. transport
        assert.is_nil(out.new_error, label)
        assert.are.equal(transport == "auto" and "ngx" or "curl", out.transport, label)
        local rs = out.results
        local made = ok(rs[1], label)
        assert.is_true(made.token_ok, label)
        assert.are.same({ "create-acct", "list-accts" }, made.acls, label)
        assert.are.same({ "127.0.0.0/8", "2001:0db8:0000:0000:0000:0000:0000:0001" }, made.whitelist_ips, label)
        assert.are.equal("w1", ok(rs[2], label)[1].name, label)
        assert.are.equal("w1", ok(rs[3], label).name, label)
        local upd = ok(rs[4], label)
        assert.are.equal("w2", upd.name, label)
        assert.is_nil(upd.whitelist_ips, label)
        assert.is_false(ok(rs[5], label), label)
        fails(rs[6], "invalid", nil, nil, label)
        assert.is_true(ok(rs[7], label), label)
        assert.are.same({}, ok(rs[8], label), label)
        assert.are.equal(who[2], #ok(rs[9], label), label)
        assert.is_table(ok(rs[10], label), label)
        assert.are.equal(0, out.leaks, label .. ": no secret in anything returned")
        local last = srv:log()[#srv:log()]
        assert.are.equal("whm", last.auth, label)
        assert.are.equal("/json-api/api_token_list", last.uri, label)
        outs[transport] = normalize(rs)
      end
      assert.are.same(outs.curl, outs.auto)
    end)
  end

  local WHM_OPS = {
    create = { "whm", "create", "matrix_new", { acls = { "list-accts" } } }, list = { "whm", "list" },
    rename = { "whm", "update", "matrix", { new_name = "matrix_renamed" } },
    revoke = { "whm", "revoke", { "matrix" } }, details = { "whm", "details", TOKEN },
    accounts = { "whm", "accounts" },
  }

  for _, m in ipairs(FAULTS.cases) do
    if FAULTS.applies(m, "whm") then
      it("fault matrix for WHM operations through ngx as through libcurl: " .. m.name .. " -> " .. m.kind, function()
        local outs = {}
        for _, transport in ipairs { "ngx", "curl" } do
          srv:reset()
          srv:seed_whm_token("root", { name = "matrix", token = TOKEN })
          local label = m.name .. " / whm / " .. transport
          local case = case_for(transport, "whm_root", { opts = m.opts, url = LH_WHM })
          local untrusted = m.target == "untrusted"
          if untrusted then case.opts.cafile = nil end
          if m.target then case.url = TARGETS[m.target](transport) end -- TLS and network fail first
          local mode, params = FAULTS.fault(m, "whm")
          local fault = mode and { mode, params } or nil
          case.warm, case.recover, case.fault = fault ~= nil, fault ~= nil, fault
          case.ops = {}
          for _, op in ipairs(m.ops or { "create", "list", "rename", "revoke", "details", "accounts" }) do
            case.ops[#case.ops + 1] = WHM_OPS[op]
          end
          local out = (untrusted and transport == "ngx" and ng_system or ng):run(case)
          assert.is_nil(out.new_error, label)
          assert.are.equal(transport, out.transport, label)
          if case.warm then ok(out.warm, label .. " (warm)") end
          for _, r in ipairs(out.results) do
            fails(r, m.kind, m.status, m.errors, label, m.says)
            assert.is_true(r.took < case.opts.timeout + SLACK, ("%s: took %.2f s"):format(label, r.took))
          end
          if case.recover then ok(out.recovered, label .. ": the client recovers") end
          assert.are.equal(0, out.leaks, label .. ": no secret in anything returned")
          assert.are.equal(0, srv:count("other"), label .. ": credentials went nowhere else")
          outs[transport] = normalize(out.results)
        end
        assert.are.same(outs.curl, outs.ngx)
      end)
    end
  end

  ------------------------------------------------------------------ HTTP framing

  -- Replies byte for byte (the fake server always sends Content-Length), served by the other
  -- test nginx (a worker blocked in libcurl could not answer its own request).
  local FRAMING = {
    { "chunked", true }, { "close", true }, { "http10", true }, { "continue", true }, { "lf_only", true },
    { "chunked_big", "protocol" }, { "close_big", "protocol" }, { "chunked_cut", "network" },
    { "bad_chunk", "network" }, { "bad_status", "protocol" }, { "gzip", "protocol" },
    { "no_reply", "network" },
    -- Two different Content-Length headers: refused by the ngx transport (RFC 9112, 6.3); libcurl
    -- takes the last one and finds the body cut short. Both fail; the kinds differ.
    { "two_lengths", { ngx = "protocol", curl = "network" } },
  }

  for _, f in ipairs(FRAMING) do
    local expect = f[2] == true and "a list" or type(f[2]) == "table" and f[2].ngx .. " (libcurl: " .. f[2].curl .. ")"
      or f[2]
    it("HTTP framing, as libcurl: " .. f[1] .. " -> " .. expect, function()
      local outs = {}
      for _, transport in ipairs { "ngx", "curl" } do
        local url = "http://127.0.0.1:" .. ng_system.port .. "/raw/" .. f[1]
        local out = ng:run(case_for(transport, "password", { url = url, ops = { { "list" }, { "list" } },
                                                             opts = { max_response = 65536 } }))
        assert.are.equal(transport, out.transport)
        for _, r in ipairs(out.results) do
          if f[2] == true then
            assert.are.same({ { name = "raw", create_time = 1700000000, has_full_access = true } },
                            ok(r, f[1] .. " / " .. transport))
          else
            fails(r, type(f[2]) == "table" and f[2][transport] or f[2], nil, nil, f[1] .. " / " .. transport)
          end
        end
        outs[transport] = normalize(out.results)
      end
      if type(f[2]) ~= "table" then assert.are.same(outs.curl, outs.ngx) end
    end)
  end

  it("a list whose pooled connection the server dropped is retried once; a create never", function()
    for _, op in ipairs { "create", "rename", "revoke" } do
      srv:reset()
      srv:seed_token("alice", { name = "matrix", token = TOKEN })
      local out = ng:run(case_for("ngx", "password", { warm = true, fault = { "reset", { times = 1 } },
                                                       ops = { OPS[op] } }))
      ok(out.warm)
      fails(out.results[1], "network", nil, nil, op)
      assert.are.equal(2, srv:count(), op .. ": the request was sent once")
    end
    srv:reset()
    local out = ng:run(case_for("ngx", "password", { warm = true, fault = { "reset", { times = 1 } },
                                                     ops = { { "list" } } }))
    ok(out.results[1], "list, retried on a fresh connection")
    assert.are.equal(3, srv:count())
  end)
end)
