--- cptokens.ngx_http: HTTP/1.1 framing over an nginx cosocket, for cptokens.ngx
-- (internal). It writes a request's bytes (request_bytes) and reads a reply's
-- status line, headers (read_head) and body by its framing (read_body: chunked,
-- Content-Length, or up to the close), with a deadline on every wait and the
-- client's max_response on the body. Never JSON or cPanel's envelope: that is
-- the C core's (core.response).
--
-- Errors are (nil, err) with err a cptokens error of the C transport's kinds
-- ("timeout", "network", "protocol"), made by fail(kind, op, fmt, ...).
local core = require "cptokens.core"
local util = require "cptokens.util"

local concat, ipairs, pairs, setmetatable, tonumber =
  table.concat, ipairs, pairs, setmetatable, tonumber
local byte, find, format, lower, match, sub = string.byte, string.find, string.format,
  string.lower, string.match, string.sub
local ceil = math.ceil
local clean, one_line = util.clean, util.one_line

local ngx = rawget(_G, "ngx")

local _M = {}

local CHUNK = 65536         -- bytes asked of receiveany() at a time
local MAX_HEAD = 65536      -- bytes of status line and headers accepted
local HEADER_ORDER = { "Authorization", "X-CPANEL-OTP", "Accept", "User-Agent", "Content-Type" }
local function now()
  return ngx.now()
end
_M.now = now

-- A reader over a cosocket with a deadline on every wait. Errors are
-- (nil, kind, message); `got` counts the bytes of this reply received.
local Reader = {}
Reader.__index = Reader

function _M.new_reader(sock, deadline)
  return setmetatable({ sock = sock, buf = "", pos = 1, deadline = deadline, got = 0 }, Reader)
end

-- Waits for more bytes; returns the data, or nil, cosocket error ("timeout", "closed", ...).
function Reader:more()
  local left = self.deadline - now()
  if left <= 0 then return nil, "timeout" end
  self.sock:settimeout(ceil(left * 1000))
  local data, err = self.sock:receiveany(CHUNK)
  if not data then return nil, err end
  self.got = self.got + #data
  return data
end

-- Buffers more bytes into self.buf.
function Reader:fill()
  local data, err = self:more()
  if not data then return nil, err end
  if self.pos > #self.buf then
    self.buf, self.pos = data, 1
  else
    self.buf = sub(self.buf, self.pos) .. data
    self.pos = 1
  end
  return true
end

-- One line without its CR LF; nil, err.
function Reader:line(limit)
  while true do
    local i = find(self.buf, "\n", self.pos, true)
    if i then
      local line = sub(self.buf, self.pos, (byte(self.buf, i - 1) == 13 and i > self.pos) and i - 2 or i - 1)
      self.pos = i + 1
      return line
    end
    if #self.buf - self.pos + 1 > limit then return nil, "toolong" end
    local ok, err = self:fill()
    if not ok then return nil, err end
  end
end

