--- Shared by the specs: the in-tree build on the paths, and small tools.
-- Loaded by busted (see .busted) before any spec file.
local build = os.getenv("CPTOKENS_BUILD") or "build/5.4"
if not package.cpath:find(build, 1, true) then
  package.cpath = build .. "/?.so;" .. package.cpath
end
if not package.path:find("lua/?.lua", 1, true) then
  package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
end

local H = {}

--- True when running under valgrind (slow: timing-sensitive specs relax).
H.valgrind = os.getenv("CPTOKENS_VALGRIND") ~= nil
--- True when running the ASan/UBSan build (make test-asan).
H.asan = os.getenv("CPTOKENS_ASAN") ~= nil

--- How many times slower than a plain run this run is, from the environment it runs in:
-- CPTOKENS_TIME_FACTOR when set, else 10 under valgrind (memcheck runs C code 10 to 50
-- times slower; a CA bundle takes about 2 s to parse), 3 with ASan, 1 otherwise.
H.time_factor = tonumber(os.getenv("CPTOKENS_TIME_FACTOR") or "")
  or (H.valgrind and 10) or (H.asan and 3) or 1

--- seconds scaled for this run: client timeouts that must not fire, and slack on time bounds.
function H.seconds(s) return s * H.time_factor end

--- Seconds since an arbitrary origin, with sub-second precision.
function H.clock()
  local socket = require "socket"
  return socket.gettime()
end

--- Every string reachable from v (tables walked, errors and userdata tostring'd).
function H.strings(v, out, seen)
  out, seen = out or {}, seen or {}
  local t = type(v)
  if t == "string" then
    out[#out + 1] = v
  elseif t == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do
      H.strings(k, out, seen)
      H.strings(x, out, seen)
    end
    out[#out + 1] = tostring(v)
  elseif t == "userdata" then
    out[#out + 1] = tostring(v)
  end
  return out
end

--- Asserts that none of the secrets appears in anything reachable from v.
function H.assert_no_secret(v, secrets)
  local mime = require "mime"
  for _, s in ipairs(H.strings(v)) do
    for _, secret in ipairs(secrets) do
      if s:find(secret, 1, true) then
        -- never print the secret itself into the test log: mask it (plain, not a pattern)
        local masked, from = {}, 1
        while true do
          local i, j = s:find(secret, from, true)
          if not i then break end
          masked[#masked + 1] = s:sub(from, i - 1) .. "<SECRET>"
          from = j + 1
        end
        masked[#masked + 1] = s:sub(from)
        error("a secret leaked into: " .. table.concat(masked), 2)
      end
      local b64 = (mime.b64(secret))
      assert(not s:find(b64, 1, true), "a secret (base64) leaked into a value")
    end
  end
end

return H
