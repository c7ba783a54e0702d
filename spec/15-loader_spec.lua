-- cptokens/core.so is a loader (csrc/loader/core.c): it loads the module, core_impl.so, from its
-- own folder, RTLD_LAZY (Lua would load it RTLD_NOW), and opens it. Each case runs this suite's
-- Lua in a process of its own, on copies of the build in a scratch folder.
local util = require "spec.support.util"

local q = util.shell_quote

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end
local BUILD = os.getenv("CPTOKENS_BUILD") or "build/5.4"
if BUILD:sub(1, 1) ~= "/" then BUILD = util.capture("pwd"):gsub("%s+$", "") .. "/" .. BUILD end

describe("the loader cptokens/core.so", function()
  local tmp
  setup(function() tmp = util.tmpdir("loader") end)
  teardown(function() util.rmdir(tmp) end)

  -- A folder dir/cptokens holding copies of the build's files: { ["core.so"] = "core.so", ... }.
  local function tree(name, files)
    local dir = tmp .. "/" .. name
    assert(util.execute("mkdir -p " .. q(dir .. "/cptokens")))
    for to, from in pairs(files) do
      assert(util.execute("cp " .. q(BUILD .. "/cptokens/" .. from) .. " " .. q(dir .. "/cptokens/" .. to)))
    end
    return dir
  end

  -- Runs code (a script file: make test-asan's interpreter takes no -e) in this suite's Lua from
  -- dir, with cpath first on package.cpath; returns code, stdout, stderr. LD_BIND_NOW is unset:
  -- it would make every load eager.
  local function lua(dir, cpath, code, env)
    local out = tmp .. "/out"
    util.write_file(out .. ".lua", "package.cpath = " .. ("%q"):format(cpath) .. " .. ';' .. package.cpath\n"
      .. code)
    local line = "cd " .. q(dir) .. " && env -u LD_BIND_NOW -u LUA_INIT -u LUA_CPATH " .. (env or "") .. " "
      .. q(util.LUA) .. " " .. q(out .. ".lua") .. " >" .. q(out .. ".1") .. " 2>" .. q(out .. ".2")
      .. "; echo $? >" .. q(out .. ".rc")
    assert(util.execute(line))
    return tonumber(util.read_file(out .. ".rc"):match("%d+")), util.read_file(out .. ".1") or "",
      util.read_file(out .. ".2") or ""
  end

  local function needed(file)
    local list = {}
    for lib in util.capture("readelf -d " .. q(file)):gmatch("%(NEEDED%)%s+Shared library: %[([^%]]+)%]") do
      list[#list + 1] = lib:match("^(lib[%w_+-]*)")
    end
    table.sort(list)
    return table.concat(list, " ")
  end

  it("needs nothing but libc; the module beside it links libcurl and OpenSSL", function()
    if util.capture("command -v readelf") == "" then pending("readelf (binutils) is missing") return end
    local loader = needed(BUILD .. "/cptokens/core.so")
    assert.truthy(loader == "libc" or loader == "libc libdl", loader)
    local impl = needed(BUILD .. "/cptokens/core_impl.so")
    assert.truthy((" " .. impl .. " "):find(" libcurl ", 1, true), impl)
    assert.truthy((" " .. impl .. " "):find(" libcrypto ", 1, true), impl)
  end)

  it("opens core_impl.so from its own folder, from a relative package.cpath too", function()
    local dir = tree("relative", { ["core.so"] = "core.so", ["core_impl.so"] = "core_impl.so" })
    local code, out, err = lua(dir, "./?.so", [[
      local c = require "cptokens.core"
      local maps = io.open("/proc/self/maps"):read("*a")
      io.write(c._VERSION, " ", tostring(c.new ~= nil), " ",
        maps:match("(%S*/cptokens/core_impl%.so)\n") or "none")]])
    assert.are.equal(0, code, err)
    local version, has_new, where = out:match("^(%S+) (%S+) (%S+)$")
    assert.are.equal(require("cptokens.core")._VERSION, version, out)
    assert.are.equal("true", has_new, out)
    local real = util.capture("cd " .. q(dir) .. " && pwd -P"):gsub("%s+$", "")
    assert.are.equal(real .. "/cptokens/core_impl.so", where, "the copy beside the loader, not the build's")
    -- The module itself can be required by its own name, as Lua loads any module.
    code, out, err = lua(dir, "./?.so", [[io.write(require("cptokens.core_impl")._VERSION)]])
    assert.are.equal(0, code, err)
    assert.are.equal(version, out)
  end)

  it("alone, says which file it did not find", function()
    local dir = tree("alone", { ["core.so"] = "core.so" })
    local code, _, err = lua(tmp, dir .. "/?.so", [[require "cptokens.core"]])
    assert.are_not.equal(0, code)
    assert.truthy(err:find("cptokens.core: " .. dir .. "/cptokens/core_impl.so", 1, true), err)
    assert.truthy(err:find("No such file", 1, true), err)
  end)

  it("beside a core_impl.so that is not the module, says so", function()
    local dir = tree("wrong", { ["core.so"] = "core.so", ["core_impl.so"] = "core.so" })
    local code, _, err = lua(tmp, dir .. "/?.so", [[require "cptokens.core"]])
    assert.are_not.equal(0, code)
    assert.truthy(err:find(dir .. "/cptokens/core_impl.so has no luaopen_cptokens_core_impl", 1, true), err)
  end)

  it("opens the module beside the file a symbolic link names, when there is none beside the link", function()
    local dir = tree("target", { ["core.so"] = "core.so", ["core_impl.so"] = "core_impl.so" })
    local link = tmp .. "/link"
    assert(util.execute("mkdir -p " .. q(link .. "/cptokens") .. " && ln -s " .. q(dir .. "/cptokens/core.so") .. " "
      .. q(link .. "/cptokens/core.so")))
    local code, out, err = lua(tmp, link .. "/?.so", [[
      require "cptokens.core"
      io.write(io.open("/proc/self/maps"):read("*a"):match("(%S*/cptokens/core_impl%.so)\n") or "none")]])
    assert.are.equal(0, code, err)
    assert.are.equal(util.capture("cd " .. q(dir) .. " && pwd -P"):gsub("%s+$", "") .. "/cptokens/core_impl.so", out)
  end)

  -- The headers of the Lua running this suite, and of another one installed (or nil).
  local function headers()
    local mine = jit and "luajit-2.1" or "lua" .. _VERSION:match("%d+%.%d+")
    local other
    for _, h in ipairs { "lua5.4", "lua5.3", "lua5.2", "lua5.1" } do
      local family = (mine == "luajit-2.1" and "lua5.1" or mine)
      if h ~= family and exists("/usr/include/" .. h .. "/lua.h") then other = other or h end
    end
    return "/usr/include/" .. mine, other and "/usr/include/" .. other
  end

  -- A loader built here from csrc/loader/core.c into dir/cptokens/core.so.
  local function build_loader(dir, incdir, flags)
    assert(util.execute("mkdir -p " .. q(dir .. "/cptokens")))
    local cmd = "cc -std=c99 -fPIC -shared -fvisibility=hidden -I" .. q(incdir) .. " " .. (flags or "") .. " -o "
      .. q(dir .. "/cptokens/core.so") .. " csrc/loader/core.c -ldl 2>&1"
    local out = util.capture(cmd)
    assert(exists(dir .. "/cptokens/core.so"), out)
  end

  it("refuses a core_impl.so of another version, naming both files", function()
    local dir = tree("version", { ["core_impl.so"] = "core_impl.so" })
    build_loader(dir, (headers()), "-DCPT_VERSION='\"9.9.9\"'")
    local code, _, err = lua(tmp, dir .. "/?.so", [[require "cptokens.core"]])
    assert.are_not.equal(0, code)
    local version = require("cptokens.core")._VERSION
    assert.truthy(err:find("cptokens.core: " .. dir .. "/cptokens/core_impl.so is cptokens " .. version
      .. ", this loader (" .. dir .. "/cptokens/core.so) 9.9.9: install both files again", 1, true), err)
  end)

  it("built for another Lua, is refused by this one before the module is opened", function()
    local _, other = headers()
    if not other then pending("no other Lua's headers are installed") return end
    local dir = tree("other-lua", { ["core_impl.so"] = "core_impl.so" })
    build_loader(dir, other)
    local code, _, err = lua(tmp, dir .. "/?.so", [[
      local ok, e = pcall(require, "cptokens.core")
      io.stderr:write(tostring(e), "\n", io.open("/proc/self/maps"):read("*a"):find("core_impl.so", 1, true)
        and "mapped" or "not mapped")
      os.exit(ok and 0 or 1)]])
    assert.are.equal(1, code, err) -- an error, not a crash
    assert.truthy(err:find("built for another Lua than this one", 1, true) or err:find("undefined symbol", 1, true),
      err)
    assert.truthy(err:find("not mapped", 1, true), err)
  end)

  it("refuses, at require, a libcurl older than the functions the module calls", function()
    if util.capture("command -v cc") == "" then pending("no C compiler") return end
    local shim = tmp .. "/old_curl.so"
    local out = util.capture("cc -shared -fPIC -o " .. q(shim) .. " spec/support/old_curl.c 2>&1")
    assert(exists(shim), out)
    local code, _, err = lua(tmp, BUILD .. "/?.so", [[require "cptokens.core"]], "LD_PRELOAD=" .. q(shim))
    assert.are_not.equal(0, code)
    assert.truthy(err:find("cptokens.core needs libcurl 7.66.0 or later; this process has libcurl 7.60.0", 1, true),
      err)
  end)

  it("is never unloaded, nor is the module (libcurl's resolver threads may outlive a Lua state)", function()
    if util.capture("command -v readelf") == "" then pending("readelf (binutils) is missing") return end
    for _, f in ipairs { "core.so", "core_impl.so" } do
      local flags = util.capture("readelf -d " .. q(BUILD .. "/cptokens/" .. f)):match("%(FLAGS_1%)[^\n]*") or ""
      assert.truthy(flags:find("NODELETE", 1, true), f .. ": " .. flags)
    end
  end)

  it("cptokens refuses a C module of another version than its Lua (an upgrade under a running process)", function()
    -- What a new Lua state sees in a process that loaded the old module (it is never unloaded).
    local code, _, err = lua(tmp, BUILD .. "/?.so", [[
      local here = "]] .. util.capture("pwd"):gsub("%s+$", "") .. [["
      package.path = here .. "/lua/?.lua;" .. here .. "/lua/?/init.lua;" .. package.path
      local core = require "cptokens.core"
      core._VERSION = "0.0.1"
      require "cptokens"]])
    assert.are_not.equal(0, code)
    assert.truthy(err:find("cptokens: the Lua modules are version " .. require("cptokens")._VERSION
      .. " but the C module this process has loaded, cptokens.core, is 0.0.1: restart the process", 1, true), err)
  end)

  it("binds libcurl's libraries lazily: fewer symbols at load than the module loaded as Lua loads it", function()
    -- glibc's LD_DEBUG=statistics counts the symbol relocations done by the end of the process.
    local function relocations(module)
      local code, _, err = lua(tmp, BUILD .. "/?.so", "require '" .. module .. "'", "LD_DEBUG=statistics")
      assert.are.equal(0, code, err)
      local n = err:match("final number of relocations: (%d+)")
      assert.truthy(n, err)
      return tonumber(n)
    end
    local lazy, now = relocations("cptokens.core"), relocations("cptokens.core_impl")
    assert.truthy(lazy < now * 0.95, ("%d relocations through the loader, %d without"):format(lazy, now))
  end)
end)
