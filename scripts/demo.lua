--- make demo: the whole token life cycle against a local sandbox cPanel server.
-- Starts the fake server (real HTTPS, its own CA), bootstraps a token with the
-- account password, uses that token to list, rename and revoke, then stops.
local build = os.getenv("CPTOKENS_BUILD") or "build/5.4"
package.cpath = build .. "/?.so;" .. package.cpath
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path

local cptokens = require "cptokens"
local server = require "spec.support.server"
local util = require "spec.support.util"
local time = cptokens.time

local q = util.shell_quote
-- The interpreter running this demo runs the tool too.
local LUA = arg and arg[-1] or "lua5.4"

local function say(fmt, ...) io.write(fmt:format(...), "\n") end

local function show(list, now)
  if #list == 0 then
    say("    (no tokens)")
    return
  end
  say("    %-20s %-22s %-22s %s", "NAME", "CREATED", "EXPIRES", "STATE")
  for _, t in ipairs(list) do
    local left = time.remaining(t, now)
    local state = left == nil and "never expires"
      or (time.is_expired(t, now) and "expired" or "expires in " .. time.format_remaining(left))
    say("    %-20s %-22s %-22s %s", t.name, time.iso8601(t.create_time),
        t.expires_at and time.iso8601(t.expires_at) or "never", state)
  end
end

local function check(v, err)
  if v == nil then error(tostring(err), 0) end
  return v
end

local srv = server.start()
local ok, failure = pcall(function()
  local user = "alice"
  say("cptokens %s demo, against a sandbox cPanel server at %s", cptokens._VERSION, srv.url)
  say("  (real HTTPS; the certificate is verified against the sandbox's own CA %s)\n", srv.cafile)

  say("1. Log in with the account password and create a token that expires in 24 hours")
  local boot = check(cptokens.new { url = srv.url, user = user,
                                    password = srv.accounts.alice.password, cafile = srv.cafile })
  local tok = check(boot:create("demo-deploy", { expires_in = "24h" }))
  boot:close()
  say("    created %q at %s, expires %s", tok.name, time.iso8601(tok.create_time),
      time.iso8601(tok.expires_at))
  say("    token: %s", tok.token)
  say("    ^ shown this once: cPanel keeps only a hash of it. Store it like a password.\n")

  say("2. From now on, authenticate with that token: list the account's tokens")
  local c = check(cptokens.new { url = srv.url, user = user, token = tok.token,
                                 cafile = srv.cafile })
  say("    client: %s", tostring(c))
  show(check(c:list()), os.time())

  say("\n   The same from the shell, with the command-line tool (the token from a 0600 file:")
  say("   a secret never goes on a command line, where every user sees it in ps):")
  local tokfile = srv.dir .. "/demo.token"
  util.write_private(tokfile, tok.token .. "\n")
  local cmd = table.concat({ "LUA_PATH=" .. q("lua/?.lua;lua/?/init.lua;;"),
    "LUA_CPATH=" .. q(build .. "/?.so;;"), q(LUA), "bin/cptokens", "list", "--url", q(srv.url),
    "--user", user, "--cafile", q(srv.cafile), "--token-file", q(tokfile) }, " ")
  say("    $ cptokens list --url %s --user %s --cafile CA --token-file FILE", srv.url, user)
  local p = assert(io.popen(cmd .. " 2>&1"))
  for line in p:lines() do say("    %s", line) end
  check(p:close() and true or nil, "cptokens list failed")

  say("\n3. Rename it (the secret stays the same)")
  check(c:rename("demo-deploy", "demo-deploy-old"))
  show(check(c:list()), os.time())

  say("\n4. Revoke it (a token may revoke itself)")
  local done, existed = c:revoke("demo-deploy-old")
  check(done, existed)
  say("    revoked: %s", existed and "yes" or "no such token")

  say("\n5. The revoked token no longer authenticates; errors are data:")
  local list, err = c:list()
  assert(list == nil)
  say("    err.kind = %q, err.status = %s", err.kind, tostring(err.status))
  say("    %s", tostring(err))
  c:close()

  say("\nDone: the sandbox holds %d tokens for %s.", #srv:tokens(user), user)
end)
srv:stop()
if not ok then
  io.stderr:write("demo failed: ", tostring(failure), "\n")
  os.exit(1)
end
