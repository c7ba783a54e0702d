/*
 * fuzz_request.c: libFuzzer target for the request builder (csrc/request.c).
 *
 * Input: one header byte, then length-prefixed pieces (a length byte, then
 * that many bytes; missing pieces are empty), then 8 bytes of expiry:
 *   byte 0: bits 0-1 and 4 the operation (an index into the table of
 *           operations, ops.c, modulo its size), bits 2-3 the credential
 *           (token, password, WHM token, password with a two-factor code)
 *   pieces: url, user, whm_user, secret, otp, name, new_name
 * The operation's first two string parameters (names or strings) get name
 * and new_name, its epoch the expiry.
 * The values the client would refuse before building (client.c: user names,
 * control characters in credentials) are refused here too; everything else
 * goes through cpt_target_url and cpt_request_build, twice on the same
 * request (as a client reuses it). Beyond "no crash, no leak, no undefined
 * behaviour", a built request must be safe to send: no control character in
 * the URL or in a header (no header injection), only percent-encoded form
 * fields in the body, a valid name, and a refusal must be one line that does
 * not quote the secret.
 *
 * Built and run by `make fuzz` (clang -fsanitize=fuzzer,address,undefined).
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cptokens.h"

#define NOW 1800000000LL

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "fuzz_request: contract broken: %s (line %d)\n", #cond, __LINE__); \
      abort();                                                                       \
    }                                                                                \
  } while (0)

typedef struct {
  const uint8_t *p;
  size_t n;
} piece_t;

static piece_t next_piece(const uint8_t **d, size_t *left) {
  piece_t pc = {NULL, 0};
  size_t n;
  if (*left == 0) return pc;
  n = **d;
  (*d)++, (*left)--;
  if (n > *left) n = *left;
  pc.p = *d;
  pc.n = n;
  *d += n, *left -= n;
  return pc;
}

/* An exact-size heap copy (no NUL after it: ASan sees any over-read). */
static char *exact(piece_t pc) {
  char *s = malloc(pc.n ? pc.n : 1);
  if (pc.n) memcpy(s, pc.p, pc.n);
  return s;
}

/* The same test as client.c's bad_user(). */
static int bad_user(const uint8_t *s, size_t n) {
  size_t i;
  if (n == 0 || n > 255 || cpt_check_header_value((const char *)s, n) != 0) return 1;
  for (i = 0; i < n; i++)
    if (s[i] == ':' || s[i] == ' ') return 1;
  return 0;
}

static int contains(piece_t hay, const char *s, size_t n) {
  return hay.n >= n && memmem(hay.p, hay.n, s, n) != NULL;
}

/*
 * Whether the secret could be in a refusal without coming from the secret:
 * when the names (raw or as cpt_quote writes them) or the numbers quoted in
 * refusals contain it too.
 */
static int quoted_elsewhere(piece_t secret, piece_t name, piece_t new_name, long long expires) {
  char buf[256];
  piece_t q;
  const piece_t *names[2] = {&name, &new_name};
  int i;
  for (i = 0; i < 2; i++) {
    if (contains(*names[i], (const char *)secret.p, secret.n)) return 1;
    cpt_quote(buf, sizeof buf, names[i]->n ? (const char *)names[i]->p : "", names[i]->n);
    q.p = (const uint8_t *)buf, q.n = strlen(buf);
    if (contains(q, (const char *)secret.p, secret.n)) return 1;
  }
  snprintf(buf, sizeof buf, "%lld %lld %lld", expires, NOW, CPT_EXPIRES_MAX);
  q.p = (const uint8_t *)buf, q.n = strlen(buf);
  return contains(q, (const char *)secret.p, secret.n);
}

static void check_one_line(const char *err, size_t errlen) {
  size_t n = strnlen(err, errlen);
  CHECK(n < errlen && n > 0);
  CHECK(cpt_check_header_value(err, n) == 0); /* one line, no control characters */
}

/* The arguments of op from the pieces: name and new_name to its first two
   names or strings, the expiry to its epoch. */
static void make_args(const cpt_op_t *op, const char *name_s, size_t name_n, const char *new_s,
                      size_t new_n, long long expires, cpt_arg_t *args) {
  int k, strings = 0;
  memset(args, 0, sizeof(cpt_arg_t) * CPT_PARAMS_MAX);
  for (k = 0; op->params[k].field; k++) {
    cpt_arg_t *a = &args[k];
    if (op->params[k].type == CPT_PT_EPOCH) {
      a->given = expires != 0;
      a->n = expires;
    } else if (op->params[k].type != CPT_PT_LIST && strings < 2) {
      a->given = 1;
      a->s = strings ? new_s : name_s;
      a->len = strings++ ? new_n : name_n;
    }
  }
}

