#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""hybrid/mmadt.h and doc/mmadt.md state the same mm-ADT default limits (budget, depth,
memory), and the program in doc/mmadt.md checks the same numbers against the library
(that program is run by doc-c-examples).  Usage: mmadt-defaults.py SRCROOT"""
import os
import re
import sys

root = sys.argv[1]
with open(os.path.join(root, "include/hybrid/mmadt.h"), encoding="utf-8") as f:
        header = f.read()
with open(os.path.join(root, "doc/mmadt.md"), encoding="utf-8") as f:
        doc = f.read()


def one(rx, text, what):
        m = re.search(rx, text)
        if not m:
                sys.exit(f"FAIL: cannot find {what}")
        return m.groups()


h_budget, = one(r"budget;[^\n]*default (\w+)", header, "the budget default in mmadt.h")
h_depth, = one(r"max_depth;[^\n]*default (\d+)", header, "the depth default in mmadt.h")
h_mem, = one(r"max_memory;[^\n]*default (\d+ ?MiB)", header, "the memory default in mmadt.h")
d_budget, d_depth, d_mem = one(r"defaults (\w+) instructions, depth (\d+), (\d+ ?MiB)", doc,
                               "'defaults N instructions, depth N, N MiB' in doc/mmadt.md")
c_budget, c_depth, c_mem = one(r"o\.budget == (\d+) && o\.max_depth == (\d+) && "
                               r"o\.max_memory == (\d+)u << 20", doc,
                               "the defaults check of the program in doc/mmadt.md")
expand = {"10M": "10000000"}
pairs = [("budget", expand.get(h_budget, h_budget), expand.get(d_budget, d_budget), c_budget),
         ("depth", h_depth, d_depth, c_depth),
         ("memory", h_mem.replace(" ", ""), d_mem.replace(" ", ""), c_mem + "MiB")]
bad = 0
for what, h, d, c in pairs:
        print(f"{what}: mmadt.h {h}, doc/mmadt.md {d}, its program {c}")
        if not (h == d == c):
                print(f"FAIL: the default {what} differs")
                bad = 1
sys.exit(bad)
