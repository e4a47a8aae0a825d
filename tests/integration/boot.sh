#!/bin/sh
# SPDX-License-Identifier: MIT
# hybridd boots from its YAML file (doc/config.md "store" and "boot"): boot data
# written only where the fURI holds nothing, boot programs run in order before the
# socket appears, their subscriptions and threads running in the daemon, a program
# error reported with its position while the daemon goes on.  The store is a file
# here so that the CLI (an embedded store on the same file) sees the daemon's writes.
. "$HYB_IT_DIR/lib.sh"

D=$T/store.db
db() { "$HYBRID" --db "$D" "$@"; }

# a value that is already there is kept
expect "seed /config/keep" 0 "" db store put /config/keep "'mine'"

cat >"$T/rules.mmadt" <<'EOF'
/rules/loaded -> true
/rules/x -> 1.plus('one')
EOF

# programs[3] counts a long range: the socket must not appear before it is done
start_daemon boot "store:
  path: $D
  durability: normal
boot:
  data:
    /config/mode: \"'auto'\"
    /config/keep: \"'default'\"
    /config/limits: \"[max=>10]\"
    /config/bad: \"[1,\"
  programs:
    - inline: \"/in?sub -> |(plus(1).to(/out))\"
    - inline: \"/first -> 1; 2.plus('two')\"
    - file: $T/rules.mmadt
    - inline: \"{1..300000}.count().to(/count)\"
    - inline: \"*/config/mode.to(/seen_mode)\"
    - inline: |
        thread[[loop=>^(*/tick.else(0).plus(1).to(/tick).map(*/stop.else(false)).to(t/halt))]]@t
        scheduler::spawn(@t)
    - inline: |
        /blk -> 1
        nat[-3]
log:
  level: info" || finish

# the socket exists: everything the boot writes is there already
expect "programs ran before the socket appeared" 0 "300000" db store get /count
expect "boot data written where empty" 0 "'auto'" db store get /config/mode
expect "boot data kept where set" 0 "'mine'" db store get /config/keep
expect "boot data poly" 0 "10" db store get /config/limits/max
expect "boot data before programs" 0 "'auto'" db store get /seen_mode
expect "a file program ran up to its error" 0 "true" db store get /rules/loaded

# errors: reported with their position, the daemon keeps going
# FILE:LINE:COLUMN of the config file, counted from the YAML above: programs[1] is on line
# 12, its text starts after `    - inline: "` (column 16); the block of programs[6] starts on
# line 20, indented by 8; /config/bad's value is on line 9, its quote at column 18.
check "inline program error names the config FILE:LINE:COLUMN" \
        grep -q "boot: $T/boot.yaml:12:[0-9]*: boot.programs\[1\], line 1, column [0-9]*: " "$T/boot.log"
c1=$(sed -n "s|.*boot: $T/boot.yaml:12:\([0-9]*\): boot.programs\[1\], line 1, column \([0-9]*\): .*|\1 \2|p" "$T/boot.log")
check "... the config column is the program's column past column 15" \
        sh -c "set -- $c1; [ \$# = 2 ] && [ \$1 -eq \$((\$2 + 15)) ]"
check "a block program's error names the config line and column below inline: |" \
        grep -q "boot: $T/boot.yaml:21:9: boot.programs\[6\], line 2, column 1: " "$T/boot.log"
check "a boot.data error names the config FILE:LINE:COLUMN" \
        grep -q "boot: $T/boot.yaml:9:18: boot.data./config/bad: " "$T/boot.log"
check "the statement before the error ran" sh -c "[ \"\$(\"$HYBRID\" --db \"$D\" store get /first)\" = 1 ]"
check "file program error names FILE:LINE:COLUMN" \
        grep -q "boot: $T/rules.mmadt:2:[0-9]*: " "$T/boot.log"
check "daemon alive after boot errors" kill -0 "$DPID"
check "socket there after boot errors" test -S "$SOCK"

