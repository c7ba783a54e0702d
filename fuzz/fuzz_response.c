/*
 * fuzz_response.c: libFuzzer target for the reply decoder (csrc/response.c).
 *
 * Input: two header bytes, then the body.
 *   byte 0: bits 0-1 and 6 the operation (an index into the table of
 *           operations, ops.c, modulo its size: create, list, rename, revoke,
 *           listaccts, ...), bit 2 a WHM request, bits 3-4 the content type,
 *           bit 5 an expiry on create
 *   byte 1: the HTTP status (one of STATUSES)
 * The decoder runs inside lua_pcall with the real private cjson.safe instance
 * (luaopen_cptokens_core_impl), exactly as client:list() and friends call it.
 * Beyond "no crash, no leak, no undefined behaviour" it checks the contract:
 * the decoder never raises (but for memory errors), a failure is nil plus an
 * error {kind, message} with a known kind and a one-line message, and a
 * success has the shape of the operation's result.
 *
 * Built and run by `make fuzz` (clang -fsanitize=fuzzer,address,undefined).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "cptokens.h"

static lua_State *L;

static const long STATUSES[] = {200, 200, 200, 200, 201, 204, 301, 302, 401, 403, 404, 500, 503};
static const char *const CTYPES[] = {"application/json", NULL, "text/html; charset=utf-8",
                                     "application/json; charset=UTF-8"};
static const char *const KINDS[] = {CPT_EINVALID, CPT_EAUTH, CPT_EAPI, CPT_EHTTP, CPT_ETLS,
                                    CPT_ETIMEOUT, CPT_ENETWORK, CPT_EPROTOCOL, NULL};

#define CHECK(cond)                                                                   \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      fprintf(stderr, "fuzz_response: contract broken: %s (line %d)\n", #cond, __LINE__); \
      abort();                                                                        \
    }                                                                                 \
  } while (0)

typedef struct {
  const cpt_request_t *rq;
  long status;
  const char *ctype;
  const char *body;
  size_t len;
} call_t;

static int field_type(int idx, const char *k) {
  int t;
  lua_getfield(L, idx, k);
  t = lua_type(L, -1);
  lua_pop(L, 1);
  return t;
}

/* Checks the n values the decoder returned, at the top of the stack. */
static void check_result(int n, const cpt_op_t *op) {
  int v = lua_gettop(L) - n + 1, i, known = 0;
  CHECK(n >= 1 && n <= 2);
  if (lua_isnil(L, v)) {
    size_t len;
    const char *s;
    CHECK(n == 2 && lua_type(L, v + 1) == LUA_TTABLE);
    lua_getfield(L, v + 1, "kind");
    CHECK(lua_type(L, -1) == LUA_TSTRING);
    for (i = 0; KINDS[i]; i++) known |= strcmp(lua_tostring(L, -1), KINDS[i]) == 0;
    CHECK(known);
    lua_pop(L, 1);
    lua_getfield(L, v + 1, "message");
    CHECK(lua_type(L, -1) == LUA_TSTRING);
    s = lua_tolstring(L, -1, &len);
    CHECK(strlen(s) == len && strchr(s, '\n') == NULL && strchr(s, '\r') == NULL);
    lua_pop(L, 1);
    CHECK(field_type(v + 1, "errors") == LUA_TNIL || field_type(v + 1, "errors") == LUA_TTABLE);
    return;
  }
  if (strcmp(op->name, "create") == 0) {
    CHECK(n == 1 && lua_type(L, v) == LUA_TTABLE);
    CHECK(field_type(v, "token") == LUA_TSTRING && field_type(v, "name") == LUA_TSTRING);
    CHECK(field_type(v, "create_time") == LUA_TNUMBER);
  } else if (strcmp(op->name, "list") == 0) {
    CHECK(n == 1 && lua_type(L, v) == LUA_TTABLE);
    for (i = 1; lua_rawgeti(L, v, i) != LUA_TNIL; i++) {
      CHECK(lua_type(L, -1) == LUA_TTABLE);
      CHECK(field_type(-1, "name") == LUA_TSTRING && field_type(-1, "create_time") == LUA_TNUMBER);
      CHECK(field_type(-1, "has_full_access") == LUA_TBOOLEAN);
      CHECK(field_type(-1, "token") == LUA_TNIL); /* a list never holds a secret */
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  } else if (strcmp(op->name, "listaccts") == 0) {
    CHECK(n == 1 && lua_type(L, v) == LUA_TTABLE);
    for (i = 1; lua_rawgeti(L, v, i) != LUA_TNIL; i++) {
      CHECK(lua_type(L, -1) == LUA_TTABLE && field_type(-1, "user") == LUA_TSTRING);
      CHECK(field_type(-1, "suspended") == LUA_TBOOLEAN);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  } else if (strcmp(op->name, "revoke") == 0) {
    CHECK(n == 2 && lua_toboolean(L, v) && lua_type(L, v + 1) == LUA_TBOOLEAN);
  } else {
    CHECK(n >= 1 && lua_toboolean(L, v));
  }
}

static int decode(lua_State *l) {
  const call_t *c = (const call_t *)lua_touserdata(l, 1);
  int base = lua_gettop(l);
  int n = cpt_response_decode(l, c->rq, c->status, c->ctype, c->body, c->len);
  CHECK(lua_gettop(l) - base >= n);
  check_result(n, c->rq->op);
  return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  L = luaL_newstate();
  luaL_openlibs(L);
  /* The system's lua-cjson for Lua 5.4 (Debian: lua-cjson). */
  lua_getglobal(L, "package");
  lua_pushliteral(L, "/usr/lib/x86_64-linux-gnu/lua/5.4/?.so;/usr/local/lib/lua/5.4/?.so");
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  lua_pushcfunction(L, luaopen_cptokens_core_impl);
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
    fprintf(stderr, "fuzz_response: cannot open cptokens.core: %s\n", lua_tostring(L, -1));
    exit(1);
  }
  lua_settop(L, 0);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cpt_request_t rq;
  call_t c;
  int rc;
  if (size < 2) return 0;
  memset(&rq, 0, sizeof rq);
  rq.op = &cpt_ops[((data[0] & 3) | ((data[0] >> 4) & 4)) % cpt_ops_count];
  rq.whm = (data[0] >> 2) & 1;
  rq.post = rq.op->post;
  /* The context a built request would have: names, and create's expiry. */
  memcpy(rq.vals[0].s, "deploy", 7);
  memcpy(rq.vals[1].s, "deploy-old", 11);
  if (strcmp(rq.op->name, "create") == 0 && (data[0] & 0x20)) rq.vals[1].n = 1900000000;
  c.rq = &rq;
  c.ctype = CTYPES[(data[0] >> 3) & 3];
  c.status = STATUSES[data[1] % (sizeof STATUSES / sizeof STATUSES[0])];
  /* The body ends where libFuzzer's buffer does (no NUL after it): ASan
     catches any read past it. */
  c.len = size - 2;
  c.body = c.len ? (const char *)data + 2 : "";
  lua_pushcfunction(L, decode);
  lua_pushlightuserdata(L, &c);
  rc = lua_pcall(L, 1, 0, 0);
  if (rc != LUA_OK && rc != LUA_ERRMEM) {
    fprintf(stderr, "fuzz_response: the decoder raised: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_settop(L, 0);
  /* Everything this input made is garbage now: collect it, so that libFuzzer's
     malloc/free balance (its leak check) sees a clean slate. */
  lua_gc(L, LUA_GCCOLLECT, 0);
  return 0;
}
