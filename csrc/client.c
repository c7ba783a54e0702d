/*
 * client.c: the cptokens.Client userdata: options, credentials, operations.
 *
 * Credentials live only in C memory owned by the client and are wiped by
 * close(), __gc and __close (one idempotent destructor). Misuse raises;
 * every runtime failure is nil, err.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cptokens.h"

#define CLIENT_MT "cptokens.Client"

static void client_destroy(cpt_client_t *c) {
  cpt_curl_free(c->curl);
  c->curl = NULL;
  cpt_target_free(&c->target);
  cpt_request_free(&c->rq);
  free(c->cafile);
  free(c->capath);
  c->cafile = c->capath = NULL;
  c->open = 0;
}

cpt_client_t *cpt_client_check(lua_State *L, int idx) {
  cpt_client_t *c = (cpt_client_t *)luaL_checkudata(L, idx, CLIENT_MT);
  if (!c->open) cpt_misuse(L, "cptokens: the client is closed");
  return c;
}

#define check_client(L) cpt_client_check((L), 1)

/* The header line's value ("Authorization: v" -> v), or NULL when empty. */
static const char *header_value(const cpt_buf_t *b, size_t *len) {
  const char *colon = b->len ? memchr(b->p, ':', b->len) : NULL;
  if (colon == NULL) return NULL;
  colon += 2; /* ": " */
  *len = b->len - (size_t)(colon - b->p);
  return colon;
}

/*
 * Pushes what an operation returns for a finished transfer; an error has the
 * request's credential scrubbed from it (rq->auth and rq->otp are still set).
 */
int cpt_client_result(lua_State *L, const cpt_request_t *rq, const cpt_xfer_t *x) {
  cpt_needles_t nd;
  size_t alen = 0, olen = 0;
  const char *auth, *otp;
  int n;
  if (x->kind != NULL)
    n = cpt_error(L, x->kind, 0, "%s: %s", rq->op->name, x->msg);
  else
    n = cpt_response_decode(L, rq, x->status, x->ctype[0] ? x->ctype : NULL,
                            x->body.p ? x->body.p : "", x->body.len);
  if (n == 2 && lua_isnil(L, -2)) {
    if (x->not_sent) {
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "not_sent");
    }
    auth = header_value(&rq->auth, &alen);
    otp = header_value(&rq->otp, &olen);
    cpt_needles(L, &nd, auth, alen, otp, olen);
    cpt_scrub(L, -2, &nd);
    lua_pop(L, 1);
  }
  return n;
}

/* ---- options ----------------------------------------------------------------- */

static const char *const option_names[] = {
    "url",    "user",   "token",    "password", "otp",     "whm_token",       "whm_user",
    "cafile", "capath", "insecure", "timeout",  "connect_timeout", "max_response", NULL};

/* Raises on a key that is not an option: a typo must not silently change anything. */
static void check_keys(lua_State *L, int idx) {
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    int i, known = 0;
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -1);
      for (i = 0; option_names[i] && !known; i++) known = strcmp(k, option_names[i]) == 0;
      if (!known) cpt_misuse(L, "cptokens.new: unknown option '%s'", k);
    } else {
      cpt_misuse(L, "cptokens.new: option names must be strings, got a %s",
                 luaL_typename(L, -1));
    }
  }
}

/* Option `k` of the table at idx: 0 when absent (nothing pushed); raises unless
 * it is of type `type` (`want` names it in the message); else 1, the value pushed. */
static int opt_field(lua_State *L, int idx, const char *k, int type, const char *want) {
  lua_getfield(L, idx, k);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  if (lua_type(L, -1) != type)
    cpt_misuse(L, "cptokens.new: option '%s' must be %s, got a %s", k, want,
               luaL_typename(L, -1));
  return 1;
}

/* Option `k` as a string (NULL when absent); raises when it is another type. */
static const char *opt_string(lua_State *L, int idx, const char *k, size_t *len) {
  const char *s;
  if (!opt_field(L, idx, k, LUA_TSTRING, "a string")) return NULL;
  s = lua_tolstring(L, -1, len);
  lua_pop(L, 1); /* the options table keeps the string alive */
  return s;
}

