#!/bin/sh
# SPDX-License-Identifier: MIT
# The Python binding's suite, as meson runs it (test 'python', suite 'bindings'):
# installs the package into a fresh venv under the build dir with the documented offline
# command, then runs pytest from that venv (so the installed package is what is tested).
# usage: run-tests.sh SOURCE_ROOT VENV_DIR  (HYBRIDD, HYBRID_CLI, HYBRID_LIBRARY from meson)
set -eu
src=$1
venv=$2
rm -rf "$venv"
/usr/bin/python3 -m venv --system-site-packages "$venv"
cd "$src"
PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install --no-build-isolation --no-index \
        --quiet ./bindings/python
# pip builds in the tree: drop what it left there, so a later install never picks up a
# stale module from bindings/python/build
rm -rf bindings/python/build bindings/python/hybrid.egg-info
# run outside the source tree: `import hybrid` must find the installed package
cd "$venv"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$src/bindings/python/tests"
