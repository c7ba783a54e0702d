--- cptokens.cli.common: what every command of the tool shares. Exit statuses and the
-- control flow of failures (thrown as Exit tables, turned into exit codes by main()); the one
-- scrubber of everything the tool prints; text made safe for a terminal; human and JSON
-- output. Portable across Lua 5.1-5.4 and LuaJIT.
-- cptokens.time only when a time is shown (a usage error or help does not compile it).
local function time() return require "cptokens.time" end

local type, tostring, ipairs, setmetatable, error, pcall = type, tostring, ipairs, setmetatable, error, pcall
local string_format, string_rep = string.format, string.rep
local table_concat, table_sort = table.concat, table.sort
local math_floor = math.floor

local M = {}

local EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_ALERT = 0, 1, 2, 3
M.EXIT = { OK = EXIT_OK, FAIL = EXIT_FAIL, USAGE = EXIT_USAGE, ALERT = EXIT_ALERT }

---------------------------------------------------------------------------
-- Control flow: failures are thrown as tables and turned into exit codes.
---------------------------------------------------------------------------

local Exit = {}

-- err (optional): the library's error object it comes from (its HTTP status goes into the
-- JSON form of the error, see json_error).
local function exit_with(code, message, err)
  error(setmetatable({ code = code, message = message, status = type(err) == "table" and err.status or nil,
                       cause = type(err) == "table" and err or nil }, Exit), 0)
end

local function usage(fmt, ...)
  exit_with(EXIT_USAGE, "cptokens: " .. string_format(fmt, ...))
end

local function one_line(s)
  s = tostring(s)
  return (s:gsub("[\r\n]+%s*", " "):gsub("%s+$", ""))
end

-- An error object from the library (or a rotation step) as one line.
local function error_line(err, prefix)
  local text
  if type(err) == "table" and err.kind then
    text = "cptokens: " .. tostring(err.kind) .. ": " .. (prefix or "") .. tostring(err.message)
    if err.step and not tostring(err.message):find(tostring(err.step), 1, true) then
      text = text .. " (step: " .. tostring(err.step) .. ")"
    end
  else
    text = "cptokens: " .. (prefix or "") .. tostring(err)
  end
  return one_line(text)
end

local function fail(err, prefix)
  exit_with(EXIT_FAIL, error_line(err, prefix), err)
end

-- The error kinds a line "cptokens: <kind>: ..." may name (docs/api.md, Error handling).
local KINDS = { invalid = true, auth = true, api = true, http = true, tls = true, timeout = true,
                network = true, protocol = true, io = true }

--- The JSON form of a failure (under --json, on standard output beside the line on standard
-- error): { error = { kind, message, status } }. kind is the library's, or "usage" (exit 2),
-- "interrupted" (a signal), "internal"; status the HTTP status when there was a reply.
local function json_error(e)
  local text = tostring(e.message):gsub("^cptokens: ", "")
  local kind, rest = text:match("^(%a+): (.*)$")
  if not (kind and KINDS[kind]) then
    rest = text
    if text:match("^internal error: ") then kind, rest = "internal", text:sub(17)
    elseif text:match("^interrupted by ") then kind = "interrupted"
    elseif e.code == EXIT_USAGE then kind = "usage"
    else kind = "error" end
  end
  local J = require "cptokens.cli.json"
  return J.obj("error", J.obj("kind", kind, "message", rest, "status", e.status))
end

