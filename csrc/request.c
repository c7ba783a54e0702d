/*
 * request.c: the request for an operation, built once for every transport.
 *
 * Everything cPanel would refuse is refused here, before a byte is sent:
 * names, expiries, and CR/LF/NUL in anything that goes into a header or URL.
 * Nothing here touches Lua, so the fuzz target can drive it directly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "cptokens.h"

int cpt_check_header_value(const char *s, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f) return -1;
  }
  return 0;
}

int cpt_check_name(const char *s, size_t n) {
  size_t i;
  if (n < 1 || n > CPT_NAME_MAX) return -1;
  for (i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '-'))
      return -1;
  }
  return 0;
}

void cpt_quote(char *out, size_t outlen, const char *s, size_t n) {
  size_t o = 0, i;
  if (outlen < 8) {
    if (outlen) out[0] = '\0';
    return;
  }
  out[o++] = '"';
  for (i = 0; i < n && i < 60 && o + 6 < outlen; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      out[o++] = '\\';
      out[o++] = (char)c;
    } else if (c < 0x20 || c >= 0x7f) {
      o += (size_t)snprintf(out + o, outlen - o, "\\x%02X", c);
    } else {
      out[o++] = (char)c;
    }
  }
  if (i < n && o + 4 < outlen) {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o++] = '"';
  out[o] = '\0';
}

static int is_loopback(const char *host) {
  int a, b, c, d;
  char tail;
  if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0) return 1;
  if (sscanf(host, "%d.%d.%d.%d%c", &a, &b, &c, &d, &tail) == 4)
    return a == 127 && b >= 0 && b < 256 && c >= 0 && c < 256 && d >= 0 && d < 256;
  return 0;
}

void cpt_target_free(cpt_target_t *t) {
  free(t->base);
  free(t->host);
  free(t->user);
  free(t->whm_user);
  t->base = t->host = t->user = t->whm_user = NULL;
  cpt_free_secret(&t->secret);
  cpt_free_secret(&t->otp);
}

/* Reads one part of u; NULL when absent. The caller curl_free()s it. */
static char *url_part(CURLU *u, CURLUPart part, unsigned flags) {
  char *v = NULL;
  if (curl_url_get(u, part, &v, flags) != CURLUE_OK) return NULL;
  return v;
}

int cpt_target_url(cpt_target_t *t, const char *url, size_t len, char *err, size_t errlen) {
  CURLU *u = NULL;
  char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL, *frag = NULL,
       *userinfo = NULL, *pass = NULL, *dport = NULL;
  cpt_buf_t base = {0};
  size_t plen;
  int rc = -1;

  if (strlen(url) != len || cpt_check_header_value(url, len) != 0) {
    snprintf(err, errlen, "url contains a control character (CR, LF, NUL or another)");
    return -1;
  }
  u = curl_url();
  if (u == NULL) {
    snprintf(err, errlen, "out of memory");
    return -2;
  }
  if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
    snprintf(err, errlen, "url is not a valid absolute URL (expected https://host:2083)");
    goto done;
  }
  scheme = url_part(u, CURLUPART_SCHEME, 0);
  host = url_part(u, CURLUPART_HOST, 0);
  port = url_part(u, CURLUPART_PORT, 0);
  dport = url_part(u, CURLUPART_PORT, CURLU_DEFAULT_PORT);
  path = url_part(u, CURLUPART_PATH, 0);
  query = url_part(u, CURLUPART_QUERY, 0);
  frag = url_part(u, CURLUPART_FRAGMENT, 0);
  userinfo = url_part(u, CURLUPART_USER, 0);
  pass = url_part(u, CURLUPART_PASSWORD, 0);
  if (scheme == NULL || host == NULL || dport == NULL) {
    snprintf(err, errlen, "url is not a valid absolute URL (expected https://host:2083)");
    goto done;
  }
  if (userinfo != NULL || pass != NULL) {
    snprintf(err, errlen, "url must not carry a user name or password; use the user and "
                          "credential options");
    goto done;
  }
  if (query != NULL || frag != NULL) {
    snprintf(err, errlen, "url must not have a query or fragment");
    goto done;
  }
  if (strcmp(scheme, "https") == 0) {
    t->tls = 1;
  } else if (strcmp(scheme, "http") == 0) {
    if (!is_loopback(host)) {
      snprintf(err, errlen, "url must use https: plain http is allowed only to a loopback host, "
                            "and credentials would cross the network in clear");
      goto done;
    }
    t->tls = 0;
  } else {
    snprintf(err, errlen, "url scheme must be https");
    goto done;
  }
  plen = path ? strlen(path) : 0;
  while (plen > 0 && path[plen - 1] == '/') plen--;
  if (cpt_buf_adds(&base, scheme) || cpt_buf_adds(&base, "://") || cpt_buf_adds(&base, host) ||
      (port && cpt_buf_addf(&base, ":%s", port)) || cpt_buf_add(&base, path ? path : "", plen)) {
    snprintf(err, errlen, "out of memory");
    rc = -2;
    goto done;
  }
  free(t->base);
  free(t->host);
  t->base = base.p;
  base.p = NULL;
  t->host = cpt_strdup(host, strlen(host));
  t->port = atoi(dport);
  if (t->host == NULL) {
    snprintf(err, errlen, "out of memory");
    rc = -2;
    goto done;
  }
  rc = 0;
