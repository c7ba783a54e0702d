--- Safe rotation, pruning and auditing of cPanel API tokens.
--
-- install(Client, cptokens) adds to the client methods:
--   client:rotate{ prefix, expires_in | expires_at, keep, store, verify, verify_url, current }
--   client:prune{ prefix, expired, now }
--   client:audit{ within, now }
--
-- Rotation follows the order AWS Secrets Manager, IAM key rotation and Vault
-- use: list; create "<prefix>-<UTC YYYYMMDDHHMMSS>[-N]"; store the new secret;
-- verify it with a call made with it; only then revoke the old tokens beyond
-- `keep`. A failure before the end revokes the new token and touches nothing
-- old. A process killed at any point leaves the stored token valid, and the
-- next run converges (tokens newer than the stored one, which never reached
-- the store, are revoked as orphans).
--
-- Portable across Lua 5.1 to 5.4 and LuaJIT.
--
-- @module cptokens.rotate
local core = require "cptokens.core"
local time = require "cptokens.time"
local store = require "cptokens.store"

local error, getmetatable, ipairs, pairs, pcall, tostring, type =
  error, getmetatable, ipairs, pairs, pcall, tostring, type
local math_floor, os_date, os_time, string_format, table_sort =
  math.floor, os.date, os.time, string.format, table.sort

local M = {}

--- Fault injection for the test suite only: when set, rotate calls
-- M._test_hook(step) after each step ("list", "create", "store", "verify",
-- "revoke") has completed.
M._test_hook = nil

local NAME_MAX = 50                        -- cPanel's limit on a token name
local STAMP_LEN = 14                       -- YYYYMMDDHHMMSS
M.PREFIX_MAX = NAME_MAX - 1 - STAMP_LEN - 3  -- 32: room for "-<stamp>" and "-NN"
local SUFFIX_MAX = 99                      -- "-2" .. "-99" within one second

local function hook(step)
  if M._test_hook then M._test_hook(step) end
end

local function is_error(v)
  return type(v) == "table" and getmetatable(v) == core.Error
end

-- One-line text for a message (control bytes escaped), and the same quoted.
local clean, quote = store._clean, store._quote

local function invalid(msg)
  return nil, core.error("invalid", msg)
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

--- Raises unless every key of opts is known; returns opts (or {}).
local function check_options(what, opts, known, level)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error("cptokens: " .. what .. ": options must be a table, got " .. type(opts), level + 1)
  end
  for k in pairs(opts) do
    if not known[k] then
      error("cptokens: " .. what .. ": unknown option '" .. tostring(k) .. "'", level + 1)
    end
  end
  return opts
end

