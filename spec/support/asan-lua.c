/*
 * asan-lua.c: a minimal Lua interpreter for `make test-asan`.
 *
 *   build/asan/lua SCRIPT [ARGS...]      (e.g. build/asan/lua /usr/bin/busted ...)
 *
 * Built with clang -fsanitize=address,undefined, so the sanitizer runtime is
 * part of this executable and the instrumented cptokens/core.so that it loads
 * resolves against it. Nothing is preloaded: the programs the specs start
 * (nginx, openssl, make, the shell) run as usual, without the runtime.
 * The state is closed at the end (busted's os.exit(code, true) does the same),
 * so every client's __gc has run when LeakSanitizer looks at the heap.
 */
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

/*
 * Lua unloads C modules when the state closes; LeakSanitizer runs later and
 * could then not name the functions that leaked. Modules stay mapped here.
 */
int dlclose(void *handle);
int dlclose(void *handle) {
  (void)handle;
  return 0;
}

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
  return 1;
}

int main(int argc, char **argv) {
  lua_State *L;
  int i, status;
  if (argc < 2) {
    fprintf(stderr, "usage: %s script [args...]\n", argv[0]);
    return 2;
  }
  L = luaL_newstate();
  if (L == NULL) return 1;
  luaL_openlibs(L);
  /* arg[-1] = this interpreter, arg[0] = the script, arg[1..] = its arguments */
  lua_createtable(L, argc, 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 1);
  }
  lua_setglobal(L, "arg");
  lua_pushcfunction(L, traceback);
  status = luaL_loadfile(L, argv[1]);
  if (status == LUA_OK) {
    for (i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
    status = lua_pcall(L, argc - 2, 0, 1);
  }
  if (status != LUA_OK) fprintf(stderr, "%s: %s\n", argv[0], lua_tostring(L, -1));
  lua_close(L);
  return status == LUA_OK ? 0 : 1;
}
