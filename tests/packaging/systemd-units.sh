#!/bin/sh
# SPDX-License-Identifier: MIT
# The systemd units of examples/systemd (doc/hybridd.md "Running under systemd"): what the
# issue asks of them (hybridd Type=notify, reload by SIGHUP, hardening; each service after
# and requiring hybridd), the installable copies with @bindir@ substituted, and
# `systemd-analyze verify` and `security` (which must rate them OK) on the copies whose
# ExecStart= names the programs of the build tree (so nothing needs installing).  A
# service whose program is not built here is reported and skipped; without systemd-analyze
# the verify part is skipped (exit 77 when nothing could be verified).
# Usage: systemd-units.sh VERIFY-DIR INSTALL-DIR
set -u
vdir=$(cd "$1" && pwd) idir=$2
fail=0 verified=0
bad() { echo "FAIL: $*"; fail=1; }
has() { grep -qx -- "$2" "$1" || bad "$(basename "$1"): no line '$2'"; }

u=$vdir/hybridd.service
for line in 'Type=notify' 'ExecReload=kill -HUP $MAINPID' 'ProtectSystem=strict' \
            'ProtectHome=yes' 'NoNewPrivileges=yes' 'PrivateTmp=yes' 'RuntimeDirectory=hybrid' \
            'StateDirectory=hybrid' 'ConfigurationDirectory=hybrid' 'CapabilityBoundingSet=' \
            'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6'; do
        has "$u" "$line"
done
for s in hybrid-logd hybrid-sysinfo hybrid-sensor-sim; do
        has "$vdir/$s.service" 'Requires=hybridd.service'
        has "$vdir/$s.service" 'After=hybridd.service'
        has "$vdir/$s.service" 'NoNewPrivileges=yes'
        has "$vdir/$s.service" "ExecStart=$(dirname "$(dirname "$vdir")")/services/$s"
done
for f in "$idir"/*.service; do
        grep -Eq '@[a-z_]+@' "$f" && bad "$(basename "$f"): an @...@ left unsubstituted"
        grep -Eq '^ExecStart=/[^ ]*/bin/hybrid' "$f" || bad "$(basename "$f"): ExecStart= not in a bindir"
done
[ "$(ls "$idir"/*.service | wc -l)" -eq 4 ] || bad "not 4 installable units in $idir"

if ! command -v systemd-analyze >/dev/null; then
        echo "systemd-analyze not installed: units not verified"
        [ $fail -eq 0 ] && exit 77
        exit 1
fi
for u in "$vdir"/*.service; do
        prog=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$u")
        if [ ! -x "$prog" ]; then
                echo "skip $(basename "$u"): $prog is not built in this tree"
                continue
        fi
        # --man=no: the man pages are not installed either
        out=$(systemd-analyze verify --man=no "$u" 2>&1)
        rc=$?
        if [ $rc -ne 0 ] || printf '%s\n' "$out" | grep -q "$(basename "$u")"; then
                bad "systemd-analyze verify $(basename "$u") (exit $rc): $out"
        else
                echo "ok $(basename "$u"): systemd-analyze verify"
                verified=$((verified + 1))
        fi
done
# The hardening as systemd rates it (OK is its best band, below MEDIUM, EXPOSED, UNSAFE);
# --offline (systemd 250 and later) reads the file without a running manager.
if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
        for u in "$vdir"/*.service; do
                out=$(systemd-analyze security --offline=yes "$u" 2>&1 | grep 'Overall exposure level')
                case $out in
                *": "[0-9]*" OK"*) echo "ok $(basename "$u"): ${out#→ }" ;;
                *) bad "systemd-analyze security $(basename "$u"): '$out', wanted an OK level" ;;
                esac
        done
fi
[ $fail -eq 0 ] && [ $verified -eq 0 ] && { echo "SKIP: nothing verified"; exit 77; }
exit $fail
