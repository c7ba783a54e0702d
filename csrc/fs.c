/*
 * fs.c: durable secret files and their locks, for the Lua storage layer (store.lua).
 *
 * core.atomic_write(path, data): replaces the file at path (through a
 * symbolic link: its target) with data, atomically and durably: a temporary
 * file in the same directory, created with mode 0600 (never readable by
 * others, not even for a moment), given the owner, group and mode of the file
 * it replaces (without any bit for others), written, fsync'd, renamed over
 * the target, and the directory fsync'd. Temporaries that an earlier writer
 * left behind (killed mid-save) are removed first.
 * core.writable(path): whether a file could be written at path, checked
 * before a token is created so that a bad path loses nothing.
 * core.resolve(path): the file a write to path would replace.
 * core.lock(path, seconds): an exclusive advisory lock (flock) on the file
 * path, waited for at most `seconds`; the file also carries a small journal
 * (core.lock_read / lock:write), so it must be private to the locker.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cptokens.h"

#define LOCK_MT "cptokens.Lock"
#define TMP_SUFFIX ".tmp-XXXXXX"
#define JOURNAL_MAX 65536

/* The directory part of path ("." when none), into out. */
static int dir_of(const char *path, char *out, size_t outlen) {
  const char *slash = strrchr(path, '/');
  size_t n;
  if (slash == NULL) {
    snprintf(out, outlen, ".");
    return 0;
  }
  n = slash == path ? 1 : (size_t)(slash - path);
  if (n + 1 > outlen) return -1;
  memcpy(out, path, n);
  out[n] = '\0';
  return 0;
}

static int fail(lua_State *L, const char *what, const char *path, int e) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s %s: %s", what, path, strerror(e));
  return 2;
}

static const char *check_path(lua_State *L, int idx) {
  size_t len;
  const char *path = luaL_checklstring(L, idx, &len);
  if (len == 0 || strlen(path) != len) luaL_argerror(L, idx, "a path without NUL bytes");
  if (len >= 4000) luaL_argerror(L, idx, "path too long");
  return path;
}

/*
 * The file a write to path replaces, into out: path itself, or the target of
 * the symbolic link at path (resolved all the way). 0, or -1 with errno set
 * (ENOENT for a link whose target is missing).
 */
static int resolve(const char *path, char *out, size_t outlen) {
  struct stat st;
  char buf[PATH_MAX];
  if (lstat(path, &st) != 0 || !S_ISLNK(st.st_mode)) {
    if (strlen(path) + 1 > outlen) return errno = ENAMETOOLONG, -1;
    memcpy(out, path, strlen(path) + 1);
    return 0;
  }
  if (realpath(path, buf) == NULL) return -1;
  {
    struct stat ts;
    /* root following a user's link to a file of someone else's (/etc/shadow): refused */
    if (geteuid() == 0 && stat(buf, &ts) == 0 && ts.st_uid != st.st_uid) return errno = EPERM, -1;
  }
  if (strlen(buf) + 1 > outlen) return errno = ENAMETOOLONG, -1;
  memcpy(out, buf, strlen(buf) + 1);
  return 0;
}

/* core.resolve(path) -> the path a write replaces, or nil, message */
/* core.mode(path) -> the permission bits of the file at path (symbolic links followed)
 * and whether it is a regular file, or nil, message. */
static int l_mode(lua_State *L) {
  const char *path = check_path(L, 1);
  struct stat st;
  if (stat(path, &st) != 0) return fail(L, "cannot read the mode of", path, errno);
  lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
  lua_pushboolean(L, S_ISREG(st.st_mode));
  return 2;
}

static int l_resolve(lua_State *L) {
  const char *path = check_path(L, 1);
  char target[4096];
  if (resolve(path, target, sizeof target) != 0)
    return fail(L, "cannot follow the symbolic link", path, errno);
  lua_pushstring(L, target);
  return 1;
}

/* core.writable(path) -> true, or nil, message */
static int l_writable(lua_State *L) {
  const char *path = check_path(L, 1);
  char target[4096], dir[4096], tmp[4200];
  struct stat st;
  int fd;
  if (resolve(path, target, sizeof target) != 0)
    return fail(L, "cannot follow the symbolic link", path, errno);
  if (dir_of(target, dir, sizeof dir) != 0) return fail(L, "cannot use", path, ENAMETOOLONG);
  if (stat(dir, &st) != 0) return fail(L, "no directory for", path, errno);
  if (!S_ISDIR(st.st_mode)) return fail(L, "no directory for", path, ENOTDIR);
  if (stat(target, &st) == 0 && !S_ISREG(st.st_mode))
    return fail(L, "cannot write", path, S_ISDIR(st.st_mode) ? EISDIR : EINVAL);
  /* Try for real (permissions, read-only mounts, root's exemptions alike). */
  snprintf(tmp, sizeof tmp, "%s" TMP_SUFFIX, target);
  fd = mkstemp(tmp);
  if (fd < 0) return fail(L, "cannot write in the directory of", path, errno);
  close(fd);
  unlink(tmp);
  lua_pushboolean(L, 1);
  return 1;
}

