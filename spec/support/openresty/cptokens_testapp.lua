--[[
The application the test nginx runs (spec/80-openresty_spec.lua): it calls
cptokens inside nginx and answers JSON the spec checks.

  at_init()       probes made from init_by_lua (loaded by the test's cpanel_account.lua)
  init_report()   GET /init: what at_init() saw
  run()           GET /run?case=<JSON>: one client, a list of operations (see below)
  timer()         GET /timer: a list from an ngx.timer callback
  phase(name)     rewrite/access/header_filter probes for GET /phases; phases() answers

A case: { transport = "auto" | "curl" | "ngx", cred = "password" | "otp" | "nootp" |
"token" | "whm_token" | "reseller" | "carol" | "wrong_password", url = "...",
user = "alice", opts = { timeout = .., max_response = .., insecure = .., cafile = "test_ca" },
warm = true (a list before the fault), fault = { mode, params }, recover = true (clear the
faults and list again), ops = { {"create", name, {expires_in = ..}}, {"list"},
{"rename", a, b}, {"revoke", name}, {"use_token"} (a token client with the token
created last), and for cred "whm_root" | "whm_res" (a cptokens.whm client): {"whm", method,
args...} (any method of it), {"whm_details_last"} (details of the token created last) } }.

The secrets come from cptokens_testconf.lua in the test prefix, never from a
request, and never go into an answer: tokens are reported as token_ok only, and
every answer is checked for every secret (leaks counts the hits).
]]
-- luacheck: globals ngx
local cjson = require "cjson.safe"
local cptokens = require "cptokens"

local M = {}
local unpack = table.unpack or unpack -- luacheck: ignore

local conf -- cptokens_testconf: { urls = {...}, cafile, control = {host, port}, secrets = {...} }
local init_state

local function load_conf()
  if not conf then conf = require "cptokens_testconf" end
  return conf
end

local function err_info(err)
  if not cptokens.is_error(err) then return { not_an_error = tostring(err) } end
  return { kind = err.kind, status = err.status, errors = err.errors, message = err.message,
           text = tostring(err) }
end

-- every secret as it could appear: raw, and base64 in HTTP Basic form
local function secret_forms()
  local s, out = load_conf().secrets, {}
  for _, v in pairs(s) do
    out[#out + 1] = v
    out[#out + 1] = ngx.encode_base64(v)
  end
  for _, pair in ipairs { { "alice", s.alice_pw }, { "bob", s.bob_pw }, { "carol", s.carol_pw } } do
    out[#out + 1] = ngx.encode_base64(pair[1] .. ":" .. pair[2])
  end
  return out
end

local function count_leaks(v, forms, seen)
  seen = seen or {}
  local n = 0
  if type(v) == "string" then
    for _, f in ipairs(forms) do
      if v:find(f, 1, true) then n = n + 1 end
    end
  elseif type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do n = n + count_leaks(k, forms, seen) + count_leaks(x, forms, seen) end
    n = n + count_leaks(tostring(v), forms, seen)
  elseif type(v) == "userdata" then
    n = n + count_leaks(tostring(v), forms, seen)
  end
  return n
end

local function reply(t)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(t))
end

local function client_opts(case)
  local s = load_conf().secrets
  local o = { url = case.url, user = case.user or "alice" }
  local cred = case.cred or "password"
  if cred == "password" then
    o.password = s.alice_pw
  elseif cred == "otp" or cred == "nootp" then
    o.user, o.password = "bob", s.bob_pw
    if cred == "otp" then o.otp = s.bob_otp end
  elseif cred == "carol" then
    o.user, o.password = "carol", s.carol_pw
  elseif cred == "wrong_password" then
    o.password = s.wrong_pw
  elseif cred == "token" then
    o.token = s.token
  elseif cred == "whm_token" then
    o.whm_token, o.whm_user = s.root_whm, "root"
  elseif cred == "whm_root" then
    o.user, o.whm_token = "root", s.root_whm
  elseif cred == "whm_res" then
    o.user, o.whm_token = "res", s.res_whm
  elseif cred == "reseller" then
    o.whm_token, o.whm_user = s.res_whm, "res"
  else
    error("unknown cred " .. tostring(cred))
  end
  for k, v in pairs(case.opts or {}) do
    if v ~= cjson.null then o[k] = v end
  end
  if o.cafile == "test_ca" then o.cafile = conf.cafile end
  if case.transport and case.transport ~= "auto" then o.transport = case.transport end
  return o
end

-- POST to the fake server's control port (plain HTTP, a cosocket).
local function control(path, payload)
  local body = cjson.encode(payload or {})
  local sock = ngx.socket.tcp()
  sock:settimeout(5000)
  assert(sock:connect(conf.control.host, conf.control.port))
  assert(sock:send("POST " .. path .. " HTTP/1.1\r\nHost: control\r\nContent-Type: application/json\r\n"
    .. "Content-Length: " .. #body .. "\r\nConnection: close\r\n\r\n" .. body))
  local line = sock:receive("*l")
  sock:close()
  assert(line and line:find(" 200 ", 1, true), "control " .. path .. ": " .. tostring(line))
end

local function now()
  ngx.update_time()
  return ngx.now()
end

-- A WHM token record without its secret (token_ok says whether it had a good one).
local function whm_record(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = x end
  if out.token then out.token, out.token_ok = nil, #v.token == 32 end
  if out.acls then setmetatable(out.acls, cjson.array_mt) end
  return out
end

local function value_info(op, v, extra)
  if op == "whm" or op == "whm_details_last" then
    if type(v) == "table" and v[1] ~= nil then
      local out = {}
      for i, t in ipairs(v) do out[i] = whm_record(t) end
      return setmetatable(out, cjson.array_mt)
    end
    return whm_record(v)
  end
  if op == "create" then
    return { name = v.name, create_time = v.create_time, expires_at = v.expires_at,
             token_ok = type(v.token) == "string" and #v.token == 32 and v.token:match("^[0-9A-Z]+$") ~= nil }
  elseif op == "list" then
    local out = {}
    for i, t in ipairs(v) do
      out[i] = { name = t.name, create_time = t.create_time, expires_at = t.expires_at,
                 has_full_access = t.has_full_access }
    end
    return setmetatable(out, cjson.array_mt)
  elseif op == "revoke" then
    return { ok = v, existed = extra }
  end
  return { ok = v }
end

-- Runs one operation; the result table (never a secret in it).
local function run_op(state, spec)
  local op = spec[1]
  local c = state.client
  local t0 = now()
  local v, err
  if op == "create" then
    v, err = c:create(spec[2], spec[3])
    if v then state.last_token = v.token end
  elseif op == "list" then
    v, err = c:list()
  elseif op == "rename" then
    v, err = c:rename(spec[2], spec[3])
  elseif op == "revoke" then
    v, err = c:revoke(spec[2])
  elseif op == "whm" then
    v, err = c[spec[2]](c, unpack(spec, 3))
    if type(v) == "table" and v.token then state.last_token = v.token end
  elseif op == "whm_details_last" then
    v, err = c:details(state.last_token)
  elseif op == "use_token" then
    local o = client_opts(state.case)
    o.password, o.otp, o.whm_token, o.whm_user, o.token = nil, nil, nil, nil, state.last_token
    v, err = cptokens.new(o)
    if v then
      state.client:close()
      state.client = v
      v = true
    end
  else
    error("unknown op " .. tostring(op))
  end
  local r = { op = op, took = now() - t0 }
  if v == nil then
    r.ok, r.err = false, err_info(err)
  else
    r.ok, r.value = true, value_info(op, v, err)
  end
  return r
end

function M.run()
  load_conf()
  local case = assert(cjson.decode(ngx.req.get_uri_args().case or ""), "bad case")
  local out = { results = setmetatable({}, cjson.array_mt) }
  local c, err
  if case.cred == "whm_root" or case.cred == "whm_res" then
    local o = client_opts(case)
    o.whm_token, o.whm_user, o.token = nil, nil, o.whm_token
    c, err = cptokens.whm(o)
  else
    c, err = cptokens.new(client_opts(case))
  end
  if not c then
    out.new_error = err_info(err)
    out.leaks = count_leaks(out, secret_forms())
    return reply(out)
  end
  local state = { client = c, case = case }
  out.transport = cptokens.transport(c) or "none"
  if case.warm then out.warm = run_op(state, { "list" }) end
  if case.fault then control("/fault", { mode = case.fault[1], params = case.fault[2] or {} }) end
  for _, spec in ipairs(case.ops or {}) do
    out.results[#out.results + 1] = run_op(state, spec)
  end
  if case.recover then
    control("/clear_faults")
    out.recovered = run_op(state, { "list" })
  end
  out.strings = { tostring(state.client), cjson.encode(state.client:info()) }
  state.client:close()
  out.leaks = count_leaks(out, secret_forms())
  reply(out)
end

---------------------------------------------------------------- phases

-- Loaded in init_by_lua (by the test's cpanel_account.lua): what works there.
function M.at_init()
  local c = load_conf()
  -- extra names for the ngx transport (as /etc/hosts would give them)
  local hosts = require("cptokens.ngx")._hosts()
  for name, addr in pairs(c.hosts or {}) do hosts[name] = addr end
  local s = {}
  s.phase = ngx.get_phase()
  s.require_ok, s.version = pcall(function() return require("cptokens")._VERSION end)
  local auto = assert(cptokens.new { url = c.urls.localhost, user = "alice", password = c.secrets.alice_pw,
                                     cafile = c.cafile })
  s.transport = cptokens.transport(auto)
  local list, err = auto:list() -- libcurl: blocking is fine in the master, before any request
  s.list_ok, s.list_err = list ~= nil, err and err_info(err)
  auto:close()
  local forced = assert(cptokens.new { url = c.urls.localhost, user = "alice", password = c.secrets.alice_pw,
                                       transport = "ngx" })
  local _, ferr = forced:list()
  s.forced_ngx = err_info(ferr)
  forced:close()
  init_state = s
end

function M.init_report()
  reply(init_state or { missing = true })
end

local function probe()
  local c = load_conf()
  local auto = assert(cptokens.new { url = c.urls.localhost, user = "alice", password = c.secrets.alice_pw })
  local forced = assert(cptokens.new { url = c.urls.localhost, user = "alice", password = c.secrets.alice_pw,
                                       transport = "ngx" })
  local t, terr = cptokens.transport(forced)
  local p = { auto = cptokens.transport(auto), forced = t or terr.kind }
  if not t then
    local _, lerr = forced:list() -- refused before any I/O
    p.forced_list = lerr and lerr.kind
  end
  auto:close()
  forced:close()
  return p
end

function M.phase(name)
  local p = probe()
  if name == "header_filter" then
    ngx.header["X-Header-Filter"] = p.auto .. "," .. p.forced .. "," .. tostring(p.forced_list)
  else
    ngx.ctx.phases = ngx.ctx.phases or {}
    ngx.ctx.phases[name] = p
  end
end

function M.phases()
  local phases = ngx.ctx.phases or {}
  phases.content = probe()
  reply(phases)
end

---------------------------------------------------------------- raw replies

-- GET /raw/<name>/...: exact bytes on the connection, for HTTP framing the fake server
-- does not produce (it always sends Content-Length). Any request path, any credentials.
local LIST = '{"data":[{"name":"raw","create_time":1700000000,"expires_at":null,"has_full_access":1}],'
  .. '"errors":null,"messages":null,"warnings":null,"metadata":{},"status":1}'

local function chunked(body, size, ext)
  local out = {}
  for i = 1, #body, size do
    local piece = body:sub(i, i + size - 1)
    out[#out + 1] = string.format("%x", #piece) .. (ext or "") .. "\r\n" .. piece .. "\r\n"
  end
  return table.concat(out)
end

local JSON = "Content-Type: application/json\r\n"
local BIG = '{"data":[],"metadata":{"padding":"' .. string.rep("x", 100000) .. '"},"status":1}'

local RAW = {
  chunked = { "HTTP/1.1 200 OK\r\n" .. JSON .. "Transfer-Encoding: chunked\r\n\r\n"
    .. chunked(LIST, 37, ";ext=1") .. "0\r\nX-Trailer: yes\r\n\r\n" },
  close = { "HTTP/1.1 200 OK\r\n" .. JSON .. "Connection: close\r\n\r\n" .. LIST, close = true },
  http10 = { "HTTP/1.0 200 OK\r\n" .. JSON .. "\r\n" .. LIST, close = true },
  continue = { "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n" .. JSON .. "Content-Length: " .. #LIST
    .. "\r\n\r\n" .. LIST },
  lf_only = { "HTTP/1.1 200 OK\n" .. JSON:gsub("\r", "") .. "Content-Length: " .. #LIST .. "\n\n" .. LIST },
  chunked_big = { "HTTP/1.1 200 OK\r\n" .. JSON .. "Transfer-Encoding: chunked\r\n\r\n"
    .. chunked(BIG, 8192) .. "0\r\n\r\n" },
  close_big = { "HTTP/1.1 200 OK\r\n" .. JSON .. "Connection: close\r\n\r\n" .. BIG, close = true },
  chunked_cut = { "HTTP/1.1 200 OK\r\n" .. JSON .. "Transfer-Encoding: chunked\r\n\r\n"
    .. "100\r\n" .. LIST:sub(1, 50), close = true },
  bad_chunk = { "HTTP/1.1 200 OK\r\n" .. JSON .. "Transfer-Encoding: chunked\r\n\r\nzz\r\n" .. LIST, close = true },
  bad_status = { "HTPT/1.1 200 OK\r\n" .. JSON .. "\r\n" .. LIST, close = true },
  gzip = { "HTTP/1.1 200 OK\r\n" .. JSON .. "Content-Encoding: gzip\r\nContent-Length: 10\r\n\r\n0123456789" },
  two_lengths = { "HTTP/1.1 200 OK\r\n" .. JSON .. "Content-Length: " .. #LIST .. "\r\nContent-Length: "
    .. (#LIST + 1) .. "\r\n\r\n" .. LIST, close = true },
  no_reply = { "", close = true },
}

function M.raw()
  local name = ngx.var.uri:match("^/raw/([%w_]+)")
  local r = RAW[name]
  if not r then return ngx.exit(404) end
  ngx.req.read_body()
  local sock = assert(ngx.req.socket(true))
  assert(sock:send(r[1]))
  if r.close then return ngx.exit(444) end
end

function M.timer()
  local c = load_conf()
  local done
  local ok, terr = ngx.timer.at(0, function()
    local client = assert(cptokens.new { url = c.urls.localhost, user = "alice", password = c.secrets.alice_pw })
    local r = { transport = cptokens.transport(client) }
    local list, err = client:list()
    r.ok, r.err = list ~= nil, err and err_info(err)
    client:close()
    done = r
  end)
  if not ok then return reply({ timer_error = terr }) end
  for _ = 1, 1000 do
    if done then break end
    ngx.sleep(0.01)
  end
  reply(done or { timed_out = true })
end

return M
