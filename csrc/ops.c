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

#include <arpa/inet.h>

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


/* ---- WHM API 1 tokens: ACL names, IP allow-lists, token names ------------------ */

#define ACL_MAX 64       /* the longest ACL name taken (cPanel's are at most 32) */
#define ACLS_MAX 500     /* more ACLs than any server has */
#define IPS_MAX 100      /* WHM's limit on a token's IP list */
#define NAMES_MAX 1000   /* names revoked in one call */

/* An ACL name: a letter or digit, then letters, digits, '-', '_' or '.' (plugins add ACLs,
   so the base list is not enforced: the server refuses an ACL it does not know). */
static int bad_acl(const char *s, size_t n) {
  size_t i;
  if (n < 1 || n > ACL_MAX) return 1;
  for (i = 0; i < n; i++) {
    char c = s[i];
    int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '-' && c != '_' && c != '.'))) return 1;
  }
  return 0;
}

/* An address or CIDR range, IPv4 or IPv6 ("203.0.113.0/24", "2001:db8::1"). 0 or -1. */
static int bad_ip(const char *s, size_t n) {
  char addr[64];
  unsigned char bin[16];
  const char *slash = memchr(s, '/', n);
  size_t alen = slash ? (size_t)(slash - s) : n, i;
  int v6, bits = 0;
  if (alen == 0 || alen >= sizeof addr || memchr(s, '\0', n)) return -1;
  memcpy(addr, s, alen);
  addr[alen] = '\0';
  v6 = memchr(addr, ':', alen) != NULL;
  if (inet_pton(v6 ? AF_INET6 : AF_INET, addr, bin) != 1) return -1;
  if (slash == NULL) return 0;
  if (n - alen < 2 || n - alen > 4) return -1;
  for (i = alen + 1; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    bits = bits * 10 + (s[i] - '0');
  }
  return bits > (v6 ? 128 : 32) ? -1 : 0;
}

/* The ACL list of create or update, when given: not empty, every name well-formed. */
static int check_acls(const cpt_arg_t *a, const char *empty, char *err, size_t errlen) {
  char q[128];
  size_t k;
  if (!a->given) return 0;
  if (a->count == 0) {
    snprintf(err, errlen, "%s", empty);
    return -1;
  }
  if (a->count > ACLS_MAX) {
    snprintf(err, errlen, "%lu ACLs: at most %d", (unsigned long)a->count, ACLS_MAX);
    return -1;
  }
  for (k = 0; k < a->count; k++) {
    if (!bad_acl(a->items[k], a->lens[k])) continue;
    cpt_quote(q, sizeof q, a->items[k], a->lens[k]);
    snprintf(err, errlen, "invalid ACL name %s: an ACL name is 1 to %d characters from a-z A-Z "
             "0-9 - _ . (starting with a letter or digit)", q, ACL_MAX);
    return -1;
  }
  return 0;
}

/* The IP allow-list of create or update, when given: 1 to 100 addresses or CIDR ranges. */
static int check_ips(const cpt_arg_t *a, char *err, size_t errlen) {
  char q[128];
  size_t k;
  if (!a->given) return 0;
  if (a->count == 0 || a->count > IPS_MAX) {
    snprintf(err, errlen, "whitelist_ips must hold 1 to %d addresses or CIDR ranges (got %lu)%s",
             IPS_MAX, (unsigned long)a->count,
             a->count ? "" : "; leave it out (create) or give false (update) for no allow-list");
    return -1;
  }
  for (k = 0; k < a->count; k++) {
    if (bad_ip(a->items[k], a->lens[k]) == 0) continue;
    cpt_quote(q, sizeof q, a->items[k], a->lens[k]);
    snprintf(err, errlen, "invalid address %s in whitelist_ips: give IPv4 or IPv6 addresses or "
             "CIDR ranges (203.0.113.0/24, 2001:db8::/32)", q);
    return -1;
  }
  return 0;
}

/* whm_create: name, acls, expires_at, whitelist_ips. */
static int check_whm_create(const cpt_request_t *rq, const cpt_arg_t *args, char *err,
                            size_t errlen) {
  (void)rq;
  if (check_acls(&args[1], "acls is empty: leave it out for a token with full access", err,
                 errlen))
    return -1;
  return check_ips(&args[3], err, errlen);
}

/* whm_update: name, new_name, acls, expires_at, whitelist_ips, whitelist_ip ("any"). */
static int check_whm_update(const cpt_request_t *rq, const cpt_arg_t *args, char *err,
                            size_t errlen) {
  const cpt_arg_t *clear = &args[5];
  if (args[1].given && strcmp(rq->vals[0].s, rq->vals[1].s) == 0) {
    snprintf(err, errlen, "the new name must differ from the current name \"%s\"", rq->vals[0].s);
    return -1;
  }
  if (check_acls(&args[2], "acls is empty: give { \"all\" } for full access", err, errlen) ||
      check_ips(&args[4], err, errlen))
    return -1;
  if (clear->given && (clear->len != 3 || memcmp(clear->s, "any", 3) != 0)) {
    snprintf(err, errlen, "whitelist_ip may only be \"any\" (clears the allow-list)");
    return -1;
  }
  if (clear->given && args[4].given) {
    snprintf(err, errlen, "give whitelist_ips or clear the allow-list, not both");
    return -1;
  }
  if (!args[1].given && !args[2].given && !args[3].given && !args[4].given && !clear->given) {
    snprintf(err, errlen, "nothing to change: give new_name, acls, an expiry or whitelist_ips");
    return -1;
  }
  return 0;
}

