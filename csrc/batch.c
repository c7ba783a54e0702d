/*
 * batch.c: core.batch(jobs, concurrency [, per_server]) -> results, in job order.
 *
 * Each job is { client = <cptokens.Client>, op = <an entry of the table of
 * operations (ops.c)>, and a field for each of its parameters }. Requests are built and
 * checked first (a refused one is an "invalid" result and is never sent),
 * then all run through one libcurl multi handle (curl.c), then each reply is
 * decoded exactly as the single call would. Everything C allocates hangs off
 * a Lua userdata with __gc, so a Lua error at any point leaks nothing; no Lua
 * code runs while libcurl does.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cptokens.h"

#define BATCH_MT "cptokens.Batch"

typedef struct batch {
  size_t n;
  cpt_job_t *jobs;
  cpt_request_t *rqs;
  char (*errs)[256];  /* why a job was refused before sending */
  cpt_gate_t *gates;  /* one per distinct (server, credential) */
  cpt_host_t *hosts;  /* one per distinct server (host, port) */
  size_t *slots;      /* hash table of 2n slots: job index + 1 of a gate's first job, or 0 */
} batch_t;

static int batch_gc(lua_State *L) {
  batch_t *b = (batch_t *)luaL_checkudata(L, 1, BATCH_MT);
  size_t i;
  for (i = 0; b->jobs && i < b->n; i++) cpt_xfer_release(&b->jobs[i].x);
  for (i = 0; b->rqs && i < b->n; i++) cpt_request_free(&b->rqs[i]);
  free(b->jobs);
  free(b->rqs);
  free(b->errs);
  free(b->gates);
  free(b->hosts);
  free(b->slots);
  b->jobs = NULL;
  b->rqs = NULL;
  b->errs = NULL;
  b->gates = NULL;
  b->hosts = NULL;
  b->slots = NULL;
  b->n = 0;
  return 0;
}

/*
 * Reads the field of each of op's parameters from job i (the table at t) into
 * args; raises on a missing or mistyped one. Leaves the values on the stack.
 */
static void read_fields(lua_State *L, const cpt_op_t *op, int t, size_t i, cpt_arg_t *args) {
  char want[128];
  int k, rc;
  for (k = 0; op->params[k].field; k++) {
    const cpt_param_t *p = &op->params[k];
    lua_getfield(L, t, p->field);
    rc = cpt_ops_arg(L, -1, p, &args[k]);
    if (rc == 1) cpt_misuse(L, "cptokens.batch: job %d needs a %s", (int)i + 1, p->field);
    if (rc == 2 && p->type == CPT_PT_NAME)
      cpt_misuse(L, "cptokens.batch: job %d needs a %s", (int)i + 1, p->field);
    if (rc == 2 && (p->type == CPT_PT_EPOCH || p->type == CPT_PT_EPOCH0))
      cpt_misuse(L, "cptokens.batch: job %d: %s must be a whole number", (int)i + 1, p->field);
    if (rc == 2)
      cpt_misuse(L, "cptokens.batch: job %d: %s", (int)i + 1, cpt_ops_expect(p, want, sizeof want));
  }
}

/* Reads job i (the table at the top of the stack) and builds its request. */
static cpt_client_t *build_job(lua_State *L, batch_t *b, size_t i, long long now) {
  cpt_job_t *j = &b->jobs[i];
  cpt_request_t *rq = &b->rqs[i];
  cpt_arg_t args[CPT_PARAMS_MAX];
  const cpt_op_t *op;
  cpt_client_t *c;
  int t = lua_gettop(L), rc;

  luaL_checkstack(L, 2 * CPT_PARAMS_MAX + 4, "cptokens.batch: too many arguments");
  lua_getfield(L, t, "client");
  c = cpt_client_check(L, -1);
  lua_getfield(L, t, "op");
  op = cpt_ops_find(lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL);
  if (op == NULL)
    cpt_misuse(L, "cptokens.batch: job %d: op must be an operation of core.ops", (int)i + 1);
  read_fields(L, op, t, i, args);
  lua_getfield(L, t, "_accepted");
  j->accepted = lua_toboolean(L, -1);
  j->rq = rq;
  j->client = c->curl;
  rc = cpt_request_build(rq, &c->target, op, args, now, b->errs[i], sizeof b->errs[i]);
  if (rc == -2) luaL_error(L, "cptokens: out of memory");
  if (rc != 0) j->skip = 1; /* rq->op is set: the error prefix */
  lua_settop(L, t);
  return c; /* kept alive by the jobs table */
}

