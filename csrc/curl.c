/*
 * curl.c: the libcurl transport. It only moves bytes: a built request out,
 * (status, content type, body) back; it knows nothing of JSON or cPanel.
 *
 * One easy handle per client, reused. Its trust anchors and connections
 * come from a pool shared with the other clients that have the same trust
 * settings (trust.c): the CA store is loaded once per process, and clients
 * of one host reuse each other's keep-alive connections. No Lua here:
 * nothing can longjmp across a libcurl frame.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "cptokens.h"

struct cpt_curl {
  CURL *easy;          /* configured once with the client's options */
  cpt_trust_t *trust;  /* its pool: trust anchors, shared connections (trust.c) */
  cpt_xfer_t x;        /* the client's own transfer; x.easy == easy */
};

static size_t on_write(char *p, size_t size, size_t n, void *ud) {
  cpt_xfer_t *x = ud;
  size_t len = size * n;
  if (x->body.len + len > x->max_response) {
    x->overflow = 1;
    return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
  }
  if (cpt_buf_add(&x->body, p, len) != 0) return 0;
  return len;
}

/*
 * Hands libcurl the form body of a POST. There is deliberately no seek
 * callback: when a reused connection dies after the body went out, libcurl
 * would otherwise rewind and send the request again on a fresh connection.
 * That is right for list (a GET) but a blind retry of create, rename or
 * revoke, which the server may already have carried out. Unable to rewind,
 * libcurl fails the transfer instead (CURLE_SEND_FAIL_REWIND: "network").
 */
static size_t on_read(char *p, size_t size, size_t n, void *ud) {
  cpt_xfer_t *x = ud;
  size_t len = x->form_len - x->form_off;
  if (len > size * n) len = size * n;
  if (len) memcpy(p, x->form + x->form_off, len);
  x->form_off += len;
  return len;
}

#define SETOPT(opt, val)                                                  \
  do {                                                                    \
    if (curl_easy_setopt(c->easy, (opt), (val)) != CURLE_OK) goto fail;  \
  } while (0)

cpt_curl_t *cpt_curl_new(const cpt_opts_t *o, char *msg, size_t msglen) {
  cpt_curl_t *c = calloc(1, sizeof *c);
  if (c == NULL) {
    cpt_trust_release(o->trust);
    snprintf(msg, msglen, "out of memory");
    return NULL;
  }
  c->trust = o->trust;
  c->x.max_response = o->max_response;
  c->easy = curl_easy_init();
  if (c->easy == NULL) goto fail;
  c->x.easy = c->easy;
  SETOPT(CURLOPT_NOSIGNAL, 1L);
  SETOPT(CURLOPT_ERRORBUFFER, c->x.errbuf);
  SETOPT(CURLOPT_WRITEFUNCTION, on_write);
  SETOPT(CURLOPT_WRITEDATA, &c->x);
  SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
  SETOPT(CURLOPT_TIMEOUT_MS, o->timeout_ms);
  SETOPT(CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
#if CPT_CURL_AT_LEAST(7, 87)
  /*
   * A name lookup that outlives the timeout (a DNS server that never answers)
   * is abandoned rather than waited for: without this libcurl joins its
   * resolver thread when the transfer ends, and getaddrinfo() may block for
   * the resolver's own timeouts (10 s and more), far beyond `timeout`. The
   * thread is detached and frees its own data when getaddrinfo() returns.
   */
  SETOPT(CURLOPT_QUICK_EXIT, 1L);
#endif
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
  }
  /* The anchors (o->cafile, o->capath or the system store) and the share. */
  if (c->trust == NULL || cpt_trust_setup(c->trust, c->easy) != 0) goto fail;
  return c;
fail:
  snprintf(msg, msglen, "libcurl could not set up a handle");
  cpt_curl_free(c);
  return NULL;
}

