-- luacheck: globals ngx
--[[
Fake cPanel & WHM server for the cptokens test suite.

Runs inside nginx (lua-nginx-module, one worker: all state lives in this
module). It implements /work/shared/cpanel-api.md: the UAPI Tokens module on
the cPanel ports, the WHM /json-api/cpanel wrapper, WHM API 1 listaccts,
and fault injection.
spec/support/server.lua starts it and drives it through the control port.

Entry points (see nginx.conf.in): api(port_name), other(), control().
The fixture accounts are plain data (M.accounts) so that server.lua can
require this file outside nginx; nothing at load time touches `ngx`.

Choices where the spec leaves room:
  * /json-api/cpanel on the cPanel ports (token or password auth) answers
    like WHM, acting as the authenticated user; cpanel_jsonapi_user may be
    omitted or must name that user.
  * Credentials are checked before the path: bad credentials give 401 on
    any path; valid token auth outside /execute/ and /json-api/cpanel gives
    403; valid password auth on /frontend/... gives a 200 HTML stub, other
    paths 404.
  * WHM API 1 listaccts (WHM port): every cPanel account for root, the owned
    ones for a reseller; domain <user>.example; search on user, domain or
    owner (exact, or regex by default); a bad regex is metadata.result 0.
    Without api.version=1 it answers API 0's shape, as WHM does.
  * WHM API 1 api_token_* (WHM port; see the WHM token section below): each
    WHM account has its own tokens, which authenticate as that account,
    limited to their ACLs and IP list.
  * Query and form body are merged, the body wins on a clash; a repeated
    parameter uses its last value; `?name` (no value) counts as empty.
]]
local cjson = require "cjson"

local M = {}

M.accounts = {
  alice = { kind = "cpanel", user = "alice", password = "alice-Pa55word!", apitokens = true },
  bob = { kind = "cpanel", user = "bob", password = "bob-Pa55word!", apitokens = true, otp = "424242" },
  carol = { kind = "cpanel", user = "carol", password = "carol-Pa55word!", apitokens = false,
            suspended = true },
  -- a password whose HTML-escaped and percent-encoded forms differ from it
  dave = { kind = "cpanel", user = "dave", password = "d&ve<Pa55> \"w'rd%!", apitokens = true },
  root = { kind = "whm", user = "root", token = "ROOTWHMTOKEN0000000000000000000A", owns_all = true },
  -- a reseller with an account of its own and a ceiling of ACLs its tokens never exceed
  res = { kind = "whm", user = "res", token = "RESWHMTOKEN00000000000000000000B", owns = { "alice" },
          acls = { "list-accts", "create-acct", "suspend-acct", "passwd", "create-user-session",
                   "manage-api-tokens", "cpanel-api", "basic-whm-functions" } },
  -- a reseller with no account at all (listaccts answers OK without `acct`)
  lone = { kind = "whm", user = "lone", token = "LONEWHMTOKEN000000000000000000C", owns = {},
           acls = { "list-accts", "manage-api-tokens" } },
}

-- The ACLs of cPanel & WHM 11.120 (cpanel-api.md, 3a): what root holds.
M.BASE_ACLS = {
  "list-accts", "show-bandwidth", "create-acct", "kill-acct", "suspend-acct", "upgrade-account", "ssl",
  "ssl-buy", "ssl-gencrt", "edit-mx", "passwd", "create-dns", "kill-dns", "park-dns", "edit-dns", "add-pkg",
  "edit-pkg", "thirdparty", "mailcheck", "news", "allow-shell", "viewglobalpackages",
  "assign-root-account-enhancements", "allow-addoncreate", "allow-parkedcreate", "add-pkg-ip",
  "add-pkg-shell", "allow-unlimited-pkgs", "allow-emaillimits-pkgs", "allow-unlimited-disk-pkgs",
  "allow-unlimited-bw-pkgs", "status", "stats", "restart", "resftp", "edit-account", "limit-bandwidth",
  "quota", "demo-setup", "rearrange-accts", "clustering", "locale-edit", "all", "acct-summary",
  "basic-whm-functions", "create-user-session", "digest-auth", "generate-email-config",
  "manage-api-tokens", "manage-oidc", "manage-styles", "mysql-info", "public-contact", "ssl-info",
  "basic-system-info", "cors-proxy-get", "cpanel-integration", "list-pkgs", "manage-dns-records",
  "ns-config", "track-email", "file-restore", "cpanel-api", "connected-applications",
}

local LQ, RQ = "\226\128\156", "\226\128\157" -- U+201C, U+201D
local MAX_EXPIRY = "67767976233521999"
local TOKEN_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

local DENIED_HTML = "<html><head><title>Access denied</title></head>"
  .. "<body><h1>Access denied</h1></body></html>\n"
local TOKEN_403 = "Token authentication allows access to UAPI or API 2 calls only."
local WHM_DENIED = '{"cpanelresult":{"apiversion":"2","error":"Access denied","data":{"reason":"Access denied",'
  .. '"result":"0"},"type":"text"}}'
local SECQ_403 = '{"data":{"reason":"You are logging in from an unrecognized computer or network.","result":"0"},'
  .. '"type":"text","error":"You are logging in from an unrecognized computer or network."}'
local TFA_PAGE = '<html><head><title>cPanel Login</title></head><body><form id="tfa_login_form" method="post">'
  .. '<input name="tfatoken"><button type="submit">Log in</button></form></body></html>\n'
local USER_INVALID = '{"data":{"reason":"User parameter is invalid or was not supplied","result":"0"},'
  .. '"type":"text","error":"User parameter is invalid or was not supplied"}'
local EMPTY_OK = '{"data":[],"errors":null,"messages":null,"warnings":null,"metadata":{},"status":1}'

