--- cptokens.cli.hints: what to do next, after a failure the tool can explain. main() prints
-- each as "cptokens: hint: ..." on standard error, after the error line. A hint names only
-- what is not secret: the server, ports, the user, where the credential came from (a file name
-- or a variable's name, never its value) and a certificate's public names.
--
--   hints.lines(ctx, err) -> { line... }   (err: the library's error object, or anything)
local tostring, type = tostring, type

local M = {}

-- cPanel's plain-HTTP ports and the TLS ports that serve the same thing.
local TLS_PORT = { ["2082"] = "2083", ["2086"] = "2087", ["2095"] = "2096", ["80"] = "443" }
local SECONDS = 5 -- for reading a certificate that failed verification

local function host_port(url)
  local host, port = tostring(url):match("^%a+://%[?([^/%]]-)%]?:(%d+)")
  if not host then
    host = tostring(url):match("^%a+://([^/:]+)")
    port = "443"
  end
  return host, port
end

local function certificate(url)
  local ok, cert = pcall(require("cptokens.core").peer_certificate, url, SECONDS)
  return ok and cert or nil
end

local function plain_http(url)
  local host, port = host_port(url)
  local tls = TLS_PORT[port]
  if tls then
    return "port " .. port .. " is cPanel's plain-HTTP port; its TLS port is " .. tls
      .. ": --url https://" .. host .. ":" .. tls
  end
  return "the server at port " .. tostring(port) .. " answered in plain HTTP, not TLS: cPanel's TLS "
    .. "ports are 2083 (cPanel) and 2087 (WHM)"
end

local function unknown_issuer(url)
  local cert = certificate(url)
  local by = cert and cert.issuer and (" was issued by '" .. cert.issuer .. "', which") or ""
  return "the server's certificate" .. by .. " is not trusted here (not in the system store). If it"
    .. " is your server's own CA (or cPanel's self-signed certificate), give that CA certificate with"
    .. " --cafile FILE (or CPANEL_CAFILE); --insecure would send the credential to whoever answers"
end

local function name_mismatch(url)
  local cert = certificate(url)
  local host = host_port(url)
  local names = cert and (cert.names or cert.subject)
  return "cPanel chooses its certificate by the host name asked for: the account's own domain"
    .. " (https://DOMAIN:2083) often verifies where the server's IP address or host name ('"
    .. tostring(host) .. "') does not" .. (names and ("; this certificate is for: " .. names) or "")
end

-- Where the credential came from, in words (never its value).
local ENV_OF = { token = "CPANEL_TOKEN", password = "CPANEL_PASSWORD", whm_token = "WHM_TOKEN" }
local WHAT = { token = "the API token", password = "the account password", whm_token = "the WHM API token" }

local function refused(ctx)
  local cred, target = ctx.cred or {}, ctx.target or {}
  local from = cred.file and (cred.file == "-" and "standard input" or ("the file " .. cred.file))
    or ENV_OF[cred.kind]
  if not cred.kind then return nil end
  local who = "user " .. tostring(target.user)
  if target.whm then -- the whm commands: the WHM account acts for itself
    who = "WHM user " .. tostring(target.whm_user)
  elseif cred.kind == "whm_token" then
    who = "WHM user " .. tostring(target.whm_user or "root") .. ", acting for " .. tostring(target.user)
  end
  local tail = cred.kind == "password"
    and ("; cPHulk blocks an address after a few failed logins: check it before trying again")
    or ("; it may be wrong, expired or revoked (cPanel never shows a token again: make a new one)")
  return "the server refused " .. WHAT[cred.kind] .. " from " .. tostring(from) .. " for " .. who
    .. " at " .. tostring(target.url) .. tail
end

function M.lines(ctx, err)
  if type(err) ~= "table" or type(err.message) ~= "string" then return {} end
  local msg, url = err.message, ctx.target and ctx.target.url
  local line
  if err.kind == "tls" and url then
    if msg:find("wrong version number", 1, true) then
      line = plain_http(url)
    elseif msg:find("local issuer", 1, true) or msg:find("self[- ]signed") then
      line = unknown_issuer(url)
    elseif msg:find("subject name", 1, true) and msg:find("host name", 1, true) then
      line = name_mismatch(url)
    elseif msg:find("has expired", 1, true) then
      line = "the server's certificate has expired: it must be renewed on the server (WHM: SSL/TLS,"
        .. " Manage AutoSSL); --insecure would send the credential to whoever answers"
    end
  elseif err.kind == "auth" then
    line = refused(ctx)
  end
  return { line }
end

return M
