-- Chaos: rotations of a token file SIGKILLed at random instants, failing at each step, and
-- overlapping, against the fake cPanel server; after each, the server's truth is checked.
-- Tagged #chaos: not in the default run (.busted) nor under valgrind or ASan; `make test-chaos`,
-- or: CPTOKENS_BUILD=build/5.4 lua5.4 /usr/bin/busted --tags=chaos --exclude-tags=manual spec/97-chaos_spec.lua
-- (the --exclude-tags replaces .busted's list, which names chaos: busted refuses both).
--
-- Scenarios (each its own store, prefix and `keep`):
--   kill    CLI (`cptokens rotate P --token-file F --out F --keep K`) and library (a child
--           lua running client:rotate{ store = F }), keep 0 and 1: start a rotation, SIGKILL
--           it after a random delay between 0 and a bit more than one rotation's duration
--           (some are let finish; half the delays start after the child's start-up, the time
--           until its first request reaches the server), check.
--   slow    the same with every request delayed (50 to 200 ms), so kills land mid-request.
--   faults  one failure injected at each step (list, create, verify, revoke, store), run to
--           the end once each, then again with random kills.
--   overlap two or three rotations of one store started 0 to 0.4 s apart (the server slowed
--           so that they overlap), CLI and library mixed.
--   whm     kills and faults as above for root's WHM API tokens (`cptokens whm rotate P
--           --whm-token-file F --out F`, and whm:rotate{ store = F }): the same invariants,
--           on the server's WHM token list.
--
-- Invariants (the `violations` in the report):
--   store   after every run, killed or not: the file is a token file whose token
--           authenticates (the server holds that secret, unexpired).
--   stray   after every run that exited 0: no other file beside it holds a token the server
--           revoked (temporaries of a save that was killed).
--   count   after a clean rotation at the end of a scenario (and after each overlap group,
--           whose runs all ended on their own): exactly keep + 1 valid tokens with the prefix.
--   unheld  then too: every valid token with the prefix is the file's or one of the `keep`
--           newest older ones (none held by nobody).
--   clean   a rotation without faults that was not killed exits 0 (the one after a killed
--           run too), and after the clean rotation at the end the token really works (a list()).
--   other   a token without the prefix was revoked.
--   hang    a run outlived its bound.
-- A killed run may leave the old or the new token in the file; a concurrent run may exit 1
-- (the store is locked by the other, or its credential was rotated away): both are fine
-- when the invariants hold.
--
-- Environment: CHAOS_KILLS (SIGKILLs in all, default 400), CHAOS_OVERLAPS (overlap groups,
-- default 40), CHAOS_SECONDS (time budget for the loops, default 140), CHAOS_SEED (the
-- random seed, printed; replays the same choices, though not the same timing).
local socket = require "socket"
local H = require "spec.helpers"
local server = require "spec.support.server"
local chaos = require "spec.support.chaos"
local util = require "spec.support.util"

local function env_number(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return assert(tonumber(v), name .. " must be a number, got " .. v)
end

local KILLS = env_number("CHAOS_KILLS", 400)
local OVERLAPS = env_number("CHAOS_OVERLAPS", 40)
local SECONDS = env_number("CHAOS_SECONDS", 140)
local SEED = math.floor(env_number("CHAOS_SEED", os.time() % 1000000 + 1))

-- Park-Miller: the same sequence on every Lua (exact in doubles), untouched by busted.
local rng_state = SEED % 2147483646 + 1
local function random()
  rng_state = (rng_state * 16807) % 2147483647
  return rng_state / 2147483647
end
local function pick(list) return list[math.floor(random() * #list) + 1] end

local LET_FINISH = 1 / 8       -- kill iterations that are let run to their end
local OVERSHOOT = 1.15         -- kill delays: 0 .. OVERSHOOT x one rotation's duration
local AIMED = 1 / 2            -- kills whose delay starts after the child's start-up
local CAP = 40                 -- seconds a run may take before it counts as hung

local INVARIANTS = { "store", "stray", "count", "unheld", "clean", "other", "hang" }
local PHASES = { "start", "list", "create", "verify", "revoke", "after-revoke" }
local OTHER_TOKEN = "manual-keep" -- a token no rotation may touch

-- One failure at a step: how to inject it (server faults are one request each).
local FAULTS = {
  list = { "status", { status = 503, func = "list", times = 1 } },
  create = { "status", { status = 503, func = "create_full_access", times = 1 } },
  -- the verification is the list made with the new token: the second list
  verify = { "status", { status = 503, func = "list", skip = 1, times = 1 } },
  revoke = { "status", { status = 503, func = "revoke", times = 1 } },
}
-- The same for WHM API tokens (WHM API 1; the verification is api_token_get_details).
local WHM_FAULTS = {
  list = { "status", { status = 503, func = "api_token_list", times = 1 } },
  create = { "status", { status = 503, func = "api_token_create", times = 1 } },
  verify = { "status", { status = 503, func = "api_token_get_details", times = 1 } },
  revoke = { "status", { status = 503, func = "api_token_revoke", times = 1 } },
}

describe("chaos #chaos", function()
  local srv, ch
  local scenarios = {}
  local t_start

  setup(function()
    srv = server.start()
    ch = chaos.new(srv)
    t_start = socket.gettime()
    io.stdout:write(string.format("\nchaos: seed %d, %d kills, %d overlap groups, %d s budget (replay: "
      .. "make test-chaos CHAOS_SEED=%d CHAOS_KILLS=%d CHAOS_OVERLAPS=%d)\n", SEED, KILLS, OVERLAPS, SECONDS,
      SEED, KILLS, OVERLAPS))
  end)

  -------------------------------------------------------------- report

  local function hist_text(h, order)
    local parts = {}
    for _, k in ipairs(order) do
      if h[k] and h[k] > 0 then parts[#parts + 1] = k .. " " .. h[k] end
    end
    local extra = {}
    for k, v in pairs(h) do
      local listed = false
      for _, o in ipairs(order) do listed = listed or o == k end
      if not listed then extra[#extra + 1] = k .. " " .. v end
    end
    table.sort(extra)
    for _, e in ipairs(extra) do parts[#parts + 1] = e end
    return #parts > 0 and table.concat(parts, ", ") or "-"
  end

  local function violation_total(S)
    local n = 0
    for _, k in ipairs(INVARIANTS) do n = n + S.violations[k] end
    return n
  end

  local function scenario_text(S)
    local lines = {}
    lines[#lines + 1] = string.format("%-15s keep %d: %d runs, %d SIGKILLs, %.1f s%s", S.name, S.keep,
      S.runs, S.kills, S.seconds or 0, S.cut_short and " (cut short by the time budget)" or "")
    if S.kills > 0 then
      lines[#lines + 1] = "  kills by phase: " .. hist_text(S.phases, PHASES)
        .. "; after a kill the file held the " .. hist_text(S.held, { "old", "new" })
      if S.tmp_after_kill > 0 then
        lines[#lines + 1] = "  kills that left a temporary holding a token: " .. S.tmp_after_kill
      end
    end
    lines[#lines + 1] = "  exits: " .. hist_text(S.exits, { "0", "1", "137" })
    if next(S.steps) then
      local parts = {}
      for _, step in ipairs { "list", "create", "verify", "revoke", "store_dir", "store_nil", "store_raise" } do
        if S.steps[step] then parts[#parts + 1] = step .. " (" .. hist_text(S.steps[step], {}) .. ")" end
      end
      lines[#lines + 1] = "  failures injected, exits: " .. table.concat(parts, "; ")
    end
    if next(S.concurrent) then
      lines[#lines + 1] = "  concurrent runs: " .. hist_text(S.concurrent, { "ok", "lock", "auth" })
    end
    local v = {}
    for _, k in ipairs(INVARIANTS) do v[#v + 1] = k .. " " .. S.violations[k] end
    lines[#lines + 1] = "  violations: " .. table.concat(v, ", ")
    for i, e in ipairs(S.examples) do
      if i > 6 then
        lines[#lines + 1] = "    ... and " .. (#S.examples - 6) .. " more"
        break
      end
      lines[#lines + 1] = "    " .. e
    end
    if #S.notes > 0 then
      lines[#lines + 1] = "  failed runs (expected with faults), e.g.:"
      for i = 1, math.min(3, #S.notes) do lines[#lines + 1] = "    " .. S.notes[i] end
    end
    return table.concat(lines, "\n")
  end

  teardown(function()
    if #scenarios > 0 then
      local totals = { runs = 0, kills = 0, phases = {}, violations = {} }
      for _, k in ipairs(INVARIANTS) do totals.violations[k] = 0 end
      local out = { "", "chaos report (seed " .. SEED .. ")" }
      for _, S in ipairs(scenarios) do
        out[#out + 1] = scenario_text(S)
        totals.runs, totals.kills = totals.runs + S.runs, totals.kills + S.kills
        for k, v in pairs(S.phases) do totals.phases[k] = (totals.phases[k] or 0) + v end
        for _, k in ipairs(INVARIANTS) do totals.violations[k] = totals.violations[k] + S.violations[k] end
      end
      local v = {}
      for _, k in ipairs(INVARIANTS) do v[#v + 1] = k .. " " .. totals.violations[k] end
      out[#out + 1] = string.format("TOTAL: %d runs, %d SIGKILLs (by phase: %s), %.0f s; violations: %s",
        totals.runs, totals.kills, hist_text(totals.phases, PHASES), socket.gettime() - t_start,
        table.concat(v, ", "))
      io.stdout:write(ch:mask(table.concat(out, "\n")), "\n")
    end
    if ch then ch:cleanup() end
    if srv then srv:stop() end
  end)

  ------------------------------------------------------------ scenarios

  local function violation(S, kind, msg)
    S.violations[kind] = S.violations[kind] + 1
    S.examples[#S.examples + 1] = kind .. ": " .. ch:mask(msg)
  end

  local function bump(h, k) h[k] = (h[k] or 0) + 1 end

  -- A run that failed as expected (an injected fault): its message, for the report.
  local function note(S, msg)
    if #S.notes < 40 then S.notes[#S.notes + 1] = ch:mask(msg) end
  end

  -- A fresh server state and a settled store: keep + 1 rotations, the newest in the file.
  local function new_scenario(name, kind, keep, extra)
    srv:reset()
    ch:log_reset()
    local S = {
      name = name, kind = kind, keep = keep, prefix = "chaos-" .. name:gsub("[^%w]", ""),
      runs = 0, kills = 0, phases = {}, held = {}, exits = {}, steps = {}, concurrent = {},
      tmp_after_kill = 0, stray_seen = {}, violations = {}, examples = {}, notes = {}, t0 = socket.gettime(),
    }
    for _, k in ipairs(INVARIANTS) do S.violations[k] = 0 end
    for k, v in pairs(extra or {}) do S[k] = v end
    S.whm = kind:find("^whm%-") ~= nil
    S.faults = S.whm and WHM_FAULTS or FAULTS
    S.create_func = S.whm and "api_token_create" or "create_full_access"
    S.create_uri = S.whm and "/json-api/api_token_create" or "/execute/Tokens/create_full_access"
    ch:use(S.whm and "whm" or "cpanel")
    S.dir = ch:store_dir(name)
    S.file = S.dir .. "/token.json"
    if S.whm then
      srv:seed_whm_token("root", { name = OTHER_TOKEN })
    else
      srv:seed_token("alice", { name = OTHER_TOKEN })
    end
    ch:bootstrap(S.file, S.prefix, keep)
    scenarios[#scenarios + 1] = S
    return S
  end

  local function set_latency(S)
    if S.latency then srv:fault("latency", { ms = S.latency }) end
  end

  -- Invariant 1 after a run; a broken store is counted, then rebuilt with the password so
  -- that the scenario goes on from a sound state.
  local function check_store(S, when)
    local ok, why = ch:check_store(S.file)
    if ok then return true end
    violation(S, "store", when .. ": the token file " .. why)
    ch:bootstrap(S.file, S.prefix, S.keep)
    set_latency(S)
    return false
  end

  -- Invariant 2 after a run that exited 0: strays holding a revoked token (each file once).
  local function check_strays(S, when)
    for _, e in ipairs(ch:strays(S.file)) do
      if e.revoked > 0 and not S.stray_seen[e.name] then
        S.stray_seen[e.name] = true
        violation(S, "stray", when .. ": " .. e.name .. " is left beside the token file and holds "
          .. e.revoked .. " revoked token(s)")
      end
    end
  end

  local function count_run(S, r)
    S.runs = S.runs + 1
    bump(S.exits, tostring(r.status))
    if r.hung then violation(S, "hang", S.kind .. " rotation still running after " .. CAP .. " s") end
  end

  -- Waits until the server has finished what a killed child had sent (a delayed request
  -- still executes after its client is gone, as on a real server).
  local function quiesce(S)
    socket.sleep((S.latency or 0) / 1000 + 0.03)
  end

  -- One calibrating run to the end: the duration kill delays are drawn from.
  local function calibrate(S)
    ch:new_requests()
    local r = ch:run({ kind = S.kind, file = S.file, prefix = S.prefix, keep = S.keep }, CAP)
    count_run(S, r)
    assert(r.status == 0, S.name .. ": a rotation without faults failed: " .. r.line)
    check_store(S, "calibration")
    S.duration = r.elapsed
    -- start-up: until the first request reached the server (interpreter, TLS set-up)
    local recs = ch:new_requests()
    S.startup = recs[1] and math.max(0, math.min(recs[1].time - r.started, r.elapsed)) or 0
  end

  --- One iteration: a rotation (with fault `step`, or none), killed after a random delay
  --- unless drawn to finish (let_finish: the probability of that).
  local function kill_iteration(S, step, let_finish)
    ch:new_requests()
    local before = ch:held(S.file)
    local finish = random() < let_finish
    -- half the kills are aimed past the start-up, where the rotation's steps are
    local from = random() < AIMED and S.startup or 0
    local delay = finish and CAP or from + random() * (OVERSHOOT * S.duration - from)
    local mode
    if step and S.faults[step] then
      srv:fault(S.faults[step][1], S.faults[step][2])
    elseif step then
      mode = step -- store_nil, store_raise: the library child's failing store function
    end
    local r = ch:wait(ch:spawn { kind = S.kind, file = S.file, prefix = S.prefix, keep = S.keep,
                                 mode = mode, delay = delay, cap = finish })
    count_run(S, r)
    if r.killed then quiesce(S) end
    if step then
      srv:clear_faults()
      set_latency(S)
      S.steps[step] = S.steps[step] or {}
      bump(S.steps[step], r.killed and "killed" or tostring(r.status))
    end
    local recs = ch:new_requests()
    local what = (step and (step .. " failing, ") or "") .. (r.killed
      and string.format("killed after %.0f ms", delay * 1000) or ("exit " .. tostring(r.status)))
    if r.killed then
      S.kills = S.kills + 1
      bump(S.phases, ch:phase(recs))
      local after = ch:held(S.file)
      if after and before then bump(S.held, after.token == before.token and "old" or "new") end
      for _, e in ipairs(ch:strays(S.file)) do
        if not S.stray_seen["kill:" .. e.name] then
          S.stray_seen["kill:" .. e.name] = true
          S.tmp_after_kill = S.tmp_after_kill + 1
        end
      end
    elseif r.status ~= 0 and not r.hung then
      if step then
        note(S, what .. ": " .. r.line)
      else
        -- nothing injected: the run after a killed one must succeed (the next cron job)
        violation(S, "clean", "a rotation without faults " .. what .. ": " .. r.line)
      end
    end
    check_store(S, what)
    if r.status == 0 then check_strays(S, what) end
    if finish and not step and r.status == 0 then
      -- a run let finish is an unbiased sample of a rotation's duration
      S.duration = 0.8 * S.duration + 0.2 * r.elapsed
    end
    return r
  end

  -- Kill iterations until `kills` SIGKILLs landed, bounded in count and time.
  local function kill_loop(S, kills, seconds, steps, let_finish)
    local deadline = socket.gettime() + seconds
    local iterations = 0
    while S.kills < kills and iterations < 3 * kills + 10 do
      if socket.gettime() > deadline then
        S.cut_short = true
        break
      end
      iterations = iterations + 1
      kill_iteration(S, steps and pick(steps) or nil, let_finish or LET_FINISH)
    end
  end

  -- The store's parent directory replaced by a file while the rotation waits for its
  -- create reply: saving the token file fails for real (ENOTDIR), for the CLI too.
  local function store_dir_failure(S)
    ch:new_requests()
    srv:fault("latency", { func = S.create_func, ms = 400, times = 1 })
    local run = ch:spawn { kind = S.kind, file = S.file, prefix = S.prefix, keep = S.keep, delay = CAP,
                           cap = true }
    local away = S.dir .. ".away"
    local swapped = false
    for _ = 1, 500 do
      local created = false
      for _, rec in ipairs(ch:new_requests()) do
        created = created or rec.uri == S.create_uri
      end
      if created then
        assert(os.rename(S.dir, away))
        util.write_file(S.dir, "not a directory\n")
        swapped = true
        break
      end
      socket.sleep(0.01)
    end
    local r = ch:wait(run)
    if swapped then
      assert(os.remove(S.dir))
      assert(os.rename(away, S.dir))
    end
    srv:clear_faults()
    count_run(S, r)
    S.steps.store_dir = S.steps.store_dir or {}
    bump(S.steps.store_dir, swapped and tostring(r.status) or "not reached")
    check_store(S, "store failing (directory replaced), exit " .. tostring(r.status))
    if r.status == 0 then check_strays(S, "store failing (directory replaced)") end
  end

  -- The end of a scenario: one clean rotation, then every invariant.
  local function finish(S)
    srv:clear_faults()
    check_store(S, "before the clean run")
    ch:new_requests()
    local r = ch:run({ kind = S.kind, file = S.file, prefix = S.prefix, keep = S.keep }, CAP)
    count_run(S, r)
    if r.status ~= 0 then
      violation(S, "clean", "the clean rotation exited " .. tostring(r.status) .. ": " .. r.line)
    end
    local ok, why = ch:check_store(S.file)
    if not ok then
      violation(S, "store", "after the clean rotation: the token file " .. why)
    else
      local works, err = ch:authenticates(S.file)
      if not works then violation(S, "clean", "the stored token does not authenticate: " .. err) end
    end
    check_strays(S, "after the clean rotation")
    local p = ch:converged(S.file, S.prefix, S.keep)
    for _, m in ipairs(p.count) do violation(S, "count", "after the clean rotation: " .. m) end
    for _, m in ipairs(p.unheld) do violation(S, "unheld", "after the clean rotation: " .. m) end
    local _, by_name = ch:truth()
    if not by_name[OTHER_TOKEN] then violation(S, "other", OTHER_TOKEN .. " was revoked") end
    S.seconds = socket.gettime() - S.t0
    assert(violation_total(S) == 0, "\n" .. scenario_text(S))
  end

  -- A scenario's part of the kills, and of the time budget.
  local function share(kills, time)
    return math.max(1, math.floor(KILLS * kills + 0.5)), SECONDS * time
  end

  it("its checks see a revoked stored token, a stray temporary and tokens held by nobody", function()
    srv:reset()
    ch:log_reset()
    local dir = ch:store_dir("selftest")
    local file = dir .. "/token.json"
    ch:bootstrap(file, "selftest", 0)
    assert.is_true((ch:check_store(file)))
    assert.is_true((ch:authenticates(file)))
    local p = ch:converged(file, "selftest", 0)
    assert.are.same({ count = {}, unheld = {} }, p)
    -- a copy of the file as a temporary, then its token revoked
    local held = assert(ch:held(file))
    util.write_private(file .. ".tmp-ABC123", assert(util.read_file(file)))
    local c = H.client(srv)
    assert(c:revoke(held.name))
    local ok, why = ch:check_store(file)
    assert.is_false(ok)
    assert.is_truthy(why:find("revoked", 1, true))
    local strays = ch:strays(file)
    assert.are.equal(1, #strays)
    assert.are.equal(1, strays[1].revoked)
    -- a sound file again, then valid rotations it does not hold: an older one beyond keep,
    -- and a newer one that never reached the file
    ch:bootstrap(file, "selftest", 0)
    srv:seed_token("alice", { name = "selftest-20200101000000", create_time = os.time() - 100 })
    p = ch:converged(file, "selftest", 0)
    assert.are.equal(1, #p.count)
    assert.are.equal(1, #p.unheld)
    assert.are.same({ count = {}, unheld = {} }, ch:converged(file, "selftest", 1))
    srv:seed_token("alice", { name = "selftest-20990101000000", create_time = os.time() + 100 })
    p = ch:converged(file, "selftest", 1)
    assert.are.equal(1, #p.count)
    assert.are.equal(1, #p.unheld)
    assert.is_truthy(p.unheld[1]:find("newer than the stored", 1, true))
    c:close()
    -- the WHM family: root's WHM tokens are the truth
    ch:use("whm")
    local wfile = dir .. "/whm.json"
    ch:bootstrap(wfile, "selftest", 0)
    assert.is_true((ch:check_store(wfile)))
    assert.is_true((ch:authenticates(wfile)))
    assert.are.same({ count = {}, unheld = {} }, ch:converged(wfile, "selftest", 0))
    local wheld = assert(ch:held(wfile))
    local w = assert(require("cptokens").whm { url = srv.whm_url, user = "root", token = H.ROOT_WHM,
                                               cafile = srv.cafile })
    assert(w:revoke(wheld.name))
    w:close()
    ok, why = ch:check_store(wfile)
    assert.is_false(ok)
    assert.is_truthy(why:find("revoked", 1, true))
    assert.is_false((ch:authenticates(wfile)))
    assert.are.equal(1, #ch:converged(wfile, "selftest", 0).count)
    ch:use("cpanel")
    -- the mask hides token-shaped words
    assert.are.equal("a <TOKEN> b", ch:mask("a " .. held.token .. " b"))
  end)

  -- SIGKILLs at random instants.
  local KILL_SCENARIOS = {
    { "cli-keep0", "cli", 0, 0.13, 0.06 }, { "cli-keep1", "cli", 1, 0.13, 0.06 },
    { "lib-keep0", "lib", 0, 0.13, 0.06 }, { "lib-keep1", "lib", 1, 0.13, 0.06 },
    { "whm-cli-keep1", "whm-cli", 1, 0.05, 0.04 }, { "whm-lib-keep0", "whm-lib", 0, 0.05, 0.04 },
  }
  for _, sc in ipairs(KILL_SCENARIOS) do
    it("kills: " .. sc[1], function()
      local S = new_scenario(sc[1], sc[2], sc[3])
      calibrate(S)
      kill_loop(S, share(sc[4], sc[5]))
      finish(S)
    end)
  end

  -- A slow server: every request delayed, so that kills land mid-request.
  local SLOW_SCENARIOS = {
    { "slow-cli-keep0", "cli", 0, 0.06, 0.12 }, { "slow-cli-keep1", "cli", 1, 0.06, 0.12 },
    { "slow-lib-keep0", "lib", 0, 0.06, 0.12 }, { "slow-lib-keep1", "lib", 1, 0.06, 0.12 },
  }
  for _, sc in ipairs(SLOW_SCENARIOS) do
    it("kills on a slow server: " .. sc[1], function()
      local S = new_scenario(sc[1], sc[2], sc[3], { latency = 50 + math.floor(random() * 151) })
      S.name = S.name .. " (" .. S.latency .. " ms)"
      set_latency(S)
      calibrate(S)
      kill_loop(S, share(sc[4], sc[5]))
      finish(S)
    end)
  end

  -- A failure at each step, run to its end; then failures and kills together.
  local FAULT_SCENARIOS = {
    { "faults-cli-keep0", "cli", 0, 0.06, 0.04 }, { "faults-cli-keep1", "cli", 1, 0.06, 0.04 },
    { "faults-lib-keep0", "lib", 0, 0.06, 0.04 }, { "faults-lib-keep1", "lib", 1, 0.06, 0.04 },
    { "faults-whm-cli-keep0", "whm-cli", 0, 0.03, 0.03 }, { "faults-whm-lib-keep1", "whm-lib", 1, 0.03, 0.03 },
  }
  for _, sc in ipairs(FAULT_SCENARIOS) do
    it("failures at each step, with and without kills: " .. sc[1], function()
      local S = new_scenario(sc[1], sc[2], sc[3])
      calibrate(S)
      local steps = { "list", "create", "verify", "revoke" }
      if S.kind:find("lib", 1, true) then
        steps[#steps + 1] = "store_nil"
        steps[#steps + 1] = "store_raise"
      end
      for _, step in ipairs(steps) do kill_iteration(S, step, 1) end
      store_dir_failure(S)
      local kills, seconds = share(sc[4], sc[5])
      kill_loop(S, kills, seconds, steps, 1 / 4)
      finish(S)
    end)
  end

  -- Overlapping rotations of one store (cron jobs that overlap).
  for _, keep in ipairs { 0, 1 } do
    it("overlapping rotations of one store: keep " .. keep, function()
      ch:use("cpanel")
      local S = new_scenario("overlap-keep" .. keep, "cli", keep)
      local groups = math.max(1, math.floor(OVERLAPS / 2 + 0.5))
      local deadline = socket.gettime() + SECONDS * 0.1
      for g = 1, groups do
        if socket.gettime() > deadline then
          S.cut_short = true
          break
        end
        -- slow enough that runs started up to 0.4 s apart overlap
        srv:fault("latency", { ms = 40 + math.floor(random() * 61) })
        local n = random() < 0.25 and 3 or 2
        local offsets = { 0 }
        for i = 2, n do offsets[i] = random() * 0.4 end
        table.sort(offsets)
        local t0, handles = socket.gettime(), {}
        for i = 1, n do
          local wait_for = t0 + offsets[i] - socket.gettime()
          if wait_for > 0 then socket.sleep(wait_for) end
          handles[i] = ch:spawn { kind = pick { "cli", "lib" }, file = S.file, prefix = S.prefix, keep = keep,
                                  delay = CAP, cap = true }
        end
        local any_ok, statuses = false, {}
        for i = 1, n do
          local r = ch:wait(handles[i])
          count_run(S, r)
          statuses[i] = tostring(r.status)
          local line = r.line:lower()
          if r.status == 0 then
            any_ok = true
            bump(S.concurrent, "ok")
          elseif line:find("lock", 1, true) or line:find("another rotation", 1, true)
              or line:find("in progress", 1, true) or line:find("busy", 1, true) then
            bump(S.concurrent, "lock")
          elseif line:find("auth", 1, true) then
            bump(S.concurrent, "auth")
          else
            bump(S.concurrent, "exit " .. tostring(r.status))
            note(S, "group " .. g .. ": exit " .. tostring(r.status) .. ": " .. r.line)
          end
        end
        srv:clear_faults()
        local what = string.format("group %d (%d runs, %s apart, exits %s)", g, n,
          table.concat((function()
            local t = {}
            for i = 2, n do t[#t + 1] = string.format("%.2f s", offsets[i] - offsets[i - 1]) end
            return t
          end)(), " and "), table.concat(statuses, " "))
        local sound = check_store(S, what)
        if any_ok then check_strays(S, what) end
        if sound then
          -- every run ended on its own: the store must be settled now
          local p = ch:converged(S.file, S.prefix, keep)
          for _, m in ipairs(p.count) do violation(S, "count", what .. ": " .. m) end
          for _, m in ipairs(p.unheld) do violation(S, "unheld", what .. ": " .. m) end
        end
      end
      finish(S)
    end)
  end
end)
