--- The report of a fleet run (cptokens.fleet): one record per server, per account and
-- per (server, account, token), the accounts not reached and why, and the summary's
-- counts. Only values, never a secret: token records are copied field by field.
--
-- Depends on cptokens.time, cptokens.rotate_audit (a token's state), cptokens.rotate
-- (the risks of a WHM token).
--
-- @module cptokens.fleet_report
local time = require "cptokens.time"
local audit = require "cptokens.rotate_audit"

local ipairs = ipairs

local M = {}

local COUNTS = { "servers", "servers_failed", "accounts", "suspended", "skipped", "reached", "failed",
                 "not_sent", "tokens", "never", "expired", "expiring", "fine", "whm_tokens",
                 "whm_risky", "revoked", "would_revoke", "rotated" }
M.COUNTS = COUNTS

--- A new report for operation op ("list", "audit", "prune", "rotate").
function M.new(op, now, window)
  local summary = {}
  for _, k in ipairs(COUNTS) do summary[k] = 0 end
  return { op = op, now = now, within = window, servers = {}, accounts = {}, tokens = {},
           not_sent = {}, failures = {}, summary = summary }
end

--- The record of server s (label, url, WHM user) in the report.
function M.server(report, s)
  local rec = { label = s.label, url = s.url, user = s.user, accounts = 0, skipped = {} }
  report.servers[#report.servers + 1] = rec
  report.summary.servers = report.summary.servers + 1
  return rec
end

--- A server that could not be enumerated (err) or reached at all.
function M.server_failed(report, rec, err)
  if rec.err then return end
  rec.err = err
  report.summary.servers_failed = report.summary.servers_failed + 1
  report.failures[#report.failures + 1] = { server = rec.label, err = err }
end

--- A server whose own WHM tokens could not be listed (a failure, unless it was not sent
-- because the server had already stopped: its refusal is the failure).
function M.whm_failed(report, rec, err)
  rec.whm_err = err
  if err.not_sent then return end
  report.failures[#report.failures + 1] = { server = rec.label, account = rec.user, whm = true, err = err }
end

--- The record of one account of server record srec, from a listaccts entry.
function M.account(report, srec, a)
  local rec = { server = srec.label, user = a.user, owner = a.owner, domain = a.domain,
                suspended = a.suspended == true }
  report.accounts[#report.accounts + 1] = rec
  srec.accounts = srec.accounts + 1
  local s = report.summary
  s.accounts = s.accounts + 1
  if rec.suspended then s.suspended = s.suspended + 1 end
  return rec
end

function M.reached(report, rec)
  rec.ok = true
  report.summary.reached = report.summary.reached + 1
end

function M.failed(report, rec, err)
  rec.ok, rec.err = false, err
  report.summary.failed = report.summary.failed + 1
  report.failures[#report.failures + 1] = { server = rec.server, account = rec.user, err = err }
end

--- An account that was never asked: reason is "not sent: ..." (why).
function M.not_sent(report, rec, reason)
  rec.ok, rec.not_sent = false, reason
  report.summary.not_sent = report.summary.not_sent + 1
  report.not_sent[#report.not_sent + 1] = { server = rec.server, account = rec.user, reason = reason }
end

--- An account left alone on purpose (rotate: suspended accounts cannot log in to verify).
function M.skipped(report, rec, why)
  rec.skipped = why
  report.summary.skipped = report.summary.skipped + 1
end

--- Copies of a list's token records with server, account, kind, remaining and state,
-- added to the report's flat list and counted (never, expired, expiring, fine count
-- cPanel-user tokens; WHM tokens count in whm_tokens and whm_risky); returns the array.
function M.tokens(report, server, account, kind, list)
  local out, s, now, window = {}, report.summary, report.now, report.within
  for i, t in ipairs(list) do
    local e = { server = server, account = account, kind = kind, name = t.name,
                create_time = t.create_time, expires_at = t.expires_at,
                has_full_access = t.has_full_access, acls = t.acls, full_access = t.full_access,
                whitelist_ips = t.whitelist_ips }
    e.remaining = time.remaining(e, now)
    e.state = audit.state(e.remaining, window)
    out[i] = e
    report.tokens[#report.tokens + 1] = e
    if kind == "whm" then
      e.risks = require("cptokens.rotate").whm_risks(e)
      s.whm_tokens = s.whm_tokens + 1
      if #e.risks > 0 then s.whm_risky = s.whm_risky + 1 end
    else
      s.tokens, s[e.state] = s.tokens + 1, s[e.state] + 1
    end
  end
  return out
end

--- Adds n to the summary's count k.
function M.count(report, k, n)
  report.summary[k] = report.summary[k] + n
end

--- done and failures so far, for the progress callback.
function M.progress(report)
  local s = report.summary
  return s.reached + s.failed + s.not_sent + s.skipped, s.failed + s.not_sent
end

return M
