#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The repository stands alone: its docs, headers, sources and scripts cite only files
it contains, and name no path of one particular machine.

Usage: citations.py SRCROOT
Reports, one per line as FILE:LINE: what, and exits 1 when there is any:
  - `../shared/...` (a directory outside the repository);
  - ARCHITECTURE.md, and any other NAME.md that exists neither beside the citing file,
    nor at the top of the repository, nor in doc/ (doc/protocol.md, tokens.md, ...);
  - absolute paths of a particular machine: /work/, /root/, /Users/, /mnt/, /srv/.
"""
import os
import re
import sys

SCAN = ["README.md", "meson.build", "meson_options.txt", "doc", "include", "lib", "bench",
        "examples", "scripts", ".ci", "tests"]
# The checker and its own tests name the patterns they look for.
SKIP = {os.path.join("tests", "doc")}
TEXT_EXT = {".md", ".c", ".h", ".sh", ".py", ".txt", ".build", ".map", ".yaml", ".lua",
            ".mmadt", ""}
SHARED = re.compile(r"\.\./shared\b")
MD = re.compile(r"(?<![\w./-])((?:\.\.?/)*[\w./-]*?[\w-]+\.md)\b")
MACHINE = re.compile(r"(?<![\w.~$-])/(?:work|root|Users|mnt|srv)/")


def files(root):
        for entry in SCAN:
                path = os.path.join(root, entry)
                if os.path.isfile(path):
                        yield path
                elif os.path.isdir(path):
                        for d, dirs, names in os.walk(path):
                                dirs[:] = sorted(x for x in dirs if not x.startswith("build")
                                                 and os.path.relpath(os.path.join(d, x), root)
                                                 not in SKIP)
                                for n in sorted(names):
                                        if os.path.splitext(n)[1] in TEXT_EXT:
                                                yield os.path.join(d, n)


def exists(root, here, cited):
        cited = cited.lstrip("`")
        if cited.startswith("http"):
                return True
        for base in (os.path.dirname(here), root, os.path.join(root, "doc")):
                if os.path.exists(os.path.normpath(os.path.join(base, cited))):
                        return True
        return False


def main():
        root = os.path.abspath(sys.argv[1])
        found = []
        for path in files(root):
                rel = os.path.relpath(path, root)
                try:
                        with open(path, encoding="utf-8") as f:
                                lines = f.read().split("\n")
                except UnicodeDecodeError:
                        continue
                for no, line in enumerate(lines, 1):
                        where = f"{rel}:{no}"
                        if SHARED.search(line):
                                found.append(f"{where}: cites ../shared (outside the repository)")
                        for m in MD.finditer(line):
                                cited = m.group(1)
                                if re.search(r"https?://\S*$", line[:m.start()]):
                                        continue
                                if not exists(root, path, cited):
                                        found.append(f"{where}: cites {cited}, which the "
                                                     "repository does not contain")
                        if MACHINE.search(line):
                                found.append(f"{where}: machine-specific path: {line.strip()}")
        found = list(dict.fromkeys(found))
        for f in found:
                print(f)
        print(f"{len(found)} citation(s) of files outside the repository or machine paths")
        return 1 if found else 0


if __name__ == "__main__":
        sys.exit(main())
