/*
 * trust.c: trust anchors loaded once per process, connections shared by the
 * clients of one Lua state that trust the same anchors.
 *
 * Two layers:
 *
 * - A store (cpt_store_t) is one trust configuration made into an OpenSSL
 *   X509_STORE: a CA file parsed once, a hashed CA directory looked up lazily
 *   (X509_LOOKUP_hash_dir), or both. Stores are process-wide (any thread, any
 *   Lua state), keyed by what they were loaded from: the file and directory
 *   paths and their identity (device, inode, size, modification time), so an
 *   edited CA file is loaded again for the clients made after the edit, and a
 *   store is never older than CPT_STORE_MAX_AGE for a new client (libcurl's
 *   own CA cache keeps 24 hours too). Each connection's SSL_CTX gets the
 *   shared store through CURLOPT_SSL_CTX_FUNCTION (a reference, not a copy).
 *
 * - A pool (cpt_trust_t) is one trust configuration in one Lua state: its
 *   store and a libcurl share of connections, TLS sessions and DNS. Every
 *   client and every batch job with the same trust settings uses it, so the
 *   clients of one host reuse each other's idle keep-alive connections. A
 *   pool is never shared between Lua states: libcurl's shared connection
 *   cache is not safe across threads (KNOWN_BUGS), and a Lua state is only
 *   ever run by one thread at a time. `insecure` clients have a pool of their
 *   own, so a connection that was never verified never serves a verifying
 *   client; clients with other anchors have other pools, so a connection (or
 *   a TLS session, which resumes without a certificate check) verified under
 *   some anchors never serves a client that trusts others. The cPanel
 *   protocol keeps no authentication state on a connection: the credential
 *   is a header of every request (the cookie engine, HTTP auth negotiation
 *   and NTLM are never turned on), so a reused connection carries nothing of
 *   the previous client.
 *
 * Why not libcurl's own CA cache (CURLOPT_CA_CACHE_TIMEOUT, 7.87+): in 7.88
 * (lib/vtls/openssl.c, Curl_ssl_setup_x509_store) the cached store lives in
 * the multi handle, and curl_easy_perform gives every easy handle a multi of
 * its own, so it is never shared by two clients, nor by two batches; and it
 * is only used when no CA directory is set ("cache_criteria_met" requires
 * !CApath), while Debian's libcurl is built with a default CA path
 * (/etc/ssl/certs) as well as the bundle. So every new connection parsed the
 * whole bundle again. We set CURLOPT_CAINFO and CURLOPT_CAPATH to NULL (libcurl
 * then loads nothing) and CURLOPT_CA_CACHE_TIMEOUT to 0: that cache keys on
 * the CA file name alone, which is NULL for every client here, so it would
 * otherwise hand one client's store to a client with other trust settings in
 * the same batch.
 *
 * "The system store" (no cafile, no capath) is libcurl's built-in CA directory
 * when it is a hashed directory (Debian's /etc/ssl/certs, which
 * update-ca-certificates makes from the same certificates as the bundle),
 * looked up lazily, without parsing the bundle; else libcurl's built-in bundle;
 * else OpenSSL's default directory or file. (libcurl itself used both the
 * bundle and the directory.) A cafile alone means exactly that file's anchors,
 * a capath alone exactly that directory's: libcurl used to add its built-in
 * location of the other kind.
 *
 * When libcurl does not use the OpenSSL this module is linked with (another
 * TLS backend, another major version), stores cannot be handed over: the
 * locations go to libcurl as CURLOPT_CAINFO / CURLOPT_CAPATH as before, and
 * only connections are shared.
 *
 * No Lua runs while libcurl does: the SSL_CTX callback only takes a reference.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/opensslv.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "cptokens.h"

#define POOLS_KEY "cptokens.trust.pools" /* registry: this state's pools */
#define POOLS_MT "cptokens.TrustPools"
#define CPT_STORE_MAX_AGE 86400          /* seconds: a new client gets a fresh load after */
#define CPT_IDLE_POOLS 4                 /* unused pools (and their connections) kept per state */
#define CPT_IDLE_STORES 8                /* unused stores kept per process */

