/*
 * cptokens.h: what the C files of cptokens.core share.
 *
 * Everything here is internal: the only exported symbol of the module is
 * luaopen_cptokens_core_impl (cptokens/core_impl.so, which the loader cptokens/core.so opens:
 * csrc/loader/core.c).
 */
#ifndef CPT_CPTOKENS_H
#define CPT_CPTOKENS_H

#include <stddef.h>

#include "compat.h"
#include "version.h"

#define CPT_NAME_MAX 50                       /* cPanel's limit on a token name */
#define CPT_EXPIRES_MAX 67767976233521999LL   /* largest expires_at cPanel takes */

#if defined(__GNUC__)
#define CPT_HIDDEN __attribute__((visibility("hidden")))
#define CPT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CPT_HIDDEN
#define CPT_PRINTF(f, a)
#endif

/* The one gate for libcurl options newer than Debian 12's curl 7.88 (use it
 * where <curl/curl.h> is included). */
#define CPT_CURL_AT_LEAST(maj, min) (LIBCURL_VERSION_NUM >= (((maj) << 16) | ((min) << 8)))

/* ---- growable byte buffer (buf.c) ---------------------------------------- */

typedef struct cpt_buf {
  char *p;     /* always NUL-terminated once allocated */
  size_t len;
  size_t cap;
} cpt_buf_t;

CPT_HIDDEN int cpt_buf_add(cpt_buf_t *b, const void *s, size_t n);
CPT_HIDDEN int cpt_buf_adds(cpt_buf_t *b, const char *s);
CPT_HIDDEN int cpt_buf_addf(cpt_buf_t *b, const char *fmt, ...) CPT_PRINTF(2, 3);
CPT_HIDDEN int cpt_buf_addenc(cpt_buf_t *b, const char *s, size_t n);
CPT_HIDDEN int cpt_buf_addb64(cpt_buf_t *b, const unsigned char *s, size_t n);
CPT_HIDDEN void cpt_buf_clear(cpt_buf_t *b);  /* wipes, keeps the memory */
CPT_HIDDEN void cpt_buf_free(cpt_buf_t *b);   /* wipes and frees */
CPT_HIDDEN void cpt_wipe(void *p, size_t n);
CPT_HIDDEN char *cpt_strdup(const char *s, size_t n);
CPT_HIDDEN void cpt_free_secret(char **s);

/* ---- errors (error.c) ------------------------------------------------------- */

/* The kinds of the public contract. */
#define CPT_EINVALID "invalid"
#define CPT_EAUTH "auth"
#define CPT_EAPI "api"
#define CPT_EHTTP "http"
#define CPT_ETLS "tls"
#define CPT_ETIMEOUT "timeout"
#define CPT_ENETWORK "network"
#define CPT_EPROTOCOL "protocol"

/* Pushes nil and a cptokens.Error {kind, message[, status]}; returns 2. */
CPT_HIDDEN int cpt_error(lua_State *L, const char *kind, long status, const char *fmt, ...)
    CPT_PRINTF(4, 5);
/* Like cpt_error, then sets err.errors to the table at index errors_idx. */
CPT_HIDDEN int cpt_error_with(lua_State *L, const char *kind, long status, int errors_idx,
                              const char *msg);

/* True when the value at idx is a cptokens.Error. */
CPT_HIDDEN int cpt_is_error(lua_State *L, int idx);
/* Misuse: raise "<where>: message", where is the first caller outside the
 * library's own Lua modules (cptokens/init.lua, rotate.lua, ...). */
CPT_HIDDEN void cpt_where(lua_State *L);
CPT_HIDDEN int cpt_misuse(lua_State *L, const char *fmt, ...);
CPT_HIDDEN int cpt_argerror(lua_State *L, int arg, const char *fname, const char *msg);
/* The metatable `name` (created now: returns 1; else 0), on the stack: __index =
 * the methods, __gc = __close = destroy (idempotent), __name. */
CPT_HIDDEN int cpt_class(lua_State *L, const char *name, const luaL_Reg *methods,
                         lua_CFunction destroy);

/* ---- scrubbing the credential from errors (scrub.c) ------------------------ */

#define CPT_NEEDLES_MAX 24

