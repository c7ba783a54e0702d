/*
 * curl.c: the libcurl transport. It only moves bytes: a built request out,
 * (status, content type, body) back; it knows nothing of JSON or cPanel.
 *
 * One easy handle per client, reused, so sequential calls share one
 * keep-alive connection and one loaded CA store. No Lua here: nothing can
 * longjmp across a libcurl frame.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cptokens.h"

/* The one gate for options newer than Debian 12's curl 7.88. */
#define CPT_CURL_AT_LEAST(maj, min) (LIBCURL_VERSION_NUM >= (((maj) << 16) | ((min) << 8)))

struct cpt_curl {
  CURL *easy;
  cpt_buf_t body;
  size_t max_response;
  int overflow;
  char errbuf[CURL_ERROR_SIZE];
};

static size_t on_write(char *p, size_t size, size_t n, void *ud) {
  cpt_curl_t *c = ud;
  size_t len = size * n;
  if (c->body.len + len > c->max_response) {
    c->overflow = 1;
    return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
  }
  if (cpt_buf_add(&c->body, p, len) != 0) return 0;
  return len;
}

#define SETOPT(opt, val)                                                  \
  do {                                                                    \
    if (curl_easy_setopt(c->easy, (opt), (val)) != CURLE_OK) goto fail;  \
  } while (0)

cpt_curl_t *cpt_curl_new(const cpt_opts_t *o, char *msg, size_t msglen) {
  cpt_curl_t *c = calloc(1, sizeof *c);
  if (c == NULL) {
    snprintf(msg, msglen, "out of memory");
    return NULL;
  }
  c->max_response = o->max_response;
  c->easy = curl_easy_init();
  if (c->easy == NULL) goto fail;
  SETOPT(CURLOPT_NOSIGNAL, 1L);
  SETOPT(CURLOPT_ERRORBUFFER, c->errbuf);
  SETOPT(CURLOPT_WRITEFUNCTION, on_write);
  SETOPT(CURLOPT_WRITEDATA, c);
  SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
  SETOPT(CURLOPT_TIMEOUT_MS, o->timeout_ms);
  SETOPT(CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
  SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
  SETOPT(CURLOPT_USERAGENT, "cptokens/" CPT_VERSION);
  SETOPT(CURLOPT_ACCEPT_ENCODING, "");
#if CPT_CURL_AT_LEAST(7, 85)
  SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
  SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  if (o->insecure) {
    SETOPT(CURLOPT_SSL_VERIFYPEER, 0L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 0L);
  } else {
    SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
    if (o->cafile) SETOPT(CURLOPT_CAINFO, o->cafile);
    if (o->capath) SETOPT(CURLOPT_CAPATH, o->capath);
  }
  return c;
fail:
  snprintf(msg, msglen, "libcurl could not set up a handle");
  cpt_curl_free(c);
  return NULL;
}

void cpt_curl_free(cpt_curl_t *c) {
  if (c == NULL) return;
  if (c->easy) curl_easy_cleanup(c->easy);
  cpt_buf_free(&c->body);
  free(c);
}

/* Wipes and frees a header list (it held the Authorization header). */
static void free_headers(struct curl_slist *h) {
  struct curl_slist *i;
  for (i = h; i != NULL; i = i->next) cpt_wipe(i->data, strlen(i->data));
  curl_slist_free_all(h);
}

static const char *error_kind(CURLcode rc) {
  switch (rc) {
  case CURLE_OPERATION_TIMEDOUT:
    return CPT_ETIMEOUT;
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_USE_SSL_FAILED:
    return CPT_ETLS;
  case CURLE_WEIRD_SERVER_REPLY:
  case CURLE_UNSUPPORTED_PROTOCOL:
  case CURLE_BAD_CONTENT_ENCODING:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
    return CPT_EPROTOCOL;
  default:
    return CPT_ENETWORK;
  }
}

const char *cpt_curl_perform(cpt_curl_t *c, const cpt_request_t *rq, cpt_reply_t *out,
                             char *msg, size_t msglen) {
  struct curl_slist *h = NULL, *t;
  const char *kind = NULL;
  char *ctype = NULL;
  CURLcode rc;
  long status = 0;

  cpt_buf_clear(&c->body);
  c->overflow = 0;
  c->errbuf[0] = '\0';
  memset(out, 0, sizeof *out);

  /* curl copies each line; those copies are wiped and freed right after. */
  h = curl_slist_append(NULL, rq->auth.p ? rq->auth.p : "Authorization:");
  if (h && rq->otp.len && (t = curl_slist_append(h, rq->otp.p)) != NULL) h = t;
  if (h && (t = curl_slist_append(h, "Accept: application/json")) != NULL) h = t;
  if (h == NULL) {
    snprintf(msg, msglen, "out of memory");
    return CPT_ENETWORK;
  }
  if (curl_easy_setopt(c->easy, CURLOPT_URL, rq->url.p) != CURLE_OK ||
      curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, h) != CURLE_OK) {
    snprintf(msg, msglen, "libcurl refused the request URL");
    kind = CPT_EINVALID;
    goto done;
  }
  if (rq->post) {
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE, (long)rq->body.len);
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, rq->body.p ? rq->body.p : "");
  } else {
    curl_easy_setopt(c->easy, CURLOPT_HTTPGET, 1L);
  }

  rc = curl_easy_perform(c->easy);

  if (rc != CURLE_OK) {
    if (c->overflow) {
      snprintf(msg, msglen, "the reply is larger than max_response (%lu bytes); cut off",
               (unsigned long)c->max_response);
      kind = CPT_EPROTOCOL;
    } else {
      kind = error_kind(rc);
      snprintf(msg, msglen, "%s", c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
    }
    goto done;
  }
  curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(c->easy, CURLINFO_CONTENT_TYPE, &ctype);
  out->status = status;
  out->ctype = ctype;
  out->body = c->body.p ? c->body.p : "";
  out->len = c->body.len;
done:
  curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, NULL);
  if (rq->post) curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, NULL);
  free_headers(h);
  return kind;
}

void cpt_curl_open(lua_State *L) {
  static int initialised = 0;
  curl_version_info_data *v;
  if (!initialised) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    initialised = 1;
  }
  v = curl_version_info(CURLVERSION_NOW);
  lua_pushstring(L, v->version);
  lua_setfield(L, -2, "curl_version");
}
