--- cptokens.cli.rotate: the commands on rotations: rotate, prune, audit (cptokens.rotate
-- does the work; this module checks, reports and sets the exit status). The same functions
-- run `whm rotate` and `whm audit`, with a cptokens.whm client (cli/whm.lua).
-- run.<command>(ctx, client, args) returns the exit status; failures raise (common.Exit).
local common = require "cptokens.cli.common"
local connect = require "cptokens.cli.connect"

local type, tostring, ipairs, pairs = type, tostring, ipairs, pairs
local string_format, table_sort, table_concat = string.format, table.sort, table.concat
local EXIT_OK, EXIT_FAIL, EXIT_ALERT = common.EXIT.OK, common.EXIT.FAIL, common.EXIT.ALERT
local fail, one_line, error_line, say = common.fail, common.one_line, common.error_line, common.say
local exit_with = common.exit_with
local shown, out, out_json, iso = common.shown, common.out, common.out_json, common.iso
local table_text, expiry_text, state_text, names_of = common.table_text, common.expiry_text, common.state_text,
  common.names_of
local obj = require("cptokens.cli.json").obj
-- o (an ordered JSON object) with the pair k, v added at its end.
local function obj_with(o, k, v)
  o[o.n + 1], o[o.n + 2], o.n = k, v, o.n + 2
  return o
end
local check_out, exec_token = connect.check_out, connect.exec_token

local run = {}
local M = {}

-- rotate --dry-run: what a rotation would do now; nothing was created or revoked.
function M.dry_run(ctx, path, tok, report)
  local revoke, kept = names_of(report.would_revoke), names_of(report.kept)
  local foreign, orphans = names_of(report.foreign), names_of(report.orphans)
  if ctx.opts.json then
    out_json(ctx, obj("dry_run", true, "would_create", tok.name, "expires_at", tok.expires_at, "out", path,
      "would_revoke", revoke, "kept", kept, "orphans", orphans, "foreign", foreign))
    return EXIT_OK
  end
  out(ctx, string_format("would create %s, %s, save it to %s%s\n", shown(tok.name), expiry_text(tok), path,
    ctx.opts.exec and " and hand it to --exec" or ""))
  for _, n in ipairs(revoke) do out(ctx, "would revoke " .. shown(n) .. "\n") end
  for _, n in ipairs(kept) do out(ctx, "would keep " .. shown(n) .. "\n") end
  for _, n in ipairs(foreign) do out(ctx, "would leave alone " .. shown(n) .. " (not held by " .. path .. ")\n") end
  out(ctx, "dry run: nothing was created, stored or revoked\n")
  return EXIT_OK
end

-- cptokens.rotate's function for a command, through the client (the library installs it).
local function extension(ctx, client, method, opts)
  ctx.in_extension = method
  return client[method](client, opts)
end

