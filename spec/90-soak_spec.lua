-- Soak: 10,000 sequential operations and 1,000 through cptokens.batch against the fake
-- server, with fault cases in between. Afterwards the process holds the same number of open
-- file descriptors as before, and its resident memory did not grow by more than 1 MiB
-- between the end of the first thousand sequential operations and the end of the last.
-- Tagged #soak: not in the default run (.busted) nor under valgrind; `make test-soak`.
local H = require "spec.helpers"
local server = require "spec.support.server"
local cptokens = require "cptokens"

local SEQUENTIAL = 10000
local BATCHED = 1000
local FAULT_EVERY = 500
local RSS_SLACK_KB = 1024

local TOKEN = "SOAKTOKEN00000000000000000000042"

-- This Lua process's own pid: /proc/self read in-process (io.open), not by a shell.
local function pid()
  local f = assert(io.open("/proc/self/stat", "r"))
  local s = f:read("*l")
  f:close()
  return assert(tonumber(s:match("^(%d+)")))
end

local PID = pid()

local function open_fds()
  local p = assert(io.popen("ls /proc/" .. PID .. "/fd"))
  local n = 0
  for _ in p:lines() do n = n + 1 end
  p:close()
  return n
end

local function rss_kb()
  collectgarbage("collect")
  collectgarbage("collect")
  local f = assert(io.open("/proc/" .. PID .. "/status", "r"))
  local s = f:read("*a")
  f:close()
  return assert(tonumber(s:match("VmRSS:%s*(%d+)")))
end