---------------------------------------------------------------------------
-- What reaches the user: secrets scrubbed, the terminal protected
---------------------------------------------------------------------------

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local q = {}
    for k = 1, 4 do
      local v = math_floor(n / 64 ^ (4 - k)) % 64
      q[k] = B64:sub(v + 1, v + 1)
    end
    if not b then q[3] = "=" end
    if not c then q[4] = "=" end
    out[#out + 1] = table_concat(q)
  end
  return table_concat(out)
end

local MIN_SECRET = 4   -- shorter values cannot be told apart from ordinary text
local WORD_SECRET = 12 -- shorter ones (a 6-digit code) are replaced only as whole words

-- s with every occurrence of form replaced by "<secret>". With word, not where the form
-- runs on into a letter or digit on either side (424242 inside an epoch stays).
local function replace_form(s, form, word)
  local from, parts = 1, nil
  local head, tail = word and form:sub(1, 1):match("%w"), word and form:sub(-1):match("%w")
  while true do
    local a, b = s:find(form, from, true)
    if not a then break end
    if (head and s:sub(a - 1, a - 1):match("%w")) or (tail and s:sub(b + 1, b + 1):match("%w")) then
      from = a + 1
    else
      parts = parts or {}
      parts[#parts + 1] = s:sub(1, a - 1)
      s, from = s:sub(b + 1), 1
    end
  end
  if not parts then return s end
  parts[#parts + 1] = s
  return table_concat(parts, "<secret>")
end

--- The one scrubber of everything the tool prints. secrets and users are lists the caller
-- keeps appending to (the credential, a token file's text, tokens created during the run;
-- the account and WHM user names). Each secret is replaced raw, as USER:SECRET (the header
-- forms contain it) and in base64, alone and as USER:SECRET (HTTP Basic).
local function new_scrubber(secrets, users)
  local forms, nsecrets, nusers = {}, -1, -1
  local function build()
    local seen, list = {}, {}
    local function add(f) if not seen[f] then seen[f] = true list[#list + 1] = f end end
    for _, sec in ipairs(secrets) do
      if type(sec) == "string" and #sec >= MIN_SECRET then
        add(sec)
        add(base64(sec))
        for _, u in ipairs(users) do add(base64(u .. ":" .. sec)) end
      end
    end
    table_sort(list, function(x, y) return #x > #y end) -- the longest forms first
    forms, nsecrets, nusers = list, #secrets, #users
  end
  return function(s)
    s = tostring(s)
    if #secrets ~= nsecrets or #users ~= nusers then build() end
    for _, f in ipairs(forms) do s = replace_form(s, f, #f < WORD_SECRET) end
    return s
  end
end


-- Whether the bytes of s from i on start a UTF-8 character that is printable (not a C1
-- control): its length, or nil.
local function utf8_printable(s, i)
  local c = s:byte(i)
  local n, lo, hi
  if c >= 0xC2 and c <= 0xDF then n, lo, hi = 1, 0x80, 0xBF
  elseif c == 0xE0 then n, lo, hi = 2, 0xA0, 0xBF
  elseif c == 0xED then n, lo, hi = 2, 0x80, 0x9F
  elseif c >= 0xE1 and c <= 0xEF then n, lo, hi = 2, 0x80, 0xBF
  elseif c == 0xF0 then n, lo, hi = 3, 0x90, 0xBF
  elseif c == 0xF4 then n, lo, hi = 3, 0x80, 0x8F
  elseif c >= 0xF1 and c <= 0xF3 then n, lo, hi = 3, 0x80, 0xBF
  else return nil end
  for k = 1, n do
    local d = s:byte(i + k)
    if not d or d < (k == 1 and lo or 0x80) or d > (k == 1 and hi or 0xBF) then return nil end
  end
  if c == 0xC2 and s:byte(i + 1) < 0xA0 then return nil end -- U+0080..U+009F
  return n + 1
end

--- Text for a terminal: every byte that could act on it (C0 controls but the newlines the
-- tool writes itself when keep_lf, DEL, C1 controls raw or UTF-8, bytes that are not UTF-8)
-- shown as \xNN. Printable UTF-8 (cPanel's quotes) stays.
local function terminal_text(s, keep_lf)
  if not s:find(keep_lf and "[^\n -~]" or "[^ -~]") then return s end
  local out, i, n = {}, 1, #s
  while i <= n do
    local c = s:byte(i)
    local len = ((c >= 0x20 and c < 0x7f) or (keep_lf and c == 10)) and 1
      or (c >= 0xC2 and utf8_printable(s, i))
    if len then
      out[#out + 1] = s:sub(i, i + len - 1)
      i = i + len
    else
      out[#out + 1] = string_format("\\x%02x", c)
      i = i + 1
    end
  end
  return table_concat(out)
end

--- A name (of a token, from the server or argv) in human output: one unambiguous word,
-- everything but printable ASCII (space and backslash included) shown as \xNN, so that it
-- can neither act on the terminal nor fake a row or a column.
local function shown(name)
  return (tostring(name):gsub("[^%w%-_]", function(c)
    local b = c:byte()
    if b > 0x20 and b < 0x7f and c ~= "\\" then return c end
    return string_format("\\x%02x", b)
  end))
end

--- An argument as a usage error may show it: what follows "=" may be a secret
-- (`cptokens -- --token=X`), so it is never shown.
local function shown_arg(a)
  a = tostring(a)
  local head = a:match("^([^=]*)=")
  if head then a = head .. "=..." end
  return terminal_text(one_line(a))
end

--- One line on standard error, scrubbed and made safe for a terminal. Never raises.
local function say(ctx, line)
  pcall(ctx.stderr.write, ctx.stderr, terminal_text(ctx.scrub(one_line(line))) .. "\n")
end

---------------------------------------------------------------------------
-- Output
---------------------------------------------------------------------------

local function write_out(ctx, s)
  local ok, err = ctx.stdout:write(s)
  if not ok then fail("io: cannot write to standard output: " .. one_line(err)) end
end

--- Human text on standard output: scrubbed, safe for a terminal (names are also shown()).
-- With --quiet nothing is written, unless always (help and the version, asked for).
local function out(ctx, s, always)
  if ctx.opts and ctx.opts.quiet and not always then return end
  write_out(ctx, terminal_text(ctx.scrub(s), true))
end

--- One JSON document on standard output; every string in it scrubbed but verbatim() ones.
local function out_json(ctx, v)
  ctx.json_written = true
  write_out(ctx, require("cptokens.cli.json").encode(v, ctx.scrub) .. "\n")
end

local function flush(ctx)
  local ok, err = ctx.stdout:flush()
  if not ok then return nil, err or "flush failed" end
  return true
end

local function iso(epoch)
  if epoch == nil then return nil end
  return (time().iso8601(epoch)) or tostring(epoch)
end

-- Aligned columns, two spaces apart; the last column is not padded.
local function table_text(header, rows)
  local widths = {}
  for c, h in ipairs(header) do widths[c] = #h end
  for _, r in ipairs(rows) do
    for c, v in ipairs(r) do if #v > widths[c] then widths[c] = #v end end
  end
  local lines = {}
  local function line(r)
    local cells = {}
    for c, v in ipairs(r) do
      cells[c] = c < #r and (v .. string_rep(" ", widths[c] - #v)) or v
    end
    lines[#lines + 1] = table_concat(cells, "  ")
  end
  line(header)
  for _, r in ipairs(rows) do line(r) end
  return table_concat(lines, "\n") .. "\n"
end

-- "expires 2026-12-31T23:59:59Z" or "never expires"
local function expiry_text(tok)
  if tok.expires_at == nil then return "never expires" end
  return "expires " .. iso(tok.expires_at)
end

-- "expires in 3d", "expired 2h ago", "never expires"
local function state_text(tok, now)
  local rem = time().remaining(tok, now)
  if rem == nil then return "never expires" end
  if rem < 0 then return (time().format_remaining(rem)) end
  return "expires in " .. time().format_remaining(rem)
end

local function names_of(list)
  local names = {}
  for i, t in ipairs(list or {}) do
    names[i] = type(t) == "table" and t.name or tostring(t)
  end
  return names
end


-- The signal received since signals were deferred: 128 + its number and its name, or nil.
local function interrupted()
  local signo, name = require("cptokens.core").pending_signal()
  if signo then return 128 + signo, name end
  return nil
end

M.Exit, M.exit_with, M.usage, M.fail, M.one_line, M.error_line = Exit, exit_with, usage, fail, one_line, error_line
M.new_scrubber, M.terminal_text, M.shown, M.shown_arg, M.say = new_scrubber, terminal_text, shown, shown_arg, say
M.write_out, M.out, M.out_json, M.flush, M.iso = write_out, out, out_json, flush, iso
M.table_text, M.expiry_text, M.state_text, M.names_of = table_text, expiry_text, state_text, names_of
M.interrupted, M.json_error = interrupted, json_error

return M
