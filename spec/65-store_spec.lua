-- Durable secret storage: cptokens.store (save, load, check).
local H = require "spec.helpers"
local server = require "spec.support.server"
local util = require "spec.support.util"
local cptokens = require "cptokens"
local store = require "cptokens.store"
local cjson = require "cjson"

local ALICE_PW = H.ALICE_PW
local TOKEN = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"

local shell_quote, capture, read_file, write_file = util.shell_quote, util.capture, util.read_file, util.write_file
local LUA = util.LUA -- for the subprocesses

describe("cptokens.store", function()
  local srv, tmp
  local dirs = 0

  setup(function()
    srv = server.start()
    tmp = util.tmpdir("store")
  end)
  teardown(function()
    if srv then srv:stop() end
    util.rmdir(tmp)
  end)
  before_each(function() srv:reset() end)

  local function fresh_dir()
    dirs = dirs + 1
    local d = tmp .. "/d" .. dirs
    assert(util.execute("mkdir -p " .. shell_quote(d)))
    return d
  end

  local function conn()
    return { url = srv.url, user = "alice", cafile = srv.cafile, credential = "password", insecure = false,
             timeout = 30, connect_timeout = 10, max_response = 16777216 }
  end

  local TOK = { name = "deploy-20260101000000", token = TOKEN, create_time = 1767225600, expires_at = 1769817600 }

  local function invalid(value, err)
    assert.is_nil(value)
    assert.is_true(cptokens.is_error(err), tostring(err))
    assert.are.equal("invalid", err.kind, tostring(err))
    assert.is_nil(err.message:find("\n"))
    H.assert_no_secret(err, { TOKEN, ALICE_PW })
    return err
  end

  describe("save", function()
    it("writes JSON with the token and how to reach the account, mode 0600, nothing else beside it", function()
      local dir = fresh_dir()
      local path = dir .. "/token.json"
      assert.is_true(store.save(path, TOK, conn()))
      assert.are.equal("600", util.file_mode(path))
      assert.are.same({ "token.json" }, util.list_dir(dir))
      local doc = cjson.decode(read_file(path))
      assert.are.same({ name = TOK.name, token = TOKEN, create_time = TOK.create_time, expires_at = TOK.expires_at,
                        url = srv.url, user = "alice", cafile = srv.cafile, history = {} }, doc)
    end)

    it("writes null for a token that never expires, and takes a client as conn", function()
      local path = fresh_dir() .. "/token.json"
      local c = H.client(srv)
      assert.is_true(store.save(path, { name = "n", token = TOKEN, create_time = 1 }, c))
      local text = read_file(path)
      assert.is_truthy(text:find('"expires_at":null', 1, true), text)
      local doc = cjson.decode(text)
      assert.are.equal(srv.url, doc.url)
      assert.is_nil(text:find(ALICE_PW, 1, true), "the client's own credential is not in the file")
    end)

    it("replaces an existing file atomically under any umask, never readable by others", function()
      local dir = fresh_dir()
      local path = dir .. "/token.json"
      write_file(path, "old")
      os.execute("chmod 606 " .. shell_quote(path))
      local script = dir .. "/save.lua"
      write_file(script, [[
local build = os.getenv("CPTOKENS_BUILD") or "build/5.4"
package.cpath = build .. "/?.so;" .. package.cpath
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local store = require "cptokens.store"
assert(store.save(os.getenv("CPT_PATH"), { name = "n", token = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", create_time = 1 },
                  { url = "https://127.0.0.1:2083", user = "alice" }))
]])
      local out = capture("umask 000; CPT_PATH=" .. shell_quote(path) .. " " .. shell_quote(LUA) .. " " .. shell_quote(script)
        .. " 2>&1; echo status=$?")
      assert.is_truthy(out:find("status=0", 1, true), out)
      os.remove(script)
      assert.are.equal("600", util.file_mode(path))
      assert.are.same({ "token.json" }, util.list_dir(dir))
      assert.are.equal("n", cjson.decode(read_file(path)).name)
    end)

    it("fails with the path named when the directory is missing or not writable", function()
      for _, path in ipairs { tmp .. "/missing/token.json", "/proc/cptokens-token.json" } do
        local err = invalid(store.save(path, TOK, conn()))
        assert.is_truthy(err.message:find(path, 1, true), err.message)
        assert.is_truthy(err.message:find("^store: "), err.message)
      end
    end)

    it("leaves nothing behind when the rename fails (the target is a directory)", function()
      local dir = fresh_dir()
      local path = dir .. "/token.json"
      assert(os.execute("mkdir " .. shell_quote(path) .. " && touch " .. shell_quote(path .. "/keep")))
      invalid(store.save(path, TOK, conn()))
      assert.are.same({ "token.json" }, util.list_dir(dir))
      assert.are.same({ "keep" }, util.list_dir(path))
    end)

    it("leaves the previous file intact and no temporary file when a write fails (file size limit)", function()
      local dir = fresh_dir()
      local path = dir .. "/token.json"
      assert(store.save(path, TOK, conn()))
      local before = read_file(path)
      local script = dir .. "/big.lua"
      write_file(script, [[
local build = os.getenv("CPTOKENS_BUILD") or "build/5.4"
package.cpath = build .. "/?.so;" .. package.cpath
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local store = require "cptokens.store"
local ok, err = store.save(os.getenv("CPT_PATH"), { name = "n", token = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345",
  create_time = 1 }, { url = "https://127.0.0.1:2083", user = "alice", cafile = ("/x"):rep(20000) })
io.write(ok and "saved" or tostring(err))
]])
      -- Writes past 4 KiB fail with EFBIG (SIGXFSZ ignored) after the temporary file exists.
      local out = capture("cd " .. shell_quote(os.getenv("PWD") or ".") .. " && (ulimit -f 8; trap '' XFSZ; CPT_PATH="
        .. shell_quote(path) .. " " .. shell_quote(LUA) .. " " .. shell_quote(script) .. ") 2>&1")
      os.remove(script)
      assert.is_truthy(out:find("cptokens: invalid: store: cannot write", 1, true), out)
      assert.are.equal(before, read_file(path))
      assert.are.same({ "token.json" }, util.list_dir(dir))
    end)

    it("raises for misuse, refuses an empty path", function()
      assert.has_error(function() store.save(nil, TOK, conn()) end)
      assert.has_error(function() store.save("/tmp/x.json", nil, conn()) end)
      assert.has_error(function() store.save("/tmp/x.json", { name = "n" }, conn()) end)
      assert.has_error(function() store.save("/tmp/x.json", TOK, nil) end)
      assert.has_error(function() store.save("/tmp/x.json", TOK, { url = srv.url }) end)
      assert.has_error(function()
        store.save("/tmp/x.json", { name = "n", token = TOKEN, create_time = "soon" }, conn())
      end)
      invalid(store.save("", TOK, conn()))
      invalid(store.save("a\0b", TOK, conn()))
    end)
  end)

  describe("load", function()
    it("gives back options cptokens.new takes as they are, and the token's dates", function()
      local c = H.client(srv)
      local tok = assert(c:create("stored", { expires_in = "1h" }))
      local path = fresh_dir() .. "/token.json"
      assert(store.save(path, tok, c:info()))
      local opts, meta = store.load(path)
      assert.are.same({ url = srv.url, user = "alice", token = tok.token, cafile = srv.cafile }, opts)
      assert.are.same({ name = "stored", create_time = tok.create_time, expires_at = tok.expires_at,
                        history = {} }, meta)
      if math.type then
        assert.are.equal("integer", math.type(meta.create_time))
        assert.are.equal("integer", math.type(meta.expires_at))
      end
      local tc = assert(cptokens.new(opts))
      assert.are.equal("stored", assert(tc:list())[1].name)
    end)

    it("keeps expiry values exact beyond what a double holds (Lua 5.3+)", function()
      if not math.type then return end
      local path = fresh_dir() .. "/token.json"
      local big = 67767976233521999
      assert(store.save(path, { name = "n", token = TOKEN, create_time = 1, expires_at = big }, conn()))
      assert.is_truthy(read_file(path):find("67767976233521999", 1, true))
      local _, meta = assert(store.load(path))
      assert.are.equal(big, meta.expires_at)
    end)

    it("fails for a missing file (err.missing), and for anything that is not a token file", function()
      local dir = fresh_dir()
      local err = invalid(store.load(dir .. "/none.json"))
      assert.is_true(err.missing)
      assert.is_truthy(err.message:find(dir .. "/none.json", 1, true), err.message)
      local bad = {
        "", "not json", "[1,2]", '{"name":"n"}',
        '{"name":"n","token":"' .. TOKEN .. '","user":"alice"}',
        '{"name":"n","token":"' .. TOKEN .. '","url":"https://h","user":"alice","create_time":"soon"}',
        '{"name":"n","token":"' .. TOKEN .. '","url":"https://h","user":"alice","expires_at":-5}',
        '{"name":"n","token":"' .. TOKEN .. '","url":"https://h","user":"alice","cafile":7}',
        '{"name":"n","token":"' .. TOKEN .. '","url":"https://h\\n","user":"alice"}',
      }
      for i, text in ipairs(bad) do
        local path = dir .. "/bad" .. i .. ".json"
        write_file(path, text)
        err = invalid(store.load(path))
        assert.is_nil(err.missing)
        assert.is_truthy(err.message:find(path, 1, true), err.message)
      end
      write_file(dir .. "/huge.json", ("x"):rep(70000))
      invalid(store.load(dir .. "/huge.json"))
      invalid(store.load(dir)) -- a directory
      assert.has_error(function() store.load(42) end)
    end)

    it("reads never-expiring tokens, and files written by hand with quoted numbers", function()
      local path = fresh_dir() .. "/token.json"
      write_file(path, '{"name":"n","token":"' .. TOKEN .. '","url":"https://h:2083","user":"alice",'
        .. '"create_time":"1767225600","expires_at":0}')
      local opts, meta = assert(store.load(path))
      assert.are.same({ url = "https://h:2083", user = "alice", token = TOKEN }, opts)
      assert.are.same({ name = "n", create_time = 1767225600 }, meta)
    end)
  end)

  describe("save over an existing token file", function()
    it("keeps its owner, group and mode (without bits for others)", function()
      local dir = fresh_dir()
      local path = dir .. "/svc.json"
      assert(store.save(path, TOK, conn()))
      assert(util.execute("chown nobody:nogroup " .. shell_quote(path) .. " && chmod 640 " .. shell_quote(path)))
      assert(store.save(path, TOK, conn()))
      assert.are.equal("nobody:nogroup", (capture("stat -c %U:%G " .. shell_quote(path)):gsub("%s+$", "")))
      assert.are.equal("640", util.file_mode(path))
      os.execute("chmod 664 " .. shell_quote(path))
      assert(store.save(path, TOK, conn()))
      assert.are.equal("660", util.file_mode(path))
    end)

    it("writes through a symbolic link to its target, and refuses a dangling one", function()
      local dir = fresh_dir()
      assert(util.execute("mkdir " .. shell_quote(dir .. "/real")))
      local target, link = dir .. "/real/t.json", dir .. "/t.json"
      assert(store.save(target, TOK, conn()))
      assert(util.execute("ln -s real/t.json " .. shell_quote(link)))
      local tok2 = { name = "second", token = TOKEN, create_time = 2 }
      assert(store.save(link, tok2, conn()))
      assert.are.equal("real/t.json", (capture("readlink " .. shell_quote(link)):gsub("%s+$", "")))
      assert.are.equal("second", cjson.decode(read_file(target)).name)
      assert.are.same({ "t.json" }, util.list_dir(dir .. "/real"))
      assert(util.execute("ln -s nowhere.json " .. shell_quote(dir .. "/dangling.json")))
      local err = invalid(store.save(dir .. "/dangling.json", TOK, conn()))
      assert.is_truthy(err.message:find("symbolic link", 1, true), err.message)
      invalid(store.check(dir .. "/dangling.json"))
    end)

    it("as root, refuses a link to a file of another user (a user's link to /etc/shadow)", function()
      local dir = fresh_dir()
      local victim = dir .. "/victim"
      write_file(victim, "precious\n")
      assert(util.execute("chown nobody " .. shell_quote(victim)))
      assert(util.execute("ln -s victim " .. shell_quote(dir .. "/t.json")))
      -- the link is root's here, the target nobody's: the same as a user's link to root's file
      invalid(store.save(dir .. "/t.json", TOK, conn()))
      assert.are.equal("precious\n", read_file(victim))
    end)

    it("removes temporaries a killed writer left behind, and nothing else", function()
      local dir = fresh_dir()
      local path = dir .. "/t.json"
      write_file(path .. ".tmp-Ab12Cd", '{"token":"' .. TOKEN .. '"}')
      write_file(path .. ".tmp-keepme-not-ours", "x")
      write_file(dir .. "/other.json.tmp-Zz99Zz", "x")
      assert(store.save(path, TOK, conn()))
      assert.are.same({ "other.json.tmp-Zz99Zz", "t.json", "t.json.tmp-keepme-not-ours" }, util.list_dir(dir))
    end)
  end)

  describe("lock", function()
    local function locker_script(dir)
      local script = dir .. "/hold.lua"
      write_file(script, [[
local build = os.getenv("CPTOKENS_BUILD") or "build/5.4"
package.cpath = build .. "/?.so;" .. package.cpath
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local store = require "cptokens.store"
local lock = assert(store.lock(os.getenv("CPT_PATH"), 0))
io.stdout:write("locked\n") io.stdout:flush()
io.stdin:read("*l")
lock:release()
]])
      return script
    end

    it("is exclusive across processes, waits a bounded time, then fails with a one-line error", function()
      local dir = fresh_dir()
      local path = dir .. "/t.json"
      local script = locker_script(dir)
      local fifo = dir .. "/fifo"
      assert(util.execute("mkfifo " .. shell_quote(fifo)))
      local out = io.popen("CPT_PATH=" .. shell_quote(path) .. " " .. shell_quote(LUA) .. " "
        .. shell_quote(script) .. " < " .. shell_quote(fifo), "r")
      local hold = io.open(fifo, "w")
      assert.are.equal("locked", out:read("*l"))
      local t0 = H.clock()
      local lock, err = store.lock(path, 0.3)
      local waited = H.clock() - t0
      assert.is_nil(lock)
      assert.are.equal("invalid", err.kind)
      assert.is_true(err.busy)
      assert.is_truthy(err.message:find("another process", 1, true), err.message)
      assert.is_nil(err.message:find("\n"))
      assert.is_true(waited >= 0.25, "waited " .. waited)
      hold:write("\n")
      hold:close()
      out:close()
      lock = assert(store.lock(path, 5))
      lock:release()
      assert.are.same({ "fifo", "hold.lua", "t.json.lock" }, util.list_dir(dir))
    end)

    it("refuses a lock file that is a hard link or belongs to a stranger", function()
      local dir = fresh_dir()
      write_file(dir .. "/other", "x")
      assert(util.execute("ln " .. shell_quote(dir .. "/other") .. " " .. shell_quote(dir .. "/h.json.lock")))
      local lock, err = store.lock(dir .. "/h.json", 0)
      assert.is_nil(lock)
      assert.are.equal("invalid", err.kind)
      write_file(dir .. "/s.json.lock", "")
      assert(util.execute("chown nobody " .. shell_quote(dir .. "/s.json.lock")))
      assert.is_nil((store.lock(dir .. "/s.json", 0)))
      assert.are.equal("x", read_file(dir .. "/other"))
    end)

    it("keeps a journal of names (never a secret) that survives the process", function()
      local path = fresh_dir() .. "/t.json"
      local lock = assert(store.lock(path))
      assert.are.same({ pending = {}, revoke = {} }, lock:journal())
      assert(lock:record { pending = { "a-1" }, revoke = { "b-1", "b-2" } })
      lock:release()
      lock = assert(store.lock(path))
      assert.are.same({ pending = { "a-1" }, revoke = { "b-1", "b-2" } }, lock:journal())
      assert(lock:record(nil))
      assert.are.same({ pending = {}, revoke = {} }, lock:journal())
      lock:release()
    end)
  end)

  describe("check", function()
    it("with conn, refuses a token file of another server or account", function()
      local dir = fresh_dir()
      local path = dir .. "/t.json"
      assert(store.save(path, TOK, { url = "https://other.example:2083", user = "alice" }))
      local err = invalid(store.check(path, conn()))
      assert.is_truthy(err.message:find("other.example", 1, true), err.message)
      assert(store.save(path, TOK, { url = srv.url, user = "bob" }))
      invalid(store.check(path, conn()))
      local port = srv.url:match(":(%d+)$")
      assert(store.save(path, TOK, { url = "https://127.0.0.1:" .. (port + 1), user = "alice" }))
      invalid(store.check(path, conn()))
      assert(store.save(path, TOK, { url = srv.url .. "/", user = "alice" }))
      assert.is_true(store.check(path, conn()))
      assert.is_true(store.same_server("https://H:2083/x", "https://h:2083"))
      assert.is_true(store.same_server("https://h", "https://h:443"))
      assert.is_false(store.same_server("https://h:2083", "https://h:2087"))
      assert.is_false(store.same_server("http://h:2083", "https://h:2083"))
    end)

    it("accepts a new file in a writable directory, an empty file, and a token file", function()
      local dir = fresh_dir()
      assert.is_true(store.check(dir .. "/new.json"))
      write_file(dir .. "/empty.json", "")
      assert.is_true(store.check(dir .. "/empty.json"))
      assert(store.save(dir .. "/token.json", TOK, conn()))
      assert.is_true(store.check(dir .. "/token.json"))
      assert.are.same({ "empty.json", "token.json" }, util.list_dir(dir))
    end)

    it("refuses a missing or unwritable directory, a directory, and a file that is not a token file", function()
      local dir = fresh_dir()
      write_file(dir .. "/notes.txt", "precious\n")
      for _, path in ipairs { dir .. "/missing/t.json", "/proc/t.json", dir, dir .. "/notes.txt",
                              dir .. "/notes.txt/t.json" } do
        local err = invalid(store.check(path))
        assert.is_truthy(err.message:find(path, 1, true), err.message)
      end
      assert.are.equal("precious\n", read_file(dir .. "/notes.txt"))
      assert.are.same({ "notes.txt" }, util.list_dir(dir))
    end)
  end)
end)
