-- Every error kind, produced for real against the fake server (no mocked transport).
local H = require "spec.helpers"
local server = require "spec.support.server"
local socket = require "socket"
local cptokens = require "cptokens"

local ALICE_PW = H.ALICE_PW
local SECRETS = { ALICE_PW }

describe("errors", function()
  local srv

  setup(function() srv = server.start() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  local function client(opts) return H.client(srv, opts) end

  describe("a server that echoes the credential", function()
    local mime = require "mime"
    local DAVE_PW
    local function html(v) return (v:gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;"):gsub('"', "&quot;")) end
    local function pct(v)
      return (v:gsub("[^%w%-_%.~!'()*]", function(ch) return ("%%%02X"):format(ch:byte()) end))
    end

    -- Every form the credential could come back in; none may survive in what is returned.
    local function forms(user, secret, basic, otp)
      local f = { secret, user .. ":" .. secret, html(secret), pct(secret) }
      if basic then f[#f + 1] = (mime.b64(user .. ":" .. secret)) end
      if otp then f[#f + 1] = otp end
      return f
    end

    local function check(err, all, label)
      assert.is_true(cptokens.is_error(err), label)
      local texts = { err.message, tostring(err) }
      for _, e in ipairs(err.errors or {}) do texts[#texts + 1] = e end
      local redacted = 0
      for _, t in ipairs(texts) do
        for _, f in ipairs(all) do
          assert.is_nil(t:find(f, 1, true), label .. ": a form of the credential came back")
        end
        if t:find("<redacted>", 1, true) then redacted = redacted + 1 end
      end
      if err.errors then assert.is_true(redacted > 0, label .. ": the echo was kept, scrubbed") end
    end

    it("is scrubbed where a long message was cut in the middle of the secret", function()
      local tok = "CUTTOKEN000000000000000000000000"
      for pad = 470, 500, 3 do
        srv:fault("notenvelope", { body = '{"status":0,"data":null,"errors":["' .. ("x"):rep(pad)
          .. "cpanel alice:" .. tok .. '"]}' })
        local _, err = client { user = "alice", token = tok }:list()
        for len = 6, #tok do
          assert.is_nil(err.message:find(tok:sub(1, len), 1, true), pad .. ": " .. len)
        end
      end
      srv:clear_faults()
    end)

    it("is scrubbed of every form, for each credential kind, alone and in a batch", function()
      DAVE_PW = srv.accounts.dave.password
      local BOB = srv.accounts.bob
      local creds = {
        { "password", { user = "dave", password = DAVE_PW }, forms("dave", DAVE_PW, true) },
        { "password+otp", { user = "bob", password = BOB.password, otp = BOB.otp },
          forms("bob", BOB.password, true, BOB.otp) },
        { "token", { user = "alice", token = "ECHOTOKEN0000000000000000000000Z" },
          forms("alice", "ECHOTOKEN0000000000000000000000Z") },
        { "whm_token", { user = "alice", url = srv.whm_url, whm_token = srv.accounts.root.token },
          forms("root", srv.accounts.root.token) },
      }
      for _, cr in ipairs(creds) do
        for _, shape in ipairs { { status = 200 }, { status = 401 }, { status = 403, shape = "whm" } } do
          local label = cr[1] .. " / " .. shape.status
          srv:fault("echo", shape)
          local c = client(cr[2])
          local _, err = c:list()
          check(err, cr[3], label)
          local _, cerr = c:create("echoed")
          check(cerr, cr[3], label .. " / create")
          local res = cptokens.batch { { client = c, op = "list" }, { client = c, op = "revoke", name = "x" } }
          check(res[1].err, cr[3], label .. " / batch")
          check(res[2].err, cr[3], label .. " / batch")
          srv:clear_faults()
          c:close()
        end
      end
    end)
  end)

  -- Asserts a failure of the given kind and returns the error.
  local function fails(kind, value, err)
    assert.is_nil(value)
    assert.is_true(cptokens.is_error(err), "expected an error object, got " .. tostring(err))
    assert.are.equal(kind, err.kind, tostring(err))
    assert.are.equal("string", type(err.message))
    assert.is_nil(err.message:find("\n"), "message is one line")
    assert.are.equal("cptokens: " .. kind .. ": " .. err.message, tostring(err))
    H.assert_no_secret(err, SECRETS)
    return err
  end

  describe("invalid: refused before anything is sent", function()
    local cases = {
      { "an overlong name", function(c) return c:create(("x"):rep(51)) end },
      { "a name with a space", function(c) return c:create("bad name") end },
      { "a name with a slash", function(c) return c:revoke("a/b") end },
      { "an empty name", function(c) return c:create("") end },
      { "a name with CR LF", function(c) return c:create("x\r\nHost: evil") end },
      { "a name with NUL", function(c) return c:create("x\0y") end },
      { "a bad new name", function(c) return c:rename("ok", "not ok") end },
      { "a rename to the same name", function(c) return c:rename("same", "same") end },
      { "an expiry in the past", function(c) return c:create("p", { expires_at = os.time() - 10 }) end },
      { "an expiry now", function(c) return c:create("p", { expires_at = os.time() }) end },
      { "an expiry past cPanel's maximum", function(c)
          return c:create("p", { expires_at = 67767976233521999 + 1e6 }) end },
      { "an unreadable duration", function(c) return c:create("p", { expires_in = "soon" }) end },
      { "a zero duration", function(c) return c:create("p", { expires_in = "0h" }) end },
      { "a bad ISO time", function(c) return c:create("p", { expires_at = "2026-13-01T00:00:00Z" }) end },
    }
    for _, case in ipairs(cases) do
      it("for " .. case[1], function()
        local c = client()
        local before = srv:count()
        fails("invalid", case[2](c))
        assert.are.equal(before, srv:count(), "nothing was sent")
        c:close()
      end)
    end

    it("names the bad name, escaped, in the message", function()
      local _, err = client():create("x\r\ny")
      assert.is_truthy(err.message:find('"x\\x0D\\x0Ay"', 1, true), err.message)
    end)

    it("for http:// to a host that is not loopback, CR/LF in user or credentials", function()
      local bad = {
        { url = "http://cpanel.example.com:2082", user = "alice", token = "T" },
        { url = "ftp://127.0.0.1", user = "alice", token = "T" },
        { url = "https://alice:pw@127.0.0.1:2083", user = "alice", token = "T" },
        { url = "https://127.0.0.1:2083/?x=1", user = "alice", token = "T" },
        { url = "https://127.0.0.1\r\n:2083", user = "alice", token = "T" },
        { url = "not a url", user = "alice", token = "T" },
        { url = "https://127.0.0.1:2083", user = "ali\nce", token = "T" },
        { url = "https://127.0.0.1:2083", user = "ali:ce", token = "T" },
        { url = "https://127.0.0.1:2083", user = "", token = "T" },
        { url = "https://127.0.0.1:2083", user = "alice", token = "T\r\nX-Evil: 1" },
        { url = "https://127.0.0.1:2083", user = "alice", token = "" },
        { url = "https://127.0.0.1:2083", user = "alice", password = "p\0w" },
        { url = "https://127.0.0.1:2083", user = "alice", password = "pw", otp = "1\n2" },
        { url = "https://127.0.0.1:2083", user = "alice", whm_token = "W", whm_user = "ro ot" },
        { url = "https://127.0.0.1:2083", user = "alice", token = "T", cafile = "/nonexistent/ca.pem" },
      }
      for _, opts in ipairs(bad) do
        local c, err = cptokens.new(opts)
        fails("invalid", c, err)
        H.assert_no_secret(err, { "T\r\nX-Evil", "p\0w" })
      end
    end)

    it("allows plain http to a loopback host", function()
      local c = client { url = srv.http_url }
      assert.are.same({}, assert(c:list()))
    end)
  end)

  it("tls: an untrusted certificate is refused; insecure = true connects", function()
    local c = assert(cptokens.new { url = srv.url, user = "alice", password = ALICE_PW })
    fails("tls", c:list()) -- the system store does not trust the test CA
    local wrong_ca = assert(cptokens.new { url = srv.url, user = "alice", password = ALICE_PW,
                                           cafile = "/etc/ssl/certs/ca-certificates.crt" })
    fails("tls", wrong_ca:list())
    local insecure = client { insecure = true }
    assert.are.same({}, assert(insecure:list()))
  end)

  it("tls: the host name is checked against the certificate", function()
    -- the certificate names localhost and 127.0.0.1; 127.0.0.2 reaches the same server
    local c = client { url = srv.wronghost_url }
    local err = fails("tls", c:list())
    assert.is_truthy(err.message:lower():find("certificate") or err.message:find("SSL"))
    assert.are.same({}, assert(client({ url = srv.localhost_url }):list()))
  end)

  it("auth: a revoked token gives 401", function()
    local tok = assert(client():create("gone"))
    assert(client():revoke("gone"))
    local err = fails("auth", client({ token = tok.token }):list())
    assert.are.equal(401, err.status)
    H.assert_no_secret(err, { tok.token })
  end)

  it("auth: an expired token gives 401 (expired tokens still list)", function()
    srv:seed_token("alice", { name = "old", token = ("E"):rep(32), create_time = os.time() - 100,
                              expires_at = tostring(os.time() - 10) })
    local err = fails("auth", client({ token = ("E"):rep(32) }):list())
    assert.are.equal(401, err.status)
    local list = assert(client():list())
    assert.are.equal("old", list[1].name)
    assert.is_true(cptokens.time.is_expired(list[1]))
  end)

  it("auth: a wrong password gives 401 and does not echo the password", function()
    local err = fails("auth", client({ password = "wrong-Pa55" }):list())
    assert.are.equal(401, err.status)
    H.assert_no_secret(err, { "wrong-Pa55" })
  end)

  it("auth: 401 and 403 with JSON bodies keep the server's messages", function()
    for _, status in ipairs { 401, 403 } do
      srv:fault("json_status", { status = status, times = 1 })
      local err = fails("auth", client():list())
      assert.are.equal(status, err.status)
      assert.are.same({ "Access denied" }, err.errors)
    end
  end)

  it("auth: an HTML login page with status 200 is never a success", function()
    srv:fault("login")
    local err = fails("auth", client():list())
    assert.are.equal(200, err.status)
    fails("auth", client():create("x"))
  end)

  it("api: a duplicate name carries cPanel's message", function()
    local c = client()
    assert(c:create("dup"))
    local err = fails("api", c:create("dup"))
    assert.are.same({ "A conflicting API token with the name “dup” already exists." },
                    err.errors)
    assert.are.equal(err.errors[1], err.message)
    assert.are.equal(200, err.status)
  end)

  it("api: renaming a token that does not exist, and an account without the feature", function()
    local err = fails("api", client():rename("nope", "nope2"))
    assert.are.same({ "The API token “nope” does not exist." }, err.errors)
    err = fails("api", client({ user = "carol", password = H.CAROL_PW }):list())
    assert.are.same({ "You do not have the feature “apitokens”." }, err.errors)
  end)

  it("http: 500 and 503 give the status", function()
    for _, status in ipairs { 500, 503 } do
      srv:fault("status", { status = status, times = 1 })
      local err = fails("http", client():list())
      assert.are.equal(status, err.status)
    end
  end)

  it("http: a redirect is not followed and the credentials go nowhere else", function()
    srv:fault("redirect")
    local err = fails("http", client():list())
    assert.are.equal(302, err.status)
    for _, rec in ipairs(srv:log()) do
      assert.are_not.equal("other", rec.port)
    end
  end)

  it("timeout: a server that never answers, with timeout = 1", function()
    srv:fault("hang", { seconds = 10 })
    local c = client { timeout = 1 }
    local t0 = H.clock()
    local err = fails("timeout", c:list())
    local took = H.clock() - t0
    assert.is_true(took >= 0.9 and took < 1 + H.seconds(1), "took " .. took)
    assert.is_nil(err.status)
  end)

  it("timeout: the total timeout holds against a server that drips", function()
    srv:fault("drip", { seconds = 10 })
    local t0 = H.clock()
    fails("timeout", client({ timeout = 1.5 }):list())
    assert.is_true(H.clock() - t0 < 1.5 + H.seconds(1.5))
  end)

  it("network: a refused port", function()
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    fails("network", client({ url = "https://127.0.0.1:" .. port }):list())
  end)

  it("network: a name that does not resolve", function()
    fails("network", client({ url = "https://no-such-host.invalid:2083" }):list())
  end)

  it("network: a connection reset, and a body cut short", function()
    srv:fault("reset", { times = 1 })
    fails("network", client():list())
    srv:fault("truncated", { times = 1 })
    fails("network", client():list())
  end)

  it("protocol: malformed JSON is never a success", function()
    srv:fault("malformed")
    local err = fails("protocol", client():list())
    assert.is_truthy(err.message:find("malformed JSON"))
    fails("protocol", client():create("x"))
  end)

  it("protocol: JSON that is not the envelope", function()
    for _, body in ipairs { "[]", '"hello"', '{"data":[]}', '{"status":"yes"}', "{}" } do
      srv:fault("notenvelope", { body = body, times = 1 })
      fails("protocol", client():list())
    end
  end)

  it("protocol: a reply larger than max_response is cut off", function()
    srv:fault("bigbody", { bytes = 200000 })
    local err = fails("protocol", client({ max_response = 65536 }):list())
    assert.is_truthy(err.message:find("max_response"))
  end)
end)
