--- cptokens.fleet: every account of a server, every server of an inventory.
--
--   local fleet = require "cptokens.fleet"      -- or cptokens.fleet(servers, opts)
--   local f = fleet.new({ { label = "web1", url = "https://web1:2087", user = "root", token = T },
--                         { label = "web2", whm = an_open_whm_client } },
--                       { per_server = 8, concurrency = 50, progress = function(done, total, failures) end })
--   f:list()  f:audit{ within = "14d" }  f:prune{ prefix, dry_run }  f:rotate{ prefix, store_dir, ... }
--   f:stop(reason)   (from the progress callback)   f:close()
--
-- Each server is a WHM credential (root or a reseller): listaccts gives the accounts it
-- can act for (root and the reseller itself skipped, suspended ones marked), then one
-- Tokens::list per account through /json-api/cpanel, all through cptokens.batch in
-- chunks (per-server and global limits on requests in flight). The first authentication
-- failure for a server stops every further request to it: cPHulk locks an address out
-- after a few failed logins. Every method returns a report (cptokens.fleet_report);
-- misuse raises. Depends on cptokens, cptokens.whm, cptokens.fleet_report,
-- cptokens.rotate_plan, cptokens.time.
--
-- @module cptokens.fleet
local time = require "cptokens.time"
local P = require "cptokens.rotate_plan"
local R = require "cptokens.fleet_report"
local quote = require("cptokens.util").quote

local error, getmetatable, ipairs, pairs, pcall, setmetatable, tostring, type =
  error, getmetatable, ipairs, pairs, pcall, setmetatable, tostring, type
local math_floor, math_min, os_time = math.floor, math.min, os.time

local M = {}

M.PER_SERVER = 8     -- requests in flight to one server
M.CONCURRENCY = 50   -- requests in flight in all
M.CHUNK = 5000       -- accounts per batch (clients open at once; progress is called after each)

local Fleet = {}
Fleet.__index = Fleet
Fleet.__name = "cptokens.Fleet"
M.Fleet = Fleet

local OPTIONS = { per_server = true, concurrency = true, chunk = true, progress = true }
local FLEET_KEYS = { label = true, whm = true, cpanel_url = true, err = true }

local function misuse(msg, level) error("cptokens.fleet: " .. msg, level + 1) end

local function whole(opts, k, default, max, level)
  local v = opts[k]
  if v == nil then return default end
  if type(v) ~= "number" or v < 1 or v > max or v ~= math_floor(v) then
    misuse(k .. " must be a whole number from 1 to " .. max, level + 1)
  end
  return v
end

--- One server of the inventory: { label, whm, owned, url, user, cpanel_url, err }.
local function open_server(cptokens, entry, i, labels)
  if type(entry) ~= "table" then misuse("server " .. i .. " is not a table", 4) end
  local label = entry.label or entry.url
  if type(label) ~= "string" or not label:match("^[%w][%w.:_-]*$") or #label > 200 then
    misuse("server " .. i .. ": label must be a name of letters, digits and . : _ - (got "
      .. quote(label) .. ")", 4)
  end
  if labels[label] then misuse("server " .. i .. ": label " .. quote(label) .. " is used twice", 4) end
  labels[label] = true
  local s = { label = label, cpanel_url = entry.cpanel_url }
  if entry.err ~= nil then
    -- a server whose settings could not be read (cptokens.config, partial): reported by each run
    s.err = type(entry.err) == "table" and entry.err or require("cptokens.core").error("invalid", tostring(entry.err))
    return s
  end
  if entry.whm ~= nil then
    for k in pairs(entry) do
      if not FLEET_KEYS[k] then misuse("server " .. i .. ": give whm or connection options, not both", 4) end
    end
    if not require("cptokens.whm").unwrap(entry.whm) then
      misuse("server " .. i .. ": whm must be a cptokens.whm client", 4)
    end
    s.whm = entry.whm
  else
    local o = {}
    for k, v in pairs(entry) do
      if not FLEET_KEYS[k] then o[k] = v end
    end
    local ok, w, err = pcall(cptokens.whm, o)
    if not ok then misuse("server " .. i .. ": " .. tostring(w):gsub("^cptokens%.whm: ", ""), 4) end
    s.whm, s.owned, s.err = w, w ~= nil, err
  end
  if s.whm then
    local info = s.whm:info()
    s.url, s.user = info.url, info.whm_user or info.user
  end
  return s
end

