/*
 * decode.c: the decoders of the table of operations (ops.c), each turning a
 * successful reply's `data` into what the operation returns, and the readers
 * of loosely typed fields they share with the envelope (response.c).
 *
 * Tolerant where real servers are loose (expires_at as a number, a quoted
 * number, null, "" or "0"; flags as 1, "1" or true), strict where it matters:
 * data of the wrong shape is a "protocol" error, never a success. No C heap
 * is held: scratch space is a Lua userdata, so a memory error leaks nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cptokens.h"

/* ---- reading loosely typed fields ------------------------------------------ */

int cpt_decode_is_null(lua_State *L, int idx) {
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
int cpt_decode_epoch(lua_State *L, int idx, int never_ok, long long *out) {
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
    return (never_ok && cpt_decode_is_null(L, idx)) ? 0 : -1;
  }
}

/* 1, "1" and true are true; everything else false. */
int cpt_decode_flag(lua_State *L, int idx) {
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


/*
 * A create the server says succeeded but whose reply cannot be used: the
 * token exists and nobody has it. err.created tells the Lua layer to revoke it.
 */
static int created_error(lua_State *L, const cpt_request_t *rq, long status, const char *what) {
  cpt_error(L, CPT_EPROTOCOL, status, "%s: the server made the token but its reply %s",
            rq->op->name, what);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "created");
  return 2;
}

/* The longest token value taken (cPanel's are 32 characters). */
#define TOKEN_MAX 256

static int is_array(lua_State *L, int idx);

/*
 * Copies the array of strings in field k of the table at src into field k of
 * the table at dst. Absent, null or empty: nothing copied (with always, an
 * empty array). -1 when it is something else.
 */
static int copy_strings(lua_State *L, int src, int dst, const char *k, int always) {
  int n, i;
  lua_getfield(L, src, k);
  if (cpt_decode_is_null(L, -1) || (lua_type(L, -1) == LUA_TTABLE && cpt_rawlen(L, -1) == 0 &&
                                    is_array(L, -1))) {
    lua_pop(L, 1);
    if (always) {
      lua_newtable(L);
      lua_setfield(L, dst, k);
    }
    return 0;
  }
  if (lua_type(L, -1) != LUA_TTABLE || !is_array(L, -1)) {
    lua_pop(L, 1);
    return -1;
  }
  n = (int)cpt_rawlen(L, -1);
  lua_createtable(L, n, 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -2, i);
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_pop(L, 3);
      return -1;
    }
    lua_rawseti(L, -2, i);
  }
  lua_setfield(L, dst, k);
  lua_pop(L, 1);
  return 0;
}

