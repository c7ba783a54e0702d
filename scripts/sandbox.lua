--- make sandbox: the sandbox cPanel server in the foreground, for trying the CLI by hand.
-- Starts the fake server (real HTTPS on 127.0.0.1, its own CA made on the spot), writes the demo
-- accounts' secrets into 0600 files in its folder, prints the `export` lines that point the CLI
-- at it, and runs until Ctrl-C (or SIGTERM, SIGHUP), then stops it and removes the folder.
local build = os.getenv("CPTOKENS_BUILD") or "build/5.4"
package.cpath = build .. "/?.so;" .. package.cpath
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path

local core = require "cptokens.core"
local socket = require "socket"
local server = require "spec.support.server"
local util = require "spec.support.util"

local q = util.shell_quote
local function say(fmt, ...) io.stdout:write(fmt:format(...), "\n") end

core.guard_signals()
core.defer_signals(true) -- from here a signal is only recorded: the loop below stops the server
local srv = server.start()
local ok, failure = pcall(function()
  local dir, a = srv.dir, srv.accounts
  local function f(name) return q(dir .. "/" .. name) end
  local files = { alice = dir .. "/alice.password", bob = dir .. "/bob.password",
                  bob_otp = dir .. "/bob.otp", root = dir .. "/root.whm-token" }
  util.write_private(files.alice, a.alice.password .. "\n")
  util.write_private(files.bob, a.bob.password .. "\n")
  util.write_private(files.bob_otp, a.bob.otp .. "\n")
  util.write_private(files.root, a.root.token .. "\n")
  local root = util.capture("pwd"):gsub("%s+$", "")
  -- bin/cptokens names lua5.4; the sandbox's own launcher runs the Lua this build is for
  -- (make sandbox LUA_VERSION=5.1 builds build/5.1, which lua5.4 cannot load)
  local lua = os.getenv("CPTOKENS_LUA") or arg[-1] or "lua5.4"
  util.execute("mkdir -p " .. q(dir .. "/bin"))
  util.write_file(dir .. "/bin/cptokens", ("#!/bin/sh\nexec %s %s \"$@\"\n")
    :format(q(lua), q(root .. "/bin/cptokens")))
  util.execute("chmod 0755 " .. q(dir .. "/bin/cptokens"))
  say("# cptokens sandbox: a fake cPanel server on 127.0.0.1 (real HTTPS, its own CA).")
  say("# In another shell, paste these lines (Ctrl-C here stops the sandbox):")
  say("export CPANEL_URL=%s CPANEL_USER=alice", srv.url)
  say("export CPANEL_CAFILE=%s", q(srv.cafile))
  say("export LUA_PATH=%s LUA_CPATH=%s", q(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;"),
      q(root .. "/" .. build .. "/?.so;;"))
  say("export PATH=%s:\"$PATH\"", q(dir .. "/bin"))
  say("# Accounts (the secrets are in 0600 files; never on the command line):")
  say("#   alice  password: --password-file %s", f("alice.password"))
  say("#   bob    password + two-factor: --password-file %s --otp-file %s", f("bob.password"),
      f("bob.otp"))
  say("#   carol  suspended; dave  a password full of special characters")
  say("#   WHM (root, acting for any account): CPANEL_URL=%s --whm-token-file %s", srv.whm_url,
      f("root.whm-token"))
  say("# Try:")
  say("#   cptokens rotate deploy --password-file %s --out ~/sandbox-deploy.json", f("alice.password"))
  say("#   cptokens list --token-file ~/sandbox-deploy.json")
  say("#   cptokens audit --within 60d --token-file ~/sandbox-deploy.json")
  say("# sandbox ready")
  io.stdout:flush()
  while not core.pending_signal() do socket.sleep(0.2) end
end)
srv:stop()
if not ok then
  io.stderr:write("sandbox failed: ", tostring(failure), "\n")
  os.exit(1)
end
say("# sandbox stopped (%s)", select(2, core.pending_signal()))
