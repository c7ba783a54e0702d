--[[
`make bench`: measures cptokens against its baselines in one run, prints one
table of ratios with the targets, and writes it with the machine's description
to bench/RESULTS.md.

  CPTOKENS_BUILD=build/5.4 lua5.4 bench/bench.lua      (from the repository root)

Needs: the module built, build/bench/floor (bench/floor.c), hyperfine,
/usr/bin/python3 with requests, nginx-light (echo module), valgrind, taskset.
BENCH_QUICK=1 runs fewer rounds (for working on the harness; the figures are
then rougher). BENCH_OUT names the report (default bench/RESULTS.md).
BENCH_ONLY=trust runs only sections 6 and 7 (trust stores and shared connections,
one process against curl) and prints their rows (written only when BENCH_OUT is set);
BENCH_ONLY=7 runs only section 7 (one `cptokens` process against one `curl`: rows 7a, 7b).
BENCH_ONLY=fleet runs only section 8 (fleet audits: rows 8a, 8b) and prints its rows (written
only when BENCH_OUT is set); FLEET_CHUNK, when set, is the fleet's chunk (bench/lua_fleet.lua).

Everything talks to bench/server.lua's nginx on 127.0.0.1 only; the credential
is a dummy value that the fixed replies ignore, and it is read from a header
file, never put on a command line.
]]
local build = os.getenv("CPTOKENS_BUILD") or "build/5.4"
package.path = "./?.lua;lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath

local server = require "bench.server"
local util = require "spec.support.util"
local cjson = require "cjson"

local QUICK = os.getenv("BENCH_QUICK") == "1"
local ONLY = os.getenv("BENCH_ONLY")
local OUT = os.getenv("BENCH_OUT") or (not ONLY and "bench/RESULTS.md") or nil
local LUA = arg[-1] or "lua5.4"
local FLOOR = "build/bench/floor"
local PYTHON = "/usr/bin/python3"

-- How much of everything (medians are taken over the rounds).
local C = {
  rounds = QUICK and 3 or 11,         -- 1: rounds of (floor, list(), requests), interleaved
  warmup = 200, n = QUICK and 1000 or 2000, n_py = QUICK and 300 or 600,
  curl_runs = QUICK and 30 or 200,    -- 1: one curl process per call (hyperfine runs)
  batch_runs = QUICK and 3 or 7, seq_runs = QUICK and 1 or 3,  -- 2
  big_samples = QUICK and 5 or 11,    -- 3
  rss_n1 = 1000, rss_n2 = QUICK and 20000 or 100000,  -- 4
  memcheck_n = QUICK and 200 or 1000,
  cg_n1 = QUICK and 200 or 1000, cg_n2 = QUICK and 400 or 2000,  -- 5
  trust_reps = QUICK and 1 or 5, trust_rounds = QUICK and 2 or 10,  -- 6: processes per variant, rounds in each
  seq_accounts = 100, servers = 200, server_concurrency = 20, accounts = 1000, account_concurrency = 20,
  process_runs = QUICK and 30 or 150,  -- 7: hyperfine runs per command, in all
  process_rounds = QUICK and 2 or 10,  -- 7: ... spread over this many interleaved hyperfine calls
  fleet_runs = QUICK and 1 or 3,       -- 8: processes per row, interleaved (each about 5 s)
  fleet_alone = 50,                    -- 8: one Tokens::list at a time (curl), for the reply time
  fleet_servers = 100, fleet_one_in_flight = 50, fleet_per_server = 8, fleet_concurrency = 50,
}
local TARGET = { floor = 1.15, curl = 20, requests = 3, batch = 1.3, big = 2, rss_kib = 1024,
                 trust = 1.2, vs_curl_system = 0.5, vs_curl_one = 1.3,
                 fleet_one = 1.2, fleet_rss_mb = 150, fleet_many = 1.3 }
local DUMMY_TOKEN = "BENCHDUMMYTOKEN00000000000000000" -- not a secret: the bench server checks nothing

---------------------------------------------------------------- helpers

local shell_quote, read_file, write_file = util.shell_quote, util.read_file, util.write_file

local function say(fmt, ...) io.stderr:write("bench: " .. fmt:format(...) .. "\n") end

