--[[
Runs a test nginx that hosts cptokens (the LuaJIT build of cptokens.core) for
spec/80-openresty_spec.lua; the fake cPanel server is a separate nginx
(spec/support/server.lua).

  local runner = require "spec.support.openresty.runner"
  runner.available()            -- the LuaJIT build exists (else the spec is pending)
  local ng = runner.start{ srv = srv, trust = "test" | "system", account = {...}, conf = {...} }
  ng.url (test endpoints), ng.readme_url (README's server block), ng.dir
  ng:get(path, timeout?, base?) -> status, body, headers
  ng:run(case) -> the decoded answer of /run (see cptokens_testapp.lua)
  ng:error_log()  ng:stop()

Its own prefix (mktemp -d), one worker, on a free port. The secrets go into
files in the prefix (mode 0600), never into a request or the config.
]]
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local url = require "socket.url"
local cjson = require "cjson"
local util = require "spec.support.util"
local nginx = require "spec.support.nginx"

local SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"

local runner = {}

-- The LuaJIT build the test nginx loads (make LUA_VERSION=luajit).
runner.build = os.getenv("CPTOKENS_LUAJIT_BUILD") or "build/luajit"

-- The test nginx and the commands run for it get no preloaded library.
local CLEAN_ENV = os.getenv("LD_PRELOAD") and "env -u LD_PRELOAD " or ""
local NGINX_OPTS = { name = "test nginx", env = CLEAN_ENV }

local shell_quote, read_file, write_file = util.shell_quote, util.read_file, util.write_file
local function execute(cmd) return util.execute(CLEAN_ENV .. cmd) end
local function capture(cmd) return util.capture(CLEAN_ENV .. cmd) end

-- Plain (not pattern) replacement of every occurrence.
local function replace_all(s, from, to)
  local out, i = {}, 1
  while true do
    local a, b = s:find(from, i, true)
    if not a then break end
    out[#out + 1] = s:sub(i, a - 1)
    out[#out + 1] = to
    i = b + 1
  end
  out[#out + 1] = s:sub(i)
  return table.concat(out)
end

-- A Lua literal for v (strings, numbers, booleans, tables).
local function serialize(v, indent)
  indent = indent or ""
  if type(v) == "table" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local out = { "{\n" }
    for _, k in ipairs(keys) do
      out[#out + 1] = indent .. "  [" .. serialize(k) .. "] = " .. serialize(v[k], indent .. "  ") .. ",\n"
    end
    out[#out + 1] = indent .. "}"
    return table.concat(out)
  elseif type(v) == "string" then
    return string.format("%q", v)
  end
  return tostring(v)
end

local function repo_dir()
  return (capture("pwd"):gsub("%s+$", ""))
end

local function here()
  local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
  if dir:sub(1, 1) ~= "/" then dir = repo_dir() .. "/" .. dir end
  return dir
end

--- True when the LuaJIT build of cptokens.core exists (the test nginx loads it).
function runner.available()
  return read_file(runner.build .. "/cptokens/core.so") ~= nil
end

--- The template, and its block that README shows (between "# README:begin" and "# README:end").
function runner.template()
  return assert(read_file(here() .. "/nginx.conf.in"), "missing nginx.conf.in")
end

function runner.readme_block()
  local text = runner.template()
  local block = text:match("\n[ \t]*# README:begin\n(.-)\n[ \t]*# README:end\n")
  return assert(block, "nginx.conf.in has no README block")
end

local Nginx = {}
Nginx.__index = Nginx

local function launch(self, opts)
  local repo = repo_dir()
  local ports = util.free_ports(2)
  local port, readme_port = ports[1], ports[2]
  self.port, self.readme_port = port, readme_port
  self.url = "http://127.0.0.1:" .. port
  self.readme_url = "http://127.0.0.1:" .. readme_port
  execute("mkdir -p " .. shell_quote(self.dir .. "/lua"))

  -- The application and its settings; the files holding secrets are private.
  write_file(self.dir .. "/lua/cptokens_testapp.lua", assert(read_file(here() .. "/cptokens_testapp.lua")))
  util.write_private(self.dir .. "/lua/cptokens_testconf.lua", "return " .. serialize(opts.conf or {}) .. "\n")
  util.write_private(self.dir .. "/lua/cpanel_account.lua",
    "-- written by spec/support/openresty/runner.lua\n"
    .. "require(\"cptokens_testapp\").at_init()\n"
    .. "return " .. serialize(opts.account or {}) .. "\n")

  local conf = runner.template()
  conf = replace_all(conf, "/usr/local/share/lua/5.1/", repo .. "/lua/")
  conf = replace_all(conf, "/usr/local/lib/lua/5.1/", repo .. "/" .. runner.build .. "/")
  conf = replace_all(conf, "/etc/nginx/lua/", self.dir .. "/lua/")
  if opts.trust ~= "system" then
    conf = replace_all(conf, SYSTEM_CA, assert(opts.srv, "runner.start: srv is required").cafile)
  end
  conf = replace_all(conf, "listen 127.0.0.1:8080;", "listen 127.0.0.1:" .. readme_port .. ";")
  conf = nginx.render(conf, { DIR = self.dir, TEST_PORT = port, USER_DIRECTIVE = nginx.user_directive() })
  write_file(self.dir .. "/nginx.conf", conf)
  self.pid = nginx.start(self.dir, { port, readme_port }, NGINX_OPTS)
end

--- Starts a test nginx. opts: srv (the fake server), trust ("system": the system CA
-- bundle instead of the test CA), account (cpanel_account.lua), conf (cptokens_testconf.lua).
function runner.start(opts)
  local dir = util.tmpdir("openresty")
  local self = setmetatable({ dir = dir }, Nginx)
  local ok, err = pcall(launch, self, opts or {})
  if not ok then
    self:stop()
    error(err, 2)
  end
  return self
end

--- GET path; returns status, body, headers (nil, error on a transport failure).
function Nginx:get(path, timeout, base)
  local out = {}
  local ok, code, headers = http.request {
    url = (base or self.url) .. path,
    sink = ltn12.sink.table(out),
    create = function()
      local s = socket.tcp()
      s:settimeout(timeout or 60)
      return s
    end,
  }
  if not ok then return nil, code end
  return code, table.concat(out), headers
end

function runner.decode(body)
  return util.integers(cjson.decode(body))
end

function runner.query(case)
  return "?case=" .. url.escape(cjson.encode(case))
end

--- Runs a case in the test nginx (GET /run) and returns the decoded answer.
function Nginx:run(case, timeout)
  local code, body = self:get("/run" .. runner.query(case), timeout)
  if code ~= 200 then
    error("test nginx /run failed: " .. tostring(code) .. " " .. tostring(body) .. "\n"
      .. util.tail(self.dir .. "/error.log", 20), 2)
  end
  return runner.decode(body)
end

function Nginx:error_log(lines)
  return util.tail(self.dir .. "/error.log", lines or 30)
end

--- Stops nginx, waits for its processes to exit, removes the prefix. Idempotent.
function Nginx:stop()
  if self.stopped then return end
  self.stopped = true
  nginx.stop(self.dir, self.pid, NGINX_OPTS)
  util.rmdir(self.dir)
end

return runner