void cpt_curl_free(cpt_curl_t *c) {
  if (c == NULL) return;
  /* The handle first: its connection goes back to the pool's share. */
  if (c->easy) curl_easy_cleanup(c->easy);
  c->x.easy = NULL;
  cpt_xfer_release(&c->x);
  cpt_trust_release(c->trust);
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

/* Frees what a transfer holds (its easy handle only when it is a batch copy). */
void cpt_xfer_release(cpt_xfer_t *x) {
  if (x->headers) free_headers(x->headers);
  x->headers = NULL;
  if (x->easy) curl_easy_cleanup(x->easy);
  x->easy = NULL;
  cpt_buf_free(&x->body);
}

/* Sets up x->easy for rq; 0, or -1 with the outcome set. */
static int xfer_begin(cpt_xfer_t *x, const cpt_request_t *rq) {
  struct curl_slist *h, *t;
  CURL *easy = x->easy;
  cpt_buf_clear(&x->body);
  x->overflow = 0;
  x->errbuf[0] = '\0';
  x->kind = NULL;
  x->msg[0] = x->ctype[0] = '\0';
  x->status = 0;
  /* curl copies each line; those copies are wiped and freed when the transfer ends. */
  h = curl_slist_append(NULL, rq->auth.p ? rq->auth.p : "Authorization:");
  if (h && rq->otp.len && (t = curl_slist_append(h, rq->otp.p)) != NULL) h = t;
  if (h && (t = curl_slist_append(h, "Accept: application/json")) != NULL) h = t;
  x->headers = h;
  if (h == NULL) {
    x->kind = CPT_ENETWORK;
    snprintf(x->msg, sizeof x->msg, "out of memory");
    return -1;
  }
  if (curl_easy_setopt(easy, CURLOPT_URL, rq->url.p) != CURLE_OK ||
      curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h) != CURLE_OK) {
    x->kind = CPT_EINVALID;
    snprintf(x->msg, sizeof x->msg, "libcurl refused the request URL");
    return -1;
  }
  if (rq->post) {
    x->form = rq->body.p ? rq->body.p : "";
    x->form_len = rq->body.len;
    x->form_off = 0;
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(easy, CURLOPT_READDATA, x);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long)rq->body.len);
  } else {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  }
  return 0;
}

/* Records the outcome of a finished transfer and drops its headers. */
static void xfer_end(cpt_xfer_t *x, CURLcode rc) {
  CURL *easy = x->easy;
  char *ctype = NULL;
  if (rc != CURLE_OK) {
    if (x->overflow) {
      x->kind = CPT_EPROTOCOL;
      snprintf(x->msg, sizeof x->msg, "the reply is larger than max_response (%lu bytes); cut off",
               (unsigned long)x->max_response);
    } else {
      x->kind = error_kind(rc);
      snprintf(x->msg, sizeof x->msg, "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
    }
  } else {
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &x->status);
    curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &ctype);
    snprintf(x->ctype, sizeof x->ctype, "%s", ctype ? ctype : "");
  }
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, NULL);
  x->form = NULL;
  x->form_len = x->form_off = 0;
  if (x->headers) free_headers(x->headers);
  x->headers = NULL;
}

/* Loads the trust anchors of the client's pool if needed; 0, or -1 with x's outcome set. */
static int trust_ready(cpt_curl_t *c, cpt_xfer_t *x) {
  if (cpt_trust_load(c->trust, x->msg, sizeof x->msg) == 0) return 0;
  x->kind = CPT_ETLS;
  return -1;
}

cpt_xfer_t *cpt_curl_perform(cpt_curl_t *c, const cpt_request_t *rq) {
  if (trust_ready(c, &c->x) != 0) {
    cpt_buf_clear(&c->x.body);
    c->x.status = 0;
    c->x.ctype[0] = '\0';
    return &c->x;
  }
  if (xfer_begin(&c->x, rq) == 0) {
    xfer_end(&c->x, curl_easy_perform(c->easy));
  } else {
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, NULL);
    if (c->x.headers) free_headers(c->x.headers);
    c->x.headers = NULL;
  }
  return &c->x;
}

void cpt_curl_wipe_reply(cpt_curl_t *c) {
  cpt_buf_clear(&c->x.body);
}

/* ---- batches: one multi handle, bounded concurrency ------------------------- */

/* Releases a batch job's copy of the handle and its headers. */
static void drop_handle(cpt_xfer_t *x) {
  if (x->headers) free_headers(x->headers);
  x->headers = NULL;
  if (x->easy) curl_easy_cleanup(x->easy);
  x->easy = NULL;
}

static void fail_all(cpt_job_t *jobs, size_t n, const char *msg) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (jobs[i].skip || jobs[i].x.kind || jobs[i].x.status) continue;
    jobs[i].x.kind = CPT_ENETWORK;
    snprintf(jobs[i].x.msg, sizeof jobs[i].x.msg, "%s", msg);
  }
}

/*
 * Starts job j on a copy of its client's handle, in the share of its client's
 * pool (connections, TLS sessions and DNS of the clients with the same trust
 * settings); 0, or -1 with its outcome set.
 */
