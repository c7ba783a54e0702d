-- cptokens.config: profiles and groups from an INI file (lua-inifile).
require "spec.helpers"
local util = require "spec.support.util"
local config = require "cptokens.config"
local store = require "cptokens.store"

describe("cptokens.config", function()
  local dir

  before_each(function() dir = util.tmpdir("config") end)
  after_each(function() util.rmdir(dir) end)

  local function write(name, text, mode)
    local path = dir .. "/" .. name
    util.write_file(path, text)
    os.execute("chmod " .. (mode or "644") .. " " .. util.shell_quote(path))
    return path
  end

  local TOKEN = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"

  it("reads profiles: a WHM one by token file, a cPanel one by environment variable, a group", function()
    util.write_file(dir .. "/web1.token", "")
    assert(store.save(dir .. "/web1.token", { name = "t", token = TOKEN },
      { url = "https://web1.example:2087", user = "root" }))
    write("pw", "s3cret pass\n", "600")
    local path = write("config", table.concat({
      "; the fleet",
      "[profile web1]",
      "url = https://web1.example:2087",
      "whm_user = root",
      "token_file = web1.token",
      "cafile = ca.pem",
      "timeout = 20",
      "connect_timeout = 2.5",
      "cpanel_url = https://web1.example:2083",
      "",
      "[profile web2]",
      "url = https://web2.example:2087",
      "whm_user = res",
      "password_file = " .. dir .. "/pw",
      "",
      "[profile alice]",
      "url = https://web1.example:2083",
      "user = alice",
      "token_env = CPTOKENS_SPEC_UNSET_VARIABLE",
      "",
      "[group web]",
      "profiles = web1, web2",
    }, "\n"))
    local cfg = assert(config.load(path))
    assert.same({ "alice", "web1", "web2" }, cfg:profiles())
    assert.same({ "web" }, cfg:groups())
    local opts, kind = assert(cfg:profile("web1"))
    assert.equal("whm", kind)
    assert.same({ url = "https://web1.example:2087", user = "root", token = TOKEN, cafile = dir .. "/ca.pem",
                  timeout = 20, connect_timeout = 2.5 }, opts)
    opts, kind = assert(cfg:profile("web2"))
    assert.same({ "whm", "res", "s3cret pass" }, { kind, opts.user, opts.password })
    -- an unset variable is a clear error, at the time the profile is asked for
    local ok, err = cfg:profile("alice")
    assert.is_nil(ok)
    assert.equal("invalid", err.kind)
    assert.matches('token_env names "CPTOKENS_SPEC_UNSET_VARIABLE", which is not set', err.message, 1, true)
    local group = assert(cfg:group("web"))
    assert.same({ "web1", "web2" }, { group[1].name, group[2].name })
    local servers = assert(cfg:servers("web"))
    assert.same({ "web1", "https://web1.example:2083", TOKEN }, { servers[1].label, servers[1].cpanel_url,
                                                                 servers[1].token })
  end)

  it("a profile acting for an account through WHM gives cptokens.new's whm_token options", function()
    local path = write("config", "[profile a]\nurl = https://h:2087\nuser = alice\nwhm_user = root\n"
      .. "token = " .. TOKEN .. "\n", "600")
    local opts, kind = assert(assert(config.load(path)):profile("a"))
    assert.equal("cpanel", kind)
    assert.same({ url = "https://h:2087", user = "alice", whm_user = "root", whm_token = TOKEN }, opts)
  end)

  describe("an inline secret", function()
    for _, mode in ipairs { "600", "400" } do
      it("is read from a file of mode " .. mode, function()
        local path = write("config", "[profile a]\nurl = https://h:2083\nuser = alice\ntoken = " .. TOKEN .. "\n", mode)
        assert.equal(TOKEN, assert(assert(config.load(path)):profile("a")).token)
      end)
    end
    for _, mode in ipairs { "640", "604", "644" } do
      it("is refused in a file of mode " .. mode .. ", naming the file", function()
        local path = write("config", "[profile a]\nurl = https://h:2083\nuser = alice\npassword = pw\n", mode)
        local cfg, err = config.load(path)
        assert.is_nil(cfg)
        assert.equal("invalid", err.kind)
        assert.matches(('"%s" holds a secret inline (password in [profile a]) but its mode is 0%s: make it 0600')
          :format(path, mode), err.message, 1, true)
        assert.not_matches("pw\n", err.message, 1, true)
      end)
    end
  end)

  it("refuses a token file whose url differs from the profile's, naming both", function()
    util.write_file(dir .. "/t.token", "")
    assert(store.save(dir .. "/t.token", { name = "t", token = TOKEN }, { url = "https://a.example:2087", user = "root" }))
    local path = write("config", "[profile p]\nurl = https://b.example:2087\nwhm_user = root\ntoken_file = t.token\n")
    local ok, err = assert(config.load(path)):profile("p")
    assert.is_nil(ok)
    assert.matches('its url "https://b.example:2087" and its token file\'s url "https://a.example:2087" differ',
      err.message, 1, true)
  end)

  describe("bad files give errors naming the file and the problem", function()
    local cases = {
      { "missing", nil, "cannot read the configuration" },
      { "junk line", "[profile a]\nurl https://h\n", 'line 2: not a [section], a key = value setting or a ; comment' },
      { "setting before a section", "url = https://h\n[profile a]\n", "line 1: a setting before any" },
      { "indented", "[profile a]\n  url = https://h\n", "line 2: starts with spaces" },
      { "unknown key", "[profile a]\nurl = https://h\nuser = a\ntoken_env = X\ncafiel = x\n",
        'unknown setting "cafiel"' },
      { "unknown section", "[server a]\nurl = https://h\n", "unknown section [server a]" },
      { "no credential", "[profile a]\nurl = https://h\nuser = a\n", "give exactly one credential" },
      { "two credentials", "[profile a]\nurl = https://h\nuser = a\ntoken_env = X\npassword_env = Y\n",
        "give exactly one credential" },
      { "no url", "[profile a]\nuser = a\ntoken_env = X\n", "url is required" },
      { "no user", "[profile a]\nurl = https://h\ntoken_env = X\n", "give user, whm_user, or both" },
      { "timeout not a number", "[profile a]\nurl = https://h\nuser = a\ntoken_env = X\ntimeout = soon\n",
        "timeout must be a number" },
      { "group of an unknown profile", "[group g]\nprofiles = nope\n", "[group g]: no [profile nope]" },
      { "url not https", "[profile a]\nurl = http://h\nuser = a\ntoken_env = X\n", "url must be an https:// URL" },
      { "cpanel_url not a URL", "[profile a]\nurl = https://h:2087\nwhm_user = root\ntoken_env = X\n"
        .. "cpanel_url = not a url\n", "cpanel_url must be an https:// URL" },
      { "insecure not a boolean", "[profile a]\nurl = https://h\nuser = a\ntoken_env = X\ninsecure = maybe\n",
        "insecure must be a boolean" },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        local path = c[2] and write("config", c[2]) or dir .. "/absent"
        local cfg, err = config.load(path)
        assert.is_nil(cfg)
        assert.equal("invalid", err.kind)
        assert.matches(path, err.message, 1, true)
        assert.matches(c[3], err.message, 1, true)
      end)
    end

    it("an unknown profile or group asked for", function()
      local cfg = assert(config.load(write("config", "; nothing yet\n")))
      local ok, err = cfg:profile("x")
      assert.is_nil(ok)
      assert.matches("no [profile x]", err.message, 1, true)
      ok, err = cfg:group("x")
      assert.is_nil(ok)
      assert.matches("no [group x]", err.message, 1, true)
    end)
  end)

  it("insecure = true (spaces around =) and a raw token file; partial servers of a group", function()
    util.write_private(dir .. "/raw.token", TOKEN .. "\n")
    local path = write("config", table.concat({
      "[profile w1]", "url = https://w1.example:2087", "whm_user = root", "token_file = raw.token",
      "insecure = true", "",
      "[profile w2]", "url = https://w2.example:2087", "whm_user = root", "token_env = CPTOKENS_SPEC_UNSET_VARIABLE", "",
      "[group g]", "profiles = w1, w2" }, "\n"))
    local cfg = assert(config.load(path))
    local opts = assert(cfg:profile("w1"))
    assert.same({ true, TOKEN }, { opts.insecure, opts.token })
    assert.same({ dir .. "/raw.token", "token_file" }, { cfg:credential_file("w1") })
    assert.is_nil(cfg:credential_file("w2"))
    local all, err = cfg:servers("g")
    assert.is_nil(all)
    assert.matches("CPTOKENS_SPEC_UNSET_VARIABLE", err.message, 1, true)
    local servers = assert(cfg:servers("g", true))
    assert.same({ "w1", "w2" }, { servers[1].label, servers[2].label })
    assert.equal(TOKEN, servers[1].token)
    assert.matches("CPTOKENS_SPEC_UNSET_VARIABLE", servers[2].err.message, 1, true)
  end)

  it("defaults to $XDG_CONFIG_HOME/cptokens/config, else ~/.config/cptokens/config", function()
    local path = config.default_path()
    local xdg = os.getenv("XDG_CONFIG_HOME")
    if xdg and xdg ~= "" then
      assert.equal(xdg .. "/cptokens/config", path)
    else
      assert.equal(os.getenv("HOME") .. "/.config/cptokens/config", path)
    end
  end)
end)
