--- Rotation names and bookkeeping shared by every token family: the names
-- "<prefix>-<UTC YYYYMMDDHHMMSS>[-N]", their order, option checks, and the
-- sorting of an account's tokens into what a rotation owns (classify).
-- Used by cptokens.rotate_run and cptokens.rotate_audit. Portable across Lua
-- 5.1 to 5.4 and LuaJIT.
--
-- @module cptokens.rotate_plan
local core = require "cptokens.core"
local store = require "cptokens.store"
local util = require "cptokens.util"

local error, ipairs, pairs, tostring, type = error, ipairs, pairs, tostring, type
local os_date, os_time, string_format, table_sort = os.date, os.time, string.format, table.sort

local M = {}

local NAME_MAX = core.NAME_MAX             -- cPanel's limit on a token name (50)
local STAMP_LEN = 14                       -- YYYYMMDDHHMMSS
M.PREFIX_MAX = NAME_MAX - 1 - STAMP_LEN - 3  -- 32: room for "-<stamp>" and "-NN"
local SUFFIX_MAX = 99                      -- "-2" .. "-99" within one second
M.SUFFIX_MAX = SUFFIX_MAX

local is_error = util.is_error

-- One-line text for a message (control bytes escaped), and the same quoted.
local clean, quote = store._clean, store._quote

local function invalid(msg)
  return nil, core.error("invalid", msg)
end