/* The forms of one credential to look for; they point into Lua-owned memory. */
typedef struct cpt_needles {
  const char *p[CPT_NEEDLES_MAX];
  size_t n[CPT_NEEDLES_MAX];
  int count;
} cpt_needles_t;

/*
 * Fills nd with the forms of the credential in an Authorization header value
 * ("cpanel user:token", "whm user:token", "Basic <base64>") and an OTP (each
 * may be NULL). Pushes one value, the scratch space of derived forms: nd is
 * valid while it stays on the stack (pop it after the last cpt_scrub).
 */
CPT_HIDDEN void cpt_needles(lua_State *L, cpt_needles_t *nd, const char *auth, size_t len,
                            const char *otp, size_t otp_len);
/* Replaces every needle in err.message and err.errors of the error at idx (if it is one). */
CPT_HIDDEN void cpt_scrub(lua_State *L, int idx, const cpt_needles_t *nd);

/* ---- the target of requests: where, who, with what (request.c) ------------ */

typedef enum { CPT_CRED_TOKEN, CPT_CRED_PASSWORD, CPT_CRED_WHM } cpt_cred_t;

typedef struct cpt_target {
  char *base;      /* scheme://host[:port][/prefix], no trailing slash */
  char *host;      /* as in the URL (IPv6 in brackets) */
  int port;
  int tls;         /* https */
  char *user;      /* the cPanel account acted on */
  char *whm_user;  /* the WHM account owning the WHM token */
  char *secret;    /* token, password or WHM token: wiped before free */
  char *otp;       /* two-factor code: wiped before free */
  cpt_cred_t cred;
  int whm_account; /* a password client of a WHM account (cptokens.whm): may call WHM API 1 */
} cpt_target_t;

/* ---- the table of operations (ops.c) --------------------------------------- */

/* The API an operation belongs to, which decides its path and its envelope. */
typedef enum {
  CPT_FAM_UAPI, /* /execute/<module>/<func>, or for a WHM credential /json-api/cpanel?...
                   (the UAPI object under `result`); envelope {status, data, errors} */
  CPT_FAM_WHM1  /* WHM API 1, WHM credentials only: /json-api/<func>?api.version=1;
                   envelope {data, metadata = {result, reason}} */
} cpt_family_t;

/* How a parameter is checked and encoded. */
typedef enum {
  CPT_PT_NAME,   /* a token name: 1 to CPT_NAME_MAX of A-Z a-z 0-9 _ - */
  CPT_PT_STRING, /* any string, percent-encoded */
  CPT_PT_EPOCH,  /* Unix seconds in the future, at most CPT_EXPIRES_MAX; 0: omitted */
  CPT_PT_LIST,   /* an array of strings, sent as wire-0, wire-1, ... */
  CPT_PT_EPOCH0  /* as CPT_PT_EPOCH, but a given 0 is sent (WHM's update: "never expires") */
} cpt_ptype_t;

#define CPT_PARAMS_MAX 8

typedef struct cpt_param {
  const char *field; /* its name in batch jobs and _prepare tables; NULL ends the list */
  const char *wire;  /* its name on the wire */
  const char *what;  /* what refusals call it ("current name") */
  cpt_ptype_t type;
  int required;      /* absent and required: refused (a name without it is optional) */
} cpt_param_t;

/* One argument as the caller gave it: the fields of its type. Borrowed memory. */
typedef struct cpt_arg {
  int given;
  const char *s;              /* name, string */
  size_t len;
  long long n;                /* epoch (0: never) */
  const char *const *items;   /* list */
  const size_t *lens;
  size_t count;
} cpt_arg_t;

struct cpt_request;

typedef struct cpt_op {
  const char *name;    /* "create": error prefix, batch jobs' and _prepare's op */
  const char *method;  /* the client method made from the entry ("_create") */
  cpt_family_t family;
  const char *module;  /* UAPI: the module ("Tokens") */
  const char *func;    /* the function on the wire ("create_full_access") */
  const char *query;   /* fixed query parameters ("want=user,owner"), or NULL */
  int post;            /* a POST with a form body, else a GET with a query */
  cpt_param_t params[CPT_PARAMS_MAX + 1]; /* in the order of the method's arguments */
  /* A check beyond the parameters' own, or NULL: 0, or -1 with a reason in err. */
  int (*check)(const struct cpt_request *rq, const cpt_arg_t *args, char *err, size_t errlen);
  /* Pushes what the operation returns from a successful reply's `data` (at
     index data); like cpt_response_decode, returns the number of values. */
  int (*decode)(lua_State *L, const struct cpt_request *rq, int data, long status);
} cpt_op_t;

