-- The documentation holds together: README stays short and links to docs/; every relative link
-- and #anchor in README.md, docs/*.md, CONTRIBUTING.md and ARCHITECTURE.md resolves; `make docs`
-- (LDoc) builds the API reference of every public module without a warning.
local util = require "spec.support.util"

local PAGES = { "README.md", "CONTRIBUTING.md", "ARCHITECTURE.md", "CHANGELOG.md" }
for name in util.capture("ls docs"):gmatch("[^\n]+") do
  if name:match("%.md$") then PAGES[#PAGES + 1] = "docs/" .. name end
end

-- GitHub's anchor for a heading: lower case, punctuation dropped, spaces as "-".
local function anchor(heading)
  return (heading:lower():gsub("[^%w%- _]", ""):gsub(" ", "-"))
end

local function anchors_of(text)
  local set, fence = {}, false
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    if line:match("^```") then fence = not fence end
    local h = not fence and line:match("^#+ (.+)$")
    if h then set[anchor(h)] = true end
  end
  return set
end

local function dir_of(path) return path:match("^(.*)/") or "." end

describe("the documentation", function()
  it("README is short: what it is, set-up, install, quick starts, links", function()
    local text = assert(util.read_file("README.md"))
    local n = select(2, text:gsub("\n", ""))
    assert.is_true(n <= 220, "README.md has " .. n .. " lines")
    for _, page in ipairs { "docs/cli.md", "docs/api.md", "docs/whm.md", "docs/openresty.md",
                            "docs/security.md" } do
      assert.truthy(text:find("(" .. page .. ")", 1, true), "README links to " .. page)
    end
  end)

  it("every relative link and anchor resolves", function()
    local cache = {}
    local function page(path)
      if cache[path] == nil then cache[path] = util.read_file(path) or false end
      return cache[path]
    end
    local broken = {}
    for _, from in ipairs(PAGES) do
      local text = assert(page(from), from)
      for target in text:gmatch("%]%(([^)%s]+)%)") do
        if not target:match("^%a+:") then -- not http:, https:, mailto:
          local file, frag = target:match("^([^#]*)#?(.*)$")
          local path = file == "" and from or (dir_of(from) .. "/" .. file):gsub("^%./", "")
          local body = page(path)
          if body == false and not util.execute("test -e " .. util.shell_quote(path)) then
            broken[#broken + 1] = from .. ": " .. target .. " (no " .. path .. ")"
          elseif frag ~= "" and (not body or not anchors_of(body)[frag]) then
            broken[#broken + 1] = from .. ": " .. target .. " (no heading #" .. frag .. ")"
          end
        end
      end
    end
    assert.are.same({}, broken)
  end)

  it("`make docs` builds the API reference of every public module, without a warning", function()
    local out = util.capture("make -s docs 2>&1; echo rc=$?")
    assert.truthy(out:find("rc=0", 1, true), out)
    assert.is_nil(out:find("lua:%d+:"), out)
    for _, m in ipairs { "cptokens", "cptokens.time", "cptokens.store", "cptokens.rotate", "cptokens.whm",
                         "cptokens.ngx" } do
      assert.truthy(util.read_file("build/docs/modules/" .. m .. ".html"), m .. " is documented")
    end
  end)
end)