/* What a file or directory was when it was loaded (all zero: it could not be stat'ed). */
typedef struct ident {
  dev_t dev;
  ino_t ino;
  off_t size;
  long long mtime_ns;
} ident_t;

typedef struct cpt_store {
  struct cpt_store *next;
  char *file, *dir;      /* what it was loaded from; NULL: not used */
  ident_t fid, did;
  time_t loaded_at;
  X509_STORE *x509;
  int refs;              /* pools using it */
} cpt_store_t;

typedef struct pools {
  cpt_trust_t *head;
  unsigned long clock;   /* stamps pools for least-recently-used eviction */
  int closed;            /* the Lua state is closing */
} pools_t;

struct cpt_trust {
  cpt_trust_t *next;
  pools_t *set;          /* NULL once unlinked */
  int refs;              /* clients holding it */
  unsigned long used;
  pid_t pid;             /* a forked child never touches its parent's connections */
  int insecure;
  int stale;             /* never handed to a new client again */
  char *file, *dir;      /* the resolved trust locations */
  ident_t fid, did;
  cpt_store_t *store;    /* once loaded (verifying pools with shared stores only) */
  CURLSH *share;
};

/* ---- the process-wide stores -------------------------------------------------- */

static pthread_mutex_t stores_lock = PTHREAD_MUTEX_INITIALIZER;
static cpt_store_t *stores;
static int live_states;          /* Lua states with the module open */
static unsigned long store_loads; /* X509_STOREs built so far (specs: "loaded once") */
static int backend_ok = -1;      /* libcurl uses our OpenSSL: stores can be shared */

static int str_eq(const char *a, const char *b) {
  if (a == NULL || b == NULL) return a == b;
  return strcmp(a, b) == 0;
}

static int ident_eq(const ident_t *a, const ident_t *b) {
  return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
         a->mtime_ns == b->mtime_ns;
}

static void ident_of(const char *path, ident_t *id) {
  struct stat st;
  memset(id, 0, sizeof *id);
  if (path == NULL || stat(path, &st) != 0) return;
  id->dev = st.st_dev;
  id->ino = st.st_ino;
  id->size = S_ISDIR(st.st_mode) ? 0 : st.st_size;
  id->mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
}

/* Whether libcurl's TLS backend is the OpenSSL this module is linked with. */
static int check_backend(void) {
  const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  unsigned maj = 0, min = 0;
  if (v->ssl_version == NULL || sscanf(v->ssl_version, "OpenSSL/%u.%u", &maj, &min) != 2)
    return 0;
#if OPENSSL_VERSION_MAJOR >= 3
  return maj == OPENSSL_version_major() && (maj >= 3 || min == OPENSSL_version_minor());
#else
  return maj == ((OpenSSL_version_num() >> 28) & 0xf) &&
         min == ((OpenSSL_version_num() >> 20) & 0xff);
#endif
}

static void store_free(cpt_store_t *s) {
  if (s->x509) X509_STORE_free(s->x509);
  free(s->file);
  free(s->dir);
  free(s);
}

/* Frees unused stores beyond `keep` (oldest first). Called with stores_lock held. */
static void stores_trim(int keep) {
  for (;;) {
    cpt_store_t **p, **oldest = NULL;
    int unused = 0;
    for (p = &stores; *p; p = &(*p)->next) {
      if ((*p)->refs) continue;
      unused++;
      if (oldest == NULL || (*p)->loaded_at <= (*oldest)->loaded_at) oldest = p;
    }
    if (unused <= keep || oldest == NULL) return;
    {
      cpt_store_t *s = *oldest;
      *oldest = s->next;
      store_free(s);
    }
  }
}

static char *dup_or_null(const char *s) {
  return s ? cpt_strdup(s, strlen(s)) : NULL;
}

