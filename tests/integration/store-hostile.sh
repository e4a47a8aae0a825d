#!/bin/sh
# SPDX-License-Identifier: MIT
# The daemon-hosted store against a hostile local user (uid 65534, setpriv) while a
# well-behaved client (this uid) uses it: store.limits.max_keys bounds how many fURIs the
# host store holds (507 naming it, overwrites and deletes still served), and a pattern read
# whose answer is over max_body is refused 413 instead of sent as a frame no peer accepts
# (doc/config.md "store", doc/protocol.md "Store"); a value nested past any bound is 413 as a
# value past max_depth is; a delete by a wildcard pattern that would reach /sys/ is 403;
# a read walks at most store.limits.max_read_keys matches (storeReadPage pages the rest);
# store.limits.max_bytes, uid_max_keys and uid_max_bytes bound what peers add (507), a
# branch write's children all together, under the keys the store gives them.
. "$(dirname "$0")/lib.sh"
unset HYBRID_BUS HYBRID_DB
PY=$(command -v "$PYTHON" || echo /usr/bin/python3)
HOSTILE=$HYB_IT_DIR/hostile.py
# The attacker's scripts are staged where uid 65534 may read them.
mkdir -p "$T/py" && cp "$HYB_IT_DIR/hostile.py" "$HYB_IT_DIR/rawbus.py" "$T/py/" && chmod -R a+rX "$T/py"
attacker() {
        if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
                setpriv --reuid=65534 --regid=65534 --clear-groups "$PY" "$T/py/hostile.py" "$@"
        else
                "$PY" "$HOSTILE" "$@"
        fi
}
# prints the attacker's lines; passes when none is a FAIL
attack() {
        d=$1; shift
        attacker "$@" >"$T/attack.out" 2>&1
        rc=$?
        sed 's/^/    /' "$T/attack.out"
        if [ $rc -eq 0 ] && ! grep -q '^FAIL' "$T/attack.out"; then ok "$d"; else
                bad "$d" "$(cat "$T/attack.out")"
        fi
}

# --- millions of keys: the store holds at most max_keys of them, whoever writes
start_daemon keys "store:
  limits: {max_keys: 100}" || finish
chmod 777 "$SOCK"
expect "the bystander stores /by/a" 0 "" hy store put /by/a 1
attack "a hostile uid fills the store: 99 keys, then 507 max_keys" storefill "$SOCK" /junk 160 99
expect "the bystander still overwrites its key in a full store" 0 "" hy store put /by/a 2
expect "the bystander still reads it" 0 "2" hy store get /by/a
expect_err "a new key in a full store is refused naming max_keys" 1 "max_keys" \
        hy store put /by/b 1
expect "a delete frees room" 0 "" hy store del /by/a
expect "the freed room takes a new key" 0 "" hy store put /by/b 3
expect "the store holds 100 keys" 0 "100" sh -c "'$HYBRID' --bus '$SOCK' store get '/#' | wc -l"
stop "$DPID"

# --- a pattern read whose answer is over max_body: 413, the reader still served
start_daemon big "limits: {max_body: 64K}
store: {}" || finish
chmod 777 "$SOCK"
attack "a read of 9 x 16000 bytes over max_body 64K is refused 413" storebigread "$SOCK" /big 9 16000
attack "values nested 40 and 5000 deep are refused 413 HYB_E_LIMIT" storedeep "$SOCK" 5000
attack "long keys, small values: a plain read under max_body is answered" storelongkeys "$SOCK" /lk 100 750
# the C client reads in pages, each cut under max_body by the daemon: all 9 values come
expect "the C client reads a pattern over max_body in pages" 0 "9" \
        sh -c "'$HYBRID' --bus '$SOCK' store get '/big/#' | grep -c '^/big/[0-9]'"
expect "the bystander reads a node there" 0 "16000" sh -c "'$HYBRID' --bus '$SOCK' store get /big/2 | tr -d '\n' | wc -c"
stop "$DPID"

