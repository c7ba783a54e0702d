--[[
The fault matrix, once: every way the server or the network can misbehave and the error
kind it must end in. spec/45-faults_spec.lua runs it through the libcurl transport,
spec/80-openresty_spec.lua through both transports, and README's "Fault matrix" lists
the same rows (checked by spec/45).

One row per case. name: README's row; kind/status/errors: the error; fault: the fake's
fault mode and params, as { mode, params } or a function(cred) returning them (the body
differs for WHM); target: where to connect instead of the credential's own server, one
of "untrusted", "wronghost", "expired", "refused", "unresolvable" (each spec knows its
URLs); opts: client options; ops: which operations to run (default all); min: the least
time the failure may take (timeouts); says: a plain substring the message must contain (the
hint that tells the user what to do); creds: the credentials the case applies to (default
all: "password", "token", "whm_token" for the Tokens operations, and "whm" for the WHM API 1
operations of cptokens.whm; M.applies).
]]
local M = {}

M.WHM_FAILED = "The system failed to read the API tokens: the database is locked"

M.API_FAILED = "The request failed. (Error ID: 4kd9qz) Ask your hosting provider to research"
  .. " this error in cPanel & WHM\226\128\153s main error log."

local UAPI_CREDS = { "password", "token", "whm_token" }

local function envelope_for(cred, uapi)
  if cred == "whm" then return '{"data":{}}' end -- WHM API 1 without its metadata
  if cred == "whm_token" then
    return '{"apiversion":3,"func":"list","module":"Tokens","result":' .. uapi .. "}"
  end
  return uapi
end

M.cases = {
  { name = "HTTP 500", kind = "http", status = 500, fault = { "status", { status = 500 } } },
  { name = "HTTP 503", kind = "http", status = 503, says = "upgrading", fault = { "status", { status = 503 } } },
  { name = "401 with an HTML body", kind = "auth", status = 401, fault = { "status", { status = 401 } } },
  { name = "403 with an HTML body", kind = "auth", status = 403, fault = { "status", { status = 403 } } },
  { name = "401 with a JSON body", kind = "auth", status = 401, errors = { "Access denied" },
    fault = { "json_status", { status = 401 } } },
  { name = "403 with a JSON body", kind = "auth", status = 403, errors = { "Access denied" },
    fault = { "json_status", { status = 403 } } },
  { name = "a login page (HTML) with status 200", kind = "auth", status = 200, fault = { "login" } },
  { name = "`status: 0` with errors", kind = "api", status = 200, errors = { M.API_FAILED }, creds = UAPI_CREDS,
    fault = function(cred)
      return "notenvelope", { body = envelope_for(cred, '{"data":null,"errors":["' .. M.API_FAILED
        .. '"],"messages":null,"warnings":null,"metadata":{},"status":0}') }
    end },
  { name = "WHM API 1 `metadata.result: 0` with a reason", kind = "api", status = 200,
    errors = { M.WHM_FAILED }, creds = { "whm" },
    fault = { "notenvelope", { body = '{"data":{},"metadata":{"command":"api_token_list","reason":"'
      .. M.WHM_FAILED .. '","result":0,"version":1}}' } } },
  { name = "WHM's 403 `cpanelresult` Access denied", kind = "auth", status = 403,
    says = "Access denied", fault = { "whm_denied" } },
  { name = "403 Token authentication allows access to UAPI or API 2 calls only", kind = "auth",
    status = 403, says = "API paths", fault = { "token_path" } },
  { name = "403 Security Questions (an unrecognized computer or network)", kind = "auth",
    status = 403, says = "Security Questions", fault = { "secq" } },
  { name = "a two-factor page (`tfa_login_form`) with status 200", kind = "auth", status = 200,
    says = "otp", fault = { "tfa" } },
  { name = "a server that echoes the credential in a `status: 0` error", kind = "api", status = 200,
    says = "<redacted>", fault = function(cred)
      return "echo", { status = 200, shape = cred == "whm" and "whm1" or nil }
    end },
  { name = "a server that echoes the credential in a 401 JSON body", kind = "auth", status = 401,
    fault = { "echo", { status = 401 } } },
  { name = "a server that echoes the credential in a 403 WHM-shaped body", kind = "auth", status = 403,
    fault = { "echo", { status = 403, shape = "whm" } } },
  { name = "malformed JSON", kind = "protocol", status = 200, fault = { "malformed" } },
  { name = "JSON that is an array", kind = "protocol", status = 200,
    fault = { "notenvelope", { body = "[1,2]" } } },
  { name = "JSON that is a string", kind = "protocol", status = 200,
    fault = { "notenvelope", { body = '"hello"' } } },
  { name = "a JSON object without `status`", kind = "protocol", status = 200,
    fault = function(cred)
      return "notenvelope", { body = envelope_for(cred, '{"data":[],"errors":null}') }
    end },
  { name = "list data that is a JSON object, not an array", kind = "protocol", status = 200, ops = { "list" },
    creds = UAPI_CREDS,
    fault = function(cred)
      return "notenvelope", { body = envelope_for(cred, '{"data":{"0":{"name":"a","create_time":1,'
        .. '"expires_at":null,"has_full_access":1}},"errors":null,"messages":null,"warnings":null,'
        .. '"metadata":{},"status":1}') }
    end },
  { name = "a body cut short (Content-Length longer than sent)", kind = "network",
    fault = { "truncated" } },
  { name = "a connection reset", kind = "network", fault = { "reset" } },
  { name = "a server that accepts and never answers", kind = "timeout", ops = { "create" },
    fault = { "hang", { seconds = 30 } }, opts = { timeout = 1 }, min = 0.9 },
  { name = "a server that drips a byte a second", kind = "timeout", ops = { "list" },
    fault = { "drip", { seconds = 30 } }, opts = { timeout = 1.5 }, min = 1.4 },
  { name = "a reply larger than `max_response`", kind = "protocol",
    fault = { "bigbody", { bytes = 300000 } }, opts = { max_response = 65536 } },
  { name = "a redirect to another host", kind = "http", status = 302, fault = { "redirect" } },
  { name = "TLS: a certificate from an untrusted CA", kind = "tls", target = "untrusted" },
  { name = "TLS: a certificate for another host name", kind = "tls", target = "wronghost" },
  { name = "TLS: an expired certificate", kind = "tls", target = "expired" },
  { name = "connection refused", kind = "network", target = "refused" },
  { name = "a host name that does not resolve", kind = "network", target = "unresolvable" },
}

--- Whether case applies to the credential kind cred.
function M.applies(case, cred)
  if not case.creds then return true end
  for _, c in ipairs(case.creds) do
    if c == cred then return true end
  end
  return false
end

--- The credentials of the Tokens operations (cptokens.new) that case applies to.
function M.uapi_creds(case)
  local out = {}
  for _, c in ipairs(UAPI_CREDS) do
    if M.applies(case, c) then out[#out + 1] = c end
  end
  return out
end

--- The fault mode and params of case for a credential kind; nil when the case has no fault.
function M.fault(case, cred)
  if type(case.fault) == "function" then return case.fault(cred) end
  if case.fault then return case.fault[1], case.fault[2] end
end

M.UNRESOLVABLE_URL = "https://no-such-host.invalid:2083"

return M
