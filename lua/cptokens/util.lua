--- cptokens.util: the small helpers the Lua modules share (internal).
--
-- One place for how a message shows a value, so that every module's messages
-- follow the same rules as the C core's (csrc/request.c, cpt_quote):
--
--   util.clean(v)     tostring(v) with every control byte and DEL as \xNN: one line,
--                     nothing that acts on a terminal; other bytes (UTF-8) kept
--   util.quote(v)     clean(v) between double quotes, with " and \ escaped
--   util.one_line(v)  tostring(v) with each line break (and the blanks after it) as one
--                     space and the trailing blanks dropped: text from elsewhere (a
--                     server, a system call) made one line without escapes
--   util.is_error(v)  true when v is a cptokens error object
--   util.toint(x)     an integral number as the integer subtype where Lua has one
--   util.trim(s)      s without its leading and trailing white space
--   util.expiry_option(who, expires_in, expires_at, level)
--                     the expiry options of `who` ("create", "rotate"): an epoch, nil
--                     (never), or nil, err (kind "invalid"); misuse raises at `level`
--                     (as error's, counted from the function that calls this one)
--
-- Not part of the public API: require "cptokens.util" from the library's own
-- modules only (the CLI included).
--
-- @module cptokens.util
local core = require "cptokens.core"

local error, getmetatable, require, tostring, type = error, getmetatable, require, tostring, type
local string_byte, string_find, string_format, string_gsub =
  string.byte, string.find, string.format, string.gsub
local math_tointeger = math.tointeger -- nil before Lua 5.3

local Error = core.Error

local _M = {}

local function hex(c)
  return string_format("\\x%02X", string_byte(c))
end

function _M.clean(v)
  return (string_gsub(tostring(v), "[%c\127]", hex))
end

local QUOTED = { ['"'] = '\\"', ["\\"] = "\\\\" }

function _M.quote(v)
  return '"' .. string_gsub(tostring(v), '[%c\127"\\]', function(c)
    return QUOTED[c] or hex(c)
  end) .. '"'
end

function _M.one_line(v)
  return (string_gsub(string_gsub(tostring(v), "[\r\n]+%s*", " "), "%s+$", ""))
end

function _M.is_error(v)
  return type(v) == "table" and getmetatable(v) == Error
end

function _M.toint(x)
  if math_tointeger then
    local i = math_tointeger(x)
    if i then return i end
  end
  return x
end

function _M.trim(s)
  local _, _, inner = string_find(s, "^%s*(.-)%s*$")
  return inner
end

function _M.expiry_option(who, expires_in, expires_at, level)
  if expires_in ~= nil and expires_at ~= nil then
    error("cptokens: " .. who .. ": give expires_in or expires_at, not both", level + 1)
  end
  local v = expires_in ~= nil and expires_in or expires_at
  if v == nil then return nil end
  if type(v) ~= "string" and type(v) ~= "number" then
    error("cptokens: " .. who .. ": " .. (expires_in ~= nil and "expires_in" or "expires_at")
      .. " must be a string or a number, got " .. type(v), level + 1)
  end
  local epoch, msg = require("cptokens.time").expiry(expires_in, expires_at)
  if not epoch then return nil, core.error("invalid", who .. ": " .. _M.clean(msg)) end
  return epoch
end

--- A create the server carried out but whose reply was unusable (err.created): nobody has the
-- token, so revoke(name) is called now (best effort), and err says what became of it.
function _M.undo_created(revoke, name, err)
  local ok, rerr = revoke(name)
  if ok then
    err.message = err.message .. "; the token " .. name .. " was revoked, nothing is left behind"
    err.revoked = true
  else
    err.message = err.message .. "; revoking it failed too (" .. tostring(rerr and rerr.message)
      .. "): revoke " .. name .. " by hand"
    err.revoked = false
  end
  return err
end

return _M
