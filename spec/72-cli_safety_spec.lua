-- The command-line tool under a hostile world (issue 10, points 7, 9, 10, 11): signals and a
-- closed pipe around `create` and `rotate`, per-token errors that echo the credential, token
-- names that carry terminal escapes, loose file modes, core dumps, secrets after `=` in argv.
--
-- bin/cptokens runs from the work tree (lua/ and the in-tree build on its paths) as a real child
-- process against the fake cPanel server; a signal goes only to the pid of the process this spec
-- started, checked through /proc/PID/cmdline first. Secrets never go on a command line: they are
-- in mode 0600 files the shell sources, or files the tool reads.
local H = require "spec.helpers"
local server = require "spec.support.server"
local util = require "spec.support.util"
local socket = require "socket"
local mime = require "mime"
local cjson = require "cjson"

local ALICE_PW = "alice-Pa55word!"
local BOB_PW = "bob-Pa55word!"
local BOB_OTP = "424242"
local SEEDED = "SAFETYSPECSEEDEDTOKEN00000000072"
local ARGV_SECRET = "ARGVSECRET0000000000000000000072" -- put on argv to be refused; no real credential

local shell_quote, read_file, write_file = util.shell_quote, util.read_file, util.write_file
local execute = util.execute

local CREATE_URI = "/execute/Tokens/create_full_access"
local ENV_NAMES = { "CPANEL_URL", "CPANEL_USER", "CPANEL_CAFILE", "CPANEL_CAPATH", "CPANEL_TOKEN",
                    "CPANEL_PASSWORD", "CPANEL_OTP", "WHM_TOKEN" }