-- The names of entries, added to (and without repeating) an array of names.
local function names_of_list(entries, into)
  local out, seen = {}, {}
  for _, n in ipairs(into or {}) do
    if not seen[n] then out[#out + 1], seen[n] = n, true end
  end
  for _, e in ipairs(entries) do
    if not seen[e.name] then out[#out + 1], seen[e.name] = e.name, true end
  end
  return out
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

--- Raises unless every key of opts is known; returns opts (or {}).
local function check_options(what, opts, known, level)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error("cptokens: " .. what .. ": options must be a table, got " .. type(opts), level + 1)
  end
  for k in pairs(opts) do
    if not known[k] then
      error("cptokens: " .. what .. ": unknown option '" .. tostring(k) .. "'", level + 1)
    end
  end
  return opts
end

--- A prefix check: true, or nil, err (kind "invalid"). Raises for a non-string.
local function check_prefix(what, prefix, level)
  if type(prefix) ~= "string" then
    error("cptokens: " .. what .. ": prefix must be a string, got " .. type(prefix), level + 1)
  end
  if prefix == "" then return invalid(what .. ": the prefix is empty") end
  if not prefix:find("^[A-Za-z0-9_%-]+$") then
    return invalid(what .. ": prefix " .. quote(prefix)
      .. " may only contain the characters a-z A-Z 0-9 _ - (cPanel refuses other names)")
  end
  if #prefix > M.PREFIX_MAX then
    return invalid(string_format("%s: prefix %s is %d characters long; at most %d leave room for "
      .. "\"-YYYYMMDDHHMMSS-NN\" within cPanel's 50", what, quote(prefix), #prefix, M.PREFIX_MAX))
  end
  return true
end

local STAMP_PATTERN = "^(" .. ("%d"):rep(STAMP_LEN) .. ")$"
local STAMP_N_PATTERN = "^(" .. ("%d"):rep(STAMP_LEN) .. ")%-([1-9]%d?)$"

--- For a rotation name "<prefix>-<stamp>[-N]": stamp, N (1 without a suffix).
local function parse_name(name, prefix)
  if type(name) ~= "string" or name:sub(1, #prefix + 1) ~= prefix .. "-" then return nil end
  local rest = name:sub(#prefix + 2)
  local stamp = rest:match(STAMP_PATTERN)
  if stamp then return stamp, 1 end
  local s, n = rest:match(STAMP_N_PATTERN)
  if s then return s, tonumber(n) end
  return nil
end

M.parse_name = parse_name

--- Whether a name is one of prefix's rotations (exactly; "deploy" never
-- matches "deploy-old" or "deployer-...").
function M.matches(name, prefix)
  return parse_name(name, prefix) ~= nil
end

--- Order: older first by create_time, then stamp, then suffix, then name.
local function older(a, b)
  local ca, cb = a.create_time or 0, b.create_time or 0
  if ca ~= cb then return ca < cb end
  if a.stamp ~= b.stamp then return a.stamp < b.stamp end
  if a.n ~= b.n then return a.n < b.n end
  return a.name < b.name
end


-- already made in that second (so names sort in creation order).
local function next_name(prefix, stamp, taken, entries, after)
  local n = after or 0
  for _, e in ipairs(entries) do
    if e.stamp == stamp and e.n > n then n = e.n end
  end
  while true do
    n = n + 1
    if n > SUFFIX_MAX then return nil, n end
    local name = n == 1 and (prefix .. "-" .. stamp) or (prefix .. "-" .. stamp .. "-" .. n)
    if not taken[name] then return name, n end
  end
end

local function conflict(err)
  if not is_error(err) or err.kind ~= "api" then return false end
  for _, m in ipairs(type(err.errors) == "table" and err.errors or { err.message }) do
    if tostring(m):find("already exists", 1, true) then return true end
  end
  return false
end

local function set_of(names)
  local s = {}
  for _, n in ipairs(names or {}) do s[n] = true end
  return s
end

--- Step 2: sorts the account's tokens. A path store owns exactly the token it
-- holds and its history; a store function owns the whole prefix (tokens newer
-- than `current` are orphans). Names in the journal that are still there are
-- leftovers of an interrupted run, revoked as orphans. Tokens with the prefix
-- that the store does not own are `foreign`: left alone.
local function classify(cfg, list)
  local prefix, stored = cfg.prefix, cfg.stored
  local c = { olds = {}, orphans = {}, leftover = {}, foreign = {}, entries = {}, taken = {} }
  local history, pending, left = set_of(cfg.history), set_of(cfg.journal.pending),
    set_of(cfg.journal.revoke)
  local mark
  -- A name a killed run was creating that the server does not show (yet: a request sent just
  -- before the kill may still be carried out) stays in the journal for a day.
  local on_server, day_ago = {}, os_date("!%Y%m%d%H%M%S", os_time() - 86400)
  for _, t in ipairs(list) do on_server[t.name] = true end
  c.unseen = {}
  for _, n in ipairs(cfg.journal.pending) do
    local stamp = parse_name(n, prefix)
    if not on_server[n] and stamp and stamp >= day_ago then c.unseen[#c.unseen + 1] = n end
    c.taken[n] = true -- never reuse it: its create may still arrive
  end
  for _, t in ipairs(list) do
    c.taken[t.name] = true
    local stamp, n = parse_name(t.name, prefix)
    local e = { name = t.name, create_time = t.create_time, stamp = stamp or "", n = n or 0 }
    if stamp then c.entries[#c.entries + 1] = e end
    if stored and t.name == stored.name then mark = e end
  end
  for _, t in ipairs(list) do
    local e = { name = t.name, create_time = t.create_time }
    e.stamp, e.n = parse_name(t.name, prefix)
    e.stamp, e.n = e.stamp or "", e.n or 0
    local mine = e.stamp ~= "" and cfg.history == nil
    if mark and t.name == mark.name or history[t.name] then
      c.olds[#c.olds + 1] = e
    elseif pending[t.name] or (mine and mark and older(mark, e)) then
      c.orphans[#c.orphans + 1] = e
    elseif left[t.name] then
      c.leftover[#c.leftover + 1] = e
    elseif mine then
      c.olds[#c.olds + 1] = e
    elseif e.stamp ~= "" then
      c.foreign[#c.foreign + 1] = t.name
    end
  end
  table_sort(c.olds, function(a, b) return older(b, a) end) -- newest first
  return c
end

--- Step 3: creates the new token under a name recorded in the journal first,

M.is_error, M.clean, M.quote, M.invalid, M.names_of_list, M.copy = is_error, clean, quote, invalid,
  names_of_list, copy
M.check_options, M.check_prefix, M.older, M.next_name, M.conflict, M.set_of, M.classify =
  check_options, check_prefix, older, next_name, conflict, set_of, classify

return M
