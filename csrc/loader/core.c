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
 * What that costs: were a library to lose a function core_impl.so calls (a downgrade that its
 * package's dependencies forbid), the process would stop where it is first called, not here.
 *
 * RTLD_NODELETE as the Makefile's -z nodelete (neither file is ever unloaded); RTLD_LOCAL as
 * Lua itself, so that its libraries' symbols never reach other modules.
 */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#define IMPL_FILE "core_impl.so"
#define IMPL_OPEN "luaopen_cptokens_core_impl"

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
int luaopen_cptokens_core(lua_State *L);

int luaopen_cptokens_core(lua_State *L) {
  Dl_info self;
  const char *slash = NULL;
  char path[4096];
  void *impl;
  lua_CFunction open;
  int n;

  /* dli_fname: the path this file was opened by (Lua's, from package.cpath), or the one the
   * dynamic linker found; a sibling is looked for there and nowhere else. */
  if (dladdr((void *)luaopen_cptokens_core, &self) != 0 && self.dli_fname != NULL)
    slash = strrchr(self.dli_fname, '/');
  if (slash == NULL)
    return luaL_error(L, "cptokens.core: cannot tell which folder it was loaded from");
  n = snprintf(path, sizeof path, "%.*s/" IMPL_FILE, (int)(slash - self.dli_fname), self.dli_fname);
  if (n < 0 || (size_t)n >= sizeof path)
    return luaL_error(L, "cptokens.core: the path of its folder is too long");
  impl = dlopen(path, RTLD_LAZY | RTLD_LOCAL | RTLD_NODELETE);
  if (impl == NULL) return luaL_error(L, "cptokens.core: %s", dlerror());
  *(void **)&open = dlsym(impl, IMPL_OPEN); /* POSIX's way from an object to a function pointer */
  if (open == NULL) return luaL_error(L, "cptokens.core: %s has no %s", path, IMPL_OPEN);
  return open(L);
}
