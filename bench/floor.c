/*
 * floor.c: the C floor for `make bench`. The same HTTPS GET that
 * client:list() sends, with one reused libcurl easy handle (one keep-alive
 * connection, the CA file loaded once), the body collected in a growing
 * buffer and nothing else: no JSON, no Lua.
 *
 *   floor URL CAFILE HEADERFILE WARMUP N [USER_AGENT]
 *
 * HEADERFILE holds the request headers, one a line (the bench's dummy
 * credential: nothing secret is ever on argv). WARMUP calls are made first
 * (the connection and TLS session are set up there), then N calls are timed
 * with CLOCK_MONOTONIC; prints the elapsed seconds for the N calls.
 *
 * With USER_AGENT it also sends the two headers cptokens adds of its own
 * (User-Agent, and Accept-Encoding through CURLOPT_ACCEPT_ENCODING ""), to
 * tell their cost apart from the rest of a list() call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

struct buf {
  char *p;
  size_t len, cap;
};

static size_t on_write(char *p, size_t size, size_t n, void *ud) {
  struct buf *b = ud;
  size_t len = size * n;
  if (b->len + len + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    char *q;
    while (cap < b->len + len + 1) cap *= 2;
    q = realloc(b->p, cap);
    if (q == NULL) return 0;
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->len, p, len);
  b->len += len;
  b->p[b->len] = '\0';
  return len;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void call(CURL *easy, struct buf *b) {
  long status = 0;
  CURLcode rc;
  b->len = 0;
  rc = curl_easy_perform(easy);
  if (rc != CURLE_OK) {
    fprintf(stderr, "floor: %s\n", curl_easy_strerror(rc));
    exit(1);
  }
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200 || b->len == 0) {
    fprintf(stderr, "floor: HTTP %ld, %lu bytes\n", status, (unsigned long)b->len);
    exit(1);
  }
}

int main(int argc, char **argv) {
  struct curl_slist *headers = NULL;
  struct buf b = {NULL, 0, 0};
  char line[1024], url[2048];
  FILE *f;
  CURL *easy;
  long warmup, n, i;
  double t0, t1;

  if (argc != 6 && argc != 7) {
    fprintf(stderr, "usage: floor URL CAFILE HEADERFILE WARMUP N [USER_AGENT]\n");
    return 2;
  }
  warmup = atol(argv[4]);
  n = atol(argv[5]);
  f = fopen(argv[3], "r");
  if (f == NULL) {
    perror(argv[3]);
    return 2;
  }
  while (fgets(line, sizeof line, f) != NULL) {
    line[strcspn(line, "\r\n")] = '\0';
    if (line[0] != '\0') headers = curl_slist_append(headers, line);
  }
  fclose(f);
  snprintf(url, sizeof url, "%s/execute/Tokens/list", argv[1]);

  curl_global_init(CURL_GLOBAL_DEFAULT);
  easy = curl_easy_init();
  curl_easy_setopt(easy, CURLOPT_URL, url);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_CAINFO, argv[2]);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &b);
  if (argc == 7) {
    curl_easy_setopt(easy, CURLOPT_USERAGENT, argv[6]);
    curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
  }

  for (i = 0; i < warmup; i++) call(easy, &b);
  t0 = now();
  for (i = 0; i < n; i++) call(easy, &b);
  t1 = now();
  printf("%.9f\n", t1 - t0);

  curl_easy_cleanup(easy);
  curl_slist_free_all(headers);
  curl_global_cleanup();
  free(b.p);
  return 0;
}
