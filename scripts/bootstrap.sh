#!/bin/sh
# Installs the Debian packages libhybrid needs, only those missing .
# Needs root (or sudo) only when something is missing.
set -eu
pkgs="gcc pkgconf ninja-build meson libevent-dev libmbedtls-dev libjansson-dev check libyaml-dev
libsqlite3-dev python3-dev python3-venv python3-cffi python3-pytest python3-setuptools python3-wheel
valgrind clang libclang-rt-14-dev mosquitto libmosquitto-dev dbus-daemon dbus-broker libsystemd-dev
lua5.4 sqlite3"
missing=""
for p in $pkgs; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "bootstrap: installing$missing" >&2
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
