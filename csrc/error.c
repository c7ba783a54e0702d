/*
 * error.c: the error type every area returns.
 *
 * An error is a plain table {kind, message, status?, errors?} with the
 * metatable "cptokens.Error", whose __tostring gives "cptokens: kind: message".
 * It depends on nothing but Lua: every other area may call it.
 *
 * Misuse (a wrong type, an unknown option) raises instead; cpt_misuse and
 * cpt_argerror raise at the caller's line, the first frame outside the
 * library's own Lua modules (init.lua wraps several C functions: its line is
 * not where the mistake is).
 *
 * cpt_class makes the metatable of a userdata type with methods and one
 * idempotent destructor (for __gc and __close), for every area that has one.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cptokens.h"

#define ERROR_MT "cptokens.Error"

static void push_error(lua_State *L, const char *kind, long status, const char *msg) {
  lua_createtable(L, 0, 4);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, msg);
  lua_setfield(L, -2, "message");
  if (status > 0) {
    lua_pushinteger(L, (lua_Integer)status);
    lua_setfield(L, -2, "status");
  }
  luaL_getmetatable(L, ERROR_MT);
  lua_setmetatable(L, -2);
}

int cpt_error(lua_State *L, const char *kind, long status, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  lua_pushnil(L);
  push_error(L, kind, status, msg);
  return 2;
}

int cpt_error_with(lua_State *L, const char *kind, long status, int errors_idx, const char *msg) {
  errors_idx = cpt_absindex(L, errors_idx);
  lua_pushnil(L);
  push_error(L, kind, status, msg);
  lua_pushvalue(L, errors_idx);
  lua_setfield(L, -2, "errors");
  return 2;
}

int cpt_is_error(lua_State *L, int idx) {
  int is;
  if (!lua_getmetatable(L, idx)) return 0;
  luaL_getmetatable(L, ERROR_MT);
  is = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return is;
}

/* 1 when src (a chunk name without its '@') is a Lua file directly in a folder
 * named cptokens, but the CLI: the library's own modules, which call C for
 * their caller. */
static int is_library(const char *src) {
  const char *slash = strrchr(src, '/');
  size_t dir;
  if (slash == NULL || strcmp(slash, "/cli.lua") == 0) return 0;
  dir = (size_t)(slash - src);
  if (dir < 8 || strncmp(slash - 8, "cptokens", 8) != 0) return 0;
  if (dir > 8 && slash[-9] != '/') return 0;
  return strlen(slash) > 5 && strcmp(slash + strlen(slash) - 4, ".lua") == 0;
}

void cpt_where(lua_State *L) {
  lua_Debug ar;
  int level;
  for (level = 1; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "Sl", &ar);
    if (ar.currentline <= 0) continue; /* a C function, or a tail call's trace */
    if (ar.source[0] == '@' && is_library(ar.source + 1)) continue;
    lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
    return;
  }
  lua_pushliteral(L, "");
}

int cpt_misuse(lua_State *L, const char *fmt, ...) {
  va_list ap;
  cpt_where(L);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 2);
  return lua_error(L);
}

int cpt_argerror(lua_State *L, int arg, const char *fname, const char *msg) {
  return cpt_misuse(L, "bad argument #%d to '%s' (%s)", arg, fname, msg);
}

int cpt_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction destroy) {
  if (!luaL_newmetatable(L, name)) return 0;
  lua_newtable(L);
  cpt_setfuncs(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, destroy);
  lua_setfield(L, -2, "__gc");
#if CPT_HAVE_CLOSE
  lua_pushcfunction(L, destroy);
  lua_setfield(L, -2, "__close");
#endif
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  return 1;
}

static int error_tostring(lua_State *L) {
  lua_getfield(L, 1, "kind");
  lua_getfield(L, 1, "message");
  lua_pushfstring(L, "cptokens: %s: %s", luaL_optstring(L, -2, "?"), luaL_optstring(L, -1, "?"));
  return 1;
}

/* Every error kind (cptokens.h), in the order README's table gives them. */
static const char *const kinds[] = {CPT_EINVALID, CPT_EAUTH,    CPT_EAPI,     CPT_EHTTP,
                                    CPT_ETLS,     CPT_ETIMEOUT, CPT_ENETWORK, CPT_EPROTOCOL,
                                    NULL};

/* core.error(kind, message [, status]) -> a new error object (for the Lua layer). */
static int l_error(lua_State *L) {
  int k = luaL_checkoption(L, 1, NULL, kinds);
  const char *msg = luaL_checkstring(L, 2);
  long status = (long)luaL_optinteger(L, 3, 0);
  push_error(L, kinds[k], status, msg);
  return 1;
}

void cpt_error_open(lua_State *L) {
  int i;
  if (luaL_newmetatable(L, ERROR_MT)) {
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushstring(L, ERROR_MT);
    lua_setfield(L, -2, "__name");
  }
  lua_setfield(L, -2, "Error");
  lua_pushcfunction(L, l_error);
  lua_setfield(L, -2, "error");
  lua_newtable(L); /* core.KINDS: kind -> true */
  for (i = 0; kinds[i]; i++) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, kinds[i]);
  }
  lua_setfield(L, -2, "KINDS");
}