-- Exactly n bytes appended to out; nil, err.
function Reader:bytes(n, out)
  local have = #self.buf - self.pos + 1
  if have > 0 then
    local take = have < n and have or n
    out[#out + 1] = sub(self.buf, self.pos, self.pos + take - 1)
    self.pos = self.pos + take
    n = n - take
  end
  while n > 0 do
    local data, err = self:more()
    if not data then return nil, err end
    if #data > n then
      out[#out + 1] = sub(data, 1, n)
      self.buf, self.pos = sub(data, n + 1), 1
      n = 0
    else
      out[#out + 1] = data
      n = n - #data
    end
  end
  return true
end

-- Everything until the server closes, appended to out (at most max bytes).
function Reader:rest(out, max)
  local total = 0
  if self.pos <= #self.buf then
    out[1] = sub(self.buf, self.pos)
    total = #out[1]
    self.buf, self.pos = "", 1
  end
  while total <= max do
    local data, err = self:more()
    if not data then
      if err == "closed" then return total end
      return nil, err
    end
    out[#out + 1] = data
    total = total + #data
  end
  return total
end


local function fail(kind, op, fmt, ...)
  return nil, core.error(kind, op .. ": " .. clean(one_line(format(fmt, ...))))
end
_M.fail = fail

-- A cosocket error while waiting: the error kind, in the C transport's vocabulary.
function _M.socket_kind(err)
  if err == "timeout" then return "timeout" end
  return "network"
end

-- A malformed chunked body: "network", as libcurl reports it (CURLE_RECV_ERROR).
local function broken_chunks(op)
  return fail("network", op, "the reply's chunked encoding is broken")
end

local function too_big(op, max)
  return fail("protocol", op, "the reply is larger than max_response (%d bytes); cut off", max)
end

function _M.request_bytes(rq, authority)
  local h, t = rq.headers or {}, { rq.method, " ", rq.path, " HTTP/1.1\r\nHost: ", authority, "\r\n" }
  local seen = {}
  for _, k in ipairs(HEADER_ORDER) do
    if h[k] then
      t[#t + 1] = k .. ": " .. h[k] .. "\r\n"
      seen[k] = true
    end
  end
  for k, v in pairs(h) do
    if not seen[k] then t[#t + 1] = k .. ": " .. v .. "\r\n" end
  end
  local body = rq.body or ""
  if rq.method ~= "GET" or #body > 0 then t[#t + 1] = "Content-Length: " .. #body .. "\r\n" end
  t[#t + 1] = "Connection: keep-alive\r\n\r\n"
  t[#t + 1] = body
  return t
end

-- Reads one reply's head (skipping 1xx). Returns status, headers (lowercase
-- names; "set-cookie"-like repeats joined with ", "), http minor version.
function _M.read_head(r, op, elapsed)
  while true do
    local line, err = r:line(MAX_HEAD)
    if not line then
      if err == "toolong" then return fail("protocol", op, "the reply's status line is too long") end
      if err == "timeout" then return fail("timeout", op, "timed out after %s s waiting for the reply", elapsed()) end
      if r.got == 0 then
        return nil, err, "network" -- nothing came back: the caller may retry on a fresh connection
      end
      return fail("network", op, "the connection was closed while reading the reply (%s)", err)
    end
    local major, minor, status = match(line, "^HTTP/(%d)%.(%d) (%d%d%d)")
    if not major or major ~= "1" then
      return fail("protocol", op, "the reply is not HTTP/1.x (status line %q)", sub(line, 1, 40))
    end
    status = tonumber(status)
    local headers, size = {}, #line
    while true do
      line, err = r:line(MAX_HEAD)
      if not line then
        if err == "toolong" then return fail("protocol", op, "the reply's headers are too long") end
        if err == "timeout" then
          return fail("timeout", op, "timed out after %s s reading the reply's headers", elapsed())
        end
        return fail("network", op, "the connection was closed while reading the reply's headers (%s)", err)
      end
      if line == "" then break end
      size = size + #line
      if size > MAX_HEAD then return fail("protocol", op, "the reply's headers are too long") end
      local name, value = match(line, "^([^%s:]+):%s*(.-)%s*$")
      if not name then return fail("protocol", op, "the reply has a malformed header line") end
      name = lower(name)
      local old = headers[name]
      if old and name == "content-length" and old ~= value then
        return fail("protocol", op, "the reply has conflicting Content-Length headers")
      end
      headers[name] = (old and name ~= "content-length" and name ~= "content-type") and (old .. ", " .. value) or value
    end
    if status >= 200 or status == 101 then
      if status == 101 then return fail("protocol", op, "the server switched protocols (HTTP 101)") end
      return status, headers, tonumber(minor)
    end
    -- 1xx (100 Continue, 103 Early Hints): the real reply follows
  end
end

-- The chunks of a chunked body, appended to out (at most max bytes): true, or nil, err.
local function read_chunked(r, op, out, max, wait_error)
  local total = 0
  while true do
    local line, err = r:line(4096)
    if not line then
      if err == "toolong" then return broken_chunks(op) end
      return wait_error(err, "a chunk is missing")
    end
    local hex = match(line, "^%s*(%x+)%s*[;]?")
    if not hex or #hex > 12 then return broken_chunks(op) end
    local size = tonumber(hex, 16)
    if size == 0 then
      repeat -- trailers, up to the empty line
        line, err = r:line(MAX_HEAD)
        if not line then
          if err == "toolong" then return broken_chunks(op) end
          return wait_error(err, "the last chunk is incomplete")
        end
      until line == ""
      return true
    end
    if total + size > max then return too_big(op, max) end
    local ok
    ok, err = r:bytes(size, out)
    if not ok then return wait_error(err, "a chunk is incomplete") end
    total = total + size
    line, err = r:line(16)
    if line ~= "" then
      if not line and err ~= "toolong" then return wait_error(err, "a chunk is incomplete") end
      return broken_chunks(op)
    end
  end
end

-- A body of Content-Length bytes, appended to out: true, or nil, err.
local function read_sized(r, op, length, out, max, wait_error)
  local digits = match(length, "^%d+$")
  if not digits or #digits > 15 then return fail("protocol", op, "the reply has an invalid Content-Length") end
  local n = tonumber(digits)
  if n > max then return too_big(op, max) end
  local ok, err = r:bytes(n, out)
  if not ok then
    local got = 0
    for _, piece in ipairs(out) do got = got + #piece end
    return wait_error(err, format("%d of %d bytes", got, n))
  end
  return true
end

-- Reads the body according to the framing. Returns body, reusable; or nil, err.
function _M.read_body(r, op, status, headers, minor, max, elapsed)
  local out = {}
  local function wait_error(err, what)
    if err == "timeout" then return fail("timeout", op, "timed out after %s s reading the reply", elapsed()) end
    return fail("network", op, "the reply was cut short: %s (%s)", what, err)
  end
  local enc = headers["content-encoding"]
  if enc and lower(enc) ~= "identity" then
    return fail("protocol", op, "the reply has an unexpected Content-Encoding (%s)", sub(enc, 1, 40))
  end
  local conn = lower(headers["connection"] or "")
  local reusable = (minor >= 1 and not find(conn, "close", 1, true))
    or (minor == 0 and find(conn, "keep-alive", 1, true) ~= nil)
  if status == 204 or status == 304 then return "", reusable end

  local te, ok, err = headers["transfer-encoding"]
  if te then
    te = lower(te)
    if not match(te, "chunked%s*$") then
      return fail("protocol", op, "the reply has an unsupported Transfer-Encoding (%s)", sub(te, 1, 40))
    end
    if headers["content-length"] then reusable = false end
    ok, err = read_chunked(r, op, out, max, wait_error)
  elseif headers["content-length"] then
    ok, err = read_sized(r, op, headers["content-length"], out, max, wait_error)
  else
    local total
    total, err = r:rest(out, max)
    if not total then return wait_error(err, "the connection failed") end
    if total > max then return too_big(op, max) end
    ok, reusable = true, false
  end
  if not ok then return nil, err end
  if r.pos <= #r.buf then reusable = false end -- bytes beyond the reply: do not reuse
  return concat(out), reusable
end

return _M
