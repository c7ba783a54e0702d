--- cptokens.config: named connection profiles and groups of them, from an INI file.
--
--   local config = require "cptokens.config"
--   local cfg = assert(config.load())          -- default: $XDG_CONFIG_HOME or ~/.config, /cptokens/config
--   local opts, kind = cfg:profile("web1")     -- options for cptokens.whm (kind "whm") or cptokens.new
--   local members = cfg:group("web")           -- { { name, kind, options }, ... }
--   local servers = cfg:servers("web")         -- entries for cptokens.fleet (a group or one profile)
--
--   [profile web1]
--   url = https://web1.example.com:2087
--   whm_user = root                 ; or user = alice (a cPanel account), or both (WHM acting for it)
--   token_file = ~/.config/cptokens/web1.token   ; or password_file, token_env, password_env
--   cafile = /etc/ssl/certs/ca-certificates.crt
--   timeout = 30
--
--   [group web]
--   profiles = web1, web2
--
-- The file is read with lua-inifile (Debian: lua-inifile); what that parser would pass over
-- silently (a line that is no section, key = value or comment, a key outside a section, an
-- unknown key) is refused here, naming the file and line. A secret written inline (token =,
-- password =) is refused unless the file is mode 0600 or stricter. Credentials are read when
-- a profile is asked for, not at load. Errors are nil, err (kind "invalid").
--
-- Depends on inifile, cptokens.core (core.mode), cptokens.store, cptokens.util.
--
-- @module cptokens.config
local inifile = require "inifile"
local core = require "cptokens.core"
local util = require "cptokens.util"

local io_open, ipairs, os_getenv, pairs, setmetatable, tostring, type =
  io.open, ipairs, os.getenv, pairs, setmetatable, tostring, type

local M = {}

local Config = {}
Config.__index = Config

local quote = util.quote

local function invalid(msg) return nil, core.error("invalid", msg) end

local PROFILE_KEYS = {
  url = "string", user = "string", whm_user = "string", token_file = "string", password_file = "string",
  token_env = "string", password_env = "string", token = "secret", password = "secret",
  cafile = "string", capath = "string", timeout = "number", connect_timeout = "number",
  insecure = "boolean", cpanel_url = "string",
}
local CREDENTIALS = { "token_file", "password_file", "token_env", "password_env", "token", "password" }

--- The default path: $XDG_CONFIG_HOME/cptokens/config, or ~/.config/cptokens/config.
function M.default_path()
  local base = os_getenv("XDG_CONFIG_HOME")
  if not base or base == "" then base = (os_getenv("HOME") or "") .. "/.config" end
  return base .. "/cptokens/config"
end

local function read_text(path)
  local f, msg = io_open(path, "rb")
  if not f then return invalid("cannot read the configuration " .. quote(path) .. ": " .. tostring(msg)) end
  local text = f:read("*a")
  f:close()
  if not text then return invalid("cannot read the configuration " .. quote(path)) end
  return text
end

--- Checks each line the way lua-inifile reads it (it skips what it does not understand).
local function check_lines(path, text)
  local n, section = 0, nil
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    line = line:gsub("\r$", "")
    local where = quote(path) .. " line " .. n
    if line:match("^%s*$") or line:match("^%s*[;#]") then -- luacheck: ignore 542
    elseif line:match("^%[([^%]]+)%]$") then
      section = line
    elseif line:match("^([%w_]+)%s-=%s-(.+)$") then
      if not section then return invalid(where .. ": a setting before any [profile NAME] or [group NAME]") end
    elseif line:match("^%s+%S") and not line:match("^%s*%[") then
      return invalid(where .. ": starts with spaces (lua-inifile would skip it): write key = value at the "
        .. "start of the line")
    else
      return invalid(where .. ": not a [section], a key = value setting or a ; comment")
    end
  end
  return true
end

--- A parsed value as a string (inifile turns "30" into 30 and "true" into true), trimmed.
local function value_of(v, kind)
  if kind == "number" then return type(v) == "number" and v or nil end
  if kind == "boolean" then
    if type(v) == "string" then
      local t = util.trim(v):lower()
      if t == "true" or t == "yes" then return true elseif t == "false" or t == "no" then return false end
    end
    if type(v) == "boolean" then return v end
    return nil
  end
  if kind == "secret" and type(v) ~= "string" then return nil end
  return util.trim(tostring(v))
end

