--- The steps of a rotation, for any token family (cPanel-user tokens through
-- cptokens.new clients, WHM API tokens through cptokens.whm): check, lock and
-- read the store, list, create (its name journaled first), verify, store,
-- revoke. The family (see cptokens.rotate) says how to list, create, revoke
-- and verify its tokens, and what connection a stored token works with.
--
-- @module cptokens.rotate_run
local core = require "cptokens.core"
local store = require "cptokens.store"
local util = require "cptokens.util"
local P = require "cptokens.rotate_plan"

local error, ipairs, pairs, pcall, tostring, type = error, ipairs, pairs, pcall, tostring, type
local math_floor, os_date = math.floor, os.date

local is_error, clean, quote, invalid = P.is_error, P.clean, P.quote, P.invalid
local names_of_list, copy, check_options, check_prefix = P.names_of_list, P.copy, P.check_options,
  P.check_prefix
local next_name, conflict, classify, SUFFIX_MAX = P.next_name, P.conflict, P.classify, P.SUFFIX_MAX

local M = {}

--- Set by cptokens.rotate: called after each step ("list", "create", "store", "verify", "revoke").
M.hook = function() end
local function hook(step) M.hook(step) end

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

local ROTATE_OPTIONS = {
  prefix = true, expires_in = true, expires_at = true, keep = true, store = true, verify = true,
  verify_url = true, current = true, lock = true, lock_timeout = true, dry_run = true,
  deliver = true,
}

--- The expiry of the new tokens: epoch, nil (never), or nil, err.
local function rotate_expiry(opts)
  local epoch, err = util.expiry_option("rotate", opts.expires_in, opts.expires_at, 5)
  return epoch, err -- not a tail call: the level counts this function's frame
end

--- The new token's name: "<prefix>-<stamp>", or with "-N" past every token
local function raise(msg) error("cptokens: rotate: " .. msg, 5) end

local function check_type(opts, k, want)
  if opts[k] ~= nil and type(opts[k]) ~= want then
    error("cptokens: rotate: '" .. k .. "' must be a " .. want .. ", got " .. type(opts[k]), 5)
  end
end

--- Step 0: the options, checked before anything happens. Raises on misuse;
-- returns the rotation's settings, or nil, err for bad values.
local function check_rotate(self, fam, opts)
  local known = ROTATE_OPTIONS
  if fam.options then
    known = copy(ROTATE_OPTIONS)
    for k in pairs(fam.options) do known[k] = true end
  end
  opts = check_options("rotate", opts, known, 4)
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
  check_type(opts, "dry_run", "boolean")
  check_type(opts, "deliver", "function")
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
                lock_path = type(st) == "string" and st or opts.lock, dry_run = opts.dry_run == true,
                deliver = opts.deliver }
  if cfg.verify or type(st) == "string" then
    cfg.conn, err = fam.conn(cfg.info, opts.verify_url)
    if not cfg.conn then return nil, err end
  end
  cfg.fam = fam
  if fam.check then
    ok, err = fam.check(cfg, opts)
    if not ok then return nil, err end
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
    tok, err = cfg.fam.create(self, name, cfg, c)
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
  local rok, rerr = cfg.fam.revoke(self, tok.name)
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

-- A function the caller gave (store, deliver): true, or nil, cause; never raises.
local function call_out(what, fn, tok, conn)
  local pok, r1, r2 = pcall(fn, copy(tok), conn and copy(conn))
  if not pok then return nil, "the " .. what .. " function raised an error: " .. tostring(r1) end
  if r1 then return true end
  return nil, r2 == nil and "the " .. what .. " function returned " .. tostring(r1) or r2
end

--- Step 5: hands the verified token to `deliver` (when given), then to the store.
-- true; or nil, cause, delivered (deliver took the token, the store then failed).
local function store_new(cfg, tok, kept)
  if cfg.deliver then
    local ok, err = call_out("deliver", cfg.deliver, tok, cfg.conn)
    if not ok then return nil, err end
  end
  local ok, err
  if type(cfg.store) == "string" then
    -- the file the lock was taken for, resolved then: a link put in its place since is
    -- replaced, never followed
    ok, err = store.save(cfg.lock.target, tok, cfg.conn, { history = kept, nofollow = true })
  else
    ok, err = call_out("store", cfg.store, tok)
  end
  if ok then return true end
  return nil, err, cfg.deliver ~= nil
