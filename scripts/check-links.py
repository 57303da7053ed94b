#!/usr/bin/env python3
"""Every path the repository's files point at stays inside the repository and exists.

    scripts/check-links.py [ROOT]

Checks, for the tracked files of ROOT (default: this repository):
  - Markdown links and images `[text](target)` in *.md: a relative target must
    resolve to a file or directory inside ROOT; a `#anchor` into a Markdown
    file must name one of its headings (GitHub's slug rules);
  - Rust `include_str!` / `include_bytes!` / `include!` paths: inside ROOT and
    present;
  - any file: no reference to a sibling checkout (the contract's original
    directory beside the repository, by its name or its spec folder).
Prints one line per problem and `check-links: N files, M links, K problems`.
Exit status 1 if there is a problem. Standard library only.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INCLUDE = re.compile(r"include(?:_str|_bytes)?!\(\s*\"([^\"]+)\"\s*\)")
# Spelled in pieces so that this file does not itself refer to the sibling.
SIBLING = "sha" + "red"
OUTSIDE = re.compile(r"\.\./" + SIBLING + "|" + SIBLING + "/spec")
FENCE = re.compile(r"^\s*(```|~~~)")


def tracked():
    out = subprocess.run(["git", "-C", ROOT, "ls-files", "-z"], capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p]


def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"[`*_~]|<[^>]+>", "", s)
    s = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", s)
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


_anchors = {}


def anchors(path):
    if path not in _anchors:
        found, seen, fenced = set(), {}, False
        for line in open(path, encoding="utf-8", errors="replace"):
            if FENCE.match(line):
                fenced = not fenced
                continue
            m = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
            if m:
                base = slug(m.group(1))
                n = seen.get(base, 0)
                seen[base] = n + 1
                found.add(base if n == 0 else f"{base}-{n}")
        _anchors[path] = found
    return _anchors[path]


def inside(path):
    return os.path.commonpath([ROOT, os.path.abspath(path)]) == ROOT


def main():
    problems, links, files = [], 0, 0
    for rel in tracked():
        path = os.path.join(ROOT, rel)
        if not os.path.isfile(path):
            continue
        try:
            text = open(path, encoding="utf-8").read()
        except UnicodeDecodeError:
            continue
        files += 1
        here = os.path.dirname(path)
        if rel != "scripts/check-links.py":
            for i, line in enumerate(text.splitlines(), 1):
                if OUTSIDE.search(line):
                    problems.append(f"{rel}:{i}: refers outside the repository: {line.strip()[:100]}")
        if rel.endswith(".rs"):
            for m in INCLUDE.finditer(text):
                links += 1
                target = os.path.normpath(os.path.join(here, m.group(1)))
                if not inside(target):
                    problems.append(f"{rel}: {m.group(0)} leaves the repository")
                elif not os.path.exists(target):
                    problems.append(f"{rel}: {m.group(0)} does not exist")
        if not rel.endswith(".md"):
            continue
        fenced = False
        for i, line in enumerate(text.splitlines(), 1):
            if FENCE.match(line):
                fenced = not fenced
                continue
            if fenced:
                continue
            for m in LINK.finditer(line):
                target = m.group(1)
                if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                    continue  # http:, https:, mailto:
                links += 1
                file_part, _, anchor = target.partition("#")
                dest = os.path.normpath(os.path.join(here, file_part)) if file_part else path
                if not inside(dest):
                    problems.append(f"{rel}:{i}: link {target} leaves the repository")
                    continue
                if not os.path.exists(dest):
                    problems.append(f"{rel}:{i}: link {target}: {os.path.relpath(dest, ROOT)} does not exist")
                    continue
                if anchor and dest.endswith(".md") and anchor.lower() not in anchors(dest):
                    problems.append(f"{rel}:{i}: link {target}: no heading #{anchor} in {os.path.relpath(dest, ROOT)}")
    for p in problems:
        print(p)
    print(f"check-links: {files} files, {links} links, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