# --- a page of big values is cut to max_body before its answer is formatted: a read of 40
# values of 512 KB (20 MB) under max_body 1M formats about max_body, where the whole page was
# formatted, then half of it, and so on (seconds of the loop, and that much memory nobody is
# charged for); a whole read is refused 413 after measuring as much
start_daemon pagecost "limits: {max_body: 1M}
store: {}" || finish
chmod 777 "$SOCK"
attack "40 values of 512 KB stored" storepagecost "$SOCK" write /pc 40 524288
hwm() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB$/\1/p' "/proc/$DPID/status"; }
H0=$(hwm)
attack "pages of them hold what fits max_body; a whole read is 413" storepagecost "$SOCK" read /pc 40 524288
H1=$(hwm)
echo "# daemon peak memory: $H0 kB after the writes, $H1 kB after 3 pages and a read"
if [ "${HYB_IT_SANITIZED:-0}" = 1 ]; then
        echo "# sanitizer build: its quarantine holds what is freed, the peak says nothing here"
else
        check "the reads added at most 8 MB to the daemon's peak memory (the page is 20 MB)" \
                [ $((H1 - H0)) -le 8192 ]
fi
stop "$DPID"

# --- a read may walk at most store.limits.max_read_keys matches: more is 413 (the walk
# stopped there), and storeReadPage gives them in pages with a stable cursor; the client
# library and the CLI follow the pages by themselves
start_daemon pages "store:
  limits: {max_read_keys: 50}" || finish
chmod 777 "$SOCK"
attack "reads over max_read_keys are refused 413, pages give every key once" \
        storepages "$SOCK" /r 230 50
# (storepages deleted /r/2 and /r/229 and added /r/230 on its way)
expect "hybrid store get follows the pages: 229 keys" 0 "229" \
        sh -c "'$HYBRID' --bus '$SOCK' store get '/r/#' | wc -l"
expect "... in key order" 0 "/r/0 0|/r/1 1|/r/3 3|/r/228 228|/r/230 1" \
        sh -c "'$HYBRID' --bus '$SOCK' store get '/r/#' | sed -n '1p;2p;3p;228p;229p' | tr '\\t' ' ' | paste -sd'|'"
expect "a plain pattern read through the client library is the stream of all values" 0 "==>229" \
        sh -c "echo '*/r/+.count()' | '$HYBRID' --bus '$SOCK' run - 2>&1 | tail -1"
stop "$DPID"

# --- what peers add over the bus is bounded per uid (store.limits.uid_max_keys,
# uid_max_bytes) and for everyone (max_bytes): a key costs its fURI's text plus its value's
# text, charged to the writer, given back by a delete; 507 names the quota
xs() { head -c "$1" /dev/zero | tr '\0' x; }
start_daemon squota "store:
  limits: {uid_max_keys: 40, uid_max_bytes: 4K, max_bytes: 5K}" || finish
chmod 777 "$SOCK"
# /jbig is 5 + 3002 bytes; /jbig2 with 1102 more would make 4115 > 4096
attack "a uid's value within uid_max_bytes is stored" storecall "$SOCK" storeWrite "/jbig\n'$(xs 3000)'" 200
attack "one more past uid_max_bytes is refused 507 naming it" \
        storecall "$SOCK" storeWrite "/jbig2\n'$(xs 1100)'" 507 "quota store.limits.uid_max_bytes exceeded"
