-- The limits the structure issue set, kept: no file under lua/ over about 500 lines, no Lua
-- function over about 60 (data tables aside), so that the next engineer reads small pieces.
local util = require "spec.support.util"

local FILE_MAX, FUNCTION_MAX = 500, 62

local function lua_files()
  local out = {}
  for f in util.capture("find lua -name '*.lua' | sort"):gmatch("[^\n]+") do out[#out + 1] = f end
  return out
end

-- Each function: its first line, and its length up to the `end` at the same indentation.
local function functions(text)
  local lines, out = {}, {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  for i, line in ipairs(lines) do
    local indent = line:match("^(%s*)local%s+function[%s(]") or line:match("^(%s*)function[%s(]")
      or line:match("^(%s*)[%w_.:%[%]\"]+%s*=%s*function%s*%(")
    if indent then
      for j = i + 1, #lines do
        local l = lines[j]
        if l:sub(1, #indent + 3) == indent .. "end" and not l:sub(#indent + 4, #indent + 4):match("[%w_]") then
          out[#out + 1] = { line = i, length = j - i + 1, text = line }
          break
        end
      end
    end
  end
  return out
end

describe("structure", function()
  it("finds functions (the checker itself works)", function()
    local fs = functions("local function a()\n  return 1\nend\n\nfunction M.b(x)\n  if x then\n  end\nend\n")
    assert.are.same({ 1, 5 }, { fs[1].line, fs[2].line })
    assert.are.same({ 3, 4 }, { fs[1].length, fs[2].length })
  end)

  it("no file under lua/ is longer than " .. FILE_MAX .. " lines", function()
    local long = {}
    for _, f in ipairs(lua_files()) do
      local n = select(2, util.read_file(f):gsub("\n", "\n"))
      if n > FILE_MAX then long[#long + 1] = f .. ": " .. n end
    end
    assert.are.same({}, long)
  end)

  it("no Lua function is longer than " .. FUNCTION_MAX .. " lines", function()
    local long = {}
    for _, f in ipairs(lua_files()) do
      for _, fn in ipairs(functions(util.read_file(f))) do
        if fn.length > FUNCTION_MAX then
          long[#long + 1] = ("%s:%d: %d lines: %s"):format(f, fn.line, fn.length, fn.text)
        end
      end
    end
    assert.are.same({}, long)
  end)
end)
