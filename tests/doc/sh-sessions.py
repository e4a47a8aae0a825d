#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Runs the shell sessions of doc/*.md as written and compares what they print.

Usage: sh-sessions.py BUILDROOT SRCROOT [FILE.md...]

A session is a fenced block opened with ```sh session.  In it, a line starting with `$ `
is a command, following lines starting with `> ` continue it (a here-document, a long
line), and the other lines up to the next command are what it prints (stdout and stderr
together).  All commands of a block run in one `sh` in a fresh directory, with `hybrid`,
`hybridd` and the other programs of the build first on PATH; background jobs still
running at the end are killed.  In the printed lines, `…` stands for any text, and a
base64url word of 40 or more characters (a key id, a token) for any such word.
Exits 1 listing each difference; 0 when every session printed what its page says.
"""
import os
import re
import signal
import subprocess
import sys
import tempfile

FENCE_OPEN = re.compile(r"^```+\s*sh\s+session\s*$")
FENCE_CLOSE = re.compile(r"^```+\s*$")
B64WORD = re.compile(r"[A-Za-z0-9_-]{40,}")
MARK = "@@hyb-session-step@@"
STEP_LIMIT_S = 60  # a whole session; a hung step shows as the first one that never ended


def sessions(path):
    """Yields (line number, [(command, [expected lines])]) per session block."""
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        if not FENCE_OPEN.match(lines[i]):
            i += 1
            continue
        start = i + 1
        steps = []
        i += 1
        while i < len(lines) and not FENCE_CLOSE.match(lines[i]):
            ln = lines[i]
            if ln.startswith("$ "):
                steps.append([ln[2:], []])
            elif ln.startswith("> ") or ln == ">":
                if not steps or steps[-1][1]:
                    raise SystemExit(f"{path}:{i + 1}: a continuation line without a command")
                steps[-1][0] += "\n" + ln[2:]
            elif steps:
                steps[-1][1].append(ln)
            else:
                raise SystemExit(f"{path}:{i + 1}: output before the first command")
            i += 1
        yield start, steps
        i += 1


def pattern(line):
    out = []
    pos = 0
    for m in re.finditer(r"…|[A-Za-z0-9_-]{40,}", line):
        out.append(re.escape(line[pos:m.start()]))
        out.append(".*" if m.group() == "…" else "[A-Za-z0-9_-]{40,}")
        pos = m.end()
    out.append(re.escape(line[pos:]))
    return re.compile("^" + "".join(out) + "$")


def run(steps, env):
    script = ["exec 2>&1"]
    for n, (cmd, _) in enumerate(steps):
        script.append(f"echo '{MARK} {n}'")
        script.append(cmd)
    script.append(f"echo '{MARK} end'")
    script.append("for p in $(jobs -p); do kill $p 2>/dev/null; done; wait")
    with tempfile.TemporaryDirectory(prefix="hyb-doc-") as d:
        with open(os.path.join(d, ".session.out"), "w+") as out:
            p = subprocess.Popen(["sh", "-c", "\n".join(script)], cwd=d, env=env,
                                 stdout=out, stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                p.wait(timeout=STEP_LIMIT_S)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)  # the shell and every job it started
                p.wait()
            out.seek(0)
            text = out.read()
    got = {}
    cur = None
    for ln in text.split("\n"):
        if ln.startswith(MARK + " "):
            cur = ln[len(MARK) + 1:]
            got[cur] = []
        elif cur is not None:
            got[cur].append(ln)
    return got


def main():
    build, src = (os.path.abspath(a) for a in sys.argv[1:3])
    files = sys.argv[3:] or [os.path.join(src, "doc", f) for f in
                             sorted(os.listdir(os.path.join(src, "doc"))) if f.endswith(".md")]
    env = dict(os.environ)
    bins = [os.path.join(build, "examples", d) for d in ("hybrid", "hybridd")]
    env["PATH"] = os.pathsep.join(bins + [env.get("PATH", "/usr/bin:/bin")])
    for k in ("HYBRID_BUS", "HYBRID_DB", "HYBRID_TOKEN", "HYBRID_KEY"):
        env.pop(k, None)
    failed = 0
    count = 0
    for f in files:
        for line, steps in sessions(f):
            count += 1
            got = run(steps, env)
            name = f"{os.path.relpath(f, src)}:{line}"
            for n, (cmd, want) in enumerate(steps):
                have = got.get(str(n))
                first = cmd.split("\n")[0]
                if have is None:
                    print(f"FAIL {name}: `{first}` never ran (the step before it did not end)")
                    failed += 1
                    break
                have = [x for x in have if x != ""]
                want = [x for x in want if x != ""]
                ok = len(have) == len(want) and all(pattern(w).match(h)
                                                    for w, h in zip(want, have))
                if not ok:
                    failed += 1
                    print(f"FAIL {name}: `{first}` printed:")
                    print("".join(f"    | {x}\n" for x in have), end="")
                    print("  the page says:")
                    print("".join(f"    | {x}\n" for x in want), end="")
            if "end" not in got:
                failed += 1
                print(f"FAIL {name}: the session did not run to its end")
            print(f"{'ok' if not failed else 'checked'} {name}: {len(steps)} commands")
    if count == 0:
        print("FAIL no ```sh session block found")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
