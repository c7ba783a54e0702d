/*
 * loader/core.c: cptokens/core.so, what `require "cptokens.core"` loads. It loads the
 * module itself, cptokens/core_impl.so (the C files of csrc/), from the folder it was loaded
 * from, and opens it (luaopen_cptokens_core_impl). Nothing else lives here; it needs only libc.
 *
 * Why a loader: Lua's package.loadlib, LuaJIT's and OpenResty's, dlopen() a C module with
 * RTLD_NOW, and RTLD_NOW reaches every library the module brings in: the dynamic linker
 * then resolves at once every function reference of libcurl's thirty-odd libraries (nghttp2,
 * libssh2, librtmp, GnuTLS and nettle through them, ...), half of which are built to bind
 * lazily. Loaded RTLD_LAZY, as the dynamic linker loads them for a program such as curl,
 * only what is called is bound: a `cptokens` process starts about 0.5 ms sooner (10.6 ms
 * against 10.1 ms, the median of 400 runs of `cptokens list`; bench/RESULTS.md, section 7).
 * What that could cost, and what is checked here instead, before anything is bound:
 *   - a library that lacks a function core_impl.so calls would stop the process where the
 *     function is first called: the module refuses a libcurl older than the newest function it
 *     calls (cpt_curl_open in curl.c), the one library whose name stays the same across such
 *     versions;
 *   - a loader built for one Lua opened by another (a careless LUA_CPATH): this file is opened
 *     by Lua's own RTLD_NOW and checks the Lua version (luaL_checkversion; a 5.1 build names a
 *     function 5.2 and later lack), so the module is never opened into the wrong Lua;
 *   - a core_impl.so of another version beside it (an upgrade half done, two rocks in one
 *     tree): the version it reports must be this file's, CPT_VERSION.
 * Neither file is ever unloaded (RTLD_NODELETE here, -z nodelete in the Makefile): libcurl's
 * resolver threads may outlive a lua_close. A process that opens a new Lua state after the
 * files were replaced (an nginx reload) keeps the old module; lua/cptokens/init.lua then
 * refuses the mix of versions, and the process has to be restarted.
 *
 * RTLD_LOCAL as Lua itself, so that the libraries' symbols never reach other modules.
 */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "../version.h"

#define IMPL_FILE "core_impl.so"
#define IMPL_OPEN "luaopen_cptokens_core_impl"

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
int luaopen_cptokens_core(lua_State *L);

/* What dladdr is asked about: a static object is addressed relative to this file's own code,
 * so another copy of the loader loaded globally cannot stand in for it (an exported function's
 * address would come through the global offset table). */
static const char self_marker = 0;

/* path := the folder of file, then "/" IMPL_FILE; 0, or -1 when it does not fit. */
static int sibling(char *path, size_t size, const char *file) {
  const char *slash = strrchr(file, '/');
  int n;
  if (slash == NULL) return -1;
  n = snprintf(path, size, "%.*s/" IMPL_FILE, (int)(slash - file), file);
  return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* The Lua that opened this file is the one it was built for (run protected, so that the error
 * can say which file it is about). */
static int check_lua(lua_State *L) {
#if LUA_VERSION_NUM >= 502
  luaL_checkversion(L); /* raises "version mismatch: ..." */
#else
  /* 5.2 and later have no lua_setfenv: Lua's RTLD_NOW has already refused this file there. */
  int (*volatile named)(lua_State *, int) = lua_setfenv;
  (void)named;
  (void)L;
#endif
  return 0;
}

int luaopen_cptokens_core(lua_State *L) {
  Dl_info self;
  char path[PATH_MAX + sizeof IMPL_FILE + 1];
  char real[PATH_MAX];
  void *impl;
  lua_CFunction open;
  const char *version;

  /* dli_fname: the path this file was opened by (Lua's, from package.cpath), or the one the
   * dynamic linker found; the module is looked for there, and, where that is a symbolic link
   * (a packager's), beside the file it names; nowhere else. */
  if (dladdr((const void *)&self_marker, &self) == 0 || self.dli_fname == NULL)
    return luaL_error(L, "cptokens.core: cannot tell which folder it was loaded from");
  lua_pushcfunction(L, check_lua);
  if (lua_pcall(L, 0, 0, 0) != 0)
    return luaL_error(L, "cptokens.core: %s is built for another Lua than this one: %s", self.dli_fname,
                      lua_tostring(L, -1));
  if (sibling(path, sizeof path, self.dli_fname) != 0)
    return luaL_error(L, "cptokens.core: cannot tell which folder it was loaded from: %s", self.dli_fname);
  impl = dlopen(path, RTLD_LAZY | RTLD_LOCAL | RTLD_NODELETE);
  if (impl == NULL) {
    const char *err;
    lua_pushstring(L, dlerror());
    err = lua_tostring(L, -1);
    if (realpath(self.dli_fname, real) == NULL || sibling(path, sizeof path, real) != 0 ||
        (impl = dlopen(path, RTLD_LAZY | RTLD_LOCAL | RTLD_NODELETE)) == NULL)
      return luaL_error(L, "cptokens.core: %s", err);
    lua_pop(L, 1);
  }
  *(void **)&open = dlsym(impl, IMPL_OPEN); /* POSIX's way from an object to a function pointer */
  if (open == NULL) return luaL_error(L, "cptokens.core: %s has no %s (%s)", path, IMPL_OPEN, dlerror());
  lua_pushcfunction(L, open);
  lua_call(L, 0, 1);
  lua_getfield(L, -1, "_VERSION");
  version = lua_tostring(L, -1);
  if (version == NULL || strcmp(version, CPT_VERSION) != 0)
    return luaL_error(L, "cptokens.core: %s is cptokens %s, this loader (%s) %s: install both files again", path,
                      version ? version : "of no version", self.dli_fname, CPT_VERSION);
  lua_pop(L, 1);
  return 1;
}
