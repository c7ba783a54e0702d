--- cptokens.ngx: the OpenResty transport. It moves the bytes of a request built
-- by the C core (client:_prepare) over an nginx cosocket and hands the reply
-- (status, content type, body) back to the C core's decoder, core.response:
-- it parses HTTP framing only, never JSON or cPanel's envelope.
--
-- Used by cptokens (init.lua) inside nginx where cosockets work; it loads
-- anywhere, but only does I/O inside nginx. Choices (see README, "OpenResty"):
--   * TLS: SNI and certificate verification against nginx's
--     lua_ssl_trusted_certificate, host names checked; `insecure = true` is
--     the only way off. nginx matches certificates against host names only,
--     so a verified https://<IP address> and cafile/capath cannot be honoured
--     here (unsupported() says why; init.lua then uses libcurl or refuses).
--   * Names resolve through /etc/hosts first (as getaddrinfo does for
--     libcurl), then nginx's `resolver`.
--   * Keep-alive pool per worker, keyed by host, port and verification mode.
--   * timeout is a deadline over the whole request; connect_timeout bounds
--     the connection; max_response bounds the body.
local core = require "cptokens.core"
local util = require "cptokens.util"

local concat, ipairs, pairs, pcall, setmetatable, tonumber, tostring, type =
  table.concat, ipairs, pairs, pcall, setmetatable, tonumber, tostring, type
local byte, find, format, gsub, lower, match, sub = string.byte, string.find, string.format,
  string.gsub, string.lower, string.match, string.sub
local ceil = math.ceil
local io_open = io.open
local clean, one_line = util.clean, util.one_line

local ngx = rawget(_G, "ngx")

local _M = {}

-- Phases where ngx.socket.tcp may be used (lua-nginx-module: "yieldable" contexts).
local COSOCKET_PHASES = {
  rewrite = true, server_rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}

local CHUNK = 65536         -- bytes asked of receiveany() at a time
local MAX_HEAD = 65536      -- bytes of status line and headers accepted
local HEADER_ORDER = { "Authorization", "X-CPANEL-OTP", "Accept", "User-Agent", "Content-Type" }

--- true when cosockets can be used now; else false and why.
function _M.available()
  if not ngx or type(ngx.socket) ~= "table" or type(ngx.get_phase) ~= "function" then
    return false, "it needs OpenResty (nginx with the Lua module); ngx.socket.tcp is not available"
  end
  local phase = ngx.get_phase()
  if COSOCKET_PHASES[phase] then return true end
  return false, "nginx does not allow cosockets in the " .. tostring(phase) .. " phase"
    .. " (only in rewrite, access, content, ngx.timer and ssl_* callbacks)"
end

---------------------------------------------------------------- targets

-- "scheme://authority/..." -> scheme, host (lowercase, IPv6 in brackets), authority
local function split_url(url)
  local scheme, authority = match(url, "^(%a+)://([^/]*)")
  if not scheme then return nil end
  local host = match(authority, "^%[[^%]]*%]") or match(authority, "^[^:]*")
  return lower(scheme), lower(host), authority
end

local function ip_literal(host)
  return byte(host, 1) == 91 --[[ "[" ]] or match(host, "^%d+%.%d+%.%d+%.%d+$") ~= nil
end

--- Why this client's TLS settings cannot be honoured by cosockets, or nil.
-- info: client:info().
function _M.unsupported(info)
  if info.cafile or info.capath then
    return "the ngx transport verifies certificates with nginx's lua_ssl_trusted_certificate and"
      .. " cannot honour cafile/capath: drop them (and trust the CA in nginx.conf), or use"
      .. " transport = 'curl'"
  end
  local scheme, host = split_url(info.url or "")
  if scheme == "https" and not info.insecure and ip_literal(host) then
    return "nginx checks certificates against host names only, so the ngx transport cannot verify"
      .. " https://" .. host .. ": use a host name in url, or transport = 'curl'"
  end
  return nil
end

-- /etc/hosts: name -> address to connect to (an IPv4 address when there is one).
local hosts_file = "/etc/hosts"
local hosts