attack "an overwrite with a smaller value gives bytes back" storecall "$SOCK" storeWrite "/jbig\n'$(xs 100)'" 200
attack "... so the refused value now fits" storecall "$SOCK" storeWrite "/jbig2\n'$(xs 1100)'" 200
attack "a hostile uid adds keys: 38 more, then 507 uid_max_keys" storefill "$SOCK" /junk 60 38 uid_max_keys
attack "a delete gives a key back" storecall "$SOCK" storeDelete "/junk/0" 200
attack "... which the uid may use again" storecall "$SOCK" storeWrite "/junk/new\n1" 200
attack "... once" storecall "$SOCK" storeWrite "/junk/new2\n1" 507 "uid_max_keys"
attack "a delete by pattern gives back every key it deleted" storecall "$SOCK" storeDelete "/junk/#" 200
attack "... so the uid adds keys again" storefill "$SOCK" /again 40 38 uid_max_keys
attack "the uid frees its keys again" storecall "$SOCK" storeDelete "/again/#" 200
attack "a branch write stores 3 children" storecall "$SOCK" storeWrite "/bw/\n[a=>1,b=>2,c=>3]" 200
attack "... charged as 3 keys: 35 more, then 507" storefill "$SOCK" /more 50 35 uid_max_keys
attack "... and given back by a delete of the branch" storecall "$SOCK" storeDelete "/bw/" 200
attack "... so 3 more keys fit" storefill "$SOCK" /more3 5 3 uid_max_keys
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
        # the bystander is another uid: its own quota, the same max_bytes (5120) for all.
        # The attacker holds 107 (/jbig) + 1108 (/jbig2) + 330 (/more/0..34: 10 x 8 + 25 x 10)
        # + 27 (/more3/0..2) = 1572 bytes; with /by/a (6) and /by/big (2009) 3587 are held:
        # /by/big2 (8 + 1602) would pass 5120 while the bystander's own 2015 + 1610 stay
        # under uid_max_bytes (4096).
        expect "the bystander (another uid) still adds keys" 0 "" hy store put /by/a 1
        expect "... and values" 0 "" hy store put /by/big "'$(xs 2000)'"
        expect_err "a value past max_bytes is refused 507 naming it" 1 \
                "507 quota store.limits.max_bytes exceeded" hy store put /by/big2 "'$(xs 1600)'"
        expect "a delete gives the bytes back" 0 "" hy store del /by/big
        expect "... so the refused value now fits" 0 "" hy store put /by/big2 "'$(xs 1600)'"
fi
stop "$DPID"

# --- a branch write (`p/ -> [k=>v, ...]`) is checked and charged as the children the store
# writes, under the keys the store gives them, all together: int keys count, a write whose
# children pass a bound is refused whole, keys the store escapes ('a/1' is the one segment
# a%2F1) are given back by the delete that removes them, a noobj child is a delete
lp="$(xs 190)/$(xs 190)"
start_daemon sbranch "store:
  limits: {uid_max_keys: 10, uid_max_bytes: 2K, max_bytes: 3K}" || finish
chmod 777 "$SOCK"
# 1, '1' and <1> are three rec keys and one child, /d/1: counted once, for the last of them
attack "a key of 600 bytes" storecall "$SOCK" storeWrite "/d/1\n'$(xs 600)'" 200
attack "a branch write naming it three times, the last 1500 bytes: 200" storecall "$SOCK" \
        storeWrite "/d/\n[1=>0,'1'=>0,<1>=>'$(xs 1500)']" 200
attack "... and the last 2100 bytes: 507 uid_max_bytes (its old bytes count once)" storecall "$SOCK" \
        storeWrite "/d/\n[1=>0,'1'=>0,<1>=>'$(xs 2100)']" 507 uid_max_bytes
expect "... so /d/1 keeps its 1500 bytes" 0 "1502" sh -c "'$HYBRID' --bus '$SOCK' store get /d/1 | tr -d '\n' | wc -c"
attack "the uid deletes it" storecall "$SOCK" storeDelete "/d/1" 200
# a pattern takes no value: refused, and charged to no one (not even as its "child" /x/+/0,
# which reads back as the stream {1} the write sent)
attack "a key /x/a/0" storecall "$SOCK" storeWrite "/x/a/0\n1" 200
attack "a pattern write with a value is refused 400" storecall "$SOCK" storeWrite "/x/+\n[{1}]" 400 "only noobj"
attack "the uid deletes /x/a/0" storecall "$SOCK" storeDelete "/x/a/0" 200
# a branch write is charged for what the store holds after it: an earlier child that
# deletes a lst/rec makes a later child below it a key of its own, charged as such
attack "a stored rec /q/h" storecall "$SOCK" storeWrite "/q/h\n[k=>1]" 200
attack "a branch write deleting /q/h, then writing 1000 bytes below it" storecall "$SOCK" \
        storeWrite "/q/\n[h=>noobj,<h/x0>=>'$(xs 1000)']" 200
expect "... /q/h/x0 is a key of its own" 0 "1002" sh -c "'$HYBRID' --bus '$SOCK' store get /q/h/x0 | tr -d '\n' | wc -c"
attack "... and charged: 1100 more bytes are over uid_max_bytes" storecall "$SOCK" \
        storeWrite "/q/y\n'$(xs 1100)'" 507 uid_max_bytes