done:
  cpt_buf_free(&base);
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_free(dport);
  curl_free(path);
  curl_free(query);
  curl_free(frag);
  curl_free(userinfo);
  curl_free(pass);
  curl_url_cleanup(u);
  return rc;
}

void cpt_request_free(cpt_request_t *rq) {
  cpt_buf_free(&rq->url);
  cpt_buf_free(&rq->body);
  cpt_buf_free(&rq->auth);
  cpt_buf_free(&rq->otp);
}

static int build_auth(cpt_request_t *rq, const cpt_target_t *t) {
  cpt_buf_t pair = {0};
  int rc = 0;
  switch (t->cred) {
  case CPT_CRED_TOKEN:
    rc = cpt_buf_adds(&rq->auth, "Authorization: cpanel ") || cpt_buf_adds(&rq->auth, t->user) ||
         cpt_buf_add(&rq->auth, ":", 1) || cpt_buf_adds(&rq->auth, t->secret);
    break;
  case CPT_CRED_WHM:
    rc = cpt_buf_adds(&rq->auth, "Authorization: whm ") ||
         cpt_buf_adds(&rq->auth, t->whm_user) || cpt_buf_add(&rq->auth, ":", 1) ||
         cpt_buf_adds(&rq->auth, t->secret);
    break;
  case CPT_CRED_PASSWORD:
    rc = cpt_buf_adds(&pair, t->user) || cpt_buf_add(&pair, ":", 1) ||
         cpt_buf_adds(&pair, t->secret) || cpt_buf_adds(&rq->auth, "Authorization: Basic ") ||
         cpt_buf_addb64(&rq->auth, (const unsigned char *)pair.p, pair.len);
    cpt_buf_free(&pair);
    if (rc == 0 && t->otp != NULL)
      rc = cpt_buf_adds(&rq->otp, "X-CPANEL-OTP: ") || cpt_buf_adds(&rq->otp, t->otp);
    break;
  }
  return rc ? -1 : 0;
}

static int check_name_arg(const char *what, const char *s, size_t n, char *err, size_t errlen) {
  char q[128];
  if (cpt_check_name(s, n) == 0) return 0;
  cpt_quote(q, sizeof q, s, n);
  snprintf(err, errlen,
           "invalid %s %s: a token name is 1 to %d characters from A-Z a-z 0-9 _ -", what, q,
           CPT_NAME_MAX);
  return -1;
}

static int check_epoch(const char *field, long long e, long long now, char *err, size_t errlen) {
  if (e < 0 || e > CPT_EXPIRES_MAX) {
    snprintf(err, errlen, "%s %lld is out of range (0 < %s <= %lld)", field, e, field,
             CPT_EXPIRES_MAX);
    return -1;
  }
  if (e <= now) {
    snprintf(err, errlen, "%s %lld is not in the future (now is %lld)", field, e, now);
    return -1;
  }
  return 0;
}

/*
 * Checks each argument against its parameter and keeps what decoding needs
 * (names, epochs) in rq->vals; then the operation's own check. 0 or -1.
 */
static int check_args(cpt_request_t *rq, const cpt_arg_t *args, long long now, char *err,
                      size_t errlen) {
  const cpt_op_t *op = rq->op;
  int i;
  for (i = 0; op->params[i].field; i++) {
    const cpt_param_t *p = &op->params[i];
    const cpt_arg_t *a = &args[i];
    if (p->type == CPT_PT_NAME && (a->given || p->required)) {
      const char *s = a->given && a->s ? a->s : "";
      size_t n = a->given && a->s ? a->len : 0;
      if (check_name_arg(p->what, s, n, err, errlen)) return -1;
      memcpy(rq->vals[i].s, s, n);
      rq->vals[i].s[n] = '\0';
    } else if ((p->type == CPT_PT_EPOCH || p->type == CPT_PT_EPOCH0) && a->given && a->n != 0) {
      if (check_epoch(p->field, a->n, now, err, errlen)) return -1;
      rq->vals[i].n = a->n;
    }
  }
  return op->check ? op->check(rq, args, err, errlen) : 0;
}

/* Appends "&key=value" (or "key=value" at the start) to b, value encoded. */
static int add_param(cpt_buf_t *b, const char *key, const char *v, size_t n) {
  if (b->len && cpt_buf_add(b, "&", 1)) return -1;
  if (cpt_buf_adds(b, key) || cpt_buf_add(b, "=", 1)) return -1;
  return cpt_buf_addenc(b, v, n);
}

