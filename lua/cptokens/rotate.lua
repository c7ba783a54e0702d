--- Safe rotation, pruning and auditing of cPanel API tokens.
--
-- install(Client, cptokens) adds to the client methods:
--   client:rotate{ prefix, expires_in | expires_at, keep, store, verify, verify_url, current,
--                  lock, lock_timeout }
--   client:prune{ prefix, expired, now }
--   client:audit{ within, now }
--
-- Rotation: lock the store (store.lock: one rotation of a store at a time, and
-- a journal of names); list; create "<prefix>-<UTC YYYYMMDDHHMMSS>[-N]", its
-- name journaled first; verify it with a call made with it; store it (the
-- store is replaced only now, so until then it holds the previous, working
-- token); only then revoke the old tokens beyond `keep`, the names to revoke
-- journaled before the store. A failure before the end revokes the new token
-- and touches nothing old. A process killed at any instant leaves the stored
-- token valid, and the next run finishes its work from the journal. A store
-- path owns only its token and its history; other tokens with the prefix are
-- reported as foreign and left alone.
--
-- The same rotation, with the same guarantees, serves both token families:
-- cPanel-user tokens (a cptokens.new client) and WHM API tokens (cptokens.whm,
-- whose new tokens inherit the ACLs and IP list of the rotation they replace).
-- A family says how to list, create, revoke and verify its tokens, and which
-- connection a stored token works with; the steps are cptokens.rotate_run,
-- names and bookkeeping cptokens.rotate_plan, prune and audit cptokens.rotate_audit.
--
-- Portable across Lua 5.1 to 5.4 and LuaJIT.
--
-- @module cptokens.rotate
local core = require "cptokens.core"
local P = require "cptokens.rotate_plan"
local run = require "cptokens.rotate_run"
local audit = require "cptokens.rotate_audit"

local ipairs, pairs, pcall, type = ipairs, pairs, pcall, type

local M = {}

--- Fault injection for the test suite only: when set, rotate calls
-- M._test_hook(step) after each step ("list", "create", "store", "verify",
-- "revoke") has completed.
M._test_hook = nil
run.hook = function(step)
  if M._test_hook then M._test_hook(step) end
end

M.PREFIX_MAX, M.parse_name, M.matches = P.PREFIX_MAX, P.parse_name, P.matches

local clean, invalid = P.clean, P.invalid

local CONN_KEYS = { "cafile", "capath", "insecure", "timeout", "connect_timeout", "max_response",
                    "transport" }

--- The connection options of info (client:info()), for a client of the new token.
local function conn_of(info, url, user)
  local conn = { url = url, user = user }
  for _, k in ipairs(CONN_KEYS) do conn[k] = info[k] end
  return conn
end

--- A client for the new token, made by new(opts); nil, err when it cannot be made.
local function client_for(new, conn, extra)
  local opts = {}
  for k, v in pairs(conn) do
    if k ~= "kind" then opts[k] = v end
  end
  for k, v in pairs(extra) do opts[k] = v end
  if not opts.insecure then opts.insecure = nil end
  local ok, c, cerr = pcall(new, opts)
  if not ok then
    return nil, core.error("invalid", "cannot make a client for the new token: " .. clean(c))
  end
  return c, cerr
end

-- ------------------------------------------------------ cPanel-user tokens

--- The family of cPanel-user tokens (client:rotate); new is cptokens.new.
local function cpanel_family(new)
  local fam = { credential = "token" }
  function fam.list(c) return c:list() end
  function fam.revoke(c, name) return c:revoke(name) end
  function fam.create(c, name, cfg)
    return c:create(name, cfg.expires_at and { expires_at = cfg.expires_at } or nil)
  end
  --- The connection a token for this account works with. nil, err when it cannot be
  -- known (a WHM client on a port other than 2087 without verify_url).
  function fam.conn(info, verify_url)
    local url = verify_url
    if url == nil and info.credential == "whm_token" then
      local head, tail = info.url:match("^(https?://[^/]+):2087(.*)$")
      if not head then
        return invalid("rotate: a WHM client needs verify_url (the cPanel URL, port 2083) to verify "
          .. "and store a user token, or verify = false and a store function")
      end
      url = head .. ":2083" .. tail
    end
    return conn_of(info, url or info.url, info.user)
  end
  --- An authenticated call made with the new token, on a client of its own.
  function fam.verify(cfg, tok)
    local c, err = client_for(new, cfg.conn, { token = tok.token })
    if not c then return nil, err end
    local list
    list, err = c:list()
    c:close()
    if not list then return nil, err end
    return true
  end
  return fam
