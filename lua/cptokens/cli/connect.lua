--- cptokens.cli.connect: the credential and the client. Exactly one credential, from the
-- environment or a file (never argv); secret files read with a mode warning; a token file
-- written by `create --out` or rotation also names its server; every secret read is added to
-- the run's scrubber list (ctx.secrets). Portable across Lua 5.1-5.4 and LuaJIT.
local core = require "cptokens.core"
local common = require "cptokens.cli.common"

local type, ipairs, pcall, require = type, ipairs, pcall, require
local string_format, table_concat = string.format, table.concat
local math_floor = math.floor
local usage, exit_with, one_line, error_line, say = common.usage, common.exit_with, common.one_line,
  common.error_line, common.say
local EXIT_USAGE = common.EXIT.USAGE

local M = {}

local function getenv_of(env)
  if env == nil then return os.getenv end
  if type(env) == "function" then return env end
  if type(env) == "table" then return function(k) return env[k] end end
  error("cptokens.cli.main: env must be a table or a function")
end

-- An environment variable, "" counting as unset.
local function envvar(ctx, name)
  local v = ctx.getenv(name)
  if v == "" then return nil end
  return v
end

-- --------------------------------------------------------------------------
-- Profiles (~/.config/cptokens/config, cptokens.config): --profile NAME or CPANEL_PROFILE.
-- Precedence: flags, then the environment, then the profile, then a token file's own URL and
-- user. A profile's credential goes only to its own server and account: a flag or variable
-- naming another is refused (the credential would go elsewhere), naming both.
-- --------------------------------------------------------------------------

local check_mode -- (below: the mode warning of a secret file)

--- The configuration file: --config FILE, CPTOKENS_CONFIG, or the default path (usage errors).
local function config(ctx, opts)
  local path = opts.config or envvar(ctx, "CPTOKENS_CONFIG")
  local cfg, err = require("cptokens.config").load(path)
  if not cfg then usage("%s", one_line(err.message)) end
  return cfg
end

