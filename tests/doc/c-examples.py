#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Compiles every ```c block of README.md and doc/*.md against an installed libhybrid.

Usage: c-examples.py SRCROOT [FILE.md...]   (environment: PKG_CONFIG_PATH etc. for `hybrid`)

A block is one of (the words after ```c on the fence line):
  ```c            with a main(): a complete program, linked and run (it must exit 0);
                  compiled exactly as printed, so it names its own #includes (a reader
                  copies it whole);
                  without one: statements, compiled as the body of a function;
  ```c file       declarations and definitions at file scope, compiled (not linked);
  ```c norun      a complete program that needs something the test does not start (a
                  daemon): linked, not run.
Fragments (blocks without a main()) are compiled after <hybrid/hybrid.h> and the usual C
headers; every block with -Werror.
Exits 1 listing every block that failed, 77 (skipped) when no C compiler is found.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

PRELUDE = """#include <hybrid/hybrid.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
"""
# Fragments may leave variables unused or unset: they show a call, not a program.
FRAGMENT_FLAGS = ["-Wno-unused-variable", "-Wno-unused-but-set-variable",
                  "-Wno-uninitialized", "-Wno-maybe-uninitialized", "-Wno-unused-function",
                  "-Wno-unused-value"]
CFLAGS = ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror"]
FENCE = re.compile(r"^(\s*)```+\s*c(?:\s+(.*))?$")
MAIN = re.compile(r"\bint\s+main\s*\(")


def blocks(path):
        """Yields (first line number, words, text) for each ```c block of a Markdown file."""
        with open(path, encoding="utf-8") as f:
                lines = f.read().split("\n")
        i = 0
        while i < len(lines):
                m = FENCE.match(lines[i])
                if not m:
                        i += 1
                        continue
                words = (m.group(2) or "").split()
                start = i + 1
                i += 1
                body = []
                while i < len(lines) and not lines[i].strip().startswith("```"):
                        body.append(lines[i])
                        i += 1
                if i == len(lines):
                        raise SystemExit(f"{path}:{start}: unterminated ```c block")
                i += 1
                yield start, words, "\n".join(body) + "\n"


def run(cmd, **kw):
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, **kw)


def main():
        root = sys.argv[1]
        files = sys.argv[2:]
        if not files:
                files = [os.path.join(root, "README.md")]
                docdir = os.path.join(root, "doc")
                files += sorted(os.path.join(docdir, f) for f in os.listdir(docdir)
                                if f.endswith(".md"))
        cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
        if not cc:
                print("SKIP: no C compiler")
                return 77
        flags = run(["pkg-config", "--cflags", "--libs", "hybrid"])
        if flags.returncode:
                print("FAIL: pkg-config --cflags --libs hybrid:\n" + flags.stdout)
                return 1
        pc = shlex.split(flags.stdout)
        libdirs = [f[2:] for f in pc if f.startswith("-L")]
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = ":".join(libdirs + [env.get("LD_LIBRARY_PATH", "")]).strip(":")
        failed, counts = [], {"run": 0, "linked": 0, "compiled": 0}
        # The README's first C block is the first program a newcomer tries: it must be
        # complete and run without a daemon.
        readme = os.path.join(root, "README.md")
        if readme in files:
                first = next(blocks(readme), None)
                if first is None or not MAIN.search(first[2]) or "norun" in first[1]:
                        failed.append("README.md: the first ```c block is not a complete "
                                      "program that runs (a main(), no norun)")
        with tempfile.TemporaryDirectory(prefix="hyb-c-examples.") as tmp:
                n = 0
                for path in files:
                        rel = os.path.relpath(path, root)
                        for line, words, text in blocks(path):
                                n += 1
                                where = f"{rel}:{line}"
                                wdir = os.path.join(tmp, str(n))
                                os.mkdir(wdir)
                                src = os.path.join(wdir, "example.c")
                                complete = bool(MAIN.search(text))
                                extra = []
                                if complete:
                                        code = f'#line {line + 1} "{rel}"\n' + text
                                elif "file" in words:
                                        code = PRELUDE + f'#line {line + 1} "{rel}"\n' + text
                                        extra = FRAGMENT_FLAGS
                                else:
                                        code = (PRELUDE + "void hyb_doc_example(void);\n"
                                                "void hyb_doc_example(void)\n{\n"
                                                f'#line {line + 1} "{rel}"\n' + text + "}\n")
                                        extra = FRAGMENT_FLAGS
                                with open(src, "w", encoding="utf-8") as f:
                                        f.write(code)
                                if complete:
                                        exe = os.path.join(wdir, "example")
                                        r = run([cc, *CFLAGS, "-o", exe, src, *pc])
                                else:
                                        r = run([cc, *CFLAGS, *extra, "-c", "-o",
                                                 os.path.join(wdir, "example.o"), src, *pc])
                                if r.returncode:
                                        failed.append(f"{where}: does not compile:\n{r.stdout}")
                                        continue
                                if not complete:
                                        counts["compiled"] += 1
                                        continue
                                if "norun" in words:
                                        counts["linked"] += 1
                                        continue
                                try:
                                        r = run([exe], cwd=wdir, env=env, timeout=60)
                                except subprocess.TimeoutExpired:
                                        failed.append(f"{where}: did not finish within 60 s")
                                        continue
                                if r.returncode:
                                        failed.append(f"{where}: exited {r.returncode}:\n{r.stdout}")
                                        continue
                                counts["run"] += 1
                                print(f"ok {where}: ran; output:")
                                sys.stdout.write("".join("    " + s + "\n"
                                                         for s in r.stdout.splitlines()))
        print(f"{n} C blocks: {counts['run']} run, {counts['linked']} linked only, "
              f"{counts['compiled']} fragments compiled, {len(failed)} failed")
        for f in failed:
                print("FAIL " + f)
        if n == 0:
                print("FAIL: no ```c block found")
                return 1
        return 1 if failed else 0


if __name__ == "__main__":
        sys.exit(main())
