/*
 * core.c: luaopen_cptokens_core, which opens each area of the module in turn
 * (each C file has one cpt_<area>_open(L) that adds its fields to the table
 * on top of the stack). Nothing else lives here.
 */
#include "cptokens.h"

int luaopen_cptokens_core(lua_State *L) {
  lua_newtable(L);
  lua_pushliteral(L, CPT_VERSION);
  lua_setfield(L, -2, "_VERSION");
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
