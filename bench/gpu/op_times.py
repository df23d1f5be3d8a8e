#!/usr/bin/env python3
"""Summarise `dcp bench-gpu --op-times DIR` records: where each rank's forward and backward time went.

    python3 bench/gpu/op_times.py DIR [--top N]

Per plan (batch, mask, planner, block size) and phase, per rank: the program's span, the time its
compute stream spent in attention kernels, in element-wise kernels and copies (fills, copies,
sums, merges, packs/unpacks), idle (gaps between compute-stream ops: waiting for a transfer or a
peer), and the longest single ops. Times are from CUDA events around each op of the last run.
"""
import json
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # (records.py beside this file)
from records import glob_records, open_record


def load(d):
    recs = []
    for p in glob_records(os.path.join(d, "ops_rank*.jsonl")):
        with open_record(p) as f:
            recs += [json.loads(line) for line in f if line.strip()]
    return recs


def is_attention(op):
    """An attention kernel launch: every forward / backward kernel family names its launch
    `launch:Fwd...` / `launch:Bwd...` (FwdHalf, FwdShort, Bwd, BwdCluster, BwdDd, ...)."""
    return op.startswith("launch:Fwd") or op.startswith("launch:Bwd")


def summarise(ops):
    """(span, attention ms, other compute ms, idle ms, comm ms) of one rank's phase."""
    comp = sorted((o for o in ops if o["op"] != "comm"), key=lambda o: o["start_ms"])
    attn = sum(o["end_ms"] - o["start_ms"] for o in comp if is_attention(o["op"]))
    other = sum(o["end_ms"] - o["start_ms"] for o in comp if not is_attention(o["op"]) and o["op"] != "wait")
    # Unpacks run inside a wait's span; its span starts when the stream may go on.
    other += sum(o["end_ms"] - o["start_ms"] for o in comp if o["op"] == "wait")
    idle, last = 0.0, 0.0
    for o in comp:
        idle += max(0.0, o["start_ms"] - last)
        last = max(last, o["end_ms"])
    comm = sum(o["end_ms"] - o["start_ms"] for o in ops if o["op"] == "comm")
    span = max([o["end_ms"] for o in ops] + [0.0])
    return span, attn, other, idle, comm


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    top = int(sys.argv[sys.argv.index("--top") + 1]) if "--top" in sys.argv else 3
    recs = load(sys.argv[1])
    if not recs:
        sys.exit(f"no ops_rank*.jsonl records in {sys.argv[1]}")
    plans = defaultdict(dict)
    for r in recs:
        plans[(r["mask"], r["batch"], r["planner"], r["block_size"])][r["rank"]] = r
    print("| mask | batch | planner (candidate) | phase | ms (bench) | per rank: span / attention / other / idle ms | longest ops (rank: instr op ms) |")
    print("|---|---|---|---|---|---|---|")
    for key in sorted(plans):
        ranks = plans[key]
        any_r = next(iter(ranks.values()))
        for ph in ("fwd", "bwd"):
            cells, longest = [], []
            for rk in sorted(ranks):
                ops = ranks[rk][ph]
                span, attn, other, idle, _ = summarise(ops)
                cells.append(f"{span:.2f}/{attn:.2f}/{other:.2f}/{idle:.2f}")
                longest += [(o["end_ms"] - o["start_ms"], rk, o) for o in ops if o["op"] != "comm"]
            longest.sort(key=lambda x: -x[0])
            lo = ", ".join(f"r{rk}: {o['instr']} {o['op'].replace('launch:', '')} {d:.2f}" for d, rk, o in longest[:top])
            cand = any_r.get("candidate") or "-"
            print(f"| {key[0]} | {key[1]} | {key[2]}@{key[3]} ({cand}) | {ph} | {any_r[ph + '_ms']:.2f} | {' · '.join(cells)} | {lo} |")


if __name__ == "__main__":
    main()
