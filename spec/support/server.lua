--[[
Runs the fake cPanel/WHM server (spec/support/fake) under nginx for busted specs.

  local server = require "spec.support.server"
  local srv = server.start()   -- temp dir, test CA + certificates, nginx on 6 free ports
  srv.url, srv.localhost_url, srv.whm_url, srv.http_url, srv.other_url, srv.cafile, srv.dir, srv.accounts
  srv.expired_url   -- the cPanel API behind a certificate from the same CA that has expired
  srv:reset()  srv:fault(mode, params)  srv:clear_faults()  srv:set(opts)
  srv:log([from])  srv:count(filter)  srv:seed_token(user, t)  srv:tokens(user)
  srv:seed_accounts(count, opts)  srv:inflight()
  srv:stop()

Works under Lua 5.1 to 5.4 and LuaJIT; needs luasocket, lua-cjson, openssl and
/usr/sbin/nginx with the lua module. Specs must run from the repository root.
]]
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"
local fake = require "spec.support.fake.cpanel"
local util = require "spec.support.util"
local nginx = require "spec.support.nginx"

local NAME = "fake server" -- what its errors start with

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

local function fake_dir()
  local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
  if dir:sub(1, 1) ~= "/" then dir = util.capture("pwd"):gsub("%s+$", "") .. "/" .. dir end
  return dir .. "/fake"
end

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

-- A CA and a server certificate signed by it (spec/support/nginx.lua), and the same
-- certificate again with validity dates long past (expired.pem).
local function make_certs(dir)
  nginx.make_certs(dir, { name = NAME, ca_name = "cptokens fake test CA", cn = "localhost", days = 7 })
  util.write_file(dir .. "/expired-ca.cnf", (EXPIRED_CA_CONF:gsub("@DIR@", dir)))
  util.write_file(dir .. "/expired-index.txt", "")
  util.write_file(dir .. "/expired.srl", "1000\n")
  local d = util.shell_quote(dir)
  nginx.openssl(dir, {
    "openssl ca -batch -notext -config " .. d .. "/expired-ca.cnf -cert " .. d .. "/ca.pem -keyfile "
      .. d .. "/ca.key -in " .. d .. "/server.csr -extfile " .. d .. "/server.ext"
      .. " -startdate 20200101000000Z -enddate 20200102000000Z -out " .. d .. "/expired.pem",
  }, { name = NAME })
end

local Server = {}
Server.__index = Server

local function render_config(self, ports)
  local vars = {
    DIR = self.dir,
    FAKE_DIR = fake_dir(),
    CPANEL_PORT = ports.cpanel, WHM_PORT = ports.whm, HTTP_PORT = ports.http,
    OTHER_PORT = ports.other, CONTROL_PORT = ports.control, EXPIRED_PORT = ports.expired,
    USER_DIRECTIVE = nginx.user_directive(),
  }
  local template = assert(util.read_file(vars.FAKE_DIR .. "/nginx.conf.in"), "missing nginx.conf.in")
  util.write_file(self.dir .. "/nginx.conf", nginx.render(template, vars))
end

local function launch(self)
  make_certs(self.dir)
  local p = util.free_ports(6)
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

  self.pid = nginx.start(self.dir, { ports.cpanel, ports.whm, ports.http, ports.other, ports.control,
                                     ports.expired }, { name = NAME })
end

--- Start a fresh fake server. Raises an error (with the error.log tail) on failure.
function server.start()
  local dir = util.tmpdir("fake")
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
  nginx.stop(self.dir, self.pid)
  util.rmdir(self.dir)
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
  return util.integers(cjson.decode(text).result)
end

--- Fresh fixture state: no tokens, no faults, empty log, default switches.
function Server:reset() self:_control("/reset") end

--- Activate a fault mode on the API ports; params.times limits it to that many requests.
-- params.func ("list", "create_full_access", "revoke", "rename"), params.auth ("cpanel",
-- "basic", "whm") and params.port ("cpanel", "whm") narrow it to matching requests;
-- params.skip lets that many matching requests through first.
function Server:fault(mode, params) self:_control("/fault", { mode = mode, params = params or {} }) end

function Server:clear_faults() self:_control("/clear_faults") end

--- Switches, e.g. { loose = true } (status and create_time sent as strings).
function Server:set(opts) self:_control("/set", opts or {}) end

--- Array of request records (see spec/support/fake/cpanel.lua, request()); with from,
-- only those from that index (1-based) on.
function Server:log(from) return self:_control("/log", { from = from }) or {} end

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

--- Store a WHM token for a WHM account (root, res, lone): t = { name, token?, create_time?,
-- expires_at?, acls? (nil: full access), whitelist_ips? }. Returns { name, token }.
function Server:seed_whm_token(user, t) return self:_control("/seed_whm_token", { user = user, token = t }) end

--- The WHM tokens the server holds for a WHM account, secrets included (test-only).
function Server:whm_tokens(user) return self:_control("/whm_tokens", { user = user }) or {} end

--- Adds count cPanel accounts "<prefix>NNNNN" (opts.prefix, default "u"), owned by opts.owner
-- (a WHM account, default root), every opts.suspend_every-th one suspended; reset removes
-- them. Returns their names.
function Server:seed_accounts(count, opts)
  local req = { count = count }
  for k, v in pairs(opts or {}) do req[k] = v end
  return self:_control("/seed_accounts", req)
end

--- { now = requests in flight, max = the most in flight at once since reset }.
function Server:inflight() return self:_control("/inflight") end

return server