local function load_hosts()
  local t, v6 = {}, {}
  local f = io_open(hosts_file, "r")
  if f then
    for line in f:lines() do
      local addr, names = match(gsub(line, "#.*", ""), "^%s*(%S+)%s+(.-)%s*$")
      if addr then
        local is4 = match(addr, "^%d+%.%d+%.%d+%.%d+$") ~= nil
        local is6 = not is4 and match(addr, "^[%x:.]+$") ~= nil and find(addr, ":", 1, true) ~= nil
        local into = is4 and t or is6 and v6
        for name in names:gmatch("%S+") do
          name = lower(name)
          if into and not into[name] then into[name] = is4 and addr or "[" .. addr .. "]" end
        end
      end
    end
    f:close()
  end
  for name, addr in pairs(v6) do
    if not t[name] then t[name] = addr end
  end
  return t
end

--- The name -> address table (read once per process; internal, tests may add names).
function _M._hosts()
  if not hosts then hosts = load_hosts() end
  return hosts
end

---------------------------------------------------------------- per-client settings

local settings = setmetatable({}, { __mode = "k" }) -- client -> what requests need

local function settings_of(client)
  local s = settings[client]
  if s then return s end
  local info = client:info() -- raises on a closed client, like every method
  s = {
    timeout = info.timeout, connect_timeout = info.connect_timeout,
    max_response = info.max_response, insecure = info.insecure == true,
    unsupported = _M.unsupported(info),
  }
  settings[client] = s
  return s
end

--- Why this client cannot use the ngx transport, or nil (cached per client).
function _M.unsupported_for(client)
  return settings_of(client).unsupported
end

---------------------------------------------------------------- reading replies

local function now()
  return ngx.now()
end

-- A reader over a cosocket with a deadline on every wait. Errors are
-- (nil, kind, message); `got` counts the bytes of this reply received.
local Reader = {}
Reader.__index = Reader

local function new_reader(sock, deadline)
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

---------------------------------------------------------------- one request

local function fail(kind, op, fmt, ...)
  return nil, core.error(kind, op .. ": " .. clean(one_line(format(fmt, ...))))
end

-- A cosocket error while waiting: the error kind, in the C transport's vocabulary.
local function socket_kind(err)
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

local function request_bytes(rq, authority)
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
local function read_head(r, op, elapsed)
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

-- Reads the body according to the framing. Returns body, reusable.
local function read_body(r, op, status, headers, minor, max, elapsed)
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

  local te = headers["transfer-encoding"]
  if te then
    te = lower(te)
    if not match(te, "chunked%s*$") then
      return fail("protocol", op, "the reply has an unsupported Transfer-Encoding (%s)", sub(te, 1, 40))
    end
    if headers["content-length"] then reusable = false end
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
        break
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
  elseif headers["content-length"] then
    local digits = match(headers["content-length"], "^%d+$")
    if not digits or #digits > 15 then return fail("protocol", op, "the reply has an invalid Content-Length") end
    local n = tonumber(digits)
    if n > max then return too_big(op, max) end
    local ok, err = r:bytes(n, out)
    if not ok then
      local got = 0
      for _, piece in ipairs(out) do got = got + #piece end
      return wait_error(err, format("%d of %d bytes", got, n))
    end
  else
    local total, err = r:rest(out, max)
    if not total then return wait_error(err, "the connection failed") end
    if total > max then return too_big(op, max) end
    reusable = false
  end
  if r.pos <= #r.buf then reusable = false end -- bytes beyond the reply: do not reuse
  return concat(out), reusable
end

