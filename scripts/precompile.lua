--[[
make install's Lua modules as bytecode (Lua 5.2, 5.3, 5.4), so that a process of the
command-line tool does not compile ~100 KB of source on every start (about 2 ms of a
`cptokens list` of 10 ms: bench/RESULTS.md, section 7).

  lua5.4 scripts/precompile.lua DESTROOT CHUNKROOT lua/cptokens/a.lua lua/cptokens/cli/b.lua ...

writes DESTROOT/cptokens/a.lua, DESTROOT/cptokens/cli/b.lua (each replaced whole through a
temporary file; make sets the mode), each the bytecode of its source with debug information kept
(line numbers and local names, as from source) and named CHUNKROOT/cptokens/a.lua: error
messages and tracebacks name the installed path, as for an installed source file. (DESTROOT
is $(DESTDIR)$(LUADIR); CHUNKROOT is $(LUADIR), where the files will be when they run.)

Run with the very Lua the modules are installed for (make's $(LUA)): the bytecode is that
Lua's, checked by it when loaded (a Lua of another version refuses it with "version
mismatch"), and the file is the same for every 5.4.x. Not for 5.1 nor LuaJIT, which share
the 5.1 directory and not their bytecode: make install copies their sources as they are.
]]
local dest, chunkroot = arg[1], arg[2]
if not dest or not chunkroot or not arg[3] then
  io.stderr:write("usage: precompile.lua DESTROOT CHUNKROOT lua/cptokens/FILE.lua...\n")
  os.exit(2)
end
if _VERSION == "Lua 5.1" then
  io.stderr:write("precompile.lua: Lua 5.2 or later (5.1's and LuaJIT's bytecode share a directory)\n")
  os.exit(2)
end

local function fail(msg)
  io.stderr:write("precompile.lua: ", msg, "\n")
  os.exit(1)
end

for i = 3, #arg do
  local src = arg[i]
  local rel = src:match("^lua/(cptokens/.+%.lua)$")
  if not rel then fail(src .. ": not a file under lua/cptokens/") end
  local h, oerr = io.open(src, "rb")
  if not h then fail(oerr) end
  local text = h:read("*a")
  h:close()
  local f, err = load(text, "@" .. chunkroot .. "/" .. rel, "t")
  if not f then fail(err) end
  local out = dest .. "/" .. rel
  local tmp = out .. ".tmp"
  local w = io.open(tmp, "wb")
  if not w then fail(tmp .. ": cannot be written") end
  local ok = w:write(string.dump(f)) -- strip = false: line numbers stay
  if not (w:close() and ok) then os.remove(tmp); fail(tmp .. ": cannot be written") end
  local moved, merr = os.rename(tmp, out)
  if not moved then os.remove(tmp); fail(merr) end
end