/*
 * Builds an X509_STORE from a file and/or a directory, with the verification
 * flags libcurl sets on its own stores. NULL with msg set on failure.
 */
static X509_STORE *store_build(const char *file, const char *dir, char *msg, size_t msglen) {
  X509_STORE *x = X509_STORE_new();
  if (x == NULL) {
    snprintf(msg, msglen, "out of memory");
    return NULL;
  }
#if OPENSSL_VERSION_MAJOR >= 3
  if (file && !X509_STORE_load_file(x, file)) {
    snprintf(msg, msglen, "error setting certificate file: %s", file);
    goto fail;
  }
  if (dir && !X509_STORE_load_path(x, dir)) {
    snprintf(msg, msglen, "error setting certificate path: %s", dir);
    goto fail;
  }
#else
  if ((file || dir) && !X509_STORE_load_locations(x, file, dir)) {
    snprintf(msg, msglen, "error setting certificate verify locations: CAfile: %s CApath: %s",
             file ? file : "none", dir ? dir : "none");
    goto fail;
  }
#endif
  /*
   * What libcurl sets on the store it fills (populate_x509_store): the
   * store's own anchors first, and intermediates in it accepted as anchors.
   * libcurl 7.88 sets them again on this store after our callback (they are
   * already set, so that rewrites an unchanged value).
   */
  X509_STORE_set_flags(x, X509_V_FLAG_TRUSTED_FIRST | X509_V_FLAG_PARTIAL_CHAIN);
  ERR_clear_error();
  return x;
fail:
  ERR_clear_error();
  X509_STORE_free(x);
  return NULL;
}

/*
 * The store for (file, dir) as they are now: an existing one, or one loaded
 * now. Holds a reference for the caller. NULL with msg set on failure.
 */
static cpt_store_t *store_get(const char *file, const char *dir, const ident_t *fid,
                              const ident_t *did, char *msg, size_t msglen) {
  cpt_store_t *s;
  time_t now = time(NULL);
  pthread_mutex_lock(&stores_lock);
  for (s = stores; s; s = s->next) {
    if (str_eq(s->file, file) && str_eq(s->dir, dir) && ident_eq(&s->fid, fid) &&
        ident_eq(&s->did, did) && now - s->loaded_at < CPT_STORE_MAX_AGE)
      break;
  }
  if (s == NULL) {
    s = calloc(1, sizeof *s);
    if (s == NULL || (file && (s->file = dup_or_null(file)) == NULL) ||
        (dir && (s->dir = dup_or_null(dir)) == NULL)) {
      if (s) store_free(s);
      snprintf(msg, msglen, "out of memory");
      s = NULL;
      goto done;
    }
    /* Loaded with the lock held: two threads wanting the same store load it once. */
    s->x509 = store_build(file, dir, msg, msglen);
    if (s->x509 == NULL) {
      store_free(s);
      s = NULL;
      goto done;
    }
    s->fid = *fid;
    s->did = *did;
    s->loaded_at = now;
    s->next = stores;
    stores = s;
    store_loads++;
  }
  s->refs++;
done:
  pthread_mutex_unlock(&stores_lock);
  return s;
}

static void store_release(cpt_store_t *s) {
  if (s == NULL) return;
  pthread_mutex_lock(&stores_lock);
  s->refs--;
  stores_trim(live_states > 0 ? CPT_IDLE_STORES : 0);
  pthread_mutex_unlock(&stores_lock);
}

/* ---- where "the system store" is ---------------------------------------------- */

/* True when dir holds OpenSSL hash names (8 hex digits, '.', digits). */
static int is_hashed_dir(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int found = 0;
  if (d == NULL) return 0;
  while (!found && (e = readdir(d)) != NULL) {
    const char *n = e->d_name;
    size_t i;
    for (i = 0; i < 8; i++)
      if (!((n[i] >= '0' && n[i] <= '9') || (n[i] >= 'a' && n[i] <= 'f'))) break;
    if (i == 8 && n[8] == '.' && n[9] >= '0' && n[9] <= '9') {
      for (i = 10; n[i] >= '0' && n[i] <= '9'; i++) {}
      found = n[i] == '\0';
    }
  }
  closedir(d);
  return found;
}