/* create: {name, token, create_time, expires_at?}; name and expiry are the ones sent. */
int cpt_decode_created(lua_State *L, const cpt_request_t *rq, int data, long status) {
  long long create_time;
  size_t n;
  const char *token;
  if (lua_type(L, data) != LUA_TTABLE) return created_error(L, rq, status, "has no token data");
  lua_getfield(L, data, "token");
  /* Type first: lua_tolstring would turn a number into a string in place. */
  if (lua_type(L, -1) != LUA_TSTRING) return created_error(L, rq, status, "has no usable token value");
  token = lua_tolstring(L, -1, &n);
  if (n == 0 || n > TOKEN_MAX || cpt_check_header_value(token, n) != 0)
    return created_error(L, rq, status, "has no usable token value");
  lua_getfield(L, data, "create_time");
  if (cpt_decode_epoch(L, -1, 0, &create_time) != 0)
    return created_error(L, rq, status, "has no valid create_time");
  lua_pop(L, 1);
  lua_createtable(L, 0, 4);
  lua_pushstring(L, rq->vals[0].s);
  lua_setfield(L, -2, "name");
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "token");
  cpt_pushepoch(L, create_time);
  lua_setfield(L, -2, "create_time");
  if (rq->vals[1].n) {
    cpt_pushepoch(L, rq->vals[1].n);
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
  int idx;  /* its index in the reply's array */
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

/*
 * The read-only extras of the list entry at data[idx] into the table on top:
 * present when the server lists any (today never: no UAPI call sets an
 * allow-list, and limited tokens are disabled). features is informative only:
 * one of another shape is left out. 0, or -1 for bad whitelist_ips.
 */
static int list_extras(lua_State *L, int data, int idx) {
  int rc;
  lua_rawgeti(L, data, idx);
  rc = copy_strings(L, lua_gettop(L), lua_gettop(L) - 1, "whitelist_ips", 0);
  if (rc == 0) copy_strings(L, lua_gettop(L), lua_gettop(L) - 1, "features", 0);
  lua_pop(L, 1);
  return rc;
}

/* list: the tokens, sorted by create_time then name; never a secret. */
int cpt_decode_list(lua_State *L, const cpt_request_t *rq, int data, long status) {
  int n, i;
  entry_t *e;
  (void)rq;
  if (cpt_decode_is_null(L, data)) {
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
    if (cpt_decode_epoch(L, -1, 0, &e[i].create_time) != 0)
      return cpt_error(L, CPT_EPROTOCOL, status, "list: entry %d has no valid create_time", i + 1);
    lua_getfield(L, -3, "expires_at");
    if (cpt_decode_epoch(L, -1, 1, &e[i].expires_at) != 0)
      return cpt_error(L, CPT_EPROTOCOL, status, "list: entry %d has an invalid expires_at",
                       i + 1);
    lua_getfield(L, -4, "has_full_access");
    e[i].full = cpt_decode_flag(L, -1);
    e[i].idx = i + 1;
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
    if (list_extras(L, data, e[i].idx) != 0)
      return cpt_error(L, CPT_EPROTOCOL, status,
                       "list: entry %d has whitelist_ips that are not an array of strings",
                       e[i].idx);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}


/* rename, whm_revoke: true (WHM answers OK for a revoke whether or not a name matched). */
int cpt_decode_true(lua_State *L, const cpt_request_t *rq, int data, long status) {
  (void)rq, (void)data, (void)status;
  lua_pushboolean(L, 1);
  return 1;
}

/* revoke: true, and whether a token was removed (data 1 or 0). */
int cpt_decode_revoked(lua_State *L, const cpt_request_t *rq, int data, long status) {
  (void)rq, (void)status;
  lua_pushboolean(L, 1);
  lua_pushboolean(L, cpt_decode_flag(L, data));
  return 2;
}

/*
 * Copies the string field k of the table at src into the table at dst.
 * Returns -1 when it is not a string: a required one must be non-empty, an
 * optional one may be absent or null (then nothing is copied).
 */
static int copy_string(lua_State *L, int src, int dst, const char *k, int required) {
  int ok;
  lua_getfield(L, src, k);
  if (lua_type(L, -1) == LUA_TSTRING && (!required || cpt_rawlen(L, -1) > 0)) {
    lua_setfield(L, dst, k);
    return 0;
  }
  ok = !required && cpt_decode_is_null(L, -1);
  lua_pop(L, 1);
  return ok ? 0 : -1;
}

/* One account of listaccts' data.acct (the table at src) as {user, domain?, owner?,
   suspended}, pushed; -1 (nothing pushed) when it is not one. */
static int push_account(lua_State *L, int src) {
  int dst;
  lua_createtable(L, 0, 4);
  dst = lua_gettop(L);
  if (copy_string(L, src, dst, "user", 1) || copy_string(L, src, dst, "domain", 0) ||
      copy_string(L, src, dst, "owner", 0)) {
    lua_pop(L, 1);
    return -1;
  }
  lua_getfield(L, src, "suspended");
  lua_pushboolean(L, cpt_decode_flag(L, -1));
  lua_setfield(L, dst, "suspended");
  lua_pop(L, 1);
  return 0;
}

/*
 * listaccts: an array of {user, domain, owner, suspended = boolean}, in the
 * server's order. No `acct` key (zero accounts) or a null one is an empty array.
 */
int cpt_decode_accounts(lua_State *L, const cpt_request_t *rq, int data, long status) {
  int n, i, acct;
  (void)rq;
  if (lua_type(L, data) != LUA_TTABLE || cpt_rawlen(L, data) > 0)
    return cpt_error(L, CPT_EPROTOCOL, status, "listaccts: the reply's data is not an object");
  lua_getfield(L, data, "acct");
  acct = lua_gettop(L);
  if (cpt_decode_is_null(L, acct)) {
    lua_newtable(L);
    return 1;
  }
  if (lua_type(L, acct) != LUA_TTABLE || !is_array(L, acct))
    return cpt_error(L, CPT_EPROTOCOL, status, "listaccts: the reply's data.acct is not an array");
  n = (int)cpt_rawlen(L, acct);
  lua_createtable(L, n, 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, acct, i);
    if (lua_type(L, -1) != LUA_TTABLE || push_account(L, lua_gettop(L)) != 0)
      return cpt_error(L, CPT_EPROTOCOL, status,
                       "listaccts: account %d has no user name, or a field of the wrong type", i);
    lua_rawseti(L, -3, i);
    lua_pop(L, 1);
  }
  return 1;
}

/* ---- WHM API 1 tokens ---------------------------------------------------------- */

static int str_cmp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts the array of strings at idx in place (byte order). */
static void sort_strings(lua_State *L, int idx) {
  int n = (int)cpt_rawlen(L, idx), i;
  const char **v;
  idx = cpt_absindex(L, idx);
  v = (const char **)lua_newuserdata(L, sizeof *v * (size_t)(n ? n : 1));
  lua_newtable(L); /* keeps the strings referenced while idx is rewritten */
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    v[i - 1] = lua_tostring(L, -1);
    lua_rawseti(L, -2, i);
  }
  qsort(v, (size_t)n, sizeof *v, str_cmp);
  for (i = 0; i < n; i++) {
    lua_pushstring(L, v[i]);
    lua_rawseti(L, idx, i + 1);
  }
  lua_pop(L, 2);
}