/* Option `k` as seconds, converted to milliseconds; raises on a bad value. */
static long opt_seconds(lua_State *L, int idx, const char *k, long dflt_ms) {
  lua_Number n;
  if (!opt_field(L, idx, k, LUA_TNUMBER, "a number of seconds")) return dflt_ms;
  n = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (!(n > 0 && n <= 86400))
    cpt_misuse(L, "cptokens.new: option '%s' must be more than 0 and at most 86400 seconds", k);
  return n * 1000 < 1 ? 1 : (long)(n * 1000);
}

/* A user name goes into headers and URLs: printable, no spaces, no colon. */
static int bad_user(const char *s, size_t n) {
  size_t i;
  if (n == 0 || n > 255 || cpt_check_header_value(s, n) != 0) return 1;
  for (i = 0; i < n; i++)
    if (s[i] == ':' || s[i] == ' ') return 1;
  return 0;
}

typedef struct {
  const char *url, *user, *secret, *otp, *whm_user, *cafile, *capath;
  size_t url_len, user_len, secret_len, otp_len, whm_user_len, cafile_len, capath_len;
  const char *secret_name;
  cpt_cred_t cred;
  cpt_opts_t opts;
} new_args_t;

/* Reads and type-checks the options table at idx; raises on misuse. */
static void read_options(lua_State *L, int idx, new_args_t *a) {
  const char *token, *password, *whm_token;
  size_t tl = 0, pl = 0, wl = 0;
  int n = 0;
  lua_Number max;

  check_keys(L, idx);
  a->url = opt_string(L, idx, "url", &a->url_len);
  a->user = opt_string(L, idx, "user", &a->user_len);
  token = opt_string(L, idx, "token", &tl);
  password = opt_string(L, idx, "password", &pl);
  whm_token = opt_string(L, idx, "whm_token", &wl);
  a->otp = opt_string(L, idx, "otp", &a->otp_len);
  a->whm_user = opt_string(L, idx, "whm_user", &a->whm_user_len);
  a->cafile = opt_string(L, idx, "cafile", &a->cafile_len);
  a->capath = opt_string(L, idx, "capath", &a->capath_len);
  if (a->url == NULL) cpt_misuse(L, "cptokens.new: option 'url' is required");
  if (a->user == NULL) cpt_misuse(L, "cptokens.new: option 'user' is required");
  if (token) n++, a->cred = CPT_CRED_TOKEN, a->secret = token, a->secret_len = tl,
             a->secret_name = "token";
  if (password) n++, a->cred = CPT_CRED_PASSWORD, a->secret = password, a->secret_len = pl,
                a->secret_name = "password";
  if (whm_token) n++, a->cred = CPT_CRED_WHM, a->secret = whm_token, a->secret_len = wl,
                 a->secret_name = "whm_token";
  if (n != 1)
    cpt_misuse(L, "cptokens.new: give exactly one credential: token, password or whm_token "
                  "(got %d)", n);
  if (a->otp && a->cred != CPT_CRED_PASSWORD)
    cpt_misuse(L, "cptokens.new: option 'otp' goes with 'password' only");
  if (a->whm_user && a->cred != CPT_CRED_WHM)
    cpt_misuse(L, "cptokens.new: option 'whm_user' goes with 'whm_token' only");
  if (a->whm_user == NULL) a->whm_user = "root", a->whm_user_len = 4;

  a->opts.insecure = 0;
  if (opt_field(L, idx, "insecure", LUA_TBOOLEAN, "a boolean")) {
    a->opts.insecure = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  a->opts.timeout_ms = opt_seconds(L, idx, "timeout", 30000);
  a->opts.connect_timeout_ms = opt_seconds(L, idx, "connect_timeout", 10000);
  a->opts.max_response = 16u << 20;
  if (opt_field(L, idx, "max_response", LUA_TNUMBER, "a number of bytes")) {
    max = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!(max >= 1 && max <= 1073741824.0))
      cpt_misuse(L, "cptokens.new: option 'max_response' must be from 1 to 1073741824 bytes");
    a->opts.max_response = (size_t)max;
  }
}

