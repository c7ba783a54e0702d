/*
 * response.c: a reply (HTTP status, content type, body) into a value or an error.
 *
 * Tolerant where real servers are loose (status 1 or "1", expires_at as a
 * number, a quoted number, null, "" or "0"), strict where it matters: a 200
 * that is not JSON, or JSON without cPanel's envelope, is never a success.
 * JSON goes through a private cjson.safe instance, so the caller's cjson
 * settings are never touched. No C heap is held here: scratch space is a
 * Lua userdata, so a memory error raised by Lua leaks nothing.
 *
 * A reply goes through the HTTP checks, then the envelope of the operation's
 * family (UAPI, possibly under WHM's `result`; or WHM API 1's metadata), then
 * the operation's own decoder from the table (ops.c, decode.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cptokens.h"

static const char decode_key = 'd'; /* registry: the private cjson.safe decode */

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
  const char *op = rq->op->name;
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

/*
 * The failures told by the status and the body's first bytes (an HTTP error,
 * an empty reply, an HTML page): pushes nil, err and returns 2, or returns 0.
 */
static int http_error(lua_State *L, const cpt_request_t *rq, long status, const char *ctype,
                      const char *body, size_t len) {
  const char *end = body + len, *p = skip_space(body, end);
  const char *op = rq->op->name;
  char cred[320];
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
  if (!looks_html(ctype, p, end)) return 0;
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

/* A success flag at idx (1, 0, "1", "0", true, false): 1 or 0, or -1 when it is none. */
static int read_flag(lua_State *L, int idx) {
  long long flag;
  if (lua_type(L, idx) == LUA_TBOOLEAN) return lua_toboolean(L, idx);
  if (cpt_decode_epoch(L, idx, 1, &flag) != 0 || flag > 1 || cpt_decode_is_null(L, idx) ||
      (lua_type(L, idx) == LUA_TSTRING && cpt_rawlen(L, idx) == 0))
    return -1;
  return (int)flag;
}

/*
 * WHM's /json-api/cpanel failure (no `result` object): {error} or {data =
 * {reason}}, at obj. Pushes nil, err; returns 2.
 */
static int whm_wrapper_error(lua_State *L, const cpt_request_t *rq, int obj, long status) {
  lua_getfield(L, obj, "error");
  if (lua_type(L, -1) == LUA_TSTRING) return api_error(L, obj, "error", status);
  lua_getfield(L, obj, "data");
  if (lua_type(L, -1) == LUA_TTABLE) {
    lua_getfield(L, -1, "reason");
    if (lua_type(L, -1) == LUA_TSTRING) return api_error(L, -2, "reason", status);
  }
  return cpt_error(L, CPT_EPROTOCOL, status, "%s: the WHM reply has neither a result nor an error",
                   rq->op->name);
}

/*
 * The end of an envelope whose success flag is on top. Failure: nil, err with
 * the messages of env[msgs]; success: pushes obj.data and returns 0; no valid
 * flag: a protocol error saying that the reply is not `what`.
 */
static int envelope_end(lua_State *L, const cpt_request_t *rq, int env, const char *msgs,
                        int obj, long status, const char *what) {
  int flag = read_flag(L, -1);
  if (flag < 0)
    return cpt_error(L, CPT_EPROTOCOL, status, "%s: the reply is JSON but not a %s",
                     rq->op->name, what);
  lua_pop(L, 1);
  if (flag == 0) return api_error(L, env, msgs, status);
  lua_getfield(L, obj, "data");
  return 0;
}

/*
 * UAPI's {status, data, errors} at obj, or under WHM's `result` for a WHM
 * credential. Pushes `data` and returns 0, or pushes nil, err and returns 2.
 */
static int uapi_envelope(lua_State *L, const cpt_request_t *rq, int obj, long status) {
  int env = obj;
  if (rq->whm) {
    lua_getfield(L, obj, "result");
    if (lua_type(L, -1) != LUA_TTABLE) return whm_wrapper_error(L, rq, obj, status);
    env = lua_gettop(L);
  }
  lua_getfield(L, env, "status");
  return envelope_end(L, rq, env, "errors", env, status, "cPanel API answer (no valid status)");
}

/*
 * WHM API 1's {data, metadata = {result, reason}} at obj. Pushes `data` and
 * returns 0, or pushes nil, err (metadata.reason in err.errors) and returns 2.
 */
static int whm1_envelope(lua_State *L, const cpt_request_t *rq, int obj, long status) {
  int meta;
  lua_getfield(L, obj, "metadata");
  meta = lua_gettop(L);
  if (lua_type(L, meta) != LUA_TTABLE)
    return cpt_error(L, CPT_EPROTOCOL, status,
                     "%s: the reply is JSON but not a WHM API 1 answer (no metadata)",
                     rq->op->name);
  lua_getfield(L, meta, "result");
  return envelope_end(L, rq, meta, "reason", obj, status,
                      "WHM API 1 answer (no valid metadata.result)");
}

int cpt_response_decode(lua_State *L, const cpt_request_t *rq, long status, const char *ctype,
                        const char *body, size_t len) {
  const char *p = skip_space(body, body + len);
  const char *op = rq->op->name;
  int rc, obj;
  if ((rc = http_error(L, rq, status, ctype, body, len)) != 0) return rc;
  if (*p != '{')
    return cpt_error(L, CPT_EPROTOCOL, status, "%s: the reply is not a JSON object", op);
  if (!json_decode(L, body, len))
    return cpt_error(L, CPT_EPROTOCOL, status, "%s: malformed JSON in the reply: %s", op,
                     lua_tostring(L, -1));
  obj = lua_gettop(L);
  rc = rq->op->family == CPT_FAM_WHM1 ? whm1_envelope(L, rq, obj, status)
                                      : uapi_envelope(L, rq, obj, status);
  if (rc != 0) return rc;
  return rq->op->decode(L, rq, lua_gettop(L), status);
}

/* ---- core.response(request, status, content_type, body) ---------------------- */

/* Fills the decoding context of rq from a request table made by client:_prepare(). */
static void context_from_table(lua_State *L, int idx, cpt_request_t *rq) {
  const cpt_param_t *pm;
  const char *s;
  size_t n;
  int i;
  memset(rq, 0, sizeof *rq);
  lua_getfield(L, idx, "op");
  rq->op = cpt_ops_find(lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL);
  if (rq->op == NULL) luaL_argerror(L, idx, "request.op must be an operation of core.ops");
  lua_getfield(L, idx, "whm");
  rq->whm = lua_toboolean(L, -1);
  lua_getfield(L, idx, "user");
  snprintf(rq->user, sizeof rq->user, "%s", lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "");
  lua_getfield(L, idx, "whm_user");
  snprintf(rq->whm_user, sizeof rq->whm_user, "%s",
           lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "");
  lua_getfield(L, idx, "credential");
  s = lua_tostring(L, -1);
  rq->cred = rq->whm ? CPT_CRED_WHM
                     : (s && strcmp(s, "password") == 0) ? CPT_CRED_PASSWORD : CPT_CRED_TOKEN;
  lua_pop(L, 5);
  for (i = 0, pm = rq->op->params; pm->field; i++, pm++) {
    long long e = 0;
    lua_getfield(L, idx, pm->field);
    if (pm->type == CPT_PT_NAME && (s = lua_tolstring(L, -1, &n)) != NULL && n <= CPT_NAME_MAX)
      memcpy(rq->vals[i].s, s, n);
    if ((pm->type == CPT_PT_EPOCH || pm->type == CPT_PT_EPOCH0) && lua_type(L, -1) == LUA_TNUMBER && cpt_toepoch(L, -1, &e) &&
        e > 0)
      rq->vals[i].n = e;
    lua_pop(L, 1);
  }
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
