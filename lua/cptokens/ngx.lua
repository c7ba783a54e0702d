--- cptokens.ngx: the OpenResty transport. It moves the bytes of a request built
-- by the C core (client:_prepare) over an nginx cosocket and hands the reply
-- (status, content type, body) back to the C core's decoder, core.response:
-- it parses HTTP framing only, never JSON or cPanel's envelope.
--
-- Used by cptokens (init.lua) inside nginx where cosockets work; it loads
-- anywhere, but only does I/O inside nginx. Choices (see docs/openresty.md):
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
-- HTTP framing (writing the request, reading the reply) is cptokens.ngx_http's.
--
-- @module cptokens.ngx
local core = require "cptokens.core"
local http = require "cptokens.ngx_http"

local pairs, pcall, setmetatable, tostring, type = pairs, pcall, setmetatable, tostring, type
local byte, find, format, gsub, lower, match = string.byte, string.find, string.format,
  string.gsub, string.lower, string.match
local ceil = math.ceil
local io_open = io.open
local fail, now = http.fail, http.now

local ngx = rawget(_G, "ngx")

local _M = {}

-- Phases where ngx.socket.tcp may be used (lua-nginx-module: "yieldable" contexts).
local COSOCKET_PHASES = {
  rewrite = true, server_rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}

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

-- --------------------------------------------------------------- targets

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

-- --------------------------------------------------------------- per-client settings

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

-- One exchange on a connected socket: status, content type, body; or nil, err
-- (an error object); or nil, cosocket error string when nothing came back.
local function exchange(sock, s, payload, deadline, op, elapsed)
  local left = deadline - now()
  if left <= 0 then
    sock:close()
    return fail("timeout", op, "timed out after %s s before sending", elapsed())
  end
  sock:settimeout(ceil(left * 1000))
  local sent, err = sock:send(payload)
  local r = http.new_reader(sock, deadline)
  local status, headers, minor
  if sent then
    status, headers, minor = http.read_head(r, op, elapsed)
  else
    status, headers = nil, err
  end
  if status then
    local body, reusable = http.read_body(r, op, status, headers, minor, s.max_response, elapsed)
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
  return nil, headers, sent
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
  local payload = http.request_bytes(rq, authority)

  for attempt = 1, 2 do
    local sock, err = ngx.socket.tcp()
    if not sock then return fail("network", op, "no socket: %s", err) end
    local ok, cerr = connect(sock, rq, s, host, verify, deadline, op, elapsed)
    if not ok then return nil, cerr end
    local reused = sock:getreusedtimes() > 0
    local status, ctype, body = exchange(sock, s, payload, deadline, op, elapsed)
    if status then return status, ctype, body end
    if type(ctype) ~= "string" then return nil, ctype end -- an error object
    -- Nothing came back (send failed, or the connection closed before a byte).
    -- A pooled connection the server had dropped: a GET (list) is retried once
    -- on a fresh one; create, rename and revoke (POST) never are, as the server
    -- may have carried them out (the libcurl transport does the same).
    local sent = body
    if ctype == "timeout" then
      return fail("timeout", op, "timed out after %s s %s", elapsed(), sent and "waiting for the reply" or "sending")
    end
    if not (reused and attempt == 1 and rq.method == "GET") then
      return fail(http.socket_kind(ctype), op, "%s (%s)",
        sent and "the server closed the connection without a reply" or "sending the request failed", ctype)
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