/* is_hashed_dir, remembered per process while the directory does not change. */
static int hashed_dir_cached(const char *dir) {
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  static char last[512];
  static ident_t last_id;
  static int last_result;
  ident_t id;
  int r;
  ident_of(dir, &id);
  pthread_mutex_lock(&lock);
  if (strlen(dir) < sizeof last && strcmp(last, dir) == 0 && ident_eq(&id, &last_id)) {
    r = last_result;
  } else {
    r = is_hashed_dir(dir);
    if (strlen(dir) < sizeof last) {
      strcpy(last, dir);
      last_id = id;
      last_result = r;
    }
  }
  pthread_mutex_unlock(&lock);
  return r;
}

/*
 * Resolves the system store's locations (see the top of this file). The
 * environment is not read: libcurl does not read it either (SSL_CERT_FILE,
 * SSL_CERT_DIR and CURL_CA_BUNDLE are the curl tool's).
 */
static void system_locations(const char **file, const char **dir) {
  const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  const char *cainfo = NULL, *capath = NULL;
  *file = *dir = NULL;
  if (v->age >= CURLVERSION_SEVENTH) {
    cainfo = v->cainfo;
    capath = v->capath;
  }
  if (capath && hashed_dir_cached(capath)) {
    *dir = capath;
  } else if (cainfo) {
    *file = cainfo;
  } else if (hashed_dir_cached(X509_get_default_cert_dir())) {
    *dir = X509_get_default_cert_dir();
  } else {
    *file = X509_get_default_cert_file();
  }
}

/* ---- pools: one per trust configuration per Lua state ------------------------- */

static void pool_free(cpt_trust_t *t) {
  /* A forked child leaves its parent's connections alone: closing them would
     send TLS alerts on sockets the parent still uses. */
  if (t->share && t->pid == getpid()) curl_share_cleanup(t->share);
  store_release(t->store);
  free(t->file);
  free(t->dir);
  free(t);
}

static void pools_unlink(pools_t *set, cpt_trust_t *t) {
  cpt_trust_t **p;
  for (p = &set->head; *p; p = &(*p)->next) {
    if (*p == t) {
      *p = t->next;
      break;
    }
  }
  t->set = NULL;
}

/* Frees unused pools of set beyond `keep` (least recently used first). */
static void pools_trim(pools_t *set, int keep) {
  for (;;) {
    cpt_trust_t *t, *victim = NULL;
    int unused = 0;
    for (t = set->head; t; t = t->next) {
      if (t->refs) continue;
      unused++;
      if (t->stale || t->pid != getpid()) {
        victim = t;
        unused = keep + 1;
        break;
      }
      if (victim == NULL || t->used < victim->used) victim = t;
    }
    if (unused <= keep || victim == NULL) return;
    pools_unlink(set, victim);
    pool_free(victim);
  }
}

static pools_t *pools_of(lua_State *L) {
  pools_t **pp;
  lua_getfield(L, LUA_REGISTRYINDEX, POOLS_KEY);
  pp = (pools_t **)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return pp ? *pp : NULL;
}

static CURLSH *share_new(void) {
  CURLSH *sh = curl_share_init();
  if (sh == NULL) return NULL;
  if (curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK ||
      curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK ||
      curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK) {
    curl_share_cleanup(sh);
    return NULL;
  }
  return sh;
}

