rockspec_format = "3.0"
package = "cptokens"
version = "scm-1"
source = {
  url = "git+file:///cptokens",  -- built in place with `luarocks make`
}
description = {
  summary = "Manage cPanel and WHM API tokens from Lua and the shell, safely",
  detailed = [[
    cptokens creates (optionally expiring), lists, renames, revokes, rotates and
    audits cPanel API tokens over HTTPS, from Lua 5.1 to 5.4, LuaJIT and
    nginx/OpenResty, and from a command-line tool. The protocol and HTTP work is
    a C module on libcurl (TLS always verified, one trust store per process);
    rotation never loses the only working token (verify before store, a lock
    and a journal per token file); secrets never appear in output, errors,
    logs or argv.
  ]],
  license = "MIT",
  maintainer = "the cptokens team",
  labels = { "cpanel", "whm", "api", "tokens", "security", "openresty" },
}
dependencies = {
  "lua >= 5.1, < 5.5",
  "lua-cjson >= 2.1",
  "argparse >= 0.7",  -- the command line's parser (Debian: lua-argparse)
  "inifile >= 1.0",   -- cptokens.config's profiles (Debian: lua-inifile)
}
-- libcurl and OpenSSL: LuaRocks checks that the libraries are there; the Makefile finds
-- their headers and flags with pkg-config (Debian keeps curl.h in a multiarch folder that
-- LuaRocks' header search does not see, so no header is named here).
external_dependencies = {
  CURL = { library = "curl" },
  OPENSSL = { library = "ssl" },
}
-- The modules, installed by the Makefile's install rule (check-rockspec.sh checks each):
--   cptokens (init.lua), cptokens.core (csrc/, core.so), cptokens.time, cptokens.store,
--   cptokens.rotate, cptokens.ngx, cptokens.fleet, cptokens.config, cptokens.cli, and the CLI's parts
--   in cptokens/cli/: cptokens.cli.args, .parser, .common, .json, .connect, .tokens, .rotate, .help,
--   .hints, .whm;
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
