--[[
Runs the fake cPanel/WHM server (spec/support/fake) under nginx for busted specs.

  local server = require "spec.support.server"
  local srv = server.start()   -- temp dir, test CA + certificates, nginx on 6 free ports
  srv.url, srv.localhost_url, srv.whm_url, srv.http_url, srv.other_url, srv.cafile, srv.dir, srv.accounts
  srv.expired_url   -- the cPanel API behind a certificate from the same CA that has expired
  srv:reset()  srv:fault(mode, params)  srv:clear_faults()  srv:set(opts)
  srv:log()  srv:count(filter)  srv:seed_token(user, t)  srv:tokens(user)
  srv:stop()

Works under Lua 5.1 to 5.4 and LuaJIT; needs luasocket, lua-cjson, openssl and
/usr/sbin/nginx with the lua module. Specs must run from the repository root.
]]
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"
local fake = require "spec.support.fake.cpanel"

local NGINX = "/usr/sbin/nginx"
local START_TIMEOUT = 5
local STOP_TIMEOUT = 5

local server = {}

local function copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = copy(x) end
  return t
end

--- The fixture: cPanel accounts (kind "cpanel": user, password, apitokens,
-- otp) and WHM users (kind "whm": user, token, owns_all or owns).
server.accounts = copy(fake.accounts)

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function execute(cmd)
  local a, _, code = os.execute(cmd)
  if type(a) == "number" then return a == 0 end -- Lua 5.1
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

