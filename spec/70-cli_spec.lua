-- The `cptokens` command-line tool, installed with `make install` into a temporary prefix and
-- run as a subprocess against the fake cPanel server.
--
-- Secrets are never put on the command lines this spec runs (os.execute's `sh -c "..."` is
-- visible to every user through ps, like the tool's own argv): they go into a mode 0600 file
-- that the shell sources (`. envfile`), or into files the tool reads (--token-file, ...).
local H = require "spec.helpers"
local server = require "spec.support.server"
local util = require "spec.support.util"
local cjson = require "cjson"
local cptokens = require "cptokens"

local ALICE_PW = "alice-Pa55word!"
local BOB_PW = "bob-Pa55word!"
local BOB_OTP = "424242"
local ROOT_WHM = "ROOTWHMTOKEN0000000000000000000A"
local RES_WHM = "RESWHMTOKEN00000000000000000000B"
local ARGV_SECRET = "ARGVSECRET0000000000000000000000" -- given on argv to be refused; not a real credential

local shell_quote, read_file, write_file = util.shell_quote, util.read_file, util.write_file
local execute = util.execute -- true when the command exited 0

-- The interpreter running this suite, so that `make install` and the tool match it.
local LUA_VERSION = rawget(_G, "jit") and "luajit" or _VERSION:match("%d+%.%d+")
local LUA_ABI = LUA_VERSION == "luajit" and "5.1" or LUA_VERSION
local INTERPRETER = LUA_VERSION == "luajit" and "luajit" or ("lua" .. LUA_VERSION)

local ENV_NAMES = { "CPANEL_URL", "CPANEL_USER", "CPANEL_CAFILE", "CPANEL_CAPATH", "CPANEL_TOKEN",
                    "CPANEL_PASSWORD", "CPANEL_OTP", "WHM_TOKEN" }

describe("cptokens command-line tool", function()
  local srv, tmp, prefix, bin, work
  local runs = {}        -- every run, for the final secret scan
  local secrets = {}     -- every secret seen (set)

  local function remember(secret)
    if secret and secret ~= "" then secrets[secret] = true end
  end

  -- Every token value the server holds now (they are secrets too).
  local function harvest()
    for _, user in ipairs { "alice", "bob" } do
      for _, t in ipairs(srv:tokens(user)) do remember(t.token) end
    end
  end

  setup(function()
    srv = server.start()
    tmp = util.tmpdir("cli")
    prefix = tmp .. "/prefix"
    work = tmp .. "/work"
    assert(execute("mkdir -p " .. shell_quote(work)))
    local log = tmp .. "/install.log"
    local ok = execute("make --no-print-directory install LUA_VERSION=" .. LUA_VERSION .. " PREFIX="
      .. shell_quote(prefix) .. " >" .. shell_quote(log) .. " 2>&1")
    assert(ok, "make install failed:\n" .. (read_file(log) or ""))
    bin = prefix .. "/bin/cptokens"
    -- (the 6-digit OTP is not scanned for: it could match digits of an epoch by chance)
    for _, s in ipairs { ALICE_PW, BOB_PW, ROOT_WHM, RES_WHM, ARGV_SECRET } do remember(s) end
  end)

  teardown(function()
    if srv then srv:stop() end
    util.rmdir(tmp)
  end)

  before_each(function() srv:reset() end)

  local seq = 0

  --- Runs the installed tool: run({args...}, { env = {...}, stdin = "...", conn = false,
  --- secret_output = true, stdout_to = "/dev/full" }) -> { code, out, err }.
  -- env holds CPANEL_* variables (secrets included): they are written to a 0600 file the
  -- shell sources, never put on a command line. conn (default true) adds CPANEL_URL,
  -- CPANEL_USER=alice and CPANEL_CAFILE.
  local function run(args, o)
    o = o or {}
    seq = seq + 1
    local base = tmp .. "/run" .. seq
    local env = {}
    if o.conn ~= false then
      env.CPANEL_URL, env.CPANEL_USER, env.CPANEL_CAFILE = srv.url, "alice", srv.cafile
    end
    for k, v in pairs(o.env or {}) do env[k] = v end
    local lines = { "unset " .. table.concat(ENV_NAMES, " ") }
    for k, v in pairs(env) do
      if v ~= false then lines[#lines + 1] = "export " .. k .. "=" .. shell_quote(v) end
    end
    lines[#lines + 1] = "export LUA_PATH=" .. shell_quote(prefix .. "/share/lua/" .. LUA_ABI .. "/?.lua;"
      .. prefix .. "/share/lua/" .. LUA_ABI .. "/?/init.lua;;")
    lines[#lines + 1] = "export LUA_CPATH=" .. shell_quote(prefix .. "/lib/lua/" .. LUA_ABI .. "/?.so;;")
    util.write_private(base .. ".env", table.concat(lines, "\n") .. "\n")
    write_file(base .. ".in", o.stdin or "")
    local quoted = {}
    for i, a in ipairs(args) do quoted[i] = shell_quote(a) end
    -- Lua 5.4 runs the launcher through its own #! line; other Lua versions name the interpreter.
    local launcher = LUA_VERSION == "5.4" and shell_quote(bin) or (INTERPRETER .. " " .. shell_quote(bin))
    local cmd = "cd " .. shell_quote(work) .. " && . " .. shell_quote(base .. ".env") .. " && "
      .. launcher .. " " .. table.concat(quoted, " ")
      .. " <" .. shell_quote(base .. ".in")
      .. " >" .. (o.stdout_to or shell_quote(base .. ".out"))
      .. " 2>" .. shell_quote(base .. ".err")
    execute("(" .. cmd .. "); echo $? > " .. shell_quote(base .. ".code"))
    local r = {
      code = tonumber((read_file(base .. ".code") or ""):match("%d+")),
      out = read_file(base .. ".out") or "",
      err = read_file(base .. ".err") or "",
      args = args,
    }
    r.secret_output = o.secret_output
    runs[#runs + 1] = r
    harvest()
    return r
  end

  local function pw() return { CPANEL_PASSWORD = ALICE_PW } end

  -- A usage or failure line: exactly one line on stderr (and the hints that may follow it,
  -- each a line "cptokens: hint: ..."), no traceback, nothing on stdout.
  local function assert_one_line(r, code, pattern)
    assert.are.equal(code, r.code, "exit status; stderr: " .. r.err)
    assert.are.equal("", r.out)
    assert.is_truthy(r.err:match("^cptokens: [^\n]+\n") and not r.err:match("^cptokens: hint")
      and r.err:gsub("cptokens: hint: [^\n]+\n", ""):match("^cptokens: [^\n]+\n$"),
      "one line on stderr, got: " .. r.err)
    assert.is_falsy(r.err:find("traceback", 1, true))
    assert.is_falsy(r.err:find("%.lua:%d+"))
    if pattern then
      assert.is_truthy(r.err:find(pattern), "stderr " .. r.err .. " does not match " .. pattern)
    end
  end

  local function token_named(user, name)
    for _, t in ipairs(srv:tokens(user)) do
      if t.name == name then return t end
    end
  end

  local function file_in(name) return tmp .. "/" .. name end

  local function secret_file(name, content)
    local path = file_in(name)
    util.write_private(path, content)
    return path
  end

  local function rotation_available()
    return read_file(prefix .. "/share/lua/" .. LUA_ABI .. "/cptokens/rotate.lua") ~= nil
  end

  describe("installation, help and version", function()
    it("is installed by make install as an executable", function()
      assert.is_truthy(read_file(bin))
      assert.is_true(execute("test -x " .. shell_quote(bin)))
      assert.is_truthy(read_file(prefix .. "/share/lua/" .. LUA_ABI .. "/cptokens/cli.lua"))
      assert.is_truthy(read_file(prefix .. "/lib/lua/" .. LUA_ABI .. "/cptokens/core.so"))
      assert.is_truthy(read_file(prefix .. "/lib/lua/" .. LUA_ABI .. "/cptokens/core_impl.so"))
      for _, f in ipairs { "args", "parser", "common", "json", "connect", "tokens", "rotate", "help" } do
        assert.is_truthy(read_file(prefix .. "/share/lua/" .. LUA_ABI .. "/cptokens/cli/" .. f .. ".lua"), f)
      end
      -- the completion scripts, where bash-completion, zsh and fish look for them
      assert.are.equal(read_file("completions/cptokens.bash"),
        read_file(prefix .. "/share/bash-completion/completions/cptokens"))
      assert.are.equal(read_file("completions/_cptokens"), read_file(prefix .. "/share/zsh/vendor-completions/_cptokens"))
      assert.are.equal(read_file("completions/cptokens.fish"),
        read_file(prefix .. "/share/fish/vendor_completions.d/cptokens.fish"))
    end)

    it("prints its version", function()
      local r = run({ "--version" }, { conn = false })
      assert.are.equal(0, r.code)
      assert.are.equal("cptokens " .. cptokens._VERSION .. "\n", r.out)
      assert.are.equal("", r.err)
    end)

    it("has help for the tool and for each command, both spellings", function()
      for _, args in ipairs { { "help" }, { "--help" }, { "-h" } } do
        local r = run(args, { conn = false })
        assert.are.equal(0, r.code)
        assert.is_truthy(r.out:find("Usage: cptokens COMMAND", 1, true))
        for _, c in ipairs { "list", "create", "revoke", "rename", "rotate", "prune", "audit" } do
          assert.is_truthy(r.out:find("\n  " .. c, 1, true), c)
        end
      end
      for _, c in ipairs { "list", "create", "revoke", "rename", "rotate", "prune", "audit" } do
        local a = run({ "help", c }, { conn = false })
        local b = run({ c, "--help" }, { conn = false })
        assert.are.equal(0, a.code)
        assert.are.equal(0, b.code)
        assert.are.equal(a.out, b.out)
        assert.is_truthy(a.out:find("Usage: cptokens " .. c, 1, true))
        assert.is_truthy(a.out:find("CPANEL_TOKEN", 1, true))
      end
      assert.are.equal(0, srv:count())
    end)
  end)

  describe("usage errors", function()
    it("exit 2 with one clear line and no traceback, before contacting the server", function()
      local token_file = secret_file("usage-token", "SOMETOKEN\n")
      local cases = {
        { {}, "no command" },
        { { "lsit" }, "unknown command 'lsit'" },
        { { "help", "nope" }, "unknown command 'nope'" },
        { { "list", "--bogus" }, "unknown option %-%-bogus" },
        { { "list", "--bogus=value" }, "unknown option %-%-bogus " },
        { { "list", "-x" }, "unknown option %-x" },
        { { "list", "--timeout", "abc" }, "%-%-timeout abc" },
        { { "list", "--timeout=-1" }, "%-%-timeout" },
        { { "list", "--connect-timeout", "0" }, "%-%-connect%-timeout" },
        { { "list", "extra" }, "too many arguments" },
        { { "list", "--json=yes" }, "%-%-json takes no value" },
        { { "list", "--url" }, "%-%-url needs a value" },
        { { "list", "--url", "https://a", "--url", "https://b" }, "more than once" },
        { { "list", "--keep", "1" }, "does not apply" },
        { { "create" }, "create: missing NAME" },
        { { "create", "a", "b" }, "too many arguments" },
        { { "create", "x", "--expires-in", "3q" }, "unknown unit" },
        { { "create", "x", "--expires-in", "1 month" }, "ambiguous" },
        { { "create", "x", "--expires-at", "tomorrow" }, "%-%-expires%-at" },
        { { "create", "x", "--expires-in", "1h", "--expires-at", "2999-01-01T00:00:00Z" }, "not both" },
        { { "create", "x", "--out", "-" }, "%-%-out" },
        { { "create", "x", "--out", "/nonexistent-dir/f" }, "%-%-out" },
        { { "revoke" }, "revoke: missing NAME" },
        { { "rename", "a" }, "rename: missing OLD and NEW" },
        { { "rotate", "p" }, "%-%-out FILE is required" },
        { { "rotate" }, "rotate: missing PREFIX" },
        { { "rotate", "p", "--out", file_in("r"), "--keep", "x" }, "%-%-keep x" },
        { { "audit", "--within", "soon" }, "%-%-within" },
        { { "prune", "--prefix=" }, "%-%-prefix" },
      }
      for _, c in ipairs(cases) do
        local r = run(c[1], { env = pw() })
        assert_one_line(r, 2, c[2])
      end
      -- configuration
      local conf = {
        { { "list" }, { CPANEL_URL = false, CPANEL_TOKEN = "TOKENVALUE" }, "no server: use %-%-url URL or set CPANEL_URL" },
        { { "list" }, { CPANEL_USER = false, CPANEL_TOKEN = "TOKENVALUE" }, "no account: use %-%-user USER or set CPANEL_USER" },
        { { "list" }, {}, "no credentials" },
        { { "list" }, { CPANEL_TOKEN = "" }, "CPANEL_TOKEN is set but empty" },
        { { "list" }, { CPANEL_TOKEN = "TOKENVALUE", CPANEL_PASSWORD = "B" },
          "several credentials .*CPANEL_TOKEN.*CPANEL_PASSWORD" },
        { { "list", "--token-file", token_file }, { CPANEL_PASSWORD = "B" }, "several credentials" },
        { { "list", "--token-file", file_in("missing") }, {}, "cannot read" },
        { { "list", "--token-file", secret_file("empty", "\n") }, {}, "empty" },
        { { "list", "--token-file", "-" }, {}, "empty" },
        { { "list", "--token-file", "/dev/zero" }, {}, "too large" },
        { { "list", "--token-file", tmp }, {}, "cannot read" },
        { { "list", "--password-file", "-", "--otp-file", "-" }, {}, "standard input is already used" },
        { { "list" }, { CPANEL_TOKEN = "TOKENVALUE", CPANEL_OTP = "1" }, "password only" },
        { { "list", "--whm-user", "res" }, { CPANEL_TOKEN = "TOKENVALUE" }, "%-%-whm%-user goes with a WHM token" },
        { { "list", "--url", "http://example.com:2082" }, { CPANEL_TOKEN = "TOKENVALUE" }, "cptokens: invalid: " },
        { { "list", "--cafile", file_in("no-ca.pem") }, { CPANEL_TOKEN = "TOKENVALUE" }, "cptokens: invalid: " },
      }
      for _, c in ipairs(conf) do
        local r = run(c[1], { env = c[2], stdin = "" })
        assert_one_line(r, 2, c[3])
      end
      assert.are.equal(0, srv:count())
    end)

    it("refuses a secret given on the command line, saying how to pass it instead", function()
      local cases = {
        { { "list", "--token", "ARGVSECRET0000000000000000000000" }, "CPANEL_TOKEN=.*%-%-token%-file FILE" },
        { { "create", "x", "--token=ARGVSECRET0000000000000000000000" }, "CPANEL_TOKEN=.*%-%-token%-file" },
        { { "list", "--password", "ARGVSECRET-pw" }, "CPANEL_PASSWORD=.*%-%-password%-file" },
        { { "list", "--password=ARGVSECRET-pw" }, "CPANEL_PASSWORD=" },
        { { "list", "--whm-token", "ARGVSECRET" }, "WHM_TOKEN=.*%-%-whm%-token%-file" },
        { { "list", "--otp", "ARGVSECRET" }, "CPANEL_OTP=.*%-%-otp%-file" },
      }
      for _, c in ipairs(cases) do
        local r = run(c[1], { env = pw() })
        assert_one_line(r, 2, c[2])
        assert.is_truthy(r.err:find("visible to every user through ps", 1, true))
        assert.is_truthy(r.err:find("- for standard input", 1, true))
        assert.is_falsy(r.err:find("ARGVSECRET", 1, true))
      end
      -- -pSECRET (as some tools spell it) is an unknown option, and its value is not echoed
      local r = run({ "list", "-pARGVSECRET" }, { env = pw() })
      assert_one_line(r, 2, "unknown option %-p")
      assert.is_falsy(r.err:find("ARGVSECRET", 1, true))
      assert.are.equal(0, srv:count())
    end)
  end)

  describe("create", function()
    it("prints the token alone on standard output, so that TOKEN=$(cptokens create x) works", function()
      local r = run({ "create", "deploy" }, { env = pw(), secret_output = true })
      assert.are.equal(0, r.code, r.err)
      assert.are.equal("", r.err)
      local stored = assert(token_named("alice", "deploy"))
      assert.are.equal(stored.token .. "\n", r.out)
      assert.is_truthy(r.out:match("^[0-9A-Z]+\n$"))
      -- the shell recipe
      local base = file_in("capture")
      write_file(base .. ".env", "CPANEL_URL=" .. shell_quote(srv.url) .. "; CPANEL_USER=alice; CPANEL_CAFILE="
        .. shell_quote(srv.cafile) .. "; CPANEL_PASSWORD=" .. shell_quote(ALICE_PW)
        .. "; export CPANEL_URL CPANEL_USER CPANEL_CAFILE CPANEL_PASSWORD\n"
        .. "export LUA_PATH=" .. shell_quote(prefix .. "/share/lua/" .. LUA_ABI .. "/?.lua;"
          .. prefix .. "/share/lua/" .. LUA_ABI .. "/?/init.lua;;")
        .. "; export LUA_CPATH=" .. shell_quote(prefix .. "/lib/lua/" .. LUA_ABI .. "/?.so;;") .. "\n")
      local launcher = LUA_VERSION == "5.4" and shell_quote(bin) or (INTERPRETER .. " " .. shell_quote(bin))
      assert.is_true(execute(". " .. shell_quote(base .. ".env") .. " && TOKEN=$(" .. launcher
        .. " create ci --expires-in 24h) && [ ${#TOKEN} -eq 32 ] && printf %s \"$TOKEN\" > "
        .. shell_quote(base .. ".tok")))
      assert.are.equal(assert(token_named("alice", "ci")).token, read_file(base .. ".tok"))
      harvest()
    end)

    it("sets the expiry from --expires-in, or --expires-at as an epoch or ISO time", function()
      local before = os.time()
      local r = run({ "create", "day", "--expires-in", "24 Hours", "--json" }, { env = pw(), secret_output = true })
      assert.are.equal(0, r.code, r.err)
      local doc = cjson.decode(r.out)
      assert.are.equal("day", doc.name)
      assert.are.equal(assert(token_named("alice", "day")).token, doc.token)
      assert.is_true(doc.expires_at >= before + 86400 and doc.expires_at <= os.time() + 86400)
      assert.are.equal(cjson.null, doc.out)
      -- the keys of list --json (issue 15, point 8), then the token, the file and --exec
      assert.is_truthy(r.out:match('^{"name":"day","create_time":%d+,"created":"[^"]+","expires_at":%d+,'
        .. '"expires":"[^"]+","expired":false,"remaining":%d+,"has_full_access":true,"token":"[0-9A-Z]+","out":null,'
        .. '"exec":false}\n$'),
        r.out)
      assert.are.equal(cptokens.time.iso8601(doc.expires_at), doc.expires)

      r = run({ "create", "iso", "--expires-at", "2999-12-31T23:59:59Z" }, { env = pw(), secret_output = true })
      assert.are.equal(0, r.code, r.err)
      assert.are.equal("32503679999", tostring(token_named("alice", "iso").expires_at))

      local at = os.time() + 3600
      r = run({ "create", "epoch", "--expires-at=" .. at }, { env = pw(), secret_output = true })
      assert.are.equal(0, r.code, r.err)
      assert.are.equal(tostring(at), tostring(token_named("alice", "epoch").expires_at))
    end)

    it("with --out writes a 0600 file and prints only the name and expiry", function()
      local path = file_in("deploy.token")
      local r = run({ "create", "deploy", "--expires-in", "30d", "--out", path }, { env = pw() })
      assert.are.equal(0, r.code, r.err)
      assert.are.equal("", r.err)
      local stored = assert(token_named("alice", "deploy"))
      assert.is_falsy(r.out:find(stored.token, 1, true))
      assert.is_truthy(r.out:find("deploy", 1, true))
      assert.is_truthy(r.out:find(cptokens.time.iso8601(stored.expires_at), 1, true))
      assert.is_truthy(read_file(path):find(stored.token, 1, true))
      assert.are.equal("600", util.file_mode(path))
      -- the file is a credential the tool reads back; it names its server and user too
      local l = run({ "list", "--token-file", path })
      assert.are.equal(0, l.code, l.err)
      assert.is_truthy(l.out:find("\ndeploy ", 1, true))
      l = run({ "list", "--token-file", path, "--cafile", srv.cafile }, { conn = false })
      assert.are.equal(0, l.code, l.err)
      local log = srv:log()
      assert.are.equal("cpanel", log[#log].auth)
      -- an existing file that is not a token file is not overwritten
      local precious = file_in("precious.txt")
      write_file(precious, "do not lose me\n")
      r = run({ "create", "p", "--out", precious }, { env = pw() })
      assert_one_line(r, 2, "not a cptokens token file")
      assert.are.equal("do not lose me\n", read_file(precious))
      assert.is_nil(token_named("alice", "p"))
      -- --json
      local path2 = file_in("j.token")
      r = run({ "create", "j", "--out", path2, "--json" }, { env = pw() })
      assert.are.equal(0, r.code, r.err)
      local doc = cjson.decode(r.out)
      assert.are.equal("j", doc.name)
      assert.are.equal(cjson.null, doc.token)
      assert.are.equal(cjson.null, doc.expires_at)
      assert.are.equal(path2, doc.out)
    end)

    it("revokes the new token when it cannot be delivered to standard output", function()
      local r = run({ "create", "lost" }, { env = pw(), stdout_to = "/dev/full" })
      assert.are.equal(1, r.code)
      assert.is_truthy(r.err:match("^cptokens: io: [^\n]*standard output[^\n]*revoked[^\n]*\n$"), r.err)
      assert.is_nil(token_named("alice", "lost"))
    end)

    it("reports cPanel's refusal (duplicate) as exit 1 with the kind; what is refused unsent is exit 2", function()
      assert.are.equal(0, run({ "create", "dup" }, { env = pw(), secret_output = true }).code)
      local r = run({ "create", "dup" }, { env = pw() })
      assert_one_line(r, 1, "^cptokens: api: .*already exists")
      -- refused before anything is sent (issue 15, point 8): exit 2, as a bad duration
      local sent = srv:count()
      r = run({ "create", "past", "--expires-at", "1000000000" }, { env = pw() })
      assert_one_line(r, 2, "^cptokens: invalid: .*future")
      r = run({ "create", "bad name!" }, { env = pw() })
      assert_one_line(r, 2, "^cptokens: invalid: ")
      r = run({ "rename", "dup", "dup" }, { env = pw() })
      assert_one_line(r, 2, "^cptokens: invalid: ")
      r = run({ "revoke", "bad name!" }, { env = pw() })
      assert_one_line(r, 2, "^cptokens: invalid: ")
      assert.are.equal(sent, srv:count())
      -- a bad name after one that was sent: exit 1 (something was done)
      r = run({ "revoke", "dup", "bad name!" }, { env = pw() })
      assert.are.equal(1, r.code, r.err)
      assert.is_nil(token_named("alice", "dup"))
    end)
  end)

  describe("list", function()
    local function seed()
      local now = os.time()
      srv:seed_token("alice", { name = "old", create_time = now - 10 * 86400, expires_at = now - 3 * 86400 })
      srv:seed_token("alice", { name = "soon", create_time = now - 5 * 86400, expires_at = now + 3 * 86400 + 60 })
      srv:seed_token("alice", { name = "forever-and-a-day", create_time = now - 86400,
                                expires_at = cjson.null })
      return now
    end

    it("prints an aligned table with ISO times, never, and the state", function()
      local now = seed()
      local r = run({ "list" }, { env = pw() })
      assert.are.equal(0, r.code, r.err)
      assert.are.equal("", r.err)
      local lines = {}
      for line in r.out:gmatch("[^\n]+") do lines[#lines + 1] = line end
      assert.are.equal(4, #lines)
      assert.is_truthy(lines[1]:match("^NAME%s+CREATED%s+EXPIRES%s+STATE$"))
      assert.is_truthy(lines[2]:match("^old%s"))
      assert.is_truthy(lines[3]:match("^soon%s"))
      assert.is_truthy(lines[4]:match("^forever%-and%-a%-day%s"))
      -- aligned: each column starts at the same offset on every line
      for _, col in ipairs { "CREATED", "EXPIRES", "STATE" } do
        local at = lines[1]:find(col, 1, true)
        for i = 2, 4 do
          assert.are.equal(" ", lines[i]:sub(at - 1, at - 1))
          assert.are_not.equal(" ", lines[i]:sub(at, at))
        end
      end
      assert.is_truthy(lines[2]:find(cptokens.time.iso8601(now - 3 * 86400), 1, true))
      assert.is_truthy(lines[2]:find("expired 3d ago", 1, true))
      assert.is_truthy(lines[3]:find("expires in 3d", 1, true))
      assert.is_truthy(lines[4]:find("never", 1, true))
      assert.is_truthy(lines[4]:find("never expires", 1, true))
    end)

    it("--json prints one document with stable keys", function()
      local now = seed()
      local r = run({ "list", "--json" }, { env = pw() })
      assert.are.equal(0, r.code, r.err)
      local doc = cjson.decode(r.out)
      assert.are.equal(3, #doc.tokens)
      local old, soon, forever = doc.tokens[1], doc.tokens[2], doc.tokens[3]
      assert.are.equal("old", old.name)
      assert.is_true(old.expired)
      assert.are.equal(now - 3 * 86400, old.expires_at)
      assert.are.equal(cptokens.time.iso8601(now - 3 * 86400), old.expires)
      assert.are.equal(cptokens.time.iso8601(old.create_time), old.created)
      assert.is_true(old.remaining < 0)
      assert.is_false(soon.expired)
      assert.is_true(soon.remaining > 3 * 86400 - 60)
      assert.are.equal(cjson.null, forever.expires_at)
      assert.are.equal(cjson.null, forever.expires)
      assert.are.equal(cjson.null, forever.remaining)
      assert.is_false(forever.expired)
      assert.is_true(forever.has_full_access)
      -- the keys, in this order, for every token
      for obj in r.out:gmatch("{\"name\"[^}]*}") do
        local keys = {}
        for k in obj:gmatch('"([%w_]+)":') do keys[#keys + 1] = k end
        assert.are.same({ "name", "create_time", "created", "expires_at", "expires", "expired", "remaining",
                          "has_full_access" }, keys)
      end
      assert.is_truthy(r.out:match("^{\"tokens\":%[.*%]}\n$"))
      -- empty
      srv:reset()
      r = run({ "list", "--json" }, { env = pw() })
      assert.are.equal('{"tokens":[]}\n', r.out)
    end)
  end)

  describe("--quiet (issue 15, point 10)", function()
    it("writes nothing on standard output but create's token; --json still prints its document", function()
      srv:seed_token("alice", { name = "q1" })
      local r = run({ "list", "--quiet" }, { env = pw() })
      assert.are.equal(0, r.code, r.err)
      assert.are.equal("", r.out)
      assert.are.equal("", r.err)
      r = run({ "create", "q2", "--quiet" }, { env = pw(), secret_output = true })
      assert.are.equal(0, r.code, r.err)
      assert.are.equal(assert(token_named("alice", "q2")).token .. "\n", r.out)
      r = run({ "revoke", "q1", "q2", "--quiet" }, { env = pw() })
      assert.are.equal(0, r.code, r.err)
      assert.are.equal("", r.out)
      assert.is_nil(token_named("alice", "q1"))
      r = run({ "list", "--quiet", "--json" }, { env = pw() })
      assert.are.equal('{"tokens":[]}\n', r.out)
      -- failures still say so on standard error
      r = run({ "list", "--quiet" }, { env = { CPANEL_PASSWORD = "wrong" } })
      assert_one_line(r, 1, "^cptokens: auth: ")
      -- and what was asked for is printed
      r = run({ "help", "list", "--quiet" }, { conn = false })
      assert.is_truthy(r.out:find("Usage: cptokens list", 1, true))
    end)
  end)

  describe("revoke and rename", function()
    it("revoke takes several names; a missing one is reported, not an error", function()
      for _, n in ipairs { "a", "b", "c" } do srv:seed_token("alice", { name = n }) end
      local r = run({ "revoke", "a", "nope", "b" }, { env = pw() })
      assert.are.equal(0, r.code, r.err)
      assert.are.equal("revoked a\nno token named nope (nothing to revoke)\nrevoked b\n", r.out)
      assert.is_nil(token_named("alice", "a"))
      assert.is_nil(token_named("alice", "b"))
      assert.is_table(token_named("alice", "c"))
      r = run({ "revoke", "c", "zz", "--json" }, { env = pw() })
      assert.are.equal(0, r.code, r.err)
      assert.are.equal('{"revoked":["c"],"missing":["zz"]}\n', r.out)
      -- names that start with "-" after --
      srv:seed_token("alice", { name = "-dash" })
      r = run({ "revoke", "--", "-dash" }, { env = pw() })
      assert.are.equal(0, r.code, r.err)
      assert.is_nil(token_named("alice", "-dash"))
    end)

    it("rename keeps the secret; a missing token fails with exit 1", function()
      srv:seed_token("alice", { name = "old", token = ("7"):rep(32) })
      local r = run({ "rename", "old", "new" }, { env = pw() })
      assert.are.equal(0, r.code, r.err)
      assert.are.equal("renamed old to new\n", r.out)
      assert.are.equal(("7"):rep(32), token_named("alice", "new").token)
      r = run({ "rename", "new", "newer", "--json" }, { env = pw() })
      assert.are.same({ name = "new", new_name = "newer" }, cjson.decode(r.out))
      r = run({ "rename", "ghost", "x" }, { env = pw() })
      assert_one_line(r, 1, "^cptokens: api: The API token .*ghost.* does not exist")
    end)
  end)

  describe("credentials", function()
    local function bootstrap(name)
      local r = run({ "create", name }, { env = pw(), secret_output = true })
      assert.are.equal(0, r.code, r.err)
      return (r.out:gsub("\n$", ""))
    end

    it("from the environment: CPANEL_TOKEN, CPANEL_PASSWORD, CPANEL_OTP, WHM_TOKEN", function()
      local tok = bootstrap("boot")
      local r = run({ "list" }, { env = { CPANEL_TOKEN = tok } })
      assert.are.equal(0, r.code, r.err)
      local log = srv:log()
      assert.are.equal("cpanel", log[#log].auth)

      r = run({ "list" }, { env = { CPANEL_USER = "bob", CPANEL_PASSWORD = BOB_PW, CPANEL_OTP = BOB_OTP } })
      assert.are.equal(0, r.code, r.err)
      log = srv:log()
      assert.is_true(log[#log].otp_present)
      r = run({ "list" }, { env = { CPANEL_USER = "bob", CPANEL_PASSWORD = BOB_PW } })
      assert_one_line(r, 1, "^cptokens: auth: ")

      r = run({ "create", "by-root" }, { env = { CPANEL_URL = srv.whm_url, WHM_TOKEN = ROOT_WHM },
                                         secret_output = true })
      assert.are.equal(0, r.code, r.err)
      assert.are.equal(token_named("alice", "by-root").token .. "\n", r.out)
      log = srv:log()
      assert.are.equal("whm", log[#log].auth)
      r = run({ "list", "--whm-user", "res", "--url", srv.whm_url }, { env = { WHM_TOKEN = RES_WHM } })
      assert.are.equal(0, r.code, r.err)
      assert.is_truthy(r.out:find("by-root", 1, true))
    end)

    it("from files, and from standard input with -", function()
      local tok = bootstrap("boot")
      local tf = secret_file("tok", tok .. "\n")
      local r = run({ "list", "--token-file", tf })
      assert.are.equal(0, r.code, r.err)
      assert.is_truthy(r.out:find("\nboot ", 1, true))
      r = run({ "list", "--token-file", "-" }, { stdin = tok .. "\n" })
      assert.are.equal(0, r.code, r.err)
      r = run({ "list", "--token-file=" .. secret_file("tok-crlf", tok .. "\r\n") })
      assert.are.equal(0, r.code, r.err)
      r = run({ "list", "--token-file", secret_file("tok-bad", "WRONG" .. tok:sub(6)) })
      assert_one_line(r, 1, "^cptokens: auth: ")

      r = run({ "list", "--password-file", secret_file("pw", ALICE_PW) })
      assert.are.equal(0, r.code, r.err)
      r = run({ "list", "--password-file", "-" }, { stdin = ALICE_PW .. "\n" })
      assert.are.equal(0, r.code, r.err)
      local log = srv:log()
      assert.are.equal("basic", log[#log].auth)

      r = run({ "list", "--user", "bob", "--password-file", secret_file("bobpw", BOB_PW),
                "--otp-file", "-" }, { stdin = BOB_OTP .. "\n" })
      assert.are.equal(0, r.code, r.err)

      r = run({ "list", "--url", srv.whm_url, "--whm-token-file", secret_file("whm", ROOT_WHM .. "\n"),
                "--whm-user=root" })
      assert.are.equal(0, r.code, r.err)
      log = srv:log()
      assert.are.equal("whm", log[#log].auth)
    end)

    it("connection settings from flags override nothing secret and work without the environment", function()
      local r = run({ "list", "--url", srv.url, "--user", "alice", "--cafile", srv.cafile,
                      "--timeout", "5", "--connect-timeout=2.5", "--password-file", secret_file("pw2", ALICE_PW) },
                    { conn = false })
      assert.are.equal(0, r.code, r.err)
      -- without the CA the certificate is refused; --insecure is the explicit opt-out
      r = run({ "list", "--url", srv.url, "--user", "alice" }, { conn = false, env = pw() })
      assert_one_line(r, 1, "^cptokens: tls: ")
      r = run({ "list", "--url", srv.url, "--user", "alice", "--insecure" }, { conn = false, env = pw() })
      assert.are.equal(0, r.code, r.err)
    end)
  end)

  describe("failures", function()
    it("exit 1 with the error kind: auth, http, network, protocol, timeout", function()
      local r = run({ "list" }, { env = { CPANEL_PASSWORD = "wrong-password" } })
      assert_one_line(r, 1, "^cptokens: auth: ")
      srv:fault("status", { status = 503, times = 1 })
      r = run({ "list" }, { env = pw() })
      assert_one_line(r, 1, "^cptokens: http: ")
      srv:fault("malformed")
      r = run({ "list" }, { env = pw() })
      assert_one_line(r, 1, "^cptokens: protocol: ")
      srv:clear_faults()
      srv:fault("hang", { seconds = 5 })
      r = run({ "list", "--timeout", "0.5" }, { env = pw() })
      assert_one_line(r, 1, "^cptokens: timeout: ")
      srv:clear_faults()
      r = run({ "list", "--url", "https://127.0.0.1:1" }, { env = pw() })
      assert_one_line(r, 1, "^cptokens: network: ")
    end)
  end)

  describe("rotate, prune and audit", function()
    it("fail cleanly while rotation is not installed", function()
      if rotation_available() then return end
      for _, args in ipairs { { "rotate", "deploy", "--out", file_in("rot.token") }, { "prune" }, { "audit" } } do
        local r = run(args, { env = pw() })
        assert_one_line(r, 1, "not available")
      end
    end)

    it("rotate stores the new token before revoking the old ones, and can rotate its own credential", function()
      if not rotation_available() then return end
      local path = file_in("rot.token")
      local r = run({ "rotate", "deploy", "--expires-in", "30d", "--out", path }, { env = pw() })
      assert.are.equal(0, r.code, r.err)
      assert.are.equal("", r.err)
      local toks = srv:tokens("alice")
      assert.are.equal(1, #toks)
      local first = toks[1]
      assert.is_truthy(first.name:match("^deploy%-%d+$"))
      assert.is_truthy(read_file(path):find(first.token, 1, true))
      assert.are.equal("600", util.file_mode(path))
      assert.are.equal("created " .. first.name .. ", expires " .. cptokens.time.iso8601(tonumber(first.expires_at))
        .. "; token saved to " .. path .. "\n", r.out)

      -- self-rotation: the credential is the token file being rotated (it names server and user)
      r = run({ "rotate", "deploy", "--out", path, "--token-file", path, "--cafile", srv.cafile, "--json" },
              { conn = false })
      assert.are.equal(0, r.code, r.err)
      local doc = cjson.decode(r.out)
      assert.are.same({ first.name }, doc.revoked)
      assert.are.equal(path, doc.out)
      assert.is_true(doc.switched)
      assert.are.same({}, doc.errors)
      toks = srv:tokens("alice")
      assert.are.equal(1, #toks)
      assert.are.equal(doc.created, toks[1].name)
      assert.are.equal(cjson.null, doc.expires_at)
      assert.is_truthy(read_file(path):find(toks[1].token, 1, true))
      assert.is_truthy(r.out:match('^{"created":"[^"]+","create_time":%d+,"expires_at":null,"out":".-",'
        .. '"revoked":%[.-%],"kept":%[%],"orphans":%[%],"foreign":%[%],"switched":true,"errors":%[%]}\n$'), r.out)

      -- --keep 1 keeps the newest old one
      r = run({ "rotate", "deploy", "--out", path, "--keep", "1" }, { env = pw() })
      assert.are.equal(0, r.code, r.err)
      assert.are.equal(2, #srv:tokens("alice"))
      assert.is_truthy(r.out:find("\nkept " .. toks[1].name .. "\n", 1, true))

      -- a failure: the error kind and the step, exit 1
      r = run({ "rotate", "bad prefix!", "--out", path }, { env = pw() })
      assert_one_line(r, 1, "^cptokens: invalid: rotate: ")
      srv:fault("status", { status = 500, times = 1 })
      r = run({ "rotate", "deploy", "--out", path }, { env = pw() })
      assert_one_line(r, 1, "^cptokens: http: rotate: list failed")
    end)

    it("prune revokes expired tokens; audit exits 3 when something needs attention", function()
      if not rotation_available() then return end
      local now = os.time()
      local function stamp(t) return os.date("!%Y%m%d%H%M%S", t) end
      local ci_old, ci_soon = "ci-" .. stamp(now - 9 * 86400), "ci-" .. stamp(now - 8 * 86400)
      local ci_fine = "ci-" .. stamp(now - 7 * 86400)
      srv:seed_token("alice", { name = ci_old, create_time = now - 9 * 86400, expires_at = now - 86400 })
      srv:seed_token("alice", { name = ci_soon, create_time = now - 8 * 86400, expires_at = now + 86400 })
      srv:seed_token("alice", { name = ci_fine, create_time = now - 7 * 86400, expires_at = now + 90 * 86400 })
      srv:seed_token("alice", { name = "other-old", create_time = now - 6 * 86400, expires_at = now - 60 })
      srv:seed_token("alice", { name = "forever", create_time = now - 5 * 86400 })

      local r = run({ "audit" }, { env = pw() })
      assert.are.equal(3, r.code, r.err)
      assert.are.equal("", r.err)
      local lines = {}
      for line in r.out:gmatch("[^\n]+") do lines[#lines + 1] = line end
      local function esc(name) return (name:gsub("%-", "%%-")) end
      assert.is_truthy(lines[1]:match("^NAME%s+EXPIRES%s+STATE%s+DETAIL$"))
      assert.is_truthy(lines[2]:match("^" .. esc(ci_old) .. "%s+%S+%s+expired%s+expired 1d ago$"), lines[2])
      assert.is_truthy(lines[3]:match("^" .. esc(ci_soon) .. "%s+%S+%s+expiring%s+expires in %d+[hd]$"), lines[3])
      assert.is_truthy(lines[6]:match("^forever%s+never%s+never%s+never expires$"), lines[6])
      assert.are.equal("2 expired, 1 expiring within 7d, 1 never expire, 1 fine", lines[7])

      r = run({ "audit", "--json", "--within", "2d" }, { env = pw() })
      assert.are.equal(3, r.code, r.err)
      local doc = cjson.decode(r.out)
      assert.are.same({ ci_old, "other-old" }, doc.expired)
      assert.are.same({ ci_soon }, doc.expiring)
      assert.are.same({ "forever" }, doc.never)
      assert.are.same({ ci_fine }, doc.fine)
      assert.are.equal("2d", doc.within)
      assert.are.equal(172800, doc.within_seconds)
      assert.are.equal(5, #doc.tokens)
      assert.are.equal("expiring", doc.tokens[2].state)
      assert.are.equal(cjson.null, doc.tokens[5].remaining)

      r = run({ "prune", "--prefix", "ci" }, { env = pw() })
      assert.are.equal(0, r.code, r.err)
      assert.are.equal("revoked " .. ci_old .. "\n1 expired token revoked, 2 kept\n", r.out)
      assert.is_nil(token_named("alice", ci_old))
      assert.is_table(token_named("alice", "other-old"))
      r = run({ "prune", "--json" }, { env = pw() })
      assert.are.equal(0, r.code, r.err)
      assert.are.equal('{"revoked":["other-old"],"kept":3,"errors":[]}\n', r.out)

      -- nothing expired; the window decides about the rest
      r = run({ "audit", "--within", "12h" }, { env = pw() })
      assert.are.equal(0, r.code, r.err)
      r = run({ "audit" }, { env = pw() })
      assert.are.equal(3, r.code, r.err)
      r = run({ "revoke", ci_soon }, { env = pw() })
      assert.are.equal(0, r.code, r.err)
      r = run({ "audit", "--within", "30d" }, { env = pw() })
      assert.are.equal(0, r.code, r.err)
      r = run({ "audit", "--within", "100d" }, { env = pw() })
      assert.are.equal(3, r.code, r.err)
      -- and a failure is exit 1, not 3
      r = run({ "audit" }, { env = { CPANEL_PASSWORD = "wrong" } })
      assert_one_line(r, 1, "^cptokens: auth: ")
    end)
  end)

  describe("secrets", function()
    it("never appear on stdout or stderr, except in create's own output", function()
      -- one run of every command, with each kind of credential
      local tok
      do
        local r = run({ "create", "scan-boot" }, { env = pw(), secret_output = true })
        tok = r.out:gsub("\n$", "")
      end
      local tf = secret_file("scan-tok", tok .. "\n")
      local out = file_in("scan.token")
      local sets = {
        { env = pw() },
        { env = { CPANEL_TOKEN = tok } },
        { env = { CPANEL_URL = srv.whm_url, WHM_TOKEN = ROOT_WHM } },
      }
      for i, o in ipairs(sets) do
        local n = "s" .. i
        run({ "list" }, o)
        run({ "list", "--json" }, o)
        run({ "create", n .. "a", "--out", out }, o)
        run({ "create", n .. "b", "--out", out, "--json" }, o)
        run({ "create", n .. "c", "--expires-in", "1h" }, { env = o.env, secret_output = true })
        run({ "rename", n .. "a", n .. "r" }, o)
        run({ "revoke", n .. "r", n .. "b", "missing" }, o)
        run({ "rotate", "scan", "--out", file_in("scan-rot" .. i) }, o)
        run({ "prune" }, o)
        run({ "audit" }, o)
        run({ "audit", "--json" }, o)
        run({ "create", n .. "c" }, o)                     -- duplicate: api error
        run({ "rename", "ghost", "x" }, o)                 -- api error
        run({ "list", "--url", "https://127.0.0.1:1" }, o) -- network error
        run({ "list", "--token", ARGV_SECRET }, o)         -- refused argv secret
      end
      run({ "list", "--token-file", tf })
      run({ "list", "--password-file", "-" }, { stdin = ALICE_PW })
      run({ "list" }, { env = { CPANEL_PASSWORD = ALICE_PW .. "x" } })
      run({ "list" }, { env = { CPANEL_TOKEN = tok:sub(2) .. "0" } })
      run({ "list" }, { env = { CPANEL_USER = "bob", CPANEL_PASSWORD = BOB_PW, CPANEL_OTP = BOB_OTP } })
      run({ "list", "--timeout", "abc" }, { env = pw() })
      harvest()
      remember(tok)

      local list = {}
      for s in pairs(secrets) do
        list[#list + 1] = s
      end
      -- the HTTP Basic and WHM header forms too
      local mime = require "mime"
      local extra = {}
      for _, s in ipairs { "alice:" .. ALICE_PW, "bob:" .. BOB_PW, "root:" .. ROOT_WHM, "alice:" .. tok } do
        extra[#extra + 1] = (mime.b64(s))
      end
      assert.is_true(#list >= 10)
      local checked = 0
      for _, r in ipairs(runs) do
        local texts = { r.err }
        if not r.secret_output then texts[2] = r.out end
        for _, text in ipairs(texts) do
          H.assert_no_secret(text, list)
          for _, b in ipairs(extra) do
            assert(not text:find(b, 1, true), "a secret (base64 header) leaked")
          end
          checked = checked + 1
        end
        -- create's own output holds its token and nothing else secret
        if r.secret_output and r.code == 0 then
          local own = r.out:match("^([0-9A-Z]+)\n$") or r.out:match('"token":"([0-9A-Z]+)"')
          assert.is_truthy(own, r.out)
          local rest = r.out:gsub(own, "")
          H.assert_no_secret(rest, list)
        end
      end
      assert.is_true(checked > 50)
    end)
  end)

  describe("in process", function()
    local cli = require "cptokens.cli"

    local function sink()
      local buf = {}
      return {
        buf = buf,
        write = function(self, ...)
          for _, s in ipairs { ... } do buf[#buf + 1] = s end
          return self
        end,
        flush = function(self) return self end,
        read = function() return "" end,
        text = function() return table.concat(buf) end,
      }
    end

    it("main(args, env) returns the exit status and never raises", function()
      local o, e = sink(), sink()
      assert.are.equal(2, cli.main({ "list", "--timeout", "abc" }, {}, { stdout = o, stderr = e }))
      assert.is_truthy(e:text():match("^cptokens: %-%-timeout abc: [^\n]+\n$"))
      o, e = sink(), sink()
      assert.are.equal(0, cli.main({ "--version" }, {}, { stdout = o, stderr = e }))
      assert.are.equal("cptokens " .. cptokens._VERSION .. "\n", o:text())
      o, e = sink(), sink()
      assert.are.equal(1, cli.main({ "list" }, { CPANEL_URL = srv.url, CPANEL_USER = "alice",
        CPANEL_CAFILE = srv.cafile, CPANEL_PASSWORD = "nope" }, { stdout = o, stderr = e }))
      assert.is_truthy(e:text():match("^cptokens: auth: [^\n]+\ncptokens: hint: the server refused the account"
        .. " password from CPANEL_PASSWORD for user alice at https://[^\n]+\n$"), e:text())
      assert.is_nil(e:text():find("nope", 1, true))
      -- an internal error is one line, without the secret
      e = sink()
      local broken = { write = function() error("boom " .. ALICE_PW) end, flush = function() return true end }
      assert.are.equal(1, cli.main({ "list" }, { CPANEL_URL = srv.url, CPANEL_USER = "alice",
        CPANEL_CAFILE = srv.cafile, CPANEL_PASSWORD = ALICE_PW }, { stdout = broken, stderr = e }))
      assert.is_truthy(e:text():match("^cptokens: internal error: [^\n]*boom <secret>\n$"), e:text())
    end)

    it("encodes JSON with keys in the given order", function()
      local obj = cli._obj
      assert.are.equal('{"b":1,"a":[true,false,"x\\"\\n\\u0001"],"c":null,"d":{},"e":[]}',
        cli._json(obj("b", 1, "a", { true, false, "x\"\n\1" }, "c", nil, "d", obj(), "e", {})))
    end)
  end)
end)
