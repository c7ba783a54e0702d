--- cptokens.cli.json: JSON with a fixed key order (cjson does not order keys), for the
-- command-line tool's `--json` documents. Portable across Lua 5.1-5.4 and LuaJIT.
--
--   json.obj("k1", v1, "k2", v2, ...)   an ordered object (nil values become null)
--   json.encode(v [, scrub])            scrub(s) is applied to every string but verbatim() ones
--   json.verbatim(s), json.NULL
local type, select, setmetatable, getmetatable, error = type, select, setmetatable, getmetatable, error
local string_format, table_concat = string.format, table.concat
local math_floor, math_huge = math.floor, math.huge

local M = {}

local Object = {}
local Verbatim = {} -- a string written as it is: the token `create` hands over
local NULL = setmetatable({}, { __tostring = function() return "null" end })

--- An ordered JSON object: obj("k1", v1, "k2", v2, ...); nil values become null.
local function obj(...)
  return setmetatable({ n = select("#", ...), ... }, Object)
end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
                  ["\b"] = "\\b", ["\f"] = "\\f" }

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESCAPES[c] or string_format("\\u%04x", c:byte())
  end) .. '"'
end

local function json_number(x)
  if x ~= x or x == math_huge or x == -math_huge then return "null" end
  if x == math_floor(x) and x >= -9007199254740991 and x <= 9007199254740991 then
    return string_format("%d", x)
  end
  if math.type and math.type(x) == "integer" then return string_format("%d", x) end
  return string_format("%.17g", x)
end

local encode

local function verbatim(s) return setmetatable({ s }, Verbatim) end

-- scrub (optional) is applied to every string value.
local function encode_into(v, out, scrub)
  local t = type(v)
  if v == nil or v == NULL then
    out[#out + 1] = "null"
  elseif t == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif t == "number" then
    out[#out + 1] = json_number(v)
  elseif t == "string" then
    out[#out + 1] = json_string(scrub and scrub(v) or v)
  elseif t == "table" and getmetatable(v) == Verbatim then
    out[#out + 1] = json_string(v[1])
  elseif t == "table" and getmetatable(v) == Object then
    out[#out + 1] = "{"
    for i = 1, v.n, 2 do
      if i > 1 then out[#out + 1] = "," end
      out[#out + 1] = json_string(v[i])
      out[#out + 1] = ":"
      encode_into(v[i + 1], out, scrub)
    end
    out[#out + 1] = "}"
  elseif t == "table" then
    out[#out + 1] = "["
    for i = 1, #v do
      if i > 1 then out[#out + 1] = "," end
      encode_into(v[i], out, scrub)
    end
    out[#out + 1] = "]"
  else
    error("cannot encode a " .. t .. " as JSON")
  end
end

function encode(v, scrub)
  local out = {}
  encode_into(v, out, scrub)
  return table_concat(out)
end

M.obj, M.encode, M.verbatim, M.NULL = obj, encode, verbatim, NULL

return M
