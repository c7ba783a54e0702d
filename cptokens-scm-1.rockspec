rockspec_format = "3.0"
package = "cptokens"
version = "scm-1"
source = {
  url = "git+file:///cptokens",  -- built in place with `luarocks make`
}
description = {
  summary = "Manage cPanel API tokens from Lua: create, list, rename, revoke, rotate",
  detailed = [[
    cptokens creates (optionally expiring), lists, renames and revokes cPanel API
    tokens over HTTPS with libcurl, for scripts, automation and nginx/OpenResty.
  ]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1, < 5.5",
  "lua-cjson >= 2.1",
  "argparse >= 0.7",  -- the command line's parser (Debian: lua-argparse)
}
-- libcurl is found by the Makefile with pkg-config (Debian keeps curl.h in a
-- multiarch folder that LuaRocks' external_dependencies search does not see).
-- The modules, installed by the Makefile's install rule (check-rockspec.sh checks each):
--   cptokens (init.lua), cptokens.core (csrc/, core.so), cptokens.time, cptokens.store,
--   cptokens.rotate, cptokens.ngx, cptokens.cli, and the CLI's parts in cptokens/cli/:
--   cptokens.cli.args, .parser, .common, .json, .connect, .tokens, .rotate, .help;
--   bin/cptokens, and the completion scripts (completions/) for bash, zsh and fish.
build = {
  -- One build path: the Makefile, driven with LuaRocks' own variables.
  type = "make",
  build_target = "rock",
  build_variables = {
    CC = "$(CC)",
    CFLAGS = "$(CFLAGS)",
    LIBFLAG = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
  },
  install_target = "install-rock",
  install_variables = {
    PREFIX = "$(PREFIX)",
    LUADIR = "$(LUADIR)",
    LIBDIR = "$(LIBDIR)",
    BINDIR = "$(BINDIR)",
  },
}
