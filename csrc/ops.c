/*
 * ops.c: the table of operations, the one place that says what each call the
 * core can make is: its name, API family and function, method, parameters
 * (how each is read, checked and encoded), an extra check, and its decoder.
 *
 * Read by the request builder (request.c), the decoder (response.c), the
 * client methods and _prepare (client.c), batch jobs (batch.c), and through
 * core.ops by the Lua layer (init.lua's OpenResty wrappers, batch fields).
 * Adding an operation is one entry here, its decoder (decode.c) and its
 * specs: see ARCHITECTURE.md, "Adding an operation".
 */
#include <stdio.h>
#include <string.h>

#include "cptokens.h"

/* ---- extra checks ------------------------------------------------------------ */

/* rename: the new name must differ from the current one (both already checked). */
static int check_rename(const cpt_request_t *rq, const cpt_arg_t *args, char *err,
                        size_t errlen) {
  if (args[0].len == args[1].len && memcmp(args[0].s, args[1].s, args[0].len) == 0) {
    snprintf(err, errlen, "the new name must differ from the current name \"%s\"",
             rq->vals[0].s);
    return -1;
  }
  return 0;
}

/* Whether the argument a is one of the NULL-terminated words. */
static int one_of(const cpt_arg_t *a, const char *const *words) {
  for (; *words; words++)
    if (strlen(*words) == a->len && memcmp(*words, a->s, a->len) == 0) return 1;
  return 0;
}

/* listaccts: searchtype and searchmethod are WHM's words, and go with a search. */
static int check_listaccts(const cpt_request_t *rq, const cpt_arg_t *args, char *err,
                           size_t errlen) {
  static const char *const types[] = {"user", "domain", "owner", "ip", "package", NULL};
  static const char *const methods[] = {"exact", "regex", NULL};
  (void)rq;
  if ((args[1].given || args[2].given) && !args[0].given) {
    snprintf(err, errlen, "searchtype and searchmethod go with a search");
    return -1;
  }
  if (args[1].given && !one_of(&args[1], types)) {
    snprintf(err, errlen, "searchtype must be user, domain, owner, ip or package");
    return -1;
  }
  if (args[2].given && !one_of(&args[2], methods)) {
    snprintf(err, errlen, "searchmethod must be exact or regex");
    return -1;
  }
  return 0;
}

/* ---- the table --------------------------------------------------------------- */

#define NAME(field, wire, what) {field, wire, what, CPT_PT_NAME, 1}
#define OPTIONAL(field, type) {field, field, field, type, 0}
#define END {NULL, NULL, NULL, CPT_PT_STRING, 0}

const cpt_op_t cpt_ops[] = {
    {"create", "_create", CPT_FAM_UAPI, "Tokens", "create_full_access", NULL, 1,
     {NAME("name", "name", "token name"), OPTIONAL("expires_at", CPT_PT_EPOCH), END},
     NULL, cpt_decode_created},
    {"list", "list", CPT_FAM_UAPI, "Tokens", "list", NULL, 0, {END}, NULL, cpt_decode_list},
    {"rename", "rename", CPT_FAM_UAPI, "Tokens", "rename", NULL, 1,
     {NAME("name", "name", "current name"), NAME("new_name", "new_name", "new name"), END},
     check_rename, cpt_decode_renamed},
    {"revoke", "revoke", CPT_FAM_UAPI, "Tokens", "revoke", NULL, 1,
     {NAME("name", "name", "token name"), END}, NULL, cpt_decode_revoked},
    /* WHM API 1: the accounts a WHM credential can act for (internal until the WHM client). */
    {"listaccts", "_listaccts", CPT_FAM_WHM1, NULL, "listaccts", "want=user,domain,owner,suspended",
     0,
     {OPTIONAL("search", CPT_PT_STRING), OPTIONAL("searchtype", CPT_PT_STRING),
      OPTIONAL("searchmethod", CPT_PT_STRING), END},
     check_listaccts, cpt_decode_accounts},
};

const int cpt_ops_count = (int)(sizeof cpt_ops / sizeof cpt_ops[0]);

const cpt_op_t *cpt_ops_find(const char *s) {
  int i;
  for (i = 0; s != NULL && i < cpt_ops_count; i++)
    if (strcmp(s, cpt_ops[i].name) == 0) return &cpt_ops[i];
  return NULL;
}

/* ---- reading arguments from Lua ------------------------------------------------ */

const char *cpt_ops_expect(const cpt_param_t *p, char *out, size_t outlen) {
  switch (p->type) {
  case CPT_PT_NAME:
    snprintf(out, outlen, "token name must be a string");
    break;
  case CPT_PT_EPOCH:
    snprintf(out, outlen, "%s must be a whole number of Unix seconds", p->field);
    break;
  case CPT_PT_LIST:
    snprintf(out, outlen, "%s must be an array of strings", p->field);
    break;
  default:
    snprintf(out, outlen, "%s must be a string", p->field);
  }
  return out;
}

/*
 * An array of strings at idx into a: pushes a Lua-owned scratch array of
 * pointers and lengths (the strings stay owned by the table). 0 or 2.
 */
static int read_list(lua_State *L, int idx, cpt_arg_t *a) {
  size_t n = cpt_rawlen(L, idx), i;
  const char **items;
  size_t *lens;
  items = (const char **)lua_newuserdata(L, (sizeof *items + sizeof *lens) * (n ? n : 1));
  lens = (size_t *)(void *)(items + (n ? n : 1));
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, idx, (int)i + 1);
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_pop(L, 1);
      return 2;
    }
    items[i] = lua_tolstring(L, -1, &lens[i]);
    lua_pop(L, 1); /* still referenced by the table */
  }
  a->items = items;
  a->lens = lens;
  a->count = n;
  return 0;
}

int cpt_ops_arg(lua_State *L, int idx, const cpt_param_t *p, cpt_arg_t *a) {
  memset(a, 0, sizeof *a);
  idx = cpt_absindex(L, idx);
  if (lua_isnoneornil(L, idx)) return p->required ? 1 : 0;
  a->given = 1;
  switch (p->type) {
  case CPT_PT_EPOCH:
    if (lua_type(L, idx) != LUA_TNUMBER || !cpt_toepoch(L, idx, &a->n)) return 2;
    return 0;
  case CPT_PT_LIST:
    if (lua_type(L, idx) != LUA_TTABLE) return 2;
    return read_list(L, idx, a);
  default:
    /* Type first: lua_tolstring would turn a number into a string in place. */
    if (lua_type(L, idx) != LUA_TSTRING) return 2;
    a->s = lua_tolstring(L, idx, &a->len);
    return 0;
  }
}

/* core.ops = { {name =, method =, fields = {...}}, ... }, in table order. */
void cpt_ops_open(lua_State *L) {
  int i, k;
  lua_createtable(L, cpt_ops_count, 0);
  for (i = 0; i < cpt_ops_count; i++) {
    const cpt_op_t *op = &cpt_ops[i];
    lua_createtable(L, 0, 3);
    lua_pushstring(L, op->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, op->method);
    lua_setfield(L, -2, "method");
    lua_newtable(L);
    for (k = 0; op->params[k].field; k++) {
      lua_pushstring(L, op->params[k].field);
      lua_rawseti(L, -2, k + 1);
    }
    lua_setfield(L, -2, "fields");
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "ops");
}
