--[[
The benchmark's own fast HTTPS server: nginx with fixed replies, so the server
is not what is measured.

  local server = require "bench.server"
  local srv = server.start()  -- temp dir, a test CA and certificate, nginx on a free port
  srv.url        -- /execute/Tokens/list: a static 10-token list (nginx `return`, no Lua)
  srv.big_url    -- <url>/big: the same path answers a 10,000-token list (a file)
  srv.slow_url   -- <url>/slow: the 10-token list after a 50 ms non-blocking delay (echo_sleep)
  srv.cafile, srv.dir, srv.small_body, srv.big_body (the bodies' file paths)
  srv.slow_log   -- one line per /slow reply: "<end epoch, ms> <seconds taken>"
  srv:stop()

server.start{ cpu = 1 } pins the nginx worker to that CPU (worker_cpu_affinity).

None of the replies checks credentials: the bench token is a dummy value.
Runs under Lua 5.4 (and 5.1+); needs luasocket, openssl, /usr/sbin/nginx
(nginx-light) and its echo module (libnginx-mod-http-echo).
]]
local socket = require "socket"

local NGINX = "/usr/sbin/nginx"
local ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"

local server = {}

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function execute(cmd)
  local a, _, code = os.execute(cmd)
  if type(a) == "number" then return a == 0 end
  return a == true and (code == nil or code == 0)
end

local function capture(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  return out
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  assert(f:write(text))
  f:close()
end

--- A Tokens::list reply as cPanel sends it (the fake server's layout): `count`
-- tokens, every other one expiring, in the envelope.
function server.list_body(count)
  local items = {}
  for i = 1, count do
    local exp = (i % 2 == 0) and "null" or ('"' .. (1900000000 + i) .. '"')
    items[i] = ('{"name":"bench_%06d","create_time":%d,"expires_at":%s,"has_full_access":1,'
      .. '"features":[],"whitelist_ips":null}'):format(i, 1700000000 + i, exp)
  end
  return '{"data":[' .. table.concat(items, ",") .. '],"errors":null,"messages":null,'
    .. '"warnings":null,"metadata":{},"status":1}'
end

local CA_CONF = [[
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = cptokens bench CA
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

local function make_certs(dir)
  write_file(dir .. "/ca.cnf", CA_CONF)
  write_file(dir .. "/server.ext", SERVER_EXT)
  local d = sh_quote(dir)
  local log = " >>" .. d .. "/openssl.log 2>&1"
  for _, cmd in ipairs{
    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " .. d .. "/ca.key",
    "openssl req -new -x509 -config " .. d .. "/ca.cnf -key " .. d .. "/ca.key -days 2 -out " .. d .. "/ca.pem",
    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " .. d .. "/server.key",
    "openssl req -new -config " .. d .. "/ca.cnf -subj /CN=127.0.0.1 -key " .. d .. "/server.key -out "
      .. d .. "/server.csr",
    "openssl x509 -req -in " .. d .. "/server.csr -CA " .. d .. "/ca.pem -CAkey " .. d .. "/ca.key"
      .. " -CAcreateserial -CAserial " .. d .. "/ca.srl -days 2 -extfile " .. d .. "/server.ext -out "
      .. d .. "/server.pem",
  } do
    if not execute(cmd .. log) then
      error("bench server: certificate generation failed: " .. cmd .. "\n" .. (read_file(dir .. "/openssl.log") or ""))
    end
  end
end

local CONF = [[
load_module @ECHO@;
@USER@
daemon on;
master_process on;
worker_processes 1;
@AFFINITY@
pid @DIR@/nginx.pid;
error_log @DIR@/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    log_format slow '$msec $request_time';
    server_tokens off;
    types { }
    default_type application/json;
    client_body_temp_path @DIR@/client_body;
    proxy_temp_path @DIR@/proxy;
    fastcgi_temp_path @DIR@/fastcgi;
    uwsgi_temp_path @DIR@/uwsgi;
    scgi_temp_path @DIR@/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 600s;
    open_file_cache max=16 inactive=600s;
    ssl_certificate @DIR@/server.pem;
    ssl_certificate_key @DIR@/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    server {
        listen 127.0.0.1:@PORT@ ssl;
        # 10 tokens, prebuilt: no Lua, no file, no auth on the hot path.
        location = /execute/Tokens/list { return 200 '@SMALL@'; }
        # 10,000 tokens (about 1.4 MB), a static file.
        location = /big/execute/Tokens/list { alias @DIR@/list10000.json; }
        # 10 tokens after 50 ms; echo_sleep is a timer, so the worker keeps serving.
        location = /slow/execute/Tokens/list {
            access_log @DIR@/slow.log slow;
            echo_sleep 0.05;
            echo_duplicate 1 '@SMALL@';
        }
        location / { return 404 '{"status":0,"errors":["not in the bench server"]}'; }
    }
}
]]

local Server = {}
Server.__index = Server

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local function alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  return stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
end

local function affinity(cpu)
  if not cpu then return "" end
  local mask = "1" .. string.rep("0", cpu)
  return "worker_cpu_affinity " .. mask .. ";"
end

local function launch(self, opts)
  make_certs(self.dir)
  local small = server.list_body(10)
  assert(not small:find("[$'\\]"), "the small body must be a literal in nginx.conf")
  self.small_body = self.dir .. "/list10.json"
  self.big_body = self.dir .. "/list10000.json"
  write_file(self.small_body, small)
  write_file(self.big_body, server.list_body(10000))
  local port = free_port()
  local vars = {
    ECHO = ECHO_MODULE, DIR = self.dir, PORT = port, SMALL = small, AFFINITY = affinity(opts.cpu),
    USER = capture("id -u"):match("^0%s") and "user root;" or "",
  }
  write_file(self.dir .. "/nginx.conf", (CONF:gsub("@(%u+)@", function(k) return assert(vars[k], k) end)))
  self.url = "https://127.0.0.1:" .. port
  self.big_url = self.url .. "/big"
  self.slow_url = self.url .. "/slow"
  self.slow_log = self.dir .. "/slow.log"
  local d = sh_quote(self.dir)
  if not execute(NGINX .. " -p " .. d .. "/ -c " .. d .. "/nginx.conf -e " .. d .. "/error.log >" .. d
      .. "/nginx.out 2>&1") then
    error("bench server: nginx failed to start\n" .. (read_file(self.dir .. "/nginx.out") or "")
      .. (read_file(self.dir .. "/error.log") or ""), 0)
  end
  local deadline = socket.gettime() + 5
  while true do
    self.pid = self.pid or tonumber(read_file(self.dir .. "/nginx.pid") or "")
    local c = socket.tcp()
    c:settimeout(0.2)
    local ok = c:connect("127.0.0.1", port)
    c:close()
    if ok and self.pid then return end
    if socket.gettime() > deadline then error("bench server: nginx did not start within 5 s", 0) end
    socket.sleep(0.05)
  end
end

function server.start(opts)
  local dir = capture("mktemp -d /tmp/cptokens-bench.XXXXXX"):gsub("%s+$", "")
  assert(dir:match("^/tmp/cptokens%-bench%.%w+$"), "mktemp failed")
  local self = setmetatable({ dir = dir, cafile = dir .. "/ca.pem" }, Server)
  local ok, err = pcall(launch, self, opts or {})
  if not ok then
    self:stop()
    error(err, 2)
  end
  return self
end

--- The nginx worker's pid (to tell how busy the server was).
function Server:worker_pids()
  local pids = {}
  if self.pid then
    for p in capture("pgrep -P " .. self.pid):gmatch("%d+") do pids[#pids + 1] = tonumber(p) end
  end
  return pids
end

function Server:stop()
  if self.stopped then return end
  self.stopped = true
  local pid = self.pid or tonumber(read_file(self.dir .. "/nginx.pid") or "")
  if pid and alive(pid) then
    local pids = { pid }
    for _, p in ipairs(self:worker_pids()) do pids[#pids + 1] = p end
    execute("kill -TERM " .. pid .. " 2>/dev/null")
    local deadline = socket.gettime() + 5
    for _, p in ipairs(pids) do
      while alive(p) and socket.gettime() < deadline do socket.sleep(0.02) end
      if alive(p) then execute("kill -KILL " .. p .. " 2>/dev/null") end
    end
  end
  if self.dir:match("^/tmp/cptokens%-bench%.%w+$") then execute("rm -rf " .. sh_quote(self.dir)) end
end

return server
