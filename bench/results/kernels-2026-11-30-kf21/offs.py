#!/usr/bin/env python3
"""kf21: the offset between the two consumer warpgroups per task, and where each waits, from a
g_pf dump of bench/gpu/fwd_prof.py's kernel (2-tile tasks: works1000).  offs.py DUMP.bin [LABEL]"""
import array, statistics, sys
MAXT, NS, NCTA = 192, 80, 132
raw = array.array("I"); raw.frombytes(open(sys.argv[1], "rb").read())
lab = sys.argv[2] if len(sys.argv) > 2 else sys.argv[1]
def sl(b, tq, r):
    o = ((b * MAXT + tq) * 3 + r) * NS
    return raw[o:o + NS]
def d(a, b):  # b - a, u32 clock
    x = (b - a) & 0xffffffff
    return x - (1 << 32) if x >= (1 << 31) else x
def st(v):
    if not v: return "-"
    v = sorted(v)
    return "med %6d mean %7.0f p10 %6d p90 %6d (n %d)" % (statistics.median(v), sum(v) / len(v), v[len(v) // 10], v[(9 * len(v)) // 10], len(v))
off, offS, offE, qw, kv, turnS, task, byq = [], [], [], {1: [], 2: []}, {(r, j): [] for r in (1, 2) for j in (0, 1)}, {1: [], 2: []}, {1: [], 2: []}, {}
pq = {2: [], 4: []}
for b in range(NCTA):
    for tq in range(MAXT - 1):
        c0, c1 = sl(b, tq, 1), sl(b, tq, 2)
        if c0[0] == 0 or c1[0] == 0 or c0[5] == 0 or c1[5] == 0 or (c0[2] & 0xffff) != 2: continue
        o = d(c0[5], c1[5]); off.append(o); byq.setdefault(min(tq, 8), []).append(o)
        offS.append(d(c0[6], c1[6]))  # S done (j 0)
        if c0[56] and c1[56]: offE.append(d(c0[56], c1[56]))  # epilogue start
        for r, c in ((1, c0), (2, c1)):
            qw[r].append(d(c[0], c[1]))
            for j in (0, 1):
                if c[4 + 6 * j] and c[5 + 6 * j]: kv[(r, j)].append(d(c[4 + 6 * j], c[5 + 6 * j]))
            turnS[r].append(d(c[5], c[6]))
            n = sl(b, tq + 1, r)
            if n[0]: task[r].append(d(c[0], n[0]))
        p = sl(b, tq, 0)
        if tq >= 2 and p[1]:
            if p[2]: pq[2].append(d(p[1], p[2]))
            if p[4]: pq[4].append(d(p[1], p[4]))
print("==", lab)
print("offset w1-w0 at stage landed j0:", st(off))
print("offset w1-w0 at S done j0:      ", st(offS))
print("offset w1-w0 at epilogue start: ", st(offE))
print("offset by task index (0..7, 8+):", " ".join("%d:%d" % (k, statistics.median(v)) for k, v in sorted(byq.items())))
for r in (1, 2):
    print("w%d Q wait" % (r - 1), st(qw[r]))
    for j in (0, 1): print("w%d K/V wait j%d" % (r - 1, j), st(kv[(r, j)]))
    print("w%d S issue+wait j0 (turn)" % (r - 1), st(turnS[r]))
    print("w%d task (Q wait start -> next)" % (r - 1), st(task[r]))
print("producer Q half 0 free wait (desc read -> free)", st(pq[2]))
print("producer Q half 1 free wait (QWG)", st(pq[4]))