describe("cptokens command-line tool, hostile world", function()
  local srv, tmp, work
  local build = os.getenv("CPTOKENS_BUILD") or "build/5.4"
  local root = util.capture("pwd"):gsub("%s+$", "")
  local bin = root .. "/bin/cptokens"
  -- every signal at its default, as from an interactive shell (this process, through
  -- luasocket, ignores SIGPIPE, and a child would inherit that)
  local launcher = "env --default-signal " .. shell_quote(util.LUA) .. " " .. shell_quote(bin)
  -- every secret a run may hold, and the header forms of the credentials
  local secrets = { ALICE_PW, BOB_PW, SEEDED, ARGV_SECRET, "alice:" .. ALICE_PW, "alice:" .. SEEDED,
                    (mime.b64("alice:" .. ALICE_PW)), (mime.b64("alice:" .. SEEDED)) }

  setup(function()
    srv = server.start()
    tmp = util.tmpdir("clisafe")
    work = tmp .. "/work"
    assert(execute("mkdir -p " .. shell_quote(work)))
  end)

  teardown(function()
    if srv then srv:stop() end
    util.rmdir(tmp)
  end)

  before_each(function()
    srv:reset()
    srv:seed_token("alice", { name = "seeded", token = SEEDED })
  end)

  local seq = 0

  -- Writes the run's environment file (0600) and its stdin; returns the file base name.
  local function prepare(o)
    seq = seq + 1
    local base = tmp .. "/run" .. seq
    local env = { CPANEL_URL = srv.url, CPANEL_USER = "alice", CPANEL_CAFILE = srv.cafile }
    for k, v in pairs(o.env or { CPANEL_PASSWORD = ALICE_PW }) do env[k] = v end
    local lines = { "unset " .. table.concat(ENV_NAMES, " ") }
    for k, v in pairs(env) do
      if v ~= false then lines[#lines + 1] = "export " .. k .. "=" .. shell_quote(v) end
    end
    lines[#lines + 1] = "export LUA_PATH=" .. shell_quote(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;")
    lines[#lines + 1] = "export LUA_CPATH=" .. shell_quote(root .. "/" .. build .. "/?.so;;")
    util.write_private(base .. ".env", table.concat(lines, "\n") .. "\n")
    write_file(base .. ".in", o.stdin or "")
    return base
  end

  local function argv(args)
    local quoted = {}
    for i, a in ipairs(args) do quoted[i] = shell_quote(a) end
    return table.concat(quoted, " ")
  end

  local function result(base)
    return {
      code = tonumber((read_file(base .. ".code") or ""):match("%d+")),
      out = read_file(base .. ".out") or "",
      err = read_file(base .. ".err") or "",
    }
  end

  --- Runs the tool to completion: { code, out, err }. o.shell replaces the plain command:
  -- a function(command_without_redirections, base) -> the shell text that runs it and
  -- writes its status to base .. ".code".
  local function run(args, o)
    o = o or {}
    local base = prepare(o)
    local cmd = "exec " .. launcher .. " " .. argv(args)
    local text
    if o.shell then
      text = o.shell(cmd, base)
    else
      text = "(" .. cmd .. " <" .. shell_quote(base .. ".in") .. " >" .. shell_quote(base .. ".out")
        .. " 2>" .. shell_quote(base .. ".err") .. "); echo $? > " .. shell_quote(base .. ".code")
    end
    execute("cd " .. shell_quote(o.cwd or work) .. " && . " .. shell_quote(base .. ".env") .. " && " .. text)
    return result(base)
  end

  local function wait_for(what, seconds, check)
    local deadline = socket.gettime() + seconds
    while socket.gettime() < deadline do
      local v = check()
      if v then return v end
      socket.sleep(0.02)
    end
    error("timed out waiting for " .. what, 2)
  end

  -- The pid in file, once it is a running bin/cptokens (so that only our own child is signalled).
  local function child_pid(file)
    return wait_for("the child's pid", 10, function()
      local pid = tonumber((read_file(file) or ""):match("^(%d+)"))
      if not pid then return nil end
      -- running the interpreter on bin/cptokens (not yet env or setpriv on the way to it)
      local cmdline = read_file("/proc/" .. pid .. "/cmdline") or ""
      local argv0, argv1 = cmdline:match("^([^%z]*)%z([^%z]*)")
      if argv0 == util.LUA and argv1 == bin then return pid end
    end)
  end

  --- Starts the tool in the background: { pid, base }. o.pre is shell text run before it
  -- (e.g. a ulimit), o.stdin_from a command whose output is its standard input.
  local function start(args, o)
    o = o or {}
    local base = prepare(o)
    local q = function(suffix) return shell_quote(base .. suffix) end
    local input = o.stdin_from and (o.stdin_from .. " | ") or ""
    local cmd = (o.pre or "") .. input .. "(exec " .. (o.wrap or "") .. launcher .. " " .. argv(args)
      .. (o.stdin_from and "" or (" <" .. q(".in"))) .. " >" .. q(".out") .. " 2>" .. q(".err") .. ") & "
      .. "echo $! > " .. q(".pid") .. "; wait $!; echo $? > " .. q(".code")
    execute("cd " .. shell_quote(o.cwd or work) .. " && . " .. q(".env") .. " && { " .. cmd
      .. "; } </dev/null >/dev/null 2>&1 &")
    return { pid = child_pid(base .. ".pid"), base = base }
  end

  local function finish(h, seconds)
    wait_for("the child to exit", seconds or 15, function() return read_file(h.base .. ".code") end)
    return result(h.base)
  end

  local function signal(h, name)
    assert(not read_file(h.base .. ".code"), "the child has already exited")
    assert(execute("kill -" .. name .. " " .. h.pid))
  end

  -- Waits until the fake server holds a request for uri (it is then inside its latency fault).
  local function request_arrived(uri, n)
    wait_for("a request to " .. uri, 10, function() return srv:count({ uri = uri }) >= (n or 1) end)
  end

  local function token_named(user, name)
    for _, t in ipairs(srv:tokens(user)) do
      if t.name == name then return t end
    end
  end

  local function one_line(text)
    return text:match("^cptokens: [^\n]+\n$") ~= nil
  end

  -- No secret (nor its base64) in the run's output; on failure every one of them is masked
  -- before the text goes into the test log.
  local function no_secret(r)
    local ok = pcall(H.assert_no_secret, { r.out, r.err }, secrets)
    if ok then return end
    local text = r.out .. "\n" .. r.err
    for _, s in ipairs(secrets) do
      for _, form in ipairs { s, (mime.b64(s)) } do
        local parts, from = {}, 1
        while true do
          local i, j = text:find(form, from, true)
          if not i then break end
          parts[#parts + 1] = text:sub(from, i - 1) .. "<SECRET>"
          from = j + 1
        end
        parts[#parts + 1] = text:sub(from)
        text = table.concat(parts)
      end
    end
    error("a secret leaked into the output: " .. text, 2)
  end

  describe("cptokens.core's process functions, in this process", function()
    local core = require "cptokens.core"

    it("file_mode reports the permission bits and the kind; defer/pending change nothing unguarded", function()
      local f = tmp .. "/mode-0640"
      util.write_private(f, "x")
      assert(execute("chmod 640 " .. shell_quote(f)))
      assert.are.same({ 416, "file" }, { core.file_mode(f) })
      assert.are.equal("directory", select(2, core.file_mode(tmp)))
      assert.are.equal("other", select(2, core.file_mode("/dev/null")))
      local none, msg = core.file_mode(tmp .. "/missing")
      assert.is_nil(none)
      assert.is_truthy(msg:find("No such file", 1, true), msg)
      assert.has_error(function() core.file_mode("a\0b") end)
      -- without guard_signals (a host program's own process), deferring is refused and
      -- nothing is ever pending
      assert.is_false(core.defer_signals(true))
      assert.is_nil(core.pending_signal())
      assert.is_false(core.defer_signals(false))
    end)
  end)

  describe("signals and a closed pipe around create (point 7)", function()
    local STATUS = { INT = 130, TERM = 143, HUP = 129 }

    for _, sig in ipairs { "INT", "TERM", "HUP" } do
      it("SIG" .. sig .. " while create waits for the reply: the token is revoked, exit "
        .. STATUS[sig], function()
        srv:fault("latency", { ms = 1500, func = "create_full_access" })
        local h = start({ "create", "sig" .. sig:lower() })
        request_arrived(CREATE_URI)
        signal(h, sig)
        local r = finish(h)
        no_secret(r)
        assert.are.equal(STATUS[sig], r.code, "exit status; stderr: " .. r.err)
        assert.are.equal("", r.out)
        assert.is_true(one_line(r.err), r.err)
        assert.is_truthy(r.err:find("interrupted by SIG" .. sig, 1, true), r.err)
        assert.is_truthy(r.err:find("the new token sig" .. sig:lower() .. " was revoked", 1, true), r.err)
        assert.is_falsy(r.err:find("internal error", 1, true))
        assert.is_nil(token_named("alice", "sig" .. sig:lower()))
        assert.are.equal(1, srv:count({ uri = "/execute/Tokens/revoke" }))
      end)
    end

    it("with --out, a signal before the token is saved revokes it and leaves the file alone", function()
      local path = tmp .. "/sig-out.json"
      srv:fault("latency", { ms = 1500, func = "create_full_access" })
      local h = start({ "create", "sigout", "--out", path })
      request_arrived(CREATE_URI)
      signal(h, "TERM")
      local r = finish(h)
      no_secret(r)
      assert.are.equal(143, r.code, r.err)
      assert.is_truthy(r.err:find("interrupted by SIGTERM.*sigout was revoked"), r.err)
      assert.is_nil(read_file(path))
      assert.is_nil(token_named("alice", "sigout"))
    end)

    it("with --out, a save that fails after create succeeded revokes the token (exit 1)", function()
      local dir = tmp .. "/save-dir"
      assert(execute("mkdir -p " .. shell_quote(dir)))
      srv:fault("latency", { ms = 1000, func = "create_full_access" })
      local h = start({ "create", "unsaved", "--out", dir .. "/t.json" })
      request_arrived(CREATE_URI)
      -- the directory checked before create is gone when the token arrives
      assert(os.rename(dir, dir .. ".moved"))
      local r = finish(h)
      no_secret(r)
      assert.are.equal(1, r.code, r.err)
      assert.is_true(one_line(r.err), r.err)
      assert.is_truthy(r.err:find("^cptokens: io: cannot save the token to .*the new token unsaved was revoked"), r.err)
      assert.is_nil(token_named("alice", "unsaved"))
      assert.are.same({ "t.json.lock" }, util.list_dir(dir .. ".moved")) -- the lock, no token
    end)

    it("create NAME | true: the write fails (no SIGPIPE death), the token is revoked, exit 1", function()
      srv:fault("latency", { ms = 500, func = "create_full_access" })
      local r = run({ "create", "piped" }, { shell = function(cmd, base)
        return "{ (" .. cmd .. " <" .. shell_quote(base .. ".in") .. " 2>" .. shell_quote(base .. ".err")
          .. "); echo $? > " .. shell_quote(base .. ".code") .. "; } | true"
      end })
      no_secret(r)
      assert.are.equal(1, r.code, "exit status; stderr: " .. r.err)
      assert.is_true(one_line(r.err), r.err)
      assert.is_truthy(r.err:find("^cptokens: io: cannot write the token to standard output: .*the new token piped was revoked"),
        r.err)
      assert.is_nil(token_named("alice", "piped"))
    end)

    it("commands that create nothing still end at once on a signal, and quietly on a closed pipe", function()
      -- Ctrl-C during a list the server does not answer: no waiting for the timeout,
      -- no "internal error: interrupted!", the status of a death by SIGINT
      srv:fault("hang", { seconds = 8 })
      local h = start({ "list", "--timeout", "20" })
      request_arrived("/execute/Tokens/list")
      local t0 = socket.gettime()
      signal(h, "INT")
      local r = finish(h)
      assert.are.equal(130, r.code, r.err)
      assert.are.equal("", r.err)
      assert.is_true(socket.gettime() - t0 < 4, "list ended only when its request did")
      srv:clear_faults()
      -- list | true (the reader is gone before the reply): SIGPIPE, as every filter does
      srv:fault("latency", { ms = 300, func = "list" })
      r = run({ "list" }, { shell = function(cmd, base)
        return "{ (" .. cmd .. " 2>" .. shell_quote(base .. ".err") .. "); echo $? > "
          .. shell_quote(base .. ".code") .. "; } | true"
      end })
      assert.are.equal(141, r.code, r.err)
      assert.are.equal("", r.err)
    end)
  end)

  describe("signals during rotate (point 7)", function()
    it("SIGINT while rotate creates: the rotation finishes and stores its token, then exit 130", function()
      local path = tmp .. "/rot-sig.json"
      local boot = assert(require("cptokens").new { url = srv.url, user = "alice", password = ALICE_PW,
                                                   cafile = srv.cafile })
      assert(boot:rotate { prefix = "deploy", store = path })
      boot:close()
      local old = cjson.decode(read_file(path)).name
      srv:fault("latency", { ms = 1500, func = "create_full_access" })
      local h = start({ "rotate", "deploy", "--out", path })
      request_arrived(CREATE_URI, 2) -- (the first was the run that made the file)
      signal(h, "INT")
      local r = finish(h)
      no_secret(r)
      assert.are.equal(130, r.code, "exit status; stderr: " .. r.err)
      assert.is_truthy(r.err:find("interrupted by SIGINT", 1, true), r.err)
      assert.is_falsy(r.err:find("internal error", 1, true))
      -- the file holds the new token, which the server knows; the old rotation is gone
      local doc = cjson.decode((assert(read_file(path), "the token file was not written")))
      local held = token_named("alice", doc.name)
      assert.is_table(held, "the stored token is not on the server")
      assert.are.equal(held.token, doc.token)
      assert.is_nil(token_named("alice", old))
      assert.is_truthy(r.out:find("created " .. doc.name, 1, true))
      for _, t in ipairs(srv:tokens("alice")) do
        assert.is_true(t.name == "seeded" or t.name == doc.name, "a token nobody holds: " .. t.name)
      end
    end)
  end)

  describe("per-token errors are scrubbed (point 9)", function()
    -- a server whose revoke refusal echoes the credential in every form
    local function echoing_revoke(env)
      local msg
      if env.CPANEL_PASSWORD then
        msg = "cannot revoke for alice:" .. ALICE_PW .. " (Basic " .. mime.b64("alice:" .. ALICE_PW)
          .. "), raw " .. ALICE_PW
      else
        msg = "cannot revoke for alice:" .. SEEDED .. " (cpanel alice:" .. SEEDED .. "), raw " .. SEEDED
      end
      srv:fault("notenvelope", { func = "revoke", times = 1,
        body = cjson.encode({ status = 0, errors = { msg }, data = cjson.null }) })
    end

    for _, cred in ipairs {
      { "a password", { CPANEL_PASSWORD = ALICE_PW } },
      { "a token", { CPANEL_TOKEN = SEEDED } },
    } do
      it("prune and rotate, human and --json, with " .. cred[1], function()
        local expired = "ci-20200101000000"
        for _, json in ipairs { false, true } do
          srv:seed_token("alice", { name = expired, create_time = os.time() - 9 * 86400,
                                    expires_at = os.time() - 86400 })
          echoing_revoke(cred[2])
          local r = run({ "prune", json and "--json" or nil }, { env = cred[2] })
          no_secret(r)
          assert.are.equal(1, r.code)
          assert.is_truthy(r.err:find("prune: revoking " .. expired .. " failed: cannot revoke for ", 1, true),
            "the error is reported")
          if json then
            local doc = cjson.decode(r.out)
            assert.are.equal(expired, doc.errors[1].name)
            -- (the library itself scrubs the request's own credential: <redacted>)
            assert.is_truthy(doc.errors[1].message:find("cannot revoke for <redacted>", 1, true),
              doc.errors[1].message)
          end
          srv:clear_faults()
          assert.is_table(token_named("alice", expired))
          assert.are.equal(0, run({ "revoke", expired }, { env = cred[2] }).code)

          -- a first rotation makes the file; the second fails to revoke the token it held
          local rot = tmp .. "/scrub-rot.json"
          os.remove(rot)
          assert.are.equal(0, run({ "rotate", "deploy", "--out", rot }, { env = cred[2] }).code)
          local old = cjson.decode(read_file(rot)).name
          echoing_revoke(cred[2])
          r = run({ "rotate", "deploy", "--out", rot, json and "--json" or nil }, { env = cred[2] })
          no_secret(r)
          assert.are.equal(1, r.code)
          assert.is_truthy(r.err:find("rotate: revoking " .. old .. " failed: cannot revoke for ", 1, true),
            "the error is reported")
          if json then
            local doc = cjson.decode(r.out)
            assert.are.equal(old, doc.errors[1].name)
            assert.is_truthy(doc.errors[1].message:find("<redacted>", 1, true))
          end
          -- clean up: this run's rotation and the old one
          srv:clear_faults()
          for _, t in ipairs(srv:tokens("alice")) do
            if t.name:match("^deploy%-") then run({ "revoke", t.name }) end
          end
        end
      end)
    end

    it("one scrubber for all output: every form of each secret the tool holds, create's own token apart", function()
      local cli = require "cptokens.cli"
      local scrub = cli._scrubber({ "alice", "root" })
      scrub.add(ALICE_PW)
      scrub.add("NEWTOKEN0000000000000000000000XY") -- as a token created during the run
      scrub.add("424242")                             -- a short one: only as a whole word
      local text = scrub.text("a alice:" .. ALICE_PW .. " b " .. mime.b64("alice:" .. ALICE_PW) .. " c "
        .. mime.b64("root:" .. ALICE_PW) .. " d NEWTOKEN0000000000000000000000XY e 424242 f 17424242001")
      H.assert_no_secret(text, { ALICE_PW, "NEWTOKEN0000000000000000000000XY", mime.b64("alice:" .. ALICE_PW) })
      assert.are.equal("a alice:<secret> b <secret> c <secret> d <secret> e <secret> f 17424242001", text)
    end)
  end)

  describe("names from the server are escaped in human output (point 10)", function()
    local NASTY = {
      "title\27]0;owned\7",     -- sets the terminal's title
      "clear\27[2J\27[H",       -- clears the screen
      "fake\nseeded  1970-01-01T00:00:00Z  never  never expires", -- a fake table row
      "csi\194\155" .. "31m",   -- U+009B, the one-character CSI
      "raw\155bytes\r\127",     -- a lone C1 byte, a carriage return, DEL
    }

    local function seed_nasty()
      for i, name in ipairs(NASTY) do
        srv:seed_token("alice", { name = name, create_time = os.time() - 100 + i, expires_at = os.time() - 10 })
      end
    end

    local function printable(text, rows)
      assert.is_falsy(text:find("[%z\1-\9\11-\31\127]"), "a control character reached the terminal")
      assert.is_falsy(text:find("\194[\128-\159]"), "a C1 control reached the terminal")
      assert.is_falsy(text:find("\155", 1, true), "a raw C1 byte reached the terminal")
      local lines = 0
      for _ in text:gmatch("[^\n]*\n") do lines = lines + 1 end
      assert.are.equal(rows, lines, "one line per token")
    end

    it("in list and audit (JSON keeps the names exactly)", function()
      seed_nasty()
      local r = run({ "list" })
      assert.are.equal(0, r.code, r.err)
      printable(r.out, 1 + 1 + #NASTY) -- the header, "seeded", the nasty ones
      assert.is_truthy(r.out:find("title\\x1b]0;owned\\x07", 1, true), r.out)
      assert.is_truthy(r.out:find("fake\\x0aseeded", 1, true), r.out)
      r = run({ "audit" })
      assert.are.equal(3, r.code, r.err)
      printable(r.out, 1 + 1 + #NASTY + 1) -- and the summary line
      r = run({ "list", "--json" })
      assert.are.equal(0, r.code, r.err)
      local names = {}
      for _, t in ipairs(cjson.decode(r.out).tokens) do names[t.name] = true end
      for _, n in ipairs(NASTY) do assert.is_true(names[n], "JSON lost a name") end
    end)

    it("in prune's and a failing command's lines", function()
      seed_nasty()
      -- (the library refuses to revoke names that are not token names: one error line each)
      local r = run({ "prune" })
      assert.are.equal(1, r.code, r.err)
      printable(r.out, 1)
      printable(r.err, #NASTY)
      assert.is_truthy(r.err:find("prune: revoking title\\x1b]0;owned\\x07 failed", 1, true), r.err)
      -- a server message with escapes, on stderr (the library already blanks them; UTF-8 stays)
      srv:fault("notenvelope", { func = "list", body = cjson.encode({ status = 0, data = cjson.null,
        errors = { "bad\27[2J news\7 “quoted”" } }) })
      r = run({ "list" })
      assert.are.equal(1, r.code)
      printable(r.err, 1)
      assert.is_truthy(r.err:find("news", 1, true), r.err)
      assert.is_truthy(r.err:find("“quoted”", 1, true), "printable UTF-8 stays: " .. r.err)
    end)
  end)

  describe("files, core dumps and argv (point 11)", function()
    it("warns when a secret file can be read by group or others, and still works", function()
      local tf = tmp .. "/loose-token"
      util.write_private(tf, SEEDED .. "\n")
      local r = run({ "list", "--token-file", tf }, { env = {} })
      assert.are.equal(0, r.code, r.err)
      assert.are.equal("", r.err)
      local WHO = { ["644"] = "its group and others", ["640"] = "its group", ["604"] = "others" }
      for _, mode in ipairs { "644", "640", "604" } do
        assert(execute("chmod " .. mode .. " " .. shell_quote(tf)))
        r = run({ "list", "--token-file", tf }, { env = {} })
        no_secret(r)
        assert.are.equal(0, r.code, r.err)
        assert.is_true(one_line(r.err), r.err)
        assert.is_truthy(r.err:find("^cptokens: warning: %-%-token%-file " .. tf:gsub("%p", "%%%0")
          .. " can be read by " .. WHO[mode] .. " %(mode 0" .. mode .. "%)"), r.err)
        assert.is_truthy(r.err:find("chmod 600", 1, true), r.err)
      end
      local pf, of = tmp .. "/loose-pw", tmp .. "/loose-otp"
      util.write_private(pf, BOB_PW)
      util.write_private(of, BOB_OTP)
      assert(execute("chmod 640 " .. shell_quote(pf) .. " " .. shell_quote(of)))
      r = run({ "list", "--user", "bob", "--password-file", pf, "--otp-file", of }, { env = {} })
      no_secret(r)
      assert.are.equal(0, r.code, r.err)
      assert.is_truthy(r.err:find("%-%-password%-file [^\n]* can be read by its group"), r.err)
      assert.is_truthy(r.err:find("%-%-otp%-file [^\n]* can be read by its group"), r.err)
    end)

    -- the tool blocked reading its password from standard input (a pipe from sleep)
    -- (the kernel's wait channel says when it is there: everything before it is done)
    local function blocked(o)
      o.stdin_from = "sleep 4"
      local h = start({ "list", "--password-file", "-" }, o)
      wait_for("the tool to block on its standard input", 10, function()
        return (read_file("/proc/" .. h.pid .. "/wchan") or ""):find("pipe_read", 1, true)
      end)
      return h
    end

    it("makes no core dump: RLIMIT_CORE 0 and not dumpable", function()
      local h = blocked({ env = {}, pre = "ulimit -S -c unlimited 2>/dev/null; " })
      local limits = read_file("/proc/" .. h.pid .. "/limits") or ""
      local soft, hard = limits:match("Max core file size%s+(%S+)%s+(%S+)")
      assert.are.equal("0", soft, limits)
      assert.are.equal("0", hard, limits)
      local r = finish(h)
      assert.are.equal(2, r.code, r.err) -- then standard input ends: the secret is empty

      -- dumpable: /proc/PID of a non-dumpable process belongs to root, whoever runs it
      local nobody = util.capture("id -u nobody 2>/dev/null"):match("%d+")
      if nobody and nobody ~= "0" and execute("command -v setpriv >/dev/null") then
        h = blocked({ env = {}, cwd = "/",
          wrap = "setpriv --reuid=" .. nobody .. " --regid=" .. nobody .. " --clear-groups " })
        local owner = util.capture("stat -c %u /proc/" .. h.pid .. "/status"):match("%d+")
        assert.are.equal("0", owner, "the process is dumpable (its /proc entry belongs to its user)")
        finish(h)
      else
        pending("no user nobody or no setpriv: PR_SET_DUMPABLE not observed")
      end

      -- and for real: SIGQUIT (which dumps core by default) leaves no core behind
      local dir = tmp .. "/cores"
      assert(execute("mkdir -p " .. shell_quote(dir .. "/control")))
      execute("cd " .. shell_quote(dir .. "/control") .. " && sh -c 'ulimit -S -c unlimited; kill -QUIT $$' 2>/dev/null")
      if #util.list_dir(dir .. "/control") == 0 then
        pending("this machine writes no core files into the working directory: no control")
        return
      end
      h = blocked({ env = {}, cwd = dir, pre = "ulimit -S -c unlimited 2>/dev/null; " })
      signal(h, "QUIT")
      r = finish(h)
      assert.are.equal(131, r.code, r.err)
      assert.are.same({ "control" }, util.list_dir(dir))
    end)

    it("never echoes what follows = in an argument it refuses", function()
      local cases = {
        { { "--", "--token=" .. ARGV_SECRET }, "unknown command '%-%-token=%.%.%.'" },
        { { "help", "--", "--password=" .. ARGV_SECRET }, "unknown command '%-%-password=%.%.%.'" },
        { { "x=" .. ARGV_SECRET }, "unknown command 'x=%.%.%.'" },
        { { "create", "--", "--token=" .. ARGV_SECRET }, "create: NAME '%-%-token=%.%.%.'" },
        { { "revoke", "a", "--", "b=" .. ARGV_SECRET }, "revoke: NAME 'b=%.%.%.'" },
        { { "rename", "a", "--", "--secret=" .. ARGV_SECRET }, "rename: NEW '%-%-secret=%.%.%.'" },
        { { "rotate", "--out", tmp .. "/argv.json", "--", "p=" .. ARGV_SECRET }, "rotate: PREFIX 'p=%.%.%.'" },
        { { "list", "--tokne=" .. ARGV_SECRET }, "unknown option %-%-tokne " },
      }
      for _, c in ipairs(cases) do
        local r = run(c[1])
        no_secret(r)
        assert.are.equal(2, r.code, r.err)
        assert.is_true(one_line(r.err), r.err)
        assert.is_truthy(r.err:find(c[2]), r.err)
      end
      assert.are.equal(0, srv:count({ port = "cpanel" }))
    end)
  end)
end)
