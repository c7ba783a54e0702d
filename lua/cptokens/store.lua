--- Durable secret storage for cPanel API tokens.
--
-- A token file is JSON:
--   { "name", "token", "create_time", "expires_at" (null: never), "url", "user",
--     "cafile"?, "capath"?, "history" }
-- `history` names the older tokens of this store that rotation kept (no
-- secrets): with the stored one, the only tokens a rotation of this file may
-- revoke. It is written by core.atomic_write: a temporary file in the same
-- directory, mode 0600 from its creation, given the owner, group and mode of
-- the file it replaces (never a bit for others), written, fsync'd, renamed
-- over the target (through a symbolic link: over its target), and the
-- directory fsync'd. A reader sees the old file or the new one, never a mix,
-- and nobody else can read it at any moment.
--
--   store.save(path, tok, conn [, { history = names, nofollow = bool }]) -> true | nil, err
--   store.load(path)             -> options, meta | nil, err
--   store.document(tok, conn)    -> the JSON text save would write (for `--exec CMD`)
--   store.check(path [, conn])   -> true | nil, err
--   store.lock(path [, seconds]) -> lock | nil, err   (lock:journal(), lock:record(t),
--                                                     lock:release())
--
-- Errors are cptokens error objects of kind "invalid"; their message names the
-- path, never the token.
--
-- Portable across Lua 5.1 to 5.4 and LuaJIT.
--
-- @module cptokens.store
local core = require "cptokens.core"
local time = require "cptokens.time"
local util = require "cptokens.util"
local cjson = require("cjson.safe").new()

local error, io_open, ipairs, pcall, select, setmetatable, string_format, tostring, type =
  error, io.open, ipairs, pcall, select, setmetatable, string.format, tostring, type
local math_floor, math_tointeger, math_type = math.floor, math.tointeger, math.type

local _M = {}

-- A token file is small; anything larger is not one.
local MAX_FILE = 65536

-- Messages show values as every module does (control bytes escaped: one line).
local clean, quote = util.clean, util.quote

-- Shared with rotate.lua, whose messages follow the same rules.
_M._clean, _M._quote = clean, quote

local function fail(msg, missing)
  local err = core.error("invalid", "store: " .. clean(msg))
  if missing then err.missing = true end
  return nil, err
end

--- Checks a path argument: a string raises otherwise; "" or a NUL byte is invalid.
local function check_path_arg(fn, path, level)
  if type(path) ~= "string" then
    error("cptokens.store." .. fn .. ": path must be a string, got " .. type(path), level + 1)
  end
  if path == "" then return fail("the path is empty") end
  if path:find("\0", 1, true) then return fail("the path " .. quote(path) .. " contains a NUL byte") end
  if #path >= 4000 then return fail("the path " .. quote(path:sub(1, 60) .. "...") .. " is too long") end
  return true
end

-- ---------------------------------------------------------------- encoding

local function jstr(s)
  return (cjson.encode(s))
end

-- An integral number as JSON digits (exact for integers; floats below 2^53 too).
local function jnum(n)
  if math_type and math_type(n) == "integer" then return string_format("%d", n) end
  return string_format("%.0f", n)
end

local function is_epoch(v)
  return type(v) == "number" and v == v and v >= 0 and v == math_floor(v) and v < 2 ^ 63
end