-- Revocations that failed inside rotate/prune: report.errors = { { name, err } }.
-- One line each on stderr; returns the JSON form and whether there were any.
local function partial_errors(ctx, what, report)
  local list = {}
  for _, e in ipairs(type(report.errors) == "table" and report.errors or {}) do
    local err = e.err
    local kind = type(err) == "table" and err.kind or "error"
    local message = type(err) == "table" and err.message or tostring(err)
    list[#list + 1] = obj("name", e.name, "kind", kind, "message", one_line(message))
    say(ctx, error_line({ kind = kind, message = message },
      what .. ": revoking " .. shown(e.name) .. " failed: "))
  end
  return list, #list > 0
end

function run.rotate(ctx, client, pos)
  local opts = ctx.opts
  local path = opts.out
  local ropts = { prefix = pos[1], store = path, expires_in = opts["expires-in"], expires_at = ctx.expires_at,
                  keep = ctx.keep, verify_url = opts["verify-url"], dry_run = opts["dry-run"] or nil }
  if opts.exec then ropts.deliver = function(tok, conn) return exec_token(ctx, tok, conn) end end
  check_out(path)
  local tok, report = extension(ctx, client, "rotate", ropts)
  if tok and tok.dry_run then return M.dry_run(ctx, path, tok, report) end
  if not tok then
    if type(report) == "table" and tostring(report.message):find("verify_url", 1, true) then
      exit_with(EXIT_FAIL, error_line(report) .. " (the tool's option: --verify-url URL)", report)
    end
    fail(report)
  end
  if type(tok) == "table" and tok.token then ctx.secrets[#ctx.secrets + 1] = tok.token end
  report = type(report) == "table" and report or {}
  local created = report.created or (type(tok) == "table" and tok.name) or nil
  local revoked, kept, orphans = names_of(report.revoked), names_of(report.kept), names_of(report.orphans)
  local is_orphan = {}
  for _, n in ipairs(orphans) do is_orphan[n] = true end
  local errors, failed = partial_errors(ctx, "rotate", report)
  local foreign = names_of(report.foreign)
  for _, n in ipairs(foreign) do
    say(ctx, "cptokens: warning: rotate: " .. shown(n) .. " has the prefix " .. shown(pos[1])
      .. " but " .. path .. " does not hold it; left alone (another token file may hold it:"
      .. " give each file its own prefix, or revoke it by hand if nobody does)")
  end
  if opts.json then
    out_json(ctx, obj("created", created, "create_time", type(tok) == "table" and tok.create_time or nil,
      "expires_at", type(tok) == "table" and tok.expires_at or nil, "out", path,
      "revoked", revoked, "kept", kept, "orphans", orphans, "foreign", foreign,
      "switched", report.switched == true, "errors", errors))
  else
    out(ctx, string_format("created %s, %s; token saved to %s\n", shown(created),
      expiry_text(type(tok) == "table" and tok or {}), path))
    for _, n in ipairs(revoked) do
      out(ctx, "revoked " .. shown(n) .. (is_orphan[n] and " (an orphan: newer than the stored token, never stored)"
        or "") .. "\n")
    end
    for _, n in ipairs(kept) do out(ctx, "kept " .. shown(n) .. "\n") end
  end
  return failed and EXIT_FAIL or EXIT_OK
end

function run.prune(ctx, client)
  local dry = ctx.opts["dry-run"] or nil
  local res, err = extension(ctx, client, "prune", { prefix = ctx.opts.prefix, dry_run = dry })
  if not res then fail(err) end
  local revoked = names_of(dry and res.would_revoke or res.revoked)
  local kept = res.kept
  if type(kept) == "table" then kept = #kept end
  local errors, failed = partial_errors(ctx, "prune", res)
  if ctx.opts.json then
    if dry then
      out_json(ctx, obj("dry_run", true, "would_revoke", revoked, "revoked", {}, "kept", kept or 0, "errors", errors))
    else
      out_json(ctx, obj("revoked", revoked, "kept", kept or 0, "errors", errors))
    end
  else
    local verb = dry and "would revoke " or "revoked "
    for _, n in ipairs(revoked) do out(ctx, verb .. shown(n) .. "\n") end
    out(ctx, string_format("%d expired token%s %s, %d kept%s\n", #revoked, #revoked == 1 and "" or "s",
      dry and "would be revoked" or "revoked", kept or 0, dry and " (dry run: nothing was revoked)" or ""))
  end
  return failed and EXIT_FAIL or EXIT_OK
end

local AUDIT_STATES = { "expired", "expiring", "never", "fine" }

-- Every token of an audit report with its state, from res.tokens or the per-state lists.
local function audited(res)
  local tokens = {}
  if type(res.tokens) == "table" then
    for i, t in ipairs(res.tokens) do tokens[i] = t end
    return tokens
  end
  for _, st in ipairs(AUDIT_STATES) do
    for _, t in ipairs(res[st] or {}) do
      local c = {}
      for k, v in pairs(t) do c[k] = v end
      c.state = c.state or st
      tokens[#tokens + 1] = c
    end
  end
  table_sort(tokens, function(a, b)
    if a.create_time ~= b.create_time then return (a.create_time or 0) < (b.create_time or 0) end
    return a.name < b.name
  end)
  return tokens
end

-- "full_access, no_expiry" or "-"
local function risks_text(t)
  local r = type(t.risks) == "table" and t.risks or {}
  return #r > 0 and table_concat(r, ", ") or "-"
end

--- audit, and whm audit (whose report has `risky` and per-token `risks`: the JSON document
-- then has "risky" and each token "risks", the table a RISKS column, and a risky token
-- also makes the exit status 3).
function run.audit(ctx, client)
  local within = ctx.opts.within or ctx.default_within
  local within_s = ctx.within_seconds
  local res, err = extension(ctx, client, "audit", { within = within })
  if not res then fail(err) end
  local now = type(res.now) == "number" and res.now or os.time()
  local tokens = audited(res)
  local risky = type(res.risky) == "table" and res.risky or nil
  local counts = {}
  for _, st in ipairs(AUDIT_STATES) do counts[st] = #(res[st] or {}) end
  local alert = counts.expired > 0 or counts.expiring > 0 or (risky ~= nil and #risky > 0)

  if ctx.opts.json then
    local items = {}
    for i, t in ipairs(tokens) do
      local rem = t.remaining
      if rem == nil then rem = require("cptokens.time").remaining(t, now) end
      items[i] = obj("name", t.name, "create_time", t.create_time, "expires_at", t.expires_at,
        "expires", iso(t.expires_at), "state", t.state, "remaining", rem)
      if risky then items[i] = obj_with(items[i], "risks", type(t.risks) == "table" and t.risks or {}) end
    end
    local doc = obj("within", within, "within_seconds", within_s,
      "expired", names_of(res.expired), "expiring", names_of(res.expiring),
      "never", names_of(res.never), "fine", names_of(res.fine))
    if risky then doc = obj_with(doc, "risky", names_of(risky)) end
    out_json(ctx, obj_with(doc, "tokens", items))
  else
    local rows = {}
    for i, t in ipairs(tokens) do
      rows[i] = { shown(t.name), iso(t.expires_at) or "never", tostring(t.state), state_text(t, now) }
      if risky then table.insert(rows[i], 4, risks_text(t)) end
    end
    out(ctx, table_text(risky and { "NAME", "EXPIRES", "STATE", "RISKS", "DETAIL" }
      or { "NAME", "EXPIRES", "STATE", "DETAIL" }, rows))
    out(ctx, string_format("%d expired, %d expiring within %s, %d never expire, %d fine%s\n",
      counts.expired, counts.expiring, within, counts.never, counts.fine,
      risky and string_format("; %d risky", #risky) or ""))
  end
  return alert and EXIT_ALERT or EXIT_OK
end

return run
