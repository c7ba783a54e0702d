--[[
An nginx of its own for a test or bench server: a prefix directory holding its
nginx.conf, started as a daemon and waited for until every port accepts connections,
then stopped with its workers. Used by spec/support/server.lua (the fake cPanel server),
spec/support/openresty/runner.lua (the OpenResty test nginx) and bench/server.lua.

  local nginx = require "spec.support.nginx"
  nginx.make_certs(dir, opts)      -- a test CA (dir/ca.pem) and a certificate it signed for
                                   -- localhost and 127.0.0.1 (dir/server.pem, dir/server.key)
  nginx.openssl(dir, cmds, opts)   -- more openssl commands, logged to dir/openssl.log
  nginx.render(template, vars)     -> the template with every @NAME@ replaced by vars.NAME
  nginx.user_directive()           -> "user root;" when running as root, else ""
  local pid = nginx.start(dir, ports, opts)  -- /usr/sbin/nginx -p dir/ -c dir/nginx.conf
  nginx.workers(pid, opts)         -> the pids of the master's children
  nginx.stop(dir, pid, opts)       -- TERM, then waits for master and workers (KILL after the timeout)

opts (all optional): name, what error messages start with (default "nginx"); timeout in
seconds (default 5); env, put before the nginx, pgrep and kill commands (e.g. "env -u LD_PRELOAD ").
make_certs takes opts.name, opts.ca_name (the CA's CN), opts.cn (the certificate's
subject CN) and opts.days. Errors carry the tail of the relevant log.

Works under Lua 5.1 to 5.4 and LuaJIT; needs luasocket, openssl and /usr/sbin/nginx.
]]
local socket = require "socket"
local util = require "spec.support.util"

local NGINX = "/usr/sbin/nginx"
local TIMEOUT = 5

local nginx = {}

local CA_CONF = [[
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = @CA_NAME@
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
]]

local SERVER_EXT = [[
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
]]

--- EC P-256 keys (fast to generate). Leaves dir/ca.cnf, ca.key, server.csr and server.ext
-- for further certificates from the same CA; openssl's output goes to dir/openssl.log.
function nginx.make_certs(dir, opts)
  opts = opts or {}
  util.write_file(dir .. "/ca.cnf", (CA_CONF:gsub("@CA_NAME@", opts.ca_name or "cptokens test CA")))
  util.write_file(dir .. "/server.ext", SERVER_EXT)
  local d = util.shell_quote(dir)
  local days = tostring(opts.days or 7)
  nginx.openssl(dir, {
    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " .. d .. "/ca.key",
    "openssl req -new -x509 -config " .. d .. "/ca.cnf -key " .. d .. "/ca.key -days " .. days .. " -out "
      .. d .. "/ca.pem",
    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " .. d .. "/server.key",
    "openssl req -new -config " .. d .. "/ca.cnf -subj /CN=" .. (opts.cn or "localhost") .. " -key " .. d
      .. "/server.key -out " .. d .. "/server.csr",
    "openssl x509 -req -in " .. d .. "/server.csr -CA " .. d .. "/ca.pem -CAkey " .. d .. "/ca.key"
      .. " -CAcreateserial -CAserial " .. d .. "/ca.srl -days " .. days .. " -extfile " .. d .. "/server.ext -out "
      .. d .. "/server.pem",
  }, opts)
end

--- Runs openssl commands in turn, their output appended to dir/openssl.log; raises on the first failure.
function nginx.openssl(dir, cmds, opts)
  local log = " >>" .. util.shell_quote(dir) .. "/openssl.log 2>&1"
  for _, cmd in ipairs(cmds) do
    if not util.execute(cmd .. log) then
      error(((opts or {}).name or "nginx") .. ": certificate generation failed: " .. cmd .. "\n"
        .. util.tail(dir .. "/openssl.log", 20))
    end
  end
end

function nginx.render(template, vars)
  return (template:gsub("@([%u_]+)@", function(name)
    return tostring(assert(vars[name], "nginx config: unknown placeholder @" .. name .. "@"))
  end))
end

--- As root, workers would run as nobody and could not use the server's private temp dir.
function nginx.user_directive()
  return util.capture("id -u"):match("^0%s") and "user root;" or ""
end

local function alive(pid)
  local stat = util.read_file("/proc/" .. pid .. "/stat")
  return stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
end

local function can_connect(port)
  local c = socket.tcp()
  c:settimeout(0.2)
  local ok = c:connect("127.0.0.1", port)
  c:close()
  return ok ~= nil
end

--- Starts nginx on dir/nginx.conf (error log dir/error.log, its own output dir/nginx.out)
-- and returns the master's pid once every port in ports accepts a connection. Raises
-- (with the tails of nginx.out and error.log) when it fails to start, exits, or times out;
-- nginx.stop(dir) then still finds it through dir/nginx.pid.
function nginx.start(dir, ports, opts)
  opts = opts or {}
  local env, timeout = opts.env or "", opts.timeout or TIMEOUT
  local function fail(why)
    error((opts.name or "nginx") .. ": " .. why .. "\n" .. util.tail(dir .. "/nginx.out", 10) .. "\n"
      .. util.tail(dir .. "/error.log", 20), 0)
  end
  local d = util.shell_quote(dir)
  if not util.execute(env .. NGINX .. " -p " .. d .. "/ -c " .. d .. "/nginx.conf -e " .. d .. "/error.log >"
      .. d .. "/nginx.out 2>&1") then
    fail("nginx failed to start")
  end
  local deadline = socket.gettime() + timeout
  local pending, pid = {}, nil
  for i, port in ipairs(ports) do pending[i] = port end
  while true do
    pid = pid or tonumber(util.read_file(dir .. "/nginx.pid") or "")
    while pending[1] and pid and can_connect(pending[1]) do table.remove(pending, 1) end
    if pid and not pending[1] then return pid end
    if pid and not alive(pid) then fail("nginx exited during startup") end
    if socket.gettime() > deadline then
      fail("nginx did not accept connections within " .. timeout .. " s")
    end
    socket.sleep(0.05)
  end
end

function nginx.workers(pid, opts)
  local pids = {}
  for child in util.capture(((opts or {}).env or "") .. "pgrep -P " .. pid):gmatch("%d+") do
    pids[#pids + 1] = tonumber(child)
  end
  return pids
end

--- Stops the nginx running from dir (pid, or the one in dir/nginx.pid) and waits for its
-- processes to exit; any still there after the timeout is killed. Nothing running: no-op.
function nginx.stop(dir, pid, opts)
  opts = opts or {}
  local env, timeout = opts.env or "", opts.timeout or TIMEOUT
  pid = pid or tonumber(util.read_file(dir .. "/nginx.pid") or "")
  if not (pid and alive(pid)) then return end
  local pids = { pid }
  for _, child in ipairs(nginx.workers(pid, opts)) do pids[#pids + 1] = child end
  util.execute(env .. "kill -TERM " .. pid .. " 2>/dev/null")
  local deadline = socket.gettime() + timeout
  local i = 1
  while pids[i] do
    if not alive(pids[i]) then
      i = i + 1
    elseif socket.gettime() > deadline then
      util.execute(env .. "kill -KILL " .. pids[i] .. " 2>/dev/null")
      socket.sleep(0.05)
      i = i + 1
    else
      socket.sleep(0.02)
    end
  end
end

return nginx
