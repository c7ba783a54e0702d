/*
 * compat.h: the only place that looks at LUA_VERSION_NUM.
 *
 * The code is written against the Lua 5.3/5.4 API; what 5.1, LuaJIT and 5.2
 * lack is backfilled here.
 */
#ifndef CPT_COMPAT_H
#define CPT_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502

#define cpt_rawlen(L, i) lua_objlen((L), (i))
#define cpt_absindex(L, i) \
  ((i) > 0 || (i) <= LUA_REGISTRYINDEX ? (i) : lua_gettop(L) + (i) + 1)

static inline void cpt_setfuncs(lua_State *L, const luaL_Reg *l) {
  for (; l->name != NULL; l++) {
    lua_pushcfunction(L, l->func);
    lua_setfield(L, -2, l->name);
  }
}

static inline void cpt_rawgetp(lua_State *L, int idx, const void *p) {
  if (idx < 0 && idx > LUA_REGISTRYINDEX) idx = lua_gettop(L) + idx + 1;
  lua_pushlightuserdata(L, (void *)p);
  lua_rawget(L, idx);
}

static inline void cpt_rawsetp(lua_State *L, int idx, const void *p) {
  if (idx < 0 && idx > LUA_REGISTRYINDEX) idx = lua_gettop(L) + idx + 1;
  lua_pushlightuserdata(L, (void *)p);
  lua_insert(L, -2);
  lua_rawset(L, idx);
}

#else

#define cpt_rawlen(L, i) lua_rawlen((L), (i))
#define cpt_absindex(L, i) lua_absindex((L), (i))
#define cpt_setfuncs(L, l) luaL_setfuncs((L), (l), 0)
#define cpt_rawgetp(L, i, p) ((void)lua_rawgetp((L), (i), (p)))
#define cpt_rawsetp(L, i, p) lua_rawsetp((L), (i), (p))

#endif

/* An epoch (Unix seconds) as a Lua value: an integer where Lua has them. */
#if LUA_VERSION_NUM >= 503
#define cpt_pushepoch(L, v) lua_pushinteger((L), (lua_Integer)(v))
#else
#define cpt_pushepoch(L, v) lua_pushnumber((L), (lua_Number)(v))
#endif

/*
 * Reads the number at idx as a whole number of seconds into *out.
 * Returns 0 when it is not a whole number (or out of range).
 */
static inline int cpt_toepoch(lua_State *L, int idx, long long *out) {
  lua_Number n;
#if LUA_VERSION_NUM >= 503
  if (lua_isinteger(L, idx)) {
    *out = (long long)lua_tointeger(L, idx);
    return 1;
  }
#endif
  n = lua_tonumber(L, idx);
  if (!(n >= -9.2e18 && n <= 9.2e18)) return 0; /* also NaN */
  if (n != (lua_Number)(long long)n) return 0;
  *out = (long long)n;
  return 1;
}

/* Lua 5.4's <close> calls __close; older versions simply never do. */
#if LUA_VERSION_NUM >= 504
#define CPT_HAVE_CLOSE 1
#else
#define CPT_HAVE_CLOSE 0
#endif

#endif
