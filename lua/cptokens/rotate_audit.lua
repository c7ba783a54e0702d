--- Pruning and auditing of an account's tokens, for any token family.
--
-- @module cptokens.rotate_audit
local time = require "cptokens.time"
local P = require "cptokens.rotate_plan"

local error, ipairs, tostring, type = error, ipairs, tostring, type
local math_floor, os_time = math.floor, os.time

local clean, invalid, check_options, check_prefix, parse_name, copy = P.clean, P.invalid,
  P.check_options, P.check_prefix, P.parse_name, P.copy

local M = {}

local PRUNE_OPTIONS = { prefix = true, expired = true, now = true, dry_run = true }

local function check_now(what, now, level)
  if now ~= nil and (type(now) ~= "number" or now ~= now or now < 0 or now == math.huge) then
    error("cptokens: " .. what .. ": 'now' must be epoch seconds (a number), got " .. tostring(now),
      level + 1)
  end
end

local function prune(self, opts, fam)
  opts = check_options("prune", opts, PRUNE_OPTIONS, 3)
  if opts.expired ~= nil and opts.expired ~= true then
    if type(opts.expired) ~= "boolean" then
      error("cptokens: prune: 'expired' must be true, got " .. type(opts.expired), 3)
    end
    error("cptokens: prune: expired = false is not supported: prune only revokes expired tokens "
      .. "(use rotate's keep, or revoke, for valid ones)", 3)
  end
  check_now("prune", opts.now, 3)
  if opts.dry_run ~= nil and type(opts.dry_run) ~= "boolean" then
    error("cptokens: prune: 'dry_run' must be a boolean, got " .. type(opts.dry_run), 3)
  end
  local prefix = opts.prefix
  if prefix ~= nil then
    local ok, err = check_prefix("prune", prefix, 3)
    if not ok then return nil, err end
  end
  local list, err = fam.list(self)
  if not list then return nil, err end
  local report = { revoked = {}, kept = 0 }
  if opts.dry_run then report.dry_run, report.would_revoke = true, {} end
  for _, t in ipairs(list) do
    if prefix == nil or parse_name(t.name, prefix) then
      if time.is_expired(t, opts.now) and opts.dry_run then
        report.would_revoke[#report.would_revoke + 1] = t.name
      elseif time.is_expired(t, opts.now) then
        local ok, rerr = fam.revoke(self, t.name)
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

-- ------------------------------------------------------------------ audit

local AUDIT_OPTIONS = { within = true, now = true }

--- An audited token's state from its remaining seconds (nil: never expires) and the
-- window: "never", "expired", "expiring" (within the window) or "fine".
local function state(remaining, window)
  if remaining == nil then return "never" end
  if remaining < 0 then return "expired" end
  if remaining <= window then return "expiring" end
  return "fine"
end
M.state = state

local function audit(self, opts, fam)
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
  local list, err = fam.list(self)
  if not list then return nil, err end
  local report = { expired = {}, expiring = {}, never = {}, fine = {}, tokens = {}, now = now,
                   within = window, risky = fam.risks and {} or nil }
  for _, t in ipairs(list) do
    local entry = copy(t)
    local remaining = time.remaining(entry, now)
    entry.remaining = remaining
    entry.state = state(remaining, window)
    if fam.risks then
      entry.risks = fam.risks(entry)
      if #entry.risks > 0 then report.risky[#report.risky + 1] = entry end
    end
    report[entry.state][#report[entry.state] + 1] = entry
    report.tokens[#report.tokens + 1] = entry
  end
  return report
end

M.prune, M.audit = prune, audit

return M
