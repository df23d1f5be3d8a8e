#!/usr/bin/env python3
"""Summarise an Nsight Compute report: issue-stall reasons (raw page) and the SASS lines with the
most warp-stall samples (source page). Usage: ncu_summary.py NCU RAW_OR_REP [TOP]"""
import csv, io, subprocess, sys

ncu, rep = sys.argv[1], sys.argv[2]
top = int(sys.argv[3]) if len(sys.argv) > 3 else 40
raw = subprocess.run([ncu, "-i", rep, "--page", "raw", "--csv"], capture_output=True, text=True).stdout
rows = list(csv.reader(io.StringIO(raw)))
if len(rows) >= 3:
    hdr, vals = rows[0], rows[2]
    st = [(h, v) for h, v in zip(hdr, vals) if "issue_stalled" in h and "per_issue_active" in h]
    def num(v):
        try:
            return float(v.replace(",", ""))
        except ValueError:
            return 0.0
    print("stall reasons (warps per issue-active cycle):")
    for h, v in sorted(st, key=lambda x: -num(x[1]))[:14]:
        print(f"  {h.replace('smsp__average_warps_issue_stalled_', '').replace('_per_issue_active.ratio', ''):28} {v}")
src = subprocess.run([ncu, "-i", rep, "--page", "source", "--csv", "--print-source", "sass"],
                     capture_output=True, text=True).stdout
rows = list(csv.reader(io.StringIO(src[src.find('"'):])))
if rows:
    hdr = rows[0]
    ia = next((i for i, h in enumerate(hdr) if h.startswith("Warp Stall Sampling (All")), None)
    isrc = next((i for i, h in enumerate(hdr) if h == "Source"), 1)
    iad = next((i for i, h in enumerate(hdr) if "Address" in h), 0)
    if ia is not None:
        body = [r for r in rows[1:] if len(r) > ia]
        tot = sum(float(r[ia] or 0) for r in body) or 1
        print(f"top SASS lines by stall samples (of {tot:.0f}):")
        for r in sorted(body, key=lambda r: -float(r[ia] or 0))[:top]:
            print(f"  {float(r[ia] or 0) / tot * 100:5.1f}% {r[iad]:>6} {r[isrc][:90]}")
        # Samples per region between HGMMA/SYNCS markers would need the CFG; print the columns too.
        print("columns:", [h for h in hdr][:30])