attack "the uid deletes it" storecall "$SOCK" storeDelete "/q/h/x0" 200
# what is written into a stored lst/rec is charged to the key holding it, at its size: a
# lst's elements shift when one is deleted, and a delete of an index past its end (nothing
# deleted) gives nothing back
attack "a stored empty lst" storecall "$SOCK" storeWrite "/L\n[]" 200
for i in 0 1 2; do
        attack "round $i: two elements" storecall "$SOCK" storeWrite "/L/$i\n0" 200
        if [ "$i" = 2 ]; then
                attack "round 2: a third element of 700 bytes is over uid_max_bytes" storecall "$SOCK" \
                        storeWrite "/L/$((i + 1))\n'$(xs 700)'" 507 uid_max_bytes
                break
        fi
        attack "round $i: ... the second of 700 bytes" storecall "$SOCK" storeWrite "/L/$((i + 1))\n'$(xs 700)'" 200
        attack "round $i: the first deleted: the rest shift down" storecall "$SOCK" storeDelete "/L/$i" 200
        attack "round $i: a delete past the end deletes nothing" storecall "$SOCK" storeDelete "/L/$((i + 1))" 200
done
expect "/L holds the two values of 700 bytes and a 0" 0 "1409" sh -c "'$HYBRID' --bus '$SOCK' store get /L | tr -d '\n' | wc -c"
attack "the uid deletes /L" storecall "$SOCK" storeDelete "/L" 200
# a delete of a branch removes the keys below it, not the elements inside a stored lst, so
# it gives back no charge of the elements written into it
attack "a stored lst" storecall "$SOCK" storeWrite "/cfg\n[0]" 200
attack "... an element of 900 bytes written into it" storecall "$SOCK" storeWrite "/cfg/1\n'$(xs 900)'" 200
attack "... a delete of the branch /cfg/ (no key below /cfg)" storecall "$SOCK" storeDelete "/cfg/" 200
attack "... a second element of 900 bytes" storecall "$SOCK" storeWrite "/cfg/2\n'$(xs 900)'" 200
attack "... a third is over uid_max_bytes: the first is still charged" storecall "$SOCK" \
        storeWrite "/cfg/3\n'$(xs 900)'" 507 uid_max_bytes
attack "... the delete of /cfg gives all back" storecall "$SOCK" storeDelete "/cfg" 200
# a key below a key that holds a scalar is a key of its own: deleting the one above leaves it
# stored, and charged
attack "a key /a0 holding a scalar" storecall "$SOCK" storeWrite "/a0\n1" 200
attack "... a key of 900 bytes below it" storecall "$SOCK" storeWrite "/a0/y\n'$(xs 900)'" 200
attack "... /a0 deleted" storecall "$SOCK" storeDelete "/a0" 200
expect "... /a0/y is still stored" 0 "902" sh -c "'$HYBRID' --bus '$SOCK' store get /a0/y | tr -d '\n' | wc -c"
attack "... and still charged: 1200 more bytes are over uid_max_bytes" storecall "$SOCK" \
        storeWrite "/a1\n'$(xs 1200)'" 507 uid_max_bytes
attack "... until it is deleted" storecall "$SOCK" storeDelete "/a0/y" 200
# a rec key cannot lead a branch write out of its branch (past the access check of p/)
attack "a uri key <../sys/y> is refused 400" storecall "$SOCK" storeWrite "/p/\n[<../sys/y>=>1]" 400 "out of the branch"
attack "a uri key <./../log/x> is refused 400" storecall "$SOCK" storeWrite "/p/\n[<./../log/x>=>1]" 400 "out of the branch"
attack "a uri key <..> (the branch's own parent) is refused 400" storecall "$SOCK" storeWrite "/q/\n[<..>=>1]" 400 "out of the branch"
expect "... and nothing was stored at /log/x" 1 "" hy store get /log/x
attack "a uri key <a/../b> that stays in the branch is a child" storecall "$SOCK" storeWrite "/p/\n[<a/../b>=>1]" 200
expect "... /p/b" 0 "1" hy store get /p/b
attack "... deleted" storecall "$SOCK" storeDelete "/p/b" 200
attack "a branch write with int keys stores 3 children" storecall "$SOCK" storeWrite "/ib/\n[0=>0,1=>0,2=>0]" 200
attack "... charged as 3 keys: 7 more, then 507" storefill "$SOCK" /f 12 7 uid_max_keys
attack "the uid deletes those 7" storecall "$SOCK" storeDelete "/f/#" 200
attack "8 children where 7 keys are left: refused whole, 507 naming uid_max_keys" storecall "$SOCK" \
        storeWrite "/ob/\n[a=>1,b=>1,c=>1,d=>1,e=>1,f=>1,g=>1,h=>1]" 507 uid_max_keys
