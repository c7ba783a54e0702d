-- What `make install`, `make uninstall` and README's luarocks line put in place, run the way a
-- user runs it: a launcher that finds its own modules with no LUA_PATH, launchers of two Luas in
-- one PREFIX, the manual page, the systemd units (systemd-analyze verify, and their ExecStart
-- lines run against the fake server), and README's cron lines under cron's environment.
-- Tagged novalgrind: these run make, luarocks and shells, not the C module's memory.
local server = require "spec.support.server"
local util = require "spec.support.util"
local store = require "cptokens.store"

local q = util.shell_quote

-- Only the system's lua-cjson on the C path: nothing of the work tree or of another install.
local function cjson_dir(lua)
  local out = util.capture(q(lua) .. [[ -e 'io.write((package.searchpath and
    package.searchpath("cjson", package.cpath) or ""):match("^(.*)/[^/]*$") or "")' 2>/dev/null]])
  return out
end

-- Runs cmd (a shell string) with exactly env (plus HOME), from dir; returns code, stdout, stderr.
local function run_env(cmd, env, dir, tmp)
  local parts = { "env", "-i" }
  for k, v in pairs(env) do parts[#parts + 1] = q(k .. "=" .. v) end
  local base = tmp .. "/run"
  local line = "cd " .. q(dir or tmp) .. " && " .. table.concat(parts, " ") .. " sh -c " .. q(cmd)
    .. " </dev/null >" .. q(base .. ".out") .. " 2>" .. q(base .. ".err") .. "; echo $? >"
    .. q(base .. ".code")
  assert(util.execute(line))
  return tonumber(util.read_file(base .. ".code"):match("%d+")), util.read_file(base .. ".out") or "",
         util.read_file(base .. ".err") or ""
end

local function readme() return assert(util.read_file("README.md")) end

-- The ```sh block of README or docs/cli.md that contains marker.
local function readme_block(marker)
  for block in (readme() .. assert(util.read_file("docs/cli.md"))):gmatch("```sh\n(.-)```") do
    if block:find(marker, 1, true) then return block end
  end
  error("README has no sh block with " .. marker)
end

-- The name of the token a token file holds.
local function held(path) return assert(select(2, store.load(path))).name end

local function have(cmd) return util.execute("command -v " .. cmd .. " >/dev/null 2>&1") end

describe("install #novalgrind", function()
  local srv, tmp, prefix, home
  local pwfile

  setup(function()
    srv = server.start()
    tmp = util.tmpdir("install")
    prefix = tmp .. "/prefix"
    home = tmp .. "/home"
    util.execute("mkdir -p " .. q(home))
    pwfile = tmp .. "/alice.pw"
    util.write_private(pwfile, srv.accounts.alice.password .. "\n")
  end)
  teardown(function()
    if srv then srv:stop() end
    util.rmdir(tmp)
  end)
  before_each(function() srv:reset() end)

  -- (make test-all runs the suite from a make with LUA_VERSION=5.1 on its command line: its
  -- variables reach this make through MAKEFLAGS and the environment; this make is the user's)
  local function make(args)
    local out = util.capture("env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u LUA_VERSION -u LUA -u BUILD"
      .. " -u LUA_INCDIR -u BUSTED make -s --no-print-directory " .. args .. " 2>&1; echo \"rc=$?\"")
    assert.truthy(out:find("rc=0\n$"), out)
  end

  -- The environment a user's shell has, without any Lua path pointing at cptokens.
  local function user_env(lua)
    return { HOME = home, PATH = "/usr/bin:/bin", LUA_PATH = "/nonexistent/?.lua",
             LUA_CPATH = cjson_dir(lua) .. "/?.so", CPANEL_CAFILE = srv.cafile,
             CPANEL_URL = srv.url, CPANEL_USER = "alice" }
  end

  local function files_under(dir)
    local out = util.capture("find " .. q(dir) .. " -type f 2>/dev/null | sort")
    local list = {}
    for f in out:gmatch("[^\n]+") do list[#list + 1] = f end
    return list
  end

  it("make install: the launcher finds its modules in PREFIX; two Luas keep their launchers; uninstall removes all", function()
    make("install PREFIX=" .. q(prefix))
    local env = user_env("lua5.4")
    local code, _, err = run_env(q(prefix .. "/bin/cptokens") .. " rotate boot --password-file "
      .. q(pwfile) .. " --out " .. q(tmp .. "/boot.json"), env, nil, tmp)
    assert.are.equal(0, code, err)
    local out
    code, out, err = run_env(q(prefix .. "/bin/cptokens") .. " list --json --token-file "
      .. q(tmp .. "/boot.json"), env, nil, tmp)
    assert.are.equal(0, code, err)
    assert.truthy(out:find('"name":"boot%-%d+"'), out)
    -- Nothing on the path but the PREFIX: without the launcher's own lines the module is not found.
    code, _, err = run_env("lua5.4 -e 'require \"cptokens.cli\"'", env, nil, tmp)
    assert.are_not.equal(0, code)
    assert.truthy(err:find("module 'cptokens.cli' not found", 1, true), err)

    assert.truthy(util.read_file(prefix .. "/bin/cptokens"):find("^#!/%S*lua5%.4\n"))
    if have("luajit") then
      make("install PREFIX=" .. q(prefix) .. " LUA_VERSION=luajit")
      assert.are.equal(util.read_file(prefix .. "/bin/cptokens-5.4"), util.read_file(prefix .. "/bin/cptokens"))
      assert.truthy(util.read_file(prefix .. "/bin/cptokens-luajit"):find("^#!/%S*luajit\n"))
      code, out, err = run_env(q(prefix .. "/bin/cptokens-luajit") .. " list --token-file "
        .. q(tmp .. "/boot.json"), user_env("luajit"), nil, tmp)
      assert.are.equal(0, code, err)
      assert.truthy(out:find("boot%-%d+"), out)
      make("uninstall PREFIX=" .. q(prefix) .. " LUA_VERSION=luajit")
      assert.truthy(util.read_file(prefix .. "/bin/cptokens"), "the 5.4 launcher stays")
    end
    make("uninstall PREFIX=" .. q(prefix))
    assert.are.same({}, files_under(prefix))
  end)

  it("make install puts 5.4 bytecode named by its installed paths; PRECOMPILE=no and LuaJIT install the sources", function()
    make("install PREFIX=" .. q(prefix))
    local luadir = prefix .. "/share/lua/5.4"
    local installed = files_under(luadir .. "/cptokens")
    assert.truthy(#installed > 20, #installed .. " modules installed")
    for _, f in ipairs(installed) do
      assert.are.equal("\27Lua", util.read_file(f):sub(1, 4), f .. " is bytecode")
      assert.are.equal("644", util.capture("stat -c %a " .. q(f)):match("%d+"), f)
      assert.truthy(f:find("%.lua$"), f .. ": no temporary file is left")
    end
    -- What an installed module says of itself names its installed file and lines, as from source.
    local env = user_env("lua5.4")
    env.LUA_PATH = luadir .. "/?.lua;" .. luadir .. "/?/init.lua"
    env.LUA_CPATH = env.LUA_CPATH .. ";" .. prefix .. "/lib/lua/5.4/?.so"
    local code, out, err = run_env([[lua5.4 -e 'local c = require "cptokens"
      local i = debug.getinfo(c.new, "S") io.write(i.source, ":", i.linedefined)']], env, nil, tmp)
    assert.are.equal(0, code, err)
    local line = out:match("^@" .. luadir:gsub("%p", "%%%0") .. "/cptokens/init%.lua:(%d+)$")
    assert.truthy(line, out)
    local n = 0
    for l in assert(util.read_file("lua/cptokens/init.lua")):gmatch("([^\n]*)\n") do
      n = n + 1
      if l:find("^function _M%.new%(") then break end
    end
    assert.are.equal(tostring(n), line, "the line of the source's function _M.new(")
    make("uninstall PREFIX=" .. q(prefix))

    make("install PRECOMPILE=no PREFIX=" .. q(prefix))
    for _, f in ipairs(files_under(luadir .. "/cptokens")) do
      local src = "lua/" .. f:sub(#luadir + 2)
      assert.are.equal(util.read_file(src), util.read_file(f), f .. " is " .. src)
    end
    make("uninstall PREFIX=" .. q(prefix))
    if have("luajit") then
      make("install PREFIX=" .. q(prefix) .. " LUA_VERSION=luajit")
      local f = prefix .. "/share/lua/5.1/cptokens/cli.lua"
      assert.are.equal(util.read_file("lua/cptokens/cli.lua"), util.read_file(f), "LuaJIT's modules stay source")
      make("uninstall PREFIX=" .. q(prefix) .. " LUA_VERSION=luajit")
    end
    assert.are.same({}, files_under(prefix))
  end)

  it("the manual page renders without warnings and is installed", function()
    make("install PREFIX=" .. q(prefix))
    local code, out, err = run_env("man --warnings -l " .. q(prefix .. "/share/man/man1/cptokens.1") .. " | col -bx",
      { PATH = "/usr/bin:/bin", MANWIDTH = "80", HOME = home }, nil, tmp)
    assert.are.equal(0, code, err)
    assert.are.equal("", err)
    assert.truthy(out:find("NAME%s+cptokens%s+%-%s+create,%s+list,%s+rename"), out)
    for _, cmd in ipairs { "list", "create", "revoke", "rename", "rotate", "prune", "audit", "whm", "accounts",
                           "fleet" } do
      assert.truthy(out:find("\n       " .. cmd, 1, true), cmd .. " is not in the manual page")
    end
    make("uninstall PREFIX=" .. q(prefix))
  end)

  describe("systemd units", function()
    local unitdir
    before_each(function()
      make("install PREFIX=" .. q(prefix))
      unitdir = prefix .. "/lib/systemd/system"
    end)
    after_each(function() make("uninstall PREFIX=" .. q(prefix)) end)

    it("pass systemd-analyze verify, hardened, output to the journal", function()
      if not have("systemd-analyze") then pending("systemd-analyze is not installed") return end
      local paths = {}
      for _, u in ipairs { "cptokens-audit@", "cptokens-rotate@" } do
        for _, ext in ipairs { ".service", ".timer" } do
          local text = assert(util.read_file(unitdir .. "/" .. u .. ext), u .. ext)
          local inst = tmp .. "/" .. u .. "deploy" .. ext
          util.write_file(inst, text)
          paths[#paths + 1] = q(inst)
          if ext == ".service" then
            for _, key in ipairs { "User=%i", "NoNewPrivileges=yes", "ProtectSystem=strict",
                                   "PrivateTmp=yes", "StandardOutput=journal", "Type=oneshot" } do
              assert.truthy(text:find("\n" .. key .. "\n", 1, true), u .. ext .. " lacks " .. key)
            end
          end
        end
      end
      local code, _, err = run_env("systemd-analyze verify " .. table.concat(paths, " "),
        { PATH = "/usr/bin:/bin", MANPATH = prefix .. "/share/man", HOME = home }, nil, tmp)
      assert.are.equal(0, code, err)
      assert.are.equal("", err)
    end)

    -- The services' command lines, expanded as systemd expands them (%i, ${VAR} from
    -- Environment= then the EnvironmentFile), run against the fake server.
    local function exec_start(unit, conf, statedir)
      local text = assert(util.read_file(unitdir .. "/" .. unit))
      local vars = {}
      for line in text:gmatch("Environment=([^\n]+)") do
        for k, v in line:gmatch("(%S+)=(%S+)") do vars[k] = v end
      end
      for k, v in conf:gmatch("(%S+)=(%S+)") do vars[k] = v end
      local cmd = assert(text:match("\nExecStart=([^\n]+)"))
      cmd = cmd:gsub("/var/lib/cptokens/%%i", statedir):gsub("%%i", "deploy")
      return (cmd:gsub("%${([%w_]+)}", function(k) return assert(vars[k], k .. " is not set") end))
    end

    it("rotate and audit, as the units run them, rotate the token file and audit it", function()
      local state = tmp .. "/state"
      util.execute("rm -rf " .. q(state) .. "; mkdir -m 0700 " .. q(state))
      local env = user_env("lua5.4")
      -- README's bootstrap: the first token with the password.
      local code, _, err = run_env(q(prefix .. "/bin/cptokens") .. " rotate deploy --password-file "
        .. q(pwfile) .. " --out " .. q(state .. "/token.json"), env, nil, tmp)
      assert.are.equal(0, code, err)
      local first = held(state .. "/token.json")
      env.CPANEL_URL, env.CPANEL_USER = nil, nil -- the token file says where and who
      local rot = exec_start("cptokens-rotate@.service", "CPTOKENS_PREFIX=deploy\n", state)
      assert.truthy(rot:find(prefix .. "/bin/cptokens rotate deploy --expires-in 30d", 1, true), rot)
      os.execute("sleep 1") -- a new second: a new name
      code, _, err = run_env(rot, env, nil, tmp)
      assert.are.equal(0, code, err)
      local opts, second = store.load(state .. "/token.json")
      assert.are_not.equal(first, second.name)
      assert.truthy(opts.token and second.expires_at, "a token with a 30-day expiry")
      local names = {}
      for _, t in ipairs(srv:tokens("alice")) do names[#names + 1] = t.name end
      assert.are.same({ second.name }, names)
      local aud = exec_start("cptokens-audit@.service", "", state)
      code, _, err = run_env(aud, env, nil, tmp)
      assert.are.equal(0, code, err)
      -- Within 60 days the 30-day token is expiring: the unit fails with 3, for systemctl --failed.
      aud = exec_start("cptokens-audit@.service", "CPTOKENS_WITHIN=60d\n", state)
      code = run_env(aud, env, nil, tmp)
      assert.are.equal(3, code)
    end)
  end)

  it("README's cron lines work under cron's environment once installed", function()
    local block = readme_block("/etc/cron.d/cptokens")
    -- README installs into /usr/local; here the PREFIX stands for it, and the fake server for
    -- host.example.com. Nothing else of the lines is changed.
    local function here(s)
      return (s:gsub("/usr/local", prefix):gsub("https://host%.example%.com:2083", srv.url)
               :gsub("/home/deploy/%.cptokens", tmp .. "/cron"))
    end
    make("install PREFIX=" .. q(prefix))
    local env, jobs = { HOME = home, SHELL = "/bin/sh", LOGNAME = "deploy" }, {}
    env.PATH = "/usr/bin:/bin" -- cron's own, until the file sets one
    for line in block:gmatch("[^\n]+") do
      local k, v = line:match("^([A-Z_]+)=(.*)$")
      if k then env[k] = here(v)
      elseif not line:find("^#") then
        local cmd = line:match("^%S+%s+%S+%s+%S+%s+%S+%s+%S+%s+%S+%s+(.+)$")
        jobs[#jobs + 1] = here(assert(cmd, line))
      end
    end
    assert.are.equal(2, #jobs)
    assert.truthy(env.PATH:find(prefix .. "/bin", 1, true), "the cron file puts make install's bin on PATH")
    -- The token file, made as README says (the password once).
    util.execute("mkdir -m 0700 " .. q(tmp .. "/cron"))
    local boot = user_env("lua5.4")
    local code, _, err = run_env(q(prefix .. "/bin/cptokens") .. " rotate deploy --password-file "
      .. q(pwfile) .. " --out " .. q(tmp .. "/cron/deploy.json"), boot, nil, tmp)
    assert.are.equal(0, code, err)
    env.CPANEL_CAFILE = srv.cafile -- the sandbox's CA (a real server's is in the system store)
    env.LUA_CPATH = boot.LUA_CPATH -- only the system's lua-cjson: nothing of the work tree
    env.LUA_PATH = boot.LUA_PATH
    local out
    code, out, err = run_env(jobs[1], env, nil, tmp)
    assert.are.equal(0, code, err)
    assert.are.equal("", out .. err, "the audit line is silent while all is well")
    local before = held(tmp .. "/cron/deploy.json")
    os.execute("sleep 1")
    code, _, err = run_env(jobs[2], env, nil, tmp)
    assert.are.equal(0, code, err)
    assert.are_not.equal(before, held(tmp .. "/cron/deploy.json"))
    -- Under cron's PATH alone, the same line finds no cptokens: the PATH line is what makes it work.
    env.PATH = "/usr/bin:/bin"
    code = run_env(jobs[2], env, nil, tmp)
    assert.are.equal(127, code)
    make("uninstall PREFIX=" .. q(prefix))
  end)

  it("README's command line in two minutes runs as written, once installed, in a new home", function()
    local block = readme_block("cptokens create mysite")
    make("install PREFIX=" .. q(prefix))
    local h = tmp .. "/newhome"
    util.execute("rm -rf " .. q(h) .. "; mkdir -m 0700 " .. q(h))
    util.write_private(h .. "/.cpanel-password", srv.accounts.alice.password .. "\n")
    -- The sandbox stands for host.example.com (`make sandbox` prints its URL and CA file as
    -- export lines); the installed tool is on PATH. Nothing else of the block is changed.
    local script = block:gsub("https://host%.example%.com:2083", srv.url)
    local env = user_env("lua5.4")
    env.HOME, env.PATH, env.CPANEL_URL, env.CPANEL_USER = h, prefix .. "/bin:/usr/bin:/bin", nil, nil
    local code, out, err = run_env("set -e\n" .. script, env, nil, tmp)
    assert.are.equal(0, code, err .. out)
    -- what it says it did: the token file holds a rotated mysite token, the account's only one
    local path = h .. "/.config/cptokens/mysite.json"
    local opts, tok = assert(store.load(path))
    assert.truthy(tok.name:match("^mysite%-%d+$"), tok.name)
    local names = {}
    for _, t in ipairs(srv:tokens("alice")) do names[#names + 1] = t.name end
    assert.are.same({ tok.name }, names)
    assert.are.equal(srv:tokens("alice")[1].token, opts.token)
    assert.truthy(out:find("created mysite", 1, true), out)
    assert.truthy(out:find("\nmysite ", 1, true), out) -- list's row
    make("uninstall PREFIX=" .. q(prefix))
  end)

  it("README's luarocks line installs a tool that runs", function()
    if not have("luarocks") then pending("luarocks is not installed") return end
    local line = assert(readme():match("\n(luarocks [^\n#]-make [^\n#]-%.rockspec)"), "README's luarocks line")
    local cwd = util.capture("pwd"):gsub("%s+$", "")
    local code, _, err = run_env(line, { HOME = home, PATH = "/usr/bin:/bin" }, cwd, tmp)
    assert.are.equal(0, code, err)
    local env = user_env("lua5.4")
    env.LUA_PATH, env.LUA_CPATH = nil, nil -- luarocks' wrapper sets its own paths
    code, _, err = run_env(q(home .. "/.luarocks/bin/cptokens") .. " rotate boot --password-file "
      .. q(pwfile) .. " --out " .. q(tmp .. "/rock.json"), env, nil, tmp)
    assert.are.equal(0, code, err)
    local out
    code, out, err = run_env(q(home .. "/.luarocks/bin/cptokens") .. " list --token-file "
      .. q(tmp .. "/rock.json"), env, nil, tmp)
    assert.are.equal(0, code, err)
    assert.truthy(out:find("boot%-%d+"), out)
  end)
end)
