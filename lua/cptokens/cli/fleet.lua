--- cptokens.cli.fleet: `fleet list | audit | prune | rotate`, every account a WHM credential
-- can act for, on one server or on a group of servers (cptokens.fleet does the work).
--
-- The servers: --group G (each member a WHM profile of the configuration file, its URL, WHM
-- user and credential from the profile only; connection flags other than trust anchors and
-- timeouts are refused with it), or one server: --profile P / CPANEL_PROFILE, or the
-- connection options and environment as for the whm commands (connect.connect_whm).
--
-- Reports: --format table (the default), json (one document, stable keys; --json too) or csv
-- (one stable set of columns, CSV_COLUMNS). A progress line on standard error when it is a
-- terminal (redrawn in place; never with --quiet or when standard error is not a terminal).
-- Exit: 0; 1 when any server or account failed or was not reached (the report says which;
-- one line per failure on stderr); 3 for `fleet audit` when something needs attention
-- (never-expiring, expired, expiring or risky tokens) and nothing failed.
local core = require "cptokens.core"
local common = require "cptokens.cli.common"
local connect = require "cptokens.cli.connect"

local ipairs, tostring, tonumber, type, pcall, require = ipairs, tostring, tonumber, type, pcall,
  require
local string_format, table_concat = string.format, table.concat
local math_max = math.max
local unpack = table.unpack or unpack -- luacheck: ignore (Lua 5.1)
local EXIT_OK, EXIT_FAIL, EXIT_ALERT = common.EXIT.OK, common.EXIT.FAIL, common.EXIT.ALERT
local usage, exit_with, one_line, error_line, say = common.usage, common.exit_with, common.one_line,
  common.error_line, common.say
local shown, out, out_json, iso, table_text = common.shown, common.out, common.out_json, common.iso,
  common.table_text
local function obj(...) return require("cptokens.cli.json").obj(...) end

local run = {}

