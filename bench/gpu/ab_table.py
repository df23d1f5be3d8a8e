#!/usr/bin/env python3
"""The table of an alternated A/B call: `kernel-bench` (or `bench-gpu`) JSON lines of each variant
and round in DIR as `kb_<variant>_<round>.jsonl`, one row per shape (bench-gpu: per mask and
batch) with every run's value of FIELD and each variant's mean over the first variant's (the
base).

    bench/gpu/ab_table.py DIR FIELD VARIANT [VARIANT ...]

FIELD is a record key, e.g. fwd_tflops_per_gpu or bwd_tflops_per_gpu. Records of other kinds
than "bench" are skipped; a variant with no run of a shape shows "-". With two shapes or more, a
last row gives each variant's geometric mean of its ratios (and over how many shapes). Prints
Markdown.
"""
import json
import os
import statistics
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # (records.py beside this file)
from records import glob_records, open_record


def row_key(x):
    """A record's row: kernel-bench's shape; bench-gpu's mask, with `#B` for its batch B past
    the first (a batch file of several batches gives one row per batch)."""
    if x.get("shape"):
        return x["shape"]
    b = x.get("batch")
    return x.get("mask", "?") + (f"#{b}" if b else "")


def collect(d, field):
    """{shape: {variant: [values in round order]}} from DIR's kb_<variant>_<round>.jsonl (or
    .jsonl.gz)."""
    t = defaultdict(lambda: defaultdict(list))
    files = [f.removesuffix(".gz") for f in glob_records(os.path.join(d, "kb_*_*.jsonl"))]
    for f in sorted(files, key=lambda f: os.path.basename(f).rsplit("_", 1)[1]):
        v = os.path.basename(f)[len("kb_"):].rsplit("_", 1)[0]
        with open_record(f) as fh:
            for line in fh:
                if not line.strip():
                    continue
                x = json.loads(line)
                if x.get("kind") == "bench" and field in x:
                    t[row_key(x)][v].append(x[field])
    return t


def table(t, variants):
    """Markdown lines: runs of each variant, and mean ÷ the base's mean after the others."""
    base = variants[0]
    out = ["| shape | " + " | ".join(variants) + " |", "|---|" + "---|" * len(variants)]
    for shape, d in t.items():
        b = statistics.mean(d[base]) if d.get(base) else float("nan")
        cells = []
        for v in variants:
            if not d.get(v):
                cells.append("-")
                continue
            runs = " ".join("%.0f" % y for y in d[v])
            cells.append(runs if v == base else f"{runs} ({statistics.mean(d[v]) / b:.3f})")
        out.append(f"| {shape} | " + " | ".join(cells) + " |")
    if len(t) > 1 and len(variants) > 1:
        # Geometric mean of each variant's ratios over the shapes both it and the base ran.
        cells = [""]
        for v in variants[1:]:
            r = [statistics.mean(d[v]) / statistics.mean(d[base]) for d in t.values() if d.get(v) and d.get(base)]
            cells.append(f"{statistics.geometric_mean(r):.3f} ({len(r)})" if r else "-")
        out.append("| geomean (shapes) | " + " | ".join(cells) + " |")
    return out


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__)
    d, field, variants = argv[1], argv[2], argv[3:]
    print(f"{field} (÷ {variants[0]})")
    print("\n".join(table(collect(d, field), variants)))


if __name__ == "__main__":
    main(sys.argv)