CPT_HIDDEN extern const cpt_op_t cpt_ops[];
CPT_HIDDEN extern const int cpt_ops_count;
/* The entry named s, or NULL. */
CPT_HIDDEN const cpt_op_t *cpt_ops_find(const char *s);
/*
 * Reads the argument for parameter p from the Lua value at idx into a.
 * Returns 0, 1 when a required one is missing, 2 when it has the wrong type.
 * A list pushes one value (its scratch array, valid while it stays on the
 * stack); nothing else is pushed.
 */
CPT_HIDDEN int cpt_ops_arg(lua_State *L, int idx, const cpt_param_t *p, cpt_arg_t *a);
/* What a parameter's argument must be, for messages ("expires_at must be ..."). */
CPT_HIDDEN const char *cpt_ops_expect(const cpt_param_t *p, char *out, size_t outlen);

/* The decoders of the table's entries (decode.c). */
CPT_HIDDEN int cpt_decode_created(lua_State *L, const struct cpt_request *rq, int data, long status);
CPT_HIDDEN int cpt_decode_list(lua_State *L, const struct cpt_request *rq, int data, long status);
CPT_HIDDEN int cpt_decode_true(lua_State *L, const struct cpt_request *rq, int data, long status);
CPT_HIDDEN int cpt_decode_revoked(lua_State *L, const struct cpt_request *rq, int data, long status);
CPT_HIDDEN int cpt_decode_accounts(lua_State *L, const struct cpt_request *rq, int data, long status);
CPT_HIDDEN int cpt_decode_whm_created(lua_State *L, const struct cpt_request *rq, int data, long status);
CPT_HIDDEN int cpt_decode_whm_list(lua_State *L, const struct cpt_request *rq, int data, long status);
CPT_HIDDEN int cpt_decode_whm_token(lua_State *L, const struct cpt_request *rq, int data, long status);
CPT_HIDDEN int cpt_decode_whm_details(lua_State *L, const struct cpt_request *rq, int data, long status);

/* Loosely typed fields (decode.c). */
CPT_HIDDEN int cpt_decode_is_null(lua_State *L, int idx);
/* An epoch at idx (a whole number or a string of digits); with never_ok, null,
   "" and "0" read as 0. 0, or -1 when it is not one. */
CPT_HIDDEN int cpt_decode_epoch(lua_State *L, int idx, int never_ok, long long *out);
/* 1, "1" and true are true; everything else false. */
CPT_HIDDEN int cpt_decode_flag(lua_State *L, int idx);

/* ---- one request (request.c) -------------------------------------------------- */

/* What the decoder of a reply needs of each parameter: names and epochs. */
typedef struct cpt_value {
  char s[CPT_NAME_MAX + 1];
  long long n;
} cpt_value_t;

/* One request, built once, moved by any transport, decoded against its context. */
typedef struct cpt_request {
  const cpt_op_t *op;
  int post;                        /* POST form body, else GET */
  int whm;                         /* sent with a WHM credential (UAPI: wrapped in `result`) */
  cpt_buf_t url;
  cpt_buf_t body;
  cpt_buf_t auth;                  /* "Authorization: ..." (a secret) */
  cpt_buf_t otp;                   /* "X-CPANEL-OTP: ..." (a secret), may be empty */
  cpt_cred_t cred;                 /* context for decoding: who asked, */
  char user[256];                  /* the account acted on,            */
  char whm_user[256];              /* the WHM account of a WHM token   */
  cpt_value_t vals[CPT_PARAMS_MAX]; /* and the names and epochs sent, by parameter */
} cpt_request_t;

/* Checks and parses a URL into t->base/host/port/tls; 0 or -1 with err set. */
CPT_HIDDEN int cpt_target_url(cpt_target_t *t, const char *url, size_t len, char *err,
                              size_t errlen);
