#!/bin/sh
# SPDX-License-Identifier: MIT
# Access lists (forHost / forApp) through `hybrid serve --for-host/--for-app` and
# `hybrid call --app`, one case per line of acl-cases.txt; then the same lists on an
# event (`fire --for-app`) seen by pattern subscribers of two apps.
. "$(dirname "$0")/lib.sh"
TAB=$(printf '\t')

start_daemon acl "log: {level: warning}" || finish

cases=0
while IFS="$TAB" read -r host app caller want; do
        case "$host" in ''|'#'*) continue ;; esac
        cases=$((cases + 1))
        set -- getX '{"ok":true}' --app org.example.owner --runner acl$cases
        [ "$host" = - ] || set -- "$@" --for-host "$host"
        [ "$app" = - ] || set -- "$@" --for-app "$app"
        serve_bg acl$cases "$@" || continue
        if [ "$want" = 0 ]; then
                expect "host '$host' app '$app' allows $caller" 0 '{"ok":true}' \
                        hy --app "$caller" call "@localhost/org.example.owner/acl$cases" getX
        else
                expect_err "host '$host' app '$app' denies $caller with 403" 1 \
                        '^hybrid: call: 403 ' hy --app "$caller" call "@localhost/org.example.owner/acl$cases" getX
        fi
        stop "$BPID"
done <"$HYB_IT_DIR/acl-cases.txt"
check "read the access-list cases" [ "$cases" -ge 20 ]

expect_err "a malformed list is refused with 406" 2 '^hybrid: serve: 406 ' \
        hy serve getX '{}' --for-app 'org.example.*, !'

# Events: subscribers are filtered by the bubble's lists too.
bg la hy --app org.example.yes listen '@localhost/org.example.gen/*' 'T*'
bg lb hy --app org.other.no listen '@localhost/org.example.gen/*' 'T*'
ready la; ready lb
expect "fire --for-app: only the allowed app's listener counts" 0 '{"delivered":1,"failed":0}' \
        hy --app org.example.gen --runner g fire T1 '{}' --for-app 'org.example.*'
check "the allowed listener got the event" wait_until 5 has_line "$T/la.out" 'T1'
sleep 0.2
check "the denied listener did not" [ ! -s "$T/lb.out" ]
finish