static int start_job(CURLM *multi, cpt_job_t *j) {
  cpt_xfer_t *x = &j->x;
  CURL *easy;
  x->max_response = j->client->x.max_response;
  if (trust_ready(j->client, x) != 0) return -1;
  easy = curl_easy_duphandle(j->client->easy);
  if (easy == NULL) {
    x->kind = CPT_ENETWORK;
    snprintf(x->msg, sizeof x->msg, "out of memory");
    return -1;
  }
  x->easy = easy;
  /* The copy still points at the client's buffers: point it at this job's. */
  if (curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, x->errbuf) != CURLE_OK ||
      curl_easy_setopt(easy, CURLOPT_WRITEDATA, x) != CURLE_OK ||
      curl_easy_setopt(easy, CURLOPT_PRIVATE, (void *)j) != CURLE_OK ||
      curl_easy_setopt(easy, CURLOPT_SHARE, cpt_trust_share(j->client->trust)) != CURLE_OK) {
    x->kind = CPT_ENETWORK;
    snprintf(x->msg, sizeof x->msg, "libcurl could not set up a transfer");
    return -1;
  }
  if (xfer_begin(x, j->rq) != 0) return -1;
  if (curl_multi_add_handle(multi, easy) != CURLM_OK) {
    xfer_end(x, CURLE_OK);
    x->kind = CPT_ENETWORK;
    snprintf(x->msg, sizeof x->msg, "libcurl could not start a transfer");
    return -1;
  }
  return 0;
}

/* Whether a finished transfer was a refusal of its credential (a failed login). */
static int refused(const cpt_xfer_t *x) {
  const char *c;
  size_t i = 0;
  if (x->kind != NULL) return 0;
  if (x->status == 401 || x->status == 403) return 1;
  if (x->status != 200) return 0;
  /* a login page instead of JSON: the front end did not take the credential (read as the
   * decoder reads it: an html content type, any case, or a body that starts with '<') */
  for (c = x->ctype; *c; c++)
    if (strncasecmp(c, "html", 4) == 0) return 1;
  while (i < x->body.len && strchr(" \t\r\n", x->body.p[i]) != NULL) i++;
  return i < x->body.len && x->body.p[i] == '<';
}

/* Marks a job its gate holds back after a refusal: never sent, kind auth. */
static void hold_back(cpt_job_t *j) {
  cpt_xfer_t *x = &j->x;
  x->not_sent = 1;
  x->kind = CPT_EAUTH;
  snprintf(x->msg, sizeof x->msg,
           "not sent: an earlier request of this batch to the same server with the same "
           "credential was refused (HTTP %ld); no further login is tried there, as cPanel "
           "(cPHulk) locks an address out after a few failed ones",
           j->gate->status);
}

/* Records how a job's transfer ended in its gate. */
static void gate_done(cpt_job_t *j) {
  cpt_gate_t *g = j->gate;
  if (g == NULL || g->state == CPT_GATE_CLOSED) return;
  if (refused(&j->x)) {
    g->state = CPT_GATE_CLOSED;
    g->status = j->x.status;
  } else if (j->x.kind == NULL) {
    g->state = CPT_GATE_OPEN; /* the credential was taken: the others may go */
  } else if (g->state == CPT_GATE_PROBING) {
    g->state = CPT_GATE_UNTRIED; /* no answer about the credential: the next job probes */
  }
}

/*
 * The next job that may start, from *next on, or NULL: jobs whose gate is
 * closed are held back as they are passed; jobs whose gate is probing wait, as
 * do jobs whose server has per_server (when not 0) in flight.
 * *next moves past every job that is done with.
 */
static cpt_job_t *next_job(cpt_job_t *jobs, size_t n, size_t *next, int per_server) {
  size_t i;
  int waiting = 0;
  for (i = *next; i < n; i++) {
    cpt_job_t *j = &jobs[i];
    cpt_gate_t *g = j->gate;
    if (j->skip || j->started) {
      if (!waiting) *next = i + 1;
      continue;
    }
    if (g != NULL && g->state == CPT_GATE_CLOSED) {
      j->started = 1;
      hold_back(j);
      if (!waiting) *next = i + 1;
      continue;
    }
    if ((g != NULL && g->state == CPT_GATE_PROBING) ||
        (per_server > 0 && j->host != NULL && j->host->active >= per_server)) {
      waiting = 1;
      continue;
    }
    if (g != NULL && g->state == CPT_GATE_UNTRIED) g->state = CPT_GATE_PROBING;
    j->started = 1;
    if (!waiting) *next = i + 1;
    return j;
  }
  return NULL;
}