/*
 * Removes "<base>.tmp-XXXXXX" files in dir that this user owns: what a writer
 * killed between mkstemp and rename left behind (they may hold a token).
 * Callers hold the file's lock, so no live writer of the same file exists.
 */
static void remove_stale(const char *dir, const char *target) {
  const char *base = strrchr(target, '/');
  size_t blen, slen = strlen(TMP_SUFFIX);
  DIR *d;
  struct dirent *e;
  base = base ? base + 1 : target;
  blen = strlen(base);
  d = opendir(dir);
  if (d == NULL) return;
  while ((e = readdir(d)) != NULL) {
    struct stat st;
    char full[4200];
    if (strlen(e->d_name) != blen + slen || strncmp(e->d_name, base, blen) != 0 ||
        strncmp(e->d_name + blen, TMP_SUFFIX, slen - 6) != 0)
      continue;
    snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
    if (lstat(full, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid()) unlink(full);
  }
  closedir(d);
}

/* Writes all of data to fd; 0 or -1 (errno set). */
static int write_all(int fd, const char *data, size_t n) {
  size_t off = 0;
  while (off < n) {
    ssize_t w = write(fd, data + off, n - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    off += (size_t)w;
  }
  return 0;
}

/* fsyncs the directory; 0 or an errno (EINVAL: the file system cannot, ignored). */
static int sync_dir(const char *dir) {
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), e = 0;
  if (dfd < 0) return 0;
  if (fsync(dfd) != 0 && errno != EINVAL) e = errno;
  close(dfd);
  return e;
}

/*
 * Gives the new file fd what the old one had: owner, group, and mode without
 * any bit for others (a token file is never readable by everyone); 0600 when
 * there was no old file. 0, or -1 with errno set.
 */
static int take_over(int fd, const char *target) {
  struct stat st;
  if (lstat(target, &st) != 0) return errno == ENOENT ? 0 : -1;
  if (S_ISLNK(st.st_mode)) return 0; /* (only with nofollow: the link is replaced) */
  if ((st.st_uid != geteuid() || st.st_gid != getegid()) && fchown(fd, st.st_uid, st.st_gid) != 0)
    return -1;
  return fchmod(fd, (st.st_mode & 0770) | 0600);
}

/* core.atomic_write(path, data) -> true, or nil, message */
static int l_atomic_write(lua_State *L) {
  size_t n;
  const char *path = check_path(L, 1);
  const char *data = luaL_checklstring(L, 2, &n);
  int nofollow = lua_toboolean(L, 3);
  char target[4096], dir[4096], tmp[4200];
  const char *what = "cannot write";
  int fd, e;
  if (nofollow) {
    /* A path resolved earlier (under the file's lock): a link put there since is replaced,
     * never followed, and lends nothing (take_over looks at the link itself). */
    snprintf(target, sizeof target, "%s", path);
  } else if (resolve(path, target, sizeof target) != 0) {
    return fail(L, "cannot follow the symbolic link", path, errno);
  }
  if (dir_of(target, dir, sizeof dir) != 0) return fail(L, "cannot use", path, ENAMETOOLONG);
  remove_stale(dir, target);
  snprintf(tmp, sizeof tmp, "%s" TMP_SUFFIX, target);
  /* mkstemp creates the file with mode 0600, O_EXCL. */
  fd = mkstemp(tmp);
  if (fd < 0) return fail(L, "cannot create a file beside", path, errno);
  if (fchmod(fd, 0600) != 0) goto failed;
  if (take_over(fd, target) != 0) {
    what = "cannot keep the owner, group and mode of";
    goto failed;
  }
  if (write_all(fd, data, n) != 0 || fsync(fd) != 0) goto failed;
  if (close(fd) != 0) {
    fd = -1;
    goto failed;
  }
  fd = -1;
  if (rename(tmp, target) != 0) goto failed;
  /* The file is replaced now: a directory that cannot be synced must not make the caller
   * think it was not (rotation would revoke the token the file now holds). */
  (void)sync_dir(dir);
  lua_pushboolean(L, 1);
  return 1;
failed:
  e = errno;
  if (fd >= 0) close(fd);
  unlink(tmp);
  return fail(L, what, path, e);
}

/* ---- locks ------------------------------------------------------------------ */

typedef struct {
  int fd; /* -1 once released */
} lock_t;

static int lock_release(lua_State *L) {
  lock_t *k = (lock_t *)luaL_checkudata(L, 1, LOCK_MT);
  if (k->fd >= 0) close(k->fd); /* closing releases the flock */
  k->fd = -1;
  lua_pushboolean(L, 1);
  return 1;
}

static lock_t *check_lock(lua_State *L) {
  lock_t *k = (lock_t *)luaL_checkudata(L, 1, LOCK_MT);
  if (k->fd < 0) luaL_error(L, "cptokens: the lock was released");
  return k;
}

/*
 * lock:write(text) -> true, or nil, message: replaces the journal, durably.
 * The text is written over the start of the file first and the file cut to
 * its length after: a process killed in between (truncating first would leave
 * an empty journal) leaves the new text followed by the old one's tail, so
 * text must end in a newline and readers take the first line.
 */
static int lock_write(lua_State *L) {
  lock_t *k = check_lock(L);
  size_t n, off = 0;
  const char *s = luaL_checklstring(L, 2, &n);
  if (n > JOURNAL_MAX) return luaL_argerror(L, 2, "journal too large");
  while (off < n) {
    ssize_t w = pwrite(k->fd, s + off, n - off, (off_t)off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return fail(L, "cannot write the journal in", "the lock file", errno);
    off += (size_t)w;
  }
  if (ftruncate(k->fd, (off_t)n) != 0 || fsync(k->fd) != 0)
    return fail(L, "cannot write the journal in", "the lock file", errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* lock:read() -> the journal's text ("" when empty), or nil, message */
static int lock_read(lua_State *L) {
  lock_t *k = check_lock(L);
  luaL_Buffer b;
  char buf[4096];
  size_t total = 0;
  if (lseek(k->fd, 0, SEEK_SET) != 0) return fail(L, "cannot read", "the lock file", errno);
  luaL_buffinit(L, &b);
  for (;;) {
    ssize_t r = read(k->fd, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) continue;
      return fail(L, "cannot read", "the lock file", errno);
    }
    if (r == 0 || (total += (size_t)r) > JOURNAL_MAX) break;
    luaL_addlstring(&b, buf, (size_t)r);
  }
  luaL_pushresult(&b);
  return 1;
}

static void sleep_ms(long ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/*
 * core.lock(path, seconds [, like]) -> lock, or nil, message, busy
 * Opens (creating it, mode 0600, owned like the file `like` when it exists)
 * and locks path, polling for at most `seconds`; busy is true when another
 * process held it all that time. Symbolic links are refused.
 */
static int l_lock(lua_State *L) {
  const char *path = check_path(L, 1);
  lua_Number wait = luaL_optnumber(L, 2, 0);
  const char *like = luaL_optstring(L, 3, NULL);
  long waited = 0, limit = wait > 0 ? (long)(wait * 1000) : 0;
  struct stat st, ls;
  lock_t *k;
  int fd, created = 0;
  k = (lock_t *)lua_newuserdata(L, sizeof *k);
  k->fd = -1;
  luaL_getmetatable(L, LOCK_MT);
  lua_setmetatable(L, -2);
  fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd >= 0) {
    created = 1;
  } else if (errno == EEXIST) {
    fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  }
  if (fd < 0) return fail(L, "cannot open the lock file", path, errno);
  k->fd = fd;
  if (fstat(fd, &st) != 0) return fail(L, "cannot use the lock file", path, errno);
  /* Its journal decides what is revoked: only a private file of ours or of the token
   * file's owner will do (no hard link to something else, no stranger's file). */
  if (!S_ISREG(st.st_mode) || st.st_nlink != 1) return fail(L, "cannot use the lock file", path, EINVAL);
  if (like != NULL && stat(like, &ls) == 0) {
    if (st.st_uid != geteuid() && st.st_uid != ls.st_uid)
      return fail(L, "refusing the lock file (owned by another user)", path, EPERM);
    /* So that the account the token file belongs to can rotate it too. */
    if (created && (ls.st_uid != st.st_uid || ls.st_gid != st.st_gid))
      (void)fchown(fd, ls.st_uid, ls.st_gid);
  } else if (st.st_uid != geteuid()) {
    return fail(L, "refusing the lock file (owned by another user)", path, EPERM);
  }
  for (;;) {
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return 1;
    if (errno != EWOULDBLOCK && errno != EINTR) return fail(L, "cannot lock", path, errno);
    if (waited >= limit) {
      lua_pushnil(L);
      lua_pushfstring(L, "another process holds the lock %s", path);
      lua_pushboolean(L, 1);
      return 3;
    }
    sleep_ms(50);
    waited += 50;
  }
}

void cpt_fs_open(lua_State *L) {
  static const luaL_Reg lock_methods[] = {
      {"release", lock_release}, {"read", lock_read}, {"write", lock_write}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"atomic_write", l_atomic_write}, {"writable", l_writable},
                                   {"resolve", l_resolve},           {"lock", l_lock},
                                   {"mode", l_mode},
                                   {NULL, NULL}};
  cpt_class(L, LOCK_MT, lock_methods, lock_release);
  lua_pop(L, 1);
  cpt_setfuncs(L, funcs);
}
