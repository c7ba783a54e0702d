--- cptokens.fleet's rotate: client:rotate for every account of the fleet, one account
-- after another (each rotation keeps all of client:rotate's guarantees: lock, journal,
-- store before revoke), each into its own token file <store_dir>/<label>.<user>.token.
--
-- Depends on cptokens.fleet_report, cptokens.rotate_plan.
--
-- @module cptokens.fleet_rotate
local R = require "cptokens.fleet_report"

local ipairs, pairs, tostring, type = ipairs, pairs, tostring, type

local M = {}

local OPTIONS = { prefix = true, store_dir = true, expires_in = true, expires_at = true, keep = true,
                  verify = true, lock_timeout = true, now = true, on_token = true }
local PASSED = { "prefix", "expires_in", "expires_at", "keep", "verify", "lock_timeout" }

--- The token file of an account: labels never hold "/", user names never hold ".".
function M.store_path(dir, label, user) return dir .. "/" .. label .. "." .. user .. ".token" end

--- rotate's options, checked (misuse(msg, level) raises).
function M.check(opts, misuse)
  if type(opts) ~= "table" then misuse("rotate: expected a table of options", 4) end
  for k in pairs(opts) do
    if not OPTIONS[k] then misuse("rotate: unknown option '" .. tostring(k) .. "'", 4) end
  end
  if type(opts.prefix) ~= "string" then misuse("rotate: prefix (a string) is required", 4) end
  if type(opts.store_dir) ~= "string" or opts.store_dir == "" then
    misuse("rotate: store_dir (the directory of the token files) is required", 4)
  end
  if opts.on_token ~= nil and type(opts.on_token) ~= "function" then
    misuse("rotate: on_token must be a function", 4)
  end
  return opts
end

--- What a rotation report says, without the new secret.
local function summary_of(tok, rep)
  return { created = rep.created, expires_at = tok.expires_at, revoked = rep.revoked, kept = rep.kept,
           orphans = rep.orphans, foreign = rep.foreign, errors = rep.errors }
end

local function rotate_one(report, it, opts, stop)
  local c, err = it.s.whm:for_user(it.rec.user)
  if not c then return R.failed(report, it.rec, err) end
  local ropts = { store = M.store_path(opts.store_dir, it.s.label, it.rec.user), verify_url = it.s.cpanel_url }
  for _, k in ipairs(PASSED) do ropts[k] = opts[k] end
  local tok, rep = c:rotate(ropts)
  c:close()
  if tok then
    -- the secret's one way out besides its file (the report never holds it): a caller that
    -- prints server messages learns it here, so that it can scrub them
    local secret = tok.token
    tok.token = nil
    if opts.on_token then opts.on_token(secret, it.s.label, it.rec.user, ropts.store) end
    R.reached(report, it.rec)
    it.rec.rotated = summary_of(tok, rep)
    R.count(report, "rotated", 1)
  else
    R.failed(report, it.rec, rep)
    -- any failed login counts against the address (cPHulk), the new token's included
    if rep.kind == "auth" then
      stop(it.s, rep, rep.step == "verify" and ("the new token of " .. it.rec.user) or nil)
    end
  end
end

--- The work function of fleet's chunks, given fleet's stop.
function M.chunk(stop)
  return function(_, report, part, opts, tick)
    for _, it in ipairs(part) do
      if it.s.stopped then
        R.not_sent(report, it.rec, it.s.stopped)
      elseif it.rec.suspended then
        R.skipped(report, it.rec, "suspended: the account cannot log in to verify a new token")
      else
        rotate_one(report, it, opts, stop)
      end
      tick()
    end
  end
end

return M