/* ---- gates: one per server and credential (see cpt_gate_t) ------------------ */

/* The account a credential logs in as: the WHM user for a WHM token. */
static const char *login_of(const cpt_target_t *t) {
  return t->cred == CPT_CRED_WHM ? t->whm_user : t->user;
}

static unsigned long long fnv(unsigned long long h, const char *s, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
  return (h ^ 0xFF) * 1099511628211ULL; /* a separator between fields */
}

static unsigned long long gate_hash(const cpt_target_t *t) {
  unsigned long long h = 14695981039346656037ULL;
  char port[16];
  snprintf(port, sizeof port, "%d:%d", t->port, (int)t->cred);
  h = fnv(h, t->host, strlen(t->host));
  h = fnv(h, port, strlen(port));
  h = fnv(h, login_of(t), strlen(login_of(t)));
  return fnv(h, t->secret, strlen(t->secret));
}

static int same_gate(const cpt_target_t *a, const cpt_target_t *b) {
  return a->port == b->port && a->cred == b->cred && strcmp(a->host, b->host) == 0 &&
         strcmp(login_of(a), login_of(b)) == 0 && strcmp(a->secret, b->secret) == 0;
}

/* Gives every job the gate of the first job with the same server and credential. */
static void assign_gates(batch_t *b, cpt_client_t **clients) {
  size_t i, ngates = 0, cap = 2 * b->n;
  for (i = 0; i < b->n; i++) {
    const cpt_target_t *t = &clients[i]->target;
    size_t k = (size_t)(gate_hash(t) % cap);
    while (b->slots[k] != 0 && !same_gate(&clients[b->slots[k] - 1]->target, t))
      k = (k + 1) % cap;
    if (b->slots[k] == 0) {
      b->slots[k] = i + 1;
      b->jobs[i].gate = &b->gates[ngates++];
    } else {
      b->jobs[i].gate = b->jobs[b->slots[k] - 1].gate;
    }
    /* A caller that saw the same call accepted in an earlier batch of one run (cptokens.fleet's
     * chunks) continues it: no probe, as if it were one batch. */
    if (b->jobs[i].accepted) b->jobs[i].gate->state = CPT_GATE_OPEN;
  }
}

static unsigned long long host_hash(const cpt_target_t *t) {
  char port[16];
  snprintf(port, sizeof port, "%d", t->port);
  return fnv(fnv(14695981039346656037ULL, t->host, strlen(t->host)), port, strlen(port));
}

/* Gives every job the host of the first job with the same host and port (slots reused). */
static void assign_hosts(batch_t *b, cpt_client_t **clients) {
  size_t i, nhosts = 0, cap = 2 * b->n;
  if (b->n == 0) return;
  memset(b->slots, 0, cap * sizeof *b->slots);
  for (i = 0; i < b->n; i++) {
    const cpt_target_t *t = &clients[i]->target, *u;
    size_t k = (size_t)(host_hash(t) % cap);
    while (b->slots[k] != 0 && ((u = &clients[b->slots[k] - 1]->target)->port != t->port ||
                                strcmp(u->host, t->host) != 0))
      k = (k + 1) % cap;
    if (b->slots[k] == 0) {
      b->slots[k] = i + 1;
      b->jobs[i].host = &b->hosts[nhosts++];
    } else {
      b->jobs[i].host = b->jobs[b->slots[k] - 1].host;
    }
  }
}

