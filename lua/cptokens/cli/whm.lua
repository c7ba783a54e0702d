--- cptokens.cli.whm: the commands on a WHM account's own API tokens (tokens with ACLs, an IP
-- allow-list and an expiry that can be changed in place) and `accounts`:
--   whm create | list | update | revoke | details | audit | rotate,  accounts
-- The client is a cptokens.whm object (connect.connect_whm: WHM_TOKEN / --whm-token-file, or
-- the WHM account's password + OTP). create's hand-over (printed, or saved with --out, revoked
-- when it cannot be delivered) is tokens.lua's; rotate and audit are rotate.lua's, since a
-- cptokens.whm object has the same rotate and audit methods (with all their guarantees).
-- run.<command>(ctx, client, args) returns the exit status; failures raise (common.Exit);
-- run.check(ctx, cmd, opts) runs before any credential is read or anything sent.
local common = require "cptokens.cli.common"
local tokens = require "cptokens.cli.tokens"

local type, ipairs, require = type, ipairs, require
local table_concat = table.concat
local os_time = os.time
local unpack = table.unpack or unpack -- luacheck: ignore (Lua 5.1)
local EXIT_OK, EXIT_FAIL = common.EXIT.OK, common.EXIT.FAIL
local usage, fail, exit_with = common.usage, common.fail, common.exit_with
local shown, out, out_json, iso = common.shown, common.out, common.out_json, common.iso
local table_text, expiry_text, state_text = common.table_text, common.expiry_text, common.state_text
local refused = tokens.refused
local function json() return require "cptokens.cli.json" end

local run = {}

--- Usage errors of the whm commands' options, before anything is read or sent (exit 2).
function run.check(_, cmd, opts)
  local expiry = opts["expires-in"] or opts["expires-at"]
  if opts["never-expires"] and expiry then
    usage("%s: give --never-expires or an expiry (--expires-in, --expires-at), not both", cmd.name)
  end
  if opts["any-ip"] and opts["allow-ip"] then
    usage("%s: give --any-ip (clears the allow-list) or --allow-ip CIDR, not both", cmd.name)
  end
  if cmd.sub == "update" and not (expiry or opts.rename or opts.acl or opts["allow-ip"] or opts["any-ip"]
                                  or opts["never-expires"]) then
    usage("whm update: nothing to change (give --rename, --acl, --allow-ip, --any-ip, --expires-in,"
      .. " --expires-at or --never-expires)")
  end
  if cmd.sub == "details" and not opts["token-file"] then
    usage("whm details: --token-file FILE is required: the token's value (- for standard input)")
  end
end

-- What a token file of a WHM token records: the WHM URL and account, its trust, kind "whm".
local function whm_conn(client)
  local info = client:info()
  return { url = info.url, user = info.whm_user or info.user, cafile = info.cafile, capath = info.capath,
           kind = "whm" }
end

-- "create-acct,list-accts", or "full access"; "203.0.113.0/24,..." or "any".
local function acls_text(t)
  if t.full_access then return "full access" end
  local names = {}
  for i, a in ipairs(t.acls or {}) do names[i] = shown(a) end
  return #names > 0 and table_concat(names, ",") or "-"
end
local function ips_text(t)
  local ips = {}
  for i, a in ipairs(t.whitelist_ips or {}) do ips[i] = shown(a) end
  return #ips > 0 and table_concat(ips, ",") or "any"
end

-- A WHM token's fields in `whm list --json` order (also update, details, create): { n, k1, v1, ... }.
local function whm_fields(t, now)
  local f = tokens.token_fields(t, now, t.full_access == true)
  f[15] = "full_access" -- (token_fields' has_full_access: WHM's records call it full_access)
  f[17], f[18], f[19], f[20], f.n = "acls", t.acls or {}, "whitelist_ips", t.whitelist_ips, 20
  return f
end
local function whm_obj(t, now)
  local f = whm_fields(t, now)
  return json().obj(unpack(f, 1, f.n))
end

-- The JSON document of whm create: the fields, then the token (or null) and the file (or null).
-- (whm create has no --exec: the fourth argument of a token document is not used)
local function created_doc(tok, token, path)
  local f = whm_fields(tok, os_time())
  f[21], f[22], f[23], f[24], f.n = "token", token, "out", path, 24
  return json().obj(unpack(f, 1, f.n))
end

function run.create(ctx, client, pos)
  local opts = ctx.opts
  local copts = tokens.expiry_options(ctx) or {}
  copts.acls, copts.whitelist_ips = opts.acl, opts["allow-ip"]
  return tokens.create_token(ctx, {
    conn = whm_conn(client), doc = created_doc,
    create = function() return client:create(pos[1], copts) end,
    revoke = function(name) return client:revoke(name) end,
  })
end

function run.list(ctx, client)
  local list, err = client:list()
  if not list then fail(err) end
  local now = os_time()
  if ctx.opts.json then
    local items = {}
    for i, t in ipairs(list) do items[i] = whm_obj(t, now) end
    out_json(ctx, json().obj("tokens", items))
    return EXIT_OK
  end
  local rows = {}
  for i, t in ipairs(list) do
    rows[i] = { shown(t.name), iso(t.create_time) or "", iso(t.expires_at) or "never", state_text(t, now),
                acls_text(t), ips_text(t) }
  end
  out(ctx, table_text({ "NAME", "CREATED", "EXPIRES", "STATE", "ACLS", "IPS" }, rows))
  return EXIT_OK
end

-- One token in human form: "NAME: expires ..., ACLs ..., IPs ...".
local function summary(t)
  return shown(t.name) .. ": " .. expiry_text(t) .. "; ACLs: " .. acls_text(t) .. "; IPs: " .. ips_text(t)
end

function run.update(ctx, client, pos)
  local opts = ctx.opts
  local u = tokens.expiry_options(ctx) or {}
  if opts["never-expires"] then u.expires = false end
  u.new_name, u.acls = opts.rename, opts.acl
  if opts["any-ip"] then u.whitelist_ips = false else u.whitelist_ips = opts["allow-ip"] end
  local rec, err = client:update(pos[1], u)
  if not rec then refused(err) end
  if type(rec) ~= "table" then rec = { name = opts.rename or pos[1] } end
  if ctx.opts.json then
    out_json(ctx, whm_obj(rec, os_time()))
  else
    out(ctx, "updated " .. (opts.rename and (shown(pos[1]) .. ", now ") or "") .. summary(rec) .. "\n")
  end
  return EXIT_OK
end

-- WHM answers OK to a revoke whatever matched: the listing before says which names exist.
function run.revoke(ctx, client, pos)
  local list, err = client:list()
  if not list then refused(err) end
  local exists, revoked, missing = {}, {}, {}
  for _, t in ipairs(list) do exists[t.name] = true end
  local ok
  ok, err = client:revoke(pos)
  if not ok then refused(err) end
  for _, name in ipairs(pos) do
    local into = exists[name] and revoked or missing
    into[#into + 1] = name
    if not ctx.opts.json then
      out(ctx, exists[name] and ("revoked " .. shown(name) .. "\n")
        or ("no token named " .. shown(name) .. " (nothing to revoke)\n"))
    end
  end
  if ctx.opts.json then out_json(ctx, json().obj("revoked", revoked, "missing", missing)) end
  return EXIT_OK
end

-- Which token has this value? Found: its record, exit 0; unknown (or expired): exit 1.
function run.details(ctx, client)
  local secret = require("cptokens.cli.connect").read_secret(ctx, "token-file", ctx.opts["token-file"])
  local rec, err = client:details(secret)
  if rec == nil then refused(err) end
  local now = os_time()
  if ctx.opts.json then
    out_json(ctx, json().obj("found", rec ~= false, "token", rec and whm_obj(rec, now) or nil))
  elseif rec then
    out(ctx, table_text({ "NAME", "CREATED", "EXPIRES", "STATE", "ACLS", "IPS" }, {
      { shown(rec.name), iso(rec.create_time) or "", iso(rec.expires_at) or "never", state_text(rec, now),
        acls_text(rec), ips_text(rec) } }))
  end
  if rec then return EXIT_OK end
  exit_with(EXIT_FAIL, "cptokens: whm details: the server knows no token with that value"
    .. " (it was never made here, or it was revoked or has expired)")
end

function run.audit(ctx, client)
  return require("cptokens.cli.rotate").audit(ctx, client)
end

function run.rotate(ctx, client, pos)
  return require("cptokens.cli.rotate").rotate(ctx, client, pos)
end

function run.accounts(ctx, client)
  local list, err = client:accounts()
  if not list then fail(err) end
  if ctx.opts.json then
    local items = {}
    for i, a in ipairs(list) do
      items[i] = json().obj("user", a.user, "domain", a.domain, "owner", a.owner, "suspended", a.suspended == true)
    end
    out_json(ctx, json().obj("accounts", items))
    return EXIT_OK
  end
  local rows = {}
  for i, a in ipairs(list) do
    rows[i] = { shown(a.user), shown(a.domain or ""), shown(a.owner or ""), a.suspended == true and "yes" or "no" }
  end
  out(ctx, table_text({ "USER", "DOMAIN", "OWNER", "SUSPENDED" }, rows))
  return EXIT_OK
end

return run
