#!/usr/bin/env python3
"""Summarise a dump of bits_prof.sh's stamped kernel: per step kind (partial / full), the mean clocks
from the stage landing (slot 1) to the mask bits in registers (slot 5) and to S^T, dP^T done (slot 2),
and the step (slot 0 to the next step's slot 0). First 4 steps of each CTA skipped."""
import array, sys
NCTA, NWG, NSLOT = 132, 2, 8
raw = array.array("I"); raw.frombytes(open(sys.argv[1], "rb").read())
rows = len(raw) // (NCTA * NWG * NSLOT); maxs = rows - 1
at = lambda sm, w, st, sl: raw[((sm * NWG + w) * rows + st) * NSLOT + sl]
acc = {True: [0, 0, 0, 0], False: [0, 0, 0, 0]}
for sm in range(NCTA):
    for w in range(NWG):
        if at(sm, w, maxs, 0) == 0:
            continue
        n = min(at(sm, w, maxs, 5), maxs)
        for st in range(4, n - 1):
            k = bool(at(sm, w, st, 7) >> 31)
            a = acc[k]
            a[0] += (at(sm, w, st, 5) - at(sm, w, st, 1)) & 0xFFFFFFFF
            a[1] += (at(sm, w, st, 2) - at(sm, w, st, 1)) & 0xFFFFFFFF
            a[2] += (at(sm, w, st + 1, 0) - at(sm, w, st, 0)) & 0xFFFFFFFF
            a[3] += 1
for k, a in acc.items():
    if a[3]:
        print(f"{'partial' if k else 'full':8s} steps {a[3]:6d}: landed->bits {a[0] / a[3]:7.0f}  landed->S+dP done {a[1] / a[3]:7.0f}  step {a[2] / a[3]:7.0f} clk")