/* Pushes job i's result table: { ok, value, existed? } or { ok = false, err }. */
static void push_result(lua_State *L, batch_t *b, size_t i) {
  int base = lua_gettop(L), n, first;
  lua_createtable(L, 0, 3);
  if (b->jobs[i].skip)
    n = cpt_error(L, CPT_EINVALID, 0, "%s: %s", b->rqs[i].op->name, b->errs[i]);
  else
    n = cpt_client_result(L, &b->rqs[i], &b->jobs[i].x);
  /* The results are the top n values (the decoder may leave scratch below them). */
  first = lua_gettop(L) - n + 1;
  if (n == 2 && lua_isnil(L, first)) {
    lua_pushboolean(L, 0);
    lua_setfield(L, base + 1, "ok");
    lua_pushvalue(L, first + 1);
    lua_setfield(L, base + 1, "err");
  } else {
    lua_pushboolean(L, 1);
    lua_setfield(L, base + 1, "ok");
    lua_pushvalue(L, first);
    lua_setfield(L, base + 1, "value");
    if (n == 2) {
      lua_pushvalue(L, first + 1);
      lua_setfield(L, base + 1, "existed");
    }
  }
  lua_settop(L, base + 1);
}

static int l_batch(lua_State *L) {
  batch_t *b;
  cpt_client_t **clients;
  size_t n, i;
  int concurrency, per_server;
  long long now = (long long)time(NULL);

  luaL_checktype(L, 1, LUA_TTABLE);
  concurrency = (int)luaL_optinteger(L, 2, 10);
  luaL_argcheck(L, concurrency >= 1 && concurrency <= 1000, 2, "concurrency must be 1 to 1000");
  per_server = (int)luaL_optinteger(L, 3, 0);
  luaL_argcheck(L, per_server >= 0 && per_server <= 1000, 3, "per_server must be 0 to 1000");
  n = cpt_rawlen(L, 1);
  lua_settop(L, 1);

  b = (batch_t *)lua_newuserdata(L, sizeof *b); /* index 2 */
  memset(b, 0, sizeof *b);
  luaL_getmetatable(L, BATCH_MT);
  lua_setmetatable(L, -2);
  if (n > 0) {
    b->jobs = calloc(n, sizeof *b->jobs);
    b->rqs = calloc(n, sizeof *b->rqs);
    b->errs = calloc(n, sizeof *b->errs);
    b->gates = calloc(n, sizeof *b->gates);
    b->hosts = calloc(n, sizeof *b->hosts);
    b->slots = calloc(2 * n, sizeof *b->slots);
    /* On failure __gc frees what was allocated. */
    if (!b->jobs || !b->rqs || !b->errs || !b->gates || !b->hosts || !b->slots)
      return luaL_error(L, "cptokens: out of memory");
    b->n = n;
  }
  clients = (cpt_client_t **)lua_newuserdata(L, sizeof *clients * (n ? n : 1)); /* index 3 */
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, 1, (int)i + 1);
    if (lua_type(L, -1) != LUA_TTABLE)
      cpt_misuse(L, "cptokens.batch: job %d is not a table", (int)i + 1);
    clients[i] = build_job(L, b, i, now);
    lua_pop(L, 1);
  }
  assign_gates(b, clients);
  assign_hosts(b, clients);
  lua_pop(L, 1);

  cpt_curl_batch(b->jobs, n, concurrency, per_server);

  lua_createtable(L, (int)n, 0); /* index 3 */
  for (i = 0; i < n; i++) {
    push_result(L, b, i);
    lua_rawseti(L, 3, (int)i + 1);
    /* the headers were only needed to send (and to scrub the reply) */
    cpt_buf_clear(&b->rqs[i].auth);
    cpt_buf_clear(&b->rqs[i].otp);
  }
  /* Release the bodies now rather than at the next collection. */
  lua_pushcfunction(L, batch_gc);
  lua_pushvalue(L, 2);
  lua_call(L, 1, 0);
  return 1;
}

void cpt_batch_open(lua_State *L) {
  if (luaL_newmetatable(L, BATCH_MT)) {
    lua_pushcfunction(L, batch_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_batch);
  lua_setfield(L, -2, "batch");
}