/* Appends the arguments given, encoded, to b (a form body or a query). 0 or -1. */
static int add_args(cpt_buf_t *b, const cpt_request_t *rq, const cpt_arg_t *args) {
  const cpt_op_t *op = rq->op;
  char num[32], key[96];
  size_t k;
  int i, n;
  for (i = 0; op->params[i].field; i++) {
    const cpt_param_t *p = &op->params[i];
    const cpt_arg_t *a = &args[i];
    if (p->type == CPT_PT_NAME) {
      if ((a->given || p->required) &&
          add_param(b, p->wire, rq->vals[i].s, strlen(rq->vals[i].s)))
        return -1;
    } else if (p->type == CPT_PT_EPOCH || p->type == CPT_PT_EPOCH0) {
      n = snprintf(num, sizeof num, "%lld", rq->vals[i].n);
      if ((rq->vals[i].n || (p->type == CPT_PT_EPOCH0 && a->given)) &&
          add_param(b, p->wire, num, (size_t)n))
        return -1;
    } else if (p->type == CPT_PT_LIST) {
      for (k = 0; a->given && k < a->count; k++) {
        snprintf(key, sizeof key, "%s-%lu", p->wire, (unsigned long)k);
        if (add_param(b, key, a->items[k], a->lens[k])) return -1;
      }
    } else if (a->given && add_param(b, p->wire, a->s, a->len)) {
      return -1;
    }
  }
  return 0;
}

/* The URL of rq's operation against t, up to its fixed query. 0 or -1. */
static int add_path(cpt_buf_t *u, const cpt_request_t *rq, const cpt_target_t *t) {
  const cpt_op_t *op = rq->op;
  int oom = cpt_buf_adds(u, t->base);
  if (op->family == CPT_FAM_WHM1) {
    oom = oom || cpt_buf_adds(u, "/json-api/") || cpt_buf_adds(u, op->func) ||
          cpt_buf_adds(u, "?api.version=1");
  } else if (rq->whm) {
    oom = oom || cpt_buf_adds(u, "/json-api/cpanel?cpanel_jsonapi_user=") ||
          cpt_buf_addenc(u, t->user, strlen(t->user)) ||
          cpt_buf_adds(u, "&cpanel_jsonapi_apiversion=3&cpanel_jsonapi_module=") ||
          cpt_buf_adds(u, op->module) || cpt_buf_adds(u, "&cpanel_jsonapi_func=") ||
          cpt_buf_adds(u, op->func);
  } else {
    oom = oom || cpt_buf_adds(u, "/execute/") || cpt_buf_adds(u, op->module) ||
          cpt_buf_add(u, "/", 1) || cpt_buf_adds(u, op->func);
  }
  if (op->query)
    oom = oom || cpt_buf_add(u, strchr(u->p, '?') ? "&" : "?", 1) || cpt_buf_adds(u, op->query);
  return oom ? -1 : 0;
}

/* Resets rq for op against t: the buffers wiped, the decoding context set. */
static void reset(cpt_request_t *rq, const cpt_target_t *t, const cpt_op_t *op) {
  cpt_buf_clear(&rq->url);
  cpt_buf_clear(&rq->body);
  cpt_buf_clear(&rq->auth);
  cpt_buf_clear(&rq->otp);
  rq->op = op;
  rq->post = op->post;
  rq->whm = t->cred == CPT_CRED_WHM;
  rq->cred = t->cred;
  snprintf(rq->user, sizeof rq->user, "%s", t->user ? t->user : "");
  snprintf(rq->whm_user, sizeof rq->whm_user, "%s", t->whm_user ? t->whm_user : "");
  memset(rq->vals, 0, sizeof rq->vals);
}

int cpt_request_build(cpt_request_t *rq, const cpt_target_t *t, const cpt_op_t *op,
                      const cpt_arg_t *args, long long now, char *err, size_t errlen) {
  cpt_buf_t query = {0};
  int oom;
  reset(rq, t, op);
  if (op->family == CPT_FAM_WHM1 && t->cred != CPT_CRED_WHM &&
      !(t->cred == CPT_CRED_PASSWORD && t->whm_account)) {
    snprintf(err, errlen, "this is a WHM API 1 call: it needs a WHM credential (whm_token)");
    return -1;
  }
  if (check_args(rq, args, now, err, errlen)) return -1;
  /* The URL names the function; parameters go in a POST's form body, or a GET's query. */
  oom = add_path(&rq->url, rq, t);
  if (op->post) {
    oom = oom || add_args(&rq->body, rq, args);
  } else {
    oom = oom || add_args(&query, rq, args);
    if (!oom && query.len)
      oom = cpt_buf_add(&rq->url, strchr(rq->url.p, '?') ? "&" : "?", 1) ||
            cpt_buf_add(&rq->url, query.p, query.len);
  }
  cpt_buf_free(&query);
  oom = oom || build_auth(rq, t);
  if (oom) {
    snprintf(err, errlen, "out of memory");
    cpt_request_free(rq);
    return -2;
  }
  return 0;
}