end

--- Step 6: revokes the orphans and the old tokens beyond `keep`. A token
-- client whose own token is among them goes on with the new one first (no
-- call is ever made with a revoked token). The first authentication failure
-- stops it (cPanel's cPHulk locks out an address after a few); what is left
-- stays in the journal for the next run.
local function revoke_old(self, cfg, tok, victims, report)
  local own = cfg.info.credential == cfg.fam.credential and cfg.stored
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
      rok, rerr = cfg.fam.revoke(self, v.name)
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

--- The report of a rotation that created `name`, and the tokens it revokes: the orphans of
-- earlier runs, names left from them, and the old tokens beyond `keep`.
local function plan_victims(cfg, c, name)
  local report = { created = name, revoked = {}, kept = {}, orphans = {}, foreign = c.foreign,
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
  return report, victims
end

--- dry_run: what a rotation would do now, with nothing created, stored or revoked (the
-- store was checked and read as for a rotation). The "token" has no secret.
local function dry_run(cfg, c)
  local name = next_name(cfg.prefix, os_date("!%Y%m%d%H%M%S"), c.taken, c.entries)
  local report, victims = plan_victims(cfg, c, nil)
  report.dry_run, report.would_create, report.would_revoke = true, name, {}
  for _, v in ipairs(victims) do
    report.would_revoke[#report.would_revoke + 1] = v.name
    if v.orphan then report.orphans[#report.orphans + 1] = v.name end
  end
  return { name = name, expires_at = cfg.expires_at, dry_run = true }, report
end

local function rotate_steps(self, cfg)
  local ok, err = read_store(self, cfg)
  if not ok then return nil, err end
  local list
  list, err = cfg.fam.list(self)
  if not list then return nil, step_error("list", err, "; nothing was changed") end
  hook("list")
  local c = classify(cfg, list)
  c.listed = list
  if cfg.dry_run then return dry_run(cfg, c) end
  local tok
  tok, err = create_new(self, cfg, c)
  if not tok then return nil, err end
  hook("create")
  if cfg.verify then
    ok, err = cfg.fam.verify(cfg, tok)
    if not ok then return abort(self, cfg, tok, "verify", err) end
  end
  hook("verify")
  local report, victims = plan_victims(cfg, c, tok.name)
  if cfg.lock then -- before the store: a run killed after it still revokes them
    cfg.journal.revoke = names_of_list(victims, cfg.journal.revoke)
    ok, err = cfg.lock:record(cfg.journal)
    if not ok then return abort(self, cfg, tok, "store", err) end
  end
  local delivered
  ok, err, delivered = store_new(cfg, tok, report.kept)
  if delivered then
    -- deliver holds the new token: it stays valid (its name is in the journal, so the next
    -- rotation revokes it once that one is stored), and the store still holds the previous
    -- one, which stays valid too: nothing old is revoked now
    local e = step_error("store", err, "; the new token " .. quote(tok.name) .. " was delivered and "
      .. "stays valid, the store still holds the previous one, also valid; nothing was revoked "
      .. "(the next rotation revokes the new token once it has stored a newer one)", tok.token)
    e.new_name, e.new_revoked, e.delivered = tok.name, false, true
    return nil, e
  end
  if not ok then return abort(self, cfg, tok, "store", err) end
  hook("store")
  local left = revoke_old(self, cfg, tok, victims, report)
  if cfg.lock then cfg.lock:record({ pending = c.unseen, revoke = left }) end
  hook("revoke")
  return tok, report
end

--- client:rotate: check, lock and read the store, list, create, verify,
-- store, revoke; the lock is released whatever happens.
local function rotate(self, fam, opts)
  local cfg, err = check_rotate(self, fam, opts)
  if not cfg then return nil, err end
  local ok, tok, report = pcall(rotate_steps, self, cfg)
  if cfg.lock then cfg.lock:release() end
  if not ok then error(tok, 0) end
  return tok, report
end

M.rotate, M.step_error = rotate, step_error

return M
