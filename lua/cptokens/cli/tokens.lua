--- cptokens.cli.tokens: the commands on single tokens: list, create, revoke, rename.
-- run.<command>(ctx, client, args) returns the exit status; failures raise (common.Exit).
-- A token created always reaches its user (printed, or saved with --out) or is revoked.
local common = require "cptokens.cli.common"
local connect = require "cptokens.cli.connect"

local type, tostring, ipairs, pcall, getmetatable, error, require = type, tostring, ipairs, pcall, getmetatable,
  error, require
local string_format = string.format
local os_time = os.time
local EXIT_OK, EXIT_FAIL, EXIT_USAGE = common.EXIT.OK, common.EXIT.FAIL, common.EXIT.USAGE
local Exit, exit_with, fail, one_line, error_line = common.Exit, common.exit_with, common.fail, common.one_line,
  common.error_line
local shown, out, out_json, flush, iso, say = common.shown, common.out, common.out_json, common.flush, common.iso,
  common.say
local table_text, expiry_text, state_text, interrupted = common.table_text, common.expiry_text, common.state_text,
  common.interrupted
-- the JSON encoder only under --json (a human listing does not compile it)
local function json() return require "cptokens.cli.json" end
local file_conn, check_out, exec_token = connect.file_conn, connect.check_out, connect.exec_token

local unpack = table.unpack or unpack -- luacheck: ignore (Lua 5.1)

local run = {}

-- A failure of a single operation. The library's "invalid" kind is a refusal before anything
-- was sent (a bad name, an expiry in the past, a rename to the same name): a usage error,
-- exit 2, as a bad duration is; anything else is exit 1.
local function refused(err)
  if type(err) == "table" and err.kind == "invalid" then exit_with(EXIT_USAGE, error_line(err)) end
  fail(err)
end

-- A token's fields in `list --json` (and `create --json`) order: { n = count, k1, v1, ... }.
local function token_fields(t, now, full)
  local rem = require("cptokens.time").remaining(t, now)
  if full == nil then full = t.has_full_access == true end
  return { n = 16, "name", t.name, "create_time", t.create_time, "created", iso(t.create_time),
    "expires_at", t.expires_at, "expires", iso(t.expires_at), "expired", rem ~= nil and rem < 0,
    "remaining", rem, "has_full_access", full }
end

-- create's JSON document: the fields list has, then the token (or null), the file (or null)
-- and whether --exec took it.
local function created_doc(tok, token, path, exec)
  local f = token_fields(tok, os_time(), true) -- create makes full-access tokens
  f[17], f[18], f[19], f[20], f[21], f[22], f.n = "token", token, "out", path, "exec", exec == true, 22
  return json().obj(unpack(f, 1, f.n))
end


function run.list(ctx, client)
  local list, err = client:list()
  if not list then fail(err) end
  local now = os_time()
  if ctx.opts.json then
    local items = {}
    for i, t in ipairs(list) do
      local f = token_fields(t, now)
      items[i] = json().obj(unpack(f, 1, f.n))
    end
    out_json(ctx, json().obj("tokens", items))
    return EXIT_OK
  end
  local rows = {}
  for i, t in ipairs(list) do
    rows[i] = { shown(t.name), iso(t.create_time) or "", iso(t.expires_at) or "never", state_text(t, now) }
  end
  out(ctx, table_text({ "NAME", "CREATED", "EXPIRES", "STATE" }, rows))
  return EXIT_OK
end


-- Hands the new token tok over: to --exec CMD and/or saved to path (durably, 0600, atomic,
-- with how.conn: its server and user), or printed. how.doc(tok, token, path, exec) is the
-- --json document. Raises (an
-- Exit, or any error) when it could not; calls delivered() once the token reached its user.
local function deliver(ctx, how, tok, path, delivered)
  local code, sig = interrupted()
  if code then
    ctx.signal_said = true
    exit_with(code, "cptokens: interrupted by " .. sig .. " before the token was delivered")
  end
  if ctx.opts.exec then
    local ok, why = exec_token(ctx, tok, how.conn)
    if not ok then exit_with(EXIT_FAIL, "cptokens: " .. why) end
  end
  if path then
    local ok, serr = require("cptokens.store").save(path, tok, how.conn)
    if not ok then
      exit_with(EXIT_FAIL, "cptokens: io: cannot save the token to " .. path .. ": "
        .. error_line(serr):gsub("^cptokens: ", ""))
    end
  end
  if path or ctx.opts.exec then
    delivered()
    local where = path and ("saved to " .. path) or "handed to --exec"
    if path and ctx.opts.exec then where = where .. " and handed to --exec" end
    ctx.signal_note = "the token " .. shown(tok.name) .. " was " .. where .. " and stays valid"
    if ctx.opts.json then
      out_json(ctx, how.doc(tok, json().NULL, path or json().NULL, ctx.opts.exec ~= nil))
    else
      out(ctx, string_format("created %s, %s; token %s\n", shown(tok.name), expiry_text(tok), where))
    end
    return
  end
  local text
  if ctx.opts.json then
    local J = json()
    text = J.encode(how.doc(tok, J.verbatim(tok.token), J.NULL, false), ctx.scrub) .. "\n"
  else
    text = tok.token .. "\n"
  end
  if ctx.stdout == io.stdout and require("cptokens.core").isatty(1) then
    say(ctx, "cptokens: note: the token is shown this once (cPanel keeps only a hash of it): store it"
      .. " now, or next time use --out FILE or --exec CMD")
  end
  local ok, werr = ctx.stdout:write(text)
  if ok then ok, werr = flush(ctx) end
  if not ok then
    exit_with(EXIT_FAIL, "cptokens: io: cannot write the token to standard output: " .. tostring(werr))
  end
  -- printed, but a signal now (the terminal hung up, Ctrl-C on TOKEN=$(...)) means that its
  -- reader has most likely lost it
  code, sig = interrupted()
  if code then
    ctx.signal_said = true
    exit_with(code, "cptokens: interrupted by " .. sig .. " while the token was handed over")
  end
  delivered()
  ctx.signal_note = "the token " .. shown(tok.name) .. " was printed and stays valid"
