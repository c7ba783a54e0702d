-- WHM API 1 listaccts (client:_listaccts): the worked example of an operation added
-- through the table of operations only (csrc/ops.c; ARCHITECTURE.md, "Adding an
-- operation"). Internal until the WHM client lands. Through libcurl, through
-- _prepare + core.response, and in a batch, against the fake server.
local H = require "spec.helpers"
local server = require "spec.support.server"
local cptokens = require "cptokens"
local core = require "cptokens.core"

local ROOT_WHM = H.ROOT_WHM
local RES_WHM = H.RES_WHM

local function users(accts)
  local out = {}
  for i, a in ipairs(accts) do out[i] = a.user end
  table.sort(out)
  return out
end

describe("listaccts (WHM API 1, from the table of operations)", function()
  local srv

  setup(function() srv = server.start() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  local function whm(who, token)
    return H.client(srv, { url = srv.whm_url, user = who, whm_user = who, whm_token = token })
  end

  it("is one of core.ops, with its method and fields", function()
    local found
    for _, op in ipairs(core.ops) do
      if op.name == "listaccts" then found = op end
    end
    assert.are.same({ name = "listaccts", method = "_listaccts",
                      fields = { "search", "searchtype", "searchmethod" } }, found)
    assert.are.equal("function", type(core.Client._listaccts))
  end)

  it("root sees every cPanel account, a reseller only its own", function()
    local root = whm("root", ROOT_WHM)
    local accts = assert(root:_listaccts())
    assert.are.same({ "alice", "bob", "carol", "dave" }, users(accts))
    for _, a in ipairs(accts) do
      if a.user == "alice" then
        assert.are.same({ user = "alice", domain = "alice.example", owner = "res", suspended = false }, a)
      elseif a.user == "carol" then
        assert.are.same({ user = "carol", domain = "carol.example", owner = "root", suspended = true }, a)
      end
    end
    local log = srv:log()
    assert.are.equal("GET", log[1].method)
    assert.are.equal("/json-api/listaccts", log[1].uri)
    assert.are.equal("1", log[1].args["api.version"])
    assert.are.equal("user,domain,owner,suspended", log[1].args.want)
    assert.are.same({ "alice" }, users(assert(whm("res", RES_WHM):_listaccts())))
    root:close()
  end)

  it("searches: exact, regex, by owner; no match is an empty array", function()
    local root = whm("root", ROOT_WHM)
    assert.are.same({ "alice" }, users(assert(root:_listaccts("alice", "user", "exact"))))
    assert.are.same({ "alice", "bob" }, users(assert(root:_listaccts("^[ab]"))))
    assert.are.same({ "alice" }, users(assert(root:_listaccts("res", "owner", "exact"))))
    assert.are.same({ "bob" }, users(assert(root:_listaccts("bob.example", "domain", "exact"))))
    local none = assert(root:_listaccts("nobody", "user", "exact"))
    assert.are.same({}, none)
    assert.are.equal("nobody", srv:log()[5].args.search)
    root:close()
  end)

  it("metadata.result 0 is kind api with metadata.reason in err.errors", function()
    local _, err = whm("root", ROOT_WHM):_listaccts("(", "user", "regex")
    assert.are.equal("api", err.kind)
    assert.are.equal(1, #err.errors)
    assert.is_truthy(err.errors[1]:find("Invalid regular expression", 1, true))
    assert.are.equal(err.errors[1], err.message)
  end)

  it("refuses before sending: no WHM credential, WHM's words, wrong types", function()
    local c = H.client(srv, { token = "T" })
    local _, err = c:_listaccts()
    assert.are.equal("invalid", err.kind)
    assert.are.equal("listaccts: this is a WHM API 1 call: it needs a WHM credential (whm_token)",
                     err.message)
    local root = whm("root", ROOT_WHM)
    _, err = root:_listaccts("a", "color")
    assert.are.equal("listaccts: searchtype must be user, domain, owner, ip or package", err.message)
    _, err = root:_listaccts("a", "user", "fuzzy")
    assert.are.equal("listaccts: searchmethod must be exact or regex", err.message)
    _, err = root:_listaccts(nil, "user")
    assert.are.equal("listaccts: searchtype and searchmethod go with a search", err.message)
    local ok, msg = pcall(root._listaccts, root, 5)
    assert.is_false(ok)
    assert.is_truthy(tostring(msg):find("search must be a string, got a number", 1, true))
    assert.are.equal(0, srv:count())
  end)

  it("a refused WHM token is kind auth, naming the credential", function()
    local _, err = whm("root", "WRONGWHMTOKEN000000000000000000A"):_listaccts()
    assert.are.equal("auth", err.kind)
    assert.is_truthy(err.message:find("^listaccts: the server refused the WHM token of root"))
    assert.is_nil(err.message:find("WRONGWHMTOKEN", 1, true))
  end)

  describe("through _prepare and core.response", function()
    local w = assert(cptokens.new { url = "https://h.example:2087", user = "root", whm_token = "W" })

    it("builds the GET a transport sends", function()
      local rq = assert(w:_prepare("listaccts", "al ice", "user", "exact"))
      assert.are.equal("GET", rq.method)
      assert.are.equal("https://h.example:2087/json-api/listaccts?api.version=1"
        .. "&want=user,domain,owner,suspended&search=al%20ice&searchtype=user&searchmethod=exact", rq.url)
      assert.are.equal("/json-api/listaccts?api.version=1&want=user,domain,owner,suspended"
        .. "&search=al%20ice&searchtype=user&searchmethod=exact", rq.path)
      assert.are.equal("h.example:2087", rq.authority)
      assert.are.equal("", rq.body)
      assert.are.equal("al ice", rq.search)
      assert.are.equal("whm root:W", rq.headers.Authorization)
      assert.is_nil(rq.headers["Content-Type"])
      assert.are.equal("https://h.example:2087/json-api/listaccts?api.version=1"
        .. "&want=user,domain,owner,suspended", assert(w:_prepare("listaccts")).url)
    end)

    it("decodes WHM API 1 replies", function()
      local rq = assert(w:_prepare("listaccts"))
      local meta = ',"metadata":{"command":"listaccts","reason":"OK","result":1,"version":1}}'
      local v = assert(core.response(rq, 200, "application/json",
        '{"data":{"acct":[{"user":"a","domain":"a.example","owner":"root","suspended":"1"},'
        .. '{"user":"b","owner":"res","suspended":0,"ip":"10.0.0.1"}]}' .. meta))
      assert.are.same({ { user = "a", domain = "a.example", owner = "root", suspended = true },
                        { user = "b", owner = "res", suspended = false } }, v)
      assert.are.same({}, assert(core.response(rq, 200, "application/json", '{"data":{}' .. meta)))
      local _, err = core.response(rq, 200, "application/json",
        '{"data":{},"metadata":{"command":"listaccts","reason":"Access denied","result":0}}')
      assert.are.equal("api", err.kind)
      assert.are.same({ "Access denied" }, err.errors)
      local bad = {
        '{"acct":[],"status":1,"statusmsg":"Ok"}',                -- API 0's shape
        '{"data":{"acct":[]},"metadata":{"result":"yes"}}',        -- no valid result
        '{"data":{"acct":{"user":"a"}}' .. meta,                   -- acct not an array
        '{"data":{"acct":[{"domain":"a.example"}]}' .. meta,       -- an account without user
        '{"data":{"acct":[{"user":7}]}' .. meta,                   -- a user that is no string
        '{"data":{"acct":[{"user":"a","owner":{}}]}' .. meta,      -- an owner that is no string
        '{"data":[1]' .. meta,                                     -- data not an object
      }
      for _, body in ipairs(bad) do
        _, err = core.response(rq, 200, "application/json", body)
        assert.are.equal("protocol", err and err.kind, body)
        assert.is_truthy(err.message:find("^listaccts: "), err.message)
      end
    end)
  end)

  it("runs in a batch beside the Tokens operations", function()
    local root, res = whm("root", ROOT_WHM), whm("res", RES_WHM)
    local alice = H.client(srv, { url = srv.whm_url, whm_user = "res", whm_token = RES_WHM })
    local r = cptokens.batch {
      { client = root, op = "listaccts" },
      { client = res, op = "listaccts", search = "alice", searchmethod = "exact" },
      { client = root, op = "listaccts", search = "x", searchtype = "color" },
      { client = alice, op = "list" },
    }
    assert.is_true(r[1].ok)
    assert.are.same({ "alice", "bob", "carol", "dave" }, users(r[1].value))
    assert.are.same({ "alice" }, users(r[2].value))
    assert.is_false(r[3].ok)
    assert.are.equal("listaccts: searchtype must be user, domain, owner, ip or package", r[3].err.message)
    assert.is_true(r[4].ok)
    assert.are.equal(3, srv:count())
    assert.has_error(function() cptokens.batch { { client = root, op = "listaccts", search = 1 } } end,
      "cptokens.batch: job 1: search must be a string")
    assert.has_error(function() cptokens.batch { { client = root, op = "listaccts", surch = "a" } } end,
      "cptokens.batch: job 1: unknown field 'surch'")
  end)
end)
