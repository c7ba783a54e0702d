--- cptokens: manage cPanel API tokens from Lua (create, list, rename, revoke,
-- rotate), over cPanel's UAPI and WHM's API, with libcurl or nginx cosockets.
--
-- The protocol is C (cptokens.core: the table of operations, the request
-- builder, the reply decoder, the libcurl transport); this module is the public
-- face and the parts written in Lua:
--
--   cptokens.new(options) -> client | nil, err      a client (misuse raises)
--   client:create(name [, {expires_in | expires_at}]), client:list(),
--   client:rename(name, new_name), client:revoke(name), client:info(), client:close()
--                                                    one method per operation of core.ops
--   client:rotate(opts), client:prune(opts), client:audit(opts)   (rotate.lua, on first use)
--   cptokens.batch(jobs [, {concurrency}]) -> results  many operations on one multi handle
--   cptokens.transport(client) -> "curl" | "ngx"     which transport the next call uses
--   cptokens.close_idle() -> n                       drop idle pooled connections
--   cptokens.error(kind, message [, status]), cptokens.is_error(v), cptokens.Error
--   cptokens.time (time.lua), cptokens.store (store.lua, on first use), cptokens._VERSION
--
-- Runtime failures return nil, err (an error object); misuse raises at the
-- caller's line. Inside nginx each operation is wrapped here to pick its
-- transport per call (ngx.lua); elsewhere the C methods are used as they are.
-- Where to look: docs/api.md (the API), ARCHITECTURE.md (the map, the call flows,
-- the contracts between modules), CONTRIBUTING.md (build and test).
--
-- Depends on: cptokens.core, cptokens.time, cptokens.util; cptokens.ngx inside
-- nginx; cptokens.rotate and cptokens.store when first used.
--
-- @module cptokens
local core = require "cptokens.core"

-- These modules' version; the C module's must be the same. A process keeps the C module it
-- first loaded for as long as it runs (it is never unloaded: csrc/loader/core.c), so a new
-- Lua state after an upgrade in place (an nginx reload) would pair new Lua with old C.
local VERSION = "0.2.0"
if core._VERSION ~= VERSION then
  error(("cptokens: the Lua modules are version %s but the C module this process has loaded,"
    .. " cptokens.core, is %s: restart the process (after an upgrade, nginx needs a restart, not a reload)")
    :format(VERSION, tostring(core._VERSION)), 0)
end

local time = require "cptokens.time"
local util = require "cptokens.util"

local error, ipairs, pairs, tostring, type = error, ipairs, pairs, tostring, type

local _M = {
  _VERSION = core._VERSION,
  time = time,
  Error = core.Error,
}

local Client = core.Client  -- the methods table of cptokens.Client userdata

-- OpenResty: nginx's `ngx` table, checked once; outside nginx the libcurl
-- methods are used as they are, at no extra cost.
local ngx = rawget(_G, "ngx")
local ngx_transport = ngx and require "cptokens.ngx"
local forced = setmetatable({}, { __mode = "k" }) -- client -> "curl" | "ngx" (option transport)
local whm_module -- cptokens.whm, once a WHM client was made

--- Creates a client. Misuse raises; bad values return nil, err (kind "invalid").
-- transport = "curl" | "ngx" forces a transport (default: chosen per call, see docs/openresty.md).
function _M.new(opts)
  if type(opts) ~= "table" then
    error("cptokens.new: expected a table of options, got " .. type(opts), 2)
  end
  local transport = opts.transport
  if transport == nil then return core.new(opts) end
  if transport ~= "curl" and transport ~= "ngx" then
    error("cptokens.new: option 'transport' must be \"curl\" or \"ngx\"", 2)
  end
  local copy = {}
  for k, v in pairs(opts) do
    if k ~= "transport" then copy[k] = v end
  end
  local client, err = core.new(copy)
  if not client then return nil, err end
  if transport == "ngx" then
    local why = not ngx_transport and "it needs OpenResty (nginx with the Lua module)"
      or ngx_transport.unsupported_for(client)
    if why then
      client:close()
      return nil, core.error("invalid", "transport 'ngx': " .. why)
    end
  end
  forced[client] = transport
  return client
end

--- The transport client's next call would use here and now: "curl" or "ngx";
-- or nil, err when it has none (transport = "ngx" where cosockets are off).
function _M.transport(client)
  client = (whm_module and whm_module.unwrap(client)) or client
  local t = forced[client]
  if not ngx_transport then return t or "curl" end
  local ok, why = ngx_transport.available()
  if t == "ngx" then
    if ok then return "ngx" end
    return nil, core.error("invalid", "transport 'ngx' cannot be used here: " .. why)
  end
  if t == "curl" or not ok or ngx_transport.unsupported_for(client) then return "curl" end
  return "ngx"