static void check_built(const cpt_request_t *rq, const cpt_target_t *t, const cpt_op_t *op,
                        const cpt_arg_t *args) {
  char path[128], err[256];
  size_t i;
  int k;
  CHECK(rq->url.p != NULL && strlen(rq->url.p) == rq->url.len);
  CHECK(strncmp(rq->url.p, t->base, strlen(t->base)) == 0);
  for (i = 0; i < rq->url.len; i++) {
    unsigned char c = (unsigned char)rq->url.p[i];
    CHECK(c > 0x20 && c != 0x7f);
  }
  if (op->family == CPT_FAM_WHM1)
    snprintf(path, sizeof path, "/json-api/%s?api.version=1", op->func);
  else
    snprintf(path, sizeof path, "%s", t->cred == CPT_CRED_WHM ? "/json-api/cpanel?" : "/execute/");
  CHECK(strncmp(rq->url.p + strlen(t->base), path, strlen(path)) == 0);
  CHECK(rq->auth.p != NULL && strlen(rq->auth.p) == rq->auth.len);
  CHECK(strncmp(rq->auth.p, "Authorization: ", 15) == 0);
  CHECK(cpt_check_header_value(rq->auth.p, rq->auth.len) == 0);
  if (rq->otp.len) {
    CHECK(strlen(rq->otp.p) == rq->otp.len && strncmp(rq->otp.p, "X-CPANEL-OTP: ", 14) == 0);
    CHECK(cpt_check_header_value(rq->otp.p, rq->otp.len) == 0);
  }
  for (i = 0; i < rq->body.len; i++) {
    unsigned char c = (unsigned char)rq->body.p[i];
    CHECK((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
          strchr("-._~%=&", c) != NULL);
  }
  CHECK(rq->op == op && rq->post == op->post && (op->post || rq->body.len == 0));
  for (k = 0; op->params[k].field; k++) {
    if (op->params[k].type == CPT_PT_NAME)
      CHECK(cpt_check_name(rq->vals[k].s, strlen(rq->vals[k].s)) == 0);
    if (op->params[k].type == CPT_PT_EPOCH)
      CHECK(rq->vals[k].n == 0 || (rq->vals[k].n > NOW && rq->vals[k].n <= CPT_EXPIRES_MAX));
  }
  CHECK(op->check == NULL || op->check(rq, args, err, sizeof err) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cpt_target_t t;
  cpt_request_t rq;
  piece_t url, user, whm_user, secret, otp, name, new_name;
  char *url_s, *name_s, *new_s, err[256];
  const uint8_t *d = data;
  size_t left = size;
  long long expires = 0;
  cpt_arg_t args[CPT_PARAMS_MAX];
  int op, cred, rc, round;

  if (size < 1) return 0;
  op = ((d[0] & 3) | ((d[0] >> 2) & 4)) % cpt_ops_count;
  cred = (d[0] >> 2) & 3;
  d++, left--;
  url = next_piece(&d, &left);
  user = next_piece(&d, &left);
  whm_user = next_piece(&d, &left);
  secret = next_piece(&d, &left);
  otp = next_piece(&d, &left);
  name = next_piece(&d, &left);
  new_name = next_piece(&d, &left);
  if (left >= 8) {
    unsigned long long u = 0;
    int i;
    for (i = 0; i < 8; i++) u = (u << 8) | d[i];
    memcpy(&expires, &u, sizeof expires);
  }

  /* What cptokens.new refuses before anything is built (client.c, check_values). */
  if (bad_user(user.p, user.n)) return 0;
  if (whm_user.n && bad_user(whm_user.p, whm_user.n)) return 0;
  if (secret.n == 0 || cpt_check_header_value((const char *)secret.p, secret.n) != 0) return 0;
  if (cred == 3 && (otp.n == 0 || cpt_check_header_value((const char *)otp.p, otp.n) != 0))
    return 0;

  memset(&t, 0, sizeof t);
  memset(&rq, 0, sizeof rq);
  /* cpt_target_url takes a C string (it refuses one with a NUL inside). */
  url_s = cpt_strdup(url.n ? (const char *)url.p : "", url.n);
  rc = cpt_target_url(&t, url_s, url.n, err, sizeof err);
  free(url_s);
  if (rc != 0) {
    CHECK(rc == -1);
    check_one_line(err, sizeof err);
    cpt_target_free(&t);
    return 0;
  }
  t.cred = cred == 2 ? CPT_CRED_WHM : cred == 0 ? CPT_CRED_TOKEN : CPT_CRED_PASSWORD;
  t.user = cpt_strdup((const char *)user.p, user.n);
  t.whm_user = whm_user.n ? cpt_strdup((const char *)whm_user.p, whm_user.n) : cpt_strdup("root", 4);
  t.secret = cpt_strdup((const char *)secret.p, secret.n);
  if (cred == 3) t.otp = cpt_strdup((const char *)otp.p, otp.n);

  name_s = exact(name);
  new_s = exact(new_name);
  for (round = 0; round < 2; round++) {
    const cpt_op_t *o = &cpt_ops[round == 0 ? op : (op + 1) % cpt_ops_count];
    err[0] = '\0';
    make_args(o, name_s, name.n, new_s, new_name.n, expires, args);
    rc = cpt_request_build(&rq, &t, o, args, NOW, err, sizeof err);
    CHECK(rc == 0 || rc == -1);
    CHECK(rq.op == o);
    if (rc == 0) {
      check_built(&rq, &t, o, args);
    } else {
      check_one_line(err, sizeof err);
      /* A refusal quotes the names and numbers it refuses, never the secret. */
      if (secret.n >= 6 && memmem(err, strlen(err), secret.p, secret.n) != NULL)
        CHECK(quoted_elsewhere(secret, name, new_name, expires));
    }
  }
  free(name_s);
  free(new_s);
  cpt_request_free(&rq);
  cpt_target_free(&t);
  return 0;
}
