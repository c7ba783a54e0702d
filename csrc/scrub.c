/*
 * scrub.c: the client's own credential never comes back in what the library
 * returns, whatever the server echoes.
 *
 * A hostile or broken server may quote the Authorization header, the token,
 * "user:token", the base64 of "user:password", or the password (plain,
 * HTML-escaped or percent-encoded) inside an error body. Every error object
 * a call returns goes through cpt_scrub() with the credential of the request
 * that was sent: each of those forms is replaced by "<redacted>" in
 * err.message and in every string of err.errors. Both transports and batches
 * decode through here (client.c, response.c, batch.c).
 *
 * Derived forms (decoded base64, escaped copies) live in a Lua userdata whose
 * __gc wipes it, so a memory error raised midway leaks nothing and leaves no
 * copy of a secret in freed memory.
 */
#include <stdio.h>
#include <string.h>

#include "cptokens.h"

#define SCRATCH_MT "cptokens.Scratch"
#define REDACTED "<redacted>"
#define NEEDLE_MIN 4 /* shorter ones would mangle ordinary words */

typedef struct {
  size_t cap, used;
  char data[1];
} scratch_t;

static int scratch_gc(lua_State *L) {
  scratch_t *s = (scratch_t *)lua_touserdata(L, 1);
  if (s != NULL) cpt_wipe(s->data, s->cap);
  return 0;
}

/* Room for n bytes in the scratch; NULL when it is full (never: sized up front). */
static char *scratch_take(scratch_t *s, size_t n) {
  char *p;
  if (s->used + n > s->cap) return NULL;
  p = s->data + s->used;
  s->used += n;
  return p;
}

static void add_needle(cpt_needles_t *nd, const char *p, size_t n) {
  int i;
  if (p == NULL || n < NEEDLE_MIN || nd->count >= CPT_NEEDLES_MAX) return;
  for (i = 0; i < nd->count; i++)
    if (nd->n[i] == n && memcmp(nd->p[i], p, n) == 0) return;
  nd->p[nd->count] = p;
  nd->n[nd->count] = n;
  nd->count++;
}

static int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Decodes base64 s into out (room for n bytes); the length, or 0 when s is not base64. */
static size_t b64_decode(const char *s, size_t n, char *out) {
  size_t o = 0, i;
  unsigned acc = 0;
  int bits = 0;
  for (i = 0; i < n && s[i] != '='; i++) {
    int v = b64_value((unsigned char)s[i]);
    if (v < 0) return 0;
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (char)((acc >> bits) & 0xFF);
    }
  }
  return o;
}

/* The HTML-escaped form of s into out (room for 6n), the ' escaped too or not; its length. */
static size_t html_escape(const char *s, size_t n, char *out, int apos) {
  size_t o = 0, i;
  for (i = 0; i < n; i++) {
    const char *r = NULL;
    switch (s[i]) {
    case '&': r = "&amp;"; break;
    case '<': r = "&lt;"; break;
    case '>': r = "&gt;"; break;
    case '"': r = "&quot;"; break;
    case '\'':
      if (apos) {
        r = "&#39;";
        break;
      }
      /* fall through */
    default: out[o++] = s[i]; continue;
    }
    memcpy(out + o, r, strlen(r));
    o += strlen(r);
  }
  return o;
}

/*
 * The percent-encoded form of s into out (room for 3n): of every byte but the
 * unreserved ones (RFC 3986), or, loose, also leaving !'()* as they are (as
 * JavaScript's encodeURIComponent and nginx do); its length.
 */
static size_t pct_encode(const char *s, size_t n, char *out, int loose) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0, i;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~' || (loose && strchr("!'()*", c) != NULL && c != 0)) {
      out[o++] = (char)c;
    } else {
      out[o++] = '%';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 15];
    }
  }
  return o;
}

/* A secret and its escaped forms (needles already there are not added twice). */
static void add_forms(cpt_needles_t *nd, scratch_t *s, const char *p, size_t n) {
  int v;
  add_needle(nd, p, n);
  for (v = 0; v < 2; v++) {
    char *h = scratch_take(s, 6 * n), *e = scratch_take(s, 3 * n);
    if (h) add_needle(nd, h, html_escape(p, n, h, v));
    if (e) add_needle(nd, e, pct_encode(p, n, e, v));
  }
}