CPT_HIDDEN void cpt_target_free(cpt_target_t *t);
/* 0 when s (len n) is safe in a header: no CR, LF, NUL or other controls. */
CPT_HIDDEN int cpt_check_header_value(const char *s, size_t n);
CPT_HIDDEN int cpt_check_name(const char *s, size_t n);
/* Writes s quoted and escaped (at most 60 characters of it) into out. */
CPT_HIDDEN void cpt_quote(char *out, size_t outlen, const char *s, size_t n);

/*
 * Builds rq for op against t from args (one per parameter of op, in order);
 * now is the caller's clock. Returns 0, or -1 with a one-line reason in err
 * (kind "invalid"), or -2 when out of memory. rq is reset first (rq->op is
 * set even on a refusal); cpt_request_free releases it.
 */
CPT_HIDDEN int cpt_request_build(cpt_request_t *rq, const cpt_target_t *t, const cpt_op_t *op,
                                 const cpt_arg_t *args, long long now, char *err,
                                 size_t errlen);
CPT_HIDDEN void cpt_request_free(cpt_request_t *rq);

/* ---- decoding replies (response.c) ------------------------------------------ */

/*
 * Decodes a reply to rq and pushes what the operation returns (its value, or
 * nil and an error). Returns the number of values pushed. May raise only on
 * memory errors; holds no C heap of its own.
 */
CPT_HIDDEN int cpt_response_decode(lua_State *L, const cpt_request_t *rq, long status,
                                   const char *ctype, const char *body, size_t len);

/* ---- libcurl transport (curl.c) --------------------------------------------- */

typedef struct cpt_curl cpt_curl_t;

/* The one gate for libcurl options newer than Debian 12's curl 7.88 (after <curl/curl.h>). */
#define CPT_CURL_AT_LEAST(maj, min) (LIBCURL_VERSION_NUM >= (((maj) << 16) | ((min) << 8)))

typedef struct cpt_trust cpt_trust_t;

typedef struct cpt_opts {
  const char *cafile;
  const char *capath;
  int insecure;
  cpt_trust_t *trust;  /* a held pool (trust.c); cpt_curl_new takes it over */
  long timeout_ms;
  long connect_timeout_ms;
  size_t max_response;
} cpt_opts_t;

/* One transfer: its buffers while it runs, then its outcome. No Lua inside. */
typedef struct cpt_xfer {
  void *easy;        /* CURL * */
  void *headers;     /* struct curl_slist *, wiped and freed when the transfer ends */
  cpt_buf_t body;
  size_t max_response;
  int overflow;
  const char *form;  /* a POST's form body, read by libcurl through on_read, */
  size_t form_len;   /* from form_off on; it is never rewound, so libcurl     */
  size_t form_off;   /* cannot resend a POST by itself (see xfer_begin)       */
  char errbuf[256];  /* CURL_ERROR_SIZE */
  /* outcome */
  int not_sent;      /* held back by its gate (an earlier refusal): never sent */
  const char *kind;  /* NULL: a reply arrived (status, ctype, body) */
  char msg[320];
  long status;
  char ctype[128];
} cpt_xfer_t;

/* NULL when out of memory or libcurl failed; msg then says why. */
CPT_HIDDEN cpt_curl_t *cpt_curl_new(const cpt_opts_t *o, char *msg, size_t msglen);
CPT_HIDDEN void cpt_curl_free(cpt_curl_t *c);
/* Sends rq on the client's own handle and waits; the outcome is in the returned xfer. */
CPT_HIDDEN cpt_xfer_t *cpt_curl_perform(cpt_curl_t *c, const cpt_request_t *rq);
/* Wipes the client's last reply (it may hold a created token). */
CPT_HIDDEN void cpt_curl_wipe_reply(cpt_curl_t *c);

/*
 * The jobs of a batch that share a server (host and port) and a credential
 * share a gate, because cPanel's cPHulk locks an address out after a few
 * failed logins: the first job goes alone, the others follow only once a
 * reply was not a refusal, and none is sent after a refusal.
 */
typedef enum { CPT_GATE_UNTRIED, CPT_GATE_PROBING, CPT_GATE_OPEN, CPT_GATE_CLOSED } cpt_gate_state_t;

typedef struct cpt_gate {
  cpt_gate_state_t state;
  long status;       /* the refusal's HTTP status, once closed */
} cpt_gate_t;

