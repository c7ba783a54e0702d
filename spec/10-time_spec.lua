-- Spec for lua/cptokens/time.lua
if not string.find(package.path, "lua/?.lua;lua/?/init.lua;", 1, true) then
  package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
end

local time = require "cptokens.time"
local unpack = table.unpack or unpack -- luacheck: ignore

-- Lua 5.3+ with 64-bit integers: values up to 67767976233521999 are exact.
local INT64 = math.type ~= nil and math.maxinteger ~= nil and math.maxinteger > 2^53

local function assert_int(v)
  assert.is_number(v)
  assert.are.equal(v, math.floor(v))
  if math.type then
    assert.are.equal("integer", math.type(v))
  end
end

-- Assert the results `nil, msg` where msg contains every plain substring in
-- `wants` (a string or a list of strings).  Results come last so that a
-- call's multiple returns are all passed.
local function refused(wants, ok, err)
  if type(wants) == "string" then wants = { wants } end
  assert.is_nil(ok)
  assert.is_string(err)
  for _, want in ipairs(wants) do
    assert.is_truthy(string.find(err, want, 1, true),
      "expected message to contain '" .. want .. "', got: " .. err)
  end
  return err
end

describe("cptokens.time", function()

  describe("contract examples", function()
    it("hold exactly", function()
      assert.are.equal(129600, time.parse_duration("1d12h"))
      assert.are.equal(86400, time.parse_duration("24h"))
      assert.are.equal(86400, time.parse_duration("24 Hours"))
      assert.are.equal(5400, time.parse_duration("90m"))
      assert.are.equal(1209600, time.parse_duration("2w"))
      assert.are.equal(1800, time.parse_duration("30 minutes"))
      assert.are.equal(3600, time.parse_duration(3600))
      assert.are.equal(87400, time.expires_at("24h", 1000))
      -- 1795820400 is Friday 2026-11-27 23:00:00 UTC (`date -u -d @1795820400`);
      -- 2026-11-28T23:00:00Z is one day later.
      assert.are.equal("2026-11-27T23:00:00Z", time.iso8601(1795820400))
      assert.are.equal("2026-11-28T23:00:00Z", time.iso8601(1795906800))
      assert.are.equal(1795906800, time.parse_iso8601("2026-11-28T23:00:00Z"))
    end)

    it("prints integers without a decimal point", function()
      assert.are.equal("86400", tostring(time.parse_duration("24h")))
      assert.are.equal("86400", tostring(time.parse_duration("86400")))
      assert.are.equal("86400", tostring(time.parse_duration(86400.0)))
      assert.are.equal("87400", tostring(time.expires_at("24h", 1000)))
      assert.are.equal("1795820400", tostring(time.parse_iso8601("2026-11-27T23:00:00Z")))
      assert.are.equal("0", tostring(time.remaining({ expires_at = 1000 }, 1000)))
    end)
  end)

  describe("parse_duration accepts", function()
    local cases = {
      -- plain seconds
      { 3600, 3600 }, { 1, 1 }, { 3600.0, 3600 },
      { "3600", 3600 }, { "1", 1 }, { "0003600", 3600 }, { " 3600 ", 3600 },
      -- unit forms
      { "45s", 45 }, { "15m", 900 }, { "24h", 86400 }, { "7d", 604800 }, { "2w", 1209600 },
      { "1d12h30m", 131400 }, { "1d 12h", 129600 }, { "1d12h", 129600 },
      { "1w2d3h4m5s", 604800 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5 },
      { "1w 2d 3h 4m 5s", 788645 }, { "30m 1h", 5400 }, { "1h 0m", 3600 },
      { "24 h", 86400 }, { "24H", 86400 }, { "2W", 1209600 }, { "7D", 604800 }, { "45S", 45 },
      { "  24h  ", 86400 }, { "24h\n", 86400 }, { "1h\t30m", 5400 },
      -- words, singular/plural, any case
      { "24 hours", 86400 }, { "24 Hours", 86400 }, { "24 HOURS", 86400 }, { "1 hour", 3600 },
      { "1 day", 86400 }, { "3 days", 259200 }, { "30 minutes", 1800 }, { "1 minute", 60 },
      { "2 weeks", 1209600 }, { "1 week", 604800 }, { "1 hour 30 minutes", 5400 },
      { "90 min", 5400 }, { "90 mins", 5400 }, { "90min", 5400 },
      { "10 sec", 10 }, { "10 secs", 10 }, { "10 second", 10 }, { "10 seconds", 10 },
      { "2 hr", 7200 }, { "2 hrs", 7200 }, { "2hrs", 7200 }, { "1 Day 12 Hours", 129600 },
      { "1 week 1 day 1 hour 1 minute 1 second", 694861 },
    }
    for _, c in ipairs(cases) do
      it(string.format("%q", tostring(c[1])) .. " = " .. c[2], function()
        local v, err = time.parse_duration(c[1])
        assert.is_nil(err)
        assert.are.equal(c[2], v)
        assert_int(v)
      end)
    end

    it("every unit spelling", function()
      local units = {
        [1] = { "s", "sec", "secs", "second", "seconds" },
        [60] = { "m", "min", "mins", "minute", "minutes" },
        [3600] = { "h", "hr", "hrs", "hour", "hours" },
        [86400] = { "d", "day", "days" },
        [604800] = { "w", "week", "weeks" },
      }
      for secs, spellings in pairs(units) do
        for _, u in ipairs(spellings) do
          assert.are.equal(3 * secs, time.parse_duration("3" .. u))
          assert.are.equal(3 * secs, time.parse_duration("3 " .. u))
          if u == "m" then
            -- capital M alone could mean months: refused, never guessed
            refused({ "ambiguous" }, time.parse_duration("3 M"))
          else
            assert.are.equal(3 * secs, time.parse_duration("3 " .. u:upper()))
          end
        end
      end
    end)

    it("the largest exact value", function()
      if INT64 then
        local v = time.parse_duration("67767976233521999")
        assert.are.equal(67767976233521999, v)
        assert_int(v)
        assert.are.equal(67767976233521999, time.parse_duration(67767976233521999))
        -- 112050225253 weeks + 507599 s: a total exactly at the maximum
        assert.are.equal(67767976233521999,
          time.parse_duration("112050225253w 5d 20h 59m 59s"))
      else
        assert.are.equal(9007199254740991, time.parse_duration("9007199254740991"))
      end
      assert.are.equal(9007199254740991, time.parse_duration(2^53 - 1))
    end)
  end)

  describe("parse_duration refuses", function()
    local cases = {
      -- { input, substrings the message must contain }
      { 0, "zero" }, { "0", "zero" }, { "0h", "zero" }, { "0h 0m", "zero" }, { "000", "zero" },
      { -1, "negative" }, { -3600, "negative" }, { "-3600", "negative" }, { "-5h", "negative" },
      { "1h -5m", "negative" }, { "- 5h", "negative" },
      { 1.5, "fractional" }, { "1.5h", "fractional" }, { "1.5", "fractional" },
      { ".5h", "fractional" }, { "1,5h", "fractional" },
      { "", "empty" }, { "   ", "empty" }, { "\t\n", "empty" },
      { "3 fortnights", "unknown unit", "fortnights" }, { "5x", "unknown unit", "x" },
      { "10ms", "unknown unit", "ms" }, { "1e3", "unknown unit" }, { "0x10", "unknown unit" },
      { "5y", "months and years", "ambiguous" }, { "1 year", "ambiguous" },
      { "2 years", "ambiguous" }, { "3 months", "ambiguous" }, { "1 month", "ambiguous" },
      { "1mo", "ambiguous" }, { "2yr", "ambiguous" }, { "5M", "ambiguous", "\"M\"" },
      { "1h 2h", "more than once", "hours" }, { "1h 2 hours", "more than once" },
      { "1 hour 1 hr", "more than once" }, { "5m 5min", "more than once", "minutes" },
      { "1d 1day", "more than once", "days" },
      { "24h!", "unexpected", "!" }, { "in 24h", "unexpected", "in" },
      { "24h ago", "unexpected", "ago" }, { "+24h", "unexpected", "+" },
      { "1 hour and 30 minutes", "unexpected", "and" }, { "1h, 30m", "unexpected" },
      { "h", "unexpected" }, { "hours", "unexpected" }, { "24h-1m", "unexpected" },
      { "1h 30", "no unit", "30" }, { "1 2h", "no unit" }, { "24 !", "unexpected" },
      { "P1D", "unexpected" }, { "PT1H", "unexpected" },
      { "99999999999999999999999h", "too large" }, { "99999999999999999999", "too large" },
      { "1000000000000w", "too large" }, { 1e300, "too large" }, { 2^60, "too large" },
      { "67767976233522000", "too large" }, { "112050225254w", "too large" },
      { 0 / 0, "not a finite number" }, { math.huge, "not a finite number" },
      { -math.huge, "not a finite number" },
    }
    for _, c in ipairs(cases) do
      it(string.format("%q", tostring(c[1])) .. " (" .. c[2] .. ")", function()
        local ok, err = time.parse_duration(c[1])
        refused({ unpack(c, 2) }, ok, err)
        if type(c[1]) == "string" then
          -- the input is quoted in the message
          assert.is_truthy(string.find(err, '"' .. c[1]:gsub("%c", function(ch)
            return string.format("\\x%02X", ch:byte()) end) .. '"', 1, true), err)
        end
      end)
    end

    it("totals past the maximum, also when each part is fine", function()
      if INT64 then
        refused({ "too large", "67767976233521999" }, time.parse_duration("67767976233521940s 1m"))
        refused({ "too large", "67767976233521999" }, time.parse_duration("112050225253w 6d"))
        refused({ "too large", "67767976233521999" }, time.parse_duration(67767976233522000))
      else
        refused({ "too large", "exact" }, time.parse_duration("9007199254740990s 1m"))
        refused({ "too large", "exact" }, time.parse_duration("9007199254740992"))
      end
    end)

    it("floats too big to be exact", function()
      -- 1e16 > 2^53: floats there cannot be trusted to the second
      refused({ "too large", "exact" }, time.parse_duration(1e16))
      refused({ "too large", "exact" }, time.parse_duration(2^53))
    end)

    it("non-string non-number types", function()
      refused({ "expected a string or number", "nil" }, time.parse_duration(nil))
      refused({ "expected a string or number", "boolean" }, time.parse_duration(true))
      refused({ "expected a string or number", "table" }, time.parse_duration({}))
      refused({ "expected a string or number", "function" }, time.parse_duration(print))
    end)
  end)

  describe("expires_at", function()
    it("is now + duration", function()
      assert.are.equal(87400, time.expires_at("24h", 1000))
      assert.are.equal(1000 + 3600, time.expires_at(3600, 1000))
      assert.are.equal(129600, time.expires_at("1d12h", 0))
      assert_int(time.expires_at("24h", 1000))
      assert_int(time.expires_at("24h", 1000.0))
      -- fractional now is floored (the server clock is whole seconds)
      assert.are.equal(87400, time.expires_at("24h", 1000.9))
    end)

    it("defaults now to os.time()", function()
      local before = os.time()
      local v = time.expires_at("1h")
      local after = os.time()
      assert_int(v)
      assert.is_true(v >= before + 3600 and v <= after + 3600)
    end)

    it("passes on duration errors", function()
      refused({ "unknown unit" }, time.expires_at("3 fortnights", 0))
      refused({ "zero" }, time.expires_at("0", 0))
      refused({ "expected a string or number" }, time.expires_at(nil, 0))
    end)

    it("refuses a bad now", function()
      refused({ "now" }, time.expires_at("1h", "soon"))
      refused({ "negative" }, time.expires_at("1h", -1))
      refused({ "now" }, time.expires_at("1h", 0 / 0))
    end)

    it("refuses results past the maximum", function()
      if INT64 then
        assert.are.equal(67767976233521999, time.expires_at("1s", 67767976233521998))
        refused({ "too large", "67767976233521999" }, time.expires_at("2s", 67767976233521998))
        refused({ "too large" }, time.expires_at("67767976233521999", 1))
      else
        assert.are.equal(9007199254740991, time.expires_at("1s", 9007199254740990))
        refused({ "too large" }, time.expires_at("2s", 9007199254740990))
      end
    end)
  end)

  describe("iso8601", function()
    it("formats UTC", function()
      assert.are.equal("1970-01-01T00:00:00Z", time.iso8601(0))
      assert.are.equal("2026-11-27T23:00:00Z", time.iso8601(1795820400))
      assert.are.equal("2024-02-29T00:00:00Z", time.iso8601(1709164800))
      assert.are.equal("2000-02-29T00:00:00Z", time.iso8601(951782400))
      assert.are.equal("1999-12-31T23:59:59Z", time.iso8601(946684799))
      assert.are.equal("2100-02-28T23:59:59Z", time.iso8601(4107542399))
      assert.are.equal("2100-03-01T00:00:00Z", time.iso8601(4107542400))
      assert.are.equal("2038-01-19T03:14:08Z", time.iso8601(2147483648))
      assert.are.equal("9999-12-31T23:59:59Z", time.iso8601(253402300799))
      assert.are.equal("2026-11-27T23:00:00Z", time.iso8601(1795820400.0))
      assert.are.equal("2026-11-27T23:00:00Z", time.iso8601("1795820400"))
    end)

    it("refuses non-integer, negative and non-number input", function()
      refused({ "fractional" }, time.iso8601(1.5))
      refused({ "negative" }, time.iso8601(-1))
      refused({ "finite" }, time.iso8601(0 / 0))
      refused({ "expected a number" }, time.iso8601(nil))
      refused({ "soon" }, time.iso8601("soon"))
      refused({ "expected a number" }, time.iso8601({}))
    end)
  end)

  describe("parse_iso8601", function()
    it("parses Z, lowercase t/z and offsets", function()
      assert.are.equal(1795820400, time.parse_iso8601("2026-11-27T23:00:00Z"))
      assert.are.equal(1795820400, time.parse_iso8601("2026-11-27t23:00:00z"))
      assert.are.equal(1795820400, time.parse_iso8601("2026-11-27T23:00:00+00:00"))
      assert.are.equal(1795820400, time.parse_iso8601("2026-11-27T23:00:00-00:00"))
      assert.are.equal(1795820400, time.parse_iso8601("2026-11-28T00:00:00+01:00"))
      assert.are.equal(1795820400, time.parse_iso8601("2026-11-27T18:00:00-05:00"))
      assert.are.equal(1795820400, time.parse_iso8601("2026-11-28T04:30:00+05:30"))
      assert.are.equal(1795820400, time.parse_iso8601("2026-11-27T13:15:00-09:45"))
      assert.are.equal(1795820400, time.parse_iso8601("2026-11-28T12:45:00+13:45"))
      assert.are.equal(1795820400, time.parse_iso8601(" 2026-11-27T23:00:00Z\n"))
      assert.are.equal(0, time.parse_iso8601("1970-01-01T00:00:00Z"))
      assert.are.equal(0, time.parse_iso8601("1970-01-01T01:00:00+01:00"))
      assert.are.equal(253402300799, time.parse_iso8601("9999-12-31T23:59:59Z"))
      assert_int(time.parse_iso8601("2026-11-27T23:00:00Z"))
      assert_int(time.parse_iso8601("2026-11-27T18:00:00-05:00"))
    end)

    it("knows leap years", function()
      assert.are.equal(1709164800, time.parse_iso8601("2024-02-29T00:00:00Z"))
      assert.are.equal(951782400, time.parse_iso8601("2000-02-29T00:00:00Z"))
      assert.are.equal(4107542399, time.parse_iso8601("2100-02-28T23:59:59Z"))
      assert.are.equal(4107542400, time.parse_iso8601("2100-03-01T00:00:00Z"))
      refused({ "day 29", "01-28" }, time.parse_iso8601("2100-02-29T00:00:00Z"))
      refused({ "day 29", "01-28" }, time.parse_iso8601("2023-02-29T00:00:00Z"))
      refused({ "day 29" }, time.parse_iso8601("1900-02-29T00:00:00Z"))
      refused({ "day 30", "01-29" }, time.parse_iso8601("2024-02-30T00:00:00Z"))
    end)

    it("validates ranges", function()
      refused({ "month 13" }, time.parse_iso8601("2026-13-01T00:00:00Z"))
      refused({ "month 00" }, time.parse_iso8601("2026-00-01T00:00:00Z"))
      refused({ "day 00" }, time.parse_iso8601("2026-01-00T00:00:00Z"))
      refused({ "day 32" }, time.parse_iso8601("2026-01-32T00:00:00Z"))
      refused({ "day 31" }, time.parse_iso8601("2026-04-31T00:00:00Z"))
      refused({ "day 31" }, time.parse_iso8601("2026-06-31T00:00:00Z"))
      refused({ "day 31" }, time.parse_iso8601("2026-09-31T00:00:00Z"))
      refused({ "day 31" }, time.parse_iso8601("2026-11-31T00:00:00Z"))
      refused({ "hour 24" }, time.parse_iso8601("2026-01-01T24:00:00Z"))
      refused({ "minute 60" }, time.parse_iso8601("2026-01-01T00:60:00Z"))
      refused({ "second 60" }, time.parse_iso8601("2026-01-01T00:00:60Z"))
      refused({ "offset" }, time.parse_iso8601("2026-01-01T00:00:00+24:00"))
      refused({ "offset" }, time.parse_iso8601("2026-01-01T00:00:00+05:60"))
      for _, mo in ipairs({ "01", "03", "05", "07", "08", "10", "12" }) do
        assert.is_number(time.parse_iso8601("2026-" .. mo .. "-31T00:00:00Z"))
      end
    end)

    it("refuses other shapes", function()
      local bad = {
        "2026-11-27T23:00:00", "2026-11-27 23:00:00Z", "2026-11-27", "2026-11-27T23:00Z",
        "2026-11-27T23:00:00.5Z", "2026-11-27T23:00:00+0100", "2026-11-27T23:00:00+01",
        "2026-11-27T23:00:00ZZ", "26-11-27T23:00:00Z", "2026/11/27T23:00:00Z",
        "x2026-11-27T23:00:00Z", "2026-11-27T23:00:00Z!", "1795820400", "", "tomorrow",
        "2026-1-27T23:00:00Z", "+2026-11-27T23:00:00Z",
      }
      for _, s in ipairs(bad) do
        local ok, err = time.parse_iso8601(s)
        refused({ "invalid ISO 8601 timestamp", '"' .. s .. '"' }, ok, err)
      end
      refused({ "missing time zone" }, time.parse_iso8601("2026-11-27T23:00:00"))
      refused({ "expected a string", "number" }, time.parse_iso8601(1795820400))
      refused({ "expected a string", "nil" }, time.parse_iso8601(nil))
    end)

    it("refuses instants before 1970", function()
      refused({ "before 1970" }, time.parse_iso8601("1969-12-31T23:59:59Z"))
      refused({ "before 1970" }, time.parse_iso8601("1970-01-01T00:00:00+00:01"))
      refused({ "before 1970" }, time.parse_iso8601("0000-01-01T00:00:00Z"))
    end)
  end)

  describe("iso8601 <-> parse_iso8601 round trips", function()
    -- Fast check for loops; returns the text, or nil and what went wrong.
    local function check(e)
      local s, err = time.iso8601(e)
      if not s then return nil, err end
      local back, err2 = time.parse_iso8601(s)
      if back ~= e then
        return nil, "round trip of " .. e .. " via " .. s .. " gave " .. tostring(back)
          .. " " .. tostring(err2)
      end
      if math.type and math.type(back) ~= "integer" then
        return nil, "not an integer: " .. tostring(back)
      end
      return s
    end

    local function roundtrip(e)
      local s, err = check(e)
      assert.is_nil(err)
      return s
    end

    -- Run check over many epochs; assert once with the first failure.
    local function sweep(list)
      local first
      for i = 1, #list do
        local ok, err = check(list[i])
        if not ok and not first then first = err end
      end
      assert.is_nil(first)
      return #list
    end

    it("named instants", function()
      local named = {
        [0] = "1970-01-01T00:00:00Z",
        [59] = "1970-01-01T00:00:59Z",
        [86399] = "1970-01-01T23:59:59Z",
        [31535999] = "1970-12-31T23:59:59Z",
        [31536000] = "1971-01-01T00:00:00Z",
        [68169600] = "1972-02-29T00:00:00Z",
        [946684799] = "1999-12-31T23:59:59Z",
        [946684800] = "2000-01-01T00:00:00Z",
        [951782400] = "2000-02-29T00:00:00Z",
        [978307199] = "2000-12-31T23:59:59Z",
        [1709164800] = "2024-02-29T00:00:00Z",
        [1735689599] = "2024-12-31T23:59:59Z",
        [1795820400] = "2026-11-27T23:00:00Z",
        [2147483647] = "2038-01-19T03:14:07Z",
        [4102444799] = "2099-12-31T23:59:59Z",
        [4107542399] = "2100-02-28T23:59:59Z",
        [4107542400] = "2100-03-01T00:00:00Z",
        [4133980799] = "2100-12-31T23:59:59Z",
        [253402300799] = "9999-12-31T23:59:59Z",
      }
      for e, s in pairs(named) do
        assert.are.equal(s, roundtrip(e))
      end
    end)

    it("every day 1970-2110 and around 2000/2100, at several times of day", function()
      local list, day = {}, 0
      while day * 86400 <= 4133980800 + 10 * 365 * 86400 do
        local base = day * 86400
        list[#list + 1] = base
        list[#list + 1] = base + 43200
        list[#list + 1] = base + 86399
        day = day + 1
      end
      -- each second of the hour crossing 2000-02-29 -> 03-01
      for e = 951868800 - 1800, 951868800 + 1800 do list[#list + 1] = e end
      assert.is_true(sweep(list) > 150000)
    end)

    it("a spread of epochs up to 9999-12-31", function()
      local list, e, n = {}, 0, 0
      while e <= 253402300799 do
        list[#list + 1] = e
        e = e + 12345678 + (n % 97) * 1013
        n = n + 1
      end
      assert.is_true(sweep(list) > 20000)
    end)

    it("agrees with os.date for the offset forms", function()
      for _, e in ipairs({ 0 + 86400, 951782400, 1709164800, 4107542400, 1795820400 }) do
        local z = time.iso8601(e)
        local plus = os.date("!%Y-%m-%dT%H:%M:%S", e + 5 * 3600 + 30 * 60) .. "+05:30"
        local minus = os.date("!%Y-%m-%dT%H:%M:%S", e - 8 * 3600) .. "-08:00"
        assert.are.equal(e, time.parse_iso8601(z))
        assert.are.equal(e, time.parse_iso8601(plus))
        assert.are.equal(e, time.parse_iso8601(minus))
      end
    end)
  end)

  describe("to_epoch", function()
    it("normalises numbers, digit strings and ISO 8601", function()
      assert.are.equal(1795820400, time.to_epoch(1795820400))
      assert.are.equal(1795820400, time.to_epoch(1795820400.0))
      assert.are.equal(1795820400, time.to_epoch("1795820400"))
      assert.are.equal(1795820400, time.to_epoch(" 1795820400 "))
      assert.are.equal(1795820400, time.to_epoch("2026-11-27T23:00:00Z"))
      assert.are.equal(1795820400, time.to_epoch("2026-11-27T18:00:00-05:00"))
      assert.are.equal(0, time.to_epoch(0))
      assert.are.equal(0, time.to_epoch("0"))
      for _, v in ipairs({ 1795820400, 1795820400.0, "1795820400", "2026-11-27T23:00:00Z", 0 }) do
        assert_int(time.to_epoch(v))
      end
      if INT64 then
        assert.are.equal(67767976233521999, time.to_epoch("67767976233521999"))
        assert.are.equal(67767976233521999, time.to_epoch(67767976233521999))
      end
    end)

    it("takes an explicit relative '+duration' from now", function()
      assert.are.equal(87400, time.to_epoch("+24h", 1000))
      assert.are.equal(1000 + 5400, time.to_epoch("+1 hour 30 minutes", 1000))
      assert.are.equal(1000 + 3600, time.to_epoch("+3600", 1000))
      local v = time.to_epoch("+1h")
      assert.is_true(v >= os.time() + 3599)
      refused({ "zero" }, time.to_epoch("+0h", 1000))
      refused({ "ambiguous" }, time.to_epoch("+5y", 1000))
    end)

    it("refuses what it cannot read exactly", function()
      refused({ "invalid expiry", '"24h"', "+24h" }, time.to_epoch("24h"))
      refused({ "invalid expiry", "tomorrow" }, time.to_epoch("tomorrow"))
      refused({ "empty" }, time.to_epoch(""))
      refused({ "empty" }, time.to_epoch(" "))
      refused({ "negative" }, time.to_epoch(-1))
      refused({ "fractional" }, time.to_epoch(1.5))
      refused({ "invalid expiry" }, time.to_epoch("-1"))
      refused({ "day 30" }, time.to_epoch("2026-02-30T00:00:00Z"))
      refused({ "expected a number or string", "nil" }, time.to_epoch(nil))
      refused({ "expected a number or string", "boolean" }, time.to_epoch(true))
      refused({ "too large" }, time.to_epoch("99999999999999999999"))
      if INT64 then
        refused({ "too large", "67767976233521999" }, time.to_epoch("67767976233522000"))
        refused({ "too large", "67767976233521999" }, time.to_epoch(67767976233522000))
      else
        refused({ "too large", "exact" }, time.to_epoch("9007199254740992"))
      end
    end)
  end)

  describe("remaining and is_expired", function()
    it("agree at the boundaries", function()
      local tok = { expires_at = 1000 }
      assert.are.equal(1, time.remaining(tok, 999))
      assert.is_false(time.is_expired(tok, 999))
      assert.are.equal(0, time.remaining(tok, 1000))
      assert.is_false(time.is_expired(tok, 1000))
      assert.are.equal(-1, time.remaining(tok, 1001))
      assert.is_true(time.is_expired(tok, 1001))
      assert.are.equal(-86400, time.remaining(tok, 87400))
      assert_int(time.remaining(tok, 1000))
      assert_int(time.remaining(tok, 1001.0))
    end)

    it("agree with iso8601 and each other around a real instant", function()
      local iso = "2026-11-27T23:00:00Z"
      local e = time.parse_iso8601(iso)
      for _, form in ipairs({ e, tostring(e), iso, "2026-11-27T18:00:00-05:00" }) do
        local tok = { expires_at = form }
        assert.are.equal(iso, time.iso8601(e))
        assert.are.equal(0, time.remaining(tok, e))
        assert.is_false(time.is_expired(tok, e))
        assert.are.equal(-1, time.remaining(tok, e + 1))
        assert.is_true(time.is_expired(tok, e + 1))
        assert.are.equal(1, time.remaining(tok, e - 1))
        for d = -3, 3 do
          local now = e + d
          assert.are.equal(time.remaining(tok, now) < 0, time.is_expired(tok, now))
          assert.are.equal(time.is_expired(tok, now),
            time.format_remaining(time.remaining(tok, now)):sub(1, 7) == "expired")
        end
      end
    end)

    it("work with expires_at from expires_at()", function()
      local now = 1795820400
      local tok = { expires_at = time.expires_at("24h", now) }
      assert.are.equal(86400, time.remaining(tok, now))
      assert.is_false(time.is_expired(tok, now + 86400))
      assert.is_true(time.is_expired(tok, now + 86401))
    end)

    it("treat nil, 0, '0' and '' as never", function()
      for _, v in ipairs({ 0, "0", "", " ", "00", 0.0 }) do
        local tok = { expires_at = v }
        local r, err = time.remaining(tok, 1000)
        assert.is_nil(r)
        assert.is_nil(err)
        assert.is_false(time.is_expired(tok, 1000))
        assert.is_false(time.is_expired(tok))
      end
      local r, err = time.remaining({}, 1000)
      assert.is_nil(r)
      assert.is_nil(err)
      assert.is_false(time.is_expired({}))
      assert.is_false(time.is_expired({}, 67767976233521))
    end)

    it("default now to os.time()", function()
      assert.is_false(time.is_expired({ expires_at = os.time() + 3600 }))
      assert.is_true(time.is_expired({ expires_at = 1 }))
      local r = time.remaining({ expires_at = os.time() + 3600 })
      assert_int(r)
      assert.is_true(r > 3500 and r <= 3600)
    end)

    it("report invalid input as nil, err", function()
      refused({ "expected a token table" }, time.remaining(nil, 0))
      refused({ "expected a token table" }, time.is_expired("tok", 0))
      refused({ "soon" }, time.remaining({ expires_at = "soon" }, 0))
      refused({ "soon" }, time.is_expired({ expires_at = "soon" }, 0))
      refused({ "negative" }, time.remaining({ expires_at = -5 }, 0))
      refused({ "fractional" }, time.remaining({ expires_at = 1.5 }, 0))
      refused({ "relative" }, time.remaining({ expires_at = "+1h" }, 0))
      refused({ "now" }, time.remaining({ expires_at = 1000 }, "now"))
      refused({ "negative" }, time.is_expired({ expires_at = 1000 }, -1))
    end)
  end)

  describe("format_remaining", function()
    local cases = {
      { 0, "0s" }, { 1, "1s" }, { 45, "45s" }, { 59, "59s" },
      { 60, "1m" }, { 900, "15m" }, { 3599, "59m" },
      { 3600, "1h" }, { 10800, "3h" }, { 86399, "23h" },
      { 86400, "1d" }, { 259200, "3d" }, { 604799, "6d" },
      { 604800, "1w" }, { 1209600, "2w" }, { 31536000, "52w" },
      { -1, "expired 1s ago" }, { -45, "expired 45s ago" }, { -900, "expired 15m ago" },
      { -10800, "expired 3h ago" }, { -259200, "expired 3d ago" },
      { -1209600, "expired 2w ago" }, { 45.9, "45s" }, { -0.5, "expired 1s ago" },
      { 90061, "1d" },
    }
    for _, c in ipairs(cases) do
      it(tostring(c[1]) .. " -> " .. c[2], function()
        assert.are.equal(c[2], time.format_remaining(c[1]))
      end)
    end

    it("says never for nil (a never-expiring token)", function()
      assert.are.equal("never", time.format_remaining(nil))
      assert.are.equal("never", time.format_remaining(time.remaining({ expires_at = 0 }, 5)))
    end)

    it("handles the extremes", function()
      if INT64 then
        assert.are.equal("112050225253w", time.format_remaining(67767976233521999))
      end
      assert.are.equal("14892855910w", time.format_remaining(9007199254740991))
    end)

    it("refuses non-numbers", function()
      refused({ "expected a finite number" }, time.format_remaining("3d"))
      refused({ "expected a finite number" }, time.format_remaining(0 / 0))
      refused({ "expected a finite number" }, time.format_remaining(math.huge))
      refused({ "expected a finite number" }, time.format_remaining({}))
    end)
  end)

  describe("constants", function()
    it("expose the maximum", function()
      if INT64 then
        assert.are.equal(67767976233521999, time.MAX_EXPIRES_AT)
        assert.are.equal(67767976233521999, time.LIMIT)
        assert_int(time.LIMIT)
      else
        assert.are.equal(9007199254740991, time.LIMIT)
      end
    end)
  end)
  describe("expiry", function()
    it("gives a future epoch, nil for no expiry, and an error for a past one (0 included)", function()
      assert.is_nil(time.expiry(nil, nil, 1000))
      assert.are.equal(1000 + 3600, time.expiry("1h", nil, 1000))
      assert.are.equal(5000, time.expiry(nil, 5000, 1000))
      assert.are.equal(5000, time.expiry(nil, "5000", 1000))
      assert.are.equal(1000 + 60, time.expiry(nil, "+1m", 1000))
      for _, v in ipairs { 0, "0", "1970-01-01T00:00:00Z", 1000, 999 } do
        local e, msg = time.expiry(nil, v, 1000)
        assert.is_nil(e, tostring(v))
        assert.is_truthy(msg:find("^expires_at: "), msg)
        assert.is_truthy(msg:find("not in the future", 1, true), msg)
      end
      local e, msg = time.expiry("soon", nil, 1000)
      assert.is_nil(e)
      assert.is_truthy(msg:find("^expires_in: "), msg)
    end)
  end)
end)
