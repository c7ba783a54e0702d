--- cptokens.whm: the client of a WHM account (root or a reseller) for its own
-- API tokens -- tokens with restricted permissions: ACLs, an IP allow-list and
-- an expiry that can be changed in place -- and for the accounts it can act for.
--
--   local whm = assert(cptokens.whm{ url = "https://host:2087", user = "root", token = T })
--   whm:create(name, { acls, whitelist_ips, expires_in | expires_at })
--   whm:list()  whm:update(name, {...})  whm:revoke(name | { names })  whm:details(secret)
--   whm:audit{ within }  whm:rotate{ prefix, store, ... }  whm:prune{ ... }
--   whm:accounts{ search, searchtype, searchmethod }  whm:for_user(user)  whm:close()
--
-- Requests and replies are the C table's entries whm_create, whm_list, whm_update,
-- whm_revoke, whm_details and listaccts (csrc/ops.c): checks before sending, both
-- transports and batches come with them. Depends on cptokens.core, cptokens.time,
-- cptokens.rotate.
--
-- @module cptokens.whm
local core = require "cptokens.core"
local util = require "cptokens.util"
local time = require "cptokens.time"

local error, getmetatable, pairs, setmetatable, tostring, type =
  error, getmetatable, pairs, setmetatable, tostring, type

local M = {}

local Whm = {}
Whm.__index = Whm
Whm.__name = "cptokens.Whm"
M.Whm = Whm

local NEW_OPTIONS = {
  url = true, user = true, token = true, password = true, otp = true, cafile = true, capath = true,
  insecure = true, timeout = true, connect_timeout = true, max_response = true, transport = true,
}

--- cptokens.whm(new, opts) -> whm, or nil, err; new is cptokens.new. Misuse raises.
function M.open(new, opts)
  if type(opts) ~= "table" then
    error("cptokens.whm: expected a table of options, got " .. type(opts), 3)
  end
  local copy = {}
  for k, v in pairs(opts) do
    if not NEW_OPTIONS[k] then error("cptokens.whm: unknown option '" .. tostring(k) .. "'", 3) end
    copy[k] = v
  end
  if opts.token ~= nil and opts.password ~= nil then
    error("cptokens.whm: give exactly one credential: token or password", 3)
  end
  if opts.token ~= nil then
    copy.token, copy.whm_token, copy.whm_user = nil, opts.token, opts.user
  elseif opts.password == nil then
    error("cptokens.whm: give exactly one credential: token or password", 3)
  end
  M.new = new
  local client, err = new(copy)
  if not client then return nil, err end
  if opts.password ~= nil then client:_as_whm() end
  return setmetatable({ _client = client, _user = opts.user }, Whm)
end

--- The core client of a WHM object (batch jobs), or nil.
function M.unwrap(v)
  if type(v) == "table" and getmetatable(v) == Whm then return v._client end
end

local function check(self)
  if getmetatable(self) ~= Whm then error("cptokens.whm: expected a WHM client", 3) end
  if not self._client then error("cptokens.whm: the client is closed", 3) end
  return self._client
end


local function check_keys(op, opts, known)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error("cptokens.whm: " .. op .. ": options must be a table", 4) end
  for k in pairs(opts) do
    if not known[k] then error("cptokens.whm: " .. op .. ": unknown option '" .. tostring(k) .. "'", 4) end
  end
  return opts
end

--- The epoch of expires_in / expires_at (nil: not given), or nil, err; raises on misuse.
local function expiry(op, opts)
  local expires_in, expires_at = opts.expires_in, opts.expires_at
  if expires_in ~= nil and expires_at ~= nil then
    error("cptokens.whm: " .. op .. ": give expires_in or expires_at, not both", 4)
  end
  local v = expires_in ~= nil and expires_in or expires_at
  if v == nil then return nil end
  if type(v) ~= "string" and type(v) ~= "number" then
    error("cptokens.whm: " .. op .. ": " .. (expires_in ~= nil and "expires_in" or "expires_at")
      .. " must be a string or a number, got " .. type(v), 4)
  end
  local epoch, msg = time.expiry(expires_in, expires_at)
  if not epoch then return false, core.error("invalid", op .. ": " .. msg) end
  return epoch
end

--- A create the server carried out whose reply was unusable: revoke it (nobody has it).
local function undo_created(c, name, err)
  return util.undo_created(function(n) return c:_whm_revoke({ n }) end, name, err)
end
M.undo_created = undo_created

local CREATE_OPTIONS = { acls = true, whitelist_ips = true, expires_in = true, expires_at = true }

--- whm:create(name [, { acls, whitelist_ips, expires_in | expires_at }])
-- -> { name, token, create_time, expires_at?, acls, full_access, whitelist_ips? }, or nil, err.
-- No acls: a token with all of the account's privileges.
function Whm:create(name, opts)
  local c = check(self)
  opts = check_keys("whm_create", opts, CREATE_OPTIONS)
  local expires_at, err = expiry("whm_create", opts)
  if expires_at == false then return nil, err end
  local tok
  tok, err = c:_whm_create(name, opts.acls, expires_at, opts.whitelist_ips)
  if not tok and type(err) == "table" and err.created then err = undo_created(c, name, err) end
  return tok, err