local other_url = "https://127.0.0.1"
local state -- { tokens = {user = {token...}}, faults = {mode = {params, remaining}}, log = {}, opts = {} }
local cache = {} -- prebuilt bodies, keyed by kind and size

local function fresh_state()
  local tokens = {}
  for user, a in pairs(M.accounts) do
    if a.kind == "cpanel" then tokens[user] = {} end
  end
  local whm_tokens = {}
  for user, a in pairs(M.accounts) do
    if a.kind == "whm" then whm_tokens[user] = {} end
  end
  return { tokens = tokens, whm_tokens = whm_tokens, faults = {}, log = {}, opts = {},
           inflight = 0, max_inflight = 0 }
end

-- Accounts added by the control call seed_accounts (removed again by reset).
local seeded = {}
local function unseed()
  for _, name in ipairs(seeded) do M.accounts[name] = nil end
  for _, a in pairs(M.accounts) do
    if a.kind == "whm" and a.seeded_owns then
      for _ = 1, a.seeded_owns do table.remove(a.owns) end
      a.seeded_owns = nil
    end
  end
  seeded = {}
end
state = fresh_state()

function M.configure(conf)
  other_url = conf.other_url or other_url
end

function M.init_worker()
  math.randomseed(math.floor(ngx.now() * 1000) + ngx.worker.pid())
end

---------------------------------------------------------------- JSON helpers
-- Bodies are assembled by hand: key order as real cPanel, `[]` for empty
-- arrays, and no "\/" escaping (lua-cjson 2.1.0 has no switch for it).

local function jstr(s)
  return (cjson.encode(tostring(s)):gsub("\\/", "/"))
end

local function jnum(n)
  if n == math.floor(n) and math.abs(n) < 2 ^ 63 then return string.format("%d", n) end
  return string.format("%.17g", n)
end

-- a stored value echoed as raw JSON (seeded expires_at can be anything)
local function jraw(v)
  if v == nil or v == cjson.null then return "null" end
  if type(v) == "number" then return jnum(v) end
  if type(v) == "string" then return jstr(v) end
  return tostring(v)
end

local function jtime(n) -- create_time; quoted in loose mode
  if state.opts.loose then return '"' .. jnum(n) .. '"' end
  return jnum(n)
end

local function envelope(data, err)
  local status = err and "0" or "1"
  if state.opts.loose then status = '"' .. status .. '"' end
  return '{"data":' .. (err and "null" or data)
    .. ',"errors":' .. (err and "[" .. jstr(err) .. "]" or "null")
    .. ',"messages":null,"warnings":null,"metadata":{},"status":' .. status .. "}"
end

------------------------------------------------------------------ utilities

local function q(s) return LQ .. s .. RQ end

local function strip0(s) return (s:gsub("^0+", "")) end