end

--- The expiry options of create (and whm create) from --expires-in / --expires-at, or nil.
function run.expiry_options(ctx)
  if ctx.opts["expires-in"] then return { expires_in = ctx.opts["expires-in"] } end
  if ctx.opts["expires-at"] then return { expires_at = ctx.expires_at } end
end

--- Creates a token and hands it over (printed, or saved to --out), shared by create and
-- whm create. how = { conn = what a token file of it records (check_out, store.save),
-- create = function() -> tok | nil, err, revoke = function(name) -> ok | nil, err,
-- doc = function(tok, token, path) -> the --json document }.
function run.create_token(ctx, how)
  local path = ctx.opts.out
  if path then
    check_out(path, how.conn) -- a bad path is a usage error (exit 2)
    -- the file's lock, as rotate takes it: never a save in the middle of a rotation of it
    local lock, lerr = require("cptokens.store").lock(path, 30)
    if not lock then exit_with(EXIT_FAIL, error_line(lerr, "--out: ")) end
    ctx.out_lock = lock -- held until the process ends
    check_out(path, how.conn) -- again, now that no rotation can change it
  end

  local tok, err = how.create()
  if not tok then refused(err) end
  ctx.secrets[#ctx.secrets + 1] = tok.token

  -- Nobody has seen the new token yet: on every path where it does not reach its user
  -- (a write or a save that fails, a signal, any error at all), it is revoked.
  local done = false
  local ok, e = pcall(deliver, ctx, how, tok, path, function() done = true end)
  if ok then return EXIT_OK end
  if done then error(e, 0) end
  local is_exit = getmetatable(e) == Exit
  local code = is_exit and e.code or EXIT_FAIL
  local why = is_exit and e.message or ("cptokens: internal error: " .. tostring(e))
  local rok, rerr = how.revoke(tok.name)
  local after = rok and ("; the new token " .. shown(tok.name) .. " was revoked, nothing is left behind")
    or ("; revoking the new token " .. shown(tok.name) .. " also failed (" .. error_line(rerr)
      .. "): revoke it with 'cptokens revoke " .. shown(tok.name) .. "'")
  exit_with(code, one_line(why) .. after)
end

function run.create(ctx, client, pos)
  return run.create_token(ctx, {
    conn = file_conn(client), doc = created_doc,
    create = function() return client:create(pos[1], run.expiry_options(ctx)) end,
    revoke = function(name) return client:revoke(name) end,
  })
end

run.refused, run.token_fields = refused, token_fields

function run.revoke(ctx, client, pos)
  local revoked, missing = {}, {}
  local function report()
    if ctx.opts.json then
      out_json(ctx, json().obj("revoked", revoked, "missing", missing))
    end
  end
  for _, name in ipairs(pos) do
    local ok, existed = client:revoke(name)
    if not ok then
      report()
      if #revoked + #missing == 0 then refused(existed) end -- (nothing sent yet: a bad first name)
      fail(existed)
    end
    if existed then
      revoked[#revoked + 1] = name
      if not ctx.opts.json then out(ctx, "revoked " .. shown(name) .. "\n") end
    else
      missing[#missing + 1] = name
      if not ctx.opts.json then out(ctx, "no token named " .. shown(name) .. " (nothing to revoke)\n") end
    end
  end
  report()
  return EXIT_OK
end

function run.rename(ctx, client, pos)
  local ok, err = client:rename(pos[1], pos[2])
  if not ok then refused(err) end
  if ctx.opts.json then
    out_json(ctx, json().obj("name", pos[1], "new_name", pos[2]))
  else
    out(ctx, "renamed " .. shown(pos[1]) .. " to " .. shown(pos[2]) .. "\n")
  end
  return EXIT_OK
end

return run
