#!/bin/sh
# Builds and installs the rockspec with `luarocks make` into a scratch tree,
# then loads the installed module from there alone and checks what it holds.
set -eu
LUA_VERSION=${LUA_VERSION:-5.4}
LUA=${LUA:-lua$LUA_VERSION}
tree=$(mktemp -d /tmp/cptokens-rock.XXXXXX)
trap 'rm -rf "$tree"' EXIT
luarocks --lua-version "$LUA_VERSION" --tree "$tree" make --deps-mode=none \
  cptokens-scm-1.rockspec >"$tree/build.log" 2>&1 || { cat "$tree/build.log"; exit 1; }
for f in lua/cptokens/*.lua lua/cptokens/cli/*.lua; do
  test -f "$tree/share/lua/$LUA_VERSION/${f#lua/}" ||
    { echo "check-rockspec: $f was not installed" >&2; exit 1; }
done
test -f "$tree/lib/lua/$LUA_VERSION/cptokens/core.so" ||
  { echo "check-rockspec: core.so was not installed" >&2; exit 1; }
# Only the scratch tree (and the system's lua-cjson) on the paths: not the work tree.
"$LUA" -e "
  package.path = '$tree/share/lua/$LUA_VERSION/?.lua;$tree/share/lua/$LUA_VERSION/?/init.lua;' .. package.path
  package.cpath = '$tree/lib/lua/$LUA_VERSION/?.so;' .. package.cpath
  local c = require 'cptokens'
  assert(package.searchpath == nil or package.searchpath('cptokens.core', package.cpath):find('$tree', 1, true),
    'core.so loaded from outside the rock tree')
  assert(c._VERSION:match('^%d+%.%d+%.%d+$'), 'bad _VERSION')
  print('check-rockspec: luarocks make installed cptokens ' .. c._VERSION .. ' for Lua $LUA_VERSION')
"
