#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The interactive `hybrid repl` on a pseudo-terminal (doc/hybrid.md "repl"):
line editing, history, the continuation prompt and its ways out, Ctrl-C,
:help, :quit, --json.  Expected outputs are the REPL form of doc/mmadt.md
(`==>3`), written by hand.  Usage: cli-repl-pty.py <path of hybrid>"""
import atexit
import os
import pty
import re
import select
import shutil
import sys
import tempfile
import time

HYBRID = sys.argv[1]
TMP = tempfile.mkdtemp(prefix="hyb-repl.")
atexit.register(shutil.rmtree, TMP, True)
NPASS = NFAIL = 0


def report(ok, desc, detail=""):
    global NPASS, NFAIL
    if ok:
        NPASS += 1
        print("ok - " + desc)
    else:
        NFAIL += 1
        print("FAIL - " + desc)
        for line in detail.splitlines():
            print("    | " + line)


class Repl:
    def __init__(self, *args, env=None):
        e = dict(os.environ)
        # The store rule (no --db, no daemon): the default database under XDG_DATA_HOME.
        e.update({"HYBRID_HISTORY": os.path.join(TMP, "history"), "TERM": "xterm",
                  "HYBRID_DB": "", "XDG_DATA_HOME": os.path.join(TMP, "data"),
                  "XDG_RUNTIME_DIR": os.path.join(TMP, "run")})
        e.pop("HYBRID_DB")
        e.pop("HYBRID_BUS", None)
        if env:
            e.update(env)
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(HYBRID, [HYBRID, "repl"] + list(args), e)
        self.buf = b""

    def expect(self, pattern, timeout=5.0):
        """Reads until pattern (a regex on the output since the last match) shows up."""
        end = time.time() + timeout
        rx = re.compile(pattern.encode())
        while True:
            m = rx.search(self.buf)
            if m:
                seen = self.buf[:m.end()]
                self.buf = self.buf[m.end():]
                return seen.decode(errors="replace")
            left = end - time.time()
            if left <= 0:
                return None
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    data = os.read(self.fd, 4096)
                except OSError:
                    data = b""
                if not data:
                    m = rx.search(self.buf)
                    return None if not m else self.buf.decode(errors="replace")
                self.buf += data

    def send(self, text):
        os.write(self.fd, text.encode())

    def wait(self, timeout=5.0):
        end = time.time() + timeout
        while time.time() < end:
            try:
                pid, st = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return None  # already reaped: its status is lost

            if pid:
                # drain so nothing blocks
                return os.waitstatus_to_exitcode(st)
            try:
                r, _, _ = select.select([self.fd], [], [], 0.05)
                if r:
                    self.buf += os.read(self.fd, 4096)
            except OSError:
                time.sleep(0.05)
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)
        return None

    def alive(self):
        try:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return False
        return pid == 0


def check(desc, got, detail=""):
    report(got is not None and got is not False, desc, detail)


PROMPT = r"hybrid> "
CONT = r"\.\.\.> "

r = Repl()
check("the repl greets and shows its prompt", r.expect(PROMPT))
r.send("1 + 2\r")
check("a statement prints ==>3", r.expect(r"==>3\r?\n"))
check("then the prompt again", r.expect(PROMPT))

# continuation prompt, then a way out with Ctrl-C: the statement is dropped
r.send("[1,\r")
check("an unfinished statement shows the continuation prompt", r.expect(CONT))
r.send("\x03")
check("Ctrl-C at the continuation prompt returns to the main prompt", r.expect(PROMPT))
r.send("5\r")
got = r.expect(r"==>\S+\r?\n")
check("the dropped statement is not part of the next one", got and "==>5" in got, repr(got))
r.expect(PROMPT)

# continuation finished normally
r.send("[1,\r")
r.expect(CONT)
r.send("2]\r")
check("a statement finished on the continuation line runs", r.expect(r"==>\[1,2\]"))
r.expect(PROMPT)

# an empty line ends an unfinished statement: the parser says what is missing
r.send("[1,\r")
r.expect(CONT)
r.send("\r")
check("an empty line ends an unfinished statement with an error", r.expect(r"\[ERROR\] "))
check("and the repl goes on", r.expect(PROMPT))

# Ctrl-C on a half-typed line drops it; the repl stays
r.send("777")
time.sleep(0.1)
r.send("\x03")
check("Ctrl-C drops the line being typed", r.expect(PROMPT))
r.send("8\r")
got = r.expect(r"==>\S+\r?\n")
check("the dropped text is gone", got and "==>8" in got and "777" not in got.split("==>")[1],
      repr(got))
r.expect(PROMPT)
check("Ctrl-C does not end the repl", r.alive())

# line editing: Ctrl-A moves to the start of the line, the arrow keys move by a character
r.send("1 + 2\x019\r")
check("Ctrl-A then typing edits the start of the line (91 + 2)", r.expect(r"==>93\r?\n"))
r.expect(PROMPT)
r.send("12\x1b[D3\r")
check("left arrow then typing inserts before the cursor (132)", r.expect(r"==>132\r?\n"))
r.expect(PROMPT)

# history: up arrow recalls the previous statement
r.send("\x1b[A\r")
check("up arrow recalls the previous statement", r.expect(r"==>132\r?\n"))
r.expect(PROMPT)

# Ctrl-C while a statement prints its results stops it; the repl stays
r.send("{1..5000000}\r")
check("a long statement runs", r.expect(r"==>2000\r?\n", timeout=10))
r.send("\x03")
got = r.expect(PROMPT, timeout=10)
check("Ctrl-C stops it and the prompt comes back", got and "[cancelled]" in got and "==>5000000" not in got,
      repr(got[-300:] if got else r.buf[-300:]))
r.send("6\r")
check("the repl goes on after a cancelled statement", r.expect(r"==>6\r?\n"))
r.expect(PROMPT)

r.send(":help\r")
got = r.expect(PROMPT)
check(":help explains the keys and points to doc/mmadt.md",
      got and "doc/mmadt.md" in got and ":quit" in got and "Ctrl-C" in got, repr(got))
r.send(":quit\r")
st = r.wait()
check(":quit ends the repl; exit 1 as a statement failed in it", st == 1, "exit %r" % st)
hist = open(os.path.join(TMP, "history"), errors="replace").read() if os.path.exists(
    os.path.join(TMP, "history")) else ""
# libedit writes a space as \040
check("the history is kept in $HYBRID_HISTORY",
      "132\n" in hist and ("1 + 2" in hist or "1\\040+\\0402" in hist) and ":help" not in hist,
      repr(hist))

# the history comes back in a new session
r = Repl()
r.expect(PROMPT)
r.send("\x1b[A\r")
got = r.expect(r"==>\S+\r?\n|\[ERROR\].*\n")
check("a new session recalls the last session's history", got and "==>6" in got, repr(got))
r.expect(PROMPT)
r.send("\x04")
st = r.wait()
check("Ctrl-D on an empty line ends the repl with exit 0", st == 0, "exit %r" % st)

# a failed statement: exit 1 at the end (as from a pipe)
r = Repl()
r.expect(PROMPT)
r.send("1 +\r\r")
r.expect(r"\[ERROR\]")
r.expect(PROMPT)
r.send(":quit\r")
st = r.wait()
check("after a failed statement the repl exits 1", st == 1, "exit %r" % st)

# --json: results as JSON documents
r = Repl("--json")
r.expect(PROMPT)
r.send("[a=>1,b=>'x']\r")
got = r.expect(PROMPT)
check("--json prints a result as a JSON document", got and '{"a": 1, "b": "x"}' in got
      or got and '{"a":1,"b":"x"}' in got, repr(got))
r.send(":quit\r")
st = r.wait()
check(":quit ends a session without errors with exit 0", st == 0, "exit %r" % st)

print("# %d passed, %d failed" % (NPASS, NFAIL))
sys.exit(1 if NFAIL else 0)
