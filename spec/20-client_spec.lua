-- The client object: options, misuse, closing, tostring, the connection it keeps.
local H = require "spec.helpers"
local server = require "spec.support.server"
local cptokens = require "cptokens"
local core = require "cptokens.core"

local TOKEN = ("Q"):rep(32)

describe("cptokens.new", function()
  local base = { url = "https://127.0.0.1:2083", user = "alice", token = TOKEN }

  local function with(changes)
    local t = {}
    for k, v in pairs(base) do t[k] = v end
    for k, v in pairs(changes) do
      if v == "NIL" then t[k] = nil else t[k] = v end
    end
    return t
  end

  local misuse = {
    { "no options", nil, "expected a table" },
    { "a missing url", with { url = "NIL" }, "'url' is required" },
    { "a missing user", with { user = "NIL" }, "'user' is required" },
    { "no credential", with { token = "NIL" }, "exactly one credential" },
    { "two credentials", with { password = "pw" }, "exactly one credential" },
    { "three credentials", with { password = "pw", whm_token = "w" }, "exactly one credential" },
    { "an unknown option (a typo)", with { cafiel = "/x" }, "unknown option 'cafiel'" },
    { "a non-string key", with { [1] = "x" }, "option names must be strings" },
    { "a url of the wrong type", with { url = 42 }, "'url' must be a string" },
    { "a token of the wrong type", with { token = 42 }, "'token' must be a string" },
    { "insecure as a string", with { insecure = "yes" }, "'insecure' must be a boolean" },
    { "a timeout as a string", with { timeout = "30" }, "'timeout' must be a number" },
    { "a negative timeout", with { timeout = -1 }, "more than 0" },
    { "a zero connect_timeout", with { connect_timeout = 0 }, "more than 0" },
    { "a zero max_response", with { max_response = 0 }, "max_response" },
    { "otp without a password", with { otp = "123456" }, "'otp' goes with 'password'" },
    { "whm_user without a whm_token", with { whm_user = "root" }, "'whm_user' goes with" },
  }
  for _, case in ipairs(misuse) do
    it("raises for " .. case[1], function()
      local ok, msg = pcall(cptokens.new, case[2])
      assert.is_false(ok)
      assert.is_truthy(tostring(msg):find(case[3], 1, true), tostring(msg))
      assert.is_nil(tostring(msg):find(TOKEN, 1, true))
    end)
  end

  it("accepts fractions of seconds and every documented option", function()
    local c = assert(cptokens.new(with { timeout = 0.5, connect_timeout = 0.25, insecure = false,
                                         max_response = 1024, capath = "/etc/ssl/certs" }))
    c:close()
  end)

  it("shows the url and user, never the credential, in tostring and info", function()
    for _, cred in ipairs { { token = TOKEN }, { password = "pw-SECRET", otp = "987654" },
                            { whm_token = "WHM-SECRET", whm_user = "reseller" } } do
      local opts = { url = "https://127.0.0.1:2083/", user = "alice" }
      for k, v in pairs(cred) do opts[k] = v end
      local c = assert(cptokens.new(opts))
      local s = tostring(c)
      assert.is_truthy(s:find("alice", 1, true))
      assert.is_truthy(s:find("https://127.0.0.1:2083", 1, true))
      H.assert_no_secret({ s, c:info() }, { TOKEN, "pw-SECRET", "987654", "WHM-SECRET" })
      c:close()
      assert.are.equal("cptokens.Client (closed)", tostring(c))
    end
  end)

  it("closes idempotently, and a closed client raises a clear error", function()
    local c = assert(cptokens.new(base))
    assert.is_true(c:close())
    assert.is_true(c:close())
    for _, m in ipairs { "list", "create", "revoke", "rename", "info" } do
      local ok, msg = pcall(c[m], c, "x", m == "rename" and "y" or nil)
      assert.is_false(ok)
      assert.is_truthy(tostring(msg):find("closed"), m .. ": " .. tostring(msg))
    end
  end)

  it("hides its metatable and rejects foreign self", function()
    local c = assert(cptokens.new(base))
    assert.is_false(getmetatable(c))
    assert.is_false(pcall(c.list, {}))
    assert.is_false(pcall(c.revoke, c, 42))
    assert.is_false(pcall(c.create, c, "x", { expires_in = "1h", expires_at = 1 }))
    assert.is_false(pcall(c.create, c, "x", { expire_in = "1h" }))
    assert.is_false(pcall(c.create, c, "x", "1h"))
    assert.is_false(pcall(c.create, c, "x", { expires_in = {} }))
  end)

  it("raises misuse at the caller's line, never at a line of the library", function()
    local c = assert(cptokens.new(base))
    -- each function is one line: where it is defined is where the mistake is
    local cases = {
      function() cptokens.new { cafiel = "/x" } end,
      function() cptokens.new { url = 42, user = "alice", token = TOKEN } end,
      function() cptokens.new(with { transport = "curl", cafiel = "/x" }) end,
      function() c:create(42) end,
      function() c:create("x", { expire_in = "1h" }) end,
      function() c:create("x", { expires_in = {} }) end,
      function() c:create("x", { expires_in = "1h", expires_at = 1 }) end,
      function() cptokens.batch({ { client = c, op = "create", name = "x", expires_in = {} } }) end,
      function() c:rename("x", 42) end,
      function() c:_prepare("nope") end,
      function() cptokens.batch({ { client = c, op = "rename", name = "x" } }) end,
      function() cptokens.batch({ { client = c, op = "create", name = "x", bogus = 1 } }) end,
    }
    for i, f in ipairs(cases) do
      local ok, msg = pcall(f)
      assert.is_false(ok, "case " .. i)
      local at = debug.getinfo(f, "S")
      local want = at.short_src .. ":" .. at.linedefined .. ": "
      assert.are.equal(want, tostring(msg):sub(1, #want), "case " .. i .. ": " .. tostring(msg))
    end
    local ok, msg = pcall(function() c:create(42) end)
    assert.is_false(ok)
    assert.is_truthy(tostring(msg):find("bad argument #1 to 'create'", 1, true), tostring(msg))
    c:close()
    ok, msg = pcall(function() c:create("x") end)
    assert.is_false(ok)
    assert.is_nil(tostring(msg):find("init.lua", 1, true), tostring(msg))
    assert.is_truthy(tostring(msg):find("closed", 1, true), tostring(msg))
  end)

  it("README's error idiom keeps the error object's text on this Lua (" .. _VERSION .. ")", function()
    local f = assert(io.open("README.md", "rb"))
    local readme = f:read("*a")
    f:close()
    local src = readme:match("\n(local function check%(v, %.%.%.%)\n.-\nend)\n")
    assert.is_string(src, "README's quick start defines check")
    local check = assert((loadstring or load)(src .. "\nreturn check"))()
    local err = cptokens.error("auth", "the credentials were refused")
    local ok, msg = pcall(function() return check(nil, err) end)
    assert.is_false(ok)
    assert.are.equal("cptokens: auth: the credentials were refused", msg:gsub("^[^:]+:%d+: ", ""))
    assert.are.same({ true, false }, { check(true, false) }, "what follows the value is kept")
    -- why README does not use assert: Lua 5.1's and 5.2's take a string message only (busted's
    -- assert is luassert's, so ask this Lua's own in a child process)
    local util = require "spec.support.util"
    local script = os.tmpname()
    util.write_file(script, 'local e = setmetatable({}, { __tostring = function() return "the error" end })\n'
      .. "print(tostring(select(2, pcall(assert, nil, e))))\n")
    local out = util.capture(util.shell_quote(util.LUA) .. " " .. util.shell_quote(script) .. " 2>&1")
    os.remove(script)
    if (_VERSION == "Lua 5.1" and not rawget(_G, "jit")) or _VERSION == "Lua 5.2" then
      assert.is_truthy(out:find("string expected", 1, true), out)
    else
      assert.are.equal("the error\n", out)
    end
    -- outside the OpenResty page (LuaJIT's assert raises the object), no assert(<call>)
    local pages = readme
    for _, p in ipairs { "docs/api.md", "docs/cli.md", "docs/whm.md", "docs/security.md" } do
      pages = pages .. "\n" .. assert(util.read_file(p))
    end
    for block in pages:gmatch("```lua\n(.-)```") do
      assert.is_nil(block:gsub("%-%-[^\n]*", ""):find("assert%(%a[%w_.:]*%("), block)
    end
  end)

  if _VERSION == "Lua 5.4" then
    it("is released by a <close> variable", function()
      local chunk = assert(load([[
        local cptokens, opts = ...
        local c <close> = assert(cptokens.new(opts))
        return c
      ]]))
      local c = chunk(cptokens, base)
      assert.are.equal("cptokens.Client (closed)", tostring(c))
    end)
  end

  it("is collected without being closed", function()
    for _ = 1, 50 do assert(cptokens.new(base)) end
    collectgarbage()
    collectgarbage()
  end)

  it("has one version, in the C core and the Lua module", function()
    assert.are.equal(core._VERSION, cptokens._VERSION)
    assert.is_truthy(cptokens._VERSION:match("^%d+%.%d+%.%d+$"))
    local f = assert(io.open("CHANGELOG.md"))
    local text = f:read("*a")
    f:close()
    assert.is_truthy(text:find("## " .. cptokens._VERSION, 1, true)
                     or text:find("## [" .. cptokens._VERSION .. "]", 1, true),
                     "CHANGELOG.md has a section for " .. cptokens._VERSION)
  end)
end)

describe("the client's connection", function()
  local srv

  setup(function() srv = server.start() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  it("reuses one keep-alive TLS connection for sequential calls", function()
    local c = H.client(srv)
    assert(c:create("ka"))
    for _ = 1, 4 do assert(c:list()) end
    assert(c:revoke("ka"))
    local log = srv:log()
    assert.are.equal(6, #log)
    for i = 2, #log do assert.are.equal(log[1].connection, log[i].connection) end
    assert.are.equal(6, log[#log].connection_requests)
    -- a second client of the same server with the same trust settings reuses that idle
    -- connection (spec/47-trust_spec.lua: the pool of a trust configuration)
    local d = H.client(srv)
    assert(d:list())
    log = srv:log()
    assert.are.equal(log[1].connection, log[#log].connection)
  end)

  it("sends list as GET and the others as POST form bodies", function()
    local c = H.client(srv)
    assert(c:create("m", { expires_in = "1h" }))
    assert(c:list())
    assert(c:rename("m", "n"))
    assert(c:revoke("n"))
    local log = srv:log()
    local seen = {}
    for _, r in ipairs(log) do seen[#seen + 1] = r.method .. " " .. r.uri end
    assert.are.same({ "POST /execute/Tokens/create_full_access", "GET /execute/Tokens/list",
                      "POST /execute/Tokens/rename", "POST /execute/Tokens/revoke" }, seen)
    assert.is_truthy(log[1].content_type:find("application/x-www-form-urlencoded", 1, true))
    assert.are.equal("m", log[1].args.name)
    assert.is_truthy(log[1].args.expires_at:match("^%d+$"))
    assert.are.same({ name = "m", new_name = "n" }, log[3].args)
    assert.is_truthy(log[1].user_agent:find("cptokens/" .. cptokens._VERSION, 1, true))
  end)
end)

describe("core.request / core.response, for transports other than libcurl", function()
  local c = assert(cptokens.new { url = "https://h.example:2083/", user = "alice",
                                  password = "pw", otp = "111222" })

  it("builds the request a transport sends", function()
    local rq = assert(c:_prepare("create", "deploy", 2000000000))
    assert.are.equal("POST", rq.method)
    assert.are.equal("https://h.example:2083/execute/Tokens/create_full_access", rq.url)
    assert.are.equal("/execute/Tokens/create_full_access", rq.path)
    assert.are.equal("h.example", rq.host)
    assert.are.equal(2083, rq.port)
    assert.is_true(rq.tls)
    assert.are.equal("name=deploy&expires_at=2000000000", rq.body)
    assert.are.equal("Basic " .. (require "mime").b64("alice:pw"), rq.headers.Authorization)
    assert.are.equal("111222", rq.headers["X-CPANEL-OTP"])
    assert.are.equal("application/x-www-form-urlencoded", rq.headers["Content-Type"])
    local list = assert(c:_prepare("list"))
    assert.are.equal("GET", list.method)
    assert.are.equal("", list.body)
    assert.is_nil(list.headers["Content-Type"])
    local _, err = c:_prepare("revoke", "bad name")
    assert.are.equal("invalid", err.kind)
  end)

  it("builds WHM requests with the cpanel_jsonapi parameters", function()
    local w = assert(cptokens.new { url = "https://h.example:2087", user = "al ice" and "alice",
                                    whm_token = "W", whm_user = "res" })
    local rq = assert(w:_prepare("rename", "a", "b"))
    assert.are.equal("https://h.example:2087/json-api/cpanel?cpanel_jsonapi_user=alice"
      .. "&cpanel_jsonapi_apiversion=3&cpanel_jsonapi_module=Tokens&cpanel_jsonapi_func=rename",
      rq.url)
    assert.are.equal("name=a&new_name=b", rq.body)
    assert.are.equal("whm res:W", rq.headers.Authorization)
    assert.is_true(rq.whm)
  end)

  it("decodes a reply exactly as the libcurl transport does", function()
    local rq = assert(c:_prepare("create", "deploy", 2000000000))
    local tok = assert(core.response(rq, 200, "application/json",
      '{"status":1,"data":{"token":"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345","create_time":"1700000000"},'
      .. '"errors":null,"messages":null,"warnings":null,"metadata":{}}'))
    assert.are.same({ name = "deploy", token = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345",
                      create_time = 1700000000, expires_at = 2000000000 }, tok)
    local list = assert(c:_prepare("list"))
    local v = assert(core.response(list, 200, "application/json",
      '{"status":"1","data":[{"name":"b","create_time":5,"expires_at":""},'
      .. '{"name":"a","create_time":5,"expires_at":"7","has_full_access":1}]}'))
    assert.are.same({ { name = "a", create_time = 5, expires_at = 7, has_full_access = true },
                      { name = "b", create_time = 5, has_full_access = false } }, v)
    local revoke = assert(c:_prepare("revoke", "x"))
    local ok, existed = core.response(revoke, 200, nil, '{"status":1,"data":0}')
    assert.is_true(ok)
    assert.is_false(existed)
    local _, err = core.response(list, 200, "text/html", "<html>login</html>")
    assert.are.equal("auth", err.kind)
    _, err = core.response(list, 200, "application/json", '{"status":1,"data":"x"}')
    assert.are.equal("protocol", err.kind)
    _, err = core.response(list, 200, "application/json",
                           '{"status":1,"data":[{"name":"a","create_time":"soon"}]}')
    assert.are.equal("protocol", err.kind)
    -- a number where a string belongs is refused, not converted (was a use-after-free)
    _, err = core.response(list, 200, "application/json",
                           '{"status":1,"data":[{"name":123,"create_time":1}]}')
    assert.are.equal("protocol", err.kind)
    _, err = core.response(assert(c:_prepare("create", "n")), 200, "application/json",
                           '{"status":1,"data":{"token":12345,"create_time":1}}')
    assert.are.equal("protocol", err.kind)
    _, err = core.response(list, 200, "Text/HTML; charset=UTF-8", '{"status":1,"data":[]}')
    assert.are.equal("auth", err.kind)
    _, err = core.response(list, 204, "application/json", "")
    assert.are.equal("protocol", err.kind)
    _, err = core.response(list, 404, "text/html", "<h1>nope</h1>")
    assert.are.equal("http", err.kind)
    assert.are.equal(404, err.status)
  end)

  it("leaves the caller's cjson settings alone", function()
    local cjson = require "cjson"
    cjson.decode_max_depth(3)
    local list = assert(c:_prepare("list"))
    local v = assert(core.response(list, 200, "application/json",
      '{"status":1,"data":[{"name":"a","create_time":1,"features":[[[[1]]]]}]}'))
    assert.are.equal("a", v[1].name)
    assert.is_false(pcall(cjson.decode, "[[[[1]]]]"))
    cjson.decode_max_depth(1000)
  end)
end)
