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
-- Every timeout, connect_timeout and lock_timeout a spec gives that must not fire comes
-- from here. A timeout that a spec expects to fire (against a server that hangs) is the
-- value under test and stays as written, with the fault lasting well past it.
function H.seconds(s) return s * H.time_factor end

--- Seconds since an arbitrary origin, with sub-second precision.
function H.clock()
  local socket = require "socket"
  return socket.gettime()
end

-------------------------------------------------------------------- fixtures

--- The fake server's accounts (spec/support/fake/cpanel.lua: user, password, otp, token),
-- and their secrets under the names the specs use: written once, where the server is.
H.accounts = require("spec.support.fake.cpanel").accounts
H.ALICE_PW = H.accounts.alice.password
H.BOB_PW = H.accounts.bob.password
H.BOB_OTP = H.accounts.bob.otp
H.CAROL_PW = H.accounts.carol.password
H.ROOT_WHM = H.accounts.root.token
H.RES_WHM = H.accounts.res.token

--- A client of the fake server srv (spec.support.server): cptokens.new(opts) with, unless
-- opts says otherwise, srv.url, srv.cafile (none with insecure), user "alice" and, without
-- a token or whm_token, alice's password. opts is not changed. Raises with the error's text
-- when the client cannot be made.
function H.client(srv, opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.url = o.url or srv.url
  if o.cafile == nil and not o.insecure then o.cafile = srv.cafile end
  o.user = o.user or "alice"
  if not (o.token or o.whm_token) then o.password = o.password or H.ALICE_PW end
  local c, err = require("cptokens").new(o)
  if not c then error(tostring(err), 2) end
  return c
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
--- How many requests the fake server srv logged match filter: record fields (status, port,
-- ...) that must all be equal, and func, the API function called.
function H.requests(srv, filter)
  local n = 0
  for _, rec in ipairs(srv:log()) do
    local match = true
    for k, v in pairs(filter) do
      if (k == "func" and (rec.args.cpanel_jsonapi_func or rec.uri:match("[%w_]+$")) ~= v)
        or (k ~= "func" and rec[k] ~= v) then
        match = false
      end
    end
    if match then n = n + 1 end
  end
  return n
end

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