void cpt_needles(lua_State *L, cpt_needles_t *nd, const char *auth, size_t len, const char *otp,
                 size_t otp_len) {
  scratch_t *s;
  const char *cred, *colon;
  size_t clen;
  nd->count = 0;
  s = (scratch_t *)lua_newuserdata(L, sizeof *s + 48 * (len + otp_len) + 16);
  s->cap = 48 * (len + otp_len) + 16;
  s->used = 0;
  luaL_getmetatable(L, SCRATCH_MT);
  lua_setmetatable(L, -2);
  if (otp != NULL) add_needle(nd, otp, otp_len);
  if (auth == NULL) return;
  /* "<scheme> <credential>" */
  cred = memchr(auth, ' ', len);
  if (cred == NULL) return add_forms(nd, s, auth, len);
  cred++;
  clen = len - (size_t)(cred - auth);
  add_needle(nd, cred, clen);
  if (len >= 6 && strncmp(auth, "Basic ", 6) == 0) {
    char *plain = scratch_take(s, clen);
    size_t pn = plain ? b64_decode(cred, clen, plain) : 0;
    if (pn == 0) return;
    add_forms(nd, s, plain, pn);
    cred = plain;
    clen = pn;
  }
  colon = memchr(cred, ':', clen);
  if (colon != NULL) add_forms(nd, s, colon + 1, clen - (size_t)(colon + 1 - cred));
}

/*
 * The length of the longest tail of str (n bytes) that is the start of a
 * needle, of NEEDLE_MIN bytes or more: what a message cut short (err.message
 * is at most 512 bytes) leaves of a secret that was echoed across the cut.
 */
static size_t cut_tail(const char *str, size_t n, const cpt_needles_t *nd) {
  size_t best = 0, t;
  int k;
  for (k = 0; k < nd->count; k++) {
    for (t = nd->n[k] - 1; t >= NEEDLE_MIN && t > best; t--) {
      if (t <= n && memcmp(str + n - t, nd->p[k], t) == 0) {
        best = t;
        break;
      }
    }
  }
  return best;
}

/* The string at idx with every needle replaced, pushed; 1 when it changed. */
static int scrub_string(lua_State *L, int idx, const cpt_needles_t *nd) {
  size_t n, i = 0, tail;
  const char *str = lua_tolstring(L, idx, &n);
  luaL_Buffer b;
  int changed = 0, k;
  /* (only a message long enough to have been cut: a short one that ends like the start of
   * "user:secret", e.g. in the user name, is left alone) */
  tail = n >= 500 ? cut_tail(str, n, nd) : 0;
  n -= tail;
  luaL_buffinit(L, &b);
  while (i < n) {
    for (k = 0; k < nd->count; k++) {
      if (nd->n[k] <= n - i && memcmp(str + i, nd->p[k], nd->n[k]) == 0) break;
    }
    if (k < nd->count) {
      luaL_addstring(&b, REDACTED);
      i += nd->n[k];
      changed = 1;
    } else {
      luaL_addchar(&b, str[i]);
      i++;
    }
  }
  if (tail) {
    luaL_addstring(&b, REDACTED);
    changed = 1;
  }
  luaL_pushresult(&b);
  return changed;
}

/* The value on top, when it is a string holding a needle: pushes its scrubbed
 * copy and returns 1; else returns 0 and pushes nothing. */
static int scrub_top(lua_State *L, const cpt_needles_t *nd) {
  if (lua_type(L, -1) != LUA_TSTRING) return 0;
  if (scrub_string(L, -1, nd)) return 1;
  lua_pop(L, 1); /* unchanged */
  return 0;
}

void cpt_scrub(lua_State *L, int idx, const cpt_needles_t *nd) {
  int i, len;
  idx = cpt_absindex(L, idx);
  if (nd->count == 0 || lua_type(L, idx) != LUA_TTABLE || !cpt_is_error(L, idx)) return;
  lua_getfield(L, idx, "message");
  if (scrub_top(L, nd)) lua_setfield(L, idx, "message");
  lua_pop(L, 1);
  lua_getfield(L, idx, "errors");
  if (lua_type(L, -1) == LUA_TTABLE) {
    int errs = lua_gettop(L);
    len = (int)cpt_rawlen(L, errs);
    for (i = 1; i <= len; i++) {
      lua_rawgeti(L, errs, i);
      if (scrub_top(L, nd)) lua_rawseti(L, errs, i);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

void cpt_scrub_open(lua_State *L) {
  if (luaL_newmetatable(L, SCRATCH_MT)) {
    lua_pushcfunction(L, scratch_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
}
