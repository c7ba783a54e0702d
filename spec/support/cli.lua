--- Running bin/cptokens from the tree as a user would, for the CLI specs: a real process, its
-- secrets in a 0600 file the shell sources (never on argv), standard input from a file or
-- /dev/null, standard output and error captured.
--
--   local run = cli.runner(srv, tmp)
--   local r = run({ "list" }, { CPANEL_URL = ..., CPANEL_TOKEN = ... } [, stdin_text])
--   -- r = { code = exit status, out = stdout, err = stderr }
local util = require "spec.support.util"

local shell_quote = util.shell_quote

local M = {}

-- Unset before each run: the connection's and credentials' variables, and the profile's.
M.SECRET_VARS = "CPANEL_URL CPANEL_USER CPANEL_CAFILE CPANEL_TOKEN CPANEL_PASSWORD CPANEL_OTP WHM_TOKEN"
  .. " WHM_USER CPANEL_PROFILE CPTOKENS_CONFIG"

function M.runner(srv, tmp)
  local seq = 0
  return function(args, env, stdin)
    seq = seq + 1
    local base = tmp .. "/cli" .. seq
    local build = os.getenv("CPTOKENS_BUILD") or "build/5.4"
    local lines = {
      "unset " .. M.SECRET_VARS,
      "export CPANEL_CAFILE=" .. shell_quote(srv.cafile),
      "export LUA_PATH=" .. shell_quote("lua/?.lua;lua/?/init.lua;;"),
      "export LUA_CPATH=" .. shell_quote(build .. "/?.so;;"),
    }
    for k, v in pairs(env or {}) do lines[#lines + 1] = "export " .. k .. "=" .. shell_quote(v) end
    util.write_private(base .. ".env", table.concat(lines, "\n") .. "\n")
    local input = "/dev/null"
    if stdin then
      input = base .. ".in"
      util.write_private(input, stdin)
    end
    local quoted = {}
    for i, a in ipairs(args) do quoted[i] = shell_quote(a) end
    local cmd = "(. " .. shell_quote(base .. ".env") .. " && " .. shell_quote(util.LUA) .. " bin/cptokens "
      .. table.concat(quoted, " ") .. " <" .. shell_quote(input) .. " >" .. shell_quote(base .. ".out")
      .. " 2>" .. shell_quote(base .. ".err") .. "; echo $? >" .. shell_quote(base .. ".code") .. ")"
    assert(util.execute(cmd))
    return { code = tonumber((util.read_file(base .. ".code") or ""):match("%d+")),
             out = util.read_file(base .. ".out") or "", err = util.read_file(base .. ".err") or "" }
  end
end

return M