# the subscription of programs[0] runs in the daemon: a write of another process reaches it
expect "client writes /in" 0 "" db store put /in 41
out_is() { [ "$(db store get /out 2>/dev/null)" = "$1" ]; }
check "boot subscription turned /in into /out" wait_until 10 out_is 42
expect "client writes /in again" 0 "" db store put /in 99
check "boot subscription keeps running" wait_until 10 out_is 100

# the OS-thread program (its thread obj in the daemon's program scope: code is not stored
# in the file) writes /tick while the REPL (another process) reads it
tick() { db store get /tick 2>/dev/null || echo 0; }
t1=$(tick)
printf '*/tick.gt(0)\n' >"$T/repl.in"
expect "the REPL reads what the thread writes" 0 "==>true" sh -c "\"$HYBRID\" --db \"$D\" repl <\"$T/repl.in\""
moves() { [ "$(tick)" -gt "$t1" ]; }
check "the thread keeps writing while the daemon serves" wait_until 10 moves
# the daemon's kernel objs over the bus (doc/protocol.md "Store"): its scheduler, the types
bus() { "$HYBRID" --bus "$SOCK" "$@"; }
expect "the daemon's /sys/scheduler over the bus: the boot thread runs" 0 "'running'" \
        bus store get /sys/scheduler/threads/0/state
expect "a built-in type read over the bus" 0 "[base=>/type/int,min=>0,max=>9223372036854775807]" \
        bus store get /type/nat
expect_err "writing a built-in type over the bus is refused" 1 \
        "^hybrid: store: 403 /type/int is read-only" bus store put /type/int 1
expect_err "... and so is deleting it" 1 "^hybrid: store: 403 " bus store del /type/int
expect "a type of one's own under /type/ is stored as before" 0 "" bus store put /type/mine "'m'"
expect "... and read back" 0 "'m'" bus store get /type/mine
printf '/sys/scheduler -> 1\n' >"$T/sys.in"
expect "writing /sys/ is an error" 1 "*" sh -c "\"$HYBRID\" --db \"$D\" repl <\"$T/sys.in\""
check "... saying read-only" grep -q '^\[ERROR\] write /sys/scheduler: /sys/ is read-only' "$T/out"
expect "a client asks the thread to halt" 0 "" db store put /stop true
still() { a=$(tick); sleep 0.3; [ "$(tick)" = "$a" ]; }
check "the halted thread stops writing" wait_until 10 still
expect "... and the daemon's /sys/scheduler says halted" 0 "'halted'" \
        bus store get /sys/scheduler/threads/0/state

stop "$DPID"
check "clean shutdown with a booted thread" test "$STOP_RC" -eq 0

# a restart keeps the data: /config/keep and /config/mode are not written again
expect "change boot data before restart" 0 "" db store put /config/mode "'manual'"
start_daemon boot2 "store:
  path: $D
boot:
  data:
    /config/mode: \"'auto'\"" || finish
expect "boot data not rewritten over a stored value" 0 "'manual'" db store get /config/mode
stop "$DPID"

# READY=1 (sd_notify) comes after the boot too: when it arrives, the boot's writes are there
cat >"$T/notify.py" <<'EOF'
import socket, sys, subprocess
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(20)
msg = s.recv(4096).decode()
r = subprocess.run([sys.argv[2], "--db", sys.argv[3], "store", "get", "/count2"],
                   stdout=subprocess.PIPE, text=True)
print(msg, r.stdout.strip())
EOF
"$PYTHON" "$T/notify.py" "$T/notify.sock" "$HYBRID" "$D" >"$T/notify.out" 2>&1 &
NPID=$!
PIDS="$PIDS $NPID"
wait_until 10 test -S "$T/notify.sock"
NOTIFY_SOCKET=$T/notify.sock
export NOTIFY_SOCKET
start_daemon boot3 "store:
  path: $D
boot:
  programs:
    - inline: \"{1..200000}.count().to(/count2)\"" || finish
unset NOTIFY_SOCKET
wait "$NPID"
expect "READY=1 sent after the boot programs ran" 0 "READY=1 200000" cat "$T/notify.out"
stop "$DPID"

finish