local scratch -- a file in the server's temp dir for stderr
-- Runs cmd; returns its stdout, or raises with its stderr when it fails.
local function run(cmd, ok_codes)
  -- (before the server's temp dir exists, stderr goes nowhere rather than to a file "nil")
  local p = assert(io.popen(cmd .. " 2>" .. (scratch and shell_quote(scratch) or "/dev/null"), "r"))
  local out = p:read("*a")
  local _, _, code = p:close()
  code = code or 0
  if code ~= 0 and not (ok_codes and ok_codes[code]) then
    error(("command failed (exit %s): %s\n%s"):format(tostring(code), cmd, scratch and read_file(scratch) or ""), 0)
  end
  return out, code
end

local function trim(s) return (tostring(s or ""):gsub("^%s+", ""):gsub("%s+$", "")) end

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  if n % 2 == 1 then return s[(n + 1) / 2] end
  return (s[n / 2] + s[n / 2 + 1]) / 2
end

local function minmax(t)
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(t) do lo, hi = math.min(lo, v), math.max(hi, v) end
  return lo, hi
end

local function dur(s) -- seconds, human-sized
  if s == nil then return "n/a" end
  if s < 1e-3 then return ("%.1f µs"):format(s * 1e6) end
  if s < 1 then return ("%.2f ms"):format(s * 1e3) end
  return ("%.2f s"):format(s)
end

local function spread(t) -- "min–max" of a list of seconds
  local lo, hi = minmax(t)
  return dur(lo) .. " – " .. dur(hi)
end

local function thousands(n)
  local s = ("%d"):format(math.floor(n + 0.5))
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^,", ""):gsub("^%-,", "-"))
end

-- PASS or MISS; "narrowly" when the ratio is within 5% of the target (run-to-run noise can flip it).
local function verdict(ok, ratio, target)
  local v = ok and "**PASS**" or "**MISS**"
  if ratio and math.abs(ratio / target - 1) < 0.05 then v = v .. " (narrowly)" end
  return v
end

---------------------------------------------------------------- the machine

local function machine()
  local cpuinfo = read_file("/proc/cpuinfo") or ""
  local meminfo = read_file("/proc/meminfo") or ""
  local core = require "cptokens.core"
  local m = {
    date = os.date("!%Y-%m-%d %H:%M UTC"),
    uname = trim(run("uname -a")),
    nproc = trim(run("nproc")),
    cpu = cpuinfo:match("model name%s*:%s*([^\n]+)") or "unknown",
    mem = ("%.1f GiB"):format((tonumber(meminfo:match("MemTotal:%s*(%d+)")) or 0) / 1048576),
    curl = trim(run("curl --version"):match("^[^\n]+")),
    libcurl = core.curl_version,
    openssl = trim(run("openssl version")),
    lua = _VERSION,
    cptokens = core._VERSION,
    nginx = trim(run("(/usr/sbin/nginx -v 2>&1)")),
    python = trim(run("(" .. PYTHON .. " --version 2>&1)")),
    requests = trim(run(PYTHON .. " -c 'import requests; print(requests.__version__)'")),
    valgrind = trim(run("valgrind --version")),
  }
  local hf = run("command -v hyperfine || true")
  m.hyperfine = trim(hf) ~= "" and trim(run("hyperfine --version")) or "not installed"
  return m
end

---------------------------------------------------------------- measurements

local srv, hf, PIN
local UA = "cptokens/" .. require("cptokens.core")._VERSION -- the User-Agent the library sends

-- 1. Sequential list() against its baselines.
local function sequential()
  local R = { floor = {}, hdr = {}, lua = {}, py = {} }
  local args = " " .. shell_quote(srv.url) .. " " .. shell_quote(srv.cafile) .. " " .. shell_quote(hf) .. " "
  for r = 1, C.rounds do
    say("1/8 sequential: round %d of %d (C floor, with the library's headers, list(), requests.Session)", r, C.rounds)
    R.floor[r] = tonumber((run(PIN .. FLOOR .. args .. C.warmup .. " " .. C.n))) / C.n
    R.hdr[r] = tonumber((run(PIN .. FLOOR .. args .. C.warmup .. " " .. C.n .. " " .. shell_quote(UA)))) / C.n
    R.lua[r] = tonumber((run(PIN .. LUA .. " bench/lua_list.lua time" .. args .. C.warmup .. " " .. C.n))) / C.n
    R.py[r] = tonumber((run(PIN .. PYTHON .. " bench/requests_session.py" .. args .. "50 " .. C.n_py))) / C.n_py
  end
  -- One curl process per call: the shell recipe. The header file keeps the
  -- (dummy) credential off the command line.
  local curl = "curl -sS --fail -o /dev/null --cacert " .. shell_quote(srv.cafile) .. " -H @" .. shell_quote(hf) .. " "
    .. shell_quote(srv.url .. "/execute/Tokens/list")
  R.curl = {}
  if trim(run("command -v hyperfine || true")) ~= "" then
    say("1/8 sequential: one curl process per call (hyperfine, %d runs)", C.curl_runs)
    local json = srv.dir .. "/hyperfine.json"
    run(PIN .. "hyperfine -N --style none --warmup 10 --runs " .. C.curl_runs .. " --export-json "
      .. shell_quote(json) .. " " .. shell_quote(curl) .. " >/dev/null")
    R.curl = cjson.decode(assert(read_file(json))).results[1].times
    R.curl_how = ("hyperfine -N, %d runs, median"):format(C.curl_runs)
  else
    say("1/8 sequential: hyperfine missing; timing a shell loop of curl processes")
    local socket = require "socket"
    for r = 1, 5 do
      local t0 = socket.gettime()
      run(PIN .. "sh -c " .. shell_quote("i=0; while [ $i -lt 40 ]; do " .. curl .. " || exit 1; i=$((i+1)); done"))
      R.curl[r] = (socket.gettime() - t0) / 40
    end
    R.curl_how = "shell loop of 40 curl processes, 5 rounds, median"
  end
  R.m = { floor = median(R.floor), hdr = median(R.hdr), lua = median(R.lua), py = median(R.py), curl = median(R.curl) }
  return R
end

-- Server-side view of one batch: requests in flight, from the /slow access log.
local function slow_profile(records, t0, t1, concurrency)
  local inside, busy = {}, 0
  for _, rec in ipairs(records) do
    if rec.start >= t0 - 0.002 and rec.stop <= t1 + 0.002 then
      inside[#inside + 1] = rec
      busy = busy + (rec.stop - rec.start)
    end
  end
  table.sort(inside, function(a, b) return a.start < b.start end)
  local full, ms = 0, 0
  for t = t0, t1, 0.001 do
    local n = 0
    for _, rec in ipairs(inside) do
      if rec.start <= t and t < rec.stop then n = n + 1 end
    end
    ms = ms + 1
    if n >= concurrency then full = full + 1 end
  end
  return {
    requests = #inside,
    mean_inflight = busy / (t1 - t0),
    all_busy = ms > 0 and full / ms or 0,
    ramp = inside[concurrency] and (inside[concurrency].start - t0) or nil,
  }
end

-- 2. batch of 200 jobs over 20 accounts at concurrency 20, 50 ms per reply.
local function batch()
  say("2/8 batch: %d timed batches of 200 jobs, then %d sequential runs (about 10 s each)", C.batch_runs, C.seq_runs)
  local out = run(PIN .. LUA .. " bench/lua_batch.lua " .. shell_quote(srv.slow_url) .. " " .. shell_quote(srv.cafile) .. " "
    .. shell_quote(hf) .. " " .. C.batch_runs .. " " .. C.seq_runs .. " 200 20 20")
  local R = { batch = {}, seq = {}, windows = {} }
  for t0, t1 in out:gmatch("batch (%S+) (%S+)") do
    R.windows[#R.windows + 1] = { tonumber(t0), tonumber(t1) }
    R.batch[#R.batch + 1] = tonumber(t1) - tonumber(t0)
  end
  for s in out:gmatch("seq (%S+)") do R.seq[#R.seq + 1] = tonumber(s) end
  R.one = tonumber(out:match("one (%S+)"))
  local records = {}
  for stop, took in (read_file(srv.slow_log) or ""):gmatch("(%S+) (%S+)\n") do
    records[#records + 1] = { start = tonumber(stop) - tonumber(took), stop = tonumber(stop) }
  end
  local inflight, all_busy, ramp = {}, {}, {}
  for i, w in ipairs(R.windows) do
    local p = slow_profile(records, w[1], w[2], 20)
    inflight[i], all_busy[i], ramp[i] = p.mean_inflight, p.all_busy, p.ramp or 0
  end
  R.ideal = 200 / 20 * 0.05
  R.m = { batch = median(R.batch), seq = median(R.seq), inflight = median(inflight), all_busy = median(all_busy),
          ramp = median(ramp) }
  return R
end

-- 3. list() of 10,000 tokens against cjson.decode of the same body.
local function big()
  say("3/8 10,000 tokens: %d samples of list() and of cjson.decode", C.big_samples)
  local out = run(PIN .. LUA .. " bench/lua_big.lua " .. shell_quote(srv.big_url) .. " " .. shell_quote(srv.cafile) .. " "
    .. shell_quote(hf) .. " " .. shell_quote(srv.big_body) .. " " .. shell_quote(srv.small_body) .. " " .. C.big_samples)
  local R = { list = {}, decode = {}, transfer = {} }
  for s in out:gmatch("list (%S+)") do R.list[#R.list + 1] = tonumber(s) end
  for s in out:gmatch("decode (%S+)") do R.decode[#R.decode + 1] = tonumber(s) end
  R.small_decode = tonumber(out:match("small (%S+)"))
  -- The HTTPS transfer alone: the C floor fetching the same 10,000-token body.
  for r = 1, 3 do
    R.transfer[r] = tonumber((run(PIN .. FLOOR .. " " .. shell_quote(srv.big_url) .. " " .. shell_quote(srv.cafile) .. " "
      .. shell_quote(hf) .. " 3 20"))) / 20
  end
  R.bytes = #read_file(srv.big_body)
  R.m = { list = median(R.list), decode = median(R.decode), transfer = median(R.transfer) }
  return R
end

-- 4. Memory: RSS growth, and memcheck's definite leaks.
local function memory()
  say("4/8 memory: RSS over %s list() calls", thousands(C.rss_n2))
  local args = " " .. shell_quote(srv.url) .. " " .. shell_quote(srv.cafile) .. " " .. shell_quote(hf) .. " "
  local a, b = run(PIN .. LUA .. " bench/lua_list.lua rss" .. args .. C.rss_n1 .. " " .. C.rss_n2):match("(%d+) (%d+)")
  local R = { rss1 = tonumber(a), rss2 = tonumber(b) }
  say("4/8 memory: valgrind memcheck over %s list() calls", thousands(C.memcheck_n))
  local log = srv.dir .. "/memcheck.log"
  local _, code = run("valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99"
    .. " --suppressions=spec/support/valgrind.supp --log-file=" .. shell_quote(log) .. " "
    .. LUA .. " bench/lua_list.lua loop" .. args .. C.memcheck_n, { [99] = true })
  local text = read_file(log) or ""
  R.definite = tonumber(((text:match("definitely lost: ([%d,]+) bytes") or "0"):gsub(",", "")))
  R.definite_blocks = tonumber(((text:match("definitely lost: [%d,]+ bytes in ([%d,]+) blocks") or "0"):gsub(",", "")))
  R.errors = tonumber(((text:match("ERROR SUMMARY: ([%d,]+) errors") or "?"):gsub(",", "")))
  R.exit = code
  return R
end

-- callgrind_annotate's per-function lines: { [function] = Ir } and { [object] = Ir }.
local function annotate(file, inclusive)
  local out = run("callgrind_annotate --inclusive=" .. (inclusive and "yes" or "no")
    .. " --auto=no --threshold=100 " .. shell_quote(file))
  local fns, objs = {}, {}
  for line in out:gmatch("[^\n]+") do
    local ir, rest = line:match("^%s*([%d,]+)%s+%(%s*[%d.]+%%%)%s+(.+)$")
    if ir and not rest:find("PROGRAM TOTALS", 1, true) and not rest:find("=>", 1, true) then
      ir = tonumber((ir:gsub(",", "")))
      local obj = rest:match("%[([^%]]+)%]%s*$")
      local name = rest:gsub("%s*%[[^%]]+%]%s*$", "")
      local fn = name:match(":([^:]+)$") or name
      fns[fn] = math.max(fns[fn] or 0, ir)
      if obj then
        obj = obj:match("([^/]+)$")
        objs[obj] = (objs[obj] or 0) + ir
      end
    end
  end
  return fns, objs
end

local function callgrind_total(file)
  local text = assert(read_file(file), "no callgrind output " .. file)
  return tonumber(text:match("\nsummary:%s*(%d+)") or text:match("\ntotals:%s*(%d+)"))
end

-- 5. Instructions per call: the difference of two runs removes start-up.
local function instructions()
  local R = {}
  local args = " " .. shell_quote(srv.url) .. " " .. shell_quote(srv.cafile) .. " " .. shell_quote(hf) .. " "
  local function cg(name, cmd, n)
    local file = srv.dir .. "/callgrind." .. name .. "." .. n
    run("valgrind --tool=callgrind --dump-instr=no --callgrind-out-file=" .. shell_quote(file) .. " " .. cmd .. " >/dev/null")
    return file
  end
  say("5/8 callgrind: list() loops of %d and %d calls, C floor the same", C.cg_n1, C.cg_n2)
  local k = C.cg_n2 - C.cg_n1
  local l1 = cg("lua", LUA .. " bench/lua_list.lua loop" .. args .. C.cg_n1, C.cg_n1)
  local l2 = cg("lua", LUA .. " bench/lua_list.lua loop" .. args .. C.cg_n2, C.cg_n2)
  local f1 = cg("floor", FLOOR .. args .. "0 " .. C.cg_n1, C.cg_n1)
  local f2 = cg("floor", FLOOR .. args .. "0 " .. C.cg_n2, C.cg_n2)
  local h1 = cg("hdr", FLOOR .. args .. "0 " .. C.cg_n1 .. " " .. shell_quote(UA), C.cg_n1)
  local h2 = cg("hdr", FLOOR .. args .. "0 " .. C.cg_n2 .. " " .. shell_quote(UA), C.cg_n2)
  R.lua = (callgrind_total(l2) - callgrind_total(l1)) / k
  R.floor = (callgrind_total(f2) - callgrind_total(f1)) / k
  R.hdr = (callgrind_total(h2) - callgrind_total(h1)) / k
  -- Inclusive costs of the stages of a list() call (csrc/ has symbols).
  local i1, i2 = annotate(l1, true), annotate(l2, true)
  local function per(fn) return ((i2[fn] or 0) - (i1[fn] or 0)) / k end
  local fi1, fi2 = annotate(f1, true), annotate(f2, true)
  local hi1, hi2 = annotate(h1, true), annotate(h2, true)
  R.stage = {
    hdr_transport = ((hi2.curl_easy_perform or 0) - (hi1.curl_easy_perform or 0)) / k,
    transport = per("cpt_curl_perform"),
    decode = per("json_decode"),
    response = per("cpt_response_decode"),
    floor_transport = ((fi2.curl_easy_perform or 0) - (fi1.curl_easy_perform or 0)) / k,
  }
  -- Exclusive costs per shared object.
  local _, o1 = annotate(l1, false)
  local _, o2 = annotate(l2, false)
  local _, p1 = annotate(f1, false)
  local _, p2 = annotate(f2, false)
  R.objects = {}
  local seen = {}
  for _, t in ipairs{ o2, p2 } do
    for obj in pairs(t) do
      if not seen[obj] then
        seen[obj] = true
        local lua = ((o2[obj] or 0) - (o1[obj] or 0)) / k
        local floor = ((p2[obj] or 0) - (p1[obj] or 0)) / k
        if math.abs(lua) >= 500 or math.abs(floor) >= 500 then
          R.objects[#R.objects + 1] = { obj = obj, lua = lua, floor = floor }
        end
      end
    end
  end
  table.sort(R.objects, function(a, b) return a.lua > b.lua end)
  return R
end

-- The trust stores of sections 6 and 7, made in the server's temp dir: the machine's CA
-- bundle with the bench CA appended ("system-sized"), and the machine's hashed CA directory
-- with the bench CA added. Nothing touches the machine's own trust settings.
local function trust_files()
  local T = { one = srv.cafile, bundle = srv.dir .. "/system-sized.pem", dir = srv.dir .. "/system-sized.d" }
  write_file(T.bundle, assert(read_file("/etc/ssl/certs/ca-certificates.crt")) .. "\n" .. assert(read_file(srv.cafile)))
  run("mkdir -p " .. shell_quote(T.dir))
  T.count = 0
  for name in run("ls /etc/ssl/certs"):gmatch("[^\n]+") do
    if name:match("%.pem$") then
      run("ln -s " .. shell_quote("/etc/ssl/certs/" .. name) .. " " .. shell_quote(T.dir .. "/" .. name))
      T.count = T.count + 1
    end
  end
  run("cp " .. shell_quote(srv.cafile) .. " " .. shell_quote(T.dir .. "/bench-ca.pem"))
  run("openssl rehash " .. shell_quote(T.dir))
  T.bundle_bytes = #read_file(T.bundle)
  T.bundle_certs = select(2, read_file(T.bundle):gsub("BEGIN CERTIFICATE", ""))
  return T
end

-- The variants each figure of section 6 compares: trust kind and path.
local TRUST_VARIANTS = { "one", "bundle", "dir" }
local function trust_arg(T, v)
  if v == "dir" then return "capath " .. shell_quote(T.dir) end
  return "cafile " .. shell_quote(T[v])
end

-- 6. Trust: the same work with a one-certificate CA, the system-sized bundle and the
-- system-sized hashed directory, each in processes of their own, interleaved.
local function trust(T)
  local modes = {
    seq = ("seq %d %s"):format(C.seq_accounts, shell_quote(srv.url)),
    servers = ("batch %d %s"):format(C.server_concurrency, table.concat((function()
      local q = {}
      for i, u in ipairs(srv.server_urls) do q[i] = shell_quote(u) end
      return q
    end)(), " ")),
    accounts = ("accounts %d %d %s"):format(C.accounts, C.account_concurrency, shell_quote(srv.url)),
  }
  local R = {}
  for name in pairs(modes) do
    R[name] = {}
    for _, v in ipairs(TRUST_VARIANTS) do R[name][v] = { rounds = {}, cold = {} } end
  end
  for rep = 1, C.trust_reps do
    for _, name in ipairs { "seq", "servers", "accounts" } do
      say("6/8 trust: %s, repetition %d of %d (one-certificate CA, system-sized bundle, hashed directory)", name, rep,
        C.trust_reps)
      for _, v in ipairs(TRUST_VARIANTS) do
        local out = run(PIN .. LUA .. " bench/lua_trust.lua " .. modes[name]:match("^(%S+)") .. " " .. trust_arg(T, v)
          .. " " .. shell_quote(hf) .. " " .. C.trust_rounds .. " " .. modes[name]:gsub("^%S+ ", ""))
        local r = R[name][v]
        r.cold[#r.cold + 1] = tonumber(out:match("cold (%S+)"))
        for x in out:gmatch("round (%S+)") do r.rounds[#r.rounds + 1] = tonumber(x) end
      end
    end
  end
  for _, byv in pairs(R) do
    for _, r in pairs(byv) do r.m, r.mcold = median(r.rounds), median(r.cold) end
  end
  return R
end

-- 7. One `cptokens list` process against one `curl` process, each with the same store.
local function processes(T)
  local R = { how = ("hyperfine -N, %d runs each in %d interleaved rounds, median"):format(
    math.ceil(C.process_runs / C.process_rounds) * C.process_rounds, C.process_rounds) }
  if trim(run("command -v hyperfine || true")) == "" then
    say("7/8 processes: hyperfine missing; skipped")
    return nil
  end
  local tf = srv.dir .. "/token.txt"
  util.write_private(tf, DUMMY_TOKEN .. "\n")
  -- The tool as users run it: `make install` into a scratch PREFIX (its launcher, with the
  -- Lua's absolute path in its #! line; the modules as make installs them: bytecode for
  -- 5.2-5.4). The source tree's `lua bin/cptokens` is measured beside it.
  local inst = srv.dir .. "/inst"
  local ver = build:match("build/(.+)$") or "5.4"
  run("make -s install PREFIX=" .. shell_quote(inst) .. " LUA_VERSION=" .. shell_quote(ver) .. " BUILD="
    .. shell_quote(build) .. " >/dev/null")
  local launcher = inst .. "/bin/cptokens-" .. ver
  local luadir = inst .. "/share/lua/" .. (ver == "luajit" and "5.1" or ver)
  R.precompiled = (read_file(luadir .. "/cptokens/cli.lua") or ""):sub(1, 1) == "\27"
  local largs = "list --url " .. shell_quote(srv.url) .. " --user bench --token-file " .. shell_quote(tf) .. " "
  local cpt = shell_quote(launcher) .. " " .. largs
  local curl = "curl -sS --fail -o /dev/null -H @" .. shell_quote(hf) .. " "
  local target = " " .. shell_quote(srv.url .. "/execute/Tokens/list")
  local installed = "package.path = '" .. luadir .. "/?.lua;' .. package.path; "
  R.cmds = {
    { key = "cpt_sys", cmd = cpt .. "--capath " .. shell_quote(T.dir) },
    { key = "curl_sys", cmd = curl .. "--cacert " .. shell_quote(T.bundle) .. target },
    { key = "cpt_one", cmd = cpt .. "--cafile " .. shell_quote(T.one) },
    { key = "curl_one", cmd = curl .. "--cacert " .. shell_quote(T.one) .. target },
    { key = "cpt_bundle", cmd = cpt .. "--cafile " .. shell_quote(T.bundle) },
    { key = "curl_dir", cmd = curl .. "--capath " .. shell_quote(T.dir) .. target },
    { key = "cpt_one_src", cmd = LUA .. " bin/cptokens " .. largs .. "--cafile " .. shell_quote(T.one) },
    -- where one process's time goes
    { key = "lua_start", cmd = LUA .. " -e ''" },
    { key = "core_load", cmd = LUA .. " -e 'require[[cptokens.core]]'" },
    { key = "cli_load", cmd = LUA .. " -e " .. shell_quote(installed .. "require[[cptokens.cli]]") },
    { key = "cli_load_src", cmd = LUA .. " -e 'require[[cptokens.cli]]'" },
    { key = "curl_version", cmd = "curl --version" },
  }
  -- The curl tool reads CURL_CA_BUNDLE, SSL_CERT_FILE and SSL_CERT_DIR (libcurl and
  -- cptokens do not): unset, so that both see only what their command line names.
  local env = "env -u CURL_CA_BUNDLE -u SSL_CERT_FILE -u SSL_CERT_DIR -u LUA_INIT -u LUA_INIT_5_4 LUA_PATH="
    .. shell_quote("lua/?.lua;lua/?/init.lua;;") .. " LUA_CPATH=" .. shell_quote(build .. "/?.so;;") .. " "
  for _, c in ipairs(R.cmds) do run(env .. c.cmd .. " >/dev/null") end -- each works
  -- The machine's speed drifts over seconds (a VM's neighbours): one hyperfine call runs
  -- every run of a command before the next command's, so a drift between two blocks would
  -- show as a ratio. The runs are spread over rounds instead, each a hyperfine call with
  -- every command, in the opposite order every other round; a command's median is over all
  -- of its runs.
  local per = math.ceil(C.process_runs / C.process_rounds)
  say("7/8 processes: %d runs of each of %d commands (hyperfine, %d interleaved rounds)", per * C.process_rounds,
    #R.cmds, C.process_rounds)
  local json = srv.dir .. "/hyperfine-trust.json"
  local times = {}
  for _, c in ipairs(R.cmds) do times[c.key] = {} end
  for round = 1, C.process_rounds do
    local order = {}
    for i = 1, #R.cmds do order[i] = round % 2 == 1 and R.cmds[i] or R.cmds[#R.cmds + 1 - i] end
    local args = {}
    for i, c in ipairs(order) do args[i] = shell_quote(c.cmd) end
    run(env .. PIN .. "hyperfine -N --style none --warmup " .. (round == 1 and 10 or 3) .. " --runs " .. per
      .. " --export-json " .. shell_quote(json) .. " " .. table.concat(args, " ") .. " >/dev/null")
    for i, res in ipairs(cjson.decode(assert(read_file(json))).results) do
      local t = times[order[i].key]
      for _, x in ipairs(res.times) do t[#t + 1] = x end
    end
  end
  R.m, R.spread = {}, times
  for key, t in pairs(times) do R.m[key] = median(t) end
  return R
end

-- 8. Fleet audits: cptokens.fleet against the bench server's fleet bases (listaccts at once,
-- each account's Tokens::list after 20 ms), one process per run, the two rows interleaved.
local FLEET_DELAY = 0.02 -- the bench server's echo_sleep before each account's Tokens::list

-- CPU seconds (user + system) the nginx workers have used so far.
local function server_cpu(hz)
  local sum = 0
  for _, pid in ipairs(srv:worker_pids()) do
    -- /proc/<pid>/stat after "(comm) ": state is field 3, utime 14, stime 15
    local f = {}
    for x in ((read_file("/proc/" .. pid .. "/stat") or ""):match("%) (.*)$") or ""):gmatch("%S+") do f[#f + 1] = x end
    sum = sum + ((tonumber(f[12]) or 0) + (tonumber(f[13]) or 0)) / hz
  end
  return sum
end

local function fleet()
  assert(#srv.server_urls >= C.fleet_servers, ("the bench server needs %d more ports"):format(C.fleet_servers))
  local one, many = srv.dir .. "/fleet-one.txt", srv.dir .. "/fleet-many.txt"
  write_file(one, srv.url .. "/f10k\n")
  local urls = {}
  for i = 1, C.fleet_servers do urls[i] = srv.server_urls[i] .. "/f100" end
  write_file(many, table.concat(urls, "\n") .. "\n")
  local hz = tonumber(trim(run("getconf CLK_TCK"))) or 100
  local chunk = tonumber(os.getenv("FLEET_CHUNK") or "")
  local R = {
    chunk = chunk or require("cptokens.fleet").CHUNK, chunk_set = chunk ~= nil,
    rows = {
      { id = "8a", file = one, servers = 1, each = server.FLEET_SIZES.f10k, per_server = C.fleet_one_in_flight,
        concurrency = C.fleet_one_in_flight },
      { id = "8b", file = many, servers = C.fleet_servers, each = server.FLEET_SIZES.f100,
        per_server = C.fleet_per_server, concurrency = C.fleet_concurrency },
    },
  }
  for _, r in ipairs(R.rows) do
    r.accounts = r.servers * r.each
    r.slots = math.min(r.concurrency, r.servers * r.per_server)
    -- the global limit, or one server's accounts through its own limit, whichever takes longer
    r.ideal = math.max(r.accounts * FLEET_DELAY / r.slots, r.each * FLEET_DELAY / r.per_server)
    r.times, r.cpu, r.srv_cpu, r.hwm = {}, {}, {}, {}
  end
  -- One account's Tokens::list alone: the server's own reply time (curl, one kept-alive
  -- connection, the first request's connection set-up left out).
  local reqs = {}
  for i = 1, C.fleet_alone + 1 do reqs[i] = "-o /dev/null " .. shell_quote(srv.url .. "/f10k/json-api/cpanel") end
  local alone = {}
  for x in run(PIN .. "curl -sS --fail --cacert " .. shell_quote(srv.cafile) .. " -H @" .. shell_quote(hf)
    .. " -w '%{time_total}\\n' " .. table.concat(reqs, " ")):gmatch("%S+") do alone[#alone + 1] = tonumber(x) end
  table.remove(alone, 1)
  R.alone = median(alone)
  for k = 1, C.fleet_runs do
    for _, r in ipairs(R.rows) do
      say("8/8 fleet: %s, run %d of %d (audit of %s accounts on %d server%s, per_server %d, concurrency %d)", r.id, k,
        C.fleet_runs, thousands(r.accounts), r.servers, r.servers == 1 and "" or "s", r.per_server, r.concurrency)
      local cmd = PIN .. LUA .. " bench/lua_fleet.lua " .. shell_quote(r.file) .. " " .. shell_quote(srv.cafile) .. " "
        .. shell_quote(hf) .. " " .. r.each .. " " .. r.per_server .. " " .. r.concurrency
      local c0 = server_cpu(hz)
      -- the shell's `times`: its children's user and system CPU (the client process)
      local out = run("sh -c " .. shell_quote(cmd .. " && times"))
      local c1 = server_cpu(hz)
      local secs, reached, _, tokens, hwm = out:match("fleet (%S+) (%d+) (%d+) (%d+) (%d+)")
      assert(secs and tonumber(reached) == r.accounts and tonumber(tokens) == r.accounts * server.FLEET_TOKENS,
        "bench/lua_fleet.lua: unexpected output: " .. out)
      local um, us, sm, ss = out:match("\n[^\n]*\n(%d+)m([%d.]+)s (%d+)m([%d.]+)s")
      r.times[k], r.hwm[k], r.srv_cpu[k] = tonumber(secs), tonumber(hwm), c1 - c0
      r.cpu[k] = um and (tonumber(um) * 60 + tonumber(us) + tonumber(sm) * 60 + tonumber(ss)) or nil
    end
  end
  for _, r in ipairs(R.rows) do
    r.m, r.m_cpu, r.m_srv = median(r.times), median(r.cpu), median(r.srv_cpu)
    r.hwm_max = select(2, minmax(r.hwm))
    r.rss_mb = r.hwm_max * 1024 / 1e6
  end
  return R
end

---------------------------------------------------------------- the report

-- Rows and section of 6 and 7 (also printed alone with BENCH_ONLY=trust).
local function trust_report(add, TR, P, pass)
  local function ratio(name, v) return TR[name][v].m / TR[name].one.m end
  local function worst(name) return math.max(ratio(name, "bundle"), ratio(name, "dir")) end
  local rows = {
    { id = "6a", name = "seq", what = ("%d accounts of one server in sequence (a client each, one `list()` each,"
      .. " closed), system-sized store vs one-certificate CA"):format(C.seq_accounts) },
    { id = "6b", name = "servers", what = ("`batch` over %d servers (one `list` each, concurrency %d), system-sized"
      .. " store vs one-certificate CA"):format(C.servers, C.server_concurrency) },
    { id = "6c", name = "accounts", what = ("%s accounts of one server through `batch` (concurrency %d),"
      .. " system-sized store vs one-certificate CA"):format(thousands(C.accounts), C.account_concurrency) },
  }
  for _, r in ipairs(TR and rows or {}) do
    local x = TR[r.name]
    local w = worst(r.name)
    pass[r.id] = w <= TARGET.trust
    add("| %s | %s | bundle %s, hashed directory %s vs %s | %.2f× (bundle %.2f×, directory %.2f×) | ≤ %.1f× | %s |",
      r.id, r.what, dur(x.bundle.m), dur(x.dir.m), dur(x.one.m), w, ratio(r.name, "bundle"), ratio(r.name, "dir"),
      TARGET.trust, verdict(pass[r.id], w, TARGET.trust))
  end
  if P then
    local r1 = P.m.cpt_sys / P.m.curl_sys
    local r2 = P.m.cpt_one / P.m.curl_one
    pass["7a"], pass["7b"] = r1 <= TARGET.vs_curl_system, r2 <= TARGET.vs_curl_one
    add("| 7a | one `cptokens list` process with the system store (system-sized hashed directory) vs one `curl`"
      .. " with the system store (system-sized bundle, `--cacert`) | %s vs %s | %.2f× | ≤ %.1f× | %s |",
      dur(P.m.cpt_sys), dur(P.m.curl_sys), r1, TARGET.vs_curl_system, verdict(pass["7a"], r1, TARGET.vs_curl_system))
    add("| 7b | one `cptokens list` process vs one `curl`, both with a one-certificate CA | %s vs %s | %.2f× | ≤ %.1f× |"
      .. " %s |", dur(P.m.cpt_one), dur(P.m.curl_one), r2, TARGET.vs_curl_one, verdict(pass["7b"], r2, TARGET.vs_curl_one))
  else
    add("| 7a, 7b | one `cptokens list` process vs one `curl` | hyperfine missing | — | — | not run |")
  end
  return rows
end

local function trust_sections(add, T, TR, P, rows)
  if TR then
    add("## 6. Trust: the system-sized store costs what a one-certificate CA costs")
    add("")
    add("The system-sized store is this machine's CA bundle (/etc/ssl/certs/ca-certificates.crt) with the bench"
      .. " CA appended: %d certificates, %s bytes, given as `cafile`; and the same certificates as a hashed"
      .. " directory (%d links to /etc/ssl/certs plus the bench CA, `openssl rehash`), given as `capath`,"
      .. " which is what the system store is on Debian (`cptokens.new` without `cafile`/`capath` uses libcurl's"
      .. " built-in CA directory, /etc/ssl/certs, looked up lazily, and parses no bundle). The baseline is the"
      .. " bench CA alone as `cafile`. Each variant runs in processes of its own (%d per variant, interleaved),"
      .. " %d timed rounds each after an untimed first one; before every round the pooled connections are"
      .. " closed (`cptokens.close_idle()`), so every round opens its connections and does its handshakes anew"
      .. " and only the store stays loaded (bench/lua_trust.lua).", T.bundle_certs, thousands(T.bundle_bytes),
      T.count, C.trust_reps, C.trust_rounds)
    add("")
    add("| | one-certificate CA | system-sized bundle | hashed directory | first round (loads the store):"
      .. " bundle / directory / one |")
    add("|---|---|---|---|---|")
    for _, r in ipairs(rows) do
      local x = TR[r.name]
      add("| %s %s | %s | %s | %s | %s / %s / %s |", r.id, r.name == "seq" and "sequence" or r.name == "servers"
        and "200 servers" or "1,000 accounts", dur(x.one.m), dur(x.bundle.m), dur(x.dir.m), dur(x.bundle.mcold),
        dur(x.dir.mcold), dur(x.one.mcold))
    end
    add("")
    add("Before this change (issue 12, the same kind of machine) every new TLS connection parsed the whole bundle"
      .. " again (about 45 ms of CPU): 100 accounts took 5.0 s with the bundle against 0.34 s with one certificate"
      .. " (15×), 200 servers 10.2 s against 0.74 s (13×), 1,000 accounts 1.27 s against 0.29 s (4.5×). Now a"
      .. " store is built once per process and trust configuration, and the clients of one server share their"
      .. " keep-alive connections, so the %d accounts in sequence make one TLS handshake; the one-time cost of the"
      .. " bundle shows only in the first round (above).", C.seq_accounts)
    add("")
  end
  if P then
    add("## 7. One process against `curl`")
    add("")
    add("`cptokens list --url URL --user bench --token-file FILE` with `--capath` (the system store, as above) or"
      .. " `--cafile`, against `curl -sS --fail -o /dev/null -H @headerfile` with `--cacert`; %s, client pinned to"
      .. " CPU 0. The curl tool's own variables (CURL_CA_BUNDLE, SSL_CERT_FILE, SSL_CERT_DIR) are unset for both."
      .. " `curl` with the system store is `--cacert` of the system-sized bundle: that is how curl uses the"
      .. " system store (libcurl's built-in CA bundle, which it parses on every run).", P.how)
    add("")
    add("| command | median | min – max |")
    add("|---|---|---|")
    local label = {
      cpt_sys = "`cptokens list --capath` system-sized directory", curl_sys = "`curl --cacert` system-sized bundle",
      cpt_one = "`cptokens list --cafile` one certificate", curl_one = "`curl --cacert` one certificate",
      cpt_bundle = "`cptokens list --cafile` system-sized bundle (for comparison)",
      curl_dir = "`curl --capath` system-sized directory (for comparison: curl still loads its built-in bundle)",
    }
    label.cpt_one_src = "`" .. LUA .. " bin/cptokens list --cafile` one certificate, from the source tree"
      .. " (for comparison)"
    label.lua_start = "`" .. LUA .. " -e ''`: the interpreter alone"
    label.core_load = "`" .. LUA .. " -e 'require[[cptokens.core]]'`: + libcurl, OpenSSL, the C module"
    label.cli_load = "`" .. LUA .. " -e 'require[[cptokens.cli]]'`, the installed modules: + loading the CLI's"
      .. (P.precompiled and " bytecode" or " source")
    label.cli_load_src = "`" .. LUA .. " -e 'require[[cptokens.cli]]'`, the source tree's: + compiling the CLI's source"
    label.curl_version = "`curl --version`: curl with libcurl loaded, nothing sent"
    for _, c in ipairs(P.cmds) do add("| %s | %s | %s |", label[c.key], dur(P.m[c.key]), spread(P.spread[c.key])) end
    add("")
    local m = P.m
    local text = ("`cptokens` is the tool as `make install` puts it in place (into a scratch PREFIX), its modules"
      .. " %s. Where `cptokens list` (one certificate, %s) spends its time beside `curl` (%s): the Lua"
      .. " interpreter starts in %s; loading libcurl with its libraries and the C module takes %s more (curl"
      .. " starts with the same libcurl in %s); loading the command-line tool's Lua takes %s more (%s when"
      .. " compiled from source, as from the source tree); the request itself (connection, TLS handshake with the"
      .. " one-certificate store, reply, and the rest of the tool's modules) is then %s, against curl's %s. From"
      .. " the source tree, compiling every module on each start, the same command takes %s: %.2f× curl.")
      :format(P.precompiled and "precompiled (bytecode, scripts/precompile.lua)" or "as source",
      dur(m.cpt_one), dur(m.curl_one), dur(m.lua_start), dur(m.core_load - m.lua_start), dur(m.curl_version),
      dur(m.cli_load - m.core_load), dur(m.cli_load_src - m.core_load), dur(m.cpt_one - m.cli_load),
      dur(m.curl_one - m.curl_version), dur(m.cpt_one_src), m.cpt_one_src / m.curl_one)
    add("%s", text)
    add("")
  end
end

-- Rows and section of 8 (also printed alone with BENCH_ONLY=fleet).
local function fleet_report(add, F, pass)
  if not F then return end
  local a, b = F.rows[1], F.rows[2]
  local ra, rb = a.m / a.ideal, b.m / b.ideal
  pass["8a"] = ra <= TARGET.fleet_one and a.rss_mb <= TARGET.fleet_rss_mb
  pass["8b"] = rb <= TARGET.fleet_many
  local va = verdict(pass["8a"], ra, TARGET.fleet_one)
  if not va:find("narrowly", 1, true) and math.abs(a.rss_mb / TARGET.fleet_rss_mb - 1) < 0.05 then
    va = va .. " (narrowly)"
  end
  add("| 8a | `fleet:audit` of %s accounts behind one WHM server (each account's Tokens::list answered after 20 ms),"
    .. " %d in flight (`per_server` %d, `concurrency` %d), vs the ideal %s × 20 ms / %d; and the process's peak RSS"
    .. " | %s vs %s; peak RSS %.1f MB | %.2f× the ideal | ≤ %.1f×; peak RSS ≤ %d MB | %s |", thousands(a.accounts),
    a.slots, a.per_server, a.concurrency, thousands(a.accounts), a.slots, dur(a.m), dur(a.ideal), a.rss_mb, ra,
    TARGET.fleet_one, TARGET.fleet_rss_mb, va)
  add("| 8b | `fleet:audit` of %d servers × %d accounts, `per_server` %d, `concurrency` %d, 20 ms replies, vs the"
    .. " ideal %s × 20 ms / min(%d, %d × %d) | %s vs %s | %.2f× the ideal | ≤ %.1f× | %s |", b.servers, b.each,
    b.per_server, b.concurrency, thousands(b.accounts), b.concurrency, b.servers, b.per_server, dur(b.m),
    dur(b.ideal), rb, TARGET.fleet_many, verdict(pass["8b"], rb, TARGET.fleet_many))
end

local function fleet_section(add, F, pass)
  if not F then return end
  local a, b = F.rows[1], F.rows[2]
  local chunks = math.ceil(a.accounts / F.chunk)
  add("## 8. Fleet audits%s", (pass["8a"] == false or pass["8b"] == false) and " (why a row is missed)" or "")
  add("")
  add("`cptokens.fleet(servers, { per_server = P, concurrency = %d }):audit{ within = \"14d\" }` in a process of"
    .. " its own (bench/lua_fleet.lua), %d run%s of each row, interleaved. The time is the whole audit, from"
    .. " `cptokens.fleet` to the report: listaccts and api_token_list on every server, a client for each account,"
    .. " every account's Tokens::list through /json-api/cpanel, the report. Every run must reach every account"
    .. " and count every token (%d per account), or the bench fails. The bench server answers listaccts and"
    .. " api_token_list at once and each Tokens::list after `echo_sleep 0.02`. The ideal is the accounts × 20 ms"
    .. " over the requests that may be in flight, min(`concurrency`, servers × `per_server`), and never less than"
    .. " one server's accounts × 20 ms / `per_server`: 8a %s × 20 ms / %d = %s; 8b max(%s × 20 ms / min(%d, %d"
    .. " × %d), %d × 20 ms / %d) = %s. The fleet works in chunks of %s accounts (%s), so %s accounts are %d"
    .. " batch%s; each server's first Tokens::list goes alone until it is accepted (the gate against cPHulk"
    .. " lock-outs), later chunks start with the gate open.", a.concurrency, C.fleet_runs,
    C.fleet_runs == 1 and "" or "s", server.FLEET_TOKENS, thousands(a.accounts), a.slots, dur(a.ideal),
    thousands(b.accounts), b.concurrency, b.servers, b.per_server, b.each, b.per_server, dur(b.ideal),
    thousands(F.chunk), F.chunk_set and "FLEET_CHUNK" or "`cptokens.fleet`'s default", thousands(a.accounts),
    chunks, chunks == 1 and "" or "es")
  add("")
  add("| | ideal | median | min – max | ratio | client CPU (user + system, median) | nginx worker CPU (median)"
    .. " | peak RSS (VmHWM, highest run) |")
  add("|---|---|---|---|---|---|---|---|")
  for _, r in ipairs(F.rows) do
    add("| %s %s | %s | %s | %s | %.2f× | %s | %s | %.1f MB (%s KiB) |", r.id, r.servers == 1
      and ("1 server × " .. thousands(r.each)) or (r.servers .. " servers × " .. r.each), dur(r.ideal), dur(r.m),
      spread(r.times), r.m / r.ideal, r.m_cpu and dur(r.m_cpu) or "n/a", dur(r.m_srv), r.rss_mb, thousands(r.hwm_max))
  end
  add("")
  local function busy(r) return r.accounts * FLEET_DELAY / r.m end
  local function at_reply(r) return r.ideal * F.alone / FLEET_DELAY end
  add("One Tokens::list alone, one at a time over a kept-alive connection (curl, median of %d), takes %s: at that"
    .. " reply time the ideal would be %s (8a %.2f× of it, 8b %.2f×).", C.fleet_alone, dur(F.alone),
    dur(at_reply(a)), a.m / at_reply(a), b.m / at_reply(b))
  add("")
  add("Beyond the ideal, 8a took %s more and 8b %s more. Had every reply taken exactly 20 ms, that is %.1f"
    .. " requests in flight on average in 8a and %.1f in 8b, of %d. The client process was on the CPU for %s of"
    .. " 8a's %s and %s of 8b's %s; the rest of the time it waited for replies.", dur(a.m - a.ideal),
    dur(b.m - b.ideal), busy(a), busy(b), a.slots, a.m_cpu and dur(a.m_cpu) or "n/a", dur(a.m),
    b.m_cpu and dur(b.m_cpu) or "n/a", dur(b.m))
  add("")
  for _, r in ipairs(F.rows) do
    local target = r.id == "8a" and TARGET.fleet_one or TARGET.fleet_many
    if pass[r.id] == false then
      local why = {}
      if r.m / r.ideal > target then
        local n = math.ceil(r.accounts / F.chunk)
        why[#why + 1] = ("the audit took %.2f× the ideal (target %.1f×): %s more, %s per 20 ms round of %d requests."
          .. " The server's reply time accounts for about %s of it (a reply alone takes %s, above). The rest is the"
          .. " client's: the enumeration (listaccts on %d server%s), the clients opened at each chunk's start, the"
          .. " drain at each chunk's end (%d chunk%s: a chunk's last requests in flight without the next ones),"
          .. " each server's lone first request, and the time from a reply to the next request in its slot (the"
          .. " client was on the CPU %s of the %s)"):format(r.m / r.ideal, target, dur(r.m - r.ideal),
          dur((r.m - r.ideal) / (r.accounts / r.slots)), r.slots, dur(math.max(0, at_reply(r) - r.ideal)),
          dur(F.alone), r.servers, r.servers == 1 and "" or "s", n, n == 1 and "" or "s",
          r.m_cpu and dur(r.m_cpu) or "n/a", dur(r.m))
      end
      if r.id == "8a" and r.rss_mb > TARGET.fleet_rss_mb then
        why[#why + 1] = ("the peak RSS was %.1f MB (target %d MB): a chunk's clients, jobs and results are held at"
          .. " once, so it grows with the chunk (%s accounts)"):format(r.rss_mb, TARGET.fleet_rss_mb,
          thousands(F.chunk))
      end
      add("**Why %s is missed.** %s.", r.id, (table.concat(why, "; "):gsub("^%l", string.upper)))
      add("")
    end
  end
end

local function report(M, S, B, G, Mem, I, T, TR, P, F)
  local L = {}
  local function add(fmt, ...) L[#L + 1] = select("#", ...) > 0 and fmt:format(...) or fmt end

  local r_floor = S.m.lua / S.m.floor
  local r_curl = S.m.curl / S.m.lua
  local r_py = S.m.py / S.m.lua
  local r_batch = B.m.batch / B.ideal
  local r_big = G.m.list / G.m.decode
  local growth = Mem.rss2 - Mem.rss1
  local pass = {
    floor = r_floor <= TARGET.floor, curl = r_curl >= TARGET.curl, requests = r_py >= TARGET.requests,
    batch = r_batch <= TARGET.batch, big = r_big <= TARGET.big, rss = growth < TARGET.rss_kib,
    leak = Mem.definite == 0 and Mem.exit ~= 99,
  }

  add("# cptokens benchmark results")
  add("")
  add("Written by `make bench` (bench/bench.lua) on %s%s. Each figure compares two things measured in", M.date,
    QUICK and " in **quick mode (BENCH_QUICK=1: fewer rounds, rougher figures)**" or "")
  add("this same run, against a local nginx serving fixed replies (bench/server.lua), so the server is not")
  add("the bottleneck. Times are medians of several runs; client processes start up outside the timed part.")
  add("")
  add("| # | what is compared | measured (median) | ratio | target | result |")
  add("|---|---|---|---|---|---|")
  add("| 1a | `client:list()` (10 tokens) vs the C floor (libcurl, one reused handle), per call | %s vs %s | %.2f× the floor"
    .. " | ≤ %.2f× | %s |", dur(S.m.lua), dur(S.m.floor), r_floor, TARGET.floor, verdict(pass.floor, r_floor, TARGET.floor))
  add("| 1b | one `curl` process per call vs `client:list()` | %s vs %s | list() %.0f× faster | ≥ %d× | %s |",
    dur(S.m.curl), dur(S.m.lua), r_curl, TARGET.curl, verdict(pass.curl, r_curl, TARGET.curl))
  add("| 1c | Python `requests.Session` (+ `r.json()`) vs `client:list()` | %s vs %s | list() %.1f× faster | ≥ %d× | %s |",
    dur(S.m.py), dur(S.m.lua), r_py, TARGET.requests, verdict(pass.requests, r_py, TARGET.requests))
  add("| 2 | `cptokens.batch`: 200 list jobs, 20 accounts, concurrency 20, 50 ms per reply, vs the ideal"
    .. " 200 / 20 × 50 ms | %s vs %s (sequential: %s, %.1f× slower than the batch) | %.2f× the ideal | ≤ %.1f× | %s |",
    dur(B.m.batch), dur(B.ideal), dur(B.m.seq), B.m.seq / B.m.batch, r_batch, TARGET.batch,
    verdict(pass.batch, r_batch, TARGET.batch))
  add("| 3 | `list()` of 10,000 tokens vs `cjson.decode` of the same body alone | %s vs %s | %.2f× | ≤ %d× | %s |",
    dur(G.m.list), dur(G.m.decode), r_big, TARGET.big, verdict(pass.big, r_big, TARGET.big))
  add("| 4a | RSS after %s `list()` calls vs after %s (same process, after a full GC) | %s KiB vs %s KiB |"
    .. " %+.2f MiB | < 1 MiB growth | %s |", thousands(C.rss_n2), thousands(C.rss_n1), thousands(Mem.rss2),
    thousands(Mem.rss1), growth / 1024, verdict(pass.rss))
  add("| 4b | valgrind memcheck, %s `list()` calls: definitely lost | %s bytes in %s blocks (%s errors) | — | 0 | %s |",
    thousands(C.memcheck_n), thousands(Mem.definite), thousands(Mem.definite_blocks), tostring(Mem.errors),
    verdict(pass.leak))
  add("| 5 | instructions per `list()` call (callgrind, (Ir(%s) − Ir(%s)) / %s) | %s (C floor: %s) | %.2f× the floor's"
    .. " | tracked | — |", thousands(C.cg_n2), thousands(C.cg_n1), thousands(C.cg_n2 - C.cg_n1), thousands(I.lua),
    thousands(I.floor), I.lua / I.floor)
  local trust_rows = trust_report(add, TR, P, pass)
  fleet_report(add, F, pass)
  add("")
  local missed = {}
  local names = { floor = "1a", curl = "1b", requests = "1c", batch = "2", big = "3", rss = "4a", leak = "4b" }
  for _, k in ipairs{ "floor", "curl", "requests", "batch", "big", "rss", "leak", "6a", "6b", "6c", "7a", "7b", "8a", "8b" } do
    names[k] = names[k] or k
    if pass[k] == false then missed[#missed + 1] = k end
  end
  if #missed == 0 then
    add("All targets are met.")
  else
    local ids = {}
    for i, k in ipairs(missed) do ids[i] = names[k] end
    add("**Missed: %s.** Why, with the profile, is below.", table.concat(ids, ", "))
  end
  -- Something else using the CPUs shows as a busy machine before the run, or as a median well above
  -- the fastest round (most rounds slowed down).
  local noisy = {}
  local load1 = tonumber((M.load_before or ""):match("^(%S+)")) or 0
  if load1 > 0.5 then noisy[#noisy + 1] = ("load average %s before the run"):format(M.load_before) end
  for _, k in ipairs{ "floor", "hdr", "lua" } do
    local lo = minmax(S[k])
    local m = median(S[k])
    if m / lo > 1.15 then
      noisy[#noisy + 1] = ("%s: median %.2f× the fastest round"):format(k == "hdr" and "floor+headers" or k, m / lo)
    end
  end
  if #noisy > 0 then
    add("")
    add("> **Noisy run** (%s). Something else was using the CPUs; the timed figures (1 to 3) are less"
      .. " trustworthy than usual and the ratios are diluted. Re-run `make bench` on an idle machine.",
      table.concat(noisy, "; "))
  end
  local narrow = {}
  for _, x in ipairs{ { "1a", r_floor, TARGET.floor }, { "1b", r_curl, TARGET.curl }, { "1c", r_py, TARGET.requests },
                      { "2", r_batch, TARGET.batch }, { "3", r_big, TARGET.big },
                      F and { "8a", F.rows[1].m / F.rows[1].ideal, TARGET.fleet_one } or nil,
                      F and { "8b", F.rows[2].m / F.rows[2].ideal, TARGET.fleet_many } or nil } do
    if math.abs(x[2] / x[3] - 1) < 0.05 then narrow[#narrow + 1] = x[1] end
  end
  if #narrow > 0 then
    add("")
    add("Within 5%% of the target, where run-to-run noise decides between PASS and MISS: %s. The sections"
      .. " below show what stands between each figure and its ideal.", table.concat(narrow, ", "))
  end
  add("")

  -- 1: where a list() call goes.
  local extra = S.m.lua - S.m.floor
  local hdr = S.m.hdr - S.m.floor
  local remainder = extra - hdr - G.small_decode
  local st = I.stage
  local shaping = st.response - st.decode
  local rest = I.lua - st.transport - st.response
  local function pct(x) return ("%.0f%%"):format(x / S.m.floor * 100) end
  add("## 1. Sequential `list()`: where the time goes%s", pass.floor and "" or " (why 1a is missed)")
  add("")
  add("Per call, `list()` took %s and the C floor %s: %s more (%s of the floor). The floor only moves the"
    .. " bytes; `list()` also sends two headers of its own, decodes the JSON reply with lua-cjson, checks it"
    .. " and builds the result table. The difference, part by part, each measured in this run:", dur(S.m.lua),
    dur(S.m.floor), dur(extra), pct(extra))
  add("")
  add("| part of the difference | per call | of the floor | how it is measured |")
  add("|---|---|---|---|")
  add("| the library's own `User-Agent` and `Accept-Encoding` headers | %s | %s | the floor sending the same two"
    .. " headers (%s) minus the floor |", dur(hdr), pct(hdr), dur(S.m.hdr))
  add("| JSON decode by lua-cjson | %s | %s | `cjson.decode` of the same 1.3 KB reply alone, in a loop |",
    dur(G.small_decode), pct(G.small_decode))
  add("| the rest: reply checks, result tables, sorting, garbage collection, the Lua call | %s | %s | the"
    .. " remainder |", dur(remainder), pct(remainder))
  add("| **`list()` minus the floor** | **%s** | **%s** | |", dur(extra), pct(extra))
  add("")
  add("Instructions per call (callgrind, the client process only):")
  add("")
  add("| stage | `list()` | C floor + the two headers | C floor |")
  add("|---|---|---|---|")
  add("| libcurl transfer incl. TLS (`cpt_curl_perform` / `curl_easy_perform`) | %s | %s | %s |",
    thousands(st.transport), thousands(st.hdr_transport), thousands(st.floor_transport))
  add("| JSON decode by lua-cjson (`json_decode` in csrc/response.c) | %s | — | — |", thousands(st.decode))
  add("| envelope checks, result tables, sorting (`cpt_response_decode` minus the decode) | %s | — | — |",
    thousands(shaping))
  add("| the rest: Lua call, argument checks, request building | %s | %s | %s |", thousands(rest),
    thousands(I.hdr - st.hdr_transport), thousands(I.floor - st.floor_transport))
  add("| **total** | **%s** | **%s** | **%s** |", thousands(I.lua), thousands(I.hdr), thousands(I.floor))
  add("")
  add("By shared object (exclusive instructions per call; `lua5.4` holds the Lua VM, its tables and GC):")
  add("")
  add("| object | `list()` | C floor |")
  add("|---|---|---|")
  for _, o in ipairs(I.objects) do add("| %s | %s | %s |", o.obj, thousands(o.lua), thousands(o.floor)) end
  add("")
  if not pass.floor then
    add("**Why 1a is missed.** The budget is %s per call (15%% of a %s loopback round trip), and decoding"
      .. " the 10-token reply with lua-cjson alone takes %s. In instructions the decode is %s per call, %.0f%%"
      .. " of a `list()` call and %.0f%% of the floor's whole transfer: lua-cjson creates every JSON object as"
      .. " an empty table and inserts its keys one by one (Lua rehashes the table as it grows), and the"
      .. " decoded tables become garbage for the Lua GC once the result is built. The floor decodes nothing,"
      .. " so the target cannot be met while replies are decoded by lua-cjson, as the design requires."
      .. " Against the floor plus that decode (%s), `list()` is %.2f×. The library's own share is the two"
      .. " extra headers (%s per call, %s more libcurl instructions) and the checks and result tables"
      .. " (%s instructions).", dur(S.m.floor * (TARGET.floor - 1)), dur(S.m.floor), dur(G.small_decode),
      thousands(st.decode), st.decode / I.lua * 100, st.decode / st.floor_transport * 100,
      dur(S.m.floor + G.small_decode), S.m.lua / (S.m.floor + G.small_decode), dur(hdr),
      thousands(st.hdr_transport - st.floor_transport), thousands(shaping))
    add("")
  end
  add("Per-round per-call times (%d rounds, interleaved; %s calls per round after %d warm-up calls, %s for"
    .. " requests):", C.rounds, thousands(C.n), C.warmup, thousands(C.n_py))
  add("")
  add("| | median | min – max |")
  add("|---|---|---|")
  add("| C floor (bench/floor.c) | %s | %s |", dur(S.m.floor), spread(S.floor))
  add("| C floor + `User-Agent` and `Accept-Encoding` | %s | %s |", dur(S.m.hdr), spread(S.hdr))
  add("| `client:list()` (bench/lua_list.lua) | %s | %s |", dur(S.m.lua), spread(S.lua))
  add("| requests.Session (bench/requests_session.py) | %s | %s |", dur(S.m.py), spread(S.py))
  add("| curl per call (%s) | %s | %s |", S.curl_how, dur(S.m.curl), spread(S.curl))
  add("")

  -- 2: batch.
  add("## 2. `batch`%s", pass.batch and "" or " (why 2 is missed)")
  add("")
  add("Batches: median %s, %s over %d runs; ideal %s; sequential %s (%d run%s). A batch of 20 jobs (one"
    .. " round, 20 new TLS connections) took %s, %s above the 50 ms reply time: that is the connection"
    .. " set-up a batch pays before its first round.", dur(B.m.batch), spread(B.batch), #B.batch, dur(B.ideal),
    dur(B.m.seq), #B.seq, #B.seq == 1 and "" or "s", dur(B.one), dur(B.one - 0.05))
  add("")
  add("Seen from the server (nginx's access log of the 50 ms location, median over the runs): on average"
    .. " **%.1f** of the 20 allowed requests were in flight during a batch; all 20 were in flight %.0f%% of"
    .. " the time; the 20th request of the first round arrived %s after the batch started.",
    B.m.inflight, B.m.all_busy * 100, dur(B.m.ramp))
  add("")
  if B.m.inflight < 19 then
    add("**Slots stay idle.** With 20 slots kept busy, 200 jobs of 50 ms take 10 rounds; %.1f in flight on"
      .. " average stretches them to about %s. The cause is the loop in `cpt_curl_batch` (csrc/curl.c): it"
      .. " starts new jobs only at the top of the loop, but after `curl_multi_info_read` has freed slots it"
      .. " goes straight to `curl_multi_poll`, which sleeps until the next socket event. A slot freed by the"
      .. " last reply of a burst therefore waits for the next reply, typically the next 50 ms round, before"
      .. " its next job is started. Refilling the freed slots before polling (e.g. skip the poll when"
      .. " `curl_multi_info_read` returned something and jobs remain) removes the idle time; a one-off"
      .. " experiment with that change (made by hand in a scratch copy, not by this harness) gave 1.07–1.12×"
      .. " the ideal on this machine. The other, smaller part"
      .. " is the connection set-up above: each batch opens its connections anew (libcurl 7.88 reads the"
      .. " CA file and builds a TLS context for every new connection, then the full handshake).",
      B.m.inflight, dur(B.ideal * 20 / B.m.inflight))
    add("")
  end

  -- 3: the big list.
  local other = G.m.list - G.m.transfer - G.m.decode
  add("## 3. 10,000 tokens%s", pass.big and "" or " (why 3 is missed)")
  add("")
  add("The reply is %s bytes. Median of %d samples, each after a full garbage collection: `list()` %s"
    .. " (%s), `cjson.decode` %s (%s). Of `list()`: the HTTPS transfer (the C floor fetching the same body)"
    .. " %s, the decode %s, and the rest, %s, is checking every entry, building 10,000 result tables and"
    .. " sorting them.", thousands(G.bytes), #G.list, dur(G.m.list), spread(G.list), dur(G.m.decode),
    spread(G.decode), dur(G.m.transfer), dur(G.m.decode), dur(other))
  add("")

  -- 4 and 5.
  add("## 4. Memory")
  add("")
  add("VmRSS of the Lua process itself (read from /proc/self/status inside it) after %s calls: %s KiB; after"
    .. " %s calls: %s KiB (%+d KiB). valgrind memcheck (`--leak-check=full --errors-for-leak-kinds=definite"
    .. " --error-exitcode=99`, spec/support/valgrind.supp) over %s calls: %s bytes definitely lost, %s errors,"
    .. " exit status %s.", thousands(C.rss_n1), thousands(Mem.rss1), thousands(C.rss_n2), thousands(Mem.rss2),
    growth, thousands(C.memcheck_n), thousands(Mem.definite), tostring(Mem.errors), tostring(Mem.exit))
  add("")
  add("## 5. Instructions per call")
  add("")
  add("%s instructions per `list()` call, against %s for the C floor: a stable figure to track from run to"
    .. " run (it does not depend on the machine's load; it does depend on the libcurl, OpenSSL, Lua and"
    .. " lua-cjson builds).", thousands(I.lua), thousands(I.floor))
  add("")

  trust_sections(add, T, TR, P, trust_rows)
  fleet_section(add, F, pass)

  add("## Machine")
  add("")
  add("- Date: %s", M.date)
  add("- `uname -a`: %s", M.uname)
  add("- CPU: %s; %s cores (`nproc`); memory %s", M.cpu, M.nproc, M.mem)
  add("- %s", M.curl)
  add("- libcurl (as loaded by cptokens): %s; %s", M.libcurl, M.openssl)
  add("- %s, cptokens %s; %s; %s, requests %s; hyperfine: %s; %s", M.lua, M.cptokens, M.nginx, M.python,
    M.requests, M.hyperfine, M.valgrind)
  add("- Load average (1, 5, 15 min) before the run: %s; after: %s", M.load_before, M.load_after)
  add("- %s", PIN ~= "" and "Client processes pinned to CPU 0 (`taskset -c 0`), the nginx worker to CPU 1."
    or "No CPU pinning (fewer than 2 cores).")
  add("")
  add("## How it is measured")
  add("")
  add("- Server: one nginx worker, HTTPS with a throw-away test CA (TLS 1.3, P-256), keep-alive of 1,000,000"
    .. " requests. `/execute/Tokens/list` is a `return 200 '<10 tokens>'`; `/big/...` a static file of 10,000"
    .. " tokens; `/slow/...` the 10-token reply after `echo_sleep 0.05` (a timer: the worker keeps serving)."
    .. " No reply checks credentials; the bench token is a dummy value, kept in a header file, never on argv.")
  add("- 1: every program makes the same GET with `Authorization: cpanel user:token` and `Accept:"
    .. " application/json` over one keep-alive connection, times N calls in-process after a warm-up, and the"
    .. " per-call time is elapsed / N. Rounds run the three in turn. curl per call is a fresh `curl` process"
    .. " for every request (`curl -sS --fail -o /dev/null --cacert CA -H @headerfile URL`).")
  add("- 2: 20 clients (users bench01..bench20), 200 `list` jobs round-robin, `cptokens.batch(jobs, {"
    .. " concurrency = 20 })`, one untimed batch first; sequential is the same 200 calls with `client:list()`.")
  add("- 4: VmRSS after a full `collectgarbage()`; 5: `valgrind --tool=callgrind`, instructions of the client"
    .. " process, the difference of a %s-call and a %s-call run divided by %s.", thousands(C.cg_n2),
    thousands(C.cg_n1), thousands(C.cg_n2 - C.cg_n1))
  add("- 6: bench/lua_trust.lua; the 200 servers are 200 more ports of the same nginx (each its own host:port:"
    .. " its own connections and TLS sessions); accounts are users acct0001...; every reply is checked.")
  add("- 7: hyperfine -N (no shell), %d runs of each command in %d rounds (each round a hyperfine call with every"
    .. " command, the order reversed every other round; 10 warm-up runs in the first, 3 in the others).",
    math.ceil(C.process_runs / C.process_rounds) * C.process_rounds, C.process_rounds)
  add("- 8: bench/lua_fleet.lua, one process per run (client pinned to CPU 0), %d runs of each row interleaved,"
    .. " median; 8a's base is `<url>/f10k` (listaccts of %s accounts), 8b's the first %d of section 6's ports,"
    .. " each `<port>/f100` (100 accounts): each its own server with its own connections; every account's"
    .. " Tokens::list is the same %d-token reply. Peak RSS is the client's VmHWM (/proc/self/status at the end of"
    .. " the audit; MB = 10^6 bytes), the highest of the runs; client CPU is the shell's `times` for the process,"
    .. " the nginx worker's from /proc/<pid>/stat.", C.fleet_runs, thousands(server.FLEET_SIZES.f10k),
    C.fleet_servers, server.FLEET_TOKENS)
  add("- Reproduce: `make bench` (it installs what it needs through scripts/deps.sh, builds the module and"
    .. " bench/floor.c, and takes a few minutes).")
  return table.concat(L, "\n") .. "\n"
end

---------------------------------------------------------------- main

local function main()
  assert(io.open(FLOOR, "rb"), "build " .. FLOOR .. " first (make bench)"):close()
  local pin = (tonumber(trim(run("nproc"))) or 1) >= 2 and trim(run("command -v taskset || true")) ~= ""
  PIN = pin and "taskset -c 0 " or ""
  say("starting the bench server%s", QUICK and " (quick mode)" or "")
  srv = server.start{ cpu = pin and 1 or nil, servers = C.servers }
  scratch = srv.dir .. "/stderr.txt"
  hf = srv.dir .. "/headers.txt"
  -- The bench's dummy credential (the server checks nothing).
  write_file(hf, "Authorization: cpanel bench:" .. DUMMY_TOKEN .. "\nAccept: application/json\n")
  local M = ONLY == "fleet" and {} or machine() -- (section 8 alone needs none of the baselines)
  M.load_before = trim((read_file("/proc/loadavg") or ""):match("^(%S+ %S+ %S+)"))
  if (tonumber(M.load_before:match("^(%S+)")) or 0) > 0.5 then
    say("the machine is busy (load average %s): the timings will be noisy", M.load_before)
  end
  local t0 = os.time()
  if ONLY == "fleet" then
    local F = fleet()
    local L = {}
    local function add(fmt, ...) L[#L + 1] = select("#", ...) > 0 and fmt:format(...) or fmt end
    local pass = {}
    add("| # | what is compared | measured (median) | ratio | target | result |")
    add("|---|---|---|---|---|---|")
    fleet_report(add, F, pass)
    add("")
    fleet_section(add, F, pass)
    local text = table.concat(L, "\n") .. "\n"
    if OUT then write_file(OUT, text) end
    io.write(text)
    say("done in %d s%s", os.time() - t0, OUT and "; written to " .. OUT or "")
    return
  end
  local T = trust_files()
  if ONLY == "trust" or ONLY == "7" then
    local TR = ONLY == "trust" and trust(T) or nil
    local P = processes(T)
    local L = {}
    local function add(fmt, ...) L[#L + 1] = select("#", ...) > 0 and fmt:format(...) or fmt end
    add("| # | what is compared | measured (median) | ratio | target | result |")
    add("|---|---|---|---|---|---|")
    local rows = trust_report(add, TR, P, {})
    add("")
    trust_sections(add, T, TR, P, rows)
    local text = table.concat(L, "\n") .. "\n"
    if OUT then write_file(OUT, text) end
    io.write(text)
    say("done in %d s%s", os.time() - t0, OUT and "; written to " .. OUT or "")
    return
  end
  local S = sequential()
  local B = batch()
  local G = big()
  local Mem = memory()
  local I = instructions()
  local TR = trust(T)
  local P = processes(T)
  local F = fleet()
  M.load_after = trim((read_file("/proc/loadavg") or ""):match("^(%S+ %S+ %S+)"))
  local text = report(M, S, B, G, Mem, I, T, TR, P, F)
  write_file(OUT, text)
  io.write(text)
  say("done in %d s; written to %s", os.time() - t0, OUT)
end

local ok, err = pcall(main)
if srv then srv:stop() end
if not ok then
  io.stderr:write("bench: " .. tostring(err) .. "\n")
  os.exit(1)
end
