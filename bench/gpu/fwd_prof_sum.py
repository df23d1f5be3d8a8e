#!/usr/bin/env python3
"""Summarise a g_pf dump of bench/gpu/fwd_prof.py's measurement kernel (one recorded launch); the
maintained form of kf13b's pf_sum.py, plus (kf17) a per-warpgroup table of the first steps: which
step kind each warpgroup ran for tile j = 0, 1, 2 of 7-tile tasks and its phases.

    bench/gpu/fwd_prof_sum.py DUMP.bin [LABEL]

Prints per task and consumer warpgroup the median (and mean) cycles of each phase, the task's
cycles against its tiles' tensor floor (2 048 clk per 128 x 128 x 128 tile: 2 GEMMs of
4.19 MFLOP at 4 096 dense bf16 FLOP/clk/SM), the producer's phases, and, per CTA, the time
where neither consumer warpgroup has a wgmma in flight (S: stage landed -> S done; P V: first
half issued -> P V done), split by what the two warpgroups are doing meanwhile.
"""
import sys
from collections import Counter, defaultdict

import array
import statistics


class np:  # the few numpy calls used, in plain Python (no numpy on the machines)
    @staticmethod
    def median(v):
        v = list(v)
        return statistics.median(v) if v else float("nan")

    @staticmethod
    def mean(v):
        v = list(v)
        return sum(v) / len(v) if v else float("nan")

    @staticmethod
    def percentile(v, q):
        v = sorted(v)
        return v[min(len(v) - 1, int(round(q / 100 * (len(v) - 1))))] if v else float("nan")


MAXT, NS, NCTA = 192, 80, 132
raw = array.array("I")
with open(sys.argv[1], "rb") as f:
    raw.frombytes(f.read())
label = sys.argv[2] if len(sys.argv) > 2 else sys.argv[1]
HB = NCTA * MAXT * 3 * NS


class Body:
    def __getitem__(self, k):
        b, tq, r = k
        o = ((b * MAXT + tq) * 3 + r) * NS
        return raw[o : o + NS]


class Hdr:
    def __getitem__(self, k):
        b, i = k
        return raw[HB + b * 8 + i]


body, hdr = Body(), Hdr()
TILE_FLOOR = 2048

ctas = [b for b in range(NCTA) if hdr[b, 2] or hdr[b, 3]]
if not ctas:
    print(f"{label}: no recorded launch")
    sys.exit(0)
gt0 = [(hdr[b, 3] << 32) | hdr[b, 2] for b in ctas]
gt1 = [(hdr[b, 5] << 32) | hdr[b, 4] for b in ctas]
clk_rate = [((hdr[b, 6] - hdr[b, 1]) & 0xFFFFFFFF) / max(1, g1 - g0) for b, g0, g1 in zip(ctas, gt0, gt1)]
ghz = float(np.median(clk_rate))
dur = [g1 - g0 for g0, g1 in zip(gt0, gt1)]
print(f"== {label}: {len(ctas)} CTAs, launch span {(max(gt1) - min(gt0)) * 1e-3:.1f} us (globaltimer), "
      f"CTA busy median {np.median(dur) * 1e-3:.1f} us, min "
      f"{min(dur) * 1e-3:.1f}, max {max(dur) * 1e-3:.1f}; "
      f"clock {ghz:.3f} GHz; start skew {(max(gt0) - min(gt0)) * 1e-3:.1f} us")


def rel(b, v):
    return (v - hdr[b, 1]) & 0xFFFFFFFF


phase = defaultdict(list)  # name -> per (task, warpgroup) cycles
prod = defaultdict(list)
task_cyc, task_tiles, task_floor = [], [], []
idle_combo = Counter()
tot_span = tot_busy = 0
per_tile_steps = defaultdict(list)
per_wj = defaultdict(lambda: defaultdict(list))  # (w, j, kind) -> phase -> cycles
order = []
n_long = 0


def add(name, v):
    if name not in order:
        order.append(name)
    phase[name].append(v)