end

--- whm:list() -> array of token records (no secret), sorted by create_time then name.
function Whm:list()
  local list, err = check(self):_whm_list()
  return list, err
end

local UPDATE_OPTIONS = { new_name = true, acls = true, whitelist_ips = true, expires_in = true,
                         expires_at = true, expires = true }

--- whm:update(name, { new_name, acls, whitelist_ips (false clears), expires_in | expires_at |
-- expires = false }) -> the updated record, or nil, err. The secret does not change.
function Whm:update(name, opts)
  local c = check(self)
  if type(opts) ~= "table" then error("cptokens.whm: update: options must be a table", 2) end
  check_keys("whm_update", opts, UPDATE_OPTIONS)
  local expires_at, err = expiry("whm_update", opts)
  if expires_at == false then return nil, err end
  if opts.expires ~= nil then
    if opts.expires ~= false then error("cptokens.whm: update: expires may only be false (never)", 2) end
    if expires_at then error("cptokens.whm: update: give expires = false or an expiry, not both", 2) end
    expires_at = 0
  end
  local ips, clear = opts.whitelist_ips, nil
  if ips == false then ips, clear = nil, "any" end
  local rec
  rec, err = c:_whm_update(name, opts.new_name, opts.acls, expires_at, ips, clear)
  return rec, err
end

--- whm:revoke(name | { names }) -> true, or nil, err (true also when no name matched).
function Whm:revoke(names)
  local c = check(self)
  if type(names) == "string" then names = { names } end
  if type(names) ~= "table" then
    error("cptokens.whm: revoke: expected a token name or an array of names, got " .. type(names), 2)
  end
  local ok, err = c:_whm_revoke(names)
  return ok, err
end

--- whm:details(secret) -> the record of the token with that value, or false (unknown or
-- expired), or nil, err.
function Whm:details(secret)
  if type(secret) ~= "string" then
    error("cptokens.whm: details: the token value must be a string, got " .. type(secret), 2)
  end
  local rec, err = check(self):_whm_details(secret)
  return rec, err
end

local ACCOUNTS_OPTIONS = { search = true, searchtype = true, searchmethod = true }

--- whm:accounts{ search, searchtype, searchmethod } -> array of { user, domain, owner,
-- suspended } (zero accounts: {}), or nil, err.
function Whm:accounts(opts)
  local c = check(self)
  opts = check_keys("listaccts", opts, ACCOUNTS_OPTIONS)
  local list, err = c:_listaccts(opts.search, opts.searchtype, opts.searchmethod)
  return list, err
end

--- whm:for_user(user) -> a cptokens client acting for that cPanel account through this
-- WHM token (/json-api/cpanel), or nil, err.
function Whm:for_user(user)
  local c = check(self)
  if type(user) ~= "string" then error("cptokens.whm: for_user: user must be a string", 2) end
  local client, err = c:_for_user(user)
  return client, err
end

--- whm:info() -> as client:info() (never the credential).
function Whm:info() return check(self):info() end

--- rotate, prune and audit for WHM tokens (cptokens.rotate), loaded at first use.
local function family()
  if not M.family then M.family = require("cptokens.rotate").whm(M.new) end
  return M.family
end

--- whm:rotate{ prefix, store, expires_in | expires_at, keep, acls, whitelist_ips, verify,
-- verify_url, current, lock, lock_timeout } -> new token, report | nil, err: the guarantees
-- of client:rotate; the new token inherits the ACLs and IP list of the newest rotation it
-- replaces unless acls / whitelist_ips are given.
function Whm:rotate(opts)
  local tok, report = family().rotate(check(self), opts)
  return tok, report
end

--- whm:prune{ prefix, expired = true, now } -> report | nil, err (as client:prune).
function Whm:prune(opts)
  local report, err = family().prune(check(self), opts)
  return report, err
end

--- whm:audit{ within = "7d", now } -> report | nil, err: client:audit's states, plus per
-- token `risks` ("full_access", "create-user-session", "passwd", "manage-api-tokens",
-- "cpanel-api", "no_ip_allowlist", "no_expiry") and report.risky.
function Whm:audit(opts)
  local report, err = family().audit(check(self), opts)
  return report, err
end

--- whm:close() -> true; idempotent (also __gc of the core client, and __close).
function Whm:close()
  if self._client then self._client:close() end
  self._client = nil
  return true
end
Whm.__close = Whm.close

function Whm:__tostring()
  if not self._client then return "cptokens.Whm (closed)" end
  local info = self._client:info()
  return "cptokens.Whm (" .. tostring(info.whm_user or info.user) .. " at " .. info.url .. ")"
end

return M
