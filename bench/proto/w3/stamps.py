#!/usr/bin/env python3
"""Summarise W3_STAMP dumps (w3.cu with W3_STAMP_OUT): per consumer warpgroup, the median clocks of
each phase of a task over tasks 2..TASKS-2 of the stamped CTAs, and the offset between the two
warpgroups' S issues. usage: stamps.py NC FILE[.gz] [FILE ...]"""
import gzip, struct, sys, statistics

CTAS, TASKS, SLOTS = 8, 32, 10
PH = [("Q wait", 0, 1), ("K wait", 1, 2), ("S issue", 2, 3), ("S run", 3, 4), ("softmax", 4, 5),
      ("V wait+PV issue", 5, 6), ("PV run", 6, 7), ("epilogue", 7, 8), ("to next", 8, None)]


def main():
    nc = int(sys.argv[1])
    for fn in sys.argv[2:]:
        raw = (gzip.open if fn.endswith(".gz") else open)(fn, "rb").read()
        v = struct.unpack(f"<{len(raw) // 8}Q", raw)
        at = lambda c, w, t, i: v[((c * nc + w) * TASKS + t) * SLOTS + i]
        print(fn)
        for w in range(nc):
            row = []
            for name, a, b in PH:
                d = [((at(c, w, t, b) if b is not None else at(c, w, t + 1, 0)) - at(c, w, t, a))
                     for c in range(CTAS) for t in range(2, TASKS - 2)]
                row.append(f"{name} {statistics.median(d):.0f}")
            tot = [at(c, w, t + 1, 0) - at(c, w, t, 0) for c in range(CTAS) for t in range(2, TASKS - 2)]
            print(f"  wg{w}: task {statistics.median(tot):.0f} | " + " | ".join(row))
        if nc >= 2:
            off = [at(c, 1, t, 3) - at(c, 0, t, 3) for c in range(CTAS) for t in range(2, TASKS - 2)]
            pv = [at(c, 1, t, 6) - at(c, 0, t, 6) for c in range(CTAS) for t in range(2, TASKS - 2)]
            print(f"  wg1 - wg0: S issued {statistics.median(off):.0f}, PV issued {statistics.median(pv):.0f}")


if __name__ == "__main__":
    main()
