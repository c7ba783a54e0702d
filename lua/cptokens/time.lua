--- Time helpers for cPanel API tokens.
--
-- Expiry values are Unix epoch seconds (UTC).  cPanel accepts an
-- `expires_at` of at most 67767976233521999; `nil` or `0` means the token
-- never expires.  A token is expired once `now > expires_at` (the server's
-- rule), so at `now == expires_at` it is still valid.
--
-- Portable across Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT.  On Lua 5.3+ every
-- numeric result is an integer subtype.  On Lua builds without 64-bit
-- integers (5.1, 5.2, LuaJIT) numbers are doubles, which are exact only up
-- to 2^53 - 1 = 9007199254740991; values beyond that are refused as "too
-- large to be exact" rather than silently rounded.  `_M.LIMIT` is the
-- effective maximum on the running Lua.
--
-- Error convention: functions return `nil, message` on bad input (a string,
-- quoting the input as cptokens.util.quote does); they never raise.  These are
-- value converters, like tonumber and os.date, not calls that can fail for
-- reasons of the world: their message is a fragment that the caller puts after
-- the name of its own option ("create: expires_in: invalid duration ...",
-- "--expires-in: invalid duration ...").  The calls that take these options
-- (client:create, rotate, audit, batch jobs) turn it into an error object of
-- kind "invalid" there; see ARCHITECTURE.md, "Failure conventions".
--
-- @module cptokens.time

local core = require "cptokens.core"
local util = require "cptokens.util"
local iso8601 = require "cptokens.iso8601"

local pairs, pcall, tonumber, tostring, type = pairs, pcall, tonumber, tostring, type
local string_format, string_find, string_sub, string_lower, string_gsub =
  string.format, string.find, string.sub, string.lower, string.gsub
local math_floor, math_huge = math.floor, math.huge
local math_tointeger = math.tointeger -- nil before Lua 5.3
local math_maxinteger = math.maxinteger -- nil before Lua 5.3
local math_type = math.type -- nil before Lua 5.3
local os_time, os_date = os.time, os.date
local quote, toint, trim = util.quote, util.toint, util.trim

local _M = {}

-- cPanel's maximum accepted expires_at, from the C core (CPT_EXPIRES_MAX).  On
-- Lua 5.3+ an exact integer; on double-only Lua it is rounded, and there it only
-- picks between two error messages (the real bound is LIMIT).
local MAX = core.EXPIRES_MAX
local MAX_TEXT = core.EXPIRES_MAX_TEXT

-- Largest integer a double holds exactly with all smaller ones: 2^53 - 1.
local MAX_SAFE_DOUBLE = 9007199254740991

-- True when integers are 64-bit (Lua 5.3+ default build).
local HAS_INT64 = math_tointeger ~= nil and math_maxinteger ~= nil
  and math_maxinteger > MAX_SAFE_DOUBLE

local LIMIT = HAS_INT64 and MAX or MAX_SAFE_DOUBLE
local LIMIT_TEXT = HAS_INT64 and MAX_TEXT or "9007199254740991"

_M.MAX_EXPIRES_AT = MAX
_M.LIMIT = LIMIT

local function is_finite(x)
  return x == x and x ~= math_huge and x ~= -math_huge
end

-- Compare two digit strings without leading zeros numerically.
local function digits_le(a, b)
  if #a ~= #b then return #a < #b end
  return a <= b
end

local function strip_zeros(d)
  local s = string_gsub(d, "^0+", "")
  if s == "" then return "0" end
  return s
end

--- Exact value of a digit string, or nil when it exceeds LIMIT.
-- Returns value, or nil, approximate value, whether it exceeds MAX.
local function digits_value(d)
  d = strip_zeros(d)
  if not digits_le(d, LIMIT_TEXT) then
    return nil, tonumber(d), not digits_le(d, MAX_TEXT)
  end
  return toint(tonumber(d))
end

