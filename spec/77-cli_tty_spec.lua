-- A password typed at a terminal (`--password-file -` on a terminal): prompted on stderr, read
-- with the echo off, and the echo back afterwards, also when a signal ends the tool while it
-- waits. Real pseudo-terminals through util-linux `script`. Tagged novalgrind (shells and ptys).
local server = require "spec.support.server"
local util = require "spec.support.util"

local q = util.shell_quote

describe("cptokens on a terminal #novalgrind", function()
  local srv, tmp, seq = nil, nil, 0
  setup(function()
    srv = server.start()
    tmp = util.tmpdir("tty")
  end)
  teardown(function()
    if srv then srv:stop() end
    util.rmdir(tmp)
  end)

  local function wait_for(path, pattern, seconds)
    local text = ""
    for _ = 1, seconds * 10 do
      text = util.read_file(path) or ""
      if text:find(pattern) then return text end
      os.execute("sleep 0.1")
    end
    error("timed out waiting for " .. pattern .. " in: " .. text)
  end

  -- Runs inner (a shell command) on a pseudo-terminal; returns the typescript's path and the
  -- writer of what is typed.
  local function on_tty(inner)
    seq = seq + 1
    local base = tmp .. "/t" .. seq
    local build = os.getenv("CPTOKENS_BUILD") or "build/5.4"
    local cwd = util.capture("pwd"):gsub("%s+$", "")
    local env = table.concat({
      "export CPANEL_URL=" .. q(srv.url), "export CPANEL_USER=alice", "export CPANEL_CAFILE=" .. q(srv.cafile),
      "export LUA_PATH=" .. q(cwd .. "/lua/?.lua;" .. cwd .. "/lua/?/init.lua;;"),
      "export LUA_CPATH=" .. q(cwd .. "/" .. build .. "/?.so;;"),
      -- the interpreter the suite runs (under ASan, its instrumented one) runs the tool
      "export CPT_LUA=" .. q(util.LUA) .. " CPT_BIN=" .. q(cwd .. "/bin/cptokens"),
      "cptokens() { \"$CPT_LUA\" \"$CPT_BIN\" \"$@\"; }",
      "unset CPANEL_TOKEN CPANEL_PASSWORD WHM_TOKEN" }, "\n") .. "\n"
    util.write_file(base .. ".env", env)
    assert(util.execute("mkfifo " .. q(base .. ".in")))
    local line = ". " .. q(base .. ".env") .. "; " .. inner
    assert(util.execute("script -qfec " .. q(line) .. " " .. q(base .. ".ts") .. " <" .. q(base .. ".in")
      .. " >/dev/null 2>&1 &"))
    local w = assert(io.open(base .. ".in", "w"))
    return base .. ".ts", w
  end

  it("prompts, reads the password without echo, and authenticates", function()
    local pw = srv.accounts.alice.password
    local ts, w = on_tty("cptokens rotate tty --password-file - --out " .. q(tmp .. "/tty.json")
      .. "; echo rc=$?")
    wait_for(ts, "Password: ", 20)
    w:write(pw, "\n")
    w:flush()
    local text = wait_for(ts, "rc=%d+", 30)
    w:close()
    assert.truthy(text:find("rc=0", 1, true), text)
    assert.truthy(text:find("created tty%-%d+"), text)
    assert.falsy(text:find(pw, 1, true), "the password was echoed: " .. text)
  end)

  it("a password on a pipe is read as before: no prompt", function()
    local pw = srv.accounts.alice.password
    local ts, w = on_tty("printf '%s\\n' " .. q(pw) .. " | cptokens list --password-file -; echo rc=$?")
    local text = wait_for(ts, "rc=%d+", 30)
    w:close()
    assert.truthy(text:find("rc=0", 1, true), text)
    assert.falsy(text:find("Password: ", 1, true), text)
  end)

  it("a signal while it waits for the password ends it with the echo back on", function()
    local ts, w = on_tty("sh -c 'echo pid=$$; exec \"$CPT_LUA\" \"$CPT_BIN\" list --password-file -'; echo rc=$?;"
      .. " stty -a | tr ' ' '\\n' | grep -x -e echo -e -echo | sed 's/^/tty:/'")
    local text = wait_for(ts, "Password: ", 20)
    local pid = assert(text:match("pid=(%d+)"))
    assert(util.execute("kill -s TERM " .. pid))
    text = wait_for(ts, "\ntty:%-?echo", 20)
    w:close()
    assert.truthy(text:find("rc=143", 1, true), text)
    assert.truthy(text:find("\ntty:echo"), "the echo stayed off: " .. text)
  end)

  it("create printing the token to a terminal says it is shown this once; to a pipe it does not", function()
    local pwfile = tmp .. "/pw"
    util.write_private(pwfile, srv.accounts.alice.password .. "\n")
    local ts, w = on_tty("cptokens create shown-once --password-file " .. q(pwfile) .. "; echo rc=$?;"
      .. " cptokens create piped --password-file " .. q(pwfile) .. " 2>&1 | sed 's/^/piped:/'; echo rc2=$?")
    local text = wait_for(ts, "rc2=%d+", 30)
    w:close()
    assert.truthy(text:find("rc=0", 1, true), text)
    local note = "the token is shown this once"
    local first, second = text:match("^(.-)rc=0(.*)$")
    assert.truthy(first:find(note, 1, true), "the note on a terminal: " .. text)
    assert.falsy(second:find(note, 1, true), "no note when standard output is a pipe: " .. text)
    assert.truthy(second:find("piped:[0-9A-Z]+"), text)
  end)
end)