/* Checks option values that are data, not misuse: nil, err "invalid" when wrong. */
static int check_values(lua_State *L, const new_args_t *a) {
  FILE *f;
  if (bad_user(a->user, a->user_len))
    return cpt_error(L, CPT_EINVALID, 0,
                     "user must be a non-empty account name without spaces, ':' or control "
                     "characters (CR, LF, NUL)");
  if (bad_user(a->whm_user, a->whm_user_len))
    return cpt_error(L, CPT_EINVALID, 0,
                     "whm_user must be a non-empty account name without spaces, ':' or control "
                     "characters");
  if (a->secret_len == 0 || cpt_check_header_value(a->secret, a->secret_len) != 0)
    return cpt_error(L, CPT_EINVALID, 0,
                     "%s must be non-empty and free of control characters (CR, LF, NUL)",
                     a->secret_name);
  if (a->otp && (a->otp_len == 0 || cpt_check_header_value(a->otp, a->otp_len) != 0))
    return cpt_error(L, CPT_EINVALID, 0,
                     "otp must be non-empty and free of control characters (CR, LF, NUL)");
  if (a->cafile) {
    if (strlen(a->cafile) != a->cafile_len)
      return cpt_error(L, CPT_EINVALID, 0, "cafile contains a NUL byte");
    f = fopen(a->cafile, "r");
    if (f == NULL)
      return cpt_error(L, CPT_EINVALID, 0, "cafile %s cannot be read: %s", a->cafile,
                       strerror(errno));
    fclose(f);
  }
  if (a->capath && strlen(a->capath) != a->capath_len)
    return cpt_error(L, CPT_EINVALID, 0, "capath contains a NUL byte");
  return 0;
}

/* core.new(options) -> client, or nil, err */
static int l_new(lua_State *L) {
  new_args_t a;
  cpt_client_t *c;
  char msg[256];
  int rc;

  memset(&a, 0, sizeof a);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  read_options(L, 1, &a);
  if ((rc = check_values(L, &a)) != 0) return rc;

  c = (cpt_client_t *)lua_newuserdata(L, sizeof *c);
  memset(c, 0, sizeof *c);
  luaL_getmetatable(L, CLIENT_MT);
  lua_setmetatable(L, -2); /* __gc is safe on a half-built client */

  rc = cpt_target_url(&c->target, a.url, a.url_len, msg, sizeof msg);
  if (rc != 0) {
    client_destroy(c);
    if (rc == -2) return luaL_error(L, "cptokens: out of memory");
    return cpt_error(L, CPT_EINVALID, 0, "%s", msg);
  }
  c->target.cred = a.cred;
  c->target.user = cpt_strdup(a.user, a.user_len);
  c->target.whm_user = cpt_strdup(a.whm_user, a.whm_user_len);
  c->target.secret = cpt_strdup(a.secret, a.secret_len);
  if (a.otp) c->target.otp = cpt_strdup(a.otp, a.otp_len);
  if (a.cafile) c->cafile = cpt_strdup(a.cafile, a.cafile_len);
  if (a.capath) c->capath = cpt_strdup(a.capath, a.capath_len);
  if (!c->target.user || !c->target.whm_user || !c->target.secret || (a.otp && !c->target.otp) ||
      (a.cafile && !c->cafile) || (a.capath && !c->capath)) {
    client_destroy(c);
    return luaL_error(L, "cptokens: out of memory");
  }
  a.opts.cafile = c->cafile;
  a.opts.capath = c->capath;
  a.opts.trust = cpt_trust_get(L, c->cafile, c->capath, a.opts.insecure, msg, sizeof msg);
  if (a.opts.trust == NULL) {
    client_destroy(c);
    return cpt_misuse(L, "cptokens: %s", msg);
  }
  c->opts = a.opts;
  c->opts.trust = NULL; /* owned by c->curl from here on */
  c->curl = cpt_curl_new(&a.opts, msg, sizeof msg);
  if (c->curl == NULL) {
    client_destroy(c);
    return cpt_misuse(L, "cptokens: %s", msg);
  }
  c->open = 1;
  return 1;
}