--- A prefix check: true, or nil, err (kind "invalid"). Raises for a non-string.
local function check_prefix(what, prefix, level)
  if type(prefix) ~= "string" then
    error("cptokens: " .. what .. ": prefix must be a string, got " .. type(prefix), level + 1)
  end
  if prefix == "" then return invalid(what .. ": the prefix is empty") end
  if not prefix:find("^[A-Za-z0-9_%-]+$") then
    return invalid(what .. ": prefix " .. quote(prefix)
      .. " may only contain the characters a-z A-Z 0-9 _ - (cPanel refuses other names)")
  end
  if #prefix > M.PREFIX_MAX then
    return invalid(string_format("%s: prefix %s is %d characters long; at most %d leave room for "
      .. "\"-YYYYMMDDHHMMSS-NN\" within cPanel's 50", what, quote(prefix), #prefix, M.PREFIX_MAX))
  end
  return true
end

local STAMP_PATTERN = "^(" .. ("%d"):rep(STAMP_LEN) .. ")$"
local STAMP_N_PATTERN = "^(" .. ("%d"):rep(STAMP_LEN) .. ")%-([1-9]%d?)$"

--- For a rotation name "<prefix>-<stamp>[-N]": stamp, N (1 without a suffix).
local function parse_name(name, prefix)
  if type(name) ~= "string" or name:sub(1, #prefix + 1) ~= prefix .. "-" then return nil end
  local rest = name:sub(#prefix + 2)
  local stamp = rest:match(STAMP_PATTERN)
  if stamp then return stamp, 1 end
  local s, n = rest:match(STAMP_N_PATTERN)
  if s then return s, tonumber(n) end
  return nil
end

M.parse_name = parse_name

--- Whether a name is one of prefix's rotations (exactly; "deploy" never
-- matches "deploy-old" or "deployer-...").
function M.matches(name, prefix)
  return parse_name(name, prefix) ~= nil
end

--- Order: older first by create_time, then stamp, then suffix, then name.
local function older(a, b)
  local ca, cb = a.create_time or 0, b.create_time or 0
  if ca ~= cb then return ca < cb end
  if a.stamp ~= b.stamp then return a.stamp < b.stamp end
  if a.n ~= b.n then return a.n < b.n end
  return a.name < b.name
end

--- A rotation error: kind and status of the cause, err.step, a message naming the step.
local function step_error(step, cause, tail, secret)
  local kind, msg, status, errors = "invalid"
  if is_error(cause) then
    kind, msg, status, errors = cause.kind, cause.message, cause.status, cause.errors
  else
    msg = cause == nil and "no reason given" or tostring(cause)
  end
  msg = clean(msg)
  if secret and secret ~= "" then
    -- a store function's message could quote the token: never let it through
    local i = msg:find(secret, 1, true)
    while i do
      msg = msg:sub(1, i - 1) .. "<token>" .. msg:sub(i + #secret)
      i = msg:find(secret, 1, true)
    end
  end
  local err = core.error(kind, "rotate: " .. step .. " failed: " .. msg .. (tail or ""), status)
  err.errors = errors
  err.step = step
  return err
end

--- The connection a token for this account works with: url, user, TLS
-- settings, timeouts. nil, err when it cannot be known (a WHM client on a
-- port other than 2087 without verify_url).
local function token_conn(info, verify_url)
  local url = verify_url
  if url == nil then
    if info.credential == "whm_token" then
      local head, tail = info.url:match("^(https?://[^/]+):2087(.*)$")
      if not head then
        return invalid("rotate: a WHM client needs verify_url (the cPanel URL, port 2083) to verify "
          .. "and store a user token, or verify = false and a store function")
      end
      url = head .. ":2083" .. tail
    else
      url = info.url
    end
  end
  return {
    url = url, user = info.user, cafile = info.cafile, capath = info.capath, insecure = info.insecure,
    timeout = info.timeout, connect_timeout = info.connect_timeout, max_response = info.max_response,
    transport = info.transport, -- set only when the client forced one (OpenResty)
  }
end

--- An authenticated call made with the new token, on a client of its own.
local function verify_token(new, conn, token)
  local opts = { token = token }
  for _, k in ipairs({ "url", "user", "cafile", "capath", "insecure", "timeout", "connect_timeout",
                       "max_response", "transport" }) do
    opts[k] = conn[k]
  end
  if not opts.insecure then opts.insecure = nil end
  local ok, c, cerr = pcall(new, opts)
  if not ok then
    return nil, core.error("invalid", "cannot make a client for the new token: " .. clean(c))
  end
  if not c then return nil, cerr end
  local list, err = c:list()
  c:close()
  if not list then return nil, err end
  return true
end

local ROTATE_OPTIONS = {
  prefix = true, expires_in = true, expires_at = true, keep = true, store = true, verify = true,
  verify_url = true, current = true,
}

--- The expiry of the new tokens: epoch, nil (never), or nil, err.
local function rotate_expiry(opts)
  local expires_in, expires_at = opts.expires_in, opts.expires_at
  if expires_in ~= nil and expires_at ~= nil then
    error("cptokens: rotate: give expires_in or expires_at, not both", 4)
  end
  local v = expires_in ~= nil and expires_in or expires_at
  if v == nil then return nil end
  local which = expires_in ~= nil and "expires_in" or "expires_at"
  if type(v) ~= "string" and type(v) ~= "number" then
    error("cptokens: rotate: " .. which .. " must be a string or a number, got " .. type(v), 4)
  end
  local now = os_time()
  local epoch, msg
  if expires_in ~= nil then
    epoch, msg = time.expires_at(v, now)
  else
    epoch, msg = time.to_epoch(v, now)
  end
  if not epoch then return nil, core.error("invalid", "rotate: " .. which .. ": " .. clean(msg)) end
  if epoch == 0 then return nil end
  if epoch <= now then
    return nil, core.error("invalid", "rotate: " .. which .. ": " .. epoch .. " is not in the future")
  end
  return epoch
end

--- The new token's name: "<prefix>-<stamp>", or with "-N" past every token
-- already made in that second (so names sort in creation order).
local function next_name(prefix, stamp, taken, entries, after)
  local n = after or 0
  for _, e in ipairs(entries) do
    if e.stamp == stamp and e.n > n then n = e.n end
  end
  while true do
    n = n + 1
    if n > SUFFIX_MAX then return nil, n end
    local name = n == 1 and (prefix .. "-" .. stamp) or (prefix .. "-" .. stamp .. "-" .. n)
    if not taken[name] then return name, n end
  end
end

local function conflict(err)
  if not is_error(err) or err.kind ~= "api" then return false end
  for _, m in ipairs(type(err.errors) == "table" and err.errors or { err.message }) do
    if tostring(m):find("already exists", 1, true) then return true end
  end
  return false
end

local function rotate(self, new, opts)
  opts = check_options("rotate", opts, ROTATE_OPTIONS, 3)
  local prefix, keep, store_opt, verify = opts.prefix, opts.keep, opts.store, opts.verify
  if prefix == nil then error("cptokens: rotate: 'prefix' is required", 3) end
  if store_opt == nil then
    error("cptokens: rotate: 'store' is required (a function or a path): the new token must be "
      .. "kept before old ones are revoked", 3)
  end
  if type(store_opt) ~= "function" and type(store_opt) ~= "string" then
    error("cptokens: rotate: 'store' must be a function or a path, got " .. type(store_opt), 3)
  end
  if keep == nil then keep = 0 end
  if type(keep) ~= "number" then error("cptokens: rotate: 'keep' must be a number, got " .. type(keep), 3) end
  if verify == nil then verify = true end
  if type(verify) ~= "boolean" then
    error("cptokens: rotate: 'verify' must be a boolean, got " .. type(verify), 3)
  end
  if opts.verify_url ~= nil and type(opts.verify_url) ~= "string" then
    error("cptokens: rotate: 'verify_url' must be a string, got " .. type(opts.verify_url), 3)
  end
  if opts.current ~= nil then
    if type(opts.current) ~= "string" then
      error("cptokens: rotate: 'current' must be a string, got " .. type(opts.current), 3)
    end
    if type(store_opt) == "string" then
      error("cptokens: rotate: 'current' is for a store function; a store path names its own token", 3)
    end
  end

  -- Checks before anything is sent.
  local ok, err = check_prefix("rotate", prefix, 3)
  if not ok then return nil, err end
  if keep < 0 or keep ~= math_floor(keep) or keep ~= keep or keep == math.huge then
    return invalid("rotate: keep must be a whole number >= 0, got " .. clean(keep))
  end
  local expires_at
  expires_at, err = rotate_expiry(opts)
  if err then return nil, err end
  local info = self:info()
  local conn
  if verify or type(store_opt) == "string" then
    conn, err = token_conn(info, opts.verify_url)
    if not conn then return nil, err end
  end

  local stored -- { name, create_time? }: the token the store holds now
  if type(store_opt) == "string" then
    ok, err = store.check(store_opt)
    if not ok then
      return nil, step_error("store", err, "; nothing was sent, no token was made")
    end
    local prev, meta = store.load(store_opt)
    if prev then
      if prev.user ~= info.user then
        return nil, step_error("store", "the token file " .. quote(store_opt) .. " holds a token of user "
          .. quote(prev.user) .. ", not " .. quote(info.user) .. "; refusing to overwrite it",
          "; nothing was sent, no token was made")
      end
      stored = { name = meta.name, create_time = meta.create_time }
    end
  elseif opts.current then
    stored = { name = opts.current }
  end

  -- 1. list
  local list
  list, err = self:list()
  if not list then return nil, step_error("list", err, "; nothing was changed") end
  hook("list")

  local entries, taken = {}, {}
  for _, t in ipairs(list) do
    taken[t.name] = true
    local stamp, n = parse_name(t.name, prefix)
    if stamp then
      entries[#entries + 1] = { name = t.name, create_time = t.create_time, stamp = stamp, n = n }
    end
  end

  -- The stored token's place in the order, for orphan detection.
  local mark
  if stored then
    for _, e in ipairs(entries) do
      if e.name == stored.name then mark = e end
    end
    if not mark then
      for _, t in ipairs(list) do
        if t.name == stored.name then stored.create_time = t.create_time end
      end
      if stored.create_time then
        local stamp, n = parse_name(stored.name, prefix)
        mark = { name = stored.name, create_time = stored.create_time, stamp = stamp or "", n = n or 0 }
      end
    end
  end
  local orphans, olds = {}, {}
  for _, e in ipairs(entries) do
    if mark and e.name ~= mark.name and older(mark, e) then
      orphans[#orphans + 1] = e
    else
      olds[#olds + 1] = e
    end
  end

  -- 2. create
  local stamp = os_date("!%Y%m%d%H%M%S")
  local name, n = next_name(prefix, stamp, taken, entries)
  local tok
  for _ = 1, 5 do
    if not name then
      return nil, step_error("create", core.error("invalid", "more than " .. SUFFIX_MAX
        .. " rotations of " .. quote(prefix) .. " in one second"), "; nothing was changed")
    end
    tok, err = self:create(name, expires_at and { expires_at = expires_at } or nil)
    if tok or not conflict(err) then break end
    -- Someone else took that name meanwhile: nothing was made, try the next.
    taken[name] = true
    name, n = next_name(prefix, stamp, taken, entries, n)
  end
  if not tok then
    return nil, step_error("create", err, "; no old token was touched")
  end
  hook("create")

  -- Undo for a failure before the new token is safe: revoke it, touch nothing old.
  local function abort(step, cause)
    local rok, rerr = self:revoke(tok.name)
    local tail
    if rok then
      tail = "; the new token " .. quote(tok.name) .. " was revoked and no old token was touched"
    else
      tail = "; revoking the new token " .. quote(tok.name) .. " failed too (" .. tostring(rerr)
        .. "): revoke it by hand; no old token was touched"
    end
    local e = step_error(step, cause, tail, tok.token)
    e.new_name = tok.name
    e.new_revoked = rok and true or false
    return nil, e
  end

  -- 3. store
  if type(store_opt) == "string" then
    ok, err = store.save(store_opt, tok, conn)
  else
    local pok, r1, r2 = pcall(store_opt, copy(tok))
    if not pok then
      ok, err = nil, "the store function raised an error: " .. tostring(r1)
    elseif r1 then
      ok = true
    else
      ok, err = nil, r2 == nil and "the store function returned " .. tostring(r1) or r2
    end
  end
  if not ok then return abort("store", err) end
  hook("store")

  -- 4. verify
  if verify then
    ok, err = verify_token(new, conn, tok.token)
    if not ok then return abort("verify", err) end
  end
  hook("verify")

  -- 5. revoke orphans, and old tokens beyond `keep` (newest kept)
  table_sort(olds, function(a, b) return older(b, a) end)
  local report = { created = tok.name, revoked = {}, kept = {}, orphans = {} }
  local victims = {}
  for _, e in ipairs(orphans) do victims[#victims + 1] = { name = e.name, orphan = true } end
  for i, e in ipairs(olds) do
    if i <= keep then
      report.kept[#report.kept + 1] = e.name
    else
      victims[#victims + 1] = { name = e.name }
    end
  end
  local self_token = info.credential == "token"
  local switched = false
  for _, v in ipairs(victims) do
    local rok, rerr = self:revoke(v.name)
    if not rok and self_token and not switched and is_error(rerr) and rerr.kind == "auth" then
      -- The client's own token was among those revoked: go on with the new one.
      self:_set_token(tok.token)
      switched = true
      rok, rerr = self:revoke(v.name)
    end
    if rok then
      report.revoked[#report.revoked + 1] = v.name
      if v.orphan then report.orphans[#report.orphans + 1] = v.name end
    else
      report.errors = report.errors or {}
      report.errors[#report.errors + 1] = { name = v.name, err = rerr }
    end
  end
  if self_token and not switched and report.revoked[1] then
    -- Did the last revocation take the client's own token? One call tells.
    local l, lerr = self:list()
    if not l and is_error(lerr) and lerr.kind == "auth" then
      self:_set_token(tok.token)
      switched = true
    end
  end
  report.switched = switched
  hook("revoke")
  return tok, report
end

------------------------------------------------------------------- prune

local PRUNE_OPTIONS = { prefix = true, expired = true, now = true }

local function check_now(what, now, level)
  if now ~= nil and (type(now) ~= "number" or now ~= now or now < 0 or now == math.huge) then
    error("cptokens: " .. what .. ": 'now' must be epoch seconds (a number), got " .. tostring(now),
      level + 1)
  end
end

local function prune(self, opts)
  opts = check_options("prune", opts, PRUNE_OPTIONS, 3)
  if opts.expired ~= nil and opts.expired ~= true then
    if type(opts.expired) ~= "boolean" then
      error("cptokens: prune: 'expired' must be true, got " .. type(opts.expired), 3)
    end
    error("cptokens: prune: expired = false is not supported: prune only revokes expired tokens "
      .. "(use rotate's keep, or revoke, for valid ones)", 3)
  end
  check_now("prune", opts.now, 3)
  local prefix = opts.prefix
  if prefix ~= nil then
    local ok, err = check_prefix("prune", prefix, 3)
    if not ok then return nil, err end
  end
  local list, err = self:list()
  if not list then return nil, err end
  local report = { revoked = {}, kept = 0 }
  for _, t in ipairs(list) do
    if prefix == nil or parse_name(t.name, prefix) then
      if time.is_expired(t, opts.now) then
        local ok, rerr = self:revoke(t.name)
        if ok then
          report.revoked[#report.revoked + 1] = t.name
        else
          report.errors = report.errors or {}
          report.errors[#report.errors + 1] = { name = t.name, err = rerr }
        end
      else
        report.kept = report.kept + 1
      end
    end
  end
  return report
end

------------------------------------------------------------------- audit

local AUDIT_OPTIONS = { within = true, now = true }

local function audit(self, opts)
  opts = check_options("audit", opts, AUDIT_OPTIONS, 3)
  local within = opts.within
  if within == nil then within = "7d" end
  if type(within) ~= "string" and type(within) ~= "number" then
    error("cptokens: audit: 'within' must be a duration (string or number), got " .. type(within), 3)
  end
  check_now("audit", opts.now, 3)
  local window, msg = time.parse_duration(within)
  if not window then return invalid("audit: within: " .. clean(msg)) end
  local now = opts.now and math_floor(opts.now) or os_time()
  local list, err = self:list()
  if not list then return nil, err end
  local report = { expired = {}, expiring = {}, never = {}, fine = {}, tokens = {}, now = now,
                   within = window }
  for _, t in ipairs(list) do
    local entry = copy(t)
    local remaining = time.remaining(entry, now)
    entry.remaining = remaining
    if remaining == nil then
      entry.state = "never"
    elseif remaining < 0 then
      entry.state = "expired"
    elseif remaining <= window then
      entry.state = "expiring"
    else
      entry.state = "fine"
    end
    report[entry.state][#report[entry.state] + 1] = entry
    report.tokens[#report.tokens + 1] = entry
  end
  return report
end

------------------------------------------------------------------ install

--- Adds rotate, prune and audit to the client methods.
function M.install(Client, cptokens)
  local new = (cptokens and cptokens.new) or core.new
  --- client:rotate{...} -> new token, report | nil, err (err.step names the step)
  -- (no tail calls: misuse errors point at the caller's line)
  function Client:rotate(opts)
    local tok, report = rotate(self, new, opts)
    return tok, report
  end
  --- client:prune{ prefix = nil, expired = true, now = nil } -> report | nil, err
  function Client:prune(opts)
    local report, err = prune(self, opts)
    return report, err
  end
  --- client:audit{ within = "7d", now = nil } -> report | nil, err
  function Client:audit(opts)
    local report, err = audit(self, opts)
    return report, err
  end
  return M
end

return M