end

--- A new error object: cptokens.error(kind, message [, status]).
_M.error = core.error

--- True when v is an error object returned by cptokens.
_M.is_error = util.is_error

local CREATE_OPTIONS = { expires_in = true, expires_at = true }

--- Reads create's options into an epoch (0 or nil: never), or nil, err.
-- level: error()'s level of the caller to blame (3: the caller of the function that called this).
local function create_expiry(opts, level)
  level = level or 3
  if opts == nil then return nil end
  if type(opts) ~= "table" then
    error("cptokens: create: options must be a table, got " .. type(opts), level)
  end
  for k in pairs(opts) do
    if not CREATE_OPTIONS[k] then
      error("cptokens: create: unknown option '" .. tostring(k) .. "'", level)
    end
  end
  local epoch, err = util.expiry_option("create", opts.expires_in, opts.expires_at, level)
  return epoch, err -- not a tail call: the level counts this function's frame
end

--- client:create(name [, { expires_in = "24h" } | { expires_at = epoch or ISO 8601 }])
-- -> { name, token, create_time, expires_at? }, or nil, err
-- A create the server carried out but whose reply was unusable (err.created) is revoked
-- (util.undo_created), and err says so.
local function undo_created(client, name, err)
  return util.undo_created(function(n) return client:revoke(n) end, name, err)
end

function Client:create(name, opts)
  local expires_at, err = create_expiry(opts)
  if err then return nil, err end
  local tok
  tok, err = self:_create(name, expires_at)
  if not tok and type(err) == "table" and err.created then err = undo_created(self, name, err) end
  return tok, err
end

--- cptokens.whm{ url, user, token | password [, otp], cafile, ... } -> whm, or nil, err
-- The client of a WHM account (root or a reseller) for its own API tokens and the
-- accounts it can act for: see cptokens.whm (lua/cptokens/whm.lua) and docs/whm.md.
function _M.whm(opts)
  whm_module = whm_module or require "cptokens.whm"
  local w, err = whm_module.open(_M.new, opts)
  return w, err
end

--- cptokens.fleet(servers [, opts]) -> fleet: every account of every server (cptokens.fleet,
-- lua/cptokens/fleet.lua, loaded at first use; docs/fleet.md).
function _M.fleet(servers, opts)
  return require("cptokens.fleet").new(servers, opts)
end

-- Operations whose jobs take create's expiry options (expires_in, or expires_at read by time).
local EXPIRY_OPS = { create = true, whm_create = true, whm_update = true }

--- A job's expiry (expires_in read as create's): epoch or nil, or nil, err; raises on misuse.
local function job_expiry(job, i)
  if job.op == "whm_update" and job.expires_at == 0 and job.expires_in == nil then
    return 0 -- never expires
  elseif EXPIRY_OPS[job.op] then
    -- not a tail call (Lua 5.1 counts a tail call as a level): blame batch's caller
    local epoch, err = create_expiry({ expires_in = job.expires_in, expires_at = job.expires_at }, 4)
    return epoch, err
  elseif job.expires_in ~= nil or job.expires_at ~= nil then
    error("cptokens.batch: job " .. i .. ": an expiry goes with create, whm_create and "
      .. "whm_update only", 3)
  end
end

local BATCH_OPTIONS = { concurrency = true, per_server = true }

--- A batch option that must be a whole number from lo to 1000, or its default.
local function whole(opts, key, default, lo)
  local v = opts[key]
  if v == nil then return default end
  if type(v) ~= "number" or v < lo or v > 1000 or v ~= math.floor(v) then
    error("cptokens.batch: " .. key .. " must be a whole number from " .. lo .. " to 1000", 3)
  end
  return v