/* ---- operations: one method per entry of the table (ops.c) ------------------ */

/*
 * Reads op's arguments from the Lua values at first, first + 1, ... (one per
 * parameter, in order) into args; raises on a wrong type, as misuse. A list
 * leaves its scratch on the stack, which must stay until the request is built.
 */
static void read_args(lua_State *L, const cpt_op_t *op, int first, cpt_arg_t *args) {
  char want[128];
  int i;
  luaL_checkstack(L, CPT_PARAMS_MAX + 4, "cptokens: too many arguments"); /* list scratch */
  for (i = 0; op->params[i].field; i++) {
    const cpt_param_t *p = &op->params[i];
    int idx = first + i;
    if (cpt_ops_arg(L, idx, p, &args[i]) == 0) continue;
    cpt_ops_expect(p, want, sizeof want);
    /* named by the operation (create, not the _create that init.lua wraps) */
    if (p->type == CPT_PT_EPOCH || p->type == CPT_PT_EPOCH0) cpt_argerror(L, i + 1, op->name, want);
    cpt_argerror(L, i + 1, op->name,
                 lua_pushfstring(L, "%s, got a %s", want, luaL_typename(L, idx)));
  }
}

/* Builds rq for op; 0, or pushes nil, err and returns 2. */
static int build(lua_State *L, cpt_client_t *c, const cpt_op_t *op, const cpt_arg_t *args) {
  char err[256];
  int rc = cpt_request_build(&c->rq, &c->target, op, args, (long long)time(NULL), err,
                             sizeof err);
  if (rc == -2) return luaL_error(L, "cptokens: out of memory");
  if (rc != 0) return cpt_error(L, CPT_EINVALID, 0, "%s: %s", op->name, err);
  return 0;
}

/*
 * The method of a table entry (its index is upvalue 1): client:<method>(args...)
 * -> what the operation returns, or nil, err. Arguments are read and checked,
 * the request built, sent on the client's handle, decoded.
 */
static int l_op(lua_State *L) {
  cpt_client_t *c = check_client(L);
  const cpt_op_t *op = &cpt_ops[lua_tointeger(L, lua_upvalueindex(1))];
  cpt_arg_t args[CPT_PARAMS_MAX];
  const cpt_xfer_t *x;
  int rc;
  read_args(L, op, 2, args);
  if ((rc = build(L, c, op, args)) != 0) return rc;
  x = cpt_curl_perform(c->curl, &c->rq);
  rc = cpt_client_result(L, &c->rq, x);
  /* The headers were only needed for this request (and to scrub its reply). */
  cpt_buf_clear(&c->rq.auth);
  cpt_buf_clear(&c->rq.otp);
  /* A created token's only copy is now the Lua string: wipe the reply. */
  cpt_curl_wipe_reply(c->curl);
  return rc;
}

/* Sets t[k] to the part of the header line b after "Name: " (b holds one). */
static void set_header(lua_State *L, const cpt_buf_t *b, const char *k) {
  size_t len = 0;
  const char *v = header_value(b, &len);
  lua_pushlstring(L, v, len);
  lua_setfield(L, -2, k);
}

/* Pushes request.headers: the credential's, then the fixed ones. */
static void push_headers(lua_State *L, const cpt_request_t *rq) {
  lua_createtable(L, 0, 5);
  set_header(L, &rq->auth, "Authorization");
  if (rq->otp.len) set_header(L, &rq->otp, "X-CPANEL-OTP");
  lua_pushliteral(L, "application/json");
  lua_setfield(L, -2, "Accept");
  lua_pushliteral(L, "cptokens/" CPT_VERSION);
  lua_setfield(L, -2, "User-Agent");
  if (rq->post) {
    lua_pushliteral(L, "application/x-www-form-urlencoded");
    lua_setfield(L, -2, "Content-Type");
  }
  lua_setfield(L, -2, "headers");
}

