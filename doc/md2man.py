#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Turns a command's page of doc/ into a man page with go-md2man.

Usage: md2man.py GO-MD2MAN SOURCE OUT.1 NAME SECTION VERSION   (SOURCE: a Markdown page)

The page is Markdown with the usual man sections (NAME, SYNOPSIS, DESCRIPTION, OPTIONS,
EXIT STATUS, ...) as headings.  When they are level-2 headings under one level-1 title, the
title is dropped and every heading moves up one level, so sections become .SH and their
subsections .SS.  A `\|` in a table cell is a literal pipe.  Links keep their text; a link to another page of doc/ names the page.
"""
import re
import subprocess
import sys

HEADING = re.compile(r"^(#+)\s+(.*)$")
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def cells(row):
        """The cells of a Markdown table row; `\\|` stays a literal pipe."""
        parts = re.split(r"(?<!\\)\|", row.strip().strip("|"))
        return [c.strip() for c in parts]


def tables_to_lists(lines):
        """Man pages have a fixed width that wide tables overflow: each table becomes a
        definition list (term: the first cell; definition: the others, the header's names
        before the extra cells)."""
        out, i, fence = [], 0, False
        while i < len(lines):
                ln = lines[i]
                if ln.startswith("```"):
                        fence = not fence
                if (not fence and ln.lstrip().startswith("|") and i + 1 < len(lines)
                                and re.match(r"^\s*\|[\s:|-]+\|\s*$", lines[i + 1])):
                        head = cells(ln)
                        i += 2
                        while i < len(lines) and lines[i].lstrip().startswith("|"):
                                c = cells(lines[i])
                                extra = [f"{head[k]}: {c[k]}" if len(c) > 2 else c[k]
                                         for k in range(1, len(c))]
                                out += [c[0], ": " + "; ".join(extra), ""]
                                i += 1
                        continue
                out.append(ln)
                i += 1
        return out


def main():
        tool, src, out, name, section, version = sys.argv[1:7]
        with open(src, encoding="utf-8") as f:
                lines = f.read().split("\n")
        fence = False
        levels = {}
        for ln in lines:
                if ln.startswith("```"):
                        fence = not fence
                m = not fence and HEADING.match(ln)
                if m:
                        levels.setdefault(m.group(2).strip().upper(), len(m.group(1)))
        if "NAME" not in levels:
                sys.exit(f"{src}: no NAME section: not a man page source")
        shift = levels["NAME"] - 1
        body, fence = [], False
        for ln in lines:
                if ln.startswith("```"):
                        fence = not fence
                m = not fence and HEADING.match(ln)
                if m:
                        level = len(m.group(1)) - shift
                        if level < 1:
                                continue  # the page title: the .TH line replaces it
                        # go-md2man: levels 1 and 2 give .SH, 3 and deeper .SS.
                        ln = "#" * (1 if level == 1 else level + 1) + " " + m.group(2)
                elif not fence:
                        ln = LINK.sub(lambda k: k.group(1) if k.group(1) == k.group(2)
                                      else f"{k.group(1)} ({k.group(2)})", ln)
                body.append(ln)
        body = tables_to_lists(body)
        title = f'% {name.upper()} {section} "" "libhybrid {version}" "libhybrid manual"'
        text = title + "\n" + "\n".join(body)
        r = subprocess.run([tool], input=text, stdout=subprocess.PIPE, text=True, check=True)
        # A `\|` (a pipe inside a table cell) comes out as an escaped backslash and a pipe.
        with open(out, "w", encoding="utf-8") as f:
                f.write(r.stdout.replace("\\\\|", "|"))


if __name__ == "__main__":
        main()