local FORMATS = { table = true, json = true, csv = true }
-- With --group, each server's own settings come from its profile: these are refused.
local PER_SERVER_FLAGS = { "url", "user", "whm-user", "token-file", "password-file", "whm-token-file", "otp-file" }
-- (and the environment's: each server's own, trust anchors included, are its profile's)
local PER_SERVER_ENV = { "CPANEL_URL", "CPANEL_USER", "WHM_USER", "CPANEL_TOKEN", "CPANEL_PASSWORD", "WHM_TOKEN",
                         "CPANEL_OTP", "CPANEL_CAFILE", "CPANEL_CAPATH" }

local function whole(opts, name)
  local v = opts[name]
  if v == nil then return nil end
  if not v:match("^%d+$") or tonumber(v) < 1 or tonumber(v) > 1000 then
    usage("--%s %s: expected a whole number from 1 to 1000", name, one_line(v))
  end
  return tonumber(v)
end

--- Usage errors, before any credential is read or anything sent (exit 2).
function run.check(ctx, cmd, opts, pos)
  if opts.json and opts.format and opts.format ~= "json" then
    usage("%s: --json and --format %s: give one", cmd.name, one_line(opts.format))
  end
  local format = opts.format or (opts.json and "json") or "table"
  if not FORMATS[format] then usage("--format %s: expected table, json or csv", one_line(format)) end
  ctx.format = format
  if opts.user then
    usage("%s: --user names one cPanel account; fleet works on every account the WHM credential can act"
      .. " for (use --whm-user NAME for the WHM account)", cmd.name)
  end
  if opts.group then
    if opts.profile then usage("%s: give --profile or --group, not both", cmd.name) end
    for _, o in ipairs(PER_SERVER_FLAGS) do
      if opts[o] then
        usage("%s: --%s does not go with --group: each server's URL, WHM user and credential come from its"
          .. " profile", cmd.name, o)
      end
    end
  end
  ctx.per_server, ctx.concurrency = whole(opts, "per-server"), whole(opts, "concurrency")
  if cmd.sub == "rotate" then
    local dir = opts["store-dir"]
    if not dir or dir == "" then
      usage("fleet rotate: --store-dir DIR is required (a token file per server and account is written there)")
    end
    local _, kind = core.file_mode(dir)
    if kind ~= "directory" then usage("--store-dir %s: not a directory", one_line(dir)) end
  end
  local prefix = cmd.sub == "rotate" and pos[1] or opts.prefix
  if prefix then
    local ok, err = require("cptokens.rotate_plan").check_prefix(cmd.name, prefix, 2)
    if not ok then usage("%s", (one_line(err.message):gsub("^cptokens: ", ""))) end
  end
end

--- The servers of the run: entries for cptokens.fleet.
local function servers(ctx, opts, cmd)
  if not opts.group then
    local w = connect.connect_whm(ctx, opts, cmd)
    local url = w:info().url
    local label = ctx.profile and ctx.profile.name or url:match("^https://%[([^%]]+)%]") or url:match("^https://([^:/]+)")
    if not (label and label:match("^[%w][%w.:_-]*$")) then label = "server" end
    return { { label = label, whm = w, cpanel_url = ctx.profile and ctx.profile.cpanel_url } }
  end
  for _, e in ipairs(PER_SERVER_ENV) do
    if connect.envvar(ctx, e) then
      say(ctx, "cptokens: warning: " .. e .. " is not used with --group (each server's settings come from its"
        .. " profile)")
    end
  end
  local cfg = connect.config(ctx, opts)
  -- partial: a member whose credential cannot be read is a failed server, not a failed run
  local entries, err = cfg:servers(opts.group, true)
  if not entries then usage("%s", (one_line(err.message))) end
  for _, e in ipairs(entries) do
    if not e.err then
      for _, k in ipairs { "token", "password" } do
        if e[k] then ctx.secrets[#ctx.secrets + 1] = e[k] end
      end
      ctx.users[#ctx.users + 1] = e.user
      -- trust anchors and timeouts: the flags (for every server), then the profile
      e.cafile, e.capath = opts.cafile or e.cafile, opts.capath or e.capath
      e.timeout, e.connect_timeout = ctx.timeout or e.timeout, ctx.connect_timeout or e.connect_timeout
      if opts.insecure then e.insecure = true end
      if e.insecure then
        say(ctx, "cptokens: warning: " .. e.label .. ": " .. (opts.insecure and "--insecure" or "insecure")
          .. ": the server's certificate is not checked; whoever answers gets the credential")
      end
    end
  end
  return entries
end

-- The progress line: "cptokens: fleet audit: 120/2000 accounts, 3 failed" on a terminal.
local function progress(ctx, name)
  local tty = not ctx.opts.quiet and ctx.stderr == io.stderr and core.isatty(2)
  local drawn = false
  local f = function(done, total, failures)
    if ctx.fleet and core.pending_signal() and not ctx.stopped then
      local _, sig = common.interrupted()
      ctx.stopped = true
      ctx.fleet:stop("interrupted by " .. tostring(sig))
    end
    if not tty then return end
    drawn = true
    pcall(ctx.stderr.write, ctx.stderr, string_format("\r\27[Kcptokens: %s: %d/%d accounts%s", name, done, total,
      failures > 0 and string_format(", %d failed", failures) or ""))
    pcall(ctx.stderr.flush, ctx.stderr)
  end
  local function clear()
    if drawn then pcall(ctx.stderr.write, ctx.stderr, "\r\27[K") end
  end
  return f, tty, clear
end

------------------------------------------------------------------ the report's forms

local function err_obj(e)
  if type(e) ~= "table" then return nil end
  return obj("kind", e.kind, "message", e.message, "status", e.status)
end

local function err_text(e)
  if type(e) ~= "table" then return "" end
  return tostring(e.kind) .. ": " .. tostring(e.message)
end

-- An account's status: ok, failed, not_sent or skipped.
local function status(a)
  if a.not_sent then return "not_sent" end
  if a.skipped then return "skipped" end
  if a.err or a.errors or (a.rotated and a.rotated.errors and #a.rotated.errors > 0) then return "failed" end
  if a.ok then return "ok" end
  return "not_sent"
end

local function detail(a)
  if a.not_sent then return a.not_sent end
  if a.skipped then return a.skipped end
  if a.err then return err_text(a.err) end
  local parts = {}
  for _, e in ipairs(a.errors or (a.rotated and a.rotated.errors) or {}) do
    parts[#parts + 1] = "revoke " .. tostring(e.name) .. ": " .. err_text(e.err)
  end
  for _, n in ipairs(a.rotated and a.rotated.foreign or {}) do
    parts[#parts + 1] = "left alone: " .. tostring(type(n) == "table" and n.name or n) .. " (not held by the file)"
  end
  return table_concat(parts, "; ")
end

local function list_or_empty(t) return type(t) == "table" and t or {} end
local function names(t) return common.names_of(list_or_empty(t)) end
local function errors_obj(list)
  local out_ = {}
  for i, e in ipairs(list_or_empty(list)) do out_[i] = obj("name", e.name, "error", err_obj(e.err)) end
  return out_
end

local function token_obj(t)
  return obj("server", t.server, "account", t.account, "kind", t.kind, "name", t.name,
    "create_time", t.create_time, "expires_at", t.expires_at, "expires", iso(t.expires_at),
    "remaining", t.remaining, "state", t.state, "acls", t.kind == "whm" and list_or_empty(t.acls) or nil,
    "whitelist_ips", t.kind == "whm" and list_or_empty(t.whitelist_ips) or nil,
    "risks", t.kind == "whm" and list_or_empty(t.risks) or nil)
end

local function counts_of(a)
  local c = { tokens = 0, never = 0, expired = 0, expiring = 0, fine = 0 }
  for _, t in ipairs(a.tokens or {}) do
    c.tokens = c.tokens + 1
    c[t.state] = (c[t.state] or 0) + 1
  end
  return c
end

local function account_obj(a, path_of)
  local c = counts_of(a)
  local rot = a.rotated
  return obj("server", a.server, "user", a.user, "owner", a.owner, "domain", a.domain,
    "suspended", a.suspended == true, "status", status(a), "detail", detail(a), "error", err_obj(a.err),
    "tokens", c.tokens, "never", c.never, "expired", c.expired, "expiring", c.expiring, "fine", c.fine,
    "revoked", a.revoked, "would_revoke", a.would_revoke, "errors", a.errors and errors_obj(a.errors) or nil,
    "rotated", rot and obj("created", rot.created, "expires_at", rot.expires_at, "file", path_of(a),
      "revoked", names(rot.revoked), "kept", names(rot.kept), "orphans", names(rot.orphans),
      "foreign", names(rot.foreign), "errors", errors_obj(rot.errors)) or nil)
end

local function json_doc(ctx, report, path_of)
  local R = require "cptokens.fleet_report"
  local summary = {}
  for _, k in ipairs(R.COUNTS) do
    summary[#summary + 1] = k
    summary[#summary + 1] = report.summary[k]
  end
  local servers_, accounts, tokens, not_sent, failures = {}, {}, {}, {}, {}
  for i, s in ipairs(report.servers) do
    servers_[i] = obj("label", s.label, "url", s.url, "user", s.user, "accounts", s.accounts,
      "skipped", s.skipped, "error", err_obj(s.err), "whm_error", err_obj(s.whm_err))
  end
  for i, a in ipairs(report.accounts) do accounts[i] = account_obj(a, path_of) end
  for i, t in ipairs(report.tokens) do tokens[i] = token_obj(t) end
  for i, n in ipairs(report.not_sent) do not_sent[i] = obj("server", n.server, "account", n.account, "reason", n.reason) end
  for i, f in ipairs(report.failures) do
    failures[i] = obj("server", f.server, "account", f.account, "error", err_obj(f.err))
  end
  local opts = ctx.opts
  return obj("op", report.op, "now", report.now,
    "within", report.op == "audit" and (opts.within or ctx.default_within) or nil,
    "within_seconds", report.op == "audit" and report.within or nil,
    "dry_run", report.op == "prune" and opts["dry-run"] == true or nil,
    "summary", obj(unpack(summary, 1, #summary)),
    "servers", servers_, "accounts", accounts, "tokens", tokens, "not_sent", not_sent, "failures", failures)
end

-- CSV: RFC 4180 quoting (a field with , or " is quoted, " doubled), lines ending in LF (what awk,
-- cut and sort expect); a control character in a field is shown as \xNN (nothing from a server
-- can act on a terminal or split a line), and a field a spreadsheet would run as a formula
-- (= + - @) gets a leading '; a backslash is \x5c.
local CSV_COLUMNS = { "server", "account", "suspended", "status", "kind", "name", "created", "expires",
                      "state", "risks", "action", "detail" }
local function csv_field(v)
  v = common.terminal_text((tostring(v == nil and "" or v):gsub("\\", "\\x5c")))
  if v:match("^[=+%-@]") then v = "'" .. v end
  if v:find('[,"]') then v = '"' .. v:gsub('"', '""') .. '"' end
  return v
end
local function csv_line(fields)
  local cells = {}
  for i = 1, #CSV_COLUMNS do cells[i] = csv_field(fields[CSV_COLUMNS[i]]) end
  return table_concat(cells, ",") .. "\n"
end

local function csv_text(report, path_of)
  local lines = { csv_line((function()
    local h = {}
    for _, c in ipairs(CSV_COLUMNS) do h[c] = c end
    return h
  end)()) }
  local by_account = {}
  for _, t in ipairs(report.tokens) do
    local key = t.server .. "\0" .. t.account .. "\0" .. t.kind
    by_account[key] = by_account[key] or {}
    by_account[key][#by_account[key] + 1] = t
  end
  local function token_row(a, t, action)
    return csv_line { server = t.server, account = t.account, suspended = a and (a.suspended and "yes" or "no") or "",
                      status = a and status(a) or "ok", kind = t.kind, name = t.name, created = iso(t.create_time),
                      expires = iso(t.expires_at), state = t.state,
                      risks = t.kind == "whm" and table_concat(list_or_empty(t.risks), " ") or "", action = action }
  end
  -- each server's WHM tokens first (account: the WHM user), then its accounts
  for _, s in ipairs(report.servers) do
    for _, t in ipairs(by_account[s.label .. "\0" .. tostring(s.user) .. "\0whm"] or {}) do
      lines[#lines + 1] = token_row(nil, t, "")
    end
    if s.err then
      lines[#lines + 1] = csv_line { server = s.label, account = s.user, status = "failed", detail = err_text(s.err) }
    end
  end
  for _, a in ipairs(report.accounts) do
    local revoked, would = {}, {}
    for _, n in ipairs(a.revoked or {}) do revoked[n] = true end
    for _, n in ipairs(a.would_revoke or {}) do would[n] = true end
    local toks = by_account[a.server .. "\0" .. a.user .. "\0cpanel"] or {}
    for _, t in ipairs(toks) do
      lines[#lines + 1] = token_row(a, t, revoked[t.name] and "revoked" or would[t.name] and "would_revoke" or "")
    end
    if a.rotated then
      lines[#lines + 1] = csv_line { server = a.server, account = a.user, suspended = a.suspended and "yes" or "no",
        status = status(a), kind = "cpanel", name = a.rotated.created, expires = iso(a.rotated.expires_at),
        action = "rotated", detail = path_of(a) .. (detail(a) ~= "" and ("; " .. detail(a)) or "") }
    elseif #toks == 0 or status(a) ~= "ok" then
      lines[#lines + 1] = csv_line { server = a.server, account = a.user, suspended = a.suspended and "yes" or "no",
        status = status(a), detail = detail(a) }
    end
  end
  return table_concat(lines)
end

-- "2 servers (1 failed), 40 accounts: 37 reached, 1 failed, 1 not sent, 1 skipped (2 suspended); ..."
local function summary_line(report, within)
  local s = report.summary
  local parts = { string_format("%d server%s%s, %d account%s: %d reached, %d failed, %d not sent, %d skipped"
    .. " (%d suspended)", s.servers, s.servers == 1 and "" or "s",
    s.servers_failed > 0 and string_format(" (%d failed)", s.servers_failed) or "", s.accounts,
    s.accounts == 1 and "" or "s", s.reached, s.failed, s.not_sent, s.skipped, s.suspended) }
  if report.op ~= "rotate" then
    parts[#parts + 1] = string_format("%d tokens: %d never expire, %d expired, %d expiring%s, %d fine", s.tokens,
      s.never, s.expired, s.expiring, within and (" within " .. within) or "", s.fine)
    parts[#parts + 1] = string_format("%d WHM tokens, %d risky", s.whm_tokens, s.whm_risky)
  end
  if report.op == "prune" then
    parts[#parts + 1] = s.would_revoke > 0 and string_format("%d would be revoked (dry run: nothing was)",
      s.would_revoke) or string_format("%d revoked", s.revoked)
  elseif report.op == "rotate" then
    parts[#parts + 1] = string_format("%d rotated", s.rotated)
  end
  return table_concat(parts, "; ") .. "\n"
end

local function table_report(ctx, report, path_of)
  local op, text = report.op, {}
  local function add(s) text[#text + 1] = s end
  if op == "list" then
    local rows = {}
    for _, t in ipairs(report.tokens) do
      rows[#rows + 1] = { shown(t.server), shown(t.account), t.kind, shown(t.name), iso(t.create_time) or "",
                          iso(t.expires_at) or "never", t.state }
    end
    add(table_text({ "SERVER", "ACCOUNT", "KIND", "NAME", "CREATED", "EXPIRES", "STATE" }, rows))
  elseif op == "audit" then
    local rows = {}
    for _, a in ipairs(report.accounts) do
      local c = counts_of(a)
      rows[#rows + 1] = { shown(a.server), shown(a.user), a.suspended and "yes" or "no", tostring(c.tokens),
                          tostring(c.never), tostring(c.expired), tostring(c.expiring), status(a) }
    end
    add(table_text({ "SERVER", "ACCOUNT", "SUSPENDED", "TOKENS", "NEVER", "EXPIRED", "EXPIRING", "STATUS" }, rows))
    rows = {}
    for _, t in ipairs(report.tokens) do
      local risks = t.kind == "whm" and list_or_empty(t.risks) or {}
      if t.state ~= "fine" or #risks > 0 then
        rows[#rows + 1] = { shown(t.server), shown(t.account), t.kind, shown(t.name), iso(t.expires_at) or "never",
                            t.state, #risks > 0 and table_concat(risks, ",") or "-" }
      end
    end
    if #rows > 0 then
      add("\nNeeds attention:\n")
      add(table_text({ "SERVER", "ACCOUNT", "KIND", "NAME", "EXPIRES", "STATE", "RISKS" }, rows))
    end
  elseif op == "prune" then
    local rows = {}
    for _, a in ipairs(report.accounts) do
      for _, n in ipairs(a.revoked or {}) do rows[#rows + 1] = { shown(a.server), shown(a.user), "revoked", shown(n) } end
      for _, n in ipairs(a.would_revoke or {}) do
        rows[#rows + 1] = { shown(a.server), shown(a.user), "would revoke", shown(n) }
      end
    end
    add(table_text({ "SERVER", "ACCOUNT", "ACTION", "TOKEN" }, rows))
  else
    local rows = {}
    for _, a in ipairs(report.accounts) do
      rows[#rows + 1] = { shown(a.server), shown(a.user), status(a), a.rotated and shown(a.rotated.created) or "-",
                          a.rotated and path_of(a) or "-" }
    end
    add(table_text({ "SERVER", "ACCOUNT", "STATUS", "NEW TOKEN", "FILE" }, rows))
  end
  add(summary_line(report, op == "audit" and (ctx.opts.within or ctx.default_within) or nil))
  out(ctx, table_concat(text))
end

-- One line on stderr per failure: servers that could not be enumerated, accounts that failed;
-- accounts not reached are counted per server and reason.
local function say_failures(ctx, report, path_of)
  for _, f in ipairs(report.failures) do
    say(ctx, error_line(f.err, f.server .. (f.account and ("/" .. f.account) or "") .. ": "))
  end
  for _, a in ipairs(report.accounts) do
    for _, e in ipairs(a.errors or (a.rotated and a.rotated.errors) or {}) do
      say(ctx, error_line(e.err, a.server .. "/" .. a.user .. ": revoking " .. shown(e.name) .. " failed: "))
    end
    for _, n in ipairs(a.rotated and names(a.rotated.foreign) or {}) do
      say(ctx, "cptokens: warning: " .. a.server .. "/" .. a.user .. ": " .. shown(n) .. " has the prefix but "
        .. path_of(a) .. " does not hold it; left alone (give each token file its own prefix, or revoke it"
        .. " by hand if nobody holds it)")
    end
  end
  local groups, order = {}, {}
  for _, n in ipairs(report.not_sent) do
    local key = n.server .. "\0" .. n.reason
    if not groups[key] then
      groups[key] = { server = n.server, reason = n.reason, n = 0 }
      order[#order + 1] = key
    end
    groups[key].n = groups[key].n + 1
  end
  for _, key in ipairs(order) do
    local g = groups[key]
    say(ctx, string_format("cptokens: %s: %d account%s %s", g.server, g.n, g.n == 1 and "" or "s",
      (g.reason:gsub("^not sent: ", "not sent: "))))
  end
end

local function failed(report)
  local s = report.summary
  if s.servers_failed > 0 or s.failed > 0 or s.not_sent > 0 or #report.failures > 0 then return true end
  for _, a in ipairs(report.accounts) do
    if a.errors or (a.rotated and #list_or_empty(a.rotated.errors) > 0) then return true end
  end
  return false
end

------------------------------------------------------------------ the commands

local function fleet_run(ctx, cmd, method, mopts)
  local opts = ctx.opts
  local entries = servers(ctx, opts, cmd)
  local on_progress, tty, clear = progress(ctx, cmd.name)
  local fopts = { per_server = ctx.per_server, concurrency = ctx.concurrency, progress = on_progress }
  -- on a terminal, smaller chunks so that the line moves (each chunk is one batch)
  if tty then fopts.chunk = math_max(200, 4 * (ctx.concurrency or 50)) end
  local ok, f = pcall(require("cptokens").fleet, entries, fopts)
  if not ok then usage("%s", (one_line(f):gsub("^cptokens[.:]%s*", ""))) end
  ctx.fleet = f
  local report
  ok, report = pcall(f[method], f, mopts)
  clear()
  f:close()
  -- (a raise from the run: requests may have been sent, so not a usage error)
  if not ok then exit_with(EXIT_FAIL, "cptokens: " .. (one_line(tostring(report)):gsub("^cptokens[.:]%s*", ""))) end
  local dir = opts["store-dir"]
  local function path_of(a)
    return dir and require("cptokens.fleet_rotate").store_path(dir, a.server, a.user) or nil
  end
  if ctx.format == "json" then
    out_json(ctx, json_doc(ctx, report, path_of))
  elseif ctx.format == "csv" then
    common.write_out(ctx, ctx.scrub(csv_text(report, path_of))) -- (as --json: also with --quiet)
  else
    table_report(ctx, report, path_of)
  end
  say_failures(ctx, report, path_of)
  return report
end

function run.list(ctx, _, _, cmd)
  local report = fleet_run(ctx, cmd, "list", {})
  return failed(report) and EXIT_FAIL or EXIT_OK
end

function run.audit(ctx, _, _, cmd)
  local report = fleet_run(ctx, cmd, "audit", { within = ctx.opts.within or ctx.default_within })
  if failed(report) then return EXIT_FAIL end
  local s = report.summary
  -- as `cptokens audit` and `whm audit`: never-expiring cPanel tokens (cPanel's default) are
  -- reported, not an alarm
  return (s.expired + s.expiring + s.whm_risky > 0) and EXIT_ALERT or EXIT_OK
end

function run.prune(ctx, _, _, cmd)
  local report = fleet_run(ctx, cmd, "prune", { prefix = ctx.opts.prefix, dry_run = ctx.opts["dry-run"] or nil })
  return failed(report) and EXIT_FAIL or EXIT_OK
end

function run.rotate(ctx, _, pos, cmd)
  local opts = ctx.opts
  local ropts = { prefix = pos[1], store_dir = opts["store-dir"], expires_in = opts["expires-in"],
                  expires_at = ctx.expires_at, keep = ctx.keep }
  -- each new token joins the scrubber as soon as it is stored (the report holds none), so
  -- that a server's message echoing it is scrubbed, even when the run ends in an error
  function ropts.on_token(token) ctx.secrets[#ctx.secrets + 1] = token end
  local report = fleet_run(ctx, cmd, "rotate", ropts)
  return failed(report) and EXIT_FAIL or EXIT_OK
end

run._csv_field, run.CSV_COLUMNS = csv_field, CSV_COLUMNS
return run
