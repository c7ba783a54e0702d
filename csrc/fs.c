/*
 * fs.c: durable secret files, for the Lua storage layer (store.lua).
 *
 * core.atomic_write(path, data): a temporary file in the same directory,
 * created with mode 0600 (never readable by others, not even for a moment),
 * written, fsync'd, renamed over path, and the directory fsync'd.
 * core.writable(path): whether a file could be written at path, checked
 * before a token is created so that a bad path loses nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cptokens.h"

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

static int check_path(lua_State *L, const char *path, size_t len) {
  if (len == 0 || strlen(path) != len) return luaL_argerror(L, 1, "a path without NUL bytes");
  if (len >= 4000) return luaL_argerror(L, 1, "path too long");
  return 0;
}

/* core.writable(path) -> true, or nil, message */
static int l_writable(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  char dir[4096], tmp[4200];
  struct stat st;
  int fd;
  check_path(L, path, len);
  if (dir_of(path, dir, sizeof dir) != 0) return fail(L, "cannot use", path, ENAMETOOLONG);
  if (stat(dir, &st) != 0) return fail(L, "no directory for", path, errno);
  if (!S_ISDIR(st.st_mode)) return fail(L, "no directory for", path, ENOTDIR);
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return fail(L, "cannot write", path, EISDIR);
  /* Try for real (permissions, read-only mounts, root's exemptions alike). */
  snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path);
  fd = mkstemp(tmp);
  if (fd < 0) return fail(L, "cannot write in the directory of", path, errno);
  close(fd);
  unlink(tmp);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.atomic_write(path, data) -> true, or nil, message */
static int l_atomic_write(lua_State *L) {
  size_t len, n, off = 0;
  const char *path = luaL_checklstring(L, 1, &len);
  const char *data = luaL_checklstring(L, 2, &n);
  char dir[4096], tmp[4200];
  int fd, dfd, e;
  check_path(L, path, len);
  if (dir_of(path, dir, sizeof dir) != 0) return fail(L, "cannot use", path, ENAMETOOLONG);
  snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path);
  /* mkstemp creates the file with mode 0600, O_EXCL. */
  fd = mkstemp(tmp);
  if (fd < 0) return fail(L, "cannot create a file beside", path, errno);
  if (fchmod(fd, 0600) != 0) goto failed;
  while (off < n) {
    ssize_t w = write(fd, data + off, n - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      goto failed;
    }
    off += (size_t)w;
  }
  if (fsync(fd) != 0) goto failed;
  if (close(fd) != 0) {
    fd = -1;
    goto failed;
  }
  fd = -1;
  if (rename(tmp, path) != 0) goto failed;
  dfd = open(dir, O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    e = fsync(dfd) != 0 ? errno : 0;
    close(dfd);
    if (e != 0 && e != EINVAL) return fail(L, "cannot sync the directory of", path, e);
  }
  lua_pushboolean(L, 1);
  return 1;
failed:
  e = errno;
  if (fd >= 0) close(fd);
  unlink(tmp);
  return fail(L, "cannot write", path, e);
}

void cpt_fs_open(lua_State *L) {
  lua_pushcfunction(L, l_atomic_write);
  lua_setfield(L, -2, "atomic_write");
  lua_pushcfunction(L, l_writable);
  lua_setfield(L, -2, "writable");
}
