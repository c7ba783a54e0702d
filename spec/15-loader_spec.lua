-- cptokens/core.so is a loader (csrc/loader/core.c): it loads the module, core_impl.so, from its
-- own folder, RTLD_LAZY (Lua would load it RTLD_NOW), and opens it. Each case runs this suite's
-- Lua in a process of its own, on copies of the build in a scratch folder.
local util = require "spec.support.util"

local q = util.shell_quote
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
