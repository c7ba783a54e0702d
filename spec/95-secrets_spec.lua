-- Secret hygiene: every operation, with every kind of credential, under every fault, with
-- known secrets; everything the library and the command-line tool produce is scanned for
-- them (and their base64 form): return values (but the token `create` and `rotate` hand
-- over), errors, tostring of every object, info(), a child process's stdout and stderr,
-- and the tool's output.
-- Related checks elsewhere: the Authorization header never reaches another host after a
-- redirect (spec/40-errors_spec.lua "a redirect is not followed...", and every credential
-- in spec/45-faults_spec.lua "a redirect to another host"); buffers that held a secret are
-- wiped in C (csrc/buf.c cpt_wipe, used by cpt_buf_clear/free and cpt_free_secret).
local H = require "spec.helpers"
local server = require "spec.support.server"
local util = require "spec.support.util"
local socket = require "socket"
local cptokens = require "cptokens"

local ALICE_PW = H.ALICE_PW
local BOB_PW = H.BOB_PW
local BOB_OTP = H.BOB_OTP
local ROOT_WHM = H.ROOT_WHM
local RES_WHM = H.RES_WHM
local SEEDED = "SECRETSPECSEEDEDTOKEN00000000007"

local shell_quote, capture, read_file, write_file = util.shell_quote, util.capture, util.read_file, util.write_file
local LUA = util.LUA -- for the child processes

local unpack = table.unpack or unpack

