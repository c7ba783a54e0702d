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

static const char *const op_names[] = {"create", "list", "rename", "revoke"};
static const char *const op_funcs[] = {"create_full_access", "list", "rename", "revoke"};

const char *cpt_op_name(cpt_op_t op) {
  return op_names[op];
}

int cpt_op_parse(const char *s, cpt_op_t *op) {
  int i;
  for (i = 0; i < 4; i++) {
    if (strcmp(s, op_names[i]) == 0) {
      *op = (cpt_op_t)i;
      return 0;
    }
  }
  return -1;
}

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

/* Appends "&key=value" (or "key=value" at the start) to b, value encoded. */
static int add_param(cpt_buf_t *b, const char *key, const char *v, size_t n) {
  if (b->len && cpt_buf_add(b, "&", 1)) return -1;
  if (cpt_buf_adds(b, key) || cpt_buf_add(b, "=", 1)) return -1;
  return cpt_buf_addenc(b, v, n);
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

int cpt_request_build(cpt_request_t *rq, const cpt_target_t *t, cpt_op_t op, const char *name,
                      size_t name_len, const char *new_name, size_t new_len,
                      long long expires_at, long long now, char *err, size_t errlen) {
  cpt_buf_t *params = &rq->body;
  const char *func = op_funcs[op];
  int oom;

  cpt_buf_clear(&rq->url);
  cpt_buf_clear(&rq->body);
  cpt_buf_clear(&rq->auth);
  cpt_buf_clear(&rq->otp);
  rq->op = op;
  rq->post = op != CPT_OP_LIST;
  rq->whm = t->cred == CPT_CRED_WHM;
  rq->cred = t->cred;
  snprintf(rq->user, sizeof rq->user, "%s", t->user ? t->user : "");
  snprintf(rq->whm_user, sizeof rq->whm_user, "%s", t->whm_user ? t->whm_user : "");
  rq->name[0] = rq->new_name[0] = '\0';
  rq->expires_at = 0;

  if (op != CPT_OP_LIST) {
    if (name == NULL) name = "", name_len = 0;
    if (check_name_arg(op == CPT_OP_RENAME ? "current name" : "token name", name, name_len, err,
                       errlen))
      return -1;
    memcpy(rq->name, name, name_len);
    rq->name[name_len] = '\0';
  }
  if (op == CPT_OP_RENAME) {
    if (new_name == NULL) new_name = "", new_len = 0;
    if (check_name_arg("new name", new_name, new_len, err, errlen)) return -1;
    if (new_len == name_len && memcmp(name, new_name, name_len) == 0) {
      snprintf(err, errlen, "the new name must differ from the current name \"%s\"", rq->name);
      return -1;
    }
    memcpy(rq->new_name, new_name, new_len);
    rq->new_name[new_len] = '\0';
  }
  if (op == CPT_OP_CREATE && expires_at != 0) {
    if (expires_at < 0 || expires_at > CPT_EXPIRES_MAX) {
      snprintf(err, errlen, "expires_at %lld is out of range (0 < expires_at <= %lld)",
               expires_at, CPT_EXPIRES_MAX);
      return -1;
    }
    if (expires_at <= now) {
      snprintf(err, errlen, "expires_at %lld is not in the future (now is %lld)", expires_at, now);
      return -1;
    }
    rq->expires_at = expires_at;
  }

  /* The URL names the function; parameters go in the form body (list takes none). */
  oom = cpt_buf_adds(&rq->url, t->base);
  if (rq->whm) {
    oom = oom || cpt_buf_adds(&rq->url, "/json-api/cpanel?cpanel_jsonapi_user=") ||
          cpt_buf_addenc(&rq->url, t->user, strlen(t->user)) ||
          cpt_buf_adds(&rq->url, "&cpanel_jsonapi_apiversion=3&cpanel_jsonapi_module=Tokens"
                                 "&cpanel_jsonapi_func=") ||
          cpt_buf_adds(&rq->url, func);
  } else {
    oom = oom || cpt_buf_adds(&rq->url, "/execute/Tokens/") || cpt_buf_adds(&rq->url, func);
  }
  if (op != CPT_OP_LIST) oom = oom || add_param(params, "name", rq->name, strlen(rq->name));
  if (op == CPT_OP_RENAME)
    oom = oom || add_param(params, "new_name", rq->new_name, strlen(rq->new_name));
  if (rq->expires_at) {
    char num[32];
    int n = snprintf(num, sizeof num, "%lld", rq->expires_at);
    oom = oom || add_param(params, "expires_at", num, (size_t)n);
  }
  oom = oom || build_auth(rq, t);
  if (oom) {
    snprintf(err, errlen, "out of memory");
    cpt_request_free(rq);
    return -2;
  }
  return 0;
}