-- The profile named by --profile or CPANEL_PROFILE, or nil: { name, said, kind, o (its options
-- for cptokens.new or cptokens.whm), cpanel_url }. Its secret joins the scrubber's list.
local function profile(ctx, opts)
  local name = opts.profile or envvar(ctx, "CPANEL_PROFILE")
  if not name then return nil end
  local cfg = config(ctx, opts)
  local o, kind = cfg:profile(name)
  if not o then usage("%s", one_line(kind.message)) end
  for _, k in ipairs { "token", "password", "whm_token" } do
    if o[k] then ctx.secrets[#ctx.secrets + 1] = o[k] end
  end
  ctx.profile = { name = name, said = (opts.profile and "--profile " or "CPANEL_PROFILE=") .. name, kind = kind,
                  o = o, cpanel_url = cfg:cpanel_url(name) }
  local file, key = cfg:credential_file(name)
  if file then check_mode(ctx, "profile " .. name .. ": " .. key, file) end
  return ctx.profile
end

-- The credential of profile prof, as credentials() returns one.
local function profile_credential(prof, whm)
  local o = prof.o
  if whm and prof.kind ~= "whm" then
    usage("profile %s is a cPanel account's (user = %s); the whm, accounts and fleet commands need a WHM"
      .. " profile (whm_user without user)", prof.name, one_line(o.user))
  end
  if prof.kind == "whm" then
    if not whm and not o.token then
      usage("profile %s holds the WHM account's password: WHM acts for a cPanel account with a WHM token"
        .. " only (give the profile token_file or token_env)", prof.name)
    end
    return { kind = o.token and "whm_token" or "password", value = o.token or o.password, profile = prof }
  end
  if o.whm_token then return { kind = "whm_token", value = o.whm_token, profile = prof } end
  return { kind = o.token and "token" or "password", value = o.token or o.password, profile = prof }
end

-- Refuses a setting from a flag or the environment (said) that sends the profile's credential
-- elsewhere than the profile's own value (want); same: how to compare.
local function check_profile_value(cred, what, value, want, said, same)
  if not (cred.profile and want and value) or (same and same(value, want) or value == want) then return end
  local prof = cred.profile
  usage("profile %s holds a credential for %s %s, but %s says %s: the credential would go to another %s"
    .. " (unset %s, or use another profile)", prof.name, what, one_line(want), said, one_line(value),
    what == "the server" and "server" or "account", said)
end

-- Reads a secret from a file (or standard input for "-"): the whole file,
-- minus one trailing newline. Usage errors (exit 2) for unreadable or empty.
local MAX_SECRET_FILE = 65536

-- Warns (one line on stderr) when a secret file can be read by its group or by others, as
-- ssh does. A warning, not a refusal: the secret is already exposed, a deliberate 0640
-- root:service file is a working set-up, and a refusal would stop the cron rotation that
-- keeps the service's token alive (docs/cli.md, "Secret files").
-- label: what names the file ("--token-file", "profile web1: token_file").
function check_mode(ctx, label, path)
  local mode, kind = core.file_mode(path)
  if not mode or kind ~= "file" then return end -- a pipe, a device, /dev/stdin: not ours to judge
  local group, others = math_floor(mode / 32) % 2 == 1, math_floor(mode / 4) % 2 == 1
  if not (group or others) then return end
  say(ctx, string_format("cptokens: warning: %s %s can be read by %s (mode %04o): whoever can read"
    .. " it holds the secret; chmod 600 it", label, path,
    group and others and "its group and others" or group and "its group" or "others", mode))
end

-- From a terminal (FILE "-" on a terminal): a prompt on stderr and the line read with the echo
-- off; false when standard input is not a terminal.
local PROMPTS = { ["password-file"] = "Password: ", ["otp-file"] = "Two-factor code: ",
                  ["token-file"] = "API token: ", ["whm-token-file"] = "WHM API token: " }
local function tty_secret(opt)
  local line, err = core.read_tty_secret(PROMPTS[opt] or "Secret: ", MAX_SECRET_FILE)
  if line == nil then usage("--%s -: cannot read from the terminal: %s", opt, err) end
  return line
end

-- The token of a token file's text (JSON from `create --out`, `whm create --out` or a
-- rotation); its connection settings become defaults (flags and the environment win). A WHM
-- token file ("kind": "whm") names the WHM account as its user: it goes with
-- --whm-token-file (and `whm details --token-file`), a cPanel user's file with --token-file.
local function token_file(ctx, opt, path, data)
  local okj, cjson = pcall(require, "cjson.safe")
  local doc = okj and cjson.decode(data)
  if not (type(doc) == "table" and type(doc.token) == "string" and doc.token ~= "") then return data end
  ctx.secrets[#ctx.secrets + 1] = data
  local whm = doc.kind == "whm"
  if opt == "whm-token-file" and not whm then
    usage("--whm-token-file %s holds a cPanel user's token, not a WHM token; use --token-file", one_line(path))
  elseif opt == "token-file" and whm and not ctx.details then
    usage("--token-file %s holds a WHM API token; use --whm-token-file (the whm commands, or acting for"
      .. " --user)", one_line(path))
  end
  local conn = {}
  for _, k in ipairs { "url", "user", "cafile", "capath" } do
    if type(doc[k]) == "string" and doc[k] ~= "" then conn[k] = doc[k] end
  end
  if whm then conn.whm_user, conn.user = conn.user, nil end
  if not ctx.details then ctx.file_conn = conn end
  return doc.token
end

local function read_secret(ctx, opt, path)
  local data
  if path == "-" then
    if ctx.stdin_used then
      usage("--%s -: standard input is already used by --%s", opt, ctx.stdin_used)
    end
    ctx.stdin_used = opt
    data = ctx.stdin == io.stdin and tty_secret(opt)
    if data == false then data = ctx.stdin:read(MAX_SECRET_FILE + 1) or "" end
  else
    local f, msg = io.open(path, "rb")
    if not f then usage("--%s: cannot read %s", opt, one_line(msg or path)) end
    local ok, res, rerr = pcall(f.read, f, MAX_SECRET_FILE + 1)
    f:close()
    if not ok or (res == nil and rerr) then
      usage("--%s: cannot read %s: %s", opt, one_line(path), one_line(ok and rerr or res))
    end
    data = res or ""
    check_mode(ctx, "--" .. opt, path)
  end
  if #data > MAX_SECRET_FILE then
    usage("--%s %s: too large to hold a secret", opt, path == "-" and "- (standard input)" or one_line(path))
  end
  if data:sub(-1) == "\n" then
    data = data:sub(1, -2)
    if data:sub(-1) == "\r" then data = data:sub(1, -2) end
  end
  if data == "" then
    usage("--%s %s: the secret is empty", opt, path == "-" and "- (standard input)" or one_line(path))
  end
  -- A file written by `cptokens create --out` or by rotation's store may be a
  -- JSON document holding the token; take the token from it.
  if (opt == "token-file" or opt == "whm-token-file") and data:sub(1, 1) == "{" then
    data = token_file(ctx, opt, path, data)
  end
  ctx.secrets[#ctx.secrets + 1] = data
  return data
end

-- The two-factor code, into cred.otp: only with a password.
local function two_factor(ctx, opts, cred)
  local otp_env, otp_file = envvar(ctx, "CPANEL_OTP"), opts["otp-file"]
  if otp_env and otp_file then usage("CPANEL_OTP and --otp-file are both given; give one") end
  if not (otp_env or otp_file) then return end
  if cred.kind ~= "password" then
    usage("a two-factor code (%s) goes with a password only", otp_file and "--otp-file" or "CPANEL_OTP")
  end
  if otp_env then
    cred.otp = otp_env
    ctx.secrets[#ctx.secrets + 1] = otp_env
  else
    cred.otp = read_secret(ctx, "otp-file", otp_file)
  end
end

-- The credential: exactly one source, from the environment or a file. whm: for the whm
-- commands (a WHM token or the WHM account's password; `whm details` reads --token-file itself).
-- At most one of the secret files is standard input ("-").
local function one_stdin(opts)
  local stdin_user
  for _, o in ipairs { "token-file", "password-file", "whm-token-file", "otp-file" } do
    if opts[o] == "-" then
      if stdin_user then usage("--%s -: standard input is already used by --%s", o, stdin_user) end
      stdin_user = o
    end
  end
end

local function credentials(ctx, opts, whm, prof)
  one_stdin(opts)
  local sources = {}
  local function add(kind, label, value, file_opt)
    sources[#sources + 1] = { kind = kind, label = label, value = value, file_opt = file_opt }
  end
  local empty = {}
  for _, e in ipairs { { "token", "CPANEL_TOKEN" }, { "password", "CPANEL_PASSWORD" },
                       { "whm_token", "WHM_TOKEN" } } do
    local v = envvar(ctx, e[2])
    if v then add(e[1], e[2], v) elseif ctx.getenv(e[2]) == "" then empty[#empty + 1] = e[2] end
  end
  for _, f in ipairs { { "token", "token-file" }, { "password", "password-file" },
                       { "whm_token", "whm-token-file" } } do
    if opts[f[2]] and not (ctx.details and f[2] == "token-file") then add(f[1], "--" .. f[2], nil, f[2]) end
  end
  if #sources == 0 and prof then
    local cred = profile_credential(prof, whm)
    two_factor(ctx, opts, cred)
    return cred
  end
  if #sources == 0 then
    usage("%s%s", whm and ("no WHM credentials: set WHM_TOKEN (or CPANEL_PASSWORD, the WHM account's"
      .. " password), or use --whm-token-file or --password-file FILE")
      or ("no credentials: set CPANEL_TOKEN (or CPANEL_PASSWORD, or WHM_TOKEN), or use --token-file,"
      .. " --password-file or --whm-token-file FILE"),
      #empty > 0 and (" (" .. table_concat(empty, ", ") .. " is set but empty)") or "")
  end
  if #sources > 1 then
    local labels = {}
    for i, s in ipairs(sources) do labels[i] = s.label end
    usage("several credentials given (%s); give exactly one", table_concat(labels, ", "))
  end
  local src = sources[1]
  if prof then
    -- A credential is never mixed with a profile's server: a stale CPANEL_TOKEN would go to
    -- the profile's server (and account, trust settings), or the profile's cpanel_url.
    usage("%s and %s both give a credential: give one (a profile's credential goes with its own"
      .. " server and account; %s %s, or drop the profile)", src.label, prof.said,
      src.label:sub(1, 2) == "--" and "drop" or "unset", src.label)
  end
  if whm and src.kind == "token" then
    usage("%s holds a cPanel user's token, which cannot manage WHM tokens; use WHM_TOKEN or"
      .. " --whm-token-file FILE (or the WHM account's password: CPANEL_PASSWORD or --password-file)", src.label)
  end
  local cred = { kind = src.kind }
  if src.value then
    cred.value = src.value
    ctx.secrets[#ctx.secrets + 1] = src.value
  else
    cred.file = opts[src.file_opt]
    cred.value = read_secret(ctx, src.file_opt, cred.file)
  end
  two_factor(ctx, opts, cred)
  if opts["whm-user"] and cred.kind ~= "whm_token" and not whm then
    usage("--whm-user goes with a WHM token only (WHM_TOKEN or --whm-token-file)")
  end
  return cred
end

-- A setting by precedence: the flag --flag, the variable env, the profile's value, the token
-- file's. Returns the value and what said it ("--url", "CPANEL_URL", "profile web1", ...).
local function setting(ctx, opts, flag, env, prof_value, file_value)
  if opts[flag] then return opts[flag], "--" .. flag end
  local v = env and envvar(ctx, env)
  if v then return v, env end
  if prof_value ~= nil then return prof_value, "profile " .. ctx.profile.name end
  return file_value, nil
end

-- A token file's own server and account are never overridden silently: a stale CPANEL_URL
-- (or --url, or a profile's url) would send the file's token to another server. Refused,
-- naming both. (The same for a WHM token file and its WHM user: whm = true.)
local function check_file_conn(ctx, file, url, url_said, user, user_said, whm)
  local opt = whm and "--whm-token-file" or "--token-file"
  if file.url and url_said and not require("cptokens.store").same_server(url, file.url) then
    usage("%s %s holds a token for %s, but %s says %s: the token would go to another server "
      .. "(unset %s, or use that server's token file)", opt, one_line(ctx.cred.file), one_line(file.url),
      url_said, one_line(url), url_said)
  end
  local file_user = whm and file.whm_user or file.user
  if file_user and user_said and user ~= file_user then
    usage("%s %s holds a token of the account %s, but %s says %s (unset %s, or use that"
      .. " account's token file)", opt, one_line(ctx.cred.file), one_line(file_user),
      user_said, one_line(user), user_said)
  end
end

local function same_server(a, b) return require("cptokens.store").same_server(a, b) end

-- Options every client takes: trust anchors and timeouts (flags, environment, profile, file).
local function common_options(ctx, opts, po, file)
  local o = {
    cafile = setting(ctx, opts, "cafile", "CPANEL_CAFILE", po.cafile, file.cafile),
    capath = setting(ctx, opts, "capath", "CPANEL_CAPATH", po.capath, file.capath),
    timeout = ctx.timeout or po.timeout, connect_timeout = ctx.connect_timeout or po.connect_timeout,
  }
  if opts.insecure or po.insecure then o.insecure = true end
  if o.insecure then
    say(ctx, "cptokens: warning: " .. (opts.insecure and "--insecure" or ("profile " .. ctx.profile.name
      .. ": insecure")) .. ": the server's certificate is not checked; whoever answers gets the credential"
      .. " and the tokens")
  end
  return o
end

local function connect(ctx, opts)
  local prof = profile(ctx, opts)
  local cred = credentials(ctx, opts, false, prof)
  ctx.cred = cred
  local po = prof and prof.o or {}
  -- A token file written by create --out or rotate also names its server.
  local file = ctx.file_conn or {}
  local url, url_said = setting(ctx, opts, "url", "CPANEL_URL", po.url, file.url)
  if not url then usage("no server: use --url URL or set CPANEL_URL (e.g. https://host.example.com:2083)") end
  local is_whm_profile = prof ~= nil and prof.kind == "whm"
  local user, user_said = setting(ctx, opts, "user", "CPANEL_USER", not is_whm_profile and po.user or nil,
    file.user)
  if not user then
    usage("no account: use --user USER or set CPANEL_USER%s", is_whm_profile
      and (" (profile " .. prof.name .. " is a WHM account's: --user names the account it acts for)") or "")
  end
  check_profile_value(cred, "the server", url, po.url, url_said, same_server)
  -- (a WHM profile acts for the account --user names; any other profile is one account's)
  if not is_whm_profile then check_profile_value(cred, "the account", user, po.user, user_said) end
  check_file_conn(ctx, file, url, url_said, user, user_said)
  local o = common_options(ctx, opts, po, file)
  o.url, o.user = url, user
  o[cred.kind] = cred.value
  o.otp = cred.otp
  if cred.kind == "whm_token" then
    local prof_whm = po.whm_user or (is_whm_profile and po.user) or nil
    local whm_user, said = setting(ctx, opts, "whm-user", "WHM_USER", prof_whm, file.whm_user)
    check_profile_value(cred, "the WHM account", whm_user, prof_whm, said)
    o.whm_user = whm_user
  end
  ctx.users[#ctx.users + 1] = user
  if cred.kind == "whm_token" then ctx.users[#ctx.users + 1] = o.whm_user or "root" end
  ctx.target = { url = url, user = user, whm_user = o.whm_user }
  local ok, client, err = pcall(require("cptokens").new, o)
  if not ok then
    usage("%s", (one_line(client):gsub("^cptokens[.:]%s*", "")))
  end
  if not client then
    exit_with(EXIT_USAGE, error_line(err))
  end
  ctx.client = client
  return client
end

--- The whm commands' client: cptokens.whm{...} for the WHM account WHM_USER / --whm-user
-- (or a WHM profile's, or a WHM token file's; default root), with a WHM token or the account's
-- password (+ OTP). --user names a cPanel account, which these commands do not act on: refused.
local function connect_whm(ctx, opts, cmd)
  ctx.details = cmd.sub == "details"
  if opts.user then
    usage("%s: --user names a cPanel account; the %s commands act as the WHM account: use"
      .. " --whm-user NAME (or WHM_USER)", cmd.name, cmd.group and cmd.group.name or cmd.name)
  end
  local prof = profile(ctx, opts)
  local cred = credentials(ctx, opts, true, prof)
  ctx.cred = cred
  local po = prof and prof.o or {}
  local file = ctx.file_conn or {}
  local url, url_said = setting(ctx, opts, "url", "CPANEL_URL", po.url, file.url)
  if not url then usage("no server: use --url URL or set CPANEL_URL (e.g. https://host.example.com:2087)") end
  local user, user_said = setting(ctx, opts, "whm-user", "WHM_USER", po.user, file.whm_user)
  user = user or "root"
  check_profile_value(cred, "the server", url, po.url, url_said, same_server)
  check_profile_value(cred, "the WHM account", user, po.user, user_said)
  if ctx.file_conn then check_file_conn(ctx, file, url, url_said, user, user_said, true) end
  local o = common_options(ctx, opts, po, file)
  o.url, o.user, o.otp = url, user, cred.otp
  o[cred.kind == "whm_token" and "token" or "password"] = cred.value
  ctx.users[#ctx.users + 1] = user
  ctx.target = { url = url, whm_user = user, whm = true }
  local ok, client, err = pcall(require("cptokens").whm, o)
  if not ok then usage("%s", (one_line(client):gsub("^cptokens[.:]%s*", ""))) end
  if not client then exit_with(EXIT_USAGE, error_line(err)) end
  ctx.client = client
  return client
end

-- What a token file written for client records: its URL (for a WHM client, the
-- cPanel port the user's token works on), user and trust anchors.
local function file_conn(client)
  local conn = client:info()
  if conn.credential == "whm_token" then
    conn.url = conn.url:gsub("^(https://[^/]+):2087", "%1:2083")
  end
  return conn
end

-- Checks that a token file could be written at path, before creating anything (a usage
-- error, exit 2, if not). With conn, a token file of another server or account is refused too.
local function check_out(path, conn)
  local ok, msg = require("cptokens.store").check(path, conn)
  if not ok then
    exit_with(EXIT_USAGE, error_line(msg, "--out: "))
  end
end

--- --exec CMD: the new token's token file JSON on CMD's standard input (sh -c CMD; its
-- standard output goes to stderr; the tool's secret variables are not in its environment).
-- true, or nil, a one-line reason.
local DEFAULT_EXEC_TIMEOUT = 60
local function exec_token(ctx, tok, conn)
  local doc = require("cptokens.store").document(tok, conn)
  local seconds = ctx.exec_timeout or DEFAULT_EXEC_TIMEOUT
  local ok, why = require("cptokens.core").exec_input(ctx.opts.exec, doc, seconds)
  if ok then return true end
  return nil, "--exec: the command failed: " .. tostring(why)
end

M.getenv_of, M.envvar, M.connect, M.connect_whm = getenv_of, envvar, connect, connect_whm
M.read_secret, M.config, M.profile = read_secret, config, profile
M.file_conn, M.check_out, M.exec_token = file_conn, check_out, exec_token

return M