/*
 * The granted ACLs of a token record (the table at src): an array of names
 * (create, update, details) or WHM's list object of 0/1 flags. Sets dst.acls
 * (sorted) and dst.full_access (no ACL list, or "all"). 0 or -1.
 */
static int read_acls(lua_State *L, int src, int dst) {
  int acls, out, n = 0, full = 0, i;
  lua_getfield(L, src, "acls");
  acls = lua_gettop(L);
  lua_newtable(L);
  out = acls + 1;
  if (lua_type(L, acls) == LUA_TTABLE && is_array(L, acls)) {
    int len = (int)cpt_rawlen(L, acls);
    for (i = 1; i <= len; i++) {
      lua_rawgeti(L, acls, i);
      if (lua_type(L, -1) != LUA_TSTRING || cpt_rawlen(L, -1) == 0) goto bad;
      lua_rawseti(L, out, ++n);
    }
    full = len == 0; /* [] or {}: no ACL list */
  } else if (lua_type(L, acls) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, acls) != 0) {
      if (lua_type(L, -2) != LUA_TSTRING) goto bad;
      if (cpt_decode_flag(L, -1)) {
        lua_pushvalue(L, -2);
        lua_rawseti(L, out, ++n);
      }
      lua_pop(L, 1);
    }
  } else if (cpt_decode_is_null(L, acls)) {
    full = 1;
  } else {
    goto bad;
  }
  sort_strings(L, out);
  for (i = 1; i <= n && !full; i++) {
    lua_rawgeti(L, out, i);
    full = strcmp(lua_tostring(L, -1), "all") == 0;
    lua_pop(L, 1);
  }
  lua_setfield(L, dst, "acls");
  lua_pushboolean(L, full);
  lua_setfield(L, dst, "full_access");
  lua_pop(L, 1);
  return 0;
bad:
  lua_settop(L, acls - 1);
  return -1;
}

/*
 * A WHM token record (the table at src) as {name, create_time, expires_at?,
 * acls, full_access, whitelist_ips?[, token]}, pushed; name falls back to
 * the one given (may be NULL). NULL, or the reason it is not one (nothing pushed).
 */
static const char *push_whm_token(lua_State *L, int src, const char *name, int with_token) {
  long long create_time, expires_at;
  int dst, top = lua_gettop(L);
  lua_createtable(L, 0, 7);
  dst = lua_gettop(L);
  if (copy_string(L, src, dst, "name", 1) != 0) {
    if (name == NULL || name[0] == '\0') goto bad_name;
    lua_pushstring(L, name);
    lua_setfield(L, dst, "name");
  }
  lua_getfield(L, src, "create_time");
  if (cpt_decode_epoch(L, -1, 0, &create_time) != 0) goto bad_time;
  lua_getfield(L, src, "expires_at");
  if (cpt_decode_epoch(L, -1, 1, &expires_at) != 0) goto bad_expiry;
  lua_pop(L, 2);
  cpt_pushepoch(L, create_time);
  lua_setfield(L, dst, "create_time");
  if (expires_at) {
    cpt_pushepoch(L, expires_at);
    lua_setfield(L, dst, "expires_at");
  }
  if (read_acls(L, src, dst) != 0) goto bad_acls;
  if (copy_strings(L, src, dst, "whitelist_ips", 0) != 0) goto bad_ips;
  if (with_token) {
    size_t n;
    const char *tok;
    lua_getfield(L, src, "token");
    if (lua_type(L, -1) != LUA_TSTRING) goto bad_token;
    tok = lua_tolstring(L, -1, &n);
    if (n == 0 || n > TOKEN_MAX || cpt_check_header_value(tok, n) != 0) goto bad_token;
    lua_setfield(L, dst, "token");
  }
  return NULL;
bad_name:
  lua_settop(L, top);
  return "has no name";
bad_time:
  lua_settop(L, top);
  return "has no valid create_time";
bad_expiry:
  lua_settop(L, top);
  return "has an invalid expires_at";
bad_acls:
  lua_settop(L, top);
  return "has acls that are neither an array of names nor an object of flags";
bad_ips:
  lua_settop(L, top);
  return "has whitelist_ips that are not an array of strings";
bad_token:
  lua_settop(L, top);
  return "has no usable token value";
}