cpt_trust_t *cpt_trust_get(lua_State *L, const char *cafile, const char *capath, int insecure,
                           char *msg, size_t msglen) {
  pools_t *set = pools_of(L);
  const char *file = NULL, *dir = NULL;
  ident_t fid, did;
  cpt_trust_t *t;
  pid_t pid = getpid();
  if (set == NULL) {
    snprintf(msg, msglen, "the trust pools of this Lua state are gone");
    return NULL;
  }
  if (!insecure) {
    if (cafile || capath) {
      file = cafile;
      dir = capath;
    } else {
      system_locations(&file, &dir);
    }
  }
  ident_of(file, &fid);
  ident_of(dir, &did);
  for (t = set->head; t; t = t->next) {
    if (t->stale || t->pid != pid || t->insecure != insecure) continue;
    if (insecure) break;
    if (str_eq(t->file, file) && str_eq(t->dir, dir) && ident_eq(&t->fid, &fid) &&
        ident_eq(&t->did, &did)) {
      if (t->store && time(NULL) - t->store->loaded_at >= CPT_STORE_MAX_AGE) {
        t->stale = 1; /* an old load: new clients get a fresh store and pool */
        continue;
      }
      break;
    }
  }
  if (t == NULL) {
    t = calloc(1, sizeof *t);
    if (t == NULL || (file && (t->file = dup_or_null(file)) == NULL) ||
        (dir && (t->dir = dup_or_null(dir)) == NULL) || (t->share = share_new()) == NULL) {
      if (t) pool_free(t);
      snprintf(msg, msglen, "out of memory");
      return NULL;
    }
    t->pid = pid;
    t->insecure = insecure;
    t->fid = fid;
    t->did = did;
    t->set = set;
    t->next = set->head;
    set->head = t;
  }
  t->refs++;
  t->used = ++set->clock;
  pools_trim(set, CPT_IDLE_POOLS);
  return t;
}

void cpt_trust_release(cpt_trust_t *t) {
  if (t == NULL) return;
  if (--t->refs > 0) return;
  if (t->set == NULL) {
    pool_free(t); /* its state is gone */
  } else if (t->set->closed || t->stale) {
    pools_t *set = t->set;
    pools_unlink(set, t);
    pool_free(t);
    if (set->closed && set->head == NULL) free(set);
  }
}

/* CURLOPT_SSL_CTX_FUNCTION: the connection's context takes a reference to the store. */
static CURLcode on_ssl_ctx(CURL *easy, void *ssl_ctx, void *ud) {
  cpt_trust_t *t = ud;
  (void)easy;
  if (t->store == NULL || !X509_STORE_up_ref(t->store->x509)) return CURLE_SSL_CACERT_BADFILE;
  SSL_CTX_set_cert_store((SSL_CTX *)ssl_ctx, t->store->x509); /* frees the context's own */
  return CURLE_OK;
}

static int shared_stores(void) {
  if (backend_ok < 0) backend_ok = check_backend();
  return backend_ok;
}

int cpt_trust_setup(cpt_trust_t *t, void *handle) {
  CURL *easy = handle;
  if (curl_easy_setopt(easy, CURLOPT_SHARE, t->share) != CURLE_OK) return -1;
  if (t->insecure) return 0;
  if (!shared_stores()) {
    /* libcurl loads the locations itself, per connection, as it always did. */
    return curl_easy_setopt(easy, CURLOPT_CAINFO, t->file) == CURLE_OK &&
                   curl_easy_setopt(easy, CURLOPT_CAPATH, t->dir) == CURLE_OK
               ? 0
               : -1;
  }
  if (curl_easy_setopt(easy, CURLOPT_CAINFO, NULL) != CURLE_OK ||
      curl_easy_setopt(easy, CURLOPT_CAPATH, NULL) != CURLE_OK ||
      curl_easy_setopt(easy, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx) != CURLE_OK ||
      curl_easy_setopt(easy, CURLOPT_SSL_CTX_DATA, (void *)t) != CURLE_OK)
    return -1;
#if CPT_CURL_AT_LEAST(7, 87)
  /* See the top of this file: that cache would mix trust settings. */
  if (curl_easy_setopt(easy, CURLOPT_CA_CACHE_TIMEOUT, 0L) != CURLE_OK) return -1;
#endif
  return 0;
}

int cpt_trust_load(cpt_trust_t *t, char *msg, size_t msglen) {
  if (t->insecure || t->store || !shared_stores()) return 0;
  t->store = store_get(t->file, t->dir, &t->fid, &t->did, msg, msglen);
  return t->store ? 0 : -1;
}

