-- make sandbox, as a newcomer uses it: start it, paste the lines it prints into a shell, try the
-- CLI, stop it with a signal. Tagged novalgrind: it runs make and shells.
local util = require "spec.support.util"

local q = util.shell_quote

describe("make sandbox #novalgrind", function()
  local tmp
  setup(function() tmp = util.tmpdir("sandbox") end)
  teardown(function() util.rmdir(tmp) end)

  -- README's set-up block, as written: `make demo` here (`make test`, the other line, is what
  -- runs this suite: CI runs it as written).
  it("README's make demo runs the whole life cycle and leaves no token behind", function()
    local readme = assert(util.read_file("README.md"))
    local block = assert(readme:match("```sh\n(make demo[^\n]*\nmake test[^\n]*\n)```"), "README's set-up block")
    local line = assert(block:match("^(make demo)%s"))
    local res = util.capture("env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL " .. line .. " 2>&1 </dev/null; echo rc=$?")
    assert.truthy(res:find("rc=0\n$"), res)
    for _, step in ipairs { "1. ", "2. ", "3. Rename it", "4. Revoke it", "5. The revoked token no longer authenticates" } do
      assert.truthy(res:find("\n" .. step, 1, true), step .. " is missing: " .. res)
    end
    assert.truthy(res:find("Done: the sandbox holds 0 tokens for alice.", 1, true), res)
  end)

  it("prints export lines that work with the CLI, and stops on SIGTERM leaving nothing behind", function()
    local out = tmp .. "/sandbox.out"
    -- its own session: the signal goes to make, the interpreter and nginx, all started here
    local pid = util.capture("setsid make -s sandbox >" .. q(out) .. " 2>&1 </dev/null & echo $!")
      :match("%d+")
    local text = ""
    for _ = 1, 150 do
      text = util.read_file(out) or ""
      if text:find("# sandbox ready", 1, true) or text:find("failed") then break end
      os.execute("sleep 0.2")
    end
    local ok, err = pcall(function()
      assert.truthy(text:find("# sandbox ready", 1, true), "not ready: " .. text)
      local lines = {}
      for line in text:gmatch("[^\n]+") do
        if line:find("^export ") then lines[#lines + 1] = line end
        local try = line:match("^#   (cptokens .*)$")
        if try then lines[#lines + 1] = try end
      end
      assert.are.equal(7, #lines, text)
      assert.truthy(not text:find("Pa55word", 1, true), "no secret is printed")
      util.write_file(tmp .. "/try.sh", table.concat(lines, "\n") .. "\n")
      util.execute("mkdir -p " .. q(tmp .. "/home"))
      local res = util.capture("env -i PATH=/usr/bin:/bin HOME=" .. q(tmp .. "/home") .. " sh -e "
        .. q(tmp .. "/try.sh") .. " 2>&1; echo rc=$?")
      assert.truthy(res:find("rc=0\n$"), res)
      assert.truthy(res:find("created deploy%-%d+"), res)
      assert.truthy(res:find("1 never expire", 1, true), res)
    end)
    local dir = text:match("CPANEL_CAFILE='([^']+)/ca%.pem'")
    util.execute("kill -s TERM -- -" .. pid)
    for _ = 1, 50 do
      if (util.read_file(out) or ""):find("sandbox stopped", 1, true) then break end
      os.execute("sleep 0.2")
    end
    assert(ok, err)
    assert.truthy((util.read_file(out) or ""):find("# sandbox stopped (SIGTERM)", 1, true), "not stopped: " .. util.tail(out, 3))
    assert.truthy(dir, "the sandbox folder was printed")
    assert.is_false(util.execute("test -e " .. q(dir)), "the sandbox folder is removed")
  end)
end)
