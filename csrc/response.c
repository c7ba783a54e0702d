/*
 * response.c: a reply (HTTP status, content type, body) into a value or an error.
 *
 * Tolerant where real servers are loose (status 1 or "1", expires_at as a
 * number, a quoted number, null, "" or "0"), strict where it matters: a 200
 * that is not JSON, or JSON without cPanel's envelope, is never a success.
 * JSON goes through a private cjson.safe instance, so the caller's cjson
 * settings are never touched. No C heap is held here: scratch space is a
 * Lua userdata, so a memory error raised by Lua leaks nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cptokens.h"

static const char decode_key = 'd'; /* registry: the private cjson.safe decode */

/* ---- reading loosely typed fields ------------------------------------------ */

static int is_null(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  return t == LUA_TNIL || (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL);
}

/* A whole number from digits only (no sign, no spaces); 0 or -1. */
static int parse_digits(const char *s, size_t n, long long *out) {
  long long v = 0;
  size_t i;
  if (n == 0 || n > 18) return -1;
  for (i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

/*
 * Reads an epoch at idx: a whole number, or a string of digits.
 * With never_ok, null, "" and "0" (and 0) read as 0, meaning "never".
 * Returns 0, or -1 when the value is not an epoch.
 */
static int get_epoch(lua_State *L, int idx, int never_ok, long long *out) {
  size_t n;
  const char *s;
  *out = 0;
  switch (lua_type(L, idx)) {
  case LUA_TNUMBER:
    if (!cpt_toepoch(L, idx, out)) return -1;
    if (*out < 0) return -1;
    return (*out == 0 && !never_ok) ? -1 : 0;
  case LUA_TSTRING:
    s = lua_tolstring(L, idx, &n);
    if (n == 0) return never_ok ? 0 : -1;
    if (parse_digits(s, n, out) != 0) return -1;
    return (*out == 0 && !never_ok) ? -1 : 0;
  default:
    return (never_ok && is_null(L, idx)) ? 0 : -1;
  }
}

/* 1, "1" and true are true; everything else false. */
static int get_flag(lua_State *L, int idx) {
  switch (lua_type(L, idx)) {
  case LUA_TBOOLEAN:
    return lua_toboolean(L, idx);
  case LUA_TNUMBER:
    return lua_tonumber(L, idx) == 1;
  case LUA_TSTRING:
    return strcmp(lua_tostring(L, idx), "1") == 0;
  default:
    return 0;
  }
}

/* ---- errors ---------------------------------------------------------------- */

/*
 * Pushes a fresh array of the strings in the `errors` field of the table at
 * idx (an array of strings, or a lone string), then the message they make,
 * joined with "; ". Returns the number of messages.
 */
static int push_messages(lua_State *L, int idx, const char *field) {
  int n = 0, i, len, arr;
  idx = cpt_absindex(L, idx);
  lua_newtable(L);
  arr = lua_gettop(L);
  lua_getfield(L, idx, field);
  if (lua_type(L, -1) == LUA_TSTRING) {
    lua_rawseti(L, arr, ++n);
  } else {
    if (lua_type(L, -1) == LUA_TTABLE) {
      len = (int)cpt_rawlen(L, -1);
      for (i = 1; i <= len && n < 100; i++) {
        lua_rawgeti(L, -1, i);
        if (lua_type(L, -1) == LUA_TSTRING)
          lua_rawseti(L, arr, ++n);
        else
          lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
  lua_pushliteral(L, "");
  for (i = 1; i <= n; i++) {
    if (i > 1) {
      lua_pushliteral(L, "; ");
      lua_concat(L, 2);
    }
    lua_rawgeti(L, arr, i);
    lua_concat(L, 2);
  }
  return n;
}

/* An API failure: nil, {kind = "api", message, errors, status}. */
static int api_error(lua_State *L, int obj, const char *field, long status) {
  int n = push_messages(L, obj, field); /* array, message */
  char msg[512], *c;
  const char *m = lua_tostring(L, -1);
  if (n == 0)
    snprintf(msg, sizeof msg, "the API call failed without a message");
  else
    snprintf(msg, sizeof msg, "%s", m);
  /* The message is one line whatever the server sent (err.errors keeps the text as is). */
  for (c = msg; *c; c++)
    if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = ' ';
  /* Cut short: do not end in the middle of a UTF-8 character. */
  if (m != NULL && strlen(m) >= sizeof msg) {
    size_t k = strlen(msg), i = k;
    while (i > 0 && ((unsigned char)msg[i - 1] & 0xC0) == 0x80) i--;
    if (i > 0 && ((unsigned char)msg[i - 1] & 0x80)) {
      unsigned char lead = (unsigned char)msg[i - 1];
      size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
      if (k - (i - 1) < need) msg[i - 1] = '\0'; /* an incomplete last character */
    }
  }
  lua_pop(L, 1);
  return cpt_error_with(L, CPT_EAPI, status, -1, msg);
}

/* Decodes body with the private cjson; pushes the value, or nil and a message. */
static int json_decode(lua_State *L, const char *body, size_t len) {
  cpt_rawgetp(L, LUA_REGISTRYINDEX, &decode_key);
  lua_pushlstring(L, body, len);
  lua_call(L, 1, 2);
  if (lua_type(L, -2) == LUA_TNIL) { /* nil, message */
    lua_remove(L, -2);
    return 0;
  }
  lua_pop(L, 1);
  return 1;
}

/* ---- the data of each operation --------------------------------------------- */

/*
 * A create the server says succeeded but whose reply cannot be used: the
 * token exists and nobody has it. err.created tells the Lua layer to revoke it.
 */
static int created_error(lua_State *L, long status, const char *what) {
  cpt_error(L, CPT_EPROTOCOL, status, "create: the server made the token but its reply %s", what);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "created");
  return 2;
}

/* The longest token value taken (cPanel's are 32 characters). */
#define TOKEN_MAX 256

static int push_created(lua_State *L, const cpt_request_t *rq, int data, long status) {
  long long create_time;
  size_t n;
  const char *token;
  if (lua_type(L, data) != LUA_TTABLE) return created_error(L, status, "has no token data");
  lua_getfield(L, data, "token");
  /* Type first: lua_tolstring would turn a number into a string in place. */
  if (lua_type(L, -1) != LUA_TSTRING) return created_error(L, status, "has no usable token value");
  token = lua_tolstring(L, -1, &n);
  if (n == 0 || n > TOKEN_MAX || cpt_check_header_value(token, n) != 0)
    return created_error(L, status, "has no usable token value");
  lua_getfield(L, data, "create_time");
  if (get_epoch(L, -1, 0, &create_time) != 0)
    return created_error(L, status, "has no valid create_time");
  lua_pop(L, 1);
  lua_createtable(L, 0, 4);
  lua_pushstring(L, rq->name);
  lua_setfield(L, -2, "name");
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "token");
  cpt_pushepoch(L, create_time);
  lua_setfield(L, -2, "create_time");
  if (rq->expires_at) {
    cpt_pushepoch(L, rq->expires_at);
    lua_setfield(L, -2, "expires_at");
  }
  return 1;
}

typedef struct entry {
  long long create_time;
  long long expires_at;
  int full;
  const char *name;
  size_t name_len;
} entry_t;

static int entry_cmp(const void *a, const void *b) {
  const entry_t *x = a, *y = b;
  size_t n;
  int c;
  if (x->create_time != y->create_time) return x->create_time < y->create_time ? -1 : 1;
  n = x->name_len < y->name_len ? x->name_len : y->name_len;
  c = memcmp(x->name, y->name, n);
  if (c != 0) return c;
  return (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

/*
 * Whether the table at idx is a JSON array: keys 1..n and nothing else. A JSON
 * object such as {"0": {...}} is not (lua-cjson decodes both as tables; an
 * empty object and an empty array cannot be told apart, and both mean none).
 */
static int is_array(lua_State *L, int idx) {
  size_t n = cpt_rawlen(L, idx), count = 0;
  idx = cpt_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    long long k;
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TNUMBER || !cpt_toepoch(L, -1, &k) || k < 1 || (size_t)k > n) {
      lua_pop(L, 1);
      return 0;
    }
    count++;
  }
  return count == n;
}

static int push_list(lua_State *L, int data, long status) {
  int n, i;
  entry_t *e;
  if (is_null(L, data)) {
    lua_newtable(L);
    return 1;
  }
  if (lua_type(L, data) != LUA_TTABLE || !is_array(L, data))
    return cpt_error(L, CPT_EPROTOCOL, status, "list: the reply's data is not an array");
  n = (int)cpt_rawlen(L, data);
  /* Scratch space owned by Lua: nothing to free if a memory error is raised. */
  e = (entry_t *)lua_newuserdata(L, sizeof(entry_t) * (size_t)(n ? n : 1));
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, data, i + 1);
    if (lua_type(L, -1) != LUA_TTABLE)
      return cpt_error(L, CPT_EPROTOCOL, status, "list: entry %d is not an object", i + 1);
    lua_getfield(L, -1, "name");
    /* Type first: lua_tolstring would convert a number in place, and that new
     * string would not be referenced by the decoded data once popped. A real
     * string stays referenced by the decoded data (still on the stack). */
    if (lua_type(L, -1) != LUA_TSTRING)
      return cpt_error(L, CPT_EPROTOCOL, status, "list: entry %d has no name", i + 1);
    e[i].name = lua_tolstring(L, -1, &e[i].name_len);
    if (e[i].name_len == 0)
      return cpt_error(L, CPT_EPROTOCOL, status, "list: entry %d has no name", i + 1);
    lua_getfield(L, -2, "create_time");
    if (get_epoch(L, -1, 0, &e[i].create_time) != 0)
      return cpt_error(L, CPT_EPROTOCOL, status, "list: entry %d has no valid create_time", i + 1);
    lua_getfield(L, -3, "expires_at");
    if (get_epoch(L, -1, 1, &e[i].expires_at) != 0)
      return cpt_error(L, CPT_EPROTOCOL, status, "list: entry %d has an invalid expires_at",
                       i + 1);
    lua_getfield(L, -4, "has_full_access");
    e[i].full = get_flag(L, -1);
    lua_pop(L, 5);
  }
  qsort(e, (size_t)n, sizeof *e, entry_cmp);
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    lua_createtable(L, 0, 4);
    lua_pushlstring(L, e[i].name, e[i].name_len);
    lua_setfield(L, -2, "name");
    cpt_pushepoch(L, e[i].create_time);
    lua_setfield(L, -2, "create_time");
    if (e[i].expires_at) {
      cpt_pushepoch(L, e[i].expires_at);
      lua_setfield(L, -2, "expires_at");
    }
    lua_pushboolean(L, e[i].full);
    lua_setfield(L, -2, "has_full_access");
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* ---- the whole reply ---------------------------------------------------------- */

static const char *skip_space(const char *s, const char *end) {
  while (s < end && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) s++;
  return s;
}

static int looks_html(const char *ctype, const char *p, const char *end) {
  if (ctype != NULL) {
    for (; *ctype; ctype++)
      if (strncasecmp(ctype, "html", 4) == 0) return 1;
  }
  return p < end && *p == '<';
}

/* "the token of alice", "the password of alice", "root's WHM token": the credential refused. */
static void who(const cpt_request_t *rq, char *out, size_t outlen) {
  switch (rq->cred) {
  case CPT_CRED_WHM:
    snprintf(out, outlen, "the WHM token of %s", rq->whm_user[0] ? rq->whm_user : "the WHM user");
    break;
  case CPT_CRED_PASSWORD:
    snprintf(out, outlen, "the password of %s", rq->user[0] ? rq->user : "the account");
    break;
  default:
    snprintf(out, outlen, "the API token of %s", rq->user[0] ? rq->user : "the account");
  }
}

static int contains(const char *body, size_t len, const char *needle) {
  size_t n = strlen(needle), i;
  for (i = 0; n <= len && i <= len - n; i++)
    if (memcmp(body + i, needle, n) == 0) return 1;
  return 0;
}

/*
 * 401 and 403: refused credentials, with what to do about each refusal cPanel
 * is known to give (cpanel-api.md, section 2); a JSON body's errors are kept.
 */
static int auth_error(lua_State *L, const cpt_request_t *rq, long status, const char *body,
                      size_t len) {
  const char *p = skip_space(body, body + len);
  const char *op = cpt_op_name(rq->op);
  char cred[320];
  int n = 0;
  who(rq, cred, sizeof cred);
  if (contains(body, len, "Token authentication allows access to UAPI or API 2 calls only"))
    return cpt_error(L, CPT_EAUTH, status,
                     "%s: the server takes API tokens only on its API paths (HTTP %ld): the url "
                     "must be the bare https://host:2083 (or :2087 for WHM), without a /cpsess... "
                     "or /frontend/ path",
                     op, status);
  if (contains(body, len, "unrecognized computer or network"))
    return cpt_error(L, CPT_EAUTH, status,
                     "%s: cPanel's Security Questions policy refused %s from this network (HTTP "
                     "%ld): use an API token, or log in once from this address in a browser and "
                     "answer the questions",
                     op, cred, status);
  if (p < body + len && *p == '{' && json_decode(L, body, len) && lua_type(L, -1) == LUA_TTABLE) {
    n = push_messages(L, -1, "errors");
    lua_pop(L, 1);
    if (n == 0) lua_pop(L, 1);
  }
  if (contains(body, len, "\"cpanelresult\"") || (rq->cred == CPT_CRED_WHM && status == 403)) {
    char msg[512];
    snprintf(msg, sizeof msg,
             "%s: the server refused %s (HTTP %ld Access denied): wrong, expired or revoked, "
             "not allowed from this address, or without the ACL this call needs",
             op, cred, status);
    if (n > 0) return cpt_error_with(L, CPT_EAUTH, status, -1, msg);
    return cpt_error(L, CPT_EAUTH, status, "%s", msg);
  }
  if (n > 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s: the server refused %s (HTTP %ld)", op, cred, status);
    return cpt_error_with(L, CPT_EAUTH, status, -1, msg);
  }
  return cpt_error(L, CPT_EAUTH, status,
                   "%s: the server refused %s (HTTP %ld): wrong, expired or revoked", op, cred,
                   status);
}

int cpt_response_decode(lua_State *L, const cpt_request_t *rq, long status, const char *ctype,
                        const char *body, size_t len) {
  const char *end = body + len, *p = skip_space(body, end);
  const char *op = cpt_op_name(rq->op);
  int obj, env, data;
  long long flag;

  if (status == 401 || status == 403) return auth_error(L, rq, status, body, len);
  if (status >= 300 && status < 400)
    return cpt_error(L, CPT_EHTTP, status,
                     "%s: the server answered with a redirect (HTTP %ld), which is not followed",
                     op, status);
  if (status == 503)
    return cpt_error(L, CPT_EHTTP, status,
                     "%s: the server answered HTTP 503: cPanel is unavailable, most likely "
                     "upgrading or restarting; try again in a few minutes",
                     op);
  if (status < 200 || status >= 300)
    return cpt_error(L, CPT_EHTTP, status, "%s: the server answered HTTP %ld", op, status);
  if (p == end) return cpt_error(L, CPT_EPROTOCOL, status, "%s: the reply is empty", op);
  if (looks_html(ctype, p, end)) {
    char cred[320];
    who(rq, cred, sizeof cred);
    if (contains(body, len, "tfa_login_form"))
      return cpt_error(L, CPT_EAUTH, status,
                       "%s: the account has two-factor authentication and the server asks for "
                       "the current code: give otp (CLI: CPANEL_OTP or --otp-file)",
                       op);
    return cpt_error(L, CPT_EAUTH, status,
                     "%s: the server answered with an HTML page (a login page?) instead of JSON: "
                     "%s was not accepted, or the url is not cPanel's API (https://host:2083)",
                     op, cred);
  }
  if (*p != '{')
    return cpt_error(L, CPT_EPROTOCOL, status, "%s: the reply is not a JSON object", op);
  if (!json_decode(L, body, len))
    return cpt_error(L, CPT_EPROTOCOL, status, "%s: malformed JSON in the reply: %s", op,
                     lua_tostring(L, -1));
  obj = lua_gettop(L);
  env = obj;
  if (rq->whm) {
    lua_getfield(L, obj, "result");
    if (lua_type(L, -1) != LUA_TTABLE) {
      lua_getfield(L, obj, "error");
      if (lua_type(L, -1) == LUA_TSTRING) return api_error(L, obj, "error", status);
      lua_getfield(L, obj, "data");
      if (lua_type(L, -1) == LUA_TTABLE) {
        lua_getfield(L, -1, "reason");
        if (lua_type(L, -1) == LUA_TSTRING) return api_error(L, -2, "reason", status);
      }
      return cpt_error(L, CPT_EPROTOCOL, status,
                       "%s: the WHM reply has neither a result nor an error", op);
    }
    env = lua_gettop(L);
  }
  lua_getfield(L, env, "status");
  if (lua_type(L, -1) == LUA_TBOOLEAN) {
    flag = lua_toboolean(L, -1);
  } else if (get_epoch(L, -1, 1, &flag) != 0 || flag > 1 || is_null(L, -1) ||
             (lua_type(L, -1) == LUA_TSTRING && cpt_rawlen(L, -1) == 0)) {
    return cpt_error(L, CPT_EPROTOCOL, status,
                     "%s: the reply is JSON but not a cPanel API answer (no valid status)", op);
  }
  lua_pop(L, 1);
  if (flag == 0) return api_error(L, env, "errors", status);

  lua_getfield(L, env, "data");
  data = lua_gettop(L);
  switch (rq->op) {
  case CPT_OP_CREATE:
    return push_created(L, rq, data, status);
  case CPT_OP_LIST:
    return push_list(L, data, status);
  case CPT_OP_REVOKE:
    lua_pushboolean(L, 1);
    lua_pushboolean(L, get_flag(L, data));
    return 2;
  case CPT_OP_RENAME:
  default:
    lua_pushboolean(L, 1);
    return 1;
  }
}

/* ---- core.response(request, status, content_type, body) ---------------------- */

/* Fills the decoding context of rq from a request table made by client:_prepare(). */
static void context_from_table(lua_State *L, int idx, cpt_request_t *rq) {
  const char *s;
  size_t n;
  long long e = 0;
  memset(rq, 0, sizeof *rq);
  lua_getfield(L, idx, "op");
  if (lua_type(L, -1) != LUA_TSTRING || cpt_op_parse(lua_tostring(L, -1), &rq->op) != 0)
    luaL_argerror(L, idx, "request.op must be create, list, rename or revoke");
  lua_getfield(L, idx, "whm");
  rq->whm = lua_toboolean(L, -1);
  lua_getfield(L, idx, "name");
  s = lua_tolstring(L, -1, &n);
  if (s != NULL && n <= CPT_NAME_MAX) memcpy(rq->name, s, n);
  lua_getfield(L, idx, "expires_at");
  if (lua_type(L, -1) == LUA_TNUMBER && cpt_toepoch(L, -1, &e) && e > 0) rq->expires_at = e;
  lua_getfield(L, idx, "user");
  snprintf(rq->user, sizeof rq->user, "%s", lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "");
  lua_getfield(L, idx, "whm_user");
  snprintf(rq->whm_user, sizeof rq->whm_user, "%s",
           lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "");
  lua_getfield(L, idx, "credential");
  s = lua_tostring(L, -1);
  rq->cred = rq->whm ? CPT_CRED_WHM
                     : (s && strcmp(s, "password") == 0) ? CPT_CRED_PASSWORD : CPT_CRED_TOKEN;
  lua_pop(L, 7);
}

/*
 * core.response(request, status, content_type, body) -> what the operation
 * returns; an error has request.headers' credential scrubbed from it.
 */
static int l_response(lua_State *L) {
  cpt_request_t rq;
  cpt_needles_t nd;
  long status;
  size_t len = 0, alen = 0, olen = 0;
  const char *ctype, *body, *auth = NULL, *otp = NULL;
  int n;
  luaL_checktype(L, 1, LUA_TTABLE);
  status = (long)luaL_checkinteger(L, 2);
  ctype = luaL_optstring(L, 3, NULL);
  body = luaL_optlstring(L, 4, "", &len);
  context_from_table(L, 1, &rq);
  lua_settop(L, 4);
  lua_getfield(L, 1, "headers"); /* 5: keeps the strings below alive */
  if (lua_type(L, 5) == LUA_TTABLE) {
    lua_getfield(L, 5, "Authorization");
    if (lua_type(L, -1) == LUA_TSTRING) auth = lua_tolstring(L, -1, &alen);
    lua_getfield(L, 5, "X-CPANEL-OTP");
    if (lua_type(L, -1) == LUA_TSTRING) otp = lua_tolstring(L, -1, &olen);
  }
  n = cpt_response_decode(L, &rq, status, ctype, body, len);
  if (n == 2 && lua_isnil(L, -2)) {
    cpt_needles(L, &nd, auth, alen, otp, olen);
    cpt_scrub(L, -2, &nd);
    lua_pop(L, 1);
  }
  return n;
}

void cpt_response_open(lua_State *L) {
  /* A private instance: the caller's cjson settings are never changed. */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson.safe");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "new");
  lua_call(L, 0, 1);
  lua_getfield(L, -1, "decode_max_depth");
  lua_pushinteger(L, 64);
  lua_call(L, 1, 0);
  lua_getfield(L, -1, "decode_invalid_numbers");
  lua_pushboolean(L, 0);
  lua_call(L, 1, 0);
  lua_getfield(L, -1, "decode");
  cpt_rawsetp(L, LUA_REGISTRYINDEX, &decode_key);
  lua_pop(L, 2);
  lua_pushcfunction(L, l_response);
  lua_setfield(L, -2, "response");
}
