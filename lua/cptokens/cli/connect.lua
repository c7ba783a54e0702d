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

-- Reads a secret from a file (or standard input for "-"): the whole file,
-- minus one trailing newline. Usage errors (exit 2) for unreadable or empty.
local MAX_SECRET_FILE = 65536

-- Warns (one line on stderr) when a secret file can be read by its group or by others, as
-- ssh does. A warning, not a refusal: the secret is already exposed, a deliberate 0640
-- root:service file is a working set-up, and a refusal would stop the cron rotation that
-- keeps the service's token alive (docs/cli.md, "Secret files").
local function check_mode(ctx, opt, path)
  local mode, kind = core.file_mode(path)
  if not mode or kind ~= "file" then return end -- a pipe, a device, /dev/stdin: not ours to judge
  local group, others = math_floor(mode / 32) % 2 == 1, math_floor(mode / 4) % 2 == 1
  if not (group or others) then return end
  say(ctx, string_format("cptokens: warning: --%s %s can be read by %s (mode %04o): whoever can read"
    .. " it holds the secret; chmod 600 it", opt, path,
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
    check_mode(ctx, opt, path)
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
local function credentials(ctx, opts, whm)
  local stdin_user
  for _, o in ipairs { "token-file", "password-file", "whm-token-file", "otp-file" } do
    if opts[o] == "-" then
      if stdin_user then usage("--%s -: standard input is already used by --%s", o, stdin_user) end
      stdin_user = o
    end
  end
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

-- A token file's own server and account are never overridden silently: a stale CPANEL_URL
-- (or --url) would send the file's token to another server. Refused, naming both.
-- (The same for a WHM token file and its WHM user: whm = true.)
local function check_file_conn(ctx, opts, file, url, user, whm)
  local opt = whm and "--whm-token-file" or "--token-file"
  if file.url and not require("cptokens.store").same_server(url, file.url) then
    usage("%s %s holds a token for %s, but %s says %s: the token would go to another server "
      .. "(unset %s, or use that server's token file)", opt, one_line(ctx.cred.file), one_line(file.url),
      opts.url and "--url" or "CPANEL_URL", one_line(url), opts.url and "--url" or "CPANEL_URL")
  end
  local file_user = whm and file.whm_user or file.user
  local flag, env = whm and "--whm-user" or "--user", whm and "WHM_USER" or "CPANEL_USER"
  if file_user and user ~= file_user then
    usage("%s %s holds a token of the account %s, but %s says %s (unset %s, or use that"
      .. " account's token file)", opt, one_line(ctx.cred.file), one_line(file_user),
      opts[flag:sub(3)] and flag or env, one_line(user), opts[flag:sub(3)] and flag or env)
  end
end

local function connect(ctx, opts)
  local cred = credentials(ctx, opts)
  ctx.cred = cred
  -- A token file written by create --out or rotate also names its server.
  local file = ctx.file_conn or {}
  local url = opts.url or envvar(ctx, "CPANEL_URL") or file.url
  if not url then usage("no server: use --url URL or set CPANEL_URL (e.g. https://host.example.com:2083)") end
  local user = opts.user or envvar(ctx, "CPANEL_USER") or file.user
  if not user then usage("no account: use --user USER or set CPANEL_USER") end
  check_file_conn(ctx, opts, file, url, user)
  local o = {
    url = url, user = user,
    cafile = opts.cafile or envvar(ctx, "CPANEL_CAFILE") or file.cafile,
    capath = opts.capath or envvar(ctx, "CPANEL_CAPATH") or file.capath,
  }
  if opts.insecure then o.insecure = true end
  o.timeout, o.connect_timeout = ctx.timeout, ctx.connect_timeout
  o[cred.kind] = cred.value
  o.otp = cred.otp
  if cred.kind == "whm_token" then
    o.whm_user = opts["whm-user"] or envvar(ctx, "WHM_USER") or file.whm_user
  end
  ctx.users[#ctx.users + 1] = user
  if cred.kind == "whm_token" then ctx.users[#ctx.users + 1] = o.whm_user or "root" end
  ctx.target = { url = url, user = user, whm_user = o.whm_user }
  if o.insecure then
    say(ctx, "cptokens: warning: --insecure: the server's certificate is not checked; whoever answers"
      .. " gets the credential and the tokens")
  end
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
-- (or a WHM token file's; default root), with a WHM token or the account's password (+ OTP).
-- --user names a cPanel account, which these commands do not act on: refused.
local function connect_whm(ctx, opts, cmd)
  ctx.details = cmd.sub == "details"
  if opts.user then
    usage("%s: --user names a cPanel account; the whm commands act as the WHM account: use"
      .. " --whm-user NAME (or WHM_USER)", cmd.name)
  end
  local cred = credentials(ctx, opts, true)
  ctx.cred = cred
  local file = ctx.file_conn or {}
  local url = opts.url or envvar(ctx, "CPANEL_URL") or file.url
  if not url then usage("no server: use --url URL or set CPANEL_URL (e.g. https://host.example.com:2087)") end
  local user = opts["whm-user"] or envvar(ctx, "WHM_USER") or file.whm_user or "root"
  if ctx.file_conn then check_file_conn(ctx, opts, file, url, user, true) end
  local o = { url = url, user = user, otp = cred.otp, timeout = ctx.timeout, connect_timeout = ctx.connect_timeout,
              cafile = opts.cafile or envvar(ctx, "CPANEL_CAFILE") or file.cafile,
              capath = opts.capath or envvar(ctx, "CPANEL_CAPATH") or file.capath }
  if opts.insecure then o.insecure = true end
  o[cred.kind == "whm_token" and "token" or "password"] = cred.value
  ctx.users[#ctx.users + 1] = user
  ctx.cred = cred
  ctx.target = { url = url, whm_user = user, whm = true }
  if o.insecure then
    say(ctx, "cptokens: warning: --insecure: the server's certificate is not checked; whoever answers"
      .. " gets the credential and the tokens")
  end
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
M.read_secret = read_secret
M.file_conn, M.check_out, M.exec_token = file_conn, check_out, exec_token

return M
