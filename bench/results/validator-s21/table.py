#!/usr/bin/env python3
# Medians over rounds (each round one process per topology and mode) of validator_bench rows.
# usage: table.py RAWDIR
import glob, os, statistics as st, collections, sys
raw = sys.argv[1]
d = collections.defaultdict(list)
for f in sorted(glob.glob(os.path.join(raw, 'vb_*.txt'))):
    parts = os.path.basename(f)[:-4].split('_')
    if len(parts) != 4:  # run_host.sh's thread sweep (vb_T_tN.txt): read those whole
        continue
    _, T, m, r = parts
    for l in open(f):
        c = [x.strip() for x in l.strip().strip('|').split('|')]
        if not l.startswith('| ') or c[0] in ('planner',) or c[0].startswith('---') or len(c) < 13 or c[9] == '–':
            continue
        # plan CPU ms, validate wall ms, validate CPU ms, CPU ratio, plan wall ms
        d[(T, c[0], c[2], m)].append((float(c[9]), float(c[10]), float(c[11]), float(c[12]), float(c[8])))
med = lambda v: st.median(v)
rng = lambda v: f"{min(v):.2f}–{max(v):.2f}"
print("| topology | planner | batch | rounds | plan CPU ms | validate CPU ms, auto (one thread) | sequential | ÷ plan, auto: median (range) | sequential: median (range) |")
print("|---|---|---|---|---|---|---|---|---|")
for T in ['4x8', '8x8', '16x8', '32x8']:
    for p in ['ring', 'zigzag', 'usp', 'dcp']:
        for b in ['0', '1']:
            a = d.get((T, p, b, 'auto')); s = d.get((T, p, b, 'sequential'))
            if not a:
                continue
            print(f"| {T} | {p} | {b} | {len(a)} | {med([x[0] for x in a]):.2f} | {med([x[2] for x in a]):.2f} | {med([x[2] for x in s]):.2f} | "
                  f"**{med([x[3] for x in a]):.2f}** ({rng([x[3] for x in a])}) | {med([x[3] for x in s]):.2f} ({rng([x[3] for x in s])}) |")
two = [(k, v) for k, v in d.items() if k[3] == 'auto2t']
if two:
    print()
    print("Two threads (`--threads 2 --mode auto`: a pool of 2, Auto picks Phases when phases are long), wall ms:")
    print()
    print("| topology | planner | batch | rounds | plan wall ms (planner on one thread) | validate wall ms | ÷ |")
    print("|---|---|---|---|---|---|---|")
    for (T, p, b, _), v in sorted(two):
        pw, vw = med([x[4] for x in v]), med([x[1] for x in v])
        print(f"| {T} | {p} | {b} | {len(v)} | {pw:.2f} | {vw:.2f} | {vw / pw:.2f} |")
