--- Safe rotation, pruning and auditing of cPanel API tokens.
--
-- install(Client, cptokens) adds to the client methods:
--   client:rotate{ prefix, expires_in | expires_at, keep, store, verify, verify_url, current,
--                  lock, lock_timeout }
--   client:prune{ prefix, expired, now }
--   client:audit{ within, now }
--
-- Rotation: lock the store (store.lock: one rotation of a store at a time, and
-- a journal of names); list; create "<prefix>-<UTC YYYYMMDDHHMMSS>[-N]", its
-- name journaled first; verify it with a call made with it; store it (the
-- store is replaced only now, so until then it holds the previous, working
-- token); only then revoke the old tokens beyond `keep`, the names to revoke
-- journaled before the store. A failure before the end revokes the new token
-- and touches nothing old. A process killed at any instant leaves the stored
-- token valid, and the next run finishes its work from the journal. A store
-- path owns only its token and its history; other tokens with the prefix are
-- reported as foreign and left alone.
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

-- The names of entries, added to (and without repeating) an array of names.
local function names_of_list(entries, into)
  local out, seen = {}, {}
  for _, n in ipairs(into or {}) do
    if not seen[n] then out[#out + 1], seen[n] = n, true end
  end
  for _, e in ipairs(entries) do
    if not seen[e.name] then out[#out + 1], seen[e.name] = e.name, true end
  end
  return out
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
  verify_url = true, current = true, lock = true, lock_timeout = true,
}

--- The expiry of the new tokens: epoch, nil (never), or nil, err.
local function rotate_expiry(opts)
  local expires_in, expires_at = opts.expires_in, opts.expires_at
  if expires_in ~= nil and expires_at ~= nil then
    error("cptokens: rotate: give expires_in or expires_at, not both", 5)
  end
  local v = expires_in ~= nil and expires_in or expires_at
  if v == nil then return nil end
  local which = expires_in ~= nil and "expires_in" or "expires_at"
  if type(v) ~= "string" and type(v) ~= "number" then
    error("cptokens: rotate: " .. which .. " must be a string or a number, got " .. type(v), 5)
  end
  local epoch, msg = time.expiry(expires_in, expires_at)
  if not epoch then return nil, core.error("invalid", "rotate: " .. clean(msg)) end
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

local function raise(msg) error("cptokens: rotate: " .. msg, 5) end

local function check_type(opts, k, want)
  if opts[k] ~= nil and type(opts[k]) ~= want then
    error("cptokens: rotate: '" .. k .. "' must be a " .. want .. ", got " .. type(opts[k]), 5)
  end
end

--- Step 0: the options, checked before anything happens. Raises on misuse;
-- returns the rotation's settings, or nil, err for bad values.
local function check_rotate(self, opts)
  opts = check_options("rotate", opts, ROTATE_OPTIONS, 4)
  if opts.prefix == nil then raise("'prefix' is required") end
  local st = opts.store
  if st == nil then
    raise("'store' is required (a function or a path): the new token must be kept before old "
      .. "ones are revoked")
  end
  if type(st) ~= "function" and type(st) ~= "string" then
    raise("'store' must be a function or a path, got " .. type(st))
  end
  check_type(opts, "keep", "number")
  check_type(opts, "verify", "boolean")
  check_type(opts, "verify_url", "string")
  check_type(opts, "current", "string")
  check_type(opts, "lock", "string")
  check_type(opts, "lock_timeout", "number")
  if type(st) == "string" and (opts.current or opts.lock) then
    raise("'" .. (opts.current and "current" or "lock") .. "' is for a store function; a store path "
      .. "names its own token and lock")
  end
  local ok, err = check_prefix("rotate", opts.prefix, 4)
  if not ok then return nil, err end
  local keep = opts.keep or 0
  if keep < 0 or keep ~= math_floor(keep) or keep ~= keep or keep == math.huge then
    return invalid("rotate: keep must be a whole number >= 0, got " .. clean(keep))
  end
  local wait = opts.lock_timeout or 30
  if wait < 0 or wait ~= wait or wait > 86400 then
    return invalid("rotate: lock_timeout must be 0 to 86400 seconds, got " .. clean(wait))
  end
  local expires_at
  expires_at, err = rotate_expiry(opts)
  if err then return nil, err end
  local cfg = { prefix = opts.prefix, keep = keep, store = st, verify = opts.verify ~= false,
                current = opts.current, expires_at = expires_at, info = self:info(), wait = wait,
                lock_path = type(st) == "string" and st or opts.lock }
  if cfg.verify or type(st) == "string" then
    cfg.conn, err = token_conn(cfg.info, opts.verify_url)
    if not cfg.conn then return nil, err end
  end
  return cfg
end

local NOTHING_SENT = "; nothing was sent, no token was made"

--- Step 1: the lock (a path store, or a store function given `lock`), and
-- what the store holds now: cfg.stored { name, token? }, cfg.history (names,
-- or nil: the store owns the whole prefix), cfg.journal. true, or nil, err.
local function read_store(self, cfg)
  local own -- the client authenticates with the stored token (read before waiting for the lock)
  if type(cfg.store) == "string" then
    local ok, err = store.check(cfg.store, cfg.conn)
    if not ok then return nil, step_error("store", err, NOTHING_SENT) end
    local pre = store.load(cfg.store)
    own = pre and self:_holds(pre.token)
  end
  if cfg.lock_path then
    local lock, err = store.lock(cfg.lock_path, cfg.wait)
    if not lock then return nil, step_error("lock", err, NOTHING_SENT) end
    cfg.lock, cfg.journal = lock, lock:journal()
  else
    cfg.journal = { pending = {}, revoke = {} }
  end
  if type(cfg.store) ~= "string" then
    cfg.stored = cfg.current and { name = cfg.current }
    return true
  end
  local ok, err = store.check(cfg.store, cfg.conn) -- again: now under the lock
  if not ok then return nil, step_error("store", err, NOTHING_SENT) end
  cfg.history = {}
  local prev, meta = store.load(cfg.store)
  if prev then
    cfg.stored = { name = meta.name, token = prev.token }
    cfg.history = meta.history or {}
    -- A rotation of the same file ran while this one waited: go on with what it stored,
    -- rather than fail to authenticate with a token it revoked.
    if own and not self:_holds(prev.token) then self:_set_token(prev.token) end
  end
  return true
end

local function set_of(names)
  local s = {}
  for _, n in ipairs(names or {}) do s[n] = true end
  return s
end

--- Step 2: sorts the account's tokens. A path store owns exactly the token it
-- holds and its history; a store function owns the whole prefix (tokens newer
-- than `current` are orphans). Names in the journal that are still there are
-- leftovers of an interrupted run, revoked as orphans. Tokens with the prefix
-- that the store does not own are `foreign`: left alone.
local function classify(cfg, list)
  local prefix, stored = cfg.prefix, cfg.stored
  local c = { olds = {}, orphans = {}, leftover = {}, foreign = {}, entries = {}, taken = {} }
  local history, pending, left = set_of(cfg.history), set_of(cfg.journal.pending),
    set_of(cfg.journal.revoke)
  local mark
  -- A name a killed run was creating that the server does not show (yet: a request sent just
  -- before the kill may still be carried out) stays in the journal for a day.
  local on_server, day_ago = {}, os_date("!%Y%m%d%H%M%S", os_time() - 86400)
  for _, t in ipairs(list) do on_server[t.name] = true end
  c.unseen = {}
  for _, n in ipairs(cfg.journal.pending) do
    local stamp = parse_name(n, prefix)
    if not on_server[n] and stamp and stamp >= day_ago then c.unseen[#c.unseen + 1] = n end
    c.taken[n] = true -- never reuse it: its create may still arrive
  end
  for _, t in ipairs(list) do
    c.taken[t.name] = true
    local stamp, n = parse_name(t.name, prefix)
    local e = { name = t.name, create_time = t.create_time, stamp = stamp or "", n = n or 0 }
    if stamp then c.entries[#c.entries + 1] = e end
    if stored and t.name == stored.name then mark = e end
  end
  for _, t in ipairs(list) do
    local e = { name = t.name, create_time = t.create_time }
    e.stamp, e.n = parse_name(t.name, prefix)
    e.stamp, e.n = e.stamp or "", e.n or 0
    local mine = e.stamp ~= "" and cfg.history == nil
    if mark and t.name == mark.name or history[t.name] then
      c.olds[#c.olds + 1] = e
    elseif pending[t.name] or (mine and mark and older(mark, e)) then
      c.orphans[#c.orphans + 1] = e
    elseif left[t.name] then
      c.leftover[#c.leftover + 1] = e
    elseif mine then
      c.olds[#c.olds + 1] = e
    elseif e.stamp ~= "" then
      c.foreign[#c.foreign + 1] = t.name
    end
  end
  table_sort(c.olds, function(a, b) return older(b, a) end) -- newest first
  return c
end

--- Step 3: creates the new token under a name recorded in the journal first,
-- so that a run killed now leaves a name the next run revokes.
local function create_new(self, cfg, c)
  local name, n = next_name(cfg.prefix, os_date("!%Y%m%d%H%M%S"), c.taken, c.entries)
  local tok, err
  for _ = 1, 5 do
    if not name then
      return nil, step_error("create", core.error("invalid", "more than " .. SUFFIX_MAX
        .. " rotations of " .. quote(cfg.prefix) .. " in one second"), "; nothing was changed")
    end
    if cfg.lock then
      cfg.journal.pending = names_of_list({ { name = name } }, cfg.journal.pending)
      local ok, jerr = cfg.lock:record(cfg.journal)
      if not ok then return nil, step_error("create", jerr, "; nothing was changed") end
    end
    tok, err = self:create(name, cfg.expires_at and { expires_at = cfg.expires_at } or nil)
    if tok or not conflict(err) then break end
    -- Someone else took that name meanwhile: nothing was made, try the next (and never
    -- treat that token, which is not ours, as an orphan of ours).
    c.taken[name] = true
    if cfg.lock then
      local rest = {}
      for _, p in ipairs(cfg.journal.pending) do
        if p ~= name then rest[#rest + 1] = p end
      end
      cfg.journal.pending = rest
    end
    name, n = next_name(cfg.prefix, os_date("!%Y%m%d%H%M%S"), c.taken, c.entries, n)
  end
  if not tok then return nil, step_error("create", err, "; no old token was touched") end
  return tok
end

--- Undoes a rotation that failed before the new token was stored: revokes the
-- new token and touches nothing old; nil, err.
local function abort(self, cfg, tok, step, cause)
  local rok, rerr = self:revoke(tok.name)
  local tail
  if rok then
    tail = "; the new token " .. quote(tok.name) .. " was revoked and no old token was touched"
    if cfg.lock then -- the other names stay: orphans of earlier runs are still to revoke
      local rest = {}
      for _, n in ipairs(cfg.journal.pending) do
        if n ~= tok.name then rest[#rest + 1] = n end
      end
      cfg.journal.pending = rest
      cfg.lock:record(cfg.journal)
    end
  else
    tail = "; revoking the new token " .. quote(tok.name) .. " failed too (" .. tostring(rerr) .. "): "
      .. (cfg.lock and "the next rotation revokes it" or "revoke it by hand") .. "; no old token was touched"
  end
  local e = step_error(step, cause, tail, tok.token)
  e.new_name = tok.name
  e.new_revoked = rok and true or false
  return nil, e
end

--- Step 5: hands the verified token to the store. true, or nil, cause.
local function store_new(cfg, tok, kept)
  if type(cfg.store) == "string" then
    -- the file the lock was taken for, resolved then: a link put in its place since is
    -- replaced, never followed
    return store.save(cfg.lock.target, tok, cfg.conn, { history = kept, nofollow = true })
  end
  local pok, r1, r2 = pcall(cfg.store, copy(tok))
  if not pok then return nil, "the store function raised an error: " .. tostring(r1) end
  if r1 then return true end
  return nil, r2 == nil and "the store function returned " .. tostring(r1) or r2
end

--- Step 6: revokes the orphans and the old tokens beyond `keep`. A token
-- client whose own token is among them goes on with the new one first (no
-- call is ever made with a revoked token). The first authentication failure
-- stops it (cPanel's cPHulk locks out an address after a few); what is left
-- stays in the journal for the next run.
local function revoke_old(self, cfg, tok, victims, report)
  local own = cfg.info.credential == "token" and cfg.stored
    and ((cfg.stored.token and self:_holds(cfg.stored.token)) or (not cfg.stored.token and cfg.current))
  local left = {}
  for _, v in ipairs(victims) do
    if own and v.name == cfg.stored.name and not report.switched then
      self:_set_token(tok.token)
      report.switched = true
    end
  end
  local stopped
  for _, v in ipairs(victims) do
    local rok, rerr
    if stopped then
      rerr = core.error("auth", "not sent: an earlier revocation failed to authenticate ("
        .. stopped .. "); the next rotation retries")
    else
      rok, rerr = self:revoke(v.name)
    end
    if rok then
      report.revoked[#report.revoked + 1] = v.name
      if v.orphan then report.orphans[#report.orphans + 1] = v.name end
    else
      if not stopped and is_error(rerr) and rerr.kind == "auth" then stopped = rerr.message end
      left[#left + 1] = v.name
      report.errors = report.errors or {}
      report.errors[#report.errors + 1] = { name = v.name, err = rerr }
    end
  end
  return left
end

local function rotate_steps(self, cfg)
  local ok, err = read_store(self, cfg)
  if not ok then return nil, err end
  local list
  list, err = self:list()
  if not list then return nil, step_error("list", err, "; nothing was changed") end
  hook("list")
  local c = classify(cfg, list)
  local tok
  tok, err = create_new(self, cfg, c)
  if not tok then return nil, err end
  hook("create")
  if cfg.verify then
    ok, err = verify_token(cfg.new, cfg.conn, tok.token)
    if not ok then return abort(self, cfg, tok, "verify", err) end
  end
  hook("verify")
  local report = { created = tok.name, revoked = {}, kept = {}, orphans = {}, foreign = c.foreign,
                   switched = false }
  local victims = {}
  for _, e in ipairs(c.orphans) do victims[#victims + 1] = { name = e.name, orphan = true } end
  for _, e in ipairs(c.leftover) do victims[#victims + 1] = { name = e.name } end
  for i, e in ipairs(c.olds) do
    if i <= cfg.keep then
      report.kept[#report.kept + 1] = e.name
    else
      victims[#victims + 1] = { name = e.name }
    end
  end
  if cfg.lock then -- before the store: a run killed after it still revokes them
    cfg.journal.revoke = names_of_list(victims, cfg.journal.revoke)
    ok, err = cfg.lock:record(cfg.journal)
    if not ok then return abort(self, cfg, tok, "store", err) end
  end
  ok, err = store_new(cfg, tok, report.kept)
  if not ok then return abort(self, cfg, tok, "store", err) end
  hook("store")
  local left = revoke_old(self, cfg, tok, victims, report)
  if cfg.lock then cfg.lock:record({ pending = c.unseen, revoke = left }) end
  hook("revoke")
  return tok, report
end

--- client:rotate: check, lock and read the store, list, create, verify,
-- store, revoke; the lock is released whatever happens.
local function rotate(self, new, opts)
  local cfg, err = check_rotate(self, opts)
  if not cfg then return nil, err end
  cfg.new = new
  local ok, tok, report = pcall(rotate_steps, self, cfg)
  if cfg.lock then cfg.lock:release() end
  if not ok then error(tok, 0) end
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
