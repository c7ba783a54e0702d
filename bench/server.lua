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
  <url>/f10k, <url>/f100 -- WHM bases for fleet audits: listaccts of 10,000 or 100 accounts, and
                 each account's Tokens::list after 20 ms (echo_sleep)
  srv:stop()

server.start{ cpu = 1 } pins the nginx worker to that CPU (worker_cpu_affinity).
server.start{ servers = 200 } also listens on 200 more ports, each one "server" of the
trust benchmarks: srv.server_urls[i] = "https://127.0.0.1:<port i>" (the same replies).

None of the replies checks credentials: the bench token is a dummy value.
Runs under Lua 5.4 (and 5.1+); needs luasocket, openssl, /usr/sbin/nginx
(nginx-light) and its echo module (libnginx-mod-http-echo). Starting, waiting for
and stopping nginx is spec/support/nginx.lua's (with ./?.lua on package.path).
]]
local util = require "spec.support.util"
local nginx = require "spec.support.nginx"

local NAME = "bench server" -- what its errors start with
local ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"

local server = {}

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
@MORE_LISTEN@
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
        # Fleet audits (bench/lua_fleet.lua): WHM's listaccts (a file of @F10K@ or @F100@ accounts),
        # api_token_list, and every account's Tokens::list through /json-api/cpanel after 20 ms.
        location = /f10k/json-api/listaccts { alias @DIR@/accts10k.json; }
        location = /f100/json-api/listaccts { alias @DIR@/accts100.json; }
        location ~ ^/f(10k|100)/json-api/api_token_list$ { return 200 '@WHMLIST@'; }
        location ~ ^/f(10k|100)/json-api/cpanel$ {
            echo_sleep 0.02;
            echo_duplicate 1 '@WRAPPED@';
        }
        location / { return 404 '{"status":0,"errors":["not in the bench server"]}'; }
    }
}
]]

--- A listaccts reply of `count` accounts acct00001... owned by root, none suspended.
function server.accounts_body(count)
  local items = {}
  for i = 1, count do
    items[i] = ('{"user":"acct%05d","domain":"acct%05d.example","owner":"root","suspended":0}'):format(i, i)
  end
  return '{"data":{"acct":[' .. table.concat(items, ",") .. ']},"metadata":{"command":"listaccts",'
    .. '"reason":"OK","result":1,"version":1}}'
end

server.FLEET_TOKENS = 3 -- tokens in each account's list (fleet rows)
server.FLEET_SIZES = { f10k = 10000, f100 = 100 } -- accounts behind each fleet prefix

local Server = {}
Server.__index = Server

local function affinity(cpu)
  if not cpu then return "" end
  local mask = "1" .. string.rep("0", cpu)
  return "worker_cpu_affinity " .. mask .. ";"
end

local function launch(self, opts)
  nginx.make_certs(self.dir, { name = NAME, ca_name = "cptokens bench CA", cn = "127.0.0.1", days = 2 })
  local small = server.list_body(10)
  assert(not small:find("[$'\\]"), "the small body must be a literal in nginx.conf")
  self.small_body = self.dir .. "/list10.json"
  self.big_body = self.dir .. "/list10000.json"
  util.write_file(self.small_body, small)
  util.write_file(self.big_body, server.list_body(10000))
  local ports = util.free_ports(1 + (opts.servers or 0))
  local port = ports[1]
  local more = {}
  self.server_urls = {}
  for i = 2, #ports do
    more[#more + 1] = "        listen 127.0.0.1:" .. ports[i] .. " ssl;"
    self.server_urls[i - 1] = "https://127.0.0.1:" .. ports[i]
  end
  util.write_file(self.dir .. "/accts10k.json", server.accounts_body(server.FLEET_SIZES.f10k))
  util.write_file(self.dir .. "/accts100.json", server.accounts_body(server.FLEET_SIZES.f100))
  local wrapped = '{"apiversion":3,"func":"list","module":"Tokens","result":'
    .. server.list_body(server.FLEET_TOKENS) .. "}"
  local whmlist = '{"data":{"tokens":{}},"metadata":{"command":"api_token_list","reason":"OK","result":1,'
    .. '"version":1}}'
  local vars = {
    WRAPPED = wrapped, WHMLIST = whmlist, F10K = server.FLEET_SIZES.f10k, F100 = server.FLEET_SIZES.f100,
    ECHO = ECHO_MODULE, DIR = self.dir, PORT = port, SMALL = small, AFFINITY = affinity(opts.cpu),
    USER = nginx.user_directive(), MORE_LISTEN = table.concat(more, "\n"),
  }
  util.write_file(self.dir .. "/nginx.conf", nginx.render(CONF, vars))
  self.url = "https://127.0.0.1:" .. port
  self.big_url = self.url .. "/big"
  self.slow_url = self.url .. "/slow"
  self.slow_log = self.dir .. "/slow.log"
  self.pid = nginx.start(self.dir, ports, { name = NAME })
end

function server.start(opts)
  local dir = util.tmpdir("bench")
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
  return self.pid and nginx.workers(self.pid) or {}
end

function Server:stop()
  if self.stopped then return end
  self.stopped = true
  nginx.stop(self.dir, self.pid)
  util.rmdir(self.dir)
end

return server