--- Build the "too large" message.  `over` tells whether the refused value
-- exceeds cPanel's maximum (otherwise it is merely not exact as a double).
local function too_large(what, input, over)
  if over then
    return string_format("%s %s is too large: it exceeds the maximum of %s seconds",
      what, quote(input), MAX_TEXT)
  end
  return string_format(
    "%s %s is too large to be exact on this Lua (numbers are doubles; limit %s seconds)",
    what, quote(input), LIMIT_TEXT)
end

-- Unit table: spelling -> seconds, canonical name.
local UNITS = {}
local function def_unit(secs, name, spellings)
  for i = 1, #spellings do
    UNITS[spellings[i]] = { secs = secs, name = name }
  end
end
def_unit(1, "seconds", { "s", "sec", "secs", "second", "seconds" })
def_unit(60, "minutes", { "m", "min", "mins", "minute", "minutes" })
def_unit(3600, "hours", { "h", "hr", "hrs", "hour", "hours" })
def_unit(86400, "days", { "d", "day", "days" })
def_unit(604800, "weeks", { "w", "week", "weeks" })

-- Units refused because their length in seconds is ambiguous.
local AMBIGUOUS = {}
for _, u in pairs({ "mo", "mos", "mon", "mons", "month", "months", "mth", "mths",
                    "y", "yr", "yrs", "year", "years" }) do
  AMBIGUOUS[u] = true
end

-- Largest count of each unit that keeps the product <= LIMIT, computed
-- exactly (the float quotient is only a starting point).
local UNIT_LIMIT = {}
for _, info in pairs(UNITS) do
  local u = info.secs
  if not UNIT_LIMIT[u] then
    local q = toint(math_floor(LIMIT / u))
    while q * u > LIMIT do q = q - 1 end
    while (q + 1) * u <= LIMIT do q = q + 1 end
    UNIT_LIMIT[u] = q
  end
end

--- Validate a number given as a whole count of seconds (or epoch).
-- Returns the integer, or nil, err.  `what` names the thing for messages.
local function check_number(v, what, allow_zero)
  if not is_finite(v) then
    return nil, string_format("%s %s is not a finite number", what, quote(v))
  end
  if v < 0 then
    return nil, string_format("%s %s is negative", what, quote(v))
  end
  if v ~= math_floor(v) then
    return nil, string_format("%s %s is fractional; only whole seconds are accepted",
      what, quote(v))
  end
  -- floats are exact only up to 2^53 - 1, whatever the Lua version
  local is_float = (math_type == nil) or math_type(v) == "float"
  if is_float and v > MAX_SAFE_DOUBLE then
    return nil, too_large(what, v, v > MAX)
  end
  local i = toint(v)
  if i > LIMIT then
    return nil, too_large(what, v, true)
  end
  if i == 0 and not allow_zero then
    return nil, string_format("%s %s is zero; it must be positive", what, quote(v))
  end
  return i
end

local FRACTIONAL = "fractional numbers are not allowed; use a whole number of a smaller unit"

local function bad_duration(v, fmt, ...)
  return nil, string_format("invalid duration %s: " .. fmt, quote(v), ...)
end

-- "unexpected <word or byte> at position <pos>" for the text of v at pos.
local function unexpected(v, s, pos)
  local _, _, word = string_find(s, "^(%a+)", pos)
  return bad_duration(v, "unexpected %s at position %d", quote(word or string_sub(s, pos, pos)), pos)
end

-- The count that starts at pos in s (the trimmed v): its digits and last
-- position, or nil, err.
local function read_count(v, s, pos)
  local _, de, digits = string_find(s, "^(%d+)", pos)
  if not de then
    if string_find(s, "^%-%s*[%d.]", pos) then
      return bad_duration(v, "negative durations are not allowed")
    end
    if string_find(s, "^[.,]%d", pos) then return bad_duration(v, FRACTIONAL) end
    return unexpected(v, s, pos)
  end
  if string_find(s, "^[.,]%d", de + 1) then return bad_duration(v, FRACTIONAL) end
  return digits, de
end

