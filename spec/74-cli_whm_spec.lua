-- `cptokens whm ...` and `cptokens accounts` (issue 13, "Command line"): every command for root
-- and for a reseller, as a user runs them (bin/cptokens from the tree, a real process) against
-- the fake WHM server, with TLS verified. Secrets reach the tool through a 0600 environment
-- file the shell sources, or files it reads; never its argv. Every run's stdout and stderr are
-- scanned for every secret at the end (create's stdout excepted: the token it hands over).
local H = require "spec.helpers"
local server = require "spec.support.server"
local util = require "spec.support.util"
local store = require "cptokens.store"
local cjson = require "cjson"

local shell_quote, read_file = util.shell_quote, util.read_file
local LUA = util.LUA
local unpack = table.unpack or unpack -- luacheck: ignore (Lua 5.1)

local WHO = { { user = "root", token = H.ROOT_WHM }, { user = "res", token = H.RES_WHM } }

describe("cptokens whm (command line)", function()
  local srv, tmp
  local seq = 0
  local runs, secrets = {}, { H.ROOT_WHM, H.RES_WHM, H.ALICE_PW }

  setup(function()
    srv = server.start()
    tmp = util.tmpdir("cliwhm")
  end)
  teardown(function()
    if srv then srv:stop() end
    util.rmdir(tmp)
  end)
  before_each(function() srv:reset() end)

  -- Every WHM token value the server holds now is a secret too.
  local function harvest()
    for _, w in ipairs { "root", "res" } do
      for _, t in ipairs(srv:whm_tokens(w)) do secrets[#secrets + 1] = t.token end
    end
  end

  --- run(args, { env = {...}, stdin = "...", hands_over = true }) -> { code, out, err }.
  -- env: the variables (CPANEL_URL is the WHM URL and CPANEL_CAFILE the test CA unless set).
  local function run(args, o)
    o = o or {}
    seq = seq + 1
    local base = tmp .. "/r" .. seq
    local build = os.getenv("CPTOKENS_BUILD") or "build/5.4"
    local env = { CPANEL_URL = srv.whm_url, CPANEL_CAFILE = srv.cafile }
    for k, v in pairs(o.env or {}) do env[k] = v end
    local lines = {
      "unset CPANEL_URL CPANEL_USER CPANEL_CAFILE CPANEL_TOKEN CPANEL_PASSWORD CPANEL_OTP WHM_TOKEN WHM_USER",
      "export LUA_PATH=" .. shell_quote("lua/?.lua;lua/?/init.lua;;"),
      "export LUA_CPATH=" .. shell_quote(build .. "/?.so;;"),
    }
    for k, v in pairs(env) do
      if v ~= false then lines[#lines + 1] = "export " .. k .. "=" .. shell_quote(v) end
    end
    util.write_private(base .. ".env", table.concat(lines, "\n") .. "\n")
    util.write_private(base .. ".in", o.stdin or "")
    local quoted = {}
    for i, a in ipairs(args) do quoted[i] = shell_quote(a) end
    assert(util.execute("(. " .. shell_quote(base .. ".env") .. " && " .. shell_quote(LUA) .. " bin/cptokens "
      .. table.concat(quoted, " ") .. " <" .. shell_quote(base .. ".in") .. " >" .. shell_quote(base .. ".out")
      .. " 2>" .. shell_quote(base .. ".err") .. "; echo $? >" .. shell_quote(base .. ".code") .. ")"))
    local r = { code = tonumber((read_file(base .. ".code") or ""):match("%d+")), out = read_file(base .. ".out") or "",
                err = read_file(base .. ".err") or "", hands_over = o.hands_over, args = args }
    runs[#runs + 1] = r
    harvest()
    return r
  end

  local function as(who, extra)
    local env = { WHM_TOKEN = who.token, WHM_USER = who.user }
    for k, v in pairs(extra or {}) do env[k] = v end
    return { env = env }
  end

  local function ok(r, code)
    assert.are.equal(code or 0, r.code, "exit status; stderr: " .. r.err .. "; stdout: " .. r.out)
    return r
  end

  -- A failure: one line on stderr with the kind (then, for some, "cptokens: hint:" lines: what
  -- to do next), no traceback, nothing on stdout (without --json).
  local function one_line(r, code, pattern)
    assert.are.equal(code, r.code, r.err)
    local first, rest = r.err:match("^(cptokens: [^\n]+\n)(.*)$")
    assert.is_truthy(first, "one line on stderr: " .. r.err)
    assert.is_falsy(first:find("hint:", 1, true), r.err)
    for line in rest:gmatch("[^\n]*\n") do
      assert.is_truthy(line:match("^cptokens: hint: [^\n]+\n$"), "only hint lines after the error: " .. r.err)
    end
    assert.is_truthy(r.err:find(pattern), r.err .. " does not match " .. pattern)
    assert.is_falsy(r.err:find("traceback", 1, true))
    assert.are.equal("", r.out)
  end

  local function held(user, name)
    for _, t in ipairs(srv:whm_tokens(user)) do
      if t.name == name then return t end
    end
  end

  local function keys(text)
    local list = {}
    for k in text:gmatch('"([%w_]+)":') do list[#list + 1] = k end
    return list
  end

  local LIST_KEYS = { "name", "create_time", "created", "expires_at", "expires", "expired", "remaining",
                      "full_access", "acls", "whitelist_ips" }

  for _, who in ipairs(WHO) do
    describe("as " .. who.user, function()
      it("whm create prints the token alone, with the ACLs, IPs and expiry asked for; --json holds it", function()
        local r = ok(run({ "whm", "create", "backup-bot", "--acl", "list-accts", "--acl", "create-acct",
                           "--allow-ip", "127.0.0.1", "--allow-ip", "2001:db8::1", "--expires-in", "30d" },
                         { env = as(who).env, hands_over = true }))
        local tok = r.out:match("^(%w+)\n$")
        assert.is_truthy(tok, "create printed: " .. r.out)
        assert.are.equal("", r.err)
        local t = held(who.user, "backup-bot")
        assert.are.equal(t.token, tok)
        assert.are.same({ "create-acct", "list-accts" }, t.acls)
        assert.are.same({ "127.0.0.1", "2001:0db8:0000:0000:0000:0000:0000:0001" }, t.whitelist_ips)
        assert.is_true(math.abs(t.expires_at - (os.time() + 30 * 86400)) < 120)
        -- the token works (from 127.0.0.1) with the ACL it got
        r = ok(run({ "accounts" }, { env = { WHM_TOKEN = tok, WHM_USER = who.user } }))
        assert.is_truthy(r.out:find("alice", 1, true), r.out)

        local o = as(who).env
        r = ok(run({ "whm", "create", "full", "--json" }, { env = o, hands_over = true }))
        local doc = cjson.decode(r.out)
        assert.are.same({ "name", "create_time", "created", "expires_at", "expires", "expired", "remaining",
                          "full_access", "acls", "whitelist_ips", "token", "out" }, keys(r.out))
        assert.are.equal(held(who.user, "full").token, doc.token)
        assert.is_true(doc.full_access)
        assert.are.equal(cjson.null, doc.expires_at)
        assert.are.equal(cjson.null, doc.out)
        -- --quiet does not silence the hand-over
        r = ok(run({ "whm", "create", "q", "--quiet" }, { env = o, hands_over = true }))
        assert.are.equal(held(who.user, "q").token .. "\n", r.out)
      end)

      it("whm create --out writes a 0600 WHM token file that --whm-token-file reads back", function()
        local path = tmp .. "/" .. who.user .. "-out.json"
        local r = ok(run({ "whm", "create", "filed", "--acl", "manage-api-tokens", "--expires-in", "1d",
                           "--out", path }, as(who)))
        assert.is_truthy(r.out:find("^created filed, expires %S+; token saved to " .. path:gsub("%p", "%%%0") .. "\n$"),
          r.out)
        assert.are.equal("600", util.file_mode(path))
        local opts, meta = assert(store.load(path))
        assert.are.equal("whm", meta.kind)
        assert.are.equal(held(who.user, "filed").token, opts.token)
        assert.are.equal(who.user, opts.user)
        -- the file is the credential: url, WHM user and CA from it
        r = ok(run({ "whm", "list", "--whm-token-file", path }, { env = { CPANEL_URL = false, CPANEL_CAFILE = false } }))
        assert.is_truthy(r.out:find("\nfiled ", 1, true), r.out)
        -- its server and WHM user are never overridden silently: a stale CPANEL_URL or another
        -- WHM_USER is refused (exit 2), naming both, and nothing is sent
        local n = #srv:log()
        r = run({ "whm", "list", "--whm-token-file", path }, { env = { CPANEL_URL = srv.url } })
        one_line(r, 2, "holds a token for " .. srv.whm_url:gsub("%p", "%%%0") .. ", but CPANEL_URL says "
          .. srv.url:gsub("%p", "%%%0"))
        local other = who.user == "root" and "res" or "root"
        r = run({ "whm", "list", "--whm-token-file", path }, { env = { WHM_USER = other } })
        one_line(r, 2, "holds a token of the account " .. who.user .. ", but WHM_USER says " .. other)
        r = run({ "whm", "list", "--whm-token-file", path, "--whm-user", other })
        one_line(r, 2, "but %-%-whm%-user says " .. other)
        assert.are.equal(n, #srv:log(), "nothing was sent")
        -- --json names the file and holds no token
        r = ok(run({ "whm", "create", "filed2", "--json", "--out", tmp .. "/" .. who.user .. "-out2.json" }, as(who)))
        local doc = cjson.decode(r.out)
        assert.are.equal(cjson.null, doc.token)
        assert.are.equal(tmp .. "/" .. who.user .. "-out2.json", doc.out)
        -- a cPanel user's token file is not a WHM credential
        local cpanel_file = tmp .. "/cpanel-" .. who.user .. ".json"
        assert(store.save(cpanel_file, { name = "u", token = "USERTOKEN0000000000000000000000Z", create_time = 1 },
                          { url = srv.url, user = "alice" }))
        one_line(run({ "whm", "list", "--whm-token-file", cpanel_file }), 2, "holds a cPanel user's token")
      end)

      it("whm list: the table (ACLs or full access, IPs or any) and --json with stable keys", function()
        srv:seed_whm_token(who.user, { name = "old", create_time = 1600000000, expires_at = 1600086400 })
        srv:seed_whm_token(who.user, { name = "ro", create_time = 1700000000, acls = { "list-accts" },
                                       whitelist_ips = { "192.0.2.0/24", "192.0.2.7" } })
        local r = ok(run({ "whm", "list" }, as(who)))
        local lines = {}
        for l in r.out:gmatch("[^\n]+") do lines[#lines + 1] = l end
        assert.are.equal(3, #lines, r.out)
        assert.is_truthy(lines[1]:match("^NAME%s+CREATED%s+EXPIRES%s+STATE%s+ACLS%s+IPS$"), lines[1])
        assert.is_truthy(lines[2]:match("^old%s+2020%-09%-13T12:26:40Z%s+2020%-09%-14T12:26:40Z%s+expired %S+ ago%s+"
          .. "full access%s+any$"), lines[2])
        assert.is_truthy(lines[3]:match("^ro%s+2023%-11%-14T22:13:20Z%s+never%s+never expires%s+list%-accts%s+"
          .. "192%.0%.2%.0/24,192%.0%.2%.7$"), lines[3])
        r = ok(run({ "whm", "list", "--json" }, as(who)))
        local doc = cjson.decode(r.out)
        assert.are.equal(2, #doc.tokens)
        local all = keys(r.out)
        assert.are.equal("tokens", table.remove(all, 1))
        for i, k in ipairs(all) do assert.are.equal(LIST_KEYS[(i - 1) % #LIST_KEYS + 1], k) end
        assert.is_true(doc.tokens[1].expired)
        assert.is_true(doc.tokens[1].full_access)
        assert.are.same({ "list-accts" }, doc.tokens[2].acls)
        assert.are.same({ "192.0.2.0/24", "192.0.2.7" }, doc.tokens[2].whitelist_ips)
        assert.is_false(doc.tokens[2].full_access)
        -- --quiet: nothing on stdout
        r = ok(run({ "whm", "list", "--quiet" }, as(who)))
        assert.are.equal("", r.out)
      end)

      it("whm update changes the token in place (its secret stays); --json is the record", function()
        local seeded = srv:seed_whm_token(who.user, { name = "bot", acls = { "list-accts" },
                                                      whitelist_ips = { "192.0.2.1" } })
        local r = ok(run({ "whm", "update", "bot", "--rename", "bot2", "--acl", "list-accts", "--acl",
                           "create-acct", "--allow-ip", "203.0.113.0/24", "--expires-in", "7d" }, as(who)))
        assert.is_truthy(r.out:find("^updated bot, now bot2: expires %S+; ACLs: create%-acct,list%-accts; "
          .. "IPs: 203%.0%.113%.0/24\n$"), r.out)
        local t = held(who.user, "bot2")
        assert.are.equal(seeded.token, t.token)
        assert.is_nil(held(who.user, "bot"))
        assert.are.same({ "create-acct", "list-accts" }, t.acls)
        assert.are.same({ "203.0.113.0/24" }, t.whitelist_ips)
        assert.is_true(math.abs(t.expires_at - (os.time() + 7 * 86400)) < 120)
        r = ok(run({ "whm", "update", "bot2", "--any-ip", "--never-expires", "--json" }, as(who)))
        assert.are.same(LIST_KEYS, keys(r.out))
        local doc = cjson.decode(r.out)
        assert.are.equal("bot2", doc.name)
        assert.are.equal(cjson.null, doc.whitelist_ips)
        assert.are.equal(cjson.null, doc.expires_at)
        t = held(who.user, "bot2")
        assert.are.equal(cjson.null, t.whitelist_ips)
        assert.is_nil(t.expires_at)
      end)

      it("whm revoke: several names in one call, a missing one reported; --json", function()
        for _, n in ipairs { "a", "b", "c" } do srv:seed_whm_token(who.user, { name = n }) end
        local r = ok(run({ "whm", "revoke", "a", "nope" }, as(who)))
        assert.are.equal("revoked a\nno token named nope (nothing to revoke)\n", r.out)
        r = ok(run({ "whm", "revoke", "b", "c", "--json" }, as(who)))
        assert.are.same({ revoked = { "b", "c" }, missing = {} }, cjson.decode(r.out))
        assert.are.same({}, srv:whm_tokens(who.user))
      end)

      it("whm details names the token of a value from a file or standard input; unknown: exit 1", function()
        local t = srv:seed_whm_token(who.user, { name = "who", acls = { "list-accts" } })
        local file = tmp .. "/" .. who.user .. "-value"
        util.write_private(file, t.token .. "\n")
        local r = ok(run({ "whm", "details", "--token-file", file }, as(who)))
        assert.is_truthy(r.out:find("\nwho%s+%S+%s+never%s+never expires%s+list%-accts%s+any\n$"), r.out)
        local o = as(who)
        o.stdin = t.token .. "\n"
        r = ok(run({ "whm", "details", "--token-file", "-", "--json" }, o))
        local doc = cjson.decode(r.out)
        assert.is_true(doc.found)
        assert.are.equal("who", doc.token.name)
        assert.are.same({ "found", "token" }, { keys(r.out)[1], keys(r.out)[2] })
        -- unknown (or expired): exit 1, said on stderr; --json says found false
        srv:seed_whm_token(who.user, { name = "gone", token = "EXPIREDTOKEN00000000000000000000", expires_at = 1000 })
        util.write_private(file, "EXPIREDTOKEN00000000000000000000")
        one_line(run({ "whm", "details", "--token-file", file }, as(who)), 1, "knows no token with that value")
        r = run({ "whm", "details", "--token-file", file, "--json" }, as(who))
        assert.are.equal(1, r.code)
        assert.are.same({ found = false, token = cjson.null }, cjson.decode(r.out))
      end)

      it("whm audit: exit 3 on an expired, expiring or risky token, 0 when all is well", function()
        local far = os.time() + 90 * 86400
        srv:seed_whm_token(who.user, { name = "good", acls = { "list-accts" }, whitelist_ips = { "192.0.2.1" },
                                       expires_at = far })
        local r = ok(run({ "whm", "audit" }, as(who)))
        assert.is_truthy(r.out:find("\ngood%s+%S+%s+fine%s+%-%s+expires in"), r.out)
        assert.is_truthy(r.out:find("0 expired, 0 expiring within 7d, 0 never expire, 1 fine; 0 risky", 1, true), r.out)
        -- each kind of trouble alone makes it exit 3
        local cases = {
          { name = "exp", expires_at = 1000, acls = { "list-accts" }, whitelist_ips = { "192.0.2.1" } },
          { name = "soon", expires_at = os.time() + 3 * 86400, acls = { "list-accts" }, whitelist_ips = { "192.0.2.1" } },
          { name = "risky", expires_at = far, acls = { "passwd" }, whitelist_ips = { "192.0.2.1" } },
        }
        for _, c in ipairs(cases) do
          srv:reset()
          srv:seed_whm_token(who.user, c)
          r = ok(run({ "whm", "audit", "--within", "14d" }, as(who)), 3)
          assert.is_truthy(r.out:find("\n" .. c.name .. " ", 1, true), r.out)
        end
        -- the JSON form: the states, the risky names and each token's risks
        srv:seed_whm_token(who.user, { name = "open", create_time = 2 })
        r = ok(run({ "whm", "audit", "--json" }, as(who)), 3)
        assert.are.same({ "within", "within_seconds", "expired", "expiring", "never", "fine", "risky", "tokens",
                          "name", "create_time", "expires_at", "expires", "state", "remaining", "risks" },
                        { unpack(keys(r.out), 1, 15) })
        local doc = cjson.decode(r.out)
        assert.are.same({ "open", "risky" }, doc.risky) -- (oldest first)
        assert.are.same({ "open" }, doc.never)
        assert.are.same({ "full_access", "no_ip_allowlist", "no_expiry" }, doc.tokens[1].risks)
        assert.are.same({ "passwd" }, doc.tokens[2].risks)
      end)

      it("whm rotate: stored, the old one revoked, its ACLs and IPs kept; the file may be the credential",
        function()
          local path = tmp .. "/" .. who.user .. "-rot.json"
          srv:seed_whm_token(who.user, { name = "ci-20200101000000", create_time = 1 })
          -- the file made by whm create is adopted: its token is the one replaced
          ok(run({ "whm", "create", "ci", "--acl", "list-accts", "--acl", "manage-api-tokens", "--allow-ip", "127.0.0.1",
                  "--out", path }, as(who)))
          local r = ok(run({ "whm", "rotate", "ci", "--out", path, "--expires-in", "7d" }, as(who)))
          assert.is_nil(held(who.user, "ci"))
          assert.is_truthy(r.out:find("^created ci%-%d+, expires %S+; token saved to "), r.out)
          local opts, meta = assert(store.load(path))
          assert.are.equal("whm", meta.kind)
          local t = held(who.user, meta.name)
          assert.are.equal(t.token, opts.token)
          assert.are.same({ "list-accts", "manage-api-tokens" }, t.acls)
          assert.are.same({ "127.0.0.1" }, t.whitelist_ips)
          -- (the seeded one is not this file's: left alone, with a warning)
          assert.is_truthy(held(who.user, "ci-20200101000000"))
          assert.is_truthy(r.err:find("warning: rotate: ci-20200101000000", 1, true), r.err)
          -- again, with the file's own token as the credential: the stored one is replaced
          r = ok(run({ "whm", "rotate", "ci", "--whm-token-file", path, "--out", path, "--json" },
                     { env = { CPANEL_URL = false } }))
          local doc = cjson.decode(r.out)
          assert.are.same({ meta.name }, doc.revoked)
          assert.is_true(doc.switched)
          assert.is_nil(held(who.user, meta.name))
          local opts2, meta2 = assert(store.load(path))
          assert.are.equal(doc.created, meta2.name)
          t = held(who.user, meta2.name)
          assert.are.equal(t.token, opts2.token)
          assert.are.same({ "list-accts", "manage-api-tokens" }, t.acls)
          -- --out is required
          one_line(run({ "whm", "rotate", "ci" }, as(who)), 2, "%-%-out FILE is required")
        end)

      it("accounts: the accounts this credential can act for; --json", function()
        local r = ok(run({ "accounts" }, as(who)))
        assert.is_truthy(r.out:match("^USER%s+DOMAIN%s+OWNER%s+SUSPENDED\n"), r.out)
        assert.is_truthy(r.out:find("\nalice%s+alice%.example%s+res%s+no\n"), r.out)
        r = ok(run({ "accounts", "--json" }, as(who)))
        local doc = cjson.decode(r.out)
        local users = {}
        for _, a in ipairs(doc.accounts) do users[#users + 1] = a.user end
        if who.user == "res" then
          assert.are.same({ "alice" }, users)
        else
          assert.are.same({ "alice", "bob", "carol", "dave" }, users)
          assert.is_true(doc.accounts[3].suspended)
        end
        assert.are.same({ "accounts", "user", "domain", "owner", "suspended" },
                        { unpack(keys(r.out), 1, 5) })
      end)
    end)
  end

  it("a reseller's token never exceeds its own ACLs: the server's refusal is exit 1, kind api", function()
    local r = run({ "whm", "create", "wide", "--acl", "kill-acct" }, as(WHO[2]))
    one_line(r, 1, "^cptokens: api: .*Invalid or unauthorized ACL")
    assert.are.same({}, srv:whm_tokens("res"))
  end)

  it("a refused credential is exit 1, kind auth, the secret not echoed; --json has the error document", function()
    local bad = "BADWHMTOKEN000000000000000000000"
    secrets[#secrets + 1] = bad
    for _, cmd in ipairs { { "whm", "list" }, { "whm", "create", "x" }, { "whm", "audit" }, { "accounts" } } do
      local r = run(cmd, { env = { WHM_TOKEN = bad } })
      one_line(r, 1, "^cptokens: auth: ")
      -- the hint names the WHM account that acted and where the token came from
      assert.is_truthy(r.err:find("\ncptokens: hint: the server refused the WHM API token from WHM_TOKEN"
        .. " for WHM user root at https://127.0.0.1:", 1, true), r.err)
      assert.is_falsy(r.err:find("acting for", 1, true), r.err)
    end
    local r = run({ "whm", "list", "--json" }, { env = { WHM_TOKEN = bad } })
    assert.are.equal(1, r.code)
    local doc = cjson.decode(r.out)
    assert.are.equal("auth", doc.error.kind)
    assert.are.equal(403, doc.error.status)
  end)

  it("the WHM account's password (+ two-factor code) is sent as HTTP Basic, with the code", function()
    local pw, otp = "root-Pa55word!", "135790"
    secrets[#secrets + 1] = pw
    local n = #srv:log()
    local r = run({ "whm", "list" }, { env = { CPANEL_PASSWORD = pw, CPANEL_OTP = otp } })
    one_line(r, 1, "^cptokens: auth: ") -- (the fake takes WHM tokens only)
    local rec = srv:log(n + 1)[1]
    assert.are.equal("basic", rec.auth)
    assert.are.equal("root", rec.auth_user)
    assert.is_true(rec.otp_present)
    assert.are.equal("/json-api/api_token_list", rec.uri)
    -- from a file, for a reseller
    local file = tmp .. "/pw"
    util.write_private(file, pw .. "\n")
    n = #srv:log()
    one_line(run({ "accounts", "--password-file", file, "--whm-user", "res" }), 1, "^cptokens: auth: ")
    rec = srv:log(n + 1)[1]
    assert.are.equal("basic", rec.auth)
    assert.are.equal("res", rec.auth_user)
  end)

  it("bad input is a clear usage error (exit 2) and nothing is sent", function()
    local o = as(WHO[1])
    local cases = {
      { { "whm", "create", "bad name!" }, "whm_create" },
      { { "whm", "create", "x", "--acl", "bad acl" }, "acl" },
      { { "whm", "create", "x", "--allow-ip", "300.1.2.3" }, "300%.1%.2%.3" },
      { { "whm", "create", "x", "--expires-in", "soon" }, "%-%-expires%-in" },
      { { "whm", "create", "x", "--expires-at", "1000" }, "not in the future" },
      { { "whm", "update", "x" }, "nothing to change" },
      { { "whm", "update", "x", "--never-expires", "--expires-in", "1d" }, "not both" },
      { { "whm", "update", "x", "--any-ip", "--allow-ip", "192.0.2.1" }, "not both" },
      { { "whm", "details" }, "%-%-token%-file FILE is required" },
      { { "whm", "create", "x", "--keep", "1" }, "does not apply" },
      { { "whm", "list", "--user", "alice" }, "%-%-whm%-user" },
      { { "whm" }, "missing a subcommand" },
      { { "whm", "lst" }, "did you mean 'list'" },
      { { "whm", "create", "--whm-token=" .. H.ROOT_WHM }, "command line" },
      { { "whm", "revoke" }, "missing NAME" },
    }
    local n = #srv:log()
    for _, c in ipairs(cases) do one_line(run(c[1], o), 2, c[2]) end
    -- no credential, a cPanel user's token, several
    one_line(run({ "whm", "list" }), 2, "no WHM credentials")
    one_line(run({ "whm", "list" }, { env = { CPANEL_TOKEN = "USERTOKEN0000000000000000000000Z" } }), 2,
      "cannot manage WHM tokens")
    one_line(run({ "accounts" }, { env = { WHM_TOKEN = H.ROOT_WHM, CPANEL_PASSWORD = "x-Pa55word" } }), 2,
      "several credentials")
    assert.are.equal(n, #srv:log(), "nothing was sent")
    -- under --json, a usage error is also a document
    local r = run({ "whm", "update", "x", "--json" }, o)
    assert.are.equal(2, r.code)
    assert.are.equal("usage", cjson.decode(r.out).error.kind)
  end)

  it("help, and each command's --help, describe the whm commands and accounts", function()
    local r = ok(run { "help" })
    assert.is_truthy(r.out:find("\n  whm create NAME", 1, true), r.out)
    assert.is_truthy(r.out:find("\n  accounts ", 1, true), r.out)
    for _, sub in ipairs { "create", "list", "update", "revoke", "details", "audit", "rotate" } do
      r = ok(run { "whm", sub, "--help" })
      assert.is_truthy(r.out:find("cptokens whm " .. sub, 1, true), sub)
    end
    r = ok(run { "help", "accounts" })
    assert.is_truthy(r.out:find("^Usage: cptokens accounts"), r.out)
  end)

  it("no run printed a secret but create's hand-over, and none wrote one on stderr", function()
    assert.is_true(#runs > 40, "the runs above were recorded")
    for _, r in ipairs(runs) do
      H.assert_no_secret(r.err, secrets)
      local out = r.out
      if r.hands_over then -- what is left once the token handed over is taken out
        out = out:gsub("^%w+\n$", ""):gsub('"token":"%w+"', '"token":-')
      end
      H.assert_no_secret(out, secrets)
    end
  end)
end)
