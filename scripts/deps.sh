#!/bin/sh
# Installs the Debian packages cptokens needs to build, test and run its demo.
# As root it runs apt-get itself; otherwise it prints the exact line to run.
# Extra packages can be named as arguments (e.g. "lua5.1 liblua5.1-0-dev").
set -eu

PKGS="gcc make pkg-config libcurl4-openssl-dev libssl-dev
lua5.4 liblua5.4-dev lua-cjson lua-argparse lua-inifile
lua-busted lua-check lua-socket luarocks lua-ldoc
nginx-light libnginx-mod-http-lua openssl curl valgrind $*"

missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "cptokens needs these Debian packages; run as root:" >&2
  echo "  apt-get update && apt-get install -y$missing" >&2
  exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists yet; refresh them before installing.
apt-get update -qq
# The nginx package may try to start a system nginx on port 80; that is not
# ours and must not make the install fail (no init system in containers).
apt-get install -y -qq --no-install-recommends $missing >/dev/null