/* The jobs of a batch that share a server (host and port, any credential): how many of
 * them are in flight, against the batch's per-server limit. */
typedef struct cpt_host {
  int active;
} cpt_host_t;

/* One job of a batch: a built request, the client handle whose options it uses. */
typedef struct cpt_job {
  const cpt_request_t *rq;
  cpt_curl_t *client;
  cpt_gate_t *gate;  /* shared by the jobs with the same server and credential */
  cpt_host_t *host;  /* shared by the jobs with the same server */
  int accepted;      /* the caller saw this call accepted earlier: its gate starts open */
  int skip;          /* refused before sending: not run */
  int started;
  cpt_xfer_t x;
} cpt_job_t;

/*
 * Runs the jobs concurrently through one multi handle, at most `concurrency`
 * at a time and at most `per_server` (0: no limit of its own) to one server,
 * sharing connections, TLS sessions, DNS and the CA store.
 * Every job that runs gets its outcome in job->x; returns 0, or -1 when the
 * multi handle could not be set up (every job then fails with a message).
 */
CPT_HIDDEN int cpt_curl_batch(cpt_job_t *jobs, size_t n, int concurrency, int per_server);
CPT_HIDDEN int cpt_curl_peer_cert(const char *url, long timeout_ms, cpt_buf_t *out, char *err,
                                  size_t errlen); /* the certificate url presents, unverified */
CPT_HIDDEN void cpt_xfer_release(cpt_xfer_t *x);
CPT_HIDDEN void cpt_curl_open(lua_State *L);

/* ---- trust anchors and shared connections (trust.c) ------------------------ */

/*
 * The pool of this Lua state for these trust settings (cafile/capath NULL: the
 * system store; insecure: no verification), created when there is none, with a
 * reference held for the caller. NULL with msg set when out of memory.
 */
CPT_HIDDEN cpt_trust_t *cpt_trust_get(lua_State *L, const char *cafile, const char *capath,
                                      int insecure, char *msg, size_t msglen);
CPT_HIDDEN void cpt_trust_release(cpt_trust_t *t);
/* Points an easy handle (CURL *) at the pool's share and store; 0 or -1. No Lua. */
CPT_HIDDEN int cpt_trust_setup(cpt_trust_t *t, void *easy);
/* Loads the pool's store if it is not yet (once per process); 0, or -1 with msg. No Lua. */
CPT_HIDDEN int cpt_trust_load(cpt_trust_t *t, char *msg, size_t msglen);
/* The pool's CURLSH: connections, TLS sessions, DNS. */
CPT_HIDDEN void *cpt_trust_share(cpt_trust_t *t);
CPT_HIDDEN void cpt_trust_open(lua_State *L);

/* ---- the client (client.c) ---------------------------------------------------- */

typedef struct cpt_client {
  cpt_target_t target;
  char *cafile;
  char *capath;
  cpt_curl_t *curl;
  cpt_request_t rq;
  cpt_opts_t opts;
  int open;
} cpt_client_t;

/* The open client at idx; raises when it is not one, or closed. */
CPT_HIDDEN cpt_client_t *cpt_client_check(lua_State *L, int idx);
/* Pushes what an operation returns for a finished transfer. */
CPT_HIDDEN int cpt_client_result(lua_State *L, const cpt_request_t *rq, const cpt_xfer_t *x);

/* The module's one exported symbol: cptokens/core_impl.so's, which cptokens/core.so
 * (csrc/loader/core.c) loads and calls for require "cptokens.core". */
#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
int luaopen_cptokens_core_impl(lua_State *L);

/* ---- Lua areas -------------------------------------------------------------- */

CPT_HIDDEN void cpt_error_open(lua_State *L);
CPT_HIDDEN void cpt_response_open(lua_State *L);
CPT_HIDDEN void cpt_client_open(lua_State *L);
CPT_HIDDEN void cpt_fs_open(lua_State *L);
CPT_HIDDEN void cpt_batch_open(lua_State *L);
CPT_HIDDEN void cpt_scrub_open(lua_State *L);
CPT_HIDDEN void cpt_proc_open(lua_State *L);   /* the CLI's process: signals, core dumps */
CPT_HIDDEN void cpt_ops_open(lua_State *L);

#endif
