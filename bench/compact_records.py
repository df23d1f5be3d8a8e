#!/usr/bin/env python3
"""Gzip the raw records under bench/results/ (JSON lines and logs) and fix the Markdown links to them.

The GPU machine receives a copy of the working tree of at most 64 MiB, and the raw records
(thousands of small `*.jsonl` and `*.log` files) were most of it. This replaces each tracked
`bench/results/**/*.jsonl` and `*.log` file by `FILE.gz` (gzip -9, no name or time stamp, so the
output depends only on the content), and appends `.gz` to every mention of such a file in the
repository's Markdown (`*.md`), where the mention resolves to such files: relative to the
Markdown file's folder or to the repository root, as the name or trailing path of files under the
Markdown file's folder (a README's "each call's run.log"), or as the trailing path of exactly one
record elsewhere. Mentions that resolve to nothing (names a script writes on the GPU machine,
files outside the records) are left as they are.

    python3 bench/compact_records.py            # do it (then review `git status` and commit)
    python3 bench/compact_records.py --dry-run  # list what it would do
    zcat bench/results/<folder>/<file>.jsonl.gz | head   # read a record

Only files git tracks are touched; run it from anywhere inside the repository. Files that git
reports as modified are refused (commit or restore them first), so nothing uncommitted is lost.
"""

import argparse
import gzip
import os
import re
import subprocess
import sys

EXTS = (".jsonl", ".log")
MENTION = re.compile(r"[A-Za-z0-9_./@+-]*[A-Za-z0-9_@+-]\.(?:jsonl|log)(?![A-Za-z0-9_.])")


def git(root, *args):
    return subprocess.run(["git", "-C", root, *args], check=True, capture_output=True, text=True).stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="list the files and mentions; change nothing")
    ap.add_argument("--under", default="bench/results", help="folder of the records (default: bench/results)")
    args = ap.parse_args()

    root = git(os.getcwd(), "rev-parse", "--show-toplevel").strip()
    tracked = git(root, "ls-files", "-z").split("\0")
    tracked = [p for p in tracked if p]
    dirty = set(git(root, "diff", "--name-only", "HEAD").split())
    under = args.under.rstrip("/") + "/"
    targets = [p for p in tracked if p.startswith(under) and p.endswith(EXTS)]
    bad = [p for p in targets if p in dirty]
    if bad:
        sys.exit(f"refusing: {len(bad)} record(s) have uncommitted changes, e.g. {bad[0]}")
    compacted = set(targets)

    # Mentions in Markdown, resolved to repository paths.
    by_name = {}
    for p in targets:
        by_name.setdefault(os.path.basename(p), []).append(p)
    edits = {}
    for md in (p for p in tracked if p.endswith(".md")):
        text = open(os.path.join(root, md), encoding="utf-8").read()
        base = os.path.dirname(md)

        def resolve(tok):
            cands = [os.path.normpath(os.path.join(base, tok)), os.path.normpath(tok.lstrip("./") if tok.startswith("./") else tok)]
            for c in cands:
                if c in compacted:
                    return c
            # A name or partial path: the files under the Markdown file's folder that end with
            # it (a README's "each call's run.log"), else, for a partial path, the one such file
            # in the repository (a sibling folder's record).
            tail = "/" + tok.lstrip("./")
            named = by_name.get(os.path.basename(tok), [])
            inside = [p for p in named if p.startswith(base + "/") and p.endswith(tail)]
            if inside:
                return inside[0]
            anywhere = [p for p in named if p.endswith(tail)]
            if "/" in tok and len(anywhere) == 1:
                return anywhere[0]
            return None

        hits = 0

        def sub(m):
            nonlocal hits
            if resolve(m.group(0)) is None:
                return m.group(0)
            hits += 1
            return m.group(0) + ".gz"

        new = MENTION.sub(sub, text)
        if hits:
            edits[md] = (new, hits)

    before = sum(os.path.getsize(os.path.join(root, p)) for p in targets)
    print(f"{len(targets)} records under {under} ({before / 2**20:.1f} MiB); "
          f"{sum(h for _, h in edits.values())} mentions in {len(edits)} Markdown files")
    if args.dry_run:
        for md, (_, h) in sorted(edits.items()):
            print(f"  {md}: {h}")
        return
    after = 0
    for i, p in enumerate(targets, 1):
        src = os.path.join(root, p)
        data = open(src, "rb").read()
        with open(src + ".gz", "wb") as f:
            with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=f, mtime=0) as g:
                g.write(data)
        after += os.path.getsize(src + ".gz")
        if i % 500 == 0 or i == len(targets):
            print(f"  gzipped {i} / {len(targets)}", file=sys.stderr)
    for chunk in range(0, len(targets), 500):
        part = targets[chunk:chunk + 500]
        git(root, "rm", "-q", "--", *part)
        git(root, "add", "--", *(p + ".gz" for p in part))
    for md, (new, _) in edits.items():
        open(os.path.join(root, md), "w", encoding="utf-8").write(new)
    git(root, "add", "--", *edits)
    print(f"{before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB; staged (review, then commit)")


if __name__ == "__main__":
    main()