local function check_profile(path, name, raw)
  local p, creds = {}, {}
  for k, v in pairs(raw) do
    local kind = PROFILE_KEYS[k]
    local where = quote(path) .. ": [profile " .. name .. "]"
    if not kind then return invalid(where .. ": unknown setting " .. quote(k)) end
    p[k] = value_of(v, kind)
    if p[k] == nil or p[k] == "" then
      return invalid(where .. ": " .. k .. " must be "
        .. (kind == "secret" and "text (put it in a token_file or password_file)" or ("a " .. kind)))
    end
  end
  for _, k in ipairs(CREDENTIALS) do
    if p[k] ~= nil then creds[#creds + 1] = k end
  end
  local where = quote(path) .. ": [profile " .. name .. "]"
  if not p.url then return invalid(where .. ": url is required") end
  for _, k in ipairs { "url", "cpanel_url" } do
    if p[k] and not p[k]:match("^https://[^/%s]+") then
      return invalid(where .. ": " .. k .. " must be an https:// URL, got " .. quote(p[k]))
    end
  end
  if not (p.user or p.whm_user) then return invalid(where .. ": give user, whm_user, or both") end
  if #creds ~= 1 then
    return invalid(where .. ": give exactly one credential: token_file, password_file, token_env, "
      .. "password_env (or token / password inline)")
  end
  p.credential = creds[1]
  return p
end

--- Refuses an inline secret in a file others (group or world) may read.
local function check_mode(path, profiles)
  for name, p in pairs(profiles) do
    if p.credential == "token" or p.credential == "password" then
      local mode, msg = core.mode(path)
      if not mode then return invalid(msg) end
      if mode % 64 ~= 0 then -- any bit for group or others
        return invalid(("%s holds a secret inline (%s in [profile %s]) but its mode is %04o: make it 0600"
          .. " (chmod 600 %s), or use %s_file or %s_env"):format(quote(path), p.credential, name, mode,
          path, p.credential, p.credential))
      end
    end
  end
  return true
end

local function check_group(path, name, raw, profiles)
  local where = quote(path) .. ": [group " .. name .. "]"
  for k in pairs(raw) do
    if k ~= "profiles" then return invalid(where .. ": unknown setting " .. quote(k) .. " (only profiles)") end
  end
  if type(raw.profiles) ~= "string" then return invalid(where .. ": profiles = NAME, NAME... is required") end
  local list = {}
  for member in raw.profiles:gmatch("[^,%s]+") do
    if not profiles[member] then return invalid(where .. ": no [profile " .. member .. "]") end
    list[#list + 1] = member
  end
  return list
end

--- Profiles and groups of the parsed sections; nil, err for anything else.
local function sections(path, t)
  local profiles, raw_groups, groups = {}, {}, {}
  for section, raw in pairs(t) do
    local kind, name = section:match("^(%a+)%s+([%w._-]+)$")
    if kind == "profile" then
      local p, err = check_profile(path, name, raw)
      if not p then return nil, err end
      profiles[name] = p
    elseif kind == "group" then
      raw_groups[name] = raw
    else
      return invalid(quote(path) .. ": unknown section [" .. section .. "] (use [profile NAME] or [group NAME],"
        .. " a name of letters, digits and . _ -)")
    end
  end
  for name, raw in pairs(raw_groups) do
    local list, err = check_group(path, name, raw, profiles)
    if not list then return nil, err end
    groups[name] = list
  end
  return profiles, groups
end

--- config.load([path]) -> config, or nil, err (a message naming the file and the line).
function M.load(path)
  if path ~= nil and type(path) ~= "string" then error("cptokens.config.load: path must be a string", 2) end
  path = path or M.default_path()
  local text, err = read_text(path)
  if not text then return nil, err end
  local ok
  ok, err = check_lines(path, text)
  if not ok then return nil, err end
  local t = inifile.parse(text .. "\n", "memory")
  local profiles, groups = sections(path, t)
  if not profiles then return nil, groups end
  ok, err = check_mode(path, profiles)
  if not ok then return nil, err end
  local dir = path:match("^(.*)/[^/]*$") or "."
  return setmetatable({ path = path, dir = dir, _profiles = profiles, _groups = groups }, Config)
end

local function names(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

--- cfg:profiles() / cfg:groups() -> sorted names.
function Config:profiles() return names(self._profiles) end
function Config:groups() return names(self._groups) end

--- A path from the file: ~/ is the home directory; a relative one is beside the file.
local function expand(self, p)
  if p:sub(1, 2) == "~/" then return (os_getenv("HOME") or "") .. p:sub(2) end
  if p:sub(1, 1) ~= "/" then return self.dir .. "/" .. p end
  return p
end

--- The first line of a password file (without its line end), or nil, err.
local function read_secret_file(path, what)
  local f, msg = io_open(path, "rb")
  if not f then return invalid("cannot read the " .. what .. " " .. quote(path) .. ": " .. tostring(msg)) end
  local line = f:read("*l")
  f:close()
  line = line and line:gsub("\r$", "")
  if not line or line == "" then return invalid("the " .. what .. " " .. quote(path) .. " is empty") end
  return line
end

--- The secret of profile p, and the URL and user of its token file (if any), or nil, err.
local function credential(self, name, p)
  local c, where = p.credential, "profile " .. name .. ": "
  if c == "token" or c == "password" then return p[c] end
  if c == "token_env" or c == "password_env" then
    local v = os_getenv(p[c])
    if not v or v == "" then return invalid(where .. c .. " names " .. quote(p[c]) .. ", which is not set") end
    return v
  end
  local path = expand(self, p[c])
  if c == "password_file" then return read_secret_file(path, "password file") end
  -- a token file: the token alone (as --token-file takes it), or a cptokens token file (JSON)
  local f = io_open(path, "rb")
  local head = f and f:read(1)
  if f then f:close() end
  if head ~= "{" then return read_secret_file(path, "token file") end
  local opts, err = require("cptokens.store").load(path)
  if not opts then return invalid(where .. "token_file: " .. err.message) end
  return opts.token or opts.whm_token, opts
end

--- Refuses a profile whose url or user differs from its token file's (never overridden silently).
local function same_as_file(name, p, file)
  local store = require "cptokens.store"
  if p.url and file.url and not store.same_server(p.url, file.url) then
    return invalid(("profile %s: its url %s and its token file's url %s differ: the token is for the "
      .. "file's server; fix one of them"):format(name, quote(p.url), quote(file.url)))
  end
  local user = p.user and not p.whm_user and p.user or p.whm_user
  local file_user = file.whm_user or file.user
  if user and file_user and user ~= file_user then
    return invalid(("profile %s: its user %s and its token file's user %s differ"):format(name, quote(user),
      quote(file_user)))
  end
  return true
end

local CONN = { "cafile", "capath", "timeout", "connect_timeout", "insecure" }

--- cfg:profile(name) -> options, kind | nil, err. kind "whm" (whm_user alone): options for
-- cptokens.whm; kind "cpanel": options for cptokens.new (user, with whm_user: WHM acting
-- for user). The credential is read now (file or environment variable).
function Config:profile(name)
  if type(name) ~= "string" then error("cptokens.config: profile: name must be a string", 2) end
  local p = self._profiles[name]
  if not p then return invalid(quote(self.path) .. ": no [profile " .. name .. "]") end
  local secret, file = credential(self, name, p)
  if not secret then return nil, file end
  if file then
    local ok, err = same_as_file(name, p, file)
    if not ok then return nil, err end
  end
  local opts, kind = { url = p.url or file.url }, "cpanel"
  for _, k in ipairs(CONN) do
    opts[k] = p[k] ~= nil and p[k] or nil
    if k == "cafile" or k == "capath" then opts[k] = opts[k] and expand(self, opts[k]) end
  end
  local is_password = p.credential:match("^password") ~= nil
  if p.whm_user and not p.user then
    kind, opts.user = "whm", p.whm_user
    opts[is_password and "password" or "token"] = secret
  elseif p.whm_user then
    if is_password then return invalid("profile " .. name .. ": a WHM account acts for a user with a token, not a password") end
    opts.user, opts.whm_user, opts.whm_token = p.user, p.whm_user, secret
  else
    opts.user = p.user
    opts[is_password and "password" or "token"] = secret
  end
  return opts, kind
end

--- cfg:credential_file(name) -> the path of profile name's token_file or password_file (expanded)
-- and which of the two it is; nil when its credential is not a file.
function Config:credential_file(name)
  local p = self._profiles[name]
  if not p or not (p.credential == "token_file" or p.credential == "password_file") then return nil end
  return expand(self, p[p.credential]), p.credential
end

--- cfg:cpanel_url(name) -> profile name's cpanel_url (where rotate verifies new user tokens), or nil.
function Config:cpanel_url(name)
  local p = self._profiles[name]
  return p and p.cpanel_url
end

--- cfg:group(name) -> array of { name, kind, options } (each member's profile()), or nil, err.
function Config:group(name)
  if type(name) ~= "string" then error("cptokens.config: group: name must be a string", 2) end
  local list = self._groups[name]
  if not list then return invalid(quote(self.path) .. ": no [group " .. name .. "]") end
  local out = {}
  for i, member in ipairs(list) do
    local opts, kind = self:profile(member)
    if not opts then return nil, kind end
    out[i] = { name = member, kind = kind, options = opts }
  end
  return out
end

--- cfg:servers(name [, partial]) -> the entries of cptokens.fleet for a group (or one profile) of
-- WHM profiles: { label = profile name, cpanel_url = ..., <cptokens.whm options> }, or nil, err.
-- partial: a member whose credential cannot be read (a file, an unset variable) is
-- { label, err = err } (cptokens.fleet reports it as a failed server) instead of failing all.
function Config:servers(name, partial)
  local members, err
  if self._groups[name] and partial then
    -- each member on its own: one whose credential cannot be read is { label, err }
    members = {}
    for i, member in ipairs(self._groups[name]) do
      local opts, kind = self:profile(member)
      members[i] = opts and { name = member, kind = kind, options = opts } or { name = member, err = kind }
    end
  elseif self._groups[name] then
    members, err = self:group(name)
  else
    local opts, kind = self:profile(name)
    members, err = opts and { { name = name, kind = kind, options = opts } }, kind
  end
  if not members then return nil, err end
  local out = {}
  for i, m in ipairs(members) do
    local raw = self._profiles[m.name]
    if m.err and raw.whm_user and not raw.user then
      out[i] = { label = m.name, err = m.err }
    elseif m.err or m.kind ~= "whm" then
      return invalid("profile " .. m.name .. ": fleet work needs a WHM profile (whm_user without user)")
    else
      local e = { label = m.name, cpanel_url = self._profiles[m.name].cpanel_url }
      for k, v in pairs(m.options) do e[k] = v end
      out[i] = e
    end
  end
  return out
end

M.Config = Config
return M
