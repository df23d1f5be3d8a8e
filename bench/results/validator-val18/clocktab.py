#!/usr/bin/env python3
"""clocktab.py: the base binary's rows of ab_f4.txt (4x8, 100 rounds) and ab_f.txt (8x8-32x8, 20 rounds):
median CPU ms of planning and validation, with the warm callgrind counts (r2 - r1) -> ns per 1000 instructions."""
import statistics as st, collections
r1 = {}; r2 = {}
for f, d in (('base_counts.txt', r1), ('base_counts_r2.txt', r2)):
    for l in open(f):
        t, b, p, w, c = l.split(); d[(t, p, w)] = int(c)
g = collections.defaultdict(list)
for fn in ('ab_f4.txt', 'ab_f.txt'):
    for l in open(fn):
        x = l.split()
        if x[0] == 'v18_base': g[(x[2], x[3])].append((float(x[8]), float(x[9])))
print("| topology | planner | rounds | plan CPU ms | validate CPU ms | plan Ir | validate Ir | plan ns / kIr | validate ns / kIr | ÷ (clock) | ÷ (Ir) | clock ÷ / Ir ÷ |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for p in ['ring', 'zigzag', 'usp']:
    for t in ['4x8', '8x8', '16x8', '32x8']:
        v = g[(t, p)]; pm = st.median(a for a, b in v); vm = st.median(b for a, b in v)
        pi = r2[(t, p, 'plan')] - r1[(t, p, 'plan')]; vi = r2[(t, p, 'val')] - r1[(t, p, 'val')]
        c = st.median(b / a for a, b in v)
        print(f"| {t} | {p} | {len(v)} | {pm:.2f} | {vm:.2f} | {pi/1e6:.1f} M | {vi/1e6:.1f} M | {pm*1e9/pi:.0f} | {vm*1e9/vi:.0f} | {c:.2f} | {vi/pi:.2f} | {c/(vi/pi):.2f} |")