-- compare two digit strings numerically without going through doubles
local function numcmp(a, b)
  a, b = strip0(a), strip0(b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end

local function now_s() return string.format("%d", ngx.time()) end

local function expired(v)
  if v == nil or v == cjson.null then return false end
  local s = type(v) == "number" and jnum(v) or tostring(v)
  if not s:match("^%d+$") or strip0(s) == "" then return false end -- "", "0": never
  return numcmp(now_s(), s) > 0
end

local function param(args, k)
  local v = args[k]
  if type(v) == "table" then v = v[#v] end
  if v == true then v = "" end
  return v
end

local function new_token()
  local t = {}
  for i = 1, 32 do
    local n = math.random(#TOKEN_CHARS)
    t[i] = TOKEN_CHARS:sub(n, n)
  end
  return table.concat(t)
end

local function find(list, name)
  for i, t in ipairs(list) do
    if t.name == name then return t, i end
  end
end

local function shuffle(a)
  for i = #a, 2, -1 do
    local j = math.random(i)
    a[i], a[j] = a[j], a[i]
  end
end

-- The UAPI function a request calls ("list", "create_full_access", ...), whichever API form.
local function func_of(rec)
  if not rec then return nil end
  local f = rec.uri:match("^/execute/[^/]*/(.*)$") or rec.uri:match("^/json%-api/([%w_]+)$")
  if f and f ~= "cpanel" then return f end
  local v = rec.args and rec.args.cpanel_jsonapi_func
  if type(v) == "table" then v = v[#v] end
  return v
end

-- An active fault's params, counting down `times`. A fault may be narrowed to
-- requests with params.func (the UAPI function), params.auth ("cpanel", "basic",
-- "whm"), params.port ("cpanel", "whm") and params.user (the account a WHM credential
-- acts for: cpanel_jsonapi_user); params.skip lets that many matching requests through first.
local function take(mode, rec)
  local f = state.faults[mode]
  if not f then return nil end
  local p = f.params
  if rec and ((p.func and p.func ~= func_of(rec)) or (p.auth and p.auth ~= rec.auth)
      or (p.port and p.port ~= rec.port)
      or (p.user and p.user ~= param(rec.args, "cpanel_jsonapi_user"))) then
    return nil
  end
  if f.skip and f.skip > 0 then
    f.skip = f.skip - 1
    return nil
  end
  if f.remaining then
    f.remaining = f.remaining - 1
    if f.remaining <= 0 then state.faults[mode] = nil end
  end
  return f.params
end

local function reply(status, ctype, body, headers)
  if ngx.ctx.rec then ngx.ctx.rec.status = status end -- the log record of this request
  ngx.status = status
  ngx.header["Content-Type"] = ctype
  ngx.header["Content-Length"] = #body
  for k, v in pairs(headers or {}) do ngx.header[k] = v end
  ngx.print(body)
end

local function json(body) return reply(200, "application/json", body) end

local function html(status, body, headers) return reply(status, "text/html; charset=utf-8", body, headers) end

------------------------------------------------------------- UAPI Tokens

local function token_json(t)
  return '{"name":' .. jstr(t.name) .. ',"create_time":' .. jtime(t.create_time)
    .. ',"expires_at":' .. jraw(t.expires_at)
    .. ',"has_full_access":1,"features":[],"whitelist_ips":null}'
end

local function synthetic_list(kind, count)
  local key = kind .. ":" .. count
  if not cache[key] then
    local items = {}
    for i = 1, count do
      local exp = (i % 2 == 0) and cjson.null or tostring(1900000000 + i)
      items[i] = token_json({ name = string.format("%s_%06d", kind, i), create_time = 1700000000 + i,
        expires_at = exp })
    end
    cache[key] = "[" .. table.concat(items, ",") .. "]"
  end
  return cache[key]
end

local function required(args, k)
  local v = param(args, k)
  if v == nil then return nil, "Provide the " .. q(k) .. " argument." end
  if v == "" then return nil, "The " .. q(k) .. " argument cannot be empty." end
  return v
end

local function bad_name(name)
  if #name <= 50 and name:match("^[A-Za-z0-9_%-]+$") then return nil end
  return q(name) .. " is not a valid API token name. An API token name must not be longer than 50"
    .. " characters and may only contain the following characters: a-z A-Z 0-9 _ -"
end

local UAPI = {}

function UAPI.create_full_access(list, args)
  local name, err = required(args, "name")
  if not name then return nil, err end
  local exp = param(args, "expires_at")
  if exp ~= nil and exp ~= "" and exp ~= "0" then
    if not exp:match("^%d+$") or numcmp(exp, MAX_EXPIRY) > 0 then
      return nil, q(exp) .. " is not a valid UNIX epoch timestamp."
    end
    if numcmp(exp, now_s()) <= 0 then return nil, "The " .. q(exp) .. " value must be a future date." end
  end
  err = bad_name(name)
  if err then return nil, err end
  if find(list, name) then return nil, "A conflicting API token with the name " .. q(name) .. " already exists." end
  local t = { name = name, token = new_token(), create_time = ngx.time(), expires_at = exp }
  list[#list + 1] = t
  -- the token is made, but the reply carries no usable value: "long", "missing" or "number"
  local bad = take("bad_create")
  if bad then
    local v = ({ long = jstr(("A"):rep(1100)), missing = "null", number = "12345" })[bad.value or "long"]
    return '{"create_time":' .. jtime(t.create_time) .. ',"token":' .. v .. ',"whitelist_ips":null}'
  end
  return '{"create_time":' .. jtime(t.create_time) .. ',"token":' .. jstr(t.token) .. ',"whitelist_ips":null}'
end

function UAPI.list(list)
  local huge = take("huge")
  if huge then return synthetic_list("huge", tonumber(huge.count) or 10000) end
  local items = {}
  for i, t in ipairs(list) do items[i] = token_json(t) end
  shuffle(items)
  return "[" .. table.concat(items, ",") .. "]"
end

function UAPI.rename(list, args)
  local new_name, err = required(args, "new_name")
  if not new_name then return nil, err end
  local name
  name, err = required(args, "name")
  if not name then return nil, err end
  if new_name == name then return nil, q("new_name") .. " must be a different value from " .. q("name") .. "." end
  local t = find(list, name)
  if not t then return nil, "The API token " .. q(name) .. " does not exist." end
  err = bad_name(new_name)
  if err then return nil, err end
  if find(list, new_name) then return nil, "An API token with the name " .. q(new_name) .. " already exists." end
  t.name = new_name
  return "null"
end

function UAPI.revoke(list, args)
  local name, err = required(args, "name")
  if not name then return nil, err end
  local _, i = find(list, name)
  if not i then return "0" end
  table.remove(list, i)
  return "1"
end

local function call_uapi(user, module, func, args)
  if module ~= "Tokens" then return envelope(nil, "Failed to load module " .. q(module) .. ".") end
  local fn = UAPI[func]
  if not fn then return envelope(nil, "Could not find function " .. q(func) .. " in module " .. q(module) .. ".") end
  if not M.accounts[user].apitokens then
    return envelope(nil, "You do not have the feature " .. q("apitokens") .. ".")
  end
  return envelope(fn(state.tokens[user], args))
end

-- /json-api/cpanel: the UAPI object wrapped under "result"
local function jsonapi(args, may_act_for)
  local user = param(args, "cpanel_jsonapi_user")
  local acct = user and M.accounts[user]
  if not acct or acct.kind ~= "cpanel" or not may_act_for(user) then return USER_INVALID end
  if param(args, "cpanel_jsonapi_apiversion") ~= "3" then
    local why = "This fake only implements cpanel_jsonapi_apiversion=3"
    return '{"data":{"reason":' .. jstr(why) .. ',"result":"0"},"type":"text","error":' .. jstr(why) .. "}"
  end
  local module = param(args, "cpanel_jsonapi_module") or ""
  local func = param(args, "cpanel_jsonapi_func") or ""
  return '{"apiversion":3,"func":' .. jstr(func) .. ',"module":' .. jstr(module)
    .. ',"result":' .. call_uapi(user, module, func, args) .. "}"
end

------------------------------------------------------------ HTTP handling

local function parse_auth(header)
  if type(header) ~= "string" then return nil end
  local scheme, cred = header:match("^%s*(%S+)%s+(.-)%s*$")
  scheme = scheme and scheme:lower()
  if scheme == "basic" then
    cred = ngx.decode_base64(cred)
  elseif scheme ~= "cpanel" and scheme ~= "whm" then
    return nil
  end
  local user, secret = (cred or ""):match("^([^:]*):(.*)$")
  return scheme, user, secret
end

-- Read the request, append its log record; returns the record and the secret.
local function request(port)
  local method = ngx.req.get_method()
  local args = ngx.req.get_uri_args(0)
  local ctype = ngx.var.content_type
  if method == "POST" and ctype and ctype:lower():find("application/x-www-form-urlencoded", 1, true) then
    ngx.req.read_body()
    for k, v in pairs(ngx.req.get_post_args(0) or {}) do args[k] = v end
  end
  local authz = ngx.var.http_authorization
  local scheme, user, secret = parse_auth(authz)
  local rec = {
    port = port, method = method, uri = ngx.var.uri, args = args,
    auth = scheme, auth_user = user, has_authorization = authz ~= nil,
    otp_present = ngx.var.http_x_cpanel_otp ~= nil, cookie_present = ngx.var.http_cookie ~= nil,
    connection = tonumber(ngx.var.connection), connection_requests = tonumber(ngx.var.connection_requests),
    content_type = ctype, user_agent = ngx.var.http_user_agent, time = ngx.now(),
  }
  state.log[#state.log + 1] = rec
  ngx.ctx.rec = rec
  return rec, secret
end

local function cpanel_login_ok(rec, secret)
  local acct = rec.auth_user and M.accounts[rec.auth_user]
  if not acct or acct.kind ~= "cpanel" or not secret or secret == "" then return false end
  if rec.auth == "cpanel" then
    for _, t in ipairs(state.tokens[acct.user]) do
      if t.token == secret then return not expired(t.expires_at) end
    end
  elseif rec.auth == "basic" and secret == acct.password then
    return acct.otp == nil or ngx.var.http_x_cpanel_otp == acct.otp
  end
  return false
end

local function serve_cpanel(rec, secret)
  if not cpanel_login_ok(rec, secret) then return html(401, DENIED_HTML) end
  local uri, user = rec.uri, rec.auth_user
  local module, func = uri:match("^/execute/([^/]*)/?(.*)$")
  if module then return json(call_uapi(user, module, func, rec.args)) end
  if uri == "/json-api/cpanel" then
    if param(rec.args, "cpanel_jsonapi_user") == nil then rec.args.cpanel_jsonapi_user = user end
    return json(jsonapi(rec.args, function(u) return u == user end))
  end
  if rec.auth == "cpanel" then return reply(403, "text/plain; charset=utf-8", TOKEN_403) end
  if uri:find("^/frontend/") then
    return html(200, "<html><head><title>cPanel</title></head><body>cPanel fake</body></html>\n")
  end
  return html(404, "<html><head><title>Not Found</title></head><body>Not Found</body></html>\n")
end

-- Whether the WHM account w may act for the cPanel account user.
local function may_act(w, user)
  if w.owns_all then return true end
  for _, owned in ipairs(w.owns) do
    if owned == user then return true end
  end
  return false
end

-- The reseller that owns user, or root.
local function owner_of(user)
  for name, a in pairs(M.accounts) do
    if a.kind == "whm" and not a.owns_all and may_act(a, user) then return name end
  end
  return "root"
end

-- WHM API 1's envelope; a reason makes it a failure.
local function whm1(command, data, reason)
  return '{"data":' .. (data or "{}") .. ',"metadata":{"command":' .. jstr(command)
    .. ',"reason":' .. jstr(reason or "OK") .. ',"result":' .. (reason and "0" or "1")
    .. ',"version":1}}'
end

-- Whether account record rec matches listaccts' search; nil, why for a bad regex.
local function matches(rec, args)
  local search = param(args, "search")
  if not search or search == "" then return true end
  local v = rec[param(args, "searchtype") or "user"] or ""
  if param(args, "searchmethod") == "exact" then return v == search end
  local from, _, err = ngx.re.find(v, search, "jo")
  if err then return nil, "Invalid regular expression: " .. err end
  return from ~= nil
end

-- listaccts for the WHM account w: zero accounts is OK with no `acct` key.
local function listaccts(w, args)
  if param(args, "api.version") ~= "1" then return '{"acct":[],"status":1,"statusmsg":"Ok"}' end
  local names, items = {}, {}
  for user, a in pairs(M.accounts) do
    if a.kind == "cpanel" and may_act(w, user) then names[#names + 1] = user end
  end
  table.sort(names)
  for _, user in ipairs(names) do
    local rec = { user = user, domain = user .. ".example", owner = owner_of(user) }
    local ok, why = matches(rec, args)
    if why then return whm1("listaccts", nil, why) end
    if ok then
      items[#items + 1] = '{"domain":' .. jstr(rec.domain) .. ',"owner":' .. jstr(rec.owner)
        .. ',"suspended":' .. (M.accounts[user].suspended and "1" or "0") .. ',"user":' .. jstr(user) .. "}"
    end
  end
  if state.opts.list_self then -- switch list_self: as WHM, the WHM user's own account (root's too)
    table.insert(items, 1, '{"domain":' .. jstr(w.user .. ".example") .. ',"owner":"root","suspended":0,"user":'
      .. jstr(w.user) .. "}")
  end
  if #items == 0 then return whm1("listaccts", "{}") end
  return whm1("listaccts", '{"acct":[' .. table.concat(items, ",") .. "]}")
end

------------------------------------------------------- WHM API 1 api_token_*

-- The values of a repeated parameter: key-0, key-1, ... in index order (a bare `key` too).
local function repeated(args, key)
  local idx = {}
  for k in pairs(args) do
    local n = type(k) == "string" and k:match("^" .. key:gsub("%-", "%%-") .. "%-(%d+)$")
    if n then idx[#idx + 1] = tonumber(n) end
  end
  table.sort(idx)
  local out = {}
  local bare = param(args, key)
  if bare ~= nil then out[1] = bare end
  for _, n in ipairs(idx) do out[#out + 1] = param(args, key .. "-" .. n) end
  return out, #out > 0
end

-- The ACLs the WHM account w holds, as a set.
local function held_acls(w)
  local set = {}
  for _, a in ipairs(w.acls or M.BASE_ACLS) do set[a] = true end
  return set
end

local function ipv4(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  local parts = { tonumber(a), tonumber(b), tonumber(c), tonumber(d) }
  for _, v in ipairs(parts) do
    if v > 255 then return nil end
  end
  return table.concat(parts, ".")
end

-- An IPv6 address written out in full ("2001:0db8:0000:...:0001"), or nil.
local function ipv6(s)
  if not s:find(":", 1, true) or s:find("[^%x:]") then return nil end
  local head, tail = s:match("^(.-)::(.*)$")
  local function groups(t)
    local g = {}
    if t == "" then return g end
    for part in (t .. ":"):gmatch("([^:]*):") do
      if part == "" or #part > 4 then return nil end
      g[#g + 1] = ("%04x"):format(tonumber(part, 16))
    end
    return g
  end
  local g
  if head then
    local h, t = groups(head), groups(tail)
    if not h or not t or #h + #t > 7 then return nil end
    g = h
    for _ = 1, 8 - #h - #t do g[#g + 1] = "0000" end
    for _, v in ipairs(t) do g[#g + 1] = v end
  else
    g = groups(s)
    if not g or #g ~= 8 then return nil end
  end
  return table.concat(g, ":")
end

-- WHM's normal form of an allow-list entry: IPv4 with /32 dropped, IPv6 in full; nil if bad.
local function normal_ip(v)
  local addr, bits = v:match("^([^/]+)/(%d+)$")
  addr = addr or v
  local a4, a6 = ipv4(addr), ipv6(addr)
  if not a4 and not a6 then return nil end
  bits = bits and tonumber(bits)
  if bits and bits > (a4 and 32 or 128) then return nil end
  if a4 then return (bits and bits ~= 32) and (a4 .. "/" .. bits) or a4 end
  return bits and (a6 .. "/" .. bits) or a6
end

local function ip_list(values)
  local seen, out = {}, {}
  for _, v in ipairs(values) do
    local n = normal_ip(v)
    if not n then return nil, "Invalid IP address or range: " .. v end
    if not seen[n] then seen[n], out[#out + 1] = true, n end
  end
  if #out > 100 then return nil, "You may not specify more than 100 IP addresses." end
  table.sort(out)
  return out
end

local function ipv4_num(a)
  local x, y, z, w = a:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  return ((tonumber(x) * 256 + tonumber(y)) * 256 + tonumber(z)) * 256 + tonumber(w)
end

-- Whether the client address is in the token's allow-list (IPv4 ranges and exact entries).
local function ip_allowed(t, remote)
  if not t.ips then return true end
  for _, e in ipairs(t.ips) do
    local net, bits = e:match("^(%d+%.%d+%.%d+%.%d+)/(%d+)$")
    if e == remote then return true end
    if net and remote:find("^%d+%.%d+%.%d+%.%d+$") then
      local span = 2 ^ (32 - tonumber(bits))
      if math.floor(ipv4_num(net) / span) == math.floor(ipv4_num(remote) / span) then return true end
    end
  end
  return false
end

local function full_access(t) return t.acls == nil or t.acls_set.all end

local function jarray(list)
  local items = {}
  for i, v in ipairs(list) do items[i] = jstr(v) end
  return "[" .. table.concat(items, ",") .. "]"
end

-- A token's record; acls as an array (create, update, details) or as WHM's list
-- object of 0/1 flags over every ACL the owner holds; no ACL list: null.
local function whm_token_json(t, w, flags, secret)
  local acls = "null"
  if t.acls and flags then
    local names = {}
    for a in pairs(held_acls(w)) do names[#names + 1] = a end
    table.sort(names)
    for i, a in ipairs(names) do names[i] = jstr(a) .. ":" .. (t.acls_set[a] and "1" or "0") end
    acls = "{" .. table.concat(names, ",") .. "}"
  elseif t.acls then
    acls = jarray(t.acls)
  end
  return "{" .. (secret and '"token":' .. jstr(t.token) .. "," or "")
    .. '"name":' .. jstr(t.name) .. ',"create_time":' .. jnum(t.create_time)
    .. ',"expires_at":' .. (t.expires_at and jnum(t.expires_at) or "null")
    .. ',"acls":' .. acls .. ',"whitelist_ips":' .. (t.ips and jarray(t.ips) or "null") .. "}"
end

local WHM_TOKENS = {}

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

-- The ACLs to grant (nil: none given), or nil, why when w does not hold one.
local function grant(w, args)
  local acls, given = repeated(args, "acl")
  if not given then return nil end
  local held, bad = held_acls(w), {}
  for _, a in ipairs(acls) do
    if not held[a] then bad[#bad + 1] = a end
  end
  if #bad > 0 then return nil, "Invalid or unauthorized ACL(s) specified: " .. table.concat(bad, ", ") end
  table.sort(acls)
  return acls
end

local function whm_expiry(args)
  local exp = param(args, "expires_at")
  if exp == nil or exp == "" or exp == "0" then return nil, nil, exp ~= nil end
  if not exp:match("^%d+$") then return nil, q(exp) .. " is not a valid UNIX epoch timestamp." end
  if numcmp(exp, now_s()) <= 0 then return nil, "The " .. q(exp) .. " value must be a future date." end
  return tonumber(exp)
end

local function set_ips(t, args)
  local values, given = repeated(args, "whitelist_ip")
  if not given then return true end
  if #values == 1 and values[1] == "any" then
    t.ips = nil
    return true
  end
  local ips, why = ip_list(values)
  if not ips then return nil, why end
  t.ips = ips
  return true
end

function WHM_TOKENS.api_token_create(w, list, args)
  local fail = "The system failed to create the API token: "
  local name = param(args, "token_name")
  if name == nil or name == "" then return nil, fail .. "Provide the " .. q("token_name") .. " argument." end
  if bad_name(name) then return nil, fail .. bad_name(name) end
  if find(list, name) then return nil, fail .. "A conflicting API token with the name " .. q(name) .. " already exists." end
  local acls, why = grant(w, args)
  if why then return nil, why end
  local exp
  exp, why = whm_expiry(args)
  if why then return nil, fail .. why end
  local t = { name = name, token = new_token(), create_time = ngx.time(), expires_at = exp, acls = acls,
              acls_set = set_of(acls or {}) }
  local ok
  ok, why = set_ips(t, args)
  if not ok then return nil, fail .. why end
  list[#list + 1] = t
  local bad = take("bad_create")
  if bad then return '{"name":' .. jstr(name) .. ',"create_time":' .. jnum(t.create_time) .. ',"token":null}' end
  return whm_token_json(t, w, false, true)
end

function WHM_TOKENS.api_token_list(w, list)
  local items = {}
  for i, t in ipairs(list) do items[i] = jstr(t.name) .. ":" .. whm_token_json(t, w, true) end
  shuffle(items)
  return '{"tokens":{' .. table.concat(items, ",") .. "}}"
end

function WHM_TOKENS.api_token_update(w, list, args)
  local fail = "The system failed to update the API token: "
  local name = param(args, "token_name")
  if name == nil or name == "" then return nil, fail .. "Provide the " .. q("token_name") .. " argument." end
  local t = find(list, name)
  if not t then return nil, fail .. "The API token " .. q(name) .. " does not exist." end
  local new_name = param(args, "new_name")
  if new_name and new_name ~= name then
    if bad_name(new_name) then return nil, fail .. bad_name(new_name) end
    if find(list, new_name) then return nil, fail .. "An API token with the name " .. q(new_name) .. " already exists." end
  end
  local acls, why = grant(w, args)
  if why then return nil, why end
  local exp, never
  exp, why, never = whm_expiry(args)
  if why then return nil, fail .. why end
  local copy = {}
  for k, v in pairs(t) do copy[k] = v end
  local ok
  ok, why = set_ips(copy, args)
  if not ok then return nil, fail .. why end
  t.ips = copy.ips
  if acls then t.acls, t.acls_set = acls, set_of(acls) end
  if exp or never then t.expires_at = exp end
  if new_name and new_name ~= "" then t.name = new_name end
  return whm_token_json(t, w, false)
end

function WHM_TOKENS.api_token_revoke(_, list, args)
  local names = repeated(args, "token_name")
  if #names == 0 then return nil, "Provide at least one " .. q("token_name") .. " argument." end
  for _, n in ipairs(names) do
    local _, i = find(list, n)
    if i then table.remove(list, i) end
  end
  return "{}"
end

function WHM_TOKENS.api_token_get_details(w, list, args)
  local secret = param(args, "token")
  if secret == nil or secret == "" then
    return nil, "The system failed to read the API token: Provide the " .. q("token") .. " argument."
  end
  for _, t in ipairs(list) do
    if t.token == secret and not expired(t.expires_at) then return whm_token_json(t, w, false) end
  end
  return nil, nil, true -- OK, without data
end

-- The ACL a call needs when made with a restricted token.
local NEEDS = { listaccts = "list-accts", api_token_create = "manage-api-tokens",
  api_token_list = "manage-api-tokens", api_token_update = "manage-api-tokens",
  api_token_revoke = "manage-api-tokens", cpanel = "cpanel-api" }

-- The WHM account a request authenticates as, and the token it used (nil: the account's own).
local function whm_login(rec, secret)
  local w = rec.auth == "whm" and rec.auth_user and M.accounts[rec.auth_user]
  if not w or w.kind ~= "whm" or not secret or secret == "" then return nil end
  if secret == w.token then return w end
  for _, t in ipairs(state.whm_tokens[w.user]) do
    if t.token == secret and not expired(t.expires_at) and ip_allowed(t, ngx.var.remote_addr) then
      return w, t
    end
  end
end

local function whm_api1(w, func, args)
  local fn = WHM_TOKENS[func]
  if param(args, "api.version") ~= "1" then -- API 0's shape
    return '{"status":1,"statusmsg":"Ok","tokens":[]}'
  end
  local data, why, empty = fn(w, state.whm_tokens[w.user], args)
  if empty then return '{"metadata":{"command":' .. jstr(func) .. ',"reason":"OK","result":1,"version":1}}' end
  return whm1(func, data, why)
end

local function serve_whm(rec, secret)
  local w, t = whm_login(rec, secret)
  if not w then return reply(403, "application/json", WHM_DENIED) end
  local func = rec.uri:match("^/json%-api/([%w_]+)$")
  if t and NEEDS[func] and not full_access(t) and not t.acls_set[NEEDS[func]] then
    return reply(403, "application/json", WHM_DENIED)
  end
  if func == "listaccts" then return json(listaccts(w, rec.args)) end
  if func and WHM_TOKENS[func] then return json(whm_api1(w, func, rec.args)) end
  if func ~= "cpanel" then
    return html(404, "<html><head><title>Not Found</title></head><body>Not Found</body></html>\n")
  end
  return json(jsonapi(rec.args, function(u) return may_act(w, u) end))
end

local function is_list(rec)
  if rec.port == "whm" then
    return rec.uri == "/json-api/cpanel" and param(rec.args, "cpanel_jsonapi_func") == "list"
  end
  return rec.uri == "/execute/Tokens/list"
end

local REASONS = { [500] = "Internal Server Error", [502] = "Bad Gateway", [503] = "Service Unavailable" }

-- Faults that replace the answer, in the order they are tried.
local FAULTS = {
  { "reset", function() return ngx.exit(444) end },
  { "hang", function(p)
    ngx.sleep(tonumber(p.seconds) or 120)
    return ngx.exit(444)
  end },
  { "truncated", function()
    ngx.status = 200
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Content-Length"] = #EMPTY_OK
    ngx.print(EMPTY_OK:sub(1, 20))
    ngx.flush(true)
    return ngx.exit(ngx.ERROR)
  end },
  { "status", function(p)
    local code = tonumber(p.status) or 500
    local reason = REASONS[code] or "Error"
    return html(code, ("<html><head><title>%d %s</title></head><body><h1>%s</h1></body></html>\n")
      :format(code, reason, reason))
  end },
  { "json_status", function(p)
    return reply(tonumber(p.status) or 401, "application/json", '{"status":0,"errors":["Access denied"]}')
  end },
  { "login", function()
    return html(200, '<html><head><title>cPanel Login</title></head><body>'
      .. '<form action="/login/" method="post"><input name="user"><input name="pass" type="password">'
      .. '<button type="submit">Log in</button></form></body></html>\n')
  end },
  { "malformed", function() return json('{"status":1,"data":[') end },
  { "whm_denied", function() return reply(403, "application/json", WHM_DENIED) end },
  { "token_path", function() return reply(403, "text/plain; charset=utf-8", TOKEN_403) end },
  { "secq", function() return reply(403, "application/json", SECQ_403) end },
  { "tfa", function() return html(200, TFA_PAGE) end },
  -- A server that echoes the credential back, in every form it came in: the
  -- Authorization value, its credential part, the decoded Basic pair and the
  -- secret (plain, HTML-escaped, percent-encoded). params.status: 200 (an API
  -- failure, status 0), 401 or 403 (a JSON error body); params.shape "whm"
  -- answers WHM's form ({"error": ..., "data": {"reason": ...}}).
  { "echo", function(p)
    local authz = ngx.var.http_authorization or ""
    local scheme, cred = authz:match("^(%S+)%s+(.*)$")
    local forms = { authz, cred or "" }
    if scheme and scheme:lower() == "basic" then forms[#forms + 1] = ngx.decode_base64(cred) or "" end
    local secret = (forms[#forms]):match(":(.*)$") or ""
    forms[#forms + 1] = secret
    forms[#forms + 1] = (secret:gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;"):gsub('"', "&quot;"))
    forms[#forms + 1] = ngx.escape_uri(secret)
    local otp = ngx.var.http_x_cpanel_otp
    if otp then forms[#forms + 1] = otp end
    local msg = "bad credentials: " .. table.concat(forms, " | ")
    local code = tonumber(p.status) or 200
    if p.shape == "whm1" then -- a WHM API 1 failure
      return reply(code, "application/json", '{"data":{},"metadata":{"command":"api_token_list","reason":'
        .. jstr(msg) .. ',"result":0,"version":1}}')
    end
    if p.shape == "whm" then
      return reply(code, "application/json", '{"data":{"reason":' .. jstr(msg) .. ',"result":"0"},'
        .. '"type":"text","error":' .. jstr(msg) .. "}")
    end
    local items = {}
    for i, f in ipairs(forms) do items[i] = jstr("echo " .. f) end
    local body = '{"data":null,"errors":[' .. jstr(msg) .. "," .. table.concat(items, ",")
      .. '],"messages":null,"warnings":null,"metadata":{},"status":0}'
    if code == 200 and ngx.var.uri == "/json-api/cpanel" then
      body = '{"apiversion":3,"func":"list","module":"Tokens","result":' .. body .. "}"
    end
    return reply(code, "application/json", body)
  end },
  { "notenvelope", function(p) return json(p.body or "[]") end },
  { "redirect", function()
    return html(302, "<html><head><title>Moved</title></head><body>Moved</body></html>\n",
      { Location = other_url .. "/execute/Tokens/list" })
  end },
  { "drip", function(p)
    local seconds = tonumber(p.seconds) or 30
    local body = EMPTY_OK
    if #body <= seconds then body = string.rep(" ", seconds - #body + 1) .. body end
    ngx.status = 200
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Content-Length"] = #body
    for i = 1, seconds do
      ngx.print(body:sub(i, i))
      if not ngx.flush(true) then return ngx.exit(444) end
      ngx.sleep(1)
    end
    ngx.print(body:sub(seconds + 1))
  end },
  { "bigbody", function(p)
    local bytes = tonumber(p.bytes) or 16 * 1024 * 1024
    local key = "bigbody:" .. bytes
    if not cache[key] then
      local head = '{"data":[],"errors":null,"messages":null,"warnings":null,"metadata":{"padding":"'
      local tail = '"},"status":1}'
      cache[key] = head .. string.rep("x", math.max(0, bytes - #head - #tail)) .. tail
    end
    return json(cache[key])
  end },
}

local KNOWN_FAULTS = { latency = true, slow = true, huge = true, fixed_list = true, bad_create = true }
for _, f in ipairs(FAULTS) do KNOWN_FAULTS[f[1]] = true end

local serve -- M.api's work, below

-- Counts the requests in flight on the API ports (the highest count since reset is what
-- the control call inflight reports: a client's concurrency measured on the server's side).
function M.api(port)
  state.inflight = state.inflight + 1
  if state.inflight > state.max_inflight then state.max_inflight = state.inflight end
  local st = state
  local ok, err = pcall(serve, port)
  st.inflight = st.inflight - 1
  if not ok then error(err, 0) end
end

function serve(port)
  local rec, secret = request(port)
  -- Switch set_cookie: every reply sets a session cookie, as cPanel's login does (a client
  -- must never send it back, least of all for another account on a shared connection).
  if state.opts.set_cookie then
    ngx.header["Set-Cookie"] = "cpsession=" .. (rec.auth_user or "") .. "%3aFAKESESSION; path=/; secure"
  end
  local p = take("latency", rec)
  if p then ngx.sleep((tonumber(p.ms) or 0) / 1000) end
  p = take("slow", rec)
  if p then ngx.sleep(tonumber(p.seconds) or 1) end
  for _, f in ipairs(FAULTS) do
    p = take(f[1], rec)
    if p then return f[2](p) end
  end
  if state.faults.fixed_list and is_list(rec) then
    local body = envelope(synthetic_list("fixed", tonumber(take("fixed_list").count) or 100))
    if port == "whm" then body = '{"apiversion":3,"func":"list","module":"Tokens","result":' .. body .. "}" end
    return json(body)
  end
  if port == "whm" then return serve_whm(rec, secret) end
  return serve_cpanel(rec, secret)
end

function M.other()
  request("other")
  return json('{"status":1,"data":[]}')
end

------------------------------------------------------------------ control

local CONTROL = {}

function CONTROL.reset()
  unseed()
  state = fresh_state()
end

-- The requests in flight now, and the most at once since reset.
function CONTROL.inflight()
  return { now = state.inflight, max = state.max_inflight }
end

-- Adds req.count cPanel accounts "<prefix>NNNNN" (prefix default "u"), owned by the WHM
-- account req.owner (default root: a reseller's `owns` gets them); every req.suspend_every-th
-- one suspended; req.apitokens false turns the feature off. Returns the names.
function CONTROL.seed_accounts(req)
  local n, prefix = assert(tonumber(req.count), "count is required"), req.prefix or "u"
  local owner = M.accounts[req.owner or "root"]
  assert(owner and owner.kind == "whm", "no such WHM account: " .. tostring(req.owner))
  local every, names = tonumber(req.suspend_every), {}
  for i = 1, n do
    local name = string.format("%s%05d", prefix, i)
    assert(not M.accounts[name], "account exists: " .. name)
    M.accounts[name] = { kind = "cpanel", user = name, password = name .. "-Pa55!",
                         apitokens = req.apitokens ~= false, suspended = every and i % every == 0 }
    state.tokens[name] = {}
    seeded[#seeded + 1], names[i] = name, name
    if not owner.owns_all then
      owner.owns[#owner.owns + 1] = name
      owner.seeded_owns = (owner.seeded_owns or 0) + 1
    end
  end
  return names
end

function CONTROL.fault(req)
  local params = type(req.params) == "table" and req.params or {}
  assert(KNOWN_FAULTS[req.mode], "unknown fault mode: " .. tostring(req.mode))
  local times = tonumber(params.times)
  if times and times <= 0 then return end
  state.faults[req.mode] = { params = params, remaining = times, skip = tonumber(params.skip) }
end

function CONTROL.clear_faults()
  state.faults = {}
end

-- The request records, all or (req.from) from that index on.
function CONTROL.log(req)
  local from = tonumber(req.from)
  if not from then return state.log end
  local out = {}
  for i = math.max(1, math.floor(from)), #state.log do out[#out + 1] = state.log[i] end
  return out
end

function CONTROL.count(filter)
  local n = 0
  for _, rec in ipairs(state.log) do
    local match = next(filter) ~= nil or rec.port ~= "other"
    for k, v in pairs(filter) do
      if rec[k] ~= v then match = false end
    end
    if match then n = n + 1 end
  end
  return n
end

function CONTROL.seed_token(req)
  local list = assert(state.tokens[req.user], "no such cPanel account: " .. tostring(req.user))
  local t = req.token or {}
  assert(type(t.name) == "string", "token.name is required")
  local stored = { name = t.name, token = t.token or new_token(), create_time = t.create_time or ngx.time(),
    expires_at = t.expires_at }
  local _, i = find(list, t.name)
  list[i or #list + 1] = stored
  return stored
end

function CONTROL.tokens(req)
  return assert(state.tokens[req.user], "no such cPanel account: " .. tostring(req.user))
end

-- A WHM account's tokens as the server holds them (with their secrets: tests only).
function CONTROL.whm_tokens(req)
  local list = assert(state.whm_tokens[req.user], "no such WHM account: " .. tostring(req.user))
  local out = {}
  for i, t in ipairs(list) do
    out[i] = { name = t.name, token = t.token, create_time = t.create_time, expires_at = t.expires_at,
               acls = t.acls or cjson.null, whitelist_ips = t.ips or cjson.null }
  end
  return out
end

function CONTROL.seed_whm_token(req)
  local list = assert(state.whm_tokens[req.user], "no such WHM account: " .. tostring(req.user))
  local t = req.token or {}
  assert(type(t.name) == "string", "token.name is required")
  local acls = type(t.acls) == "table" and t.acls or nil
  local ips = type(t.whitelist_ips) == "table" and assert(ip_list(t.whitelist_ips)) or nil
  local stored = { name = t.name, token = t.token or new_token(), create_time = t.create_time or ngx.time(),
    expires_at = tonumber(t.expires_at), acls = acls, acls_set = set_of(acls or {}), ips = ips }
  local _, i = find(list, t.name)
  list[i or #list + 1] = stored
  return { name = stored.name, token = stored.token }
end

function CONTROL.set(opts)
  for k, v in pairs(opts) do
    if v == cjson.null then v = nil end
    state.opts[k] = v
  end
end

function M.control()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  local handler = CONTROL[ngx.var.uri:match("^/([%w_]+)$") or ""]
  if not handler then return reply(404, "text/plain", "no such control endpoint\n") end
  local ok, res = pcall(function()
    local req = (body and body ~= "") and cjson.decode(body) or {}
    return cjson.encode({ result = handler(req) })
  end)
  if not ok then return reply(400, "text/plain", tostring(res) .. "\n") end
  return json(res)
end

return M