local function encode(tok, conn, history)
  local names = {}
  for i, n in ipairs(history or {}) do names[i] = jstr(n) end
  local parts = {
    '"name":' .. jstr(tok.name),
    '"token":' .. jstr(tok.token),
    '"create_time":' .. (tok.create_time and jnum(tok.create_time) or "null"),
    '"expires_at":' .. ((tok.expires_at and tok.expires_at ~= 0) and jnum(tok.expires_at) or "null"),
    '"url":' .. jstr(conn.url),
    '"user":' .. jstr(conn.user),
  }
  if conn.kind == "whm" then parts[#parts + 1] = '"kind":"whm"' end -- a WHM API token
  if conn.cafile then parts[#parts + 1] = '"cafile":' .. jstr(conn.cafile) end
  if conn.capath then parts[#parts + 1] = '"capath":' .. jstr(conn.capath) end
  parts[#parts + 1] = '"history":[' .. table.concat(names, ",") .. "]"
  return "{\n  " .. table.concat(parts, ",\n  ") .. "\n}\n"
end

-- ---------------------------------------------------------------- decoding

local function toint(v)
  if math_tointeger then return math_tointeger(v) or v end
  return v
end

-- An epoch field: exact digits from the raw text when it is a plain number
-- (lua-cjson decodes numbers as doubles), nil for null/0/absent.
local function epoch_field(obj, text, key)
  local v = obj[key]
  if v == nil or v == cjson.null then return nil end
  if type(v) == "number" then
    local raw = text:match('"' .. key .. '"%s*:%s*(%d+)%s*[,}]')
    local e = time.to_epoch(raw or v)
    if not e then return nil, key .. " is not a valid epoch" end
    if e == 0 then return nil end
    return toint(e)
  end
  if type(v) == "string" then
    if v == "" or v == "0" then return nil end
    local e = time.to_epoch(v)
    if not e then return nil, key .. " is not a valid epoch" end
    if e == 0 then return nil end
    return toint(e)
  end
  return nil, key .. " is not a number"
end

local function plain_string(v)
  return type(v) == "string" and v ~= "" and not v:find("[%c]")
end

--- Parses a token file's text: options, meta, or nil, reason.
local function decode(text)
  local obj = cjson.decode(text)
  if type(obj) ~= "table" then return nil, "not a JSON object" end
  if not plain_string(obj.name) then return nil, "no valid \"name\"" end
  if not plain_string(obj.token) then return nil, "no valid \"token\"" end
  if not plain_string(obj.url) then return nil, "no valid \"url\"" end
  if not plain_string(obj.user) then return nil, "no valid \"user\"" end
  local options = { url = obj.url, user = obj.user, token = obj.token }
  for _, k in ipairs({ "cafile", "capath" }) do
    local v = obj[k]
    if v ~= nil and v ~= cjson.null then
      if not plain_string(v) then return nil, "no valid \"" .. k .. "\"" end
      options[k] = v
    end
  end
  if obj.kind ~= nil and obj.kind ~= cjson.null and obj.kind ~= "whm" then
    return nil, "no valid \"kind\""
  end
  local create_time, why = epoch_field(obj, text, "create_time")
  if why then return nil, why end
  local expires_at
  expires_at, why = epoch_field(obj, text, "expires_at")
  if why then return nil, why end
  local history
  if obj.history ~= nil and obj.history ~= cjson.null then
    if type(obj.history) ~= "table" then return nil, "no valid \"history\"" end
    history = {}
    for i, n in ipairs(obj.history) do
      if not plain_string(n) then return nil, "no valid \"history\"" end
      history[i] = n
    end
  end
  return options, { name = obj.name, create_time = create_time, expires_at = expires_at,
                    history = history, kind = obj.kind == "whm" and "whm" or nil }
end

-- The text of path: text, or nil, message, missing.
local function read(path)
  local f, msg, code = io_open(path, "rb")
  if not f then
    msg = tostring(msg)
    if msg:sub(1, #path + 2) == path .. ": " then msg = msg:sub(#path + 3) end
    return nil, "cannot read " .. quote(path) .. ": " .. msg, code == 2
  end
  local ok, text, rmsg = pcall(f.read, f, MAX_FILE + 1)
  f:close()
  if not ok or (text == nil and rmsg) then
    return nil, "cannot read " .. quote(path) .. ": " .. tostring(ok and rmsg or text):gsub("^.*: ", "")
  end
  return text or ""
end

-- -------------------------------------------------------------------- API

-- tok and conn as save and document take them (raises on misuse); conn as a table.
local function check_token(fn, tok, conn, level)
  if type(tok) ~= "table" or type(tok.name) ~= "string" or type(tok.token) ~= "string" then
    error("cptokens.store." .. fn .. ": tok must be a token table with name and token", level + 1)
  end
  if type(conn) == "userdata" then
    local ok_info, info = pcall(function() return conn:info() end)
    if ok_info then conn = info end
  end
  if type(conn) ~= "table" or type(conn.url) ~= "string" or type(conn.user) ~= "string" then
    error("cptokens.store." .. fn .. ": conn must be client:info() (a table with url and user)", level + 1)
  end
  for _, k in ipairs({ "create_time", "expires_at" }) do
    if tok[k] ~= nil and not is_epoch(tok[k]) then
      error("cptokens.store." .. fn .. ": tok." .. k .. " must be a whole number of Unix seconds", level + 1)
    end
  end
  return conn
end

--- Writes a token file durably, mode 0600, replacing path atomically.
-- @param path where to write
-- @param tok { name, token, create_time, expires_at } as returned by client:create
-- @param conn client:info() (or the client itself): url, user, cafile?, capath?
-- @param opts nil, or { history = names of older tokens this store keeps, nofollow = true:
--   a symbolic link at path is replaced, not followed }
-- @return true, or nil, err (kind "invalid", naming the path)
function _M.save(path, tok, conn, opts)
  local ok, err = check_path_arg("save", path, 2)
  local history = opts and opts.history
  if history ~= nil and type(history) ~= "table" then
    error("cptokens.store.save: history must be an array of token names", 2)
  end
  conn = check_token("save", tok, conn, 2)
  if not ok then return nil, err end
  if not plain_string(tok.token) then return fail("the token is empty or has control characters") end
  local msg
  ok, msg = core.atomic_write(path, encode(tok, conn, history), opts and opts.nofollow)
  if not ok then return fail(msg) end
  return true
end

--- The text of the token file save(path, tok, conn) would write (no history): what
-- `--exec CMD` hands to CMD's standard input.
function _M.document(tok, conn)
  conn = check_token("document", tok, conn, 2)
  return encode(tok, conn)
end

--- Reads a token file back.
-- @return options (for cptokens.new: url, user, token, cafile?, capath?),
--   meta ({ name, create_time, expires_at }); or nil, err (err.missing is
--   true when the file does not exist)
function _M.load(path)
  local ok, err = check_path_arg("load", path, 2)
  if not ok then return nil, err end
  local text, msg, missing = read(path)
  if not text then return fail(msg, missing) end
  if #text > MAX_FILE then return fail(quote(path) .. " is too large to be a token file") end
  local options, meta = decode(text)
  if not options then return fail(quote(path) .. " is not a cptokens token file: " .. meta) end
  return options, meta
end

--- scheme, host (lower case), port of a URL, default ports filled in.
local function endpoint(url)
  local scheme, rest = tostring(url):match("^(%a[%w+.-]*)://([^/?#]*)")
  if not scheme then return nil end
  scheme = scheme:lower()
  rest = rest:gsub("^.*@", "")
  local host, port = rest:match("^(%[[^%]]*%]):?(%d*)$")
  if not host then host, port = rest:match("^([^:]*):?(%d*)$") end
  if not host then return nil end
  if port == "" then port = scheme == "https" and "443" or "80" end
  return scheme, host:lower(), tonumber(port)
end

--- Whether two URLs reach the same server (scheme, host and port).
function _M.same_server(a, b)
  local s1, h1, p1 = endpoint(a)
  local s2, h2, p2 = endpoint(b)
  return s1 ~= nil and s1 == s2 and h1 == h2 and p1 == p2
end

--- Whether a token could be saved at path, checked before a token is made:
-- the directory exists and a file can really be created in it, and what is at
-- path now (if anything) is an empty file or a token file -- never something
-- else that saving would destroy. With conn (client:info()), a token file of
-- another server or account is refused too: replacing it would leave that
-- server's token held by nobody.
-- @return true, or nil, err
function _M.check(path, conn)
  local ok, err = check_path_arg("check", path, 2)
  if not ok then return nil, err end
  local msg
  ok, msg = core.writable(path)
  if not ok then return fail(msg) end
  local text, _, missing = read(path)
  if not text then
    if missing then return true end
    return fail("cannot read " .. quote(path) .. " to check what it holds")
  end
  if not text:find("%S") then return true end
  local options, meta = false, nil
  if #text <= MAX_FILE then options, meta = decode(text) end
  if not options then
    return fail(quote(path) .. " exists and is not a cptokens token file; refusing to overwrite it")
  end
  if conn and (meta.kind ~= conn.kind) then
    return fail(quote(path) .. " holds " .. (meta.kind and "a WHM API token" or "a cPanel user's token")
      .. ", not " .. (conn.kind and "a WHM API token" or "a cPanel user's token")
      .. "; refusing to overwrite it (that token would be held by nobody)")
  end
  if conn and (options.user ~= conn.user or not _M.same_server(options.url, conn.url)) then
    return fail(quote(path) .. " holds a token of " .. quote(options.user) .. " at " .. quote(options.url)
      .. ", not of " .. quote(conn.user) .. " at " .. quote(conn.url)
      .. "; refusing to overwrite it (that token would be held by nobody)")
  end
  return true
end

-- ---------------------------------------------------------------- locks

local Lock = {}
Lock.__index = Lock

-- The journal of a rotation in progress, kept in the lock file (names only,
-- never a secret): { pending = { names being created }, revoke = { names } }.
function Lock:journal()
  local text = self.k:read()
  local doc = text and text:find("%S") and cjson.decode(text:match("^[^\n]*")) -- (see lock:write)
  local j = { pending = {}, revoke = {} }
  if type(doc) == "table" then
    for _, k in ipairs({ "pending", "revoke" }) do
      for _, n in ipairs(type(doc[k]) == "table" and doc[k] or {}) do
        if plain_string(n) then j[k][#j[k] + 1] = n end
      end
    end
  end
  return j
end

--- Replaces the journal durably: true, or nil, err.
function Lock:record(j)
  local parts = {}
  for _, k in ipairs({ "pending", "revoke" }) do
    local names = {}
    for i, n in ipairs(j and j[k] or {}) do names[i] = jstr(n) end
    parts[#parts + 1] = jstr(k) .. ":[" .. table.concat(names, ",") .. "]"
  end
  local ok, msg = self.k:write((j and "{" .. table.concat(parts, ",") .. "}\n") or "")
  if not ok then return fail(msg) end
  return true
end

function Lock:release()
  self.k:release()
end
Lock.__close = Lock.release

--- Locks the token file at path (through a symbolic link: its target) against
-- other rotations and saves, waiting at most `seconds` (default 30). The lock
-- is the file "<target>.lock" beside it, owned like the token file.
-- @return a lock (lock:release()), or nil, err (err.busy when another process
--   held it all along)
function _M.lock(path, seconds)
  local ok, err = check_path_arg("lock", path, 2)
  if not ok then return nil, err end
  if seconds ~= nil and (type(seconds) ~= "number" or seconds < 0 or seconds ~= seconds) then
    error("cptokens.store.lock: seconds must be a number >= 0", 2)
  end
  local target, msg = core.resolve(path)
  if not target then return fail(msg) end
  local k, busy
  k, msg, busy = core.lock(target .. ".lock", seconds or 30, target)
  if not k then
    local e = select(2, fail(busy and (quote(path) .. " is being rotated or saved by another process (it"
      .. " holds " .. quote(target .. ".lock") .. "); waited " .. (seconds or 30) .. " s") or msg))
    e.busy = busy or nil
    return nil, e
  end
  return setmetatable({ k = k, path = target .. ".lock", target = target }, Lock)
end

return _M