void *cpt_trust_share(cpt_trust_t *t) {
  return t->share;
}

/* ---- Lua: the state's pools, and what specs look at ----------------------------- */

/* __gc of the registry's pools userdata: the state is closing. */
static int pools_gc(lua_State *L) {
  pools_t **pp = (pools_t **)luaL_checkudata(L, 1, POOLS_MT);
  pools_t *set = *pp;
  if (set == NULL) return 0;
  *pp = NULL;
  set->closed = 1;
  pools_trim(set, 0);
  if (set->head == NULL) free(set); /* else the last pool released frees it */
  pthread_mutex_lock(&stores_lock);
  live_states--;
  stores_trim(live_states > 0 ? CPT_IDLE_STORES : 0);
  pthread_mutex_unlock(&stores_lock);
  return 0;
}

/* core.close_idle() -> n: frees this state's pools no client uses (closing their connections). */
static int l_close_idle(lua_State *L) {
  pools_t *set = pools_of(L);
  int before = 0, after = 0;
  cpt_trust_t *t;
  if (set) {
    for (t = set->head; t; t = t->next) before++;
    pools_trim(set, 0);
    for (t = set->head; t; t = t->next) after++;
  }
  lua_pushinteger(L, before - after);
  return 1;
}

/*
 * core._trust_stats() -> { loads, stores, pools, shared_stores }: stores built by
 * this process so far, stores held now, this state's pools, and whether stores are
 * handed to libcurl (false: it loads the locations itself).
 */
static int l_trust_stats(lua_State *L) {
  pools_t *set = pools_of(L);
  cpt_trust_t *t;
  cpt_store_t *s;
  int pools = 0, nstores = 0;
  unsigned long loads;
  for (t = set ? set->head : NULL; t; t = t->next) pools++;
  pthread_mutex_lock(&stores_lock);
  for (s = stores; s; s = s->next) nstores++;
  loads = store_loads;
  pthread_mutex_unlock(&stores_lock);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)loads);
  lua_setfield(L, -2, "loads");
  lua_pushinteger(L, nstores);
  lua_setfield(L, -2, "stores");
  lua_pushinteger(L, pools);
  lua_setfield(L, -2, "pools");
  lua_pushboolean(L, shared_stores());
  lua_setfield(L, -2, "shared_stores");
  return 1;
}

/*
 * core._trust_locations([cafile [, capath]]) -> file, dir: where a client with
 * these options gets its anchors (nil where none), for specs and diagnostics.
 */
static int l_trust_locations(lua_State *L) {
  const char *file = luaL_optstring(L, 1, NULL), *dir = luaL_optstring(L, 2, NULL);
  if (file == NULL && dir == NULL) system_locations(&file, &dir);
  lua_pushstring(L, file);
  lua_pushstring(L, dir);
  return 2;
}

void cpt_trust_open(lua_State *L) {
  static const luaL_Reg funcs[] = {{"close_idle", l_close_idle},
                                   {"_trust_stats", l_trust_stats},
                                   {"_trust_locations", l_trust_locations},
                                   {NULL, NULL}};
  lua_getfield(L, LUA_REGISTRYINDEX, POOLS_KEY);
  if (lua_isnil(L, -1)) {
    pools_t **pp = (pools_t **)lua_newuserdata(L, sizeof *pp);
    *pp = NULL;
    if (luaL_newmetatable(L, POOLS_MT)) {
      lua_pushcfunction(L, pools_gc);
      lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    *pp = calloc(1, sizeof **pp);
    if (*pp == NULL) luaL_error(L, "cptokens: out of memory");
    pthread_mutex_lock(&stores_lock);
    live_states++;
    pthread_mutex_unlock(&stores_lock);
    lua_setfield(L, LUA_REGISTRYINDEX, POOLS_KEY);
  }
  lua_pop(L, 1);
  cpt_setfuncs(L, funcs);
}