/* Sets the request table's field for each argument given (lists excepted). */
static void push_args(lua_State *L, const cpt_request_t *rq, const cpt_arg_t *args) {
  int i;
  for (i = 0; rq->op->params[i].field; i++) {
    const cpt_param_t *p = &rq->op->params[i];
    if (p->type == CPT_PT_EPOCH || p->type == CPT_PT_EPOCH0) {
      if (!rq->vals[i].n) continue;
      cpt_pushepoch(L, rq->vals[i].n);
    } else if (p->type == CPT_PT_LIST || !args[i].given) {
      continue;
    } else {
      lua_pushlstring(L, args[i].s, args[i].len);
    }
    lua_setfield(L, -2, p->field);
  }
}

/* The names of the credential kinds, by cpt_cred_t. */
static const char *const creds[] = {"token", "password", "whm_token"};

/* Sets user, credential and whm_user (always, or for a WHM credential only) in the
 * table on top. */
static void set_identity(lua_State *L, const cpt_client_t *c, int whm_user_always) {
  lua_pushstring(L, c->target.user);
  lua_setfield(L, -2, "user");
  lua_pushstring(L, creds[c->target.cred]);
  lua_setfield(L, -2, "credential");
  if (whm_user_always || c->target.cred == CPT_CRED_WHM) {
    lua_pushstring(L, c->target.whm_user);
    lua_setfield(L, -2, "whm_user");
  }
}

/* Pushes the request table of _prepare for the built c->rq. */
static void push_request(lua_State *L, cpt_client_t *c, const cpt_arg_t *args) {
  const cpt_request_t *rq = &c->rq;
  const char *p = strstr(rq->url.p, "://") + 3;
  size_t authority = strcspn(p, "/");
  lua_createtable(L, 0, 16);
  lua_pushstring(L, rq->op->name);
  lua_setfield(L, -2, "op");
  lua_pushstring(L, rq->post ? "POST" : "GET");
  lua_setfield(L, -2, "method");
  lua_pushlstring(L, rq->url.p, rq->url.len);
  lua_setfield(L, -2, "url");
  lua_pushstring(L, c->target.host);
  lua_setfield(L, -2, "host");
  lua_pushinteger(L, c->target.port);
  lua_setfield(L, -2, "port");
  lua_pushlstring(L, p, authority); /* host[:port], as in the URL: the Host header */
  lua_setfield(L, -2, "authority");
  lua_pushboolean(L, c->target.tls);
  lua_setfield(L, -2, "tls");
  lua_pushstring(L, p + authority); /* the path with its query */
  lua_setfield(L, -2, "path");
  lua_pushlstring(L, rq->body.p ? rq->body.p : "", rq->body.len);
  lua_setfield(L, -2, "body");
  lua_pushboolean(L, rq->whm);
  lua_setfield(L, -2, "whm");
  set_identity(L, c, 1);
  push_args(L, rq, args);
  push_headers(L, rq);
}

/*
 * client:_prepare(op, args...) -> request table, or nil, err
 * For transports other than libcurl: op is an entry of core.ops and args are
 * its method's. The table holds everything needed to send the request (its
 * headers include the credential) and to decode the reply with
 * core.response(request, status, content_type, body).
 */
static int l_prepare(lua_State *L) {
  cpt_client_t *c = check_client(L);
  const cpt_op_t *op = cpt_ops_find(luaL_checkstring(L, 2));
  cpt_arg_t args[CPT_PARAMS_MAX];
  int rc;
  if (op == NULL)
    return cpt_argerror(L, 1, "_prepare",
                        lua_pushfstring(L, "invalid option '%s'", lua_tostring(L, 2)));
  read_args(L, op, 3, args);
  if ((rc = build(L, c, op, args)) != 0) return rc;
  push_request(L, c, args);
  cpt_buf_clear(&c->rq.auth);
  cpt_buf_clear(&c->rq.otp);
  return 1;
}