expect "... and none of them is stored" 1 "" hy store get '/ob/#'
# 6 children of 1 + 381 + 6 + 1 bytes (a segment is at most 255): 2334 > 2048, each alone
# far under it
attack "children within uid_max_bytes each, over it together: refused whole, 507" storecall "$SOCK" \
        storeWrite "/$lp/\n['a/1'=>0,'a/2'=>0,'a/3'=>0,'a/4'=>0,'a/5'=>0,'a/6'=>0]" 507 uid_max_bytes
expect "... and none of them is stored" 1 "" hy store get "/$lp/#"
attack "a rec key that names no child refuses the whole write 400" storecall "$SOCK" \
        storeWrite "/bk/\n[a=>1,1.5=>2]" 400 "cannot name a child"
expect "... and the children before it are not stored" 1 "" hy store get '/bk/#'
attack "a branch write with keys the store escapes or splits" storecall "$SOCK" \
        storeWrite "/pe/\n['a/1'=>0,'a/2'=>0,<x/y>=>0]" 200
expect "... stores them under the store's keys" 0 "/pe/a%2F1|/pe/a%2F2|/pe/x/y" \
        sh -c "'$HYBRID' --bus '$SOCK' store get '/pe/#' | cut -f1 | paste -sd'|'"
attack "... whose charges a delete by pattern gives back" storecall "$SOCK" storeDelete "/pe/#" 200
attack "a branch write deleting a child (noobj) and adding one" storecall "$SOCK" \
        storeWrite "/ib/\n[0=>noobj,9=>9]" 200
attack "... leaves the uid 3 keys (/ib/1, /ib/2, /ib/9): 7 more, then 507" \
        storefill "$SOCK" /g 12 7 uid_max_keys
attack "at the bound, a branch write deleting one of the uid's keys may add one" storecall "$SOCK" \
        storeWrite "/g/\n['0'=>noobj,z=>1]" 200
attack "... but not two" storecall "$SOCK" storeWrite "/g/\n['1'=>noobj,y=>1,w=>1]" 507 uid_max_keys
stop "$DPID"

# --- deletes by wildcard patterns do not reach /sys/, which is read-only: a database file
# written by an embedded store may hold keys there
DB=$T/sys.db
"$HYBRID" store --db "$DB" put /sys/x 1 || bad "embedded put /sys/x"
"$HYBRID" store --db "$DB" put /keep/x 2 || bad "embedded put /keep/x"
"$HYBRID" store --db "$DB" put /keep/y 3 || bad "embedded put /keep/y"
start_daemon sys "store: {path: $DB}" || finish
chmod 777 "$SOCK"
attack "a delete of /+/x is refused: it would reach /sys/x" storecall "$SOCK" storeDelete '/+/x' 403 /sys/x
attack "a delete of /# is refused: it would reach /sys/x" storecall "$SOCK" storeDelete '/#' 403 /sys/x
attack "a write of noobj to /+/x is refused" storecall "$SOCK" storeWrite '/+/x\nnoobj' 403 /sys/x
attack "a delete of /+/y, which reaches nothing under /sys/, is served" storecall "$SOCK" storeDelete '/+/y' 200
expect "/sys/x is still there" 0 "1" hy store get /sys/x
expect "/keep/x is still there" 0 "2" hy store get /keep/x
expect "/keep/y was deleted (get prints nothing, exit 1)" 1 "" hy store get /keep/y
stop "$DPID"


finish
