-- Errors that say what to do (issue 15, point 9), checked as a user meets them: a TLS URL on a
-- plain-HTTP port, a CA this machine does not trust, a certificate for another name, an
-- expired one, a refused credential; the --insecure warning; and a token file's server or
-- account never overridden silently by the environment or a flag (issue 14).
local server = require "spec.support.server"
local util = require "spec.support.util"
local cli = require "spec.support.cli"
local hints = require "cptokens.cli.hints"

local q = util.shell_quote

describe("cptokens hints", function()
  local srv, tmp, run, alice

  setup(function()
    srv = server.start()
    tmp = util.tmpdir("clihints")
    run = cli.runner(srv, tmp)
  end)
  teardown(function()
    if srv then srv:stop() end
    util.rmdir(tmp)
  end)
  before_each(function()
    alice = { CPANEL_URL = srv.url, CPANEL_USER = "alice", CPANEL_PASSWORD = srv.accounts.alice.password }
  end)

  local function hint_of(r)
    return r.err:match("\ncptokens: hint: ([^\n]+)\n")
  end

  it("https on a plain-HTTP port: the TLS port to use", function()
    alice.CPANEL_URL = srv.http_url:gsub("^http:", "https:")
    local r = run({ "list" }, alice)
    assert.are.equal(1, r.code)
    assert.matches("wrong version number", r.err, nil, true)
    assert.matches("answered in plain HTTP, not TLS: cPanel's TLS ports are 2083 %(cPanel%) and 2087 %(WHM%)",
      hint_of(r))
    -- cPanel's own plain ports map to their TLS twins
    local err = { kind = "tls", message = "list: OpenSSL/3.0: error:0A00010B:SSL routines::wrong version number" }
    for plain, tls in pairs { ["2082"] = "2083", ["2086"] = "2087", ["2095"] = "2096" } do
      local line = hints.lines({ target = { url = "https://host.example:" .. plain } }, err)[1]
      assert.are.equal("port " .. plain .. " is cPanel's plain-HTTP port; its TLS port is " .. tls
        .. ": --url https://host.example:" .. tls, line)
    end
  end)

  it("a CA this machine does not trust: the certificate's issuer and --cafile", function()
    -- (the runner sets CPANEL_CAFILE; an empty one is "not set": the system store)
    local before = #srv:log()
    local r = run({ "list" }, { CPANEL_URL = srv.url, CPANEL_USER = "alice", CPANEL_PASSWORD = srv.accounts.alice.password,
                          CPANEL_CAFILE = "" })
    assert.are.equal(1, r.code, r.err)
    assert.matches("unable to get local issuer certificate", r.err, nil, true)
    assert.matches("was issued by 'CN = cptokens fake test CA'", hint_of(r), nil, true)
    assert.matches("--cafile FILE", hint_of(r), nil, true)
    assert.are.equal(before, #srv:log(), "reading the certificate sent no request")
  end)

  it("a certificate for another name: cPanel picks it by the host name; the names it is for", function()
    local key, cert = tmp .. "/wrong.key", tmp .. "/wrong.pem"
    assert(util.execute("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2"
      .. " -subj /CN=wrong.example -addext subjectAltName=DNS:wrong.example,DNS:www.wrong.example"
      .. " -keyout " .. q(key) .. " -out " .. q(cert) .. " >/dev/null 2>&1"))
    local port = util.free_ports(1)[1]
    local pidfile = tmp .. "/s_server.pid"
    assert(util.execute("openssl s_server -quiet -accept 127.0.0.1:" .. port .. " -cert " .. q(cert) .. " -key "
      .. q(key) .. " -www </dev/null >/dev/null 2>&1 & echo $! > " .. q(pidfile)))
    local pid = assert((util.read_file(pidfile) or ""):match("%d+"))
    local ok, e = pcall(function()
      local r
      for _ = 1, 50 do -- until it listens
        r = run({ "list", "--cafile", cert }, { CPANEL_URL = "https://127.0.0.1:" .. port, CPANEL_USER = "alice",
                                                CPANEL_TOKEN = "NOTSENTANYWHERE0000000000000000X" })
        if not r.err:find("connect", 1, true) then break end
        util.execute("sleep 0.1")
      end
      assert.are.equal(1, r.code, r.err)
      assert.matches("cptokens: tls: ", r.err, nil, true)
      local h = assert(hint_of(r), r.err)
      assert.matches("cPanel chooses its certificate by the host name asked for", h, nil, true)
      assert.matches("'127.0.0.1'", h, nil, true)
      assert.matches("this certificate is for: DNS:wrong.example, DNS:www.wrong.example", h, nil, true)
      assert.is_nil(r.err:find("NOTSENTANYWHERE", 1, true))
    end)
    util.execute("kill " .. pid)
    assert(ok, e)
  end)

  it("an expired certificate: renew it on the server", function()
    alice.CPANEL_URL = srv.expired_url
    local r = run({ "list" }, alice)
    assert.are.equal(1, r.code)
    assert.matches("the server's certificate has expired: it must be renewed on the server", hint_of(r), nil, true)
  end)

  it("a refused credential: the user, the kind and where it came from, never the value", function()
    local bad = tmp .. "/bad-token"
    util.write_private(bad, "WRONGTOKEN000000000000000000000X\n")
    local r = run({ "list", "--token-file", bad }, { CPANEL_URL = srv.url, CPANEL_USER = "alice" })
    assert.are.equal(1, r.code)
    assert.are.equal("the server refused the API token from the file " .. bad .. " for user alice at " .. srv.url
      .. "; it may be wrong, expired or revoked (cPanel never shows a token again: make a new one)", hint_of(r))
    assert.is_nil(r.err:find("WRONGTOKEN", 1, true))
    r = run({ "list" }, { CPANEL_URL = srv.url, CPANEL_USER = "alice", CPANEL_PASSWORD = "not-the-password" })
    assert.matches("the server refused the account password from CPANEL_PASSWORD for user alice", hint_of(r), nil, true)
    assert.matches("cPHulk", hint_of(r), nil, true)
    assert.is_nil(r.err:find("not-the-password", 1, true))
    r = run({ "list" }, { CPANEL_URL = srv.whm_url, CPANEL_USER = "alice", WHM_TOKEN = "WRONGWHMTOKEN00000000000000000X" })
    assert.matches("the WHM API token from WHM_TOKEN for WHM user root, acting for alice", hint_of(r), nil, true)
  end)

  it("--insecure warns on stderr, and still works", function()
    local r = run({ "list", "--insecure" }, alice)
    assert.are.equal(0, r.code, r.err)
    assert.matches("^cptokens: warning: %-%-insecure: the server's certificate is not checked", r.err)
    r = run({ "list" }, alice)
    assert.are.equal("", r.err)
  end)

  describe("a token file's server and account", function()
    local path
    before_each(function()
      srv:reset()
      path = tmp .. "/own.json"
      local r = run({ "create", "own", "--out", path }, alice)
      assert.are.equal(0, r.code, r.err)
    end)

    it("are used when nothing else is said", function()
      local r = run({ "list", "--token-file", path }, {})
      assert.are.equal(0, r.code, r.err)
    end)

    it("a stale CPANEL_URL (or --url) is refused, naming both; nothing is sent", function()
      local before = #srv:log()
      local r = run({ "list", "--token-file", path }, { CPANEL_URL = srv.other_url })
      assert.are.equal(2, r.code, r.err)
      assert.matches("--token-file " .. path .. " holds a token for " .. srv.url .. ", but CPANEL_URL says "
        .. srv.other_url, r.err, nil, true)
      r = run({ "list", "--token-file", path, "--url", srv.other_url }, {})
      assert.are.equal(2, r.code, r.err)
      assert.matches("but --url says " .. srv.other_url, r.err, nil, true)
      assert.are.equal(before, #srv:log())
      -- the same server written another way is the same server
      r = run({ "list", "--token-file", path }, { CPANEL_URL = srv.url .. "/" })
      assert.are.equal(0, r.code, r.err)
    end)

    it("another account is refused, naming both", function()
      local r = run({ "list", "--token-file", path }, { CPANEL_USER = "bob" })
      assert.are.equal(2, r.code, r.err)
      assert.matches("holds a token of the account alice, but CPANEL_USER says bob", r.err, nil, true)
    end)
  end)
end)