end

-- -------------------------------------------------------- WHM API tokens

local WHM_OPTIONS = { acls = true, whitelist_ips = true }

local function strings(v, what)
  if v == nil then return true end
  if type(v) ~= "table" then return invalid("rotate: " .. what .. " must be an array of strings") end
  for _, s in ipairs(v) do
    if type(s) ~= "string" then return invalid("rotate: " .. what .. " must be an array of strings") end
  end
  return true
end

--- The family of WHM API tokens (whm:rotate); c is the WHM account's core client.
local function whm_family(new)
  local fam = { credential = "whm_token", options = WHM_OPTIONS }
  function fam.list(c) return c:_whm_list() end
  function fam.revoke(c, name) return c:_whm_revoke({ name }) end
  function fam.check(cfg, opts)
    local ok, err = strings(opts.acls, "acls")
    if ok then ok, err = strings(opts.whitelist_ips, "whitelist_ips") end
    if not ok then return nil, err end
    cfg.acls, cfg.whitelist_ips = opts.acls, opts.whitelist_ips
    return true
  end
  --- The new token: the ACLs and IP list given, or those of the newest rotation it
  -- replaces (a rotation must not widen, or narrow, what the token may do).
  function fam.create(c, name, cfg, plan)
    local acls, ips = cfg.acls, cfg.whitelist_ips
    local newest = plan.olds[1]
    for _, t in ipairs(newest and plan.listed or {}) do
      if t.name == newest.name then
        if acls == nil and not t.full_access then acls = t.acls end
        if ips == nil then ips = t.whitelist_ips end
      end
    end
    local tok, err = c:_whm_create(name, acls, cfg.expires_at, ips)
    if not tok and type(err) == "table" and err.created then c:_whm_revoke({ name }) end
    return tok, err
  end
  function fam.conn(info, verify_url)
    local conn = conn_of(info, verify_url or info.url, info.whm_user or info.user)
    conn.kind = "whm"
    return conn
  end
  --- A call any WHM token may make, made with the new token: api_token_get_details of
  -- itself (it authenticates from here, and the server's record is the one created).
  function fam.verify(cfg, tok)
    local c, err = client_for(new, cfg.conn, { whm_token = tok.token, whm_user = cfg.conn.user })
    if not c then return nil, err end
    local rec
    rec, err = c:_whm_details(tok.token)
    c:close()
    if rec == false then
      return nil, core.error("api", "the server does not know the new token")
    end
    if not rec then return nil, err end
    return true
  end
  function fam.risks(t) return M.whm_risks(t) end
  return fam
end

--- The risks of a WHM token record (cpanel-api.md, 3a), in a fixed order.
local RISKY_ACLS = { "create-user-session", "passwd", "manage-api-tokens", "cpanel-api" }
function M.whm_risks(t)
  local risks, has = {}, {}
  for _, a in ipairs(t.acls or {}) do has[a] = true end
  if t.full_access then risks[#risks + 1] = "full_access" end
  for _, a in ipairs(RISKY_ACLS) do
    if has[a] then risks[#risks + 1] = a end
  end
  if not t.whitelist_ips or #t.whitelist_ips == 0 then risks[#risks + 1] = "no_ip_allowlist" end
  if not t.expires_at then risks[#risks + 1] = "no_expiry" end
  return risks
end

-- ----------------------------------------------------------------- install

--- The rotate, prune and audit of WHM API tokens for cptokens.whm (its core client c).
function M.whm(new)
  local fam = whm_family(new)
  return {
    rotate = function(c, opts) return run.rotate(c, fam, opts) end,
    prune = function(c, opts) return audit.prune(c, opts, fam) end,
    audit = function(c, opts) return audit.audit(c, opts, fam) end,
  }
end

--- Adds rotate, prune and audit to the client methods.
function M.install(Client, cptokens)
  local fam = cpanel_family((cptokens and cptokens.new) or core.new)
  --- client:rotate{...} -> new token, report | nil, err (err.step names the step)
  -- (no tail calls: misuse errors point at the caller's line)
  function Client:rotate(opts)
    local tok, report = run.rotate(self, fam, opts)
    return tok, report
  end
  --- client:prune{ prefix = nil, expired = true, now = nil } -> report | nil, err
  function Client:prune(opts)
    local report, err = audit.prune(self, opts, fam)
    return report, err
  end
  --- client:audit{ within = "7d", now = nil } -> report | nil, err
  function Client:audit(opts)
    local report, err = audit.audit(self, opts, fam)
    return report, err
  end
  return M
end

return M