/* whm_create: the record with the secret; an unusable one is err.created (revoke it). */
int cpt_decode_whm_created(lua_State *L, const cpt_request_t *rq, int data, long status) {
  const char *why;
  if (lua_type(L, data) != LUA_TTABLE) return created_error(L, rq, status, "has no token data");
  why = push_whm_token(L, data, rq->vals[0].s, 1);
  if (why != NULL) return created_error(L, rq, status, why);
  return 1;
}

/* whm_update: the updated record (no secret). */
int cpt_decode_whm_token(lua_State *L, const cpt_request_t *rq, int data, long status) {
  const char *why = lua_type(L, data) == LUA_TTABLE ? push_whm_token(L, data, rq->vals[0].s, 0)
                                                    : "is not an object";
  if (why != NULL)
    return cpt_error(L, CPT_EPROTOCOL, status, "%s: the token in the reply %s", rq->op->name, why);
  return 1;
}

/* whm_details: the record of the token with that value, or false (no data: unknown, expired). */
int cpt_decode_whm_details(lua_State *L, const cpt_request_t *rq, int data, long status) {
  const char *why;
  lua_pushnil(L);
  if (cpt_decode_is_null(L, data) ||
      (lua_type(L, data) == LUA_TTABLE && lua_next(L, data) == 0)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pop(L, 2);
  why = lua_type(L, data) == LUA_TTABLE ? push_whm_token(L, data, NULL, 0) : "is not an object";
  if (why != NULL)
    return cpt_error(L, CPT_EPROTOCOL, status, "%s: the token in the reply %s", rq->op->name, why);
  return 1;
}

/*
 * whm_list: data.tokens, an object keyed by name, into an array of records
 * sorted by create_time then name; never a secret.
 */
int cpt_decode_whm_list(lua_State *L, const cpt_request_t *rq, int data, long status) {
  int tokens, recs, n = 0, i;
  entry_t *e;
  if (lua_type(L, data) != LUA_TTABLE)
    return cpt_error(L, CPT_EPROTOCOL, status, "%s: the reply's data is not an object",
                     rq->op->name);
  lua_getfield(L, data, "tokens");
  tokens = lua_gettop(L);
  if (lua_type(L, tokens) != LUA_TTABLE && !cpt_decode_is_null(L, tokens))
    return cpt_error(L, CPT_EPROTOCOL, status, "%s: the reply's data.tokens is not an object",
                     rq->op->name);
  lua_newtable(L);
  recs = tokens + 1;
  if (lua_type(L, tokens) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, tokens) != 0) {
      const char *why = "is not an object";
      if (lua_type(L, -1) == LUA_TTABLE)
        why = push_whm_token(L, lua_gettop(L),
                             lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL, 0);
      if (why != NULL)
        return cpt_error(L, CPT_EPROTOCOL, status, "%s: a token in the reply %s", rq->op->name,
                         why);
      lua_rawseti(L, recs, ++n);
      lua_pop(L, 1);
    }
  }
  e = (entry_t *)lua_newuserdata(L, sizeof(entry_t) * (size_t)(n ? n : 1));
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, recs, i + 1);
    lua_getfield(L, -1, "create_time");
    cpt_decode_epoch(L, -1, 0, &e[i].create_time);
    lua_getfield(L, -2, "name");
    e[i].name = lua_tolstring(L, -1, &e[i].name_len); /* referenced by the record */
    e[i].idx = i + 1;
    lua_pop(L, 3);
  }
  qsort(e, (size_t)n, sizeof *e, entry_cmp);
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, recs, e[i].idx);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}