local function connect(sock, rq, s, host, verify, deadline, op, elapsed)
  local pool = format("cptokens:%s:%d:%s", host, rq.port, rq.tls and (verify and "verify" or "insecure") or "plain")
  local addr = ip_literal(host) and host or _M._hosts()[host] or host
  local left = deadline - now()
  if left <= 0 then return fail("timeout", op, "timed out after %s s before connecting", elapsed()) end
  local ct = s.connect_timeout < left and s.connect_timeout or left
  sock:settimeout(ceil(ct * 1000))
  local ok, err = sock:connect(addr, rq.port, { pool = pool })
  if not ok then
    if err == "timeout" then
      return fail("timeout", op, "timed out after %s s connecting to %s:%d", elapsed(), host, rq.port)
    end
    return fail("network", op, "could not connect to %s:%d: %s", host, rq.port, err)
  end
  if rq.tls and sock:getreusedtimes() == 0 then
    left = deadline - now()
    if left <= 0 then
      sock:close()
      return fail("timeout", op, "timed out after %s s before the TLS handshake", elapsed())
    end
    sock:settimeout(ceil(left * 1000))
    -- reused_session must not be false: lua-resty-core 0.1.25 then reports success
    -- without fetching the verification result of a handshake that completed at
    -- once. With nil that path may raise instead of returning an error: pcall.
    local name = not ip_literal(host) and host or nil
    local pok, sess, herr = pcall(sock.sslhandshake, sock, nil, name, verify)
    if not pok or not sess then
      sock:close()
      if pok and herr == "timeout" then
        return fail("timeout", op, "timed out after %s s in the TLS handshake with %s", elapsed(), host)
      end
      return fail("tls", op, "TLS handshake with %s failed: %s", host,
        pok and tostring(herr) or "certificate verification failed (see nginx's error log)")
    end
  end
  return true
end

--- Sends rq (from client:_prepare) for client over a cosocket.
-- Returns status, content_type, body; or nil, err (a cptokens error).
function _M.request(client, rq)
  local s = settings_of(client)
  local op = rq.op or "request"
  -- _prepare gives the host and the authority (host[:port] as in the URL, for Host:)
  local host, authority = rq.host and lower(rq.host), rq.authority
  if not host or host == "" or not authority then return fail("invalid", op, "the request has no host") end
  ngx.update_time()
  local start = now()
  local deadline = start + s.timeout
  local function elapsed() return format("%.3g", now() - start) end
  local verify = not s.insecure
  local payload = request_bytes(rq, authority)

  for attempt = 1, 2 do
    local sock, err = ngx.socket.tcp()
    if not sock then return fail("network", op, "no socket: %s", err) end
    local ok, cerr = connect(sock, rq, s, host, verify, deadline, op, elapsed)
    if not ok then return nil, cerr end
    local reused = sock:getreusedtimes() > 0
    local left = deadline - now()
    if left <= 0 then
      sock:close()
      return fail("timeout", op, "timed out after %s s before sending", elapsed())
    end
    sock:settimeout(ceil(left * 1000))
    local sent
    sent, err = sock:send(payload)
    local r = new_reader(sock, deadline)
    local status, headers, minor
    if sent then
      status, headers, minor = read_head(r, op, elapsed)
    else
      status, headers = nil, err
    end
    if status then
      local body, reusable = read_body(r, op, status, headers, minor, s.max_response, elapsed)
      if not body then
        sock:close()
        return nil, reusable
      end
      if reusable then
        sock:setkeepalive()
      else
        sock:close()
      end
      return status, headers["content-type"], body
    end
    sock:close()
    if type(headers) ~= "string" then return nil, headers end -- an error object
    -- Nothing came back (send failed, or the connection closed before a byte).
    -- A pooled connection the server had dropped: a GET (list) is retried once
    -- on a fresh one; create, rename and revoke (POST) never are, as the server
    -- may have carried them out (the libcurl transport does the same).
    if headers == "timeout" then
      return fail("timeout", op, "timed out after %s s %s", elapsed(), sent and "waiting for the reply" or "sending")
    end
    if not (reused and attempt == 1 and rq.method == "GET") then
      return fail(socket_kind(headers), op, "%s (%s)",
        sent and "the server closed the connection without a reply" or "sending the request failed", headers)
    end
  end
end

--- Runs op (a name of core.ops) with the method's arguments for client over a
-- cosocket: what the client method returns (values, or nil, err).
function _M.perform(client, op, ...)
  local rq, err = client:_prepare(op, ...)
  if not rq then return nil, err end
  local status, ctype, body = _M.request(client, rq)
  if not status then
    rq.headers = nil -- the credential: drop the reference as soon as possible
    return nil, ctype
  end
  -- core.response scrubs the credential in rq.headers from any error it returns
  local v, e = core.response(rq, status, ctype, body)
  rq.headers = nil
  return v, e
end

return _M
