/*
 * buf.c: a growable byte buffer, and wiping memory that held a secret.
 *
 * Buffers are wiped before they are freed or reused, so a buffer that held an
 * Authorization header leaves nothing behind.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cptokens.h"

void cpt_wipe(void *p, size_t n) {
  if (p == NULL || n == 0) return;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 25))
  explicit_bzero(p, n);
#else
  {
    volatile unsigned char *v = (volatile unsigned char *)p;
    while (n--) *v++ = 0;
  }
#endif
}

/* Makes room for n more bytes plus a NUL; 0 or -1 (out of memory). */
static int buf_grow(cpt_buf_t *b, size_t n) {
  size_t need, cap;
  char *p;
  if (n > ((size_t)-1) / 2 - b->len) return -1;
  need = b->len + n + 1;
  if (need <= b->cap) return 0;
  cap = b->cap ? b->cap : 64;
  while (cap < need) cap *= 2;
  /* No realloc: the old block may hold a secret and must be wiped. */
  p = malloc(cap);
  if (p == NULL) return -1;
  if (b->p != NULL) {
    memcpy(p, b->p, b->len);
    cpt_wipe(b->p, b->cap);
    free(b->p);
  }
  b->p = p;
  b->cap = cap;
  b->p[b->len] = '\0';
  return 0;
}

int cpt_buf_add(cpt_buf_t *b, const void *s, size_t n) {
  if (buf_grow(b, n) != 0) return -1;
  if (n) memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
  return 0;
}

int cpt_buf_adds(cpt_buf_t *b, const char *s) {
  return cpt_buf_add(b, s, strlen(s));
}

int cpt_buf_addf(cpt_buf_t *b, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof tmp) return -1; /* only short pieces go through here */
  return cpt_buf_add(b, tmp, (size_t)n);
}

/* Appends s percent-encoded for a form body or query (RFC 3986 unreserved kept). */
int cpt_buf_addenc(cpt_buf_t *b, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  size_t i;
  if (buf_grow(b, n * 3) != 0) return -1;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      b->p[b->len++] = (char)c;
    } else {
      b->p[b->len++] = '%';
      b->p[b->len++] = hex[c >> 4];
      b->p[b->len++] = hex[c & 15];
    }
  }
  b->p[b->len] = '\0';
  return 0;
}

int cpt_buf_addb64(cpt_buf_t *b, const unsigned char *s, size_t n) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i;
  if (buf_grow(b, (n + 2) / 3 * 4) != 0) return -1;
  for (i = 0; i + 2 < n; i += 3) {
    unsigned long v = ((unsigned long)s[i] << 16) | ((unsigned long)s[i + 1] << 8) | s[i + 2];
    b->p[b->len++] = tab[(v >> 18) & 63];
    b->p[b->len++] = tab[(v >> 12) & 63];
    b->p[b->len++] = tab[(v >> 6) & 63];
    b->p[b->len++] = tab[v & 63];
  }
  if (i < n) {
    unsigned long v = (unsigned long)s[i] << 16;
    if (i + 1 < n) v |= (unsigned long)s[i + 1] << 8;
    b->p[b->len++] = tab[(v >> 18) & 63];
    b->p[b->len++] = tab[(v >> 12) & 63];
    b->p[b->len++] = (i + 1 < n) ? tab[(v >> 6) & 63] : '=';
    b->p[b->len++] = '=';
  }
  b->p[b->len] = '\0';
  return 0;
}

void cpt_buf_clear(cpt_buf_t *b) {
  if (b->p != NULL) {
    cpt_wipe(b->p, b->len);
    b->p[0] = '\0';
  }
  b->len = 0;
}

void cpt_buf_free(cpt_buf_t *b) {
  if (b->p != NULL) {
    cpt_wipe(b->p, b->cap);
    free(b->p);
  }
  b->p = NULL;
  b->len = b->cap = 0;
}

char *cpt_strdup(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p == NULL) return NULL;
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

void cpt_free_secret(char **s) {
  if (*s != NULL) {
    cpt_wipe(*s, strlen(*s));
    free(*s);
    *s = NULL;
  }
}