--- fleet.new(servers [, { per_server = 8, concurrency = 50, chunk = 1000, progress }]) -> fleet
-- servers[i] = { label = ..., whm = <cptokens.whm client> } or { label = ..., <the options
-- of cptokens.whm> } (+ cpanel_url: the cPanel URL rotate verifies new tokens at), or
-- { label = ..., err = e }: a server that cannot be reached (its settings are broken), reported
-- by each run as failed.
-- A server whose client cannot be made is reported by each run, not raised. Misuse raises.
function M.new(servers, opts)
  local cptokens = require "cptokens"
  if type(servers) ~= "table" then misuse("expected an array of servers, got " .. type(servers), 2) end
  opts = opts or {}
  if type(opts) ~= "table" then misuse("options must be a table", 2) end
  for k in pairs(opts) do
    if not OPTIONS[k] then misuse("unknown option '" .. tostring(k) .. "'", 2) end
  end
  if opts.progress ~= nil and type(opts.progress) ~= "function" then misuse("progress must be a function", 2) end
  local self = setmetatable({
    per_server = whole(opts, "per_server", M.PER_SERVER, 1000, 2),
    concurrency = whole(opts, "concurrency", M.CONCURRENCY, 1000, 2),
    chunk = whole(opts, "chunk", M.CHUNK, 100000, 2),
    progress = opts.progress, batch = cptokens.batch, servers = {},
  }, Fleet)
  local labels = {}
  for i = 1, #servers do self.servers[i] = open_server(cptokens, servers[i], i, labels) end
  return self
end

local function check(self, what)
  if getmetatable(self) ~= Fleet then misuse(what .. ": expected a fleet", 3) end
  if self.closed then misuse(what .. ": the fleet is closed", 3) end
end

local function run_batch(self, jobs)
  return self.batch(jobs, { concurrency = self.concurrency, per_server = self.per_server })
end

--- A refusal of the server's credential (or a request held back after one).
local function refused(err) return err.kind == "auth" or err.not_sent == true end