-- The unit after the count `digits` (at count_pos), from pos: its UNITS entry
-- and last position, or nil, err. seen: the units given so far.
local function read_unit(v, s, pos, digits, count_pos, seen)
  local _, ue, unit = string_find(s, "^%s*(%a+)", pos)
  if not ue then
    local _, we = string_find(s, "^%s*", pos)
    if we + 1 > #s or string_find(s, "^%d", we + 1) then
      return bad_duration(v, "the number %s at position %d has no unit", digits, count_pos)
    end
    return bad_duration(v, "unexpected %s at position %d", quote(string_sub(s, we + 1, we + 1)), we + 1)
  end
  if unit == "M" then
    return bad_duration(v, 'the unit "M" is ambiguous (minutes or months); use "m" or "min" for minutes')
  end
  local lunit = string_lower(unit)
  local info = UNITS[lunit]
  if not info then
    if AMBIGUOUS[lunit] then
      return bad_duration(v, "months and years are not accepted because their length is ambiguous; "
        .. "use days or weeks")
    end
    return bad_duration(v, "unknown unit %s (use s, m, h, d or w, or their words)", quote(unit))
  end
  if seen[info.name] then return bad_duration(v, "the unit %s is given more than once", info.name) end
  seen[info.name] = true
  -- what may follow a unit: end, whitespace, or the next count
  if ue < #s and not string_find(s, "^[%s%d]", ue + 1) then return unexpected(v, s, ue + 1) end
  return info, ue
end

-- total + digits * secs, exactly, or nil, err when past LIMIT.
local function add_term(v, total, digits, secs)
  local n, approx = digits_value(digits)
  if not n or n > UNIT_LIMIT[secs] then
    return nil, too_large("duration", v, HAS_INT64 or (n or approx) * secs > MAX)
  end
  local term = toint(n * secs)
  if total > LIMIT - term then
    return nil, too_large("duration", v, HAS_INT64 or total + term > MAX)
  end
  return toint(total + term)
end

--- Parse a duration into a positive whole number of seconds.
--
-- Accepted:
--  * a positive integral number, or a string of digits: seconds;
--  * one or more `<count><unit>` parts, optionally separated by
--    whitespace, with optional whitespace between count and unit:
--    `"45s"`, `"1d12h30m"`, `"1d 12h"`, `"24 hours"`, `"1 hour 30 minutes"`.
--    Units (case-insensitive): s sec secs second seconds | m min mins
--    minute minutes | h hr hrs hour hours | d day days | w week weeks.
--    Parts may come in any order, each unit at most once.
--  Surrounding whitespace is ignored.
--
-- Refused (nil, message): zero, negative, fractional, too large (total past
-- 67767976233521999 s, or past 2^53-1 on double-only Lua), empty/blank,
-- unknown units, months/years (ambiguous length), the single capital `M`
-- (minutes or months?), a unit given twice, a count without a unit in a
-- multi-part string, and any other text.
--
-- @param v string or number
-- @return integer seconds, or nil, err
function _M.parse_duration(v)
  local tv = type(v)
  if tv == "number" then return check_number(v, "duration", false) end
  if tv ~= "string" then
    return nil, string_format("invalid duration: expected a string or number, got %s", tv)
  end
  local s = trim(v)
  if s == "" then return bad_duration(v, "empty or blank") end
  local total, pos, seen = 0, 1, {}
  if string_find(s, "^%d+$") then -- plain digits: seconds
    local n, _, over = digits_value(s)
    if not n then return nil, too_large("duration", v, over) end
    total, pos = n, #s + 1
  end
  while pos <= #s do
    local _, ws = string_find(s, "^%s*", pos)
    local digits, de = read_count(v, s, ws + 1)
    if not digits then return nil, de end
    local info, ue = read_unit(v, s, de + 1, digits, ws + 1, seen)
    if not info then return nil, ue end
    local err
    total, err = add_term(v, total, digits, info.secs)
    if not total then return nil, err end
    pos = ue + 1
  end
  if total == 0 then return bad_duration(v, "zero; the duration must be positive") end
  return total
end