int cpt_curl_batch(cpt_job_t *jobs, size_t n, int concurrency, int per_server) {
  CURLM *multi = curl_multi_init();
  size_t next = 0;
  int running = 0, active = 0, finished, rc = 0;
  if (multi == NULL) {
    fail_all(jobs, n, "libcurl could not set up a batch");
    rc = -1;
    goto done;
  }
  curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)concurrency);
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)concurrency);
  /* Idle connections kept (in the pools' shares) for the calls after the batch. */
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)concurrency);
  for (;;) {
    CURLMsg *m;
    int left;
    cpt_job_t *j;
    while (active < concurrency && (j = next_job(jobs, n, &next, per_server)) != NULL) {
      if (start_job(multi, j) == 0) {
        active++;
        if (j->host) j->host->active++;
      } else {
        drop_handle(&j->x);
        gate_done(j);
      }
    }
    if (active == 0) {
      /* nothing in flight: what is left is startable now or held back */
      if (next >= n) break;
      continue;
    }
    if (curl_multi_perform(multi, &running) != CURLM_OK) {
      fail_all(jobs, n, "libcurl failed while running the batch");
      rc = -1;
      break;
    }
    finished = 0;
    while ((m = curl_multi_info_read(multi, &left)) != NULL) {
      cpt_job_t *d = NULL;
      if (m->msg != CURLMSG_DONE) continue;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&d);
      curl_multi_remove_handle(multi, m->easy_handle);
      xfer_end(&d->x, m->data.result);
      drop_handle(&d->x);
      gate_done(d);
      if (d->host) d->host->active--;
      active--;
      finished++;
    }
    /* Freed slots take the next jobs now, not after the next socket event. */
    if (finished && next < n) continue;
    if (active == 0) continue;
    if (active > 0 && running > 0 && curl_multi_poll(multi, NULL, 0, 1000, NULL) != CURLM_OK) {
      fail_all(jobs, n, "libcurl failed while waiting in the batch");
      rc = -1;
      break;
    }
  }
done:
  /* Anything still attached (only after a failure) is detached and released. */
  for (next = 0; next < n; next++) {
    cpt_xfer_t *x = &jobs[next].x;
    if (x->easy && multi) curl_multi_remove_handle(multi, x->easy);
    drop_handle(x);
  }
  if (multi) curl_multi_cleanup(multi);
  return rc;
}

/*
 * The certificate a TLS server presents for url, read without verifying it and without
 * sending any request (CURLOPT_CONNECT_ONLY): the command-line tool names the issuer and
 * the names of a certificate that failed verification. Appends "Subject:...", "Issuer:..."
 * and "X509v3 Subject Alternative Name:..." lines of the leaf certificate to out. 0, or -1
 * with err filled.
 */
int cpt_curl_peer_cert(const char *url, long timeout_ms, cpt_buf_t *out, char *err, size_t errlen) {
  static const char *const wanted[] = {"Subject:", "Issuer:", "X509v3 Subject Alternative Name:", NULL};
  struct curl_certinfo *ci = NULL;
  struct curl_slist *f;
  CURLcode rc;
  CURL *e = curl_easy_init();
  int i;
  if (!e) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  curl_easy_setopt(e, CURLOPT_CERTINFO, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROXY, "");
  rc = curl_easy_perform(e);
  if (rc == CURLE_OK) rc = curl_easy_getinfo(e, CURLINFO_CERTINFO, &ci);
  if (rc != CURLE_OK || !ci || ci->num_of_certs < 1) {
    snprintf(err, errlen, "%s", rc != CURLE_OK ? curl_easy_strerror(rc) : "no certificate");
    curl_easy_cleanup(e);
    return -1;
  }
  for (f = ci->certinfo[0]; f; f = f->next) {
    for (i = 0; wanted[i]; i++) {
      if (strncmp(f->data, wanted[i], strlen(wanted[i])) == 0 &&
          (cpt_buf_adds(out, f->data) != 0 || cpt_buf_add(out, "\n", 1) != 0)) {
        snprintf(err, errlen, "out of memory");
        curl_easy_cleanup(e);
        return -1;
      }
    }
  }
  curl_easy_cleanup(e);
  return 0;
}

/* The oldest libcurl with every function the module calls: curl_multi_poll came in 7.66.0.
 * The module is bound lazily (csrc/loader/core.c): a libcurl without one of them would stop
 * the process where it is first called, so an older one is refused here, at require. */
#define CPT_CURL_NEEDS 0x074200
#define CPT_CURL_NEEDS_TEXT "7.66.0"

void cpt_curl_open(lua_State *L) {
  static int initialised = 0;
  curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  if (v == NULL || v->version_num < CPT_CURL_NEEDS)
    luaL_error(L, "cptokens.core needs libcurl " CPT_CURL_NEEDS_TEXT " or later; this process has libcurl %s",
               v && v->version ? v->version : "of an unknown version");
  if (!initialised) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    initialised = 1;
  }
  lua_pushstring(L, v->version);
  lua_setfield(L, -2, "curl_version");
}