--- Stops the server: every further account of it is reported "not sent: <reason>"; who
-- is the credential refused (default: the server's WHM user).
local function stop(s, err, who)
  if s.stopped then return end
  s.stopped = "not sent: authentication failed for " .. (who or tostring(s.user)) .. " at " .. s.label
    .. " (" .. (err.status and ("HTTP " .. err.status) or err.kind) .. "); no further login is "
    .. "tried there, as cPanel (cPHulk) locks an address out after a few failed ones"
end

------------------------------------------------------------------ enumeration

--- listaccts (and whm_list when with_whm) on every server, concurrently; returns the
-- accounts to work on, server by server: { s = server, rec = account record }.
local function enumerate(self, report, with_whm)
  local jobs, where = {}, {}
  for _, s in ipairs(self.servers) do
    s.stopped, s.listed, s.rec = nil, nil, R.server(report, s)
    if not s.whm then
      R.server_failed(report, s.rec, s.err)
    else
      jobs[#jobs + 1], where[#jobs + 1] = { client = s.whm, op = "listaccts" }, { s, "listaccts" }
      if with_whm then jobs[#jobs + 1], where[#jobs + 1] = { client = s.whm, op = "whm_list" }, { s, "whm" } end
    end
  end
  local per = {}
  for k, r in ipairs(run_batch(self, jobs)) do
    local s, what = where[k][1], where[k][2]
    if not r.ok then
      if refused(r.err) then stop(s, r.err) end
      if r.err.not_sent and s.stopped then r.err.message = r.err.message:match("^[%w_]*") .. ": " .. s.stopped end
      if what == "whm" then R.whm_failed(report, s.rec, r.err) else R.server_failed(report, s.rec, r.err) end
    elseif what == "whm" then
      s.rec.whm_tokens = R.tokens(report, s.label, s.user, "whm", r.value)
    else
      per[s] = {}
      for _, a in ipairs(r.value) do
        if a.user == "root" or a.user == s.user then
          s.rec.skipped[#s.rec.skipped + 1] = a.user
        else
          per[s][#per[s] + 1] = { s = s, rec = R.account(report, s.rec, a) }
        end
      end
    end
  end
  -- Server by server: the global limit then fills from a few servers at a time, each at its
  -- per-server limit, on connections that stay open (interleaving every server would spread
  -- the requests over more servers than the connection cache holds).
  local items = {}
  for _, s in ipairs(self.servers) do
    for _, it in ipairs(per[s] or {}) do items[#items + 1] = it end
  end
  return items
end

--------------------------------------------------------------------- chunks

local function report_progress(self, report, total)
  if not self.progress then return end
  local done, failures = R.progress(report)
  self.progress(done, total, failures)
end

--- Runs work(self, report, part, opts, tick) over the items, chunk by chunk; items of a
-- stopped server are reported as not sent instead. progress after each chunk (and at
-- each tick() of a work function that goes account by account).
local function each_chunk(self, report, items, work, opts)
  local total = #items
  local function tick() report_progress(self, report, total) end
  tick()
  for from = 1, total, self.chunk do
    local part = {}
    for k = from, math_min(total, from + self.chunk - 1) do
      local it = items[k]
      if it.s.stopped then R.not_sent(report, it.rec, it.s.stopped) else part[#part + 1] = it end
    end
    if #part > 0 then work(self, report, part, opts, tick) end
    tick()
  end
end

--- Results of jobs (one per item of part, or per where[k]) into refusals: stops each
-- server at its first refusal. Returns nothing.
local function stop_refused(parts, results)
  for k, r in ipairs(results) do
    if not r.ok and refused(r.err) and not r.err.not_sent then stop(parts[k].s, r.err) end
  end
  for k, r in ipairs(results) do
    if not r.ok and r.err.not_sent then stop(parts[k].s, r.err) end
  end
end

--- Opens a client acting for each item's account; the items that could not get one fail.
local function open_clients(report, part)
  local ready = {}
  for _, it in ipairs(part) do
    local c, err = it.s.whm:for_user(it.rec.user)
    if c then
      it.client, ready[#ready + 1] = c, it
    else
      R.failed(report, it.rec, err)
    end
  end
  return ready
end

local function close_clients(part)
  for _, it in ipairs(part) do
    if it.client then it.client:close() end
    it.client = nil
  end
end

--- The outcome of item it's job (result r): false when it failed or was not sent.
local function settle(report, it, r)
  if r.ok then return true end
  if r.err.not_sent then
    R.not_sent(report, it.rec, it.s.stopped or ("not sent: " .. r.err.message))
  else
    R.failed(report, it.rec, r.err)
  end
  return false
end

--- prune's revokes for the items whose accounts have expired tokens (it.victims).
local function revoke_chunk(self, report, part)
  local jobs, whose = {}, {}
  for _, it in ipairs(part) do
    for _, name in ipairs(it.victims or {}) do
      if not it.s.stopped then
        jobs[#jobs + 1], whose[#jobs + 1] = { client = it.client, op = "revoke", name = name }, it
      end
    end
  end
  local results = run_batch(self, jobs)
  stop_refused(whose, results)
  for k, r in ipairs(results) do
    local rec = whose[k].rec
    if r.ok then
      rec.revoked[#rec.revoked + 1] = jobs[k].name
      R.count(report, "revoked", 1)
    else
      rec.errors = rec.errors or {}
      rec.errors[#rec.errors + 1] = { name = jobs[k].name, err = r.err }
    end
  end
end

--- One chunk of list / audit / prune: Tokens::list for each account, then prune's revokes.
local function list_chunk(self, report, part, opts)
  local ready = open_clients(report, part)
  local jobs = {}
  -- a server whose lists were accepted in an earlier chunk goes on without a lone first
  -- request (as one batch would); a refusal still stops it (stop_refused)
  for k, it in ipairs(ready) do jobs[k] = { client = it.client, op = "list", _accepted = it.s.listed } end
  local results = run_batch(self, jobs)
  stop_refused(ready, results)
  for k, r in ipairs(results) do
    local it = ready[k]
    if settle(report, it, r) then
      it.s.listed = not it.s.stopped
      R.reached(report, it.rec)
      it.rec.tokens = R.tokens(report, it.s.label, it.rec.user, "cpanel", r.value)
      if opts.prune then
        local victims = {}
        for _, t in ipairs(it.rec.tokens) do
          if t.state == "expired" and (opts.prefix == nil or P.parse_name(t.name, opts.prefix)) then
            victims[#victims + 1] = t.name
          end
        end
        it.rec.revoked = {}
        if opts.dry_run then
          it.rec.would_revoke = victims
          R.count(report, "would_revoke", #victims)
        else
          it.victims = victims
        end
      end
    end
  end
  if opts.prune and not opts.dry_run then revoke_chunk(self, report, ready) end
  close_clients(ready)
end

------------------------------------------------------------------ the runs

local function check_now(what, now)
  if now ~= nil and (type(now) ~= "number" or now ~= now or now < 0 or now == math.huge) then
    misuse(what .. ": 'now' must be epoch seconds (a number), got " .. tostring(now), 4)
  end
  return now and math_floor(now) or os_time()
end

local function check_opts(what, opts, known)
  if opts == nil then return {} end
  if type(opts) ~= "table" then misuse(what .. ": options must be a table", 4) end
  for k in pairs(opts) do
    if not known[k] then misuse(what .. ": unknown option '" .. tostring(k) .. "'", 4) end
  end
  return opts
end

--- A run: enumeration (with the WHM tokens when with_whm), then work over the accounts.
local function run(self, op, opts, window, with_whm, work)
  local report = R.new(op, check_now(op, opts.now), window)
  local items = enumerate(self, report, with_whm)
  each_chunk(self, report, items, work, opts)
  return report
end

local LIST_OPTIONS = { now = true }
local AUDIT_OPTIONS = { within = true, now = true }

--- f:list{ now } -> report: every account's tokens and each credential's WHM tokens.
function Fleet:list(opts)
  check(self, "list")
  opts = check_opts("list", opts, LIST_OPTIONS)
  return run(self, "list", opts, 7 * 86400, true, list_chunk)
end

--- f:audit{ within = "7d", now } -> report: list's, with each token's state against the
-- window (never, expired, expiring, fine) and each WHM token's risks.
function Fleet:audit(opts)
  check(self, "audit")
  opts = check_opts("audit", opts, AUDIT_OPTIONS)
  local within = opts.within == nil and "7d" or opts.within
  if type(within) ~= "string" and type(within) ~= "number" then
    misuse("audit: 'within' must be a duration (string or number), got " .. type(within), 2)
  end
  local window, msg = time.parse_duration(within)
  if not window then misuse("audit: within: " .. P.clean(msg), 2) end
  return run(self, "audit", opts, window, true, list_chunk)
end

local PRUNE_OPTIONS = { prefix = true, dry_run = true, now = true }

--- f:prune{ prefix, dry_run, now } -> report: revokes every expired cPanel-user token
-- (with the prefix, when given) of every account; dry_run = true only lists them
-- (account.would_revoke), sending nothing but listaccts and Tokens::list.
function Fleet:prune(opts)
  check(self, "prune")
  opts = check_opts("prune", opts, PRUNE_OPTIONS)
  if opts.dry_run ~= nil and type(opts.dry_run) ~= "boolean" then misuse("prune: dry_run must be a boolean", 2) end
  if opts.prefix ~= nil then
    local ok, err = P.check_prefix("prune", opts.prefix, 2)
    if not ok then misuse(err.message, 2) end
  end
  local o = { prune = true, prefix = opts.prefix, dry_run = opts.dry_run, now = opts.now }
  return run(self, "prune", o, 0, false, list_chunk)
end

--- f:rotate{ prefix, store_dir, expires_in | expires_at, keep, verify, lock_timeout, now, on_token }
-- -> report: client:rotate for each account (not suspended ones), one after another, into
-- <store_dir>/<label>.<user>.token (cptokens.fleet_rotate). The report holds no secret;
-- on_token(token, label, user, path), if given, is called with each new token once it is
-- stored (an error it raises ends the run, as one of progress does).
function Fleet:rotate(opts)
  check(self, "rotate")
  local fr = require "cptokens.fleet_rotate"
  opts = fr.check(opts, misuse)
  return run(self, "rotate", opts, 0, false, fr.chunk(stop))
end

--- f:stop(reason) -> true: from within a run (its progress callback), stops it: no further
-- request is sent to any server, and each account not yet reached is reported in not_sent
-- with "not sent: <reason>". (The command line stops `fleet rotate` so at a signal: the
-- rotation under way finishes, the next ones do not start.) A later run starts afresh.
function Fleet:stop(reason)
  check(self, "stop")
  if type(reason) ~= "string" or reason == "" then misuse("stop: reason must be a non-empty string", 2) end
  for _, s in ipairs(self.servers) do
    if not s.stopped then s.stopped = "not sent: " .. reason end
  end
  return true
end

--- f:close() -> true: closes the WHM clients the fleet opened (not those it was given).
function Fleet:close()
  if self.closed then return true end
  self.closed = true
  for _, s in ipairs(self.servers) do
    if s.owned and s.whm then s.whm:close() end
    s.whm = nil
  end
  return true
end
Fleet.__close = Fleet.close

function Fleet:__tostring()
  return "cptokens.Fleet (" .. #self.servers .. " server" .. (#self.servers == 1 and "" or "s")
    .. (self.closed and ", closed)" or ")")
end

return M
