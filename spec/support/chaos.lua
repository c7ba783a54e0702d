--[[
The machinery of the chaos run (spec/97-chaos_spec.lua): rotations run as child processes
and SIGKILLed at chosen instants, and the invariants checked against the fake server's truth.

  local chaos = require "spec.support.chaos"
  local ch = chaos.new(srv)                  -- a work directory, the child scripts
  local run = ch:spawn(spec)                 -- start one rotation (see Chaos:spawn)
  local r = ch:wait(run)                     -- { status, killed, hung, started, elapsed, line, err, out }
  ch:held(file)                              -- { name, token } the token file holds
  ch:check_store(file)                       -- invariant 1: true | false, why
  ch:authenticates(file)                     -- a list() made with its token works
  ch:strays(file)                            -- other files of the store's directory holding a token
  ch:converged(file, prefix, keep)           -- invariants 3 and 4: { count = {msg...}, unheld = {msg...} }
  ch:new_requests()                          -- the server's log records since the last call
  ch:phase(records)                          -- where a killed run was, from those records
  ch:bootstrap(file, prefix, keep)           -- a settled token file, made with the password
  ch:use("whm")                              -- from here: WHM API tokens of root (ch:use("cpanel"): back)
  ch:cleanup()

Two families of tokens: "cpanel" (alice's user tokens, `cptokens rotate`, client:rotate) and
"whm" (root's own WHM API tokens, `cptokens whm rotate`, whm:rotate; the file is a WHM token
file and its token is the credential). ch:use() picks the one truth(), bootstrap() and the
children work with; a spec's kind "whm-cli" / "whm-lib" is the WHM family's cli / lib.

How a child is killed: a small bash runner (RUNNER below) starts the command in the
background, then waits for whichever ends first, the command or `sleep DELAY`; if the
sleep ends first it sends SIGKILL to the command's pid. The runner is the command's parent
and has not reaped it yet, so that pid cannot have been reused by another process. The
runner writes "status start end" to BASE.code when the command has been reaped.

Secrets never reach the output: every text shown is passed through ch:mask(), which
replaces anything shaped like a token (32 characters 0-9A-Z) and the fixture password.
]]
local socket = require "socket"
local util = require "spec.support.util"
local cptokens = require "cptokens"
local rotate = require "cptokens.rotate"

local shell_quote, read_file, write_file = util.shell_quote, util.read_file, util.write_file

local chaos = {}

local ROOT = util.capture("pwd"):gsub("%s+$", "")
local BUILD = os.getenv("CPTOKENS_BUILD") or "build/5.4"
if BUILD:sub(1, 1) ~= "/" then BUILD = ROOT .. "/" .. BUILD end
chaos.ROOT, chaos.BUILD = ROOT, BUILD

-- A token value: 32 characters from 0-9A-Z (cpanel-api.md), as a word of its own.
local TOKEN_PATTERN = "%f[%w]" .. ("[0-9A-Z]"):rep(32) .. "%f[%W]"
chaos.TOKEN_PATTERN = TOKEN_PATTERN

local RUNNER = [[
# chaos runner: DELAY BASE CMD...: runs CMD; SIGKILLs it after DELAY seconds unless it ended.
delay=$1; base=$2; shift 2
t0=$EPOCHREALTIME
"$@" </dev/null >"$base.out" 2>"$base.err" &
p=$!
echo "$p" > "$base.pid"
sleep "$delay" & s=$!
wait -n -p which "$p" "$s"; st=$?
if [ "$which" = "$p" ]; then
  kill "$s" 2>/dev/null; wait "$s" 2>/dev/null
else
  kill -KILL "$p" 2>/dev/null; wait "$p"; st=$?
fi
t1=$EPOCHREALTIME
echo "$st $t0 $t1" > "$base.code.tmp" && mv "$base.code.tmp" "$base.code"
]]

-- One library rotation of a token file, the scheduled-script way: the client is made from
-- the file, and the file is the store. arg: FILE PREFIX KEEP [MODE]; MODE "store_nil" and
-- "store_raise" use a store function that fails instead (a full disk), with current = the
-- file's token name and lock = the file (so that it shares the file's
-- journal). Exit 0, or 1 with one line on stderr, or 4 when revocations failed.
local LIB_CHILD = [[
package.cpath = "@BUILD@/?.so;" .. package.cpath
package.path = "@ROOT@/lua/?.lua;@ROOT@/lua/?/init.lua;" .. package.path
local cptokens = require "cptokens"
local file, prefix, keep, mode = arg[1], arg[2], tonumber(arg[3]), arg[4] or "path"
local opts, meta = cptokens.store.load(file)
if not opts then
  io.stderr:write("chaos child: ", tostring(meta), "\n")
  os.exit(5)
end
opts.timeout = @TIMEOUT@
-- a WHM token file: its token is root's WHM API token, rotated by whm:rotate
local client = assert((meta.kind == "whm" and cptokens.whm or cptokens.new)(opts))
local ro = { prefix = prefix, keep = keep, store = file }
-- (a store function shares the file's lock, and so its journal: README, "A store function")
if mode == "store_nil" then
  ro.store = function() return nil, "disk full" end
  ro.current, ro.lock = meta.name, file
elseif mode == "store_raise" then
  ro.store = function() error("disk full (raised)") end
  ro.current, ro.lock = meta.name, file
end
local tok, report = client:rotate(ro)
if not tok then
  io.stderr:write(tostring(report), "\n")
  os.exit(1)
end
if report.errors then
  io.stderr:write("chaos child: ", #report.errors, " revocation(s) failed\n")
  os.exit(4)
end
io.stdout:write("created ", tok.name, "\n")
os.exit(0)
]]

local Chaos = {}
Chaos.__index = Chaos

function chaos.new(srv)
  local self = setmetatable({ srv = srv, dir = util.tmpdir("chaos"), seq = 0, log_seen = 0,
                              password = srv.accounts.alice.password, family = "cpanel" }, Chaos)
  self.runs = self.dir .. "/runs"
  assert(util.execute("mkdir -p " .. shell_quote(self.runs)))
  self.runner = self.dir .. "/runner.sh"
  write_file(self.runner, RUNNER)
  self.lib_child = self.dir .. "/lib-child.lua"
  write_file(self.lib_child, (LIB_CHILD:gsub("@(%u+)@", { BUILD = BUILD, ROOT = ROOT,
    TIMEOUT = tostring(require("spec.helpers").seconds(20)) })))
  self.env = table.concat({
    "env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u CPANEL_TOKEN -u CPANEL_PASSWORD -u CPANEL_USER -u WHM_TOKEN",
    "CPANEL_URL=" .. shell_quote(srv.url),
    "CPANEL_CAFILE=" .. shell_quote(srv.cafile),
    "LUA_PATH=" .. shell_quote(ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;"),
    "LUA_CPATH=" .. shell_quote(BUILD .. "/?.so;;"),
  }, " ")
  -- the WHM family: CPANEL_URL is WHM's port (as the WHM token file says)
  self.env_whm = self.env:gsub("CPANEL_URL=%S+", function() return "CPANEL_URL=" .. shell_quote(srv.whm_url) end)
  return self
end

--- The family of tokens from here on: "cpanel" (alice's) or "whm" (root's WHM API tokens).
function Chaos:use(family)
  assert(family == "cpanel" or family == "whm", "unknown family " .. tostring(family))
  self.family = family
end

function Chaos:cleanup()
  util.rmdir(self.dir)
end

--- Text safe to print: token-shaped words and the fixture password masked.
function Chaos:mask(s)
  s = tostring(s):gsub(TOKEN_PATTERN, "<TOKEN>")
  local i = s:find(self.password, 1, true)
  while i do
    s = s:sub(1, i - 1) .. "<PASSWORD>" .. s:sub(i + #self.password)
    i = s:find(self.password, 1, true)
  end
  return s
end

--- A fresh directory for one store.
function Chaos:store_dir(name)
  local d = self.dir .. "/" .. name
  assert(util.execute("rm -rf " .. shell_quote(d) .. " && mkdir -p " .. shell_quote(d)))
  return d
end

------------------------------------------------------------------ children

--- Starts a rotation in the background: spec = { kind = "cli" | "lib", file, prefix, keep,
-- mode (lib: "path", "store_nil", "store_raise"), delay (seconds until SIGKILL), cap (true:
-- the delay is only a time limit, and a run killed by it has hung) }.
-- Returns a handle for wait().
function Chaos:spawn(spec)
  self.seq = self.seq + 1
  local base = self.runs .. "/r" .. self.seq
  local cmd
  local whm, kind = spec.kind:match("^(whm%-)(.*)$")
  kind = kind or spec.kind
  if kind == "cli" and whm then
    cmd = { util.LUA, ROOT .. "/bin/cptokens", "whm", "rotate", spec.prefix, "--whm-token-file", spec.file,
            "--out", spec.file, "--keep", tostring(spec.keep) }
  elseif kind == "cli" then
    cmd = { util.LUA, ROOT .. "/bin/cptokens", "rotate", spec.prefix, "--token-file", spec.file,
            "--out", spec.file, "--keep", tostring(spec.keep) }
  else
    cmd = { util.LUA, self.lib_child, spec.file, spec.prefix, tostring(spec.keep), spec.mode or "path" }
  end
  for i, a in ipairs(cmd) do cmd[i] = shell_quote(a) end
  local line = "bash " .. shell_quote(self.runner) .. " " .. string.format("%.3f", spec.delay) .. " "
    .. shell_quote(base) .. " " .. (whm and self.env_whm or self.env) .. " " .. table.concat(cmd, " ")
    .. " >/dev/null 2>" .. shell_quote(base .. ".runner") .. " &"
  assert(util.execute(line), "cannot start the chaos runner")
  return { base = base, spec = spec, started = socket.gettime() }
end

local function first_line(s)
  return (s or ""):match("^[^\n]*") or ""
end

--- Waits for a spawned run (bounded: its delay plus `grace` seconds, default 15).
-- Returns { status, killed, elapsed, err, out, hung }; killed: ended by the SIGKILL (137).
function Chaos:wait(run, grace)
  local deadline = run.started + run.spec.delay + (grace or 15)
  local code
  while true do
    code = read_file(run.base .. ".code")
    if code or socket.gettime() > deadline then break end
    socket.sleep(0.005)
  end
  local hung = false
  if not code then
    -- A runner that did not finish in time: kill the command it started (its pid), and it.
    hung = true
    local pid = tonumber(read_file(run.base .. ".pid") or "")
    if pid then util.execute("kill -KILL " .. pid .. " 2>/dev/null") end
    for _ = 1, 400 do
      code = read_file(run.base .. ".code")
      if code then break end
      socket.sleep(0.01)
    end
  end
  local st, t0, t1 = (code or ""):match("^(%d+) ([%d.]+) ([%d.]+)")
  local r = {
    status = tonumber(st), elapsed = (tonumber(t1) or 0) - (tonumber(t0) or 0), hung = hung,
    started = tonumber(t0) or run.started,
    err = read_file(run.base .. ".err") or "", out = read_file(run.base .. ".out") or "",
  }
  if run.spec.cap and r.status == 137 then r.hung = true end -- killed at its time limit
  r.killed = r.status == 137 and not r.hung
  r.line = self:mask(first_line(r.err))
  for _, ext in ipairs { ".code", ".pid", ".err", ".out", ".runner" } do os.remove(run.base .. ext) end
  return r
end

--- Runs to the end (no kill unless it outlives `cap` seconds).
function Chaos:run(spec, cap)
  local s = {}
  for k, v in pairs(spec) do s[k] = v end
  s.delay, s.cap = cap or 40, true
  return self:wait(self:spawn(s))
end

---------------------------------------------------------- server's truth

--- The server's tokens of the family in use (alice's, or root's WHM tokens), by name and by
-- value (values stay in memory only).
function Chaos:truth()
  local by_name, by_value = {}, {}
  local list = self.family == "whm" and self.srv:whm_tokens("root") or self.srv:tokens("alice")
  local now = os.time()
  for _, t in ipairs(list) do
    local exp = tonumber(t.expires_at)
    t.valid = not (exp and exp > 0 and exp < now)
    by_name[t.name] = t
    by_value[t.token] = t
  end
  return list, by_name, by_value
end

--- The requests the server received since the last call (the log read incrementally).
function Chaos:new_requests()
  local recs = self.srv:log(self.log_seen + 1)
  self.log_seen = self.log_seen + #recs
  return recs
end

--- After srv:reset(): the log starts again.
function Chaos:log_reset() self.log_seen = 0 end

--- What the token file holds: { name, token } or nil, message. (token stays in memory.)
function Chaos.held(_, file)
  local opts, meta = cptokens.store.load(file)
  if not opts then return nil, meta and meta.message or tostring(meta) end
  return { name = meta.name, token = opts.token }
end

--- Invariant 1: the file is a valid token file and its token authenticates (the server
-- holds that secret and it has not expired). true, or false, why.
function Chaos:check_store(file)
  local h, why = self:held(file)
  if not h then return false, "not a valid token file: " .. self:mask(why) end
  local _, by_name, by_value = self:truth()
  local t = by_value[h.token]
  if not t then
    local same = by_name[h.name]
    return false, "holds " .. h.name .. ", a token the server does not have (revoked)"
      .. (same and " (a token of that name exists with another secret)" or "")
  end
  if not t.valid then return false, "holds " .. h.name .. ", which has expired" end
  return true
end

--- A real call made with the file's token (list), in this process.
function Chaos:authenticates(file)
  local opts, err = cptokens.store.load(file)
  if not opts then return false, self:mask(err.message) end
  local c = (err.kind == "whm" and cptokens.whm or cptokens.new)(opts)
  local list, lerr = c:list()
  c:close()
  if not list then return false, self:mask(tostring(lerr)) end
  return true
end

--- Invariant 2: files beside the token file that hold a token (a token-shaped word):
-- array of { name, revoked = n, live = n }; the token file itself is not counted.
function Chaos:strays(file)
  local dir, base = file:match("^(.*)/([^/]+)$")
  local _, _, by_value = self:truth()
  local out = {}
  for _, name in ipairs(util.list_dir(dir)) do
    if name ~= base then
      local text = read_file(dir .. "/" .. name)
      if text and #text < 1000000 then
        local e = { name = name, revoked = 0, live = 0 }
        for v in text:gmatch(TOKEN_PATTERN) do
          local t = by_value[v]
          if t and t.valid then e.live = e.live + 1 else e.revoked = e.revoked + 1 end
        end
        if e.revoked + e.live > 0 then out[#out + 1] = e end
      end
    end
  end
  return out
end

-- Rotation order: older first (create_time, then the name's stamp and suffix).
local function older(a, b)
  if a.ct ~= b.ct then return a.ct < b.ct end
  if a.stamp ~= b.stamp then return a.stamp < b.stamp end
  if a.n ~= b.n then return a.n < b.n end
  return a.name < b.name
end

--- Invariants 3 and 4 after a rotation that ran to its end without faults:
-- exactly keep + 1 valid tokens with the prefix; each is the file's, or one of the `keep`
-- newest older ones (none newer than the file's: that one reached nobody).
-- Returns { count = {...}, unheld = {...} } (messages; empty when all holds).
function Chaos:converged(file, prefix, keep)
  local problems = { count = {}, unheld = {} }
  local list = self:truth()
  local h = self:held(file)
  local mine, others = nil, {}
  for _, t in ipairs(list) do
    local stamp, n = rotate.parse_name(t.name, prefix)
    if stamp and t.valid then
      local e = { name = t.name, ct = tonumber(t.create_time) or 0, stamp = stamp, n = n }
      if h and t.token == h.token then mine = e else others[#others + 1] = e end
    end
  end
  local total = #others + (mine and 1 or 0)
  if total ~= keep + 1 then
    problems.count[1] = string.format("%d valid tokens with prefix %s, expected keep + 1 = %d",
      total, prefix, keep + 1)
  end
  table.sort(others, function(a, b) return older(b, a) end) -- newest first
  local n_older = 0
  for _, e in ipairs(others) do
    if mine and older(mine, e) then
      problems.unheld[#problems.unheld + 1] = e.name .. " is newer than the stored " .. mine.name
        .. " and held by nobody"
    else
      n_older = n_older + 1
      if n_older > keep then
        problems.unheld[#problems.unheld + 1] = e.name .. " is valid, not stored, and not among the "
          .. keep .. " kept"
      end
    end
  end
  return problems
end

--- Where a run was when it ended, from the requests the server received (in order):
-- "start" (nothing arrived), "list", "create", "verify" (a list after create),
-- "revoke", "after-revoke" (a list after a revoke).
function Chaos.phase(_, records)
  -- (the WHM family: api_token_list, _create, _get_details (its verify), _revoke)
  local WHM = { api_token_list = "list", api_token_create = "create_full_access", api_token_revoke = "revoke",
                api_token_get_details = "details" }
  local phase, created, revoked = "start", false, false
  for _, rec in ipairs(records) do
    local func = rec.uri and (rec.uri:match("^/execute/Tokens/(.*)$")
      or WHM[rec.uri:match("^/json%-api/([%w_]+)") or false])
    if func == "list" then
      phase = revoked and "after-revoke" or created and "verify" or "list"
    elseif func == "details" then
      phase = revoked and "after-revoke" or "verify"
    elseif func == "create_full_access" then
      phase, created = "create", true
    elseif func == "revoke" then
      phase, revoked = "revoke", true
    end
  end
  return phase
end

--- A token file for the prefix, from nothing: in this process, with the password, as many
-- rotations as make a settled state (keep + 1 tokens, the newest in the file).
-- The WHM family: with root's own WHM token (the fixture's), a full-access WHM token file.
function Chaos:bootstrap(file, prefix, keep)
  self.srv:clear_faults()
  os.remove(file)
  local c
  if self.family == "whm" then
    c = assert(cptokens.whm { url = self.srv.whm_url, user = "root", token = self.srv.accounts.root.token,
                              cafile = self.srv.cafile })
  else
    c = assert(cptokens.new { url = self.srv.url, user = "alice", password = self.password,
                              cafile = self.srv.cafile })
  end
  for _ = 1, keep + 1 do
    local tok, err = c:rotate { prefix = prefix, keep = keep, store = file }
    assert(tok, "bootstrap rotation failed: " .. self:mask(tostring(err)))
  end
  c:close()
end

return chaos
