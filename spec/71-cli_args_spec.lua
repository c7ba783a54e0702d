-- The command line's parsing (lua/cptokens/cli/args.lua, parser.lua): lua-argparse's usage
-- errors and "did you mean", the fast path that leaves lua-argparse unloaded for a plain
-- command line (and reads every command line as argparse does), and the completion scripts.
-- Nothing here contacts a server: every case fails or stops before a client is made.
local util = require "spec.support.util"
local cli = require "cptokens.cli"
local args = require "cptokens.cli.args"
local parser = require "cptokens.cli.parser"

local shell_quote, read_file = util.shell_quote, util.read_file

local function sink()
  local buf = {}
  return {
    write = function(self, ...)
      for _, s in ipairs { ... } do buf[#buf + 1] = s end
      return self
    end,
    flush = function(self) return self end,
    read = function() return "" end,
    text = function() return table.concat(buf) end,
  }
end

-- cli.main in-process with no environment at all (no server, no credential).
local function run(argv)
  local o, e = sink(), sink()
  local code = cli.main(argv, {}, { stdout = o, stderr = e, stdin = sink() })
  return { code = code, out = o:text(), err = e:text() }
end

local function assert_usage(r, pattern)
  assert.are.equal(2, r.code, r.err)
  assert.are.equal("", r.out)
  assert.is_truthy(r.err:match("^cptokens: [^\n]+\n$"), "one line on stderr: " .. r.err)
  assert.is_truthy(r.err:find(pattern), r.err .. " does not match " .. pattern)
end

describe("cptokens command line", function()
  describe("usage errors", function()
    it("suggest the command or option meant (did you mean), exit 2", function()
      assert_usage(run { "lsit" }, "^cptokens: unknown command 'lsit' %(did you mean 'list'%?")
      assert_usage(run { "crate", "x" }, "did you mean 'create'%?")
      assert_usage(run { "list", "--jsno" }, "^cptokens: unknown option %-%-jsno %(did you mean '%-%-json'%?")
      assert_usage(run { "create", "x", "--expires-ni", "1h" }, "did you mean '%-%-expires%-in'%?")
      assert_usage(run { "list", "--urll=https://x" }, "unknown option %-%-urll %(did you mean '%-%-url'%?")
      -- nothing close: no guess
      local r = run { "list", "--zzzzzz" }
      assert_usage(r, "unknown option %-%-zzzzzz %(see 'cptokens help'%)")
      assert.is_falsy(r.err:find("did you mean", 1, true))
      -- an option of another command says so
      assert_usage(run { "audit", "--out", "f" }, "^cptokens: audit: %-%-out does not apply to this command")
    end)

    it("are one line with exit 2 for each kind of mistake, never a traceback", function()
      local cases = {
        { { "list", "extra" }, "list: too many arguments" },
        { { "rename", "a", "b", "c" }, "rename: too many arguments" },
        { { "list", "--json=1" }, "%-%-json takes no value" },
        { { "list", "--insecure=yes" }, "%-%-insecure takes no value" },
        { { "list", "--timeout" }, "%-%-timeout needs a value" },
        { { "list", "--url", "--insecure" }, "%-%-url needs a value" },
        { { "list", "--user", "a", "--user=b" }, "%-%-user is given more than once" },
        { { "--bogus", "list" }, "unknown option %-%-bogus" },
        { { "help", "lsit" }, "unknown command 'lsit'" },
        { {}, "no command given" },
        { { "list", "-q" }, "unknown option %-q %(see" },
        { { "revoke" }, "revoke: missing NAME" },
        { { "list", 42 }, "argument 2 is not a string" },
      }
      for _, c in ipairs(cases) do
        local r = run(c[1])
        assert_usage(r, c[2])
        assert.is_falsy(r.err:find("traceback", 1, true))
        assert.is_falsy(r.err:find("%.lua:%d+"))
      end
    end)

    it("refuse a secret flag before anything else, also where argparse would have guessed", function()
      for _, argv in ipairs { { "list", "--token=SECRETVALUE1234" }, { "--password", "SECRETVALUE1234", "list" },
                              { "lsit", "--secret=SECRETVALUE1234" } } do
        local r = run(argv)
        assert_usage(r, "visible to every user through ps")
        assert.is_falsy(r.err:find("SECRETVALUE1234", 1, true))
      end
      -- after "--" it is an argument, and is refused as a name without being shown
      local r = run { "revoke", "--", "--token=SECRETVALUE1234" }
      assert_usage(r, "NAME '%-%-token=%.%.%.' is not a token name")
      assert.is_falsy(r.err:find("SECRETVALUE1234", 1, true))
    end)
  end)

  describe("the fast path", function()
    -- A deterministic generator of command lines, good and bad (the same on every Lua).
    local seed = 12345
    local function rand(n)
      seed = (seed * 16807) % 2147483647 -- (Park-Miller: exact in doubles too)
      return seed % n + 1
    end
    local function pick(t) return t[rand(#t)] end
    local names = {}
    for _, c in ipairs(args.COMMANDS) do names[#names + 1] = c.name end
    local option_names = {}
    for _, o in ipairs(args.GLOBAL) do option_names[#option_names + 1] = o.name end
    for _, o in ipairs(args.LOCAL) do option_names[#option_names + 1] = o.name end
    local values = { "v", "-", "-x", "--", "a=b", "", "30", "--json", "list" }

    local function command_line()
      local argv = {}
      if rand(8) > 1 then argv[1] = pick(names) else argv[1] = pick(values) end
      for _ = 1, rand(6) - 1 do
        local k = rand(10)
        local o = pick(option_names)
        if k <= 3 then
          argv[#argv + 1] = "--" .. o
          if not args.option[o].flag or rand(4) == 1 then argv[#argv + 1] = pick(values) end
        elseif k <= 5 then
          argv[#argv + 1] = "--" .. o .. "=" .. pick(values)
        elseif k <= 6 then
          argv[#argv + 1] = pick { "-h", "--help", "-V", "--" }
        else
          argv[#argv + 1] = pick { "name", "x1", "-", pick(values) }
        end
      end
      return argv
    end

    it("reads every command line it takes exactly as lua-argparse does, and takes the plain ones", function()
      local taken, compared = 0, 0
      for _ = 1, 3000 do
        local argv = command_line()
        local pos, opts = args.quick(argv)
        if pos then
          taken = taken + 1
          local ok, ppos, popts = pcall(parser.parse, argv)
          assert(ok, "argparse refused what the fast path took: " .. table.concat(argv, " ") .. ": "
            .. tostring(type(ppos) == "table" and ppos.message or ppos))
          assert.are.same(ppos, pos, table.concat(argv, " "))
          assert.are.same(popts, opts, table.concat(argv, " "))
          compared = compared + 1
        end
      end
      assert.is_true(taken > 300, "the fast path took only " .. taken .. " command lines")
      assert.are.equal(taken, compared)
      -- the command lines of the README and the cron examples are plain
      for _, argv in ipairs {
        { "list" }, { "list", "--json" }, { "create", "deploy", "--expires-in", "24h", "--out", "f" },
        { "rotate", "deploy", "--out", "/etc/x.token", "--token-file", "/etc/x.token", "--keep=1" },
        { "audit", "--within", "14d" }, { "revoke", "a", "b", "c" }, { "list", "--token-file", "-" },
      } do
        assert.is_table((args.quick(argv)), table.concat(argv, " "))
      end
      -- and the unusual ones are left to argparse
      for _, argv in ipairs { { "--json", "list" }, { "list", "-h" }, { "help" }, { "list", "--", "x" },
                              { "list", "--url", "--json" }, { "lsit" }, { "list", "--keep", "1" } } do
        assert.is_nil((args.quick(argv)), table.concat(argv, " "))
      end
    end)

    it("leaves lua-argparse unloaded for a plain command line (it costs a `list` process most of its Lua)", function()
      local lua = shell_quote(util.LUA)
      local probe = [[package.path = "lua/?.lua;" .. package.path
        local a = require "cptokens.cli.args"
        a.parse(%s)
        io.write(package.loaded.argparse and "loaded" or "not loaded")]]
      -- (a script file, not -e: the suite's ASan interpreter runs scripts only)
      local function loaded(argv_lua)
        local script = os.tmpname()
        util.write_file(script, probe:format(argv_lua))
        local out = util.capture(lua .. " " .. shell_quote(script) .. " 2>&1")
        os.remove(script)
        return out
      end
      assert.are.equal("not loaded", loaded([[{ "list", "--json", "--url", "https://h:2083" }]]))
      assert.are.equal("loaded", loaded([[{ "--json", "list" }]]))
    end)
  end)

  describe("--version", function()
    it("prints the version, or with --json a JSON document (issue 15, point 8)", function()
      local r = run { "--version" }
      assert.are.equal(0, r.code)
      assert.are.equal("cptokens " .. cli._VERSION .. "\n", r.out)
      r = run { "--version", "--json" }
      assert.are.equal(0, r.code, r.err)
      assert.are.equal('{"name":"cptokens","version":"' .. cli._VERSION .. '"}\n', r.out)
      assert.are.same({ name = "cptokens", version = cli._VERSION }, require("cjson").decode(r.out))
      assert.are.equal("", r.err)
      -- -v and `version` too (issue 15, point 10)
      for _, argv in ipairs { { "-v" }, { "version" }, { "-V" }, { "list", "-v" } } do
        r = run(argv)
        assert.are.equal(0, r.code, r.err)
        assert.are.equal("cptokens " .. cli._VERSION .. "\n", r.out, table.concat(argv, " "))
      end
      assert.are.equal('{"name":"cptokens","version":"' .. cli._VERSION .. '"}\n', run({ "version", "--json" }).out)
      assert_usage(run { "version", "x" }, "version: too many arguments")
    end)
  end)

  describe("--json errors", function()
    local cjson = require "cjson"
    local function run_env(argv, env)
      local o, e = sink(), sink()
      local code = cli.main(argv, env, { stdout = o, stderr = e, stdin = sink() })
      return { code = code, out = o:text(), err = e:text() }
    end

    it("are also one JSON document on standard output, beside the line on standard error", function()
      local r = run { "list", "--json" }
      assert.are.equal(2, r.code)
      assert.is_truthy(r.err:match("^cptokens: no credentials[^\n]+\n$"), r.err)
      assert.is_truthy(r.out:match('^{"error":{"kind":"usage","message":"no credentials[^\n]*","status":null}}\n$'), r.out)
      -- a command line that could not be parsed
      r = run { "lsit", "--json" }
      assert.are.equal(2, r.code)
      local doc = cjson.decode(r.out)
      assert.are.equal("usage", doc.error.kind)
      assert.is_truthy(doc.error.message:find("did you mean 'list'", 1, true))
      -- a failure: the library's kind, exit 1, nothing secret
      r = run_env({ "list", "--json", "--url", "https://127.0.0.1:1", "--user", "alice" },
                  { CPANEL_TOKEN = "JSONERRORTOKEN000000000000000071" })
      assert.are.equal(1, r.code, r.err)
      doc = cjson.decode(r.out)
      assert.are.equal("network", doc.error.kind)
      assert.are.equal(cjson.null, doc.error.status)
      assert.is_truthy(r.err:match("^cptokens: network: [^\n]+\n$"), r.err)
      assert.is_falsy(r.out:find("JSONERRORTOKEN", 1, true))
      -- without --json: nothing on standard output
      r = run { "list" }
      assert.are.equal(2, r.code)
      assert.are.equal("", r.out)
      -- after "--" it is a name, not the option
      r = run { "revoke", "--", "--json" }
      assert.are.equal(2, r.code)
      assert.are.equal("", r.out)
    end)
  end)

  describe("help", function()
    it("has a text for every command of the table", function()
      local help = require "cptokens.cli.help"
      for _, c in ipairs(args.COMMANDS) do
        assert.is_string(help[c.name], c.name)
        local r = run { "help", c.name }
        assert.are.equal(0, r.code, r.err)
        assert.is_truthy(r.out:find("Usage: cptokens " .. c.name, 1, true), c.name)
        if not c.topics then
          assert.is_truthy(select(2, require("cptokens.cli.help")[""]:find("\n  " .. c.name .. " ", 1, true)), c.name)
        end
      end
    end)
  end)

  describe("completion scripts", function()
    it("are committed as the parser generates them now (make completions)", function()
      local n = 0
      for name, text in pairs(parser.completions()) do
        assert.are.equal(text, read_file("completions/" .. name), "completions/" .. name
          .. " is not what the parser generates: run make completions")
        n = n + 1
      end
      assert.are.equal(3, n)
    end)

    it("bash: loads, and completes commands and each command's options", function()
      local function complete(words)
        local quoted = {}
        for i, w in ipairs(words) do quoted[i] = shell_quote(w) end
        local script = "source completions/cptokens.bash; COMP_WORDS=(" .. table.concat(quoted, " ") .. "); "
          .. "COMP_CWORD=" .. (#words - 1) .. "; _cptokens; echo \"${COMPREPLY[*]}\""
        return (util.capture("bash -c " .. shell_quote(script)):gsub("%s+$", ""))
      end
      local spec = util.capture("bash -c " .. shell_quote("source completions/cptokens.bash; complete -p cptokens"))
      assert.is_truthy(spec:find("-F _cptokens", 1, true), spec)
      assert.is_truthy(spec:match("cptokens%s*$"), spec)
      assert.are.equal("list", complete { "cptokens", "li" })
      assert.are.equal("revoke rename rotate", complete { "cptokens", "r" })
      assert.are.equal("--expires-in --expires-at", complete { "cptokens", "create", "x", "--exp" })
      assert.are.equal("--keep", complete { "cptokens", "rotate", "p", "--ke" })
      assert.are.equal("", complete { "cptokens", "list", "--ke" })
      assert.are.equal("--token-file", complete { "cptokens", "list", "--token-f" })
      assert.is_falsy(complete({ "cptokens", "list", "--" }):find("--token ", 1, true))
    end)

    it("zsh and fish: the scripts name every command and option", function()
      local zsh, fish = read_file("completions/_cptokens"), read_file("completions/cptokens.fish")
      assert.is_truthy(zsh:match("^#compdef cptokens\n"))
      for _, c in ipairs(args.COMMANDS) do
        assert.is_truthy(zsh:find('"' .. c.name .. ":", 1, true), c.name)
        assert.is_truthy(fish:find("-xa '" .. c.name .. "'", 1, true), c.name)
      end
      for name in pairs(args.option) do
        assert.is_truthy(zsh:find("--" .. name, 1, true), name)
        assert.is_truthy(fish:find("-l " .. name, 1, true), name)
      end
      for _, shell in ipairs { "zsh", "fish" } do
        if util.execute("command -v " .. shell .. " >/dev/null") then
          assert.is_true(util.execute(shell .. " -n completions/" .. (shell == "zsh" and "_cptokens" or "cptokens.fish")))
        end
      end
    end)
  end)
end)