--- Normalise `now`: default os.time(); floats are floored (the server's
-- clock is whole seconds).
local function get_now(now)
  if now == nil then return toint(os_time()) end
  if type(now) ~= "number" or not is_finite(now) then
    return nil, string_format("invalid now %s: expected a finite number", quote(now))
  end
  now = toint(math_floor(now))
  if now < 0 then
    return nil, string_format("invalid now %s: negative", quote(now))
  end
  if now > LIMIT then
    return nil, too_large("now", now, HAS_INT64 or now > MAX)
  end
  return now
end

--- Absolute expiry `now + parse_duration(duration)`.
-- @param duration anything parse_duration accepts
-- @param now epoch seconds, default os.time()
-- @return integer epoch, or nil, err (also when the result would exceed
--   the maximum expires_at)
function _M.expires_at(duration, now)
  local d, err = _M.parse_duration(duration)
  if not d then return nil, err end
  local n
  n, err = get_now(now)
  if not n then return nil, err end
  if n > LIMIT - d then
    return nil, too_large("expiry for duration", duration, HAS_INT64 or n + d > MAX)
  end
  return toint(n + d)
end

--- Validate an epoch given as a number or a digit string.
local function epoch_value(v, what)
  local tv = type(v)
  if tv == "number" then
    return check_number(v, what, true)
  end
  if tv == "string" then
    local s = trim(v)
    if string_find(s, "^%d+$") then
      local n, _, over = digits_value(s)
      if not n then return nil, too_large(what, v, over) end
      return n
    end
    return nil, string_format("invalid %s %s: expected whole epoch seconds", what, quote(v))
  end
  return nil, string_format("invalid %s: expected a number, got %s", what, tv)
end

--- Format epoch seconds as ISO 8601 UTC, e.g. "2026-11-27T23:00:00Z".
-- @param epoch non-negative integral number (or digit string)
-- @return string, or nil, err
function _M.iso8601(epoch)
  local e, err = epoch_value(epoch, "epoch")
  if not e then return nil, err end
  local ok, res = pcall(os_date, "!%Y-%m-%dT%H:%M:%SZ", e)
  if not ok or type(res) ~= "string" then
    return nil, string_format("epoch %s cannot be formatted as a date", quote(epoch))
  end
  return res
end

--- Parse an ISO 8601 / RFC 3339 timestamp to epoch seconds (see cptokens.iso8601).
-- @return integer epoch, or nil, err
_M.parse_iso8601 = iso8601.parse

