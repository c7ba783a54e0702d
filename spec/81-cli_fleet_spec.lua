-- `cptokens fleet list|audit|prune|rotate` and `--profile` / CPANEL_PROFILE (issue 14, "Inventory
-- and profiles" and "Command line"): real processes (bin/cptokens from the tree) against the
-- fake server's WHM and cPanel ports, TLS verified, the configuration file written here.
-- Secrets reach the tool through 0600 files, or an environment file the shell sources; every
-- run's stdout and stderr are scanned for every secret at the end.
local H = require "spec.helpers"
local server = require "spec.support.server"
local util = require "spec.support.util"
local cli = require "spec.support.cli"
local store = require "cptokens.store"
local cjson = require "cjson"

local q, read_file = util.shell_quote, util.read_file
local LUA = util.LUA
local unpack = table.unpack or unpack -- luacheck: ignore (Lua 5.1)

describe("cptokens fleet and profiles (command line) #novalgrind", function()
  local srv, tmp, cfgpath, localhost_whm
  local runs, secrets = {}, { H.ROOT_WHM, H.RES_WHM, H.ALICE_PW }

  setup(function()
    srv = server.start()
    tmp = util.tmpdir("clifleet")
    localhost_whm = "https://localhost:" .. srv.ports.whm
  end)
  teardown(function()
    if srv then srv:stop() end
    util.rmdir(tmp)
  end)

  local function harvest()
    for _, u in ipairs { "alice", "bob", "dave" } do
      for _, t in ipairs(srv:tokens(u)) do secrets[#secrets + 1] = t.token end
    end
  end

  -- The configuration: web1 (root, by token file), web2 (root at localhost, by environment
  -- variable), res (the reseller), alice (a cPanel account, by a token file of hers), groups.
  local function write_config(extra)
    util.write_private(tmp .. "/root.token", H.ROOT_WHM .. "\n")
    local lines = {
      "[profile web1]", "url = " .. srv.whm_url, "whm_user = root", "token_file = root.token",
      "cafile = " .. srv.cafile, "cpanel_url = " .. srv.url, "",
      "[profile web2]", "url = " .. localhost_whm, "whm_user = root", "token_env = SPEC_WEB2_TOKEN",
      "cafile = " .. srv.cafile, "",
      "[profile res]", "url = " .. srv.whm_url, "whm_user = res", "token_env = SPEC_RES_TOKEN",
      "cafile = " .. srv.cafile, "",
      "[profile alice]", "url = " .. srv.url, "user = alice", "password_file = alice.pw",
      "cafile = " .. srv.cafile, "",
      "[group web]", "profiles = web1, web2", "",
      "[group all]", "profiles = web1, res", "",
    }
    for _, l in ipairs(extra or {}) do lines[#lines + 1] = l end
    util.write_private(tmp .. "/alice.pw", H.ALICE_PW .. "\n")
    cfgpath = tmp .. "/config"
    util.write_private(cfgpath, table.concat(lines, "\n") .. "\n")
  end

  before_each(function()
    srv:reset()
    write_config()
  end)

  --- run(args, { env = {...}, stdin = "..." }) -> { code, out, err }: bin/cptokens from the tree
  -- (spec/support/cli.lua), CPTOKENS_CONFIG the spec's file unless set; CPANEL_CAFILE unset ("").
  local runner
  local function run(args, o)
    o = o or {}
    runner = runner or cli.runner(srv, tmp)
    local env = { CPTOKENS_CONFIG = cfgpath, SPEC_WEB2_TOKEN = H.ROOT_WHM, SPEC_RES_TOKEN = H.RES_WHM,
                  CPANEL_CAFILE = "" }
    for k, v in pairs(o.env or {}) do env[k] = v end
    local r = runner(args, env, o.stdin)
    r.args = args
    runs[#runs + 1] = r
    harvest()
    return r
  end

  -- A shell file that sets up bin/cptokens's environment (for runs in a pty or the background).
  local function env_file(name)
    local build = os.getenv("CPTOKENS_BUILD") or "build/5.4"
    local path = tmp .. "/" .. name .. ".env"
    util.write_private(path, table.concat({
      "unset " .. cli.SECRET_VARS,
      "export CPTOKENS_CONFIG=" .. q(cfgpath), "export LUA_PATH=" .. q("lua/?.lua;lua/?/init.lua;;"),
      "export LUA_CPATH=" .. q(build .. "/?.so;;") }, "\n") .. "\n")
    return path
  end

  local function requests(filter) return H.requests(srv, filter) end

  local function ok(r, code)
    assert.are.equal(code or 0, r.code, "exit status; stderr: " .. r.err .. "; stdout: " .. r.out)
    return r
  end

  -- A usage error: exit 2, one line on stderr matching pattern (after warnings, if any),
  -- nothing sent to the server.
  local function refused(r, pattern)
    assert.are.equal(2, r.code, r.err)
    local last = r.err:gsub("^(cptokens: warning: [^\n]+\n)", "")
    assert.is_truthy(last:match("^cptokens: [^\n]+\n$"), "one line: " .. r.err)
    assert.is_truthy(last:find(pattern), r.err .. " does not match " .. pattern)
    assert.are.equal(0, #srv:log(), "nothing was sent")
  end

  -- CSV (quoted fields, "" inside, LF line ends) -> rows of fields.
  local function parse_csv(text)
    local rows, row, field, i, n = {}, {}, "", 1, #text
    local quoted = false
    while i <= n do
      local c = text:sub(i, i)
      if quoted then
        if c == '"' and text:sub(i + 1, i + 1) == '"' then field, i = field .. '"', i + 1
        elseif c == '"' then quoted = false
        else field = field .. c end
      elseif c == '"' then quoted = true
      elseif c == "," then row[#row + 1], field = field, ""
      elseif c == "\n" then
        row[#row + 1], field = field, ""
        rows[#rows + 1], row = row, {}
      else field = field .. c end
      i = i + 1
    end
    assert.are.equal("", field, "the last line ends with LF")
    return rows
  end

  local function seed()
    local now = os.time()
    srv:seed_token("alice", { name = "forever" })
    srv:seed_token("alice", { name = "old", expires_at = now - 100 })
    srv:seed_token("bob", { name = "soon", expires_at = now + 3 * 86400 })
    srv:seed_token("dave", { name = "later", expires_at = now + 60 * 86400 })
    srv:seed_whm_token("root", { name = "everything" })
  end

  describe("fleet audit", function()
    it("table: per account counts, what needs attention, a summary line; exit 1 for carol's failure", function()
      seed()
      local r = run { "fleet", "audit", "--profile", "web1", "--within", "14d" }
      ok(r, 1) -- carol (no API tokens feature) failed: the report is incomplete
      local header = r.out:match("^([^\n]+)\n")
      assert.matches("^SERVER%s+ACCOUNT%s+SUSPENDED%s+TOKENS%s+NEVER%s+EXPIRED%s+EXPIRING%s+STATUS$", header)
      assert.matches("\nweb1%s+alice%s+no%s+2%s+1%s+1%s+0%s+ok\n", r.out)
      assert.matches("\nweb1%s+carol%s+yes%s+0%s+0%s+0%s+0%s+failed\n", r.out)
      assert.matches("\nNeeds attention:\n", r.out)
      assert.matches("\nweb1%s+alice%s+cpanel%s+old%s+%S+%s+expired%s+%-\n", r.out)
      assert.matches("\nweb1%s+bob%s+cpanel%s+soon%s+%S+%s+expiring%s+%-\n", r.out)
      assert.matches("\nweb1%s+root%s+whm%s+everything%s+never%s+never%s+full_access,no_ip_allowlist,no_expiry\n", r.out)
      assert.is_falsy(r.out:find("later", 1, true)) -- fine: not listed as needing attention
      assert.matches("1 server, 4 accounts: 3 reached, 1 failed, 0 not sent, 0 skipped %(1 suspended%); 4 tokens:"
        .. " 1 never expire, 1 expired, 1 expiring within 14d, 1 fine; 1 WHM tokens, 1 risky\n$", r.out)
      assert.matches("^cptokens: api: web1/carol: ", r.err)
    end)

    it("exit 3 when something needs attention and nothing failed; 0 when nothing does", function()
      -- the reseller's one account, alice: a never-expiring token is reported, not an alarm
      srv:seed_token("alice", { name = "forever" })
      ok(run { "fleet", "audit", "--profile", "res" }, 0)
      seed()
      local r = run { "fleet", "audit", "--profile", "res", "--format", "json" }
      local doc = cjson.decode(r.out)
      assert.are.equal(1, doc.summary.expired)
      ok(r, 3)
    end)

    it("json: one document with stable keys, every account and token", function()
      seed()
      local r = ok(run { "fleet", "audit", "--profile", "web1", "--format", "json", "--within", "14d" }, 1)
      local doc = cjson.decode(r.out)
      assert.are.equal("audit", doc.op)
      assert.are.equal("14d", doc.within)
      assert.are.equal(14 * 86400, doc.within_seconds)
      -- the document's keys, in order
      assert.matches('^{"op":"audit","now":%d+,"within":"14d","within_seconds":1209600,"dry_run":null,'
        .. '"summary":{"servers":1,"servers_failed":0,"accounts":4,', r.out)
      assert.matches('"servers":%[{"label":"web1","url":"[^"]+","user":"root","accounts":4,"skipped":%[%],"error":null', r.out)
      local states, accounts = {}, {}
      for _, t in ipairs(doc.tokens) do states[t.account .. "/" .. t.kind .. "/" .. t.name] = t.state end
      assert.same({ ["alice/cpanel/forever"] = "never", ["alice/cpanel/old"] = "expired",
                    ["bob/cpanel/soon"] = "expiring", ["dave/cpanel/later"] = "fine",
                    ["root/whm/everything"] = "never" }, states)
      for _, a in ipairs(doc.accounts) do accounts[a.user] = a end
      assert.same({ "ok", 2, 1, 1 }, { accounts.alice.status, accounts.alice.tokens, accounts.alice.never,
                                       accounts.alice.expired })
      assert.same({ "failed", true, "api" }, { accounts.carol.status, accounts.carol.suspended,
                                               accounts.carol.error.kind })
      assert.same({ { server = "web1", account = "carol", error = accounts.carol.error } }, doc.failures)
      assert.same({}, doc.not_sent)
    end)

    it("csv: a header of stable columns, one row per token, one per account without any", function()
      seed()
      local r = ok(run { "fleet", "audit", "--profile", "web1", "--format", "csv" }, 1)
      local rows = parse_csv(r.out)
      assert.same({ "server", "account", "suspended", "status", "kind", "name", "created", "expires", "state",
                    "risks", "action", "detail" }, rows[1])
      local by = {}
      for i = 2, #rows do
        assert.are.equal(12, #rows[i], table.concat(rows[i], "|"))
        by[rows[i][2] .. "/" .. rows[i][6]] = rows[i]
      end
      assert.are.equal(6, #rows - 1) -- 4 cPanel tokens, 1 WHM token, carol's failure, nothing else
      assert.same({ "web1", "root", "", "ok", "whm", "everything" }, { unpack(by["root/everything"], 1, 6) })
      assert.are.equal("full_access no_ip_allowlist no_expiry", by["root/everything"][10])
      assert.are.equal("expired", by["alice/old"][9])
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", by["alice/old"][8])
      assert.are.equal("", by["alice/forever"][8]) -- never expires
      assert.same({ "yes", "failed", "" }, { by["carol/"][3], by["carol/"][4], by["carol/"][6] })
      assert.matches("^api: ", by["carol/"][12])
    end)
  end)

  describe("fleet list", function()
    it("every format: the tokens of every account of every server of a group", function()
      seed()
      local r = ok(run { "fleet", "list", "--group", "web" }, 1)
      assert.matches("^SERVER%s+ACCOUNT%s+KIND%s+NAME%s+CREATED%s+EXPIRES%s+STATE\n", r.out)
      for _, label in ipairs { "web1", "web2" } do
        assert.matches("\n" .. label .. "%s+alice%s+cpanel%s+old%s", r.out)
        assert.matches("\n" .. label .. "%s+root%s+whm%s+everything%s", r.out)
      end
      assert.matches("2 servers, 8 accounts: 6 reached, 2 failed", r.out)
      r = ok(run { "fleet", "list", "--group", "web", "--json" }, 1)
      local doc = cjson.decode(r.out)
      assert.same({ "list", 2, 10 }, { doc.op, #doc.servers, #doc.tokens })
      r = ok(run { "fleet", "list", "--group", "web", "--format", "csv" }, 1)
      assert.are.equal(1 + 10 + 2, #parse_csv(r.out))
    end)

    it("a reseller's profile lists its own accounts only", function()
      seed()
      local r = ok(run { "fleet", "list", "--profile", "res", "--format", "json" })
      local users = {}
      for _, a in ipairs(cjson.decode(r.out).accounts) do users[#users + 1] = a.user end
      table.sort(users)
      assert.same({ "alice" }, users)
    end)

    it("without a profile: the connection options and the environment, as for the whm commands", function()
      seed()
      local r = ok(run({ "fleet", "list", "--format", "json" },
        { env = { CPANEL_URL = srv.whm_url, WHM_TOKEN = H.ROOT_WHM, CPANEL_CAFILE = srv.cafile } }), 1)
      local doc = cjson.decode(r.out)
      assert.are.equal("127.0.0.1", doc.servers[1].label)
    end)
  end)

  describe("the cPHulk stop", function()
    it("a refused credential: one failed login at that server, the rest not sent, the other server unharmed", function()
      srv:seed_accounts(20)
      local r = ok(run({ "fleet", "audit", "--group", "web", "--format", "json" },
        { env = { SPEC_WEB2_TOKEN = "WRONGWHM000000000000000000000000" } }), 1)
      local doc = cjson.decode(r.out)
      assert.are.equal(1, requests { status = 403 })
      local s = {}
      for _, x in ipairs(doc.servers) do s[x.label] = x end
      assert.are.equal("auth", s.web2.error.kind)
      assert.are.equal(24, s.web1.accounts)
      assert.matches("cptokens: auth: web2: ", r.err)
    end)

    it("refused mid-run: the accounts not reached are counted on one line per server and reason", function()
      srv:seed_accounts(30)
      srv:fault("whm_denied", { func = "list" })
      local r = ok(run { "fleet", "audit", "--profile", "web1", "--per-server", "1" }, 1)
      assert.are.equal(1, requests { status = 403 })
      assert.matches("\ncptokens: web1: 33 accounts not sent: authentication failed for root at web1 %(HTTP 403%)",
        "\n" .. r.err)
      assert.matches("1 failed, 33 not sent", r.out)
    end)
  end)

  describe("failures are never hidden", function()
    it("a WHM token list that fails: exit 1 and a line, not an all-clear", function()
      srv:fault("status", { status = 500, func = "api_token_list" })
      local r = ok(run { "fleet", "audit", "--profile", "res" }, 1)
      assert.matches("cptokens: http: res/res: ", r.err)
      local doc = cjson.decode(ok(run { "fleet", "audit", "--profile", "res", "--json" }, 1).out)
      assert.are.equal(500, doc.servers[1].whm_error.status)
      assert.are.equal(1, #doc.failures)
    end)

    it("a group member whose credential cannot be read fails alone; the others are audited", function()
      seed()
      local r = ok(run({ "fleet", "audit", "--group", "web", "--format", "json" },
        { env = { SPEC_WEB2_TOKEN = "" } }), 1)
      local doc = cjson.decode(r.out)
      local s = {}
      for _, x in ipairs(doc.servers) do s[x.label] = x end
      assert.are.equal("invalid", s.web2.error.kind)
      assert.matches("SPEC_WEB2_TOKEN", s.web2.error.message)
      assert.are.equal(4, s.web1.accounts)
      assert.matches("cptokens: invalid: web2: ", r.err)
    end)

    it("with --group, the environment's trust anchors are not used (each profile's are), with a warning", function()
      local r = ok(run({ "fleet", "list", "--group", "web", "--format", "json" },
        { env = { CPANEL_CAFILE = tmp .. "/none.pem" } }), 1) -- 1: carol
      assert.matches("warning: CPANEL_CAFILE is not used with %-%-group", r.err)
      assert.are.equal(2, #cjson.decode(r.out).servers)
      assert.are.equal(0, #cjson.decode(r.out).failures - 2) -- carol at each server, nothing else
    end)

    it("fleet rotate: a failed revocation of an old token is exit 1, a line, and in the report", function()
      local dir = tmp .. "/revfail"
      os.execute("rm -rf " .. q(dir) .. " && mkdir -m 700 " .. q(dir))
      ok(run { "fleet", "rotate", "deploy", "--store-dir", dir, "--profile", "web1" })
      os.execute("sleep 1") -- a new second: a new name
      srv:fault("status", { status = 500, func = "revoke" })
      local r = ok(run { "fleet", "rotate", "deploy", "--store-dir", dir, "--profile", "web1", "--format", "json" }, 1)
      assert.matches("cptokens: http: web1/alice: revoking deploy%-%d+ failed: ", r.err)
      local doc = cjson.decode(r.out)
      for _, a in ipairs(doc.accounts) do
        if a.user == "alice" then
          assert.are.equal("failed", a.status)
          assert.are.equal(1, #a.rotated.errors)
          assert.are.equal(500, a.rotated.errors[1].error.status)
        end
      end
      -- the file holds the new token all the same
      assert.are.equal(doc.accounts[1].rotated.created, select(2, store.load(dir .. "/web1.alice.token")).name)
      srv:clear_faults()
    end)

    it("CSV: no formula, no ambiguous backslash, no control character", function()
      local field = require("cptokens.cli.fleet")._csv_field
      assert.are.equal("'-2+3", field("-2+3"))
      assert.are.equal("'=HYPERLINK(1)", field("=HYPERLINK(1)"))
      assert.are.equal("'@x", field("@x"))
      assert.are.equal('"a,""b"""', field('a,"b"'))
      assert.are.equal("back\\x5cx0aslash", field("back\\x0aslash"))
      assert.are.equal("a\\x0ab\\x1b[31m", field("a\nb\27[31m"))
      assert.are.equal("plain_name-1", field("plain_name-1"))
    end)
  end)

  describe("fleet prune", function()
    it("--dry-run names what would go and changes nothing; then prune revokes only that", function()
      seed()
      local before = #srv:tokens("alice")
      local r = ok(run { "fleet", "prune", "--profile", "web1", "--dry-run" }, 1)
      assert.matches("\nweb1%s+alice%s+would revoke%s+old\n", r.out)
      assert.matches("1 would be revoked %(dry run: nothing was%)", r.out)
      assert.are.equal(before, #srv:tokens("alice"))
      assert.are.equal(0, requests { func = "revoke" })
      r = ok(run { "fleet", "prune", "--profile", "web1", "--format", "csv" }, 1)
      local actions = {}
      for _, row in ipairs(parse_csv(r.out)) do actions[row[2] .. "/" .. row[6]] = row[11] end
      assert.are.equal("revoked", actions["alice/old"])
      assert.are.equal("", actions["alice/forever"])
      local left = {}
      for _, t in ipairs(srv:tokens("alice")) do left[#left + 1] = t.name end
      assert.same({ "forever" }, left)
      r = ok(run { "fleet", "prune", "--profile", "web1", "--format", "json", "--dry-run" }, 1)
      assert.is_true(cjson.decode(r.out).dry_run)
    end)
  end)

  describe("fleet rotate", function()
    it("one token file per account in --store-dir, each holding the token the server has", function()
      local dir = tmp .. "/store"
      os.execute("rm -rf " .. q(dir) .. " && mkdir -m 700 " .. q(dir))
      local r = ok(run { "fleet", "rotate", "deploy", "--store-dir", dir, "--profile", "web1", "--expires-in", "30d" })
      assert.matches("\nweb1%s+alice%s+ok%s+deploy%-%d+%s+" .. dir:gsub("%p", "%%%0") .. "/web1%.alice%.token\n", r.out)
      assert.matches("\nweb1%s+carol%s+skipped%s+%-%s+%-\n", r.out)
      assert.matches("3 rotated\n$", r.out)
      for _, u in ipairs { "alice", "bob", "dave" } do
        local opts = assert(store.load(dir .. "/web1." .. u .. ".token"))
        assert.are.equal(srv:tokens(u)[1].token, opts.token)
        assert.are.equal("600", util.file_mode(dir .. "/web1." .. u .. ".token"))
      end
      -- the stored token works, from the command line, as the account
      ok(run { "list", "--token-file", dir .. "/web1.alice.token" })
      r = ok(run { "fleet", "rotate", "deploy", "--store-dir", dir, "--profile", "web1", "--format", "json" })
      local doc = cjson.decode(r.out)
      for _, a in ipairs(doc.accounts) do
        if a.user == "alice" then
          assert.are.equal(1, #a.rotated.revoked)
          assert.are.equal(dir .. "/web1.alice.token", a.rotated.file)
        end
      end
      r = ok(run { "fleet", "rotate", "deploy", "--store-dir", dir, "--profile", "web1", "--format", "csv" })
      local rows = parse_csv(r.out)
      local by = {}
      for i = 2, #rows do by[rows[i][2]] = rows[i] end
      assert.are.equal(1 + 4, #rows) -- alice, bob, dave rotated; carol skipped
      assert.same({ "ok", "cpanel", srv:tokens("alice")[1].name, "rotated", dir .. "/web1.alice.token" },
        { by.alice[4], by.alice[5], by.alice[6], by.alice[11], by.alice[12] })
      assert.same({ "yes", "skipped", "" }, { by.carol[3], by.carol[4], by.carol[11] })
    end)

    it("a signal: the rotation under way finishes, no other starts; every account keeps a working token", function()
      local dir = tmp .. "/sig"
      os.execute("rm -rf " .. q(dir) .. " && mkdir -m 700 " .. q(dir))
      srv:seed_accounts(3)
      srv:fault("latency", { ms = 150 }) -- every request: a rotation takes about a second
      local envfile = env_file("sig")
      local base = tmp .. "/sig"
      assert(util.execute("(. " .. q(envfile) .. " && " .. q(LUA) .. " bin/cptokens fleet rotate deploy --store-dir "
        .. q(dir) .. " --profile web1 >" .. q(base .. ".out") .. " 2>" .. q(base .. ".err")
        .. "; echo $? >" .. q(base .. ".code") .. ") & echo $! >" .. q(base .. ".pid")))
      -- the first token file is there: a rotation has finished, the next one is under way
      local first
      for _ = 1, 200 do
        first = util.capture("ls " .. q(dir) .. " | grep -c '\\.token$' || true"):match("%d+")
        if tonumber(first) >= 1 then break end
        os.execute("sleep 0.05")
      end
      assert.is_true(tonumber(first) >= 1, "no rotation finished")
      -- the tool is the only child of the subshell started here
      util.execute("pkill -TERM -P " .. assert(read_file(base .. ".pid")):match("%d+"))
      local code
      for _ = 1, 200 do
        code = read_file(base .. ".code")
        if code and code:match("%d") then break end
        os.execute("sleep 0.05")
      end
      assert.are.equal(143, tonumber(code), read_file(base .. ".err"))
      local err = read_file(base .. ".err")
      assert.matches("interrupted by SIGTERM; the rotation of each account was left to finish first", err)
      assert.matches("not sent: interrupted by SIGTERM", err)
      local rotated, untouched = 0, 0
      for _, u in ipairs { "alice", "bob", "dave", "u00001", "u00002", "u00003" } do
        local path = dir .. "/web1." .. u .. ".token"
        local held = srv:tokens(u)
        if read_file(path) then
          rotated = rotated + 1
          assert.are.equal(1, #held, u)
          assert.are.equal(held[1].token, assert(store.load(path)).token, u)
        else
          untouched = untouched + 1
          assert.are.same({}, held, u .. ": no token left behind")
        end
      end
      assert.is_true(rotated >= 1 and untouched >= 1, rotated .. " rotated, " .. untouched .. " untouched")
      srv:clear_faults()
    end)

    it("refuses a missing or absent --store-dir before anything is sent", function()
      refused(run { "fleet", "rotate", "deploy", "--profile", "web1" }, "%-%-store%-dir DIR is required")
      refused(run { "fleet", "rotate", "deploy", "--profile", "web1", "--store-dir", tmp .. "/none" },
        "not a directory")
      refused(run { "fleet", "rotate", "bad/prefix", "--profile", "web1", "--store-dir", tmp }, "prefix")
    end)
  end)

  describe("usage", function()
    it("refuses what does not go together, before anything is sent", function()
      refused(run { "fleet", "list", "--group", "web", "--profile", "web1" }, "give %-%-profile or %-%-group")
      refused(run { "fleet", "list", "--group", "web", "--url", srv.whm_url }, "%-%-url does not go with %-%-group")
      refused(run { "fleet", "list", "--group", "nope" }, "no %[profile nope%]")
      refused(run { "fleet", "list", "--profile", "web1", "--format", "xml" }, "expected table, json or csv")
      refused(run { "fleet", "list", "--profile", "web1", "--user", "alice" }, "every account")
      refused(run { "fleet", "list", "--profile", "alice" }, "need a WHM profile")
      refused(run { "fleet", "audit", "--profile", "web1", "--per-server", "0" }, "from 1 to 1000")
      refused(run { "fleet", "list", "--profile", "web1", "--json", "--format", "csv" }, "give one")
      refused(run { "fleet" }, "missing a subcommand")
    end)
  end)

  describe("--profile for every command", function()
    it("a cPanel account's profile, and CPANEL_PROFILE", function()
      srv:seed_token("alice", { name = "mine" })
      local r = ok(run { "list", "--profile", "alice" })
      assert.matches("\nmine%s", r.out)
      r = ok(run({ "list", "--json" }, { env = { CPANEL_PROFILE = "alice" } }))
      assert.matches('"name":"mine"', r.out)
    end)

    it("a WHM profile acts for --user with its WHM token; its password is refused for that", function()
      srv:seed_token("bob", { name = "bobs" })
      local r = ok(run { "list", "--profile", "web1", "--user", "bob" })
      assert.matches("\nbobs%s", r.out)
      write_config { "[profile respw]", "url = " .. srv.whm_url, "whm_user = res", "password_file = alice.pw" }
      srv:reset()
      refused(run { "list", "--profile", "respw", "--user", "alice" }, "WHM token only")
      refused(run { "list", "--profile", "web1" }, "no account")
      ok(run { "accounts", "--profile", "web1" })
      ok(run { "whm", "list", "--profile", "res" })
    end)

    it("precedence: flags, then the environment, then the profile", function()
      -- the profile's cafile is wrong: --cafile (a flag) wins, and so does CPANEL_CAFILE
      write_config { "[profile alice2]", "url = " .. srv.url, "user = alice", "password_file = alice.pw",
                     "cafile = " .. tmp .. "/none.pem" }
      ok(run { "list", "--profile", "alice2", "--cafile", srv.cafile })
      ok(run({ "list", "--profile", "alice2" }, { env = { CPANEL_CAFILE = srv.cafile } }))
      local r = run { "list", "--profile", "alice2" }
      assert.are_not.equal(0, r.code, r.err)
      assert.matches("none%.pem", r.err)
      -- the environment before the profile: CPANEL_CAFILE wrong, the profile's right
      r = run({ "list", "--profile", "alice" }, { env = { CPANEL_CAFILE = tmp .. "/none.pem" } })
      assert.are_not.equal(0, r.code, r.err)
      assert.matches("none%.pem", r.err)
      -- a credential is never mixed with a profile: a stale CPANEL_TOKEN would go to its server
      srv:reset()
      refused(run({ "list", "--profile", "alice" }, { env = { CPANEL_PASSWORD = H.ALICE_PW } }),
        "CPANEL_PASSWORD and %-%-profile alice both give a credential: give one")
      refused(run({ "whm", "list" }, { env = { CPANEL_PROFILE = "web1", WHM_TOKEN = H.RES_WHM } }),
        "WHM_TOKEN and CPANEL_PROFILE=web1 both give a credential")
    end)

    it("a URL or account that would send the profile's credential elsewhere is refused, naming both", function()
      local other = srv.localhost_url
      refused(run({ "list", "--profile", "alice" }, { env = { CPANEL_URL = other } }),
        "profile alice holds a credential for the server " .. srv.url:gsub("%p", "%%%0") .. ", but CPANEL_URL says "
          .. other:gsub("%p", "%%%0"))
      refused(run { "list", "--profile", "alice", "--url", other }, "but %-%-url says")
      refused(run { "list", "--profile", "alice", "--user", "bob" }, "the account alice, but %-%-user says bob")
      refused(run({ "whm", "list", "--profile", "web1" }, { env = { WHM_USER = "res" } }),
        "the WHM account root, but WHM_USER says res")
      -- the same server, said again: fine
      ok(run({ "list", "--profile", "alice" }, { env = { CPANEL_URL = srv.url } }))
    end)

    it("a token file and a profile are not mixed; a profile of an account and a WHM user keeps both", function()
      local path = tmp .. "/alice.json"
      os.remove(path)
      ok(run { "create", "held", "--out", path, "--profile", "alice" })
      write_config { "[profile elsewhere]", "url = " .. srv.localhost_url, "user = alice",
                     "password_file = alice.pw", "",
                     "[profile alicew]", "url = " .. srv.whm_url, "user = alice", "whm_user = root",
                     "token_file = root.token", "cafile = " .. srv.cafile }
      srv:reset()
      refused(run { "list", "--profile", "elsewhere", "--token-file", path },
        "%-%-token%-file and %-%-profile elsewhere both give a credential: give one .* drop %-%-token%-file")
      -- WHM acting for alice: CPANEL_USER cannot turn it to bob
      refused(run({ "list", "--profile", "alicew" }, { env = { CPANEL_USER = "bob" } }),
        "the account alice, but CPANEL_USER says bob")
      ok(run { "list", "--profile", "alicew" })
    end)

    it("a broken configuration is a usage error naming the file and line", function()
      util.write_private(cfgpath, "[profile x]\nurl = https://a:2083\n  user = x\n")
      refused(run { "list", "--profile", "x" }, "line 3")
      refused(run { "list", "--profile", "x", "--config", tmp .. "/none" }, "cannot read the configuration")
    end)
  end)

  describe("progress", function()
    it("is drawn in place on a terminal (script), and absent when standard error is not one", function()
      srv:seed_accounts(10)
      local envfile = env_file("tty")
      local ts = tmp .. "/tty.ts"
      local line = ". " .. q(envfile) .. "; " .. q(LUA) .. " bin/cptokens fleet audit --profile web1 >"
        .. q(tmp .. "/tty.out") .. "; echo rc=$?"
      assert(util.execute("script -qfec " .. q(line) .. " " .. q(ts) .. " </dev/null >/dev/null 2>&1"))
      local text = read_file(ts) or ""
      assert.is_truthy(text:find("\r\27[Kcptokens: fleet audit: 0/14 accounts", 1, true), text)
      assert.is_truthy(text:find("\r\27[Kcptokens: fleet audit: 14/14 accounts, 1 failed", 1, true), text)
      assert.is_truthy(text:find("\r\27[K", text:find("14/14 accounts, 1 failed", 1, true), true), "cleared")
      assert.matches("rc=1", text)
      assert.matches("14 accounts: 13 reached", read_file(tmp .. "/tty.out"))
      -- with --quiet on a terminal: no line
      line = ". " .. q(envfile) .. "; " .. q(LUA) .. " bin/cptokens fleet audit --profile web1 --quiet; echo rc=$?"
      assert(util.execute("script -qfec " .. q(line) .. " " .. q(ts) .. " </dev/null >/dev/null 2>&1"))
      assert.is_falsy((read_file(ts) or ""):find("accounts", 1, true))
      -- piped: no progress, no escape sequence
      local r = ok(run { "fleet", "audit", "--profile", "web1" }, 1)
      assert.is_falsy(r.err:find("accounts,", 1, true))
      assert.is_falsy(r.err:find("\27", 1, true))
    end)
  end)

  it("no secret in any output", function()
    assert.is_true(#runs > 10)
    for _, r in ipairs(runs) do
      for _, s in ipairs(secrets) do
        assert.is_falsy(r.out:find(s, 1, true), table.concat(r.args, " ") .. ": a secret on stdout")
        assert.is_falsy(r.err:find(s, 1, true), table.concat(r.args, " ") .. ": a secret on stderr")
      end
    end
  end)
end)
