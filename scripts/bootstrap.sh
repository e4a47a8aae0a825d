#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the Debian 12 packages one use of libhybrid needs, only those missing.
# Needs root (or sudo) only when something is missing.
#
# usage: scripts/bootstrap.sh [build|demo|test|bench|all]  install the set (default: all)
#        scripts/bootstrap.sh --list SET               print the set, one package a line
#   build  compile and install the library, the tools and their man pages (systemd: its
#          systemd.pc names where the units of examples/systemd go; its systemd-analyze
#          verifies them in the tests) and the Lua binding (SWIG, the Lua 5.4 headers)
#   demo   what scripts/demo runs: the build set (the demo uses the built programs), and
#          cffi and Node for its Python and Node clients, curl for its HTTP call
#   test   what scripts/test runs: the build set, Check, Python for the test scripts,
#          man for the man page test, clang for the fuzz and sanitizer runs, sqlite3,
#          openssl + Python cryptography + PyJWT (keys and tokens made by other tools),
#          curl (the HTTP edge's tests),
#          and the peers of the optional tests and benchmarks (the bench set)
#   bench  the build set and the peers bench/ measures against: SQLite is linked already;
#          redis-server + libhiredis-dev, mosquitto + libmosquitto-dev, Lua 5.4, sd-bus and
#          the D-Bus daemons, and dbus-python, paho-mqtt, cffi and Node for
#          bench/run-bindings.sh, nginx and curl for bench/run-edge.sh (each optional for
#          the build: a missing one leaves its column empty)
#   all    the test set (valgrind included: the CLI leak test and scripts/check-memory use it)
set -eu

build="gcc pkgconf ninja-build meson libevent-dev libmbedtls-dev libjansson-dev libyaml-dev
libsqlite3-dev libedit-dev go-md2man systemd swig liblua5.4-dev libwslay-dev libcoap3-dev
libmosquitto-dev"
demo="$build python3-cffi nodejs curl mosquitto mosquitto-clients"
test="$build check python3 python3-dev python3-venv python3-cffi python3-pytest
python3-setuptools python3-wheel man-db clang libclang-rt-14-dev sqlite3 util-linux mosquitto
libmosquitto-dev dbus-daemon dbus-broker libsystemd-dev lua5.4 nodejs valgrind redis-server
python3-dbus python3-paho-mqtt mosquitto-clients
libhiredis-dev openssl curl python3-cryptography python3-jwt libcoap3-bin python3-websockets
python3-openssl chromium chromium-driver strace"
bench="$build redis-server libhiredis-dev mosquitto libmosquitto-dev lua5.4 dbus-daemon
dbus-broker libsystemd-dev util-linux python3-cffi python3-dbus python3-paho-mqtt nodejs nginx curl"
all="$test"

list=0
if [ "${1:-}" = --list ]; then
        list=1
        shift
fi
case "${1:-all}" in
build) pkgs=$build ;;
demo) pkgs=$demo ;;
test) pkgs=$test ;;
bench) pkgs=$bench ;;
all) pkgs=$all ;;
*)
        echo "usage: scripts/bootstrap.sh [--list] [build|demo|test|bench|all]" >&2
        exit 2
        ;;
esac
if [ $list = 1 ]; then
        # shellcheck disable=SC2086
        printf '%s\n' $pkgs
        exit 0
fi

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