describe("soak #soak", function()
  local srv, creds

  setup(function()
    srv = server.start()
    local f = assert(io.open(srv.cafile, "rb"))
    local ca = f:read("*a")
    f:close()
    f = assert(io.open(srv.dir .. "/ca-copy.pem", "wb"))
    f:write(ca)
    f:close()
    creds = {
      { url = srv.url, user = "alice", password = srv.accounts.alice.password },
      { url = srv.url, user = "alice", token = TOKEN },
      { url = srv.whm_url, user = "alice", whm_token = srv.accounts.root.token },
    }
  end)
  teardown(function() if srv then srv:stop() end end)

  local function new_client(i, extra)
    local opts = { cafile = srv.cafile, timeout = H.seconds(10) }
    for k, v in pairs(creds[i % #creds + 1]) do opts[k] = v end
    for k, v in pairs(extra or {}) do opts[k] = v end
    return assert(cptokens.new(opts))
  end

  -- One fault, on a client of its own or the shared one; each must end in its kind.
  local FAULTS = {
    { "status", { status = 500, times = 1 }, "http" },
    { "malformed", { times = 1 }, "protocol" },
    -- a fresh connection: on a reused one libcurl would retry the GET, and succeed (clients
    -- with the same trust settings share connections: this one trusts a copy of the CA,
    -- whose pool is released before each use)
    { "reset", { times = 1 }, "network", { fresh = true } },
    { "login", { times = 1 }, "auth" },
    { "redirect", { times = 1 }, "http" },
    { "hang", { seconds = 3, times = 1 }, "timeout", { timeout = 0.3 } },
    { "truncated", { times = 1 }, "network" },
    { "bigbody", { bytes = 100000, times = 1 }, "protocol", { max_response = 10000 } },
  }
  local faults_run = 0

  local function fault(n, shared)
    local f = FAULTS[n % #FAULTS + 1]
    local c = shared
    if f[4] and f[4].fresh then
      cptokens.close_idle()
      c = new_client(n, { cafile = srv.dir .. "/ca-copy.pem" })
    elseif f[4] then
      c = new_client(n, f[4])
    end
    srv:fault(f[1], f[2])
    local v, err = c:list()
    assert.is_nil(v, f[1])
    assert.are.equal(f[3], err.kind, f[1] .. ": " .. tostring(err))
    if c ~= shared then c:close() end
    faults_run = faults_run + 1
  end

  it("10,000 sequential operations, then 1,000 batched, hold no descriptor and no memory", function()
    srv:reset()
    srv:seed_token("alice", { name = "soak-auth", token = TOKEN })
    collectgarbage("collect")
    cptokens.close_idle()
    local fds_before = open_fds()

    local shared = new_client(0)
    -- Every fault once first: one-time allocations (libcurl, OpenSSL, malloc arenas) are
    -- made before the first thousand operations are measured.
    for n = 1, #FAULTS do fault(n, shared) end
    faults_run = 0
    local c, cycle, ops = shared, 0, 0
    local rss_first, lua_first
    -- One operation. Every 30th cycle of four a new client takes over for ten cycles.
    local function step(fn)
      local v, err = fn(c)
      assert(v, err and tostring(err))
      ops = ops + 1
      if ops % FAULT_EVERY == 0 then fault(ops / FAULT_EVERY, shared) end
      -- Lua's own garbage between two cycles would raise malloc's high-water mark (and so the
      -- RSS) by megabytes at random: collect often, so that what grows is what is kept.
      if ops % 100 == 0 then collectgarbage("collect") end
      if ops == 1000 then rss_first, lua_first = rss_kb(), collectgarbage("count") end
      return v
    end
    while ops < SEQUENTIAL do
      cycle = cycle + 1
      if cycle % 30 == 0 then
        c = new_client(cycle)
      elseif cycle % 10 == 0 and c ~= shared then
        c:close()
        c = shared
      end
      local name = "soak_" .. cycle
      local tok = step(function(x) return x:create(name, cycle % 2 == 0 and { expires_in = "1h" } or nil) end)
      assert.are.equal(32, #tok.token)
      step(function(x) return x:list() end)
      step(function(x) return x:rename(name, name .. "_r") end)
      step(function(x)
        local ok, existed = x:revoke(name .. "_r")
        return ok and existed
      end)
    end
    if c ~= shared then c:close() end
    local rss_last, lua_last = rss_kb(), collectgarbage("count")
    assert.are.equal(SEQUENTIAL, ops)
    assert.is_true(lua_last - lua_first <= 64,
      ("the Lua heap grew by %.1f KiB between operation 1,000 and %d"):format(lua_last - lua_first, SEQUENTIAL))
    assert.are.equal(SEQUENTIAL / FAULT_EVERY, faults_run)
    assert.is_true(rss_last - rss_first <= RSS_SLACK_KB,
      ("RSS grew by %d KiB between operation 1,000 and %d"):format(rss_last - rss_first, SEQUENTIAL))
    -- Only the seeded token is left.
    assert.are.same({ "soak-auth" }, (function()
      local names = {}
      for i, t in ipairs(assert(shared:list())) do names[i] = t.name end
      return names
    end)())

    if cptokens.batch then
      -- 1,000 batched operations: creates then revokes, 50 jobs a batch over three clients,
      -- with a fault hitting some jobs of every fifth batch.
      local clients = { new_client(0), new_client(1), new_client(2) }
      local done, round = 0, 0
      while done < BATCHED do
        round = round + 1
        local jobs = {}
        for j = 1, 25 do
          jobs[j] = { client = clients[j % 3 + 1], op = "create", name = ("b%d_%d"):format(round, j) }
        end
        local faulty = round % 5 == 0
        if faulty then srv:fault("status", { status = 503, times = 3 }) end
        local failed = 0
        for _, r in ipairs(cptokens.batch(jobs, { concurrency = 8 })) do
          if r.ok then
            assert.are.equal(32, #r.value.token)
          else
            assert.is_true(faulty, tostring(r.err))
            assert.are.equal("http", r.err.kind)
            failed = failed + 1
          end
        end
        assert.are.equal(faulty and 3 or 0, failed)
        for j = 1, 25 do jobs[j] = { client = clients[j % 3 + 1], op = "revoke", name = jobs[j].name } end
        for _, r in ipairs(cptokens.batch(jobs, { concurrency = 8 })) do
          assert.is_true(r.ok, tostring(r.err))
        end
        done = done + 50
      end
      for _, x in ipairs(clients) do x:close() end
      assert.are.same({ "soak-auth" }, (function()
        local names = {}
        for i, t in ipairs(assert(shared:list())) do names[i] = t.name end
        return names
      end)())
    else
      pending("cptokens.batch does not exist yet: the 1,000 batched operations are skipped")
    end

    shared:close()
    collectgarbage("collect")
    collectgarbage("collect")
    -- Clients of one server share keep-alive connections that outlive them (spec/47): once
    -- the pools no client uses are released, nothing may be left open.
    cptokens.close_idle()
    assert.are.equal(fds_before, open_fds(), "open file descriptors before and after")
  end)
end)
