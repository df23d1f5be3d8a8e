#!/usr/bin/env python3
"""Issue 10's two tables from the JSON that bench/gpu/x4_cp_table.sh writes into DIR:
one causal sequence per row, dcp and zigzag against PyTorch `context_parallel` with cuDNN and
flash (single_x<W>.jsonl, torch_cp.jsonl); and the packed batches against the floor "PyTorch flash
varlen on one GPU ÷ W" (packed_x<W>.jsonl, ideal.jsonl; causal batches only, the floor's mask).

    bench/gpu/cp_table.py DIR WORLD

Times are fwd / bwd ms, max over ranks; a missing peer or plan shows "-". Prints Markdown.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # (records.py beside this file)
from records import open_record


def rows(path):
    """The JSON objects of a file of JSON lines (other lines skipped); none if it is missing."""
    if not os.path.exists(path) and not os.path.exists(path + ".gz"):
        return []
    out = []
    with open_record(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                out.append(json.loads(line))
    return out


def ms(x):
    return f"{x['fwd_ms']:.2f} / {x['bwd_ms']:.2f}" if x else "-"


def ratio(num, den):
    """num ÷ den per direction (a speed-up when num is the peer's time), or "-"."""
    if not num or not den:
        return "-"
    return f"{num['fwd_ms'] / den['fwd_ms']:.2f} / {num['bwd_ms'] / den['bwd_ms']:.2f}"


def single_table(bench, peers):
    """Lines of the one-sequence table: per length, dcp (and the candidate it returned), zigzag,
    PyTorch CP with cuDNN and flash, and dcp's speed-up over CP + cuDNN."""
    plans = {}
    for x in bench:
        if x.get("kind") == "bench" and x.get("n_seqs") == 1:
            plans[(x["tokens"], x["planner"])] = x
    cp = {(p["backend"], p["S"]): p for p in peers if "fwd_ms" in p}
    out = ["| tokens | dcp | zigzag | CP + cuDNN | CP + flash | CP + cuDNN ÷ dcp |",
           "|---|---|---|---|---|---|"]
    for t in sorted({t for t, _ in plans}):
        d = plans.get((t, "dcp"))
        name = f" ({d['candidate']})" if d and d.get("candidate") else ""
        cu, fl = cp.get(("cudnn", t)), cp.get(("flash", t))
        out.append(f"| {t} | {ms(d)}{name} | {ms(plans.get((t, 'zigzag')))} | {ms(cu)} | {ms(fl)} | "
                   f"{ratio(cu, d)} |")
    return out


def packed_table(bench, ideal, world):
    """Lines of the packed table: per batch, the floor (one GPU's flash varlen ÷ world), each
    planner, and dcp ÷ floor."""
    floor = {r["batch"]: r for r in ideal if "causal_fwd_ms" in r}
    plans = {}
    for x in bench:
        if x.get("kind") == "bench" and x.get("mask") == "causal":
            plans.setdefault(x["batch"], {})[x["planner"]] = x
    names = [p for p in ("local", "zigzag", "dcp") if any(p in v for v in plans.values())]
    out = ["| batch | tokens / documents | floor | " + " | ".join(names) + " | dcp ÷ floor |",
           "|---|---|---|" + "---|" * len(names) + "---|"]
    for b in sorted(plans):
        f = floor.get(b)
        fl = {"fwd_ms": f["causal_fwd_ms"] / world, "bwd_ms": f["causal_bwd_ms"] / world} if f else None
        any_x = next(iter(plans[b].values()))
        cells = " | ".join(ms(plans[b].get(p)) for p in names)
        out.append(f"| {b} | {any_x['tokens']} / {any_x['n_seqs']} | {ms(fl)} | {cells} | "
                   f"{ratio(plans[b].get('dcp'), fl)} |")
    return out


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    d, world = argv[1], int(argv[2])
    print("One causal sequence, fwd / bwd ms:")
    print("\n".join(single_table(rows(f"{d}/single_x{world}.jsonl"), rows(f"{d}/torch_cp.jsonl"))))
    print(f"\nPacked batches (causal) against PyTorch flash varlen on one GPU ÷ {world}:")
    print("\n".join(packed_table(rows(f"{d}/packed_x{world}.jsonl"), rows(f"{d}/ideal.jsonl"), world)))


if __name__ == "__main__":
    main(sys.argv)