describe("secret hygiene", function()
  local srv, tmp
  local secrets = { ALICE_PW, BOB_PW, BOB_OTP, ROOT_WHM, RES_WHM, SEEDED }

  setup(function()
    srv = server.start()
    tmp = util.tmpdir("secrets")
  end)
  teardown(function()
    if srv then srv:stop() end
    util.rmdir(tmp)
  end)

  local function scan(v) H.assert_no_secret(v, secrets) end

  -- A created token: everything but its .token is scanned, then it is a secret too.
  local function scan_new_token(tok)
    assert.are.equal("string", type(tok.token))
    local rest = {}
    for k, x in pairs(tok) do if k ~= "token" then rest[k] = x end end
    scan(rest)
    secrets[#secrets + 1] = tok.token
  end

  local CREDS = {
    { "alice's password", function() return { url = srv.url, user = "alice", password = ALICE_PW } end },
    { "bob's password and code", function()
        return { url = srv.url, user = "bob", password = BOB_PW, otp = BOB_OTP } end },
    { "alice's token", function() return { url = srv.url, user = "alice", token = SEEDED } end },
    { "root's WHM token", function()
        return { url = srv.whm_url, user = "alice", whm_token = ROOT_WHM } end },
    { "a reseller's WHM token", function()
        return { url = srv.whm_url, user = "alice", whm_token = RES_WHM, whm_user = "res" } end },
  }

  local FAULTS = {
    { "no fault" },
    { "HTTP 500", "status", { status = 500 } },
    { "HTTP 401 (HTML)", "status", { status = 401 } },
    { "HTTP 403 (JSON)", "json_status", { status = 403 } },
    { "a login page", "login" },
    { "malformed JSON", "malformed" },
    { "status 0 with errors", "notenvelope", { body = '{"status":0,"errors":["denied"],"data":null}' } },
    { "not the envelope", "notenvelope", { body = "[]" } },
    { "a body cut short", "truncated" },
    { "a connection reset", "reset" },
    { "a redirect", "redirect" },
    { "a reply over max_response", "bigbody", { bytes = 50000 }, { max_response = 10000 } },
    { "a server that never answers", "hang", { seconds = 2 }, { timeout = 0.3 }, only = "list" },
    { "an expired certificate", url = function() return srv.expired_url end },
    { "a certificate for another name", url = function() return srv.wronghost_url end },
  }

  local function new_client(cred, fault)
    local opts = cred[2]()
    opts.cafile = srv.cafile
    for k, v in pairs(fault[4] or {}) do opts[k] = v end
    if fault.url then opts.url = fault.url() end
    local c, err = cptokens.new(opts)
    assert(c, tostring(err))
    return c
  end

  it("every operation, credential and fault: nothing returned holds a secret", function()
    local n = 0
    for _, fault in ipairs(FAULTS) do
      for ci, cred in ipairs(CREDS) do
        srv:reset()
        srv:seed_token("alice", { name = "seeded", token = SEEDED })
        local c = new_client(cred, fault)
        scan({ tostring(c), c:info() })
        if fault[2] then srv:fault(fault[2], fault[3]) end
        n = n + 1
        local name = "s" .. ci
        local ops = {
          { "create", function() return c:create(name, { expires_in = "1h" }) end },
          { "list", function() return c:list() end },
          { "rename", function() return c:rename(name, name .. "r") end },
          { "revoke", function() return c:revoke(name .. "r") end },
          { "rotate", function()
              local stored
              local new, report = c:rotate { prefix = "rot" .. ci, expires_in = "1h",
                verify = cred[2]().whm_token == nil,
                store = function(tok) stored = tok.name return true end }
              if new then assert.are.equal(stored, new.name) end
              return new, report
            end },
          { "prune", function() return c:prune { prefix = "rot" .. ci } end },
          { "audit", function() return c:audit { within = "7d" } end },
        }
        for _, op in ipairs(ops) do
          if not fault.only or fault.only == op[1] then
            local label = fault[1] .. " / " .. cred[1] .. " / " .. op[1]
            local r = { pcall(op[2]) }
            assert.is_true(r[1], label .. ": raised " .. tostring(r[2]))
            local v, err = r[2], r[3]
            if fault[1] == "no fault" then
              assert(v ~= nil, label .. ": " .. tostring(err))
            else
              assert.is_nil(v, label)
            end
            if v ~= nil and (op[1] == "create" or op[1] == "rotate") then
              scan_new_token(v)
              scan({ unpack(r, 3) })
            else
              local ok, e = pcall(scan, { unpack(r, 2) })
              assert(ok, label .. ": " .. tostring(e))
            end
            if cptokens.is_error(err) then scan(tostring(err)) end
          end
        end
        srv:clear_faults()
        scan({ tostring(c), c:info() })
        c:close()
        scan(tostring(c))
      end
    end
    assert.are.equal(#FAULTS * #CREDS, n)
  end)

  it("through cptokens.batch, under a fault that hits some of the jobs", function()
    srv:reset()
    srv:seed_token("alice", { name = "seeded", token = SEEDED })
    local clients = {}
    for i, cred in ipairs(CREDS) do clients[i] = new_client(cred, {}) end
    local jobs = {}
    for i, c in ipairs(clients) do
      jobs[#jobs + 1] = { client = c, op = "create", name = "b" .. i }
      jobs[#jobs + 1] = { client = c, op = "list" }
    end
    srv:fault("status", { status = 401, times = 3 })
    local results = cptokens.batch(jobs, { concurrency = 4 })
    local failed = 0
    for i, r in ipairs(results) do
      if r.ok and jobs[i].op == "create" then
        scan_new_token(r.value)
      else
        scan(r)
      end
      if not r.ok then failed = failed + 1 end
    end
    local why = {}
    for i, r in ipairs(results) do why[i] = r.ok and "ok" or tostring(r.err) end
    -- 3 refused, and each refused credential's other job held back (never sent)
    assert.are.equal(6, failed, table.concat(why, "\n"))
    for _, c in ipairs(clients) do c:close() end
  end)

  it("cptokens.whm: every operation and fault, the rotation's file and report", function()
    local WHM_FAULTS = {
      { "no fault" },
      { "HTTP 500", "status", { status = 500 } },
      { "WHM's 403", "whm_denied" },
      { "an echo in metadata.reason", "echo", { status = 200, shape = "whm1" } },
      { "an echo in a 403 body", "echo", { status = 403, shape = "whm" } },
      { "not the envelope", "notenvelope", { body = '{"data":{}}' } },
      { "a connection reset", "reset" },
    }
    for _, who in ipairs({ { "root", ROOT_WHM }, { "res", RES_WHM } }) do
      for fi, fault in ipairs(WHM_FAULTS) do
        srv:reset()
        local known = srv:seed_whm_token(who[1], { name = "known", acls = { "list-accts" } })
        secrets[#secrets + 1] = known.token
        local w = assert(cptokens.whm { url = srv.whm_url, cafile = srv.cafile, user = who[1], token = who[2] })
        scan({ tostring(w), w:info() })
        if fault[2] then srv:fault(fault[2], fault[3]) end
        local file = tmp .. "/whm-" .. who[1] .. fi .. ".json"
        local ops = {
          { "create", function() return w:create("c" .. fi, { acls = { "list-accts" }, expires_in = "1h" }) end },
          { "list", function() return w:list() end },
          { "update", function() return w:update("known", { new_name = "known2", whitelist_ips = false }) end },
          { "details", function() return w:details(known.token) end },
          { "revoke", function() return w:revoke { "known2", "known" } end },
          { "accounts", function() return w:accounts() end },
          { "audit", function() return w:audit { within = "7d" } end },
          { "rotate", function() return w:rotate { prefix = "wr", store = file, expires_in = "1h" } end },
          { "for_user", function()
              local a = w:for_user("alice")
              return a and a:list(), a and tostring(a)
            end },
        }
        for _, op in ipairs(ops) do
          local label = fault[1] .. " / " .. who[1] .. " / " .. op[1]
          local r = { pcall(op[2]) }
          assert.is_true(r[1], label .. ": raised " .. tostring(r[2]))
          local v, err = r[2], r[3]
          if fault[1] == "no fault" and op[1] ~= "for_user" then assert(v ~= nil, label .. ": " .. tostring(err)) end
          if v ~= nil and (op[1] == "create" or op[1] == "rotate") then
            scan_new_token(v)
            scan({ unpack(r, 3) })
          else
            local ok, e = pcall(scan, { unpack(r, 2) })
            assert(ok, label .. ": " .. tostring(e))
          end
          if cptokens.is_error(err) then scan(tostring(err)) end
        end
        srv:clear_faults()
        -- the token file holds its own token and nothing else secret
        local text = read_file(file)
        if text then
          local own = assert(require("cptokens.store").load(file)).token
          local others = {}
          for _, x in ipairs(secrets) do if x ~= own then others[#others + 1] = x end end
          H.assert_no_secret(text, others)
        end
        w:close()
        scan(tostring(w))
      end
    end
  end)

  it("a child process's stdout and stderr hold no secret (library use with faults)", function()
    srv:reset()
    srv:seed_token("alice", { name = "seeded", token = SEEDED })
    -- The secrets reach the child through its environment (a 0600 file it sources), never argv.
    local env = tmp .. "/child.env"
    util.write_private(env, table.concat({
      "export S_PW=" .. shell_quote(ALICE_PW), "export S_TOKEN=" .. shell_quote(SEEDED),
      "export S_WHM=" .. shell_quote(ROOT_WHM), "export S_URL=" .. shell_quote(srv.url),
      "export S_WHM_URL=" .. shell_quote(srv.whm_url), "export S_CA=" .. shell_quote(srv.cafile),
      "export S_CONTROL=" .. shell_quote(srv.control_url),
    }, "\n") .. "\n")
    write_file(tmp .. "/child.lua", [[
      local build = os.getenv("CPTOKENS_BUILD") or "build/5.4"
      package.cpath = build .. "/?.so;" .. package.cpath
      package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
      local cptokens = require "cptokens"
      local http = require "socket.http"
      local function fault(mode)
        assert(http.request(os.getenv("S_CONTROL") .. "/fault", '{"mode":"' .. mode .. '","params":{"times":4}}'))
      end
      local creds = {
        { url = os.getenv("S_URL"), user = "alice", password = os.getenv("S_PW") },
        { url = os.getenv("S_URL"), user = "alice", token = os.getenv("S_TOKEN") },
        { url = os.getenv("S_WHM_URL"), user = "alice", whm_token = os.getenv("S_WHM") },
      }
      for _, mode in ipairs { "none", "login", "malformed", "redirect", "reset" } do
        for _, o in ipairs(creds) do
          o.cafile = os.getenv("S_CA")
          local c = assert(cptokens.new(o))
          if mode ~= "none" then fault(mode) end
          print(tostring(c))
          local tok, err = c:create("child")
          print(tostring(err), tok and tok.name)
          local function second(_, e) return tostring(e) end
          print(second(c:list()))
          print(second(c:rename("child", "child2")))
          print(second(c:revoke("child2")))
          io.stderr:write(tostring(err), "\n")
          c:close()
        end
      end
      print("child done")
    ]])
    local cmd = ". " .. shell_quote(env) .. " && " .. LUA .. " " .. shell_quote(tmp .. "/child.lua")
      .. " >" .. shell_quote(tmp .. "/child.out") .. " 2>" .. shell_quote(tmp .. "/child.err")
    os.execute(cmd)
    local out, err = read_file(tmp .. "/child.out") or "", read_file(tmp .. "/child.err") or ""
    assert.is_truthy(out:find("child done", 1, true), out .. err)
    scan({ out, err })
  end)

  it("the command-line tool's stdout and stderr hold no secret", function()
    if not io.open("bin/cptokens", "r") then
      pending("bin/cptokens does not exist yet")
      return
    end
    srv:reset()
    srv:seed_token("alice", { name = "seeded", token = SEEDED })
    local build = os.getenv("CPTOKENS_BUILD") or "build/5.4"
    local pwd = capture("pwd"):gsub("%s+$", "")
    local seq = 0
    local function run(args, env)
      seq = seq + 1
      local base = tmp .. "/cli" .. seq
      local lines = {
        "unset CPANEL_TOKEN CPANEL_PASSWORD CPANEL_OTP WHM_TOKEN",
        "export CPANEL_URL=" .. shell_quote(env.url or srv.url), "export CPANEL_USER=alice",
        "export CPANEL_CAFILE=" .. shell_quote(srv.cafile),
        "export LUA_PATH=" .. shell_quote(pwd .. "/lua/?.lua;" .. pwd .. "/lua/?/init.lua;;"),
        "export LUA_CPATH=" .. shell_quote(pwd .. "/" .. build .. "/?.so;;"),
      }
      for k, v in pairs(env) do
        if k ~= "url" then lines[#lines + 1] = "export " .. k .. "=" .. shell_quote(v) end
      end
      util.write_private(base .. ".env", table.concat(lines, "\n") .. "\n")
      local quoted = {}
      for i, a in ipairs(args) do quoted[i] = shell_quote(a) end
      os.execute(". " .. shell_quote(base .. ".env") .. " && " .. LUA .. " bin/cptokens "
        .. table.concat(quoted, " ") .. " </dev/null >" .. shell_quote(base .. ".out") .. " 2>"
        .. shell_quote(base .. ".err"))
      return read_file(base .. ".out") or "", read_file(base .. ".err") or ""
    end
    local envs = {
      { CPANEL_PASSWORD = ALICE_PW },
      { CPANEL_TOKEN = SEEDED },
      { WHM_TOKEN = ROOT_WHM, url = srv.whm_url },
    }
    for _, env in ipairs(envs) do
      for _, fault in ipairs { false, { "login" }, { "status", { status = 500 } }, { "redirect" } } do
        if fault then srv:fault(fault[1], fault[2]) end
        local out, err = run({ "create", "cli1" }, env)
        if fault then
          scan({ out, err })
        else
          -- create prints the new token, and only that, on stdout
          local tok = out:match("^(%w+)\n$")
          assert.is_truthy(tok, "create printed: " .. out .. err)
          scan(err)
          secrets[#secrets + 1] = tok
        end
        for _, args in ipairs { { "list" }, { "list", "--json" }, { "rename", "cli1", "cli2" },
                                { "audit" }, { "revoke", "cli2" }, { "help" } } do
          local o, e = run(args, env)
          scan({ o, e })
          if not fault and args[1] == "list" then
            assert.is_truthy(o:find("seeded", 1, true), "list printed: " .. o .. e)
          end
        end
        srv:clear_faults()
      end
    end
    -- A refused credential is not echoed either.
    scan({ run({ "list" }, { CPANEL_PASSWORD = "wrong-" .. ALICE_PW }) })
  end)

  it("the project never turns on libcurl's verbose output (it would print the headers)", function()
    for _, f in ipairs { "csrc/curl.c", "csrc/client.c", "csrc/batch.c" } do
      local src = read_file(f) or ""
      assert.is_nil(src:find("CURLOPT_VERBOSE", 1, true), f)
      assert.is_nil(src:find("CURLOPT_DEBUGFUNCTION", 1, true), f)
    end
  end)

  it("http:// to a host that is not loopback is refused before any byte is sent", function()
    -- A listener on this machine's own non-loopback address: nothing may connect to it.
    local ip = capture("hostname -I 2>/dev/null"):match("(%d+%.%d+%.%d+%.%d+)")
    if not ip or ip:match("^127%.") then
      pending("no non-loopback IPv4 address on this machine")
      return
    end
    local listener = assert(socket.bind(ip, 0))
    local _, port = listener:getsockname()
    local c, err = cptokens.new { url = "http://" .. ip .. ":" .. port, user = "alice", password = ALICE_PW }
    assert.is_nil(c)
    assert.are.equal("invalid", err.kind)
    scan(err)
    listener:settimeout(0.3)
    local conn = listener:accept()
    listener:close()
    assert.is_nil(conn, "a connection reached the listener")
  end)
end)