--- Normalise an absolute expiry to integer epoch seconds.
-- Accepts an epoch number, a digit string (epoch seconds), or an ISO 8601
-- string (see parse_iso8601).  A string starting with "+" is a duration
-- relative to `now` ("+24h", "+1 day"; now defaults to os.time()) -- the
-- explicit "+" keeps "3600" (an epoch) distinct from "+3600" (in an hour).
-- `0` is returned as 0 (cPanel's "never").
-- @return integer epoch, or nil, err
function _M.to_epoch(v, now)
  if type(v) == "string" then
    local s = trim(v)
    if s == "" then
      return nil, string_format("invalid expiry %s: empty or blank", quote(v))
    end
    if string_find(s, "^%d+$") then
      return epoch_value(s, "expiry")
    end
    if string_sub(s, 1, 1) == "+" then
      return _M.expires_at(string_sub(s, 2), now)
    end
    if string_find(s, "^%d%d%d%d%-") then
      return _M.parse_iso8601(s)
    end
    return nil, string_format("invalid expiry %s: expected epoch seconds (digits), an ISO 8601 "
      .. "UTC timestamp like 2026-11-27T23:00:00Z, or a duration with a leading \"+\" "
      .. "like +24h", quote(v))
  end
  if type(v) == "number" then
    return epoch_value(v, "expiry")
  end
  return nil, string_format("invalid expiry: expected a number or string, got %s", type(v))
end

--- The expiry a caller asked for with expires_in (a duration) or expires_at
-- (anything to_epoch takes): an integer epoch strictly in the future; nil when
-- neither is given (the token never expires). A past expiry, epoch 0 and
-- 1970-01-01 included, is an error: "never" is only spelled by giving none.
-- @return epoch, or nil (never), or nil, err (a one-line string naming the option)
function _M.expiry(expires_in, expires_at, now)
  if expires_in == nil and expires_at == nil then return nil end
  local which = expires_in ~= nil and "expires_in" or "expires_at"
  local n, err = get_now(now)
  if not n then return nil, err end
  local epoch
  if expires_in ~= nil then
    epoch, err = _M.expires_at(expires_in, n)
  else
    epoch, err = _M.to_epoch(expires_at, n)
  end
  if not epoch then return nil, which .. ": " .. err end
  if epoch <= n then
    return nil, string_format("%s: %s is not in the future (now is %d; a token that never expires is "
      .. "asked for by giving no expiry)", which, tostring(epoch), n)
  end
  return epoch
end

--- The token's expiry as an integer epoch; false when it never expires.
local function token_expiry(tok)
  if type(tok) ~= "table" then
    return nil, string_format("expected a token table, got %s", type(tok))
  end
  local e = tok.expires_at
  if e == nil then return false end
  if type(e) == "string" then
    e = trim(e)
    if e == "" then return false end
    if string_sub(e, 1, 1) == "+" then
      return nil, string_format("invalid expires_at %s: relative values are not allowed",
        quote(tok.expires_at))
    end
  end
  local epoch, err = _M.to_epoch(e)
  if not epoch then return nil, err end
  if epoch == 0 then return false end
  return epoch
end

-- The token's expiry and now: epoch, now; false when it never expires; nil, err.
local function expiry_and_now(tok, now)
  local e, err = token_expiry(tok)
  if not e then return e, err end
  local n
  n, err = get_now(now)
  if not n then return nil, err end
  return e, n
end

--- Seconds left until the token expires: `expires_at - now` (0 at the
-- boundary, negative once expired).
-- @param tok table with `expires_at` (epoch number, digit string or ISO
--   8601 string; nil, 0, "0" or "" mean never)
-- @param now epoch seconds, default os.time()
-- @return integer; nil (no message) when the token never expires; nil,
--   err on invalid input
function _M.remaining(tok, now)
  local e, n = expiry_and_now(tok, now)
  if not e then return nil, n end
  return toint(e - n)
end

--- Whether the token is expired: `now > expires_at`.
-- @return boolean (false for never-expiring tokens); nil, err on invalid
--   input
function _M.is_expired(tok, now)
  local e, n = expiry_and_now(tok, now)
  if e == nil then return nil, n end
  return e ~= false and n > e
end

local FORMAT_UNITS = {
  { 604800, "w" }, { 86400, "d" }, { 3600, "h" }, { 60, "m" }, { 1, "s" },
}

--- Short human text for a number of seconds (as returned by remaining):
-- the largest whole unit, rounded down: 45 -> "45s", 900 -> "15m",
-- 10800 -> "3h", 259200 -> "3d", 1209600 -> "2w" (weeks are the largest
-- unit), 0 -> "0s".  Negative values give "expired 3d ago".  nil (a
-- never-expiring token) gives "never".  Fractions are floored first.
-- Prefixes such as "in " are the caller's business.
-- @return string, or nil, err for a non-number
function _M.format_remaining(seconds)
  if seconds == nil then return "never" end
  if type(seconds) ~= "number" or not is_finite(seconds) then
    return nil, string_format("invalid seconds %s: expected a finite number", quote(seconds))
  end
  local s = toint(math_floor(seconds))
  local expired = s < 0
  if expired then s = -s end
  local amount, suffix = 0, "s"
  for i = 1, #FORMAT_UNITS do
    local u = FORMAT_UNITS[i][1]
    if s >= u then
      local q = toint(math_floor(s / u))
      if q * u > s then q = q - 1 end
      amount, suffix = q, FORMAT_UNITS[i][2]
      break
    end
  end
  local text = string_format("%d%s", amount, suffix)
  if expired then return "expired " .. text .. " ago" end
  return text
end

return _M
