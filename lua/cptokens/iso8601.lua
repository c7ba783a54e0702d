--- cptokens.iso8601: ISO 8601 / RFC 3339 timestamps to epoch seconds (internal;
-- the public function is cptokens.time.parse_iso8601). Same conventions as
-- cptokens.time: nil, message on bad input (the input quoted), never raises.
--
-- Portable across Lua 5.1 to 5.4 and LuaJIT (floor division only).
--
-- @module cptokens.iso8601
local util = require "cptokens.util"

local tonumber, type = tonumber, type
local string_find, string_format = string.find, string.format
local math_floor = math.floor
local quote, toint, trim = util.quote, util.toint, util.trim

local _M = {}

local function is_leap(y)
  return (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0
end

local DAYS_IN_MONTH = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

-- Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
-- days_from_civil), using only floor division.
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math_floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math_floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math_floor(yoe / 4) - math_floor(yoe / 100) + doy
  return toint(era * 146097 + doe - 719468)
end

--- Parse an ISO 8601 / RFC 3339 timestamp to epoch seconds.
-- Accepts exactly `YYYY-MM-DDTHH:MM:SS` followed by `Z` or an offset
-- `+HH:MM` / `-HH:MM` (`T` and `Z` may be lowercase; surrounding
-- whitespace is ignored).  The offset is applied (local time minus offset
-- is UTC).  Results before 1970-01-01T00:00:00Z are refused.
-- @return integer epoch, or nil, err
function _M.parse(str)
  if type(str) ~= "string" then
    return nil, string_format("invalid ISO 8601 timestamp: expected a string, got %s", type(str))
  end
  local function fail(fmt, ...)
    return nil, string_format("invalid ISO 8601 timestamp %s: " .. fmt, quote(str), ...)
  end
  local s = trim(str)
  local _, _, ys, mos, ds, hs, mis, ss, rest = string_find(s,
    "^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt](%d%d):(%d%d):(%d%d)(.*)$")
  if not ys then
    return fail("expected YYYY-MM-DDTHH:MM:SSZ or YYYY-MM-DDTHH:MM:SS+HH:MM")
  end
  local offset = 0
  if rest ~= "Z" and rest ~= "z" then
    local _, _, sign, ohs, oms = string_find(rest, "^([+-])(%d%d):(%d%d)$")
    if not sign then
      if rest == "" then
        return fail("missing time zone (add Z for UTC)")
      end
      return fail("unexpected %s after the time (expected Z or +HH:MM/-HH:MM)", quote(rest))
    end
    local oh, om = tonumber(ohs), tonumber(oms)
    if oh > 23 or om > 59 then
      return fail("offset %s out of range", quote(rest))
    end
    offset = oh * 3600 + om * 60
    if sign == "-" then offset = -offset end
  end
  local y, mo, d = tonumber(ys), tonumber(mos), tonumber(ds)
  local h, mi, sec = tonumber(hs), tonumber(mis), tonumber(ss)
  if mo < 1 or mo > 12 then return fail("month %s out of range 01-12", mos) end
  local dim = DAYS_IN_MONTH[mo]
  if mo == 2 and is_leap(y) then dim = 29 end
  if d < 1 or d > dim then
    return fail("day %s out of range for %s-%s (01-%d)", ds, ys, mos, dim)
  end
  if h > 23 then return fail("hour %s out of range 00-23", hs) end
  if mi > 59 then return fail("minute %s out of range 00-59", mis) end
  if sec > 59 then return fail("second %s out of range 00-59", ss) end
  local epoch = toint(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset)
  if epoch < 0 then
    return fail("before 1970-01-01T00:00:00Z")
  end
  return epoch
end

return _M