local function tail(path, lines)
  local text = read_file(path)
  if not text then return "(no " .. path .. ")" end
  local all = {}
  for line in text:gmatch("[^\n]+") do all[#all + 1] = line end
  local from = math.max(1, #all - lines + 1)
  local out = {}
  for i = from, #all do out[#out + 1] = all[i] end
  return table.concat(out, "\n")
end

local function fake_dir()
  local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
  if dir:sub(1, 1) ~= "/" then dir = capture("pwd"):gsub("%s+$", "") .. "/" .. dir end
  return dir .. "/fake"
end

local function free_ports(n)
  local socks, ports = {}, {}
  for i = 1, n do
    socks[i] = assert(socket.bind("127.0.0.1", 0))
    local _, port = socks[i]:getsockname()
    ports[i] = tonumber(port)
  end
  for _, s in ipairs(socks) do s:close() end
  return ports
end

local function alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  return stat ~= nil and stat:match("^%d+ %b() (%a)") ~= "Z"
end

local function can_connect(port)
  local c = socket.tcp()
  c:settimeout(0.2)
  local ok = c:connect("127.0.0.1", port)
  c:close()
  return ok ~= nil
end

local CA_CONF = [[
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = cptokens fake test CA
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

-- `openssl ca` (OpenSSL 3.0's x509 -req cannot set past dates) for a certificate that has expired.
local EXPIRED_CA_CONF = [[
[ca]
default_ca = expired
[expired]
database = @DIR@/expired-index.txt
new_certs_dir = @DIR@
serial = @DIR@/expired.srl
default_md = sha256
policy = any
unique_subject = no
[any]
commonName = supplied
]]

-- A CA and a server certificate signed by it (EC P-256: fast to generate),
-- and the same certificate again with validity dates long past (expired.pem).
local function make_certs(dir)
  write_file(dir .. "/ca.cnf", CA_CONF)
  write_file(dir .. "/server.ext", SERVER_EXT)
  write_file(dir .. "/expired-ca.cnf", (EXPIRED_CA_CONF:gsub("@DIR@", dir)))
  write_file(dir .. "/expired-index.txt", "")
  write_file(dir .. "/expired.srl", "1000\n")
  local d = shell_quote(dir)
  local log = " >>" .. d .. "/openssl.log 2>&1"
  local cmds = {
    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " .. d .. "/ca.key",
    "openssl req -new -x509 -config " .. d .. "/ca.cnf -key " .. d .. "/ca.key -days 7 -out " .. d .. "/ca.pem",
    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " .. d .. "/server.key",
    "openssl req -new -config " .. d .. "/ca.cnf -subj /CN=localhost -key " .. d .. "/server.key -out "
      .. d .. "/server.csr",
    "openssl x509 -req -in " .. d .. "/server.csr -CA " .. d .. "/ca.pem -CAkey " .. d .. "/ca.key"
      .. " -CAcreateserial -CAserial " .. d .. "/ca.srl -days 7 -extfile " .. d .. "/server.ext -out "
      .. d .. "/server.pem",
    "openssl ca -batch -notext -config " .. d .. "/expired-ca.cnf -cert " .. d .. "/ca.pem -keyfile "
      .. d .. "/ca.key -in " .. d .. "/server.csr -extfile " .. d .. "/server.ext"
      .. " -startdate 20200101000000Z -enddate 20200102000000Z -out " .. d .. "/expired.pem",
  }
  for _, cmd in ipairs(cmds) do
    if not execute(cmd .. log) then
      error("fake server: certificate generation failed: " .. cmd .. "\n" .. tail(dir .. "/openssl.log", 20))
    end
  end
end

local Server = {}
Server.__index = Server

local function render_config(self, ports)
  local vars = {
    DIR = self.dir,
    FAKE_DIR = fake_dir(),
    CPANEL_PORT = ports.cpanel, WHM_PORT = ports.whm, HTTP_PORT = ports.http,
    OTHER_PORT = ports.other, CONTROL_PORT = ports.control, EXPIRED_PORT = ports.expired,
    -- as root, workers would run as nobody and could not use the private temp dir
    USER_DIRECTIVE = capture("id -u"):match("^0%s") and "user root;" or "",
  }
  local template = assert(read_file(vars.FAKE_DIR .. "/nginx.conf.in"), "missing nginx.conf.in")
  local conf = template:gsub("@([%u_]+)@", function(name)
    return tostring(assert(vars[name], "nginx.conf.in: unknown placeholder @" .. name .. "@"))
  end)
  write_file(self.dir .. "/nginx.conf", conf)
end

local function launch(self)
  make_certs(self.dir)
  local p = free_ports(6)
  local ports = { cpanel = p[1], whm = p[2], http = p[3], other = p[4], control = p[5], expired = p[6] }
  render_config(self, ports)
  self.ports = ports
  self.url = "https://127.0.0.1:" .. ports.cpanel
  self.localhost_url = "https://localhost:" .. ports.cpanel
  self.wronghost_url = "https://127.0.0.2:" .. ports.cpanel -- not in the certificate
  self.whm_url = "https://127.0.0.1:" .. ports.whm
  self.http_url = "http://127.0.0.1:" .. ports.http
  self.other_url = "https://127.0.0.1:" .. ports.other
  self.control_url = "http://127.0.0.1:" .. ports.control
  self.expired_url = "https://127.0.0.1:" .. ports.expired

  local d = shell_quote(self.dir)
  local started = execute(NGINX .. " -p " .. d .. "/ -c " .. d .. "/nginx.conf -e " .. d .. "/error.log >"
    .. d .. "/nginx.out 2>&1")
  local function fail(why)
    error("fake server: " .. why .. "\n" .. tail(self.dir .. "/nginx.out", 10) .. "\n"
      .. tail(self.dir .. "/error.log", 20), 0)
  end
  if not started then fail("nginx failed to start") end

  local deadline = socket.gettime() + START_TIMEOUT
  local pending = { ports.cpanel, ports.whm, ports.http, ports.other, ports.control, ports.expired }
  while true do
    if not self.pid then
      self.pid = tonumber(read_file(self.dir .. "/nginx.pid") or "")
    end
    while pending[1] and self.pid and can_connect(pending[1]) do table.remove(pending, 1) end
    if not pending[1] then return end
    if self.pid and not alive(self.pid) then fail("nginx exited during startup") end
    if socket.gettime() > deadline then
      fail("nginx did not accept connections within " .. START_TIMEOUT .. " s")
    end
    socket.sleep(0.05)
  end
end

--- Start a fresh fake server. Raises an error (with the error.log tail) on failure.
function server.start()
  local dir = capture("mktemp -d /tmp/cptokens-fake.XXXXXX"):gsub("%s+$", "")
  assert(dir:match("^/tmp/cptokens%-fake%.%w+$"), "mktemp failed")
  local self = setmetatable({ dir = dir, cafile = dir .. "/ca.pem", accounts = copy(fake.accounts) }, Server)
  local ok, err = pcall(launch, self)
  if not ok then
    self:stop()
    error(err, 2)
  end
  return self
end

--- Stop nginx (waiting for its processes to exit) and remove the directory. Idempotent.
function Server:stop()
  if self.stopped then return end
  self.stopped = true
  local pid = self.pid or tonumber(read_file(self.dir .. "/nginx.pid") or "")
  if pid and alive(pid) then
    local pids = { pid }
    for child in capture("pgrep -P " .. pid):gmatch("%d+") do pids[#pids + 1] = tonumber(child) end
    execute("kill -TERM " .. pid .. " 2>/dev/null")
    local deadline = socket.gettime() + STOP_TIMEOUT
    local i = 1
    while pids[i] do
      if not alive(pids[i]) then
        i = i + 1
      elseif socket.gettime() > deadline then
        execute("kill -KILL " .. pids[i] .. " 2>/dev/null")
        socket.sleep(0.05)
        i = i + 1
      else
        socket.sleep(0.02)
      end
    end
  end
  if self.dir:match("^/tmp/cptokens%-fake%.%w+$") then execute("rm -rf " .. shell_quote(self.dir)) end
end

-- lua-cjson decodes every number as a float; give Lua 5.3+ integers back.
local function integers(v)
  if type(v) == "table" then
    for k, x in pairs(v) do v[k] = integers(x) end
  elseif type(v) == "number" and math.tointeger then
    return math.tointeger(v) or v
  end
  return v
end

-- POST a JSON request to the control port; returns the decoded result.
function Server:_control(path, payload)
  assert(not self.stopped, "fake server is stopped")
  local body = cjson.encode(payload or {})
  local out = {}
  local ok, code = http.request({
    url = self.control_url .. path,
    method = "POST",
    headers = { ["content-type"] = "application/json", ["content-length"] = tostring(#body) },
    source = ltn12.source.string(body),
    sink = ltn12.sink.table(out),
    create = function()
      local s = socket.tcp()
      s:settimeout(10)
      return s
    end,
  })
  local text = table.concat(out)
  if not ok or code ~= 200 then
    error("fake server control " .. path .. " failed: " .. tostring(code) .. " " .. text, 3)
  end
  return integers(cjson.decode(text).result)
end

--- Fresh fixture state: no tokens, no faults, empty log, default switches.
function Server:reset() self:_control("/reset") end

--- Activate a fault mode on the API ports; params.times limits it to that many requests.
function Server:fault(mode, params) self:_control("/fault", { mode = mode, params = params or {} }) end

function Server:clear_faults() self:_control("/clear_faults") end

--- Switches, e.g. { loose = true } (status and create_time sent as strings).
function Server:set(opts) self:_control("/set", opts or {}) end

--- Array of request records (see spec/support/fake/cpanel.lua, request()).
function Server:log() return self:_control("/log") or {} end

--- Requests on the API ports (cpanel, whm, http); filter is a port name or a
-- table of record fields that must all match (then "other" can be counted too).
function Server:count(filter)
  if type(filter) == "string" then filter = { port = filter } end
  return self:_control("/count", filter or {})
end

--- Store a token for a cPanel user: t = { name, token, create_time, expires_at }.
-- token defaults to a random value, create_time to now; expires_at is echoed as is
-- in list (use cjson.null for JSON null). Returns the stored token.
function Server:seed_token(user, t) return self:_control("/seed_token", { user = user, token = t }) end

--- The tokens the server holds for a user, secrets included (test-only).
function Server:tokens(user) return self:_control("/tokens", { user = user }) or {} end

return server
