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

local BATCH_OPTIONS = { concurrency = true }
local JOB_FIELDS = { client = true, op = true, name = true, new_name = true,
                     expires_in = true, expires_at = true }

--- cptokens.batch(jobs [, { concurrency = 10 }]) -> results
-- Runs many operations, on one client or many, concurrently through one
-- libcurl multi handle (no threads). jobs[i] = { client = c, op = "create" |
-- "list" | "rename" | "revoke", name =, new_name =, expires_in = | expires_at = }.
-- results[i] = { ok = true, value = v [, existed = b] } or { ok = false, err = e },
-- in job order, each exactly what the single call would have returned.
function _M.batch(jobs, opts)
  if type(jobs) ~= "table" then
    error("cptokens.batch: expected an array of jobs, got " .. type(jobs), 2)
  end
  local concurrency = 10
  if opts ~= nil then
    if type(opts) ~= "table" then error("cptokens.batch: options must be a table", 2) end
    for k in pairs(opts) do
      if not BATCH_OPTIONS[k] then
        error("cptokens.batch: unknown option '" .. tostring(k) .. "'", 2)
      end
    end
    if opts.concurrency ~= nil then
      concurrency = opts.concurrency
      if type(concurrency) ~= "number" or concurrency < 1 or concurrency > 1000
        or concurrency ~= math.floor(concurrency) then
        error("cptokens.batch: concurrency must be a whole number from 1 to 1000", 2)
      end
    end
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
    local expires_at, err
    if job.op == "create" then
      expires_at, err = create_expiry({ expires_in = job.expires_in, expires_at = job.expires_at })
    elseif job.expires_in ~= nil or job.expires_at ~= nil then
      error("cptokens.batch: job " .. i .. ": an expiry goes with create only", 2)
    end
    if err then
      results[i] = { ok = false, err = err }
    else
      send[#send + 1] = { client = job.client, op = job.op, name = job.name,
                          new_name = job.new_name, expires_at = expires_at }
      where[#send] = i
    end
  end
  local done = core.batch(send, concurrency)
  for k = 1, #done do results[where[k]] = done[k] end
  return results
end

_M.store = require "cptokens.store"
require("cptokens.rotate").install(Client, _M)

return _M