/* whm_revoke: 1 to NAMES_MAX token names. */
static int check_whm_revoke(const cpt_request_t *rq, const cpt_arg_t *args, char *err,
                            size_t errlen) {
  char q[128];
  size_t k;
  (void)rq;
  if (args[0].count == 0 || args[0].count > NAMES_MAX) {
    snprintf(err, errlen, "give 1 to %d token names (got %lu)", NAMES_MAX,
             (unsigned long)args[0].count);
    return -1;
  }
  for (k = 0; k < args[0].count; k++) {
    if (cpt_check_name(args[0].items[k], args[0].lens[k]) == 0) continue;
    cpt_quote(q, sizeof q, args[0].items[k], args[0].lens[k]);
    snprintf(err, errlen, "invalid token name %s: a token name is 1 to %d characters from "
             "A-Z a-z 0-9 _ -", q, CPT_NAME_MAX);
    return -1;
  }
  return 0;
}

/* whm_details: a token value (a secret: never quoted in a refusal). */
static int check_whm_details(const cpt_request_t *rq, const cpt_arg_t *args, char *err,
                             size_t errlen) {
  (void)rq;
  if (args[0].len == 0 || args[0].len > 256 ||
      cpt_check_header_value(args[0].s, args[0].len) != 0) {
    snprintf(err, errlen, "the token value must be 1 to 256 characters without control "
             "characters");
    return -1;
  }
  return 0;
}

/* ---- the table --------------------------------------------------------------- */

#define NAME(field, wire, what) {field, wire, what, CPT_PT_NAME, 1}
#define OPTIONAL(field, type) {field, field, field, type, 0}
#define OPT_NAME(field, wire, what) {field, wire, what, CPT_PT_NAME, 0}
#define LIST(field, wire) {field, wire, field, CPT_PT_LIST, 0}
#define REQUIRED(field, wire, type) {field, wire, field, type, 1}
#define END {NULL, NULL, NULL, CPT_PT_STRING, 0}

const cpt_op_t cpt_ops[] = {
    {"create", "_create", CPT_FAM_UAPI, "Tokens", "create_full_access", NULL, 1,
     {NAME("name", "name", "token name"), OPTIONAL("expires_at", CPT_PT_EPOCH), END},
     NULL, cpt_decode_created},
    {"list", "list", CPT_FAM_UAPI, "Tokens", "list", NULL, 0, {END}, NULL, cpt_decode_list},
    {"rename", "rename", CPT_FAM_UAPI, "Tokens", "rename", NULL, 1,
     {NAME("name", "name", "current name"), NAME("new_name", "new_name", "new name"), END},
     check_rename, cpt_decode_true},
    {"revoke", "revoke", CPT_FAM_UAPI, "Tokens", "revoke", NULL, 1,
     {NAME("name", "name", "token name"), END}, NULL, cpt_decode_revoked},
    /* WHM API 1: the accounts a WHM credential can act for (internal until the WHM client). */
    {"listaccts", "_listaccts", CPT_FAM_WHM1, NULL, "listaccts", "want=user,domain,owner,suspended",
     0,
     {OPTIONAL("search", CPT_PT_STRING), OPTIONAL("searchtype", CPT_PT_STRING),
      OPTIONAL("searchmethod", CPT_PT_STRING), END},
     check_listaccts, cpt_decode_accounts},
    /* WHM API 1: the WHM account's own API tokens (ACLs, IP allow-list, expiry); the
       client methods behind lua/cptokens/whm.lua. */
    {"whm_create", "_whm_create", CPT_FAM_WHM1, NULL, "api_token_create", NULL, 1,
     {NAME("name", "token_name", "token name"), LIST("acls", "acl"),
      OPTIONAL("expires_at", CPT_PT_EPOCH), LIST("whitelist_ips", "whitelist_ip"), END},
     check_whm_create, cpt_decode_whm_created},
    {"whm_list", "_whm_list", CPT_FAM_WHM1, NULL, "api_token_list", NULL, 0, {END}, NULL,
     cpt_decode_whm_list},
    {"whm_update", "_whm_update", CPT_FAM_WHM1, NULL, "api_token_update", NULL, 1,
     {NAME("name", "token_name", "token name"), OPT_NAME("new_name", "new_name", "new name"),
      LIST("acls", "acl"), OPTIONAL("expires_at", CPT_PT_EPOCH0),
      LIST("whitelist_ips", "whitelist_ip"), OPTIONAL("whitelist_ip", CPT_PT_STRING), END},
     check_whm_update, cpt_decode_whm_token},
    {"whm_revoke", "_whm_revoke", CPT_FAM_WHM1, NULL, "api_token_revoke", NULL, 1,
     {REQUIRED("names", "token_name", CPT_PT_LIST), END}, check_whm_revoke,
     cpt_decode_true},
    /* POST: the value asked about is a secret, kept out of URLs and access logs. */
    {"whm_details", "_whm_details", CPT_FAM_WHM1, NULL, "api_token_get_details", NULL, 1,
     {REQUIRED("token", "token", CPT_PT_STRING), END}, check_whm_details,
     cpt_decode_whm_details},
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
  case CPT_PT_EPOCH0:
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
  case CPT_PT_EPOCH0:
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
