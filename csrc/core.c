/*
 * core.c: luaopen_cptokens_core_impl, which opens each area of the module in turn
 * (each C file has one cpt_<area>_open(L) that adds its fields to the table
 * on top of the stack), and gives the Lua layer the constants it would otherwise
 * copy: _VERSION, NAME_MAX, EXPIRES_MAX and EXPIRES_MAX_TEXT (the exact decimal,
 * for messages on Lua builds whose numbers are doubles). Nothing else lives here.
 */
#include <stdio.h>

#include "cptokens.h"

static void push_constants(lua_State *L) {
  char text[32];
  lua_pushliteral(L, CPT_VERSION);
  lua_setfield(L, -2, "_VERSION");
  lua_pushinteger(L, CPT_NAME_MAX);
  lua_setfield(L, -2, "NAME_MAX");
  lua_pushinteger(L, (lua_Integer)CPT_EXPIRES_MAX); /* rounded where lua_Integer is a double */
  lua_setfield(L, -2, "EXPIRES_MAX");
  snprintf(text, sizeof text, "%lld", (long long)CPT_EXPIRES_MAX);
  lua_pushstring(L, text);
  lua_setfield(L, -2, "EXPIRES_MAX_TEXT");
}

int luaopen_cptokens_core_impl(lua_State *L) {
  lua_newtable(L);
  push_constants(L);
  cpt_error_open(L);
  cpt_ops_open(L);
  cpt_scrub_open(L);
  cpt_response_open(L);
  cpt_curl_open(L);
  cpt_trust_open(L);
  cpt_client_open(L);
  cpt_fs_open(L);
  cpt_batch_open(L);
  cpt_proc_open(L);
  return 1;
}
