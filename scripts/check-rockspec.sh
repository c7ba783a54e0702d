#!/bin/sh
# Builds and installs the rockspec with `luarocks make` into a scratch tree,
# then loads the installed module from there alone and checks what it holds.
set -eu
LUA_VERSION=${LUA_VERSION:-5.4}
LUA=${LUA:-lua$LUA_VERSION}
tree=$(mktemp -d /tmp/cptokens-rock.XXXXXX)
trap 'rm -rf "$tree"' EXIT
# The release rockspec and the scm one describe the same build: they differ only in version
# and source tag, and the release's version is the one the module reports. Once CHANGELOG's
# "Unreleased" section holds changes, the scm rockspec may be ahead (a new module or
# dependency); at a release (the section says "(Nothing yet.)") they must agree again.
release=$(ls cptokens-[0-9]*.rockspec | sort -V | tail -n 1)
sed -e '/^version = /d' -e '/^  tag = /d' "$release" >"$tree/release.txt"
sed -e '/^version = /d' -e '/^  tag = /d' cptokens-scm-1.rockspec >"$tree/scm.txt"
unreleased=$(sed -n '/^## Unreleased/,/^## [0-9]/p' CHANGELOG.md | grep -c '^- ' || true)
if ! cmp -s "$tree/release.txt" "$tree/scm.txt"; then
  if [ "$unreleased" -eq 0 ]; then
    echo "check-rockspec: $release and cptokens-scm-1.rockspec differ beyond version and tag" >&2; exit 1
  fi
  echo "check-rockspec: cptokens-scm-1.rockspec is ahead of $release ($unreleased unreleased changes in CHANGELOG.md)"
fi
want=$(sed -n 's/^version = "\([0-9.]*\)-[0-9]*"$/\1/p' "$release")
grep -q "define CPT_VERSION \"$want\"" csrc/version.h ||
  { echo "check-rockspec: $release is $want but csrc/version.h says otherwise" >&2; exit 1; }
grep -q "^local VERSION = \"$want\"" lua/cptokens/init.lua ||
  { echo "check-rockspec: $release is $want but lua/cptokens/init.lua says otherwise" >&2; exit 1; }
grep -q "cptokens $want" docs/cptokens.1 ||
  { echo "check-rockspec: docs/cptokens.1 does not name version $want" >&2; exit 1; }
grep -q "^## $want " CHANGELOG.md ||
  { echo "check-rockspec: CHANGELOG.md has no section for $want" >&2; exit 1; }
luarocks --lua-version "$LUA_VERSION" --tree "$tree" make --deps-mode=none \
  "$release" >"$tree/build.log" 2>&1 || { cat "$tree/build.log"; exit 1; }
for f in lua/cptokens/*.lua lua/cptokens/cli/*.lua; do
  test -f "$tree/share/lua/$LUA_VERSION/${f#lua/}" ||
    { echo "check-rockspec: $f was not installed" >&2; exit 1; }
done
for f in core.so core_impl.so; do
  test -f "$tree/lib/lua/$LUA_VERSION/cptokens/$f" ||
    { echo "check-rockspec: $f was not installed" >&2; exit 1; }
done
# Only the scratch tree (and the system's lua-cjson) on the paths: not the work tree.
"$LUA" -e "
  package.path = '$tree/share/lua/$LUA_VERSION/?.lua;$tree/share/lua/$LUA_VERSION/?/init.lua;' .. package.path
  package.cpath = '$tree/lib/lua/$LUA_VERSION/?.so;' .. package.cpath
  local c = require 'cptokens'
  assert(package.searchpath == nil or package.searchpath('cptokens.core', package.cpath):find('$tree', 1, true),
    'core.so loaded from outside the rock tree')
  assert(c._VERSION == '$want', 'the rock reports ' .. c._VERSION .. ', not $want')
  print('check-rockspec: luarocks make installed cptokens ' .. c._VERSION .. ' for Lua $LUA_VERSION')
"