/* client:close() -> true; idempotent. Also __gc and __close. */
static int l_close(lua_State *L) {
  cpt_client_t *c = (cpt_client_t *)luaL_checkudata(L, 1, CLIENT_MT);
  client_destroy(c);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_tostring(lua_State *L) {
  cpt_client_t *c = (cpt_client_t *)luaL_checkudata(L, 1, CLIENT_MT);
  if (!c->open)
    lua_pushliteral(L, "cptokens.Client (closed)");
  else
    lua_pushfstring(L, "cptokens.Client (%s at %s, %s)", c->target.user, c->target.base,
                    creds[c->target.cred]);
  return 1;
}

/*
 * client:info() -> {url, user, credential, whm_user?, cafile?, capath?, insecure,
 * timeout, connect_timeout, max_response}: what the client acts as and how it
 * connects (enough to make a sibling client); never the credential.
 */
static int l_info(lua_State *L) {
  cpt_client_t *c = check_client(L);
  lua_createtable(L, 0, 4);
  lua_pushstring(L, c->target.base);
  lua_setfield(L, -2, "url");
  set_identity(L, c, 0);
  lua_pushstring(L, c->cafile);
  lua_setfield(L, -2, "cafile");
  lua_pushstring(L, c->capath);
  lua_setfield(L, -2, "capath");
  lua_pushboolean(L, c->opts.insecure);
  lua_setfield(L, -2, "insecure");
  lua_pushnumber(L, c->opts.timeout_ms / 1000.0);
  lua_setfield(L, -2, "timeout");
  lua_pushnumber(L, c->opts.connect_timeout_ms / 1000.0);
  lua_setfield(L, -2, "connect_timeout");
  lua_pushinteger(L, (lua_Integer)c->opts.max_response);
  lua_setfield(L, -2, "max_response");
  return 1;
}

/*
 * client:_set_token(token) -> true, or nil, err
 * For rotation: a token client that revoked its own token goes on with the new
 * one. The old value is wiped. Raises on a client that is not a token client.
 */
static int l_set_token(lua_State *L) {
  cpt_client_t *c = check_client(L);
  size_t n;
  const char *tok;
  char *copy;
  if (lua_type(L, 2) != LUA_TSTRING) cpt_argerror(L, 1, "_set_token", "token must be a string");
  tok = lua_tolstring(L, 2, &n);
  if (c->target.cred != CPT_CRED_TOKEN && c->target.cred != CPT_CRED_WHM)
    cpt_misuse(L, "cptokens: _set_token is for clients that authenticate with a token");
  if (n == 0 || cpt_check_header_value(tok, n) != 0)
    return cpt_error(L, CPT_EINVALID, 0, "token must be non-empty and free of control characters");
  copy = cpt_strdup(tok, n);
  if (copy == NULL) return luaL_error(L, "cptokens: out of memory");
  cpt_free_secret(&c->target.secret);
  c->target.secret = copy;
  lua_pushboolean(L, 1);
  return 1;
}

/*
 * client:_holds(secret) -> boolean: whether the client authenticates with
 * exactly this token (rotation: is the stored token the client's own?).
 * Compared in constant time; the secret never leaves C.
 */
static int l_holds(lua_State *L) {
  cpt_client_t *c = check_client(L);
  size_t n, i, m;
  const char *s = luaL_checklstring(L, 2, &n);
  unsigned char diff = 0;
  if ((c->target.cred != CPT_CRED_TOKEN && c->target.cred != CPT_CRED_WHM) ||
      c->target.secret == NULL) {
    lua_pushboolean(L, 0);
    return 1;
  }
  m = strlen(c->target.secret);
  for (i = 0; i < n && i < m; i++) diff |= (unsigned char)(s[i] ^ c->target.secret[i]);
  lua_pushboolean(L, diff == 0 && n == m);
  return 1;
}

/*
 * client:_as_whm() -> true
 * Marks a password client as the client of a WHM account (cptokens.whm): it may
 * then call WHM API 1, with HTTP Basic. A WHM token client already may.
 */
static int l_as_whm(lua_State *L) {
  cpt_client_t *c = check_client(L);
  c->target.whm_account = 1;
  lua_pushboolean(L, 1);
  return 1;
}

/*
 * client:_for_user(user) -> client, or nil, err
 * A new client acting for the cPanel account `user` through this client's WHM
 * token (/json-api/cpanel), with the same server and connection options. The
 * credential is copied in C; it never passes through Lua.
 */
static int l_for_user(lua_State *L) {
  cpt_client_t *c = check_client(L), *n;
  size_t len;
  const char *user = luaL_checklstring(L, 2, &len);
  char msg[256];
  if (c->target.cred != CPT_CRED_WHM)
    return cpt_error(L, CPT_EINVALID, 0, "for_user: acting for an account needs a WHM token "
                     "(a WHM password client cannot)");
  if (bad_user(user, len))
    return cpt_error(L, CPT_EINVALID, 0, "for_user: the user must be a non-empty account name "
                     "without spaces, ':' or control characters");
  n = (cpt_client_t *)lua_newuserdata(L, sizeof *n);
  memset(n, 0, sizeof *n);
  luaL_getmetatable(L, CLIENT_MT);
  lua_setmetatable(L, -2);
  if (cpt_target_url(&n->target, c->target.base, strlen(c->target.base), msg, sizeof msg) != 0) {
    client_destroy(n);
    return luaL_error(L, "cptokens: %s", msg);
  }
  n->target.cred = CPT_CRED_WHM;
  n->target.user = cpt_strdup(user, len);
  n->target.whm_user = cpt_strdup(c->target.whm_user, strlen(c->target.whm_user));
  n->target.secret = cpt_strdup(c->target.secret, strlen(c->target.secret));
  if (c->cafile) n->cafile = cpt_strdup(c->cafile, strlen(c->cafile));
  if (c->capath) n->capath = cpt_strdup(c->capath, strlen(c->capath));
  if (!n->target.user || !n->target.whm_user || !n->target.secret || (c->cafile && !n->cafile) ||
      (c->capath && !n->capath)) {
    client_destroy(n);
    return luaL_error(L, "cptokens: out of memory");
  }
  n->opts = c->opts;
  n->opts.cafile = n->cafile;
  n->opts.capath = n->capath;
  n->opts.trust = cpt_trust_get(L, n->cafile, n->capath, n->opts.insecure, msg, sizeof msg);
  if (n->opts.trust == NULL) {
    client_destroy(n);
    return luaL_error(L, "cptokens: %s", msg);
  }
  n->curl = cpt_curl_new(&n->opts, msg, sizeof msg);
  n->opts.trust = NULL; /* owned by n->curl from here on */
  if (n->curl == NULL) {
    client_destroy(n);
    return luaL_error(L, "cptokens: %s", msg);
  }
  n->open = 1;
  return 1;
}

void cpt_client_open(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"close", l_close},     {"info", l_info},   {"_prepare", l_prepare},
      {"_set_token", l_set_token}, {"_holds", l_holds},
      {"_as_whm", l_as_whm}, {"_for_user", l_for_user}, {NULL, NULL}};
  int i;
  if (cpt_class(L, CLIENT_MT, methods, l_close)) {
    lua_getfield(L, -1, "__index");
    for (i = 0; i < cpt_ops_count; i++) { /* the operations, from the table */
      lua_pushinteger(L, i);
      lua_pushcclosure(L, l_op, 1);
      lua_setfield(L, -2, cpt_ops[i].method);
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
  }
  /* core.Client: the methods table, which the Lua layer extends (create, rotate...). */
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "Client");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_new);
  lua_setfield(L, -2, "new");
}
