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

local NGINX = "/usr/sbin/nginx"
local START_TIMEOUT, STOP_TIMEOUT = 5, 5
local SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"

local runner = {}

-- The LuaJIT build the test nginx loads (make LUA_VERSION=luajit).
runner.build = os.getenv("CPTOKENS_LUAJIT_BUILD") or "build/luajit"

local CLEAN_ENV = os.getenv("LD_PRELOAD") and "env -u LD_PRELOAD " or ""

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function execute(cmd)
  local a, _, code = os.execute(CLEAN_ENV .. cmd)
  if type(a) == "number" then return a == 0 end -- Lua 5.1
  return a == true and (code == nil or code == 0)
end

local function capture(cmd)
  local p = assert(io.popen(CLEAN_ENV .. cmd, "r"))
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
  local out = {}
  for i = math.max(1, #all - lines + 1), #all do out[#out + 1] = all[i] end
  return table.concat(out, "\n")
end

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
  local ports = free_ports(2)
  local port, readme_port = ports[1], ports[2]
  self.port, self.readme_port = port, readme_port
  self.url = "http://127.0.0.1:" .. port
  self.readme_url = "http://127.0.0.1:" .. readme_port
  execute("mkdir -p " .. shell_quote(self.dir .. "/lua"))

  -- The application and its settings; the files holding secrets are private.
  write_file(self.dir .. "/lua/cptokens_testapp.lua", assert(read_file(here() .. "/cptokens_testapp.lua")))
  execute("umask 077 && : > " .. shell_quote(self.dir .. "/lua/cptokens_testconf.lua")
    .. " && : > " .. shell_quote(self.dir .. "/lua/cpanel_account.lua"))
  write_file(self.dir .. "/lua/cptokens_testconf.lua", "return " .. serialize(opts.conf or {}) .. "\n")
  write_file(self.dir .. "/lua/cpanel_account.lua",
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
  local vars = {
    DIR = self.dir, TEST_PORT = port,
    USER_DIRECTIVE = capture("id -u"):match("^0%s") and "user root;" or "",
  }
  conf = conf:gsub("@([%u_]+)@", function(name)
    return tostring(assert(vars[name], "nginx.conf.in: unknown placeholder @" .. name .. "@"))
  end)
  write_file(self.dir .. "/nginx.conf", conf)

  local d = shell_quote(self.dir)
  local started = execute(NGINX .. " -p " .. d .. "/ -c " .. d .. "/nginx.conf -e " .. d
    .. "/error.log >" .. d .. "/nginx.out 2>&1")
  local function fail(why)
    error("test nginx: " .. why .. "\n" .. tail(self.dir .. "/nginx.out", 10) .. "\n"
      .. tail(self.dir .. "/error.log", 20), 0)
  end
  if not started then fail("nginx failed to start") end
  local deadline = socket.gettime() + START_TIMEOUT
  while true do
    self.pid = self.pid or tonumber(read_file(self.dir .. "/nginx.pid") or "")
    if self.pid and can_connect(port) and can_connect(readme_port) then return end
    if self.pid and not alive(self.pid) then fail("nginx exited during startup") end
    if socket.gettime() > deadline then fail("nginx did not accept connections within " .. START_TIMEOUT .. " s") end
    socket.sleep(0.05)
  end
end

--- Starts a test nginx. opts: srv (the fake server), trust ("system": the system CA
-- bundle instead of the test CA), account (cpanel_account.lua), conf (cptokens_testconf.lua).
function runner.start(opts)
  local dir = capture("mktemp -d /tmp/cptokens-openresty.XXXXXX"):gsub("%s+$", "")
  assert(dir:match("^/tmp/cptokens%-openresty%.%w+$"), "mktemp failed")
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

-- lua-cjson decodes numbers as floats; integers back for Lua 5.3+.
local function integers(v)
  if type(v) == "table" then
    for k, x in pairs(v) do v[k] = integers(x) end
  elseif type(v) == "number" and math.tointeger then
    return math.tointeger(v) or v
  end
  return v
end

function runner.decode(body)
  return integers(cjson.decode(body))
end

function runner.query(case)
  return "?case=" .. url.escape(cjson.encode(case))
end

--- Runs a case in the test nginx (GET /run) and returns the decoded answer.
function Nginx:run(case, timeout)
  local code, body = self:get("/run" .. runner.query(case), timeout)
  if code ~= 200 then
    error("test nginx /run failed: " .. tostring(code) .. " " .. tostring(body) .. "\n"
      .. tail(self.dir .. "/error.log", 20), 2)
  end
  return runner.decode(body)
end

function Nginx:error_log(lines)
  return tail(self.dir .. "/error.log", lines or 30)
end

--- Stops nginx, waits for its processes to exit, removes the prefix. Idempotent.
function Nginx:stop()
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
  if self.dir:match("^/tmp/cptokens%-openresty%.%w+$") then execute("rm -rf " .. shell_quote(self.dir)) end
end

return runner
