#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""scripts/demo works and prints a transcript a reader can paste into a shell.

Usage: demo-transcript.py SRCROOT BUILD
Runs scripts/demo on the build, then replays its transcript in a fresh shell: every
"$ command" line (with the here-documents it shows) runs in order, a command marked
"# exits N" must exit N and every other one 0, background commands get a second to
start, as a reader's typing would give them.  The replay's first mm-ADT result must be
a result, not an [ERROR] line.  The demo itself must be done in under a minute (the build
is already there).
"""
import os
import re
import subprocess
import sys
import tempfile
import time

root, build = sys.argv[1], os.path.abspath(sys.argv[2])
with tempfile.TemporaryDirectory(prefix="hyb-demo-test.") as tmp:
        env = dict(os.environ, BUILD=build, TMPDIR=tmp)
        t0 = time.monotonic()
        r = subprocess.run(["sh", os.path.join(root, "scripts/demo")], env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
        took = time.monotonic() - t0
        print(r.stderr, end="")
        if r.returncode:
                print(r.stdout)
                sys.exit(f"FAIL: scripts/demo exited {r.returncode}")
        # The bound: the demo is done in under a minute once the build is there
        # (meson built everything before this test runs).
        if took >= 60:
                sys.exit(f"FAIL: scripts/demo took {took:.1f} s after the build, over a minute")
        print(f"ok: scripts/demo ran in {took:.1f} s after the build (under a minute)")
        lines = r.stdout.split("\n")
        first_mm = next((ln for ln in lines if ln.startswith("==>") or ln.startswith("[ERROR]")),
                        "")
        if not first_mm.startswith("==>"):
                sys.exit(f"FAIL: the demo's first mm-ADT output is {first_mm!r}, not a result")
        # A failed replay still stops the daemons and clients it started in the background.
        script = ["set -u", "BG_PIDS=", "trap 'kill $BG_PIDS 2>/dev/null' EXIT",
                  "fail() { echo \"FAIL: transcript line $1 exited $2, expected $3\"; exit 1; }"]
        n = 0
        i = 0
        while i < len(lines):
                ln = lines[i]
                i += 1
                if not ln.startswith("$ "):
                        continue
                n += 1
                cmd = ln[2:]
                want = 0
                m = re.search(r"\s+# exits (\d+)$", cmd)
                if m:
                        want = int(m.group(1))
                        cmd = cmd[:m.start()]
                heredoc = re.search(r"<<'(\w+)'$", cmd)
                if heredoc:
                        body = []
                        while i < len(lines) and lines[i] != heredoc.group(1):
                                body.append(lines[i])
                                i += 1
                        i += 1
                        script.append(cmd)
                        script.extend(body)
                        script.append(heredoc.group(1))
                        continue
                bg = re.search(r"\s*& (\w+=\$!)$", cmd)
                if bg:
                        # Quiet by default, but the command's own redirections (written after
                        # ours, so they win) keep their files: a daemon's log the next line reads.
                        script.append(">/dev/null 2>&1 " + cmd[:bg.start()] + " & " + bg.group(1))
                        script.append('BG_PIDS="$BG_PIDS $!"')
                        script.append("sleep 1")
                        continue
                script.append(f"st=0; {{ {cmd}\n}} >/dev/null 2>&1 || st=$?")
                script.append(f'[ "$st" = {want} ] || fail {n} "$st" {want}')
        script.append("echo \"replayed $0\"")
        if n < 10:
                sys.exit(f"FAIL: only {n} commands in the transcript")
        path = os.path.join(tmp, "replay.sh")
        with open(path, "w") as f:
                f.write("\n".join(script) + "\n")
        r = subprocess.run(["sh", path], env=env, text=True, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=300, cwd=tmp)
        print(r.stdout, end="")
        if r.returncode:
                print("--- replayed script:\n" + "\n".join(script))
                sys.exit(f"FAIL: the transcript does not replay (exit {r.returncode})")
        print(f"ok: {n} transcript commands replayed in a fresh shell")
