--- cptokens: manage cPanel API tokens from Lua.
-- The protocol and transport are C (cptokens.core, on libcurl); this module
-- is the public face: new(), the error type, and the parts written in Lua.
local core = require "cptokens.core"
local time = require "cptokens.time"

local error, getmetatable, pairs, tostring, type = error, getmetatable, pairs, tostring, type

local _M = {
  _VERSION = core._VERSION,
  time = time,
  Error = core.Error,
}

local Client = core.Client  -- the methods table of cptokens.Client userdata

--- Creates a client. Misuse raises; bad values return nil, err (kind "invalid").
function _M.new(opts)
  if type(opts) ~= "table" then
    error("cptokens.new: expected a table of options, got " .. type(opts), 2)
  end
  return core.new(opts)
end

--- A new error object: cptokens.error(kind, message [, status]).
_M.error = core.error

--- True when v is an error object returned by cptokens.
function _M.is_error(v)
  return type(v) == "table" and getmetatable(v) == core.Error
end

local CREATE_OPTIONS = { expires_in = true, expires_at = true }

--- Reads create's options into an epoch (0 or nil: never), or nil, err.
local function create_expiry(opts)
  if opts == nil then return nil end
  if type(opts) ~= "table" then
    error("cptokens: create: options must be a table, got " .. type(opts), 3)
  end
  for k in pairs(opts) do
    if not CREATE_OPTIONS[k] then
      error("cptokens: create: unknown option '" .. tostring(k) .. "'", 3)
    end
  end
  local expires_in, expires_at = opts.expires_in, opts.expires_at
  if expires_in ~= nil and expires_at ~= nil then
    error("cptokens: create: give expires_in or expires_at, not both", 3)
  end
  local v = expires_in ~= nil and expires_in or expires_at
  if v == nil then return nil end
  if type(v) ~= "string" and type(v) ~= "number" then
    error("cptokens: create: " .. (expires_in ~= nil and "expires_in" or "expires_at")
      .. " must be a string or a number, got " .. type(v), 3)
  end
  local epoch, msg
  if expires_in ~= nil then
    epoch, msg = time.expires_at(v)
    if not epoch then return nil, core.error("invalid", "create: expires_in: " .. msg) end
  else
    epoch, msg = time.to_epoch(v)
    if not epoch then return nil, core.error("invalid", "create: expires_at: " .. msg) end
  end
  return epoch
end

--- client:create(name [, { expires_in = "24h" } | { expires_at = epoch or ISO 8601 }])
-- -> { name, token, create_time, expires_at? }, or nil, err
function Client:create(name, opts)
  local expires_at, err = create_expiry(opts)
  if err then return nil, err end
  return self:_create(name, expires_at)
end

return _M