for b in ctas:
    ivals = {0: [], 1: []}  # wg -> (start, end, label)
    busy = []
    end_all = 0
    for tq in range(MAXT):
        c = [body[b, tq, 1 + w] for w in (0, 1)]
        if not (c[0][1] and c[0][61]):
            continue
        for w in (0, 1):
            r = c[w]
            t = lambda sl: rel(b, r[sl]) if r[sl] else None
            nt = int(r[2] & 0xFFFF)
            nh = int((r[2] >> 16) & 0x7FFF)
            one = bool(r[2] >> 31)  # a FWD_ONE task: both tiles in one step (fwd_prof.py's slots)
            s0, s1, e0 = t(0), t(1), t(56)
            e1, e2, e3, e4, e5 = t(57), t(58), t(59), t(60), t(61)
            if None in (s0, s1, e0, e5):
                continue
            iv = ivals[w]
            if nt > 8:
                # only its first 8 steps are stamped: left out of the statistics and the idle sweep
                iv.append((s0, e5, "LONG"))
                if w == 0:
                    n_long += 1
                end_all = max(end_all, e5)
                continue
            add("Q wait", s1 - s0)
            iv.append((s0, s1, "Qwait"))
            prev = s1
            prevlab = "setup"
            steps_total = 0
            ko = {i: t(i) for i in (4, 5, 6, 7, 8, 9, 10, 11)} if one else {}
            if one and None not in ko.values():
                for name, a, e, lab in [
                    ("ONE: setup (Q landed -> K wait)", s1, ko[4], "setup"),
                    ("ONE: K wait", ko[4], ko[5], "KVwait"),
                    ("ONE: S of both tiles (issue + wait)", ko[5], ko[6], "S"),
                    ("ONE: max, exp of tile 0, O zero", ko[6], ko[10], "smax"),
                    ("ONE: V wait", ko[10], ko[11], "KVwait"),
                    ("ONE: P V of tile 0 issue", ko[11], ko[7], "smax2"),
                    ("ONE: exp of tile 1 + its P V issue", ko[7], ko[8], "smax2"),
                    ("ONE: P V wait", ko[8], ko[9], "PVwait"),
                ]:
                    add(name, e - a)
                    iv.append((a, e, lab))
                busy.append((ko[5], ko[6]))
                busy.append((ko[11], ko[9]))
                steps_total = ko[9] - ko[5]
                per_tile_steps["one (2 tiles)"].append(ko[9] - ko[5])
                prev = ko[9]
            for j in range(0 if one else min(nt, 8)):
                k = [t(4 + 6 * j + i) for i in range(6)]
                if k[0] is None or k[1] is None:
                    continue
                add("pre-step (setup / step tail)" if j else "setup (descriptors, O zero)", k[0] - prev)
                iv.append((prev, k[0], prevlab))
                add("K/V wait", k[1] - k[0])
                iv.append((k[0], k[1], "KVwait"))
                if nt == 7 and j < 3:
                    kind = "skip" if k[2] is None else ("whole" if k[3] is not None else "half")
                    d = per_wj[(w, j, kind)]
                    d["pre (prev end -> wait start)"].append(k[0] - prev)
                    d["K/V wait"].append(k[1] - k[0])
                    if k[2] is not None:
                        d["S issue+wait"].append(k[2] - k[1])
                        d["softmax + PV issue"].append(k[4] - k[2])
                        d["PV wait"].append(k[5] - k[4])
                        d["step (landed -> PV done)"].append(k[5] - k[1])
                if k[2] is not None:
                    add("S (issue + wait)", k[2] - k[1])
                    iv.append((k[1], k[2], "S"))
                    busy.append((k[1], k[2]))
                    if k[3] is not None:
                        add("softmax 1st half + PV issue", k[3] - k[2])
                        add("softmax 2nd half + PV issue", k[4] - k[3])
                        iv.append((k[2], k[3], "smax"))
                        iv.append((k[3], k[4], "smax2"))
                        busy.append((k[3], k[5]))
                    elif k[4] is not None:
                        add("half-tile softmax + PV issue", k[4] - k[2])
                        iv.append((k[2], k[4], "smax"))
                        busy.append((k[2] + (k[4] - k[2]) // 2, k[5]))
                    add("PV wait", k[5] - k[4])
                    iv.append((k[4], k[5], "PVwait"))
                    steps_total += k[5] - k[1]
                    per_tile_steps["half" if j < nh else "whole"].append(k[5] - k[1])
                    prev = k[5]
                else:
                    prev = k[1]
                prevlab = "tail"
            add("step tail before epilogue", e0 - prev)
            iv.append((prev, e0, "tail"))
            if e1 is not None:
                add("epi: LSE, 1/l, stmatrix", e1 - e0)
                iv.append((e0, e1, "epi_stage"))
            if e2 is not None and e1 is not None:
                add("epi: proxy fence + wg barrier", e2 - e1)
                iv.append((e1, e2, "epi_bar"))
            if e3 is not None and e2 is not None:
                add("epi: TMA store issue", e3 - e2)
                iv.append((e2, e3, "epi_tma"))
            last = e3 if e3 is not None else (e2 if e2 is not None else e1)
            if e4 is not None and e3 is not None:
                add("epi: wait store read", e4 - e3)
                iv.append((e3, e4, "epi_rdwait"))
                last = e4
            if last is not None:
                add("epi: fence + Q release", e5 - last)
                iv.append((last, e5, "epi_rel"))
            add("epilogue total", e5 - e0)
            l0, l1 = t(62), t(63)
            if l0 is not None and l1 is not None and l1 >= l0:
                add("late release wait (next task)", l1 - l0)
            add("TASK (Q wait start -> Q released)", e5 - s0)
            add("steps (landed -> PV done, summed)", steps_total)
            if w == 0:
                task_cyc.append(e5 - s0)
                task_tiles.append(nt - nh / 2.0)
            end_all = max(end_all, e5)
        p = body[b, tq, 0]
        tp = lambda sl: rel(b, p[sl]) if p[sl] else None
        if tp(0) is not None and tp(1) is not None and tp(29) is not None:
            prod["claim + descriptors"].append(tp(1) - tp(0))
            prod["Q buffer wait (Q empty)"].append(tp(2) - tp(1))
            prod["Q + descriptor issue"].append(tp(3) - tp(2))
            nt = int(p[31])
            for it in range(min(nt, 8)):
                a, bb, cc = tp(5 + 3 * it), tp(6 + 3 * it), tp(7 + 3 * it)
                if None in (a, bb, cc):
                    continue
                prod["stage free wait"].append(bb - a)
                prod["stage issue"].append(cc - bb)
            prod["next task shared"].append(tp(29) - (tp(7 + 3 * (min(nt, 8) - 1)) or tp(3)))
            prod["producer task total"].append(tp(29) - tp(0))
            # how early Q was issued before the consumers waited for it
            if c[0][0]:
                lead = (rel(b, c[0][0]) - tp(3) + (1 << 31)) % (1 << 32) - (1 << 31)
                prod["Q issued -> consumer wg0 starts waiting (lead)"].append(lead)
    # idle analysis per CTA: sweep over the interval ends
    if end_all == 0:
        continue
    ev = []
    for a, e in busy:
        if e > a:
            ev.append((a, 0, 1, None))
            ev.append((e, 0, -1, None))
    for w in (0, 1):
        for a, e, n in ivals[w]:
            if e > a:
                ev.append((a, 1 + w, 1, n))
                ev.append((e, 1 + w, -1, n))
    ev.sort(key=lambda x: (x[0], x[2]))
    nb = 0
    cur = {1: Counter(), 2: Counter()}
    last = ev[0][0] if ev else 0
    for x, kind, d, n in ev:
        if x > last and (cur[1]["LONG"] > 0 or cur[2]["LONG"] > 0):
            last = x
        if x > last:
            seg = x - last
            tot_span += seg
            if nb > 0:
                tot_busy += seg
            else:
                la = [next(iter(+cur[k]), "-") for k in (1, 2)]
                idle_combo[(la[0], la[1])] += seg
            last = x
        if kind == 0:
            nb += d
        else:
            cur[kind][n] += d

ntask = len(task_cyc)
if n_long:
    print(f"left out: {n_long} tasks of more than 8 tiles (split-K pieces), and their time in the idle sweep")
print(f"tasks recorded {ntask}, tiles per task (half = 0.5) median {np.median(task_tiles):.1f} mean {np.mean(task_tiles):.2f}")
print(f"{'phase (per task and warpgroup)':<44} {'median':>8} {'/task':>8} {'p90':>8}   (clk; median and p90 per occurrence, /task = sum per task)")
for n in order:
    v = phase[n]
    # mean per task: sum over the task's occurrences / tasks
    per_task = sum(v) / max(1, 2 * ntask)
    print(f"{n:<44} {np.median(v):>8.0f} {per_task:>8.0f} {np.percentile(v, 90):>8.0f}   (n {len(v)})")
for k, v in per_tile_steps.items():
    print(f"tile step ({k}, landed -> PV done): median {np.median(v):.0f} clk, n {len(v)}")
tc, tt = task_cyc, task_tiles
print(f"task cycles per tile: median {np.median([a / b2 for a, b2 in zip(tc, tt)]):.0f}; tensor floor {TILE_FLOOR} per tile -> "
      f"task median {np.median(tc):.0f} vs floor {np.median(tt) * TILE_FLOOR:.0f} "
      f"(beyond the floor {np.median(tc) - np.median(tt) * TILE_FLOOR:.0f} clk per task)")
print("producer (per task):")
for n, v in prod.items():
    print(f"  {n:<46} median {np.median(v):>7.0f} mean {np.mean(v):>7.0f} p90 {np.percentile(v, 90):>7.0f}")
print(f"tensor pipe: no wgmma in flight in either consumer warpgroup for {100 * (1 - tot_busy / max(1, tot_span)):.1f} % "
      f"of the CTAs' recorded spans ({tot_span - tot_busy} of {tot_span} clk; per task {(tot_span - tot_busy) / max(1, ntask):.0f} clk)")
tot_idle = sum(idle_combo.values())
print("  idle time by (warpgroup 0 phase, warpgroup 1 phase), top 14:")
for (a, b2), n in idle_combo.most_common(14):
    print(f"    {a:<11} {b2:<11} {100 * n / max(1, tot_idle):5.1f} %  ({n / max(1, ntask):.0f} clk per task)")
print("first steps of 7-tile tasks, per consumer warpgroup w and tile j (median clk, n):")
for key in sorted(per_wj):
    w, j, kind = key
    cells = ", ".join(f"{n} {np.median(v):.0f}" for n, v in per_wj[key].items())
    print(f"  w{w} j{j} {kind:<5} (n {len(next(iter(per_wj[key].values())))}): {cells}")