end
-- A job's fields: client, op, expires_in (create's, read here) and every
-- parameter of every operation of the C table.
-- _accepted (for cptokens.fleet's chunks, not API): the same call with the same client's
-- server and credential was accepted in an earlier batch of the run: its gate starts open
-- (no lone first request), as if the run were one batch.
local JOB_FIELDS = { client = true, op = true, expires_in = true, _accepted = true }
for _, op in ipairs(core.ops) do
  for _, field in ipairs(op.fields) do JOB_FIELDS[field] = true end
end

--- cptokens.batch(jobs [, { concurrency = 10, per_server = n }]) -> results
-- Runs many operations, on one client or many, concurrently through one
-- libcurl multi handle (no threads): at most `concurrency` in flight, and at most
-- `per_server` (default: no limit of its own) to one server (host and port). jobs[i] = { client = c, op = "create" |
-- "list" | "rename" | "revoke", name =, new_name =, expires_in = | expires_at = }
-- (op: any name of core.ops, with the fields of its parameters).
-- results[i] = { ok = true, value = v [, existed = b] } or { ok = false, err = e },
-- in job order, each exactly what the single call would have returned.
function _M.batch(jobs, opts)
  if type(jobs) ~= "table" then
    error("cptokens.batch: expected an array of jobs, got " .. type(jobs), 2)
  end
  local concurrency, per_server = 10, 0
  if opts ~= nil then
    if type(opts) ~= "table" then error("cptokens.batch: options must be a table", 2) end
    for k in pairs(opts) do
      if not BATCH_OPTIONS[k] then
        error("cptokens.batch: unknown option '" .. tostring(k) .. "'", 2)
      end
    end
    concurrency = whole(opts, "concurrency", 10, 1)
    per_server = whole(opts, "per_server", 0, 1)
  end
  local results, send, where = {}, {}, {}
  for i = 1, #jobs do
    local job = jobs[i]
    if type(job) ~= "table" then
      error("cptokens.batch: job " .. i .. " is not a table", 2)
    end
    for k in pairs(job) do
      if not JOB_FIELDS[k] then
        error("cptokens.batch: job " .. i .. ": unknown field '" .. tostring(k) .. "'", 2)
      end
    end
    local expires_at, err = job_expiry(job, i)
    if err then
      results[i] = { ok = false, err = err }
    else
      local copy = {}
      for k, v in pairs(job) do copy[k] = v end
      copy.expires_in, copy.expires_at = nil, expires_at
      if whm_module and whm_module.unwrap(job.client) then copy.client = job.client._client end
      send[#send + 1] = copy
      where[#send] = i
    end
  end
  local done = core.batch(send, concurrency, per_server)
  for k = 1, #done do
    local r = done[k]
    if not r.ok and r.err.created then
      if send[k].op == "whm_create" then
        whm_module.undo_created(send[k].client, send[k].name, r.err)
      else
        undo_created(send[k].client, send[k].name, r.err)
      end
    end
    results[where[k]] = r
  end
  return results
end

--- cptokens.close_idle() -> n
-- Closes the pooled connections of this Lua state that no open client uses (and forgets
-- their TLS sessions); returns how many trust pools were released. The loaded trust
-- stores stay loaded. Clients of one host share keep-alive connections, which outlive the
-- client that opened them; call this to hold no idle connection (before a long pause, or
-- to count descriptors).
_M.close_idle = core.close_idle

-- info() names a forced transport, so that a sibling client made from it keeps it.
local c_info = Client.info
function Client:info()
  local info = c_info(self)
  info.transport = forced[self]
  return info
end

-- Inside nginx: each call picks its transport (see _M.transport). One wrapper
-- per operation of the C table (core.ops), around its libcurl method.
if ngx_transport then
  local transport, perform = _M.transport, ngx_transport.perform
  for _, op in ipairs(core.ops) do
    local name, c_method = op.name, Client[op.method]
    Client[op.method] = function(self, ...)
      local t, err = transport(self)
      if t == "curl" then return c_method(self, ...) end
      if not t then
        err.message = name .. ": " .. err.message
        return nil, err
      end
      return perform(self, name, ...)
    end
  end
end

-- Rotation (client:rotate, prune, audit) and cptokens.store are loaded at their first use,
-- not here: a script or a `cptokens list` process that never rotates does not compile them
-- (about a third of the library's Lua). Whatever rotate.install adds appears on first lookup.
local lazy_loaded = false
-- (Client is the C module's table, which outlives this module when package.loaded is cleared
-- and cptokens is loaded again, as busted does between spec files: the methods an earlier
-- load installed would keep calling that load's cptokens.rotate. Start from none.)
Client.rotate, Client.prune, Client.audit = nil, nil, nil
local function load_lazy()
  if lazy_loaded then return end
  lazy_loaded = true
  setmetatable(Client, nil)
  setmetatable(_M, nil)
  _M.store = require "cptokens.store"
  require("cptokens.rotate").install(Client, _M)
end
setmetatable(Client, { __index = function(_, k)
  load_lazy()
  return rawget(Client, k)
end })
setmetatable(_M, { __index = function(_, k)
  load_lazy()
  return rawget(_M, k)
end })

return _M
