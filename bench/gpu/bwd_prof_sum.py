#!/usr/bin/env python3
"""Summarise the backward's per-step stamps (bench/gpu/bwd_prof.py's patched kernel, dumped by the
measurement binary under DCP_CUDA_PROF_DUMP=DIR): the phases of a consumer warpgroup's step in
clocks, averaged over the recorded steps of each CTA's first task (its first SKIP steps left out:
the pipeline's fill), for the steps of partial tiles and of full tiles apart, and per CTA with the
slowest listed first.

    bench/gpu/bwd_prof_sum.py DIR/pf_*.bin [--skip N] [--ctas N] [--bits | --timeline [--skip-tasks N]]

Phases: wait (stage wait), S+dP (until both wgmma are done), P,dS+dV (probabilities, dS, dV
issued), dS store (into shared memory, ds_full), dQ prev (dQ of the step before and dK issued,
written out), end (dV / dK waited for), step (top to top of the next step). --bits (a
`bwd_prof.py --bits` dump): "to bits" (stage landed to the mask bits in registers) and "dQ+end"
replace "dQ prev" and "end".

--timeline (a `bwd_prof.py --timeline` dump: a CTA's steps over all its tasks): the step period
(top to top) inside a task against the period that spans a task's boundary (a task's last step,
its epilogue and the next task's wait), the boundary's extra clocks per task and their share of a
task's span, the boundary's two parts (the last step's end to the next task's top: the last dQ
and the dK/dV epilogue; the top to its first step: the K/V wait and the task's set-up), and the
phases of a task's first, inner and last steps. The CTA's first SKIP_TASKS tasks are left out
(the pipeline's fill). "dQ prev" is not summed there: slot 5 is stamped only by the warpgroup
whose turn it is. A `--timeline --cluster` dump also holds the producer's events per task; they
are printed as mean clocks from the end of the task before's last step (the next pair claimed,
the producer's loop top, the descriptors loaded, the first step's Q/dO copies issued and that
stage complete, K/V issued, and the consumers' task top and first step), all on the same SM's
clock.
"""
import argparse
import array
import statistics
import sys

NCTA, NWG, NSLOT = 132, 2, 8
# Rows per warpgroup of a dump with the producer's block (bwd_prof.py --timeline --cluster):
# bwd_prof.py's PF_MAXS steps and the header row.
PF_ROWS = 65
PHASES = [("wait", 0, 1), ("S+dP", 1, 2), ("P,dS+dV", 2, 3), ("dS store", 3, 4), ("dQ prev", 4, 5), ("end", 5, 6)]
# A `bwd_prof.py --bits` dump: slot 5 is the clock once the mask bits are in registers.
PHASES_BITS = [("wait", 0, 1), ("to bits", 1, 5), ("S+dP", 1, 2), ("P,dS+dV", 2, 3), ("dS store", 3, 4),
               ("dQ+end", 4, 6)]


def load(path):
    """(steps per row block, at(sm, w, step, slot)) of a dump: u32 [132][2][S + 1][8], or
    [132][3][PF_ROWS][8] from `bwd_prof.py --timeline --cluster` (w 2: the producer's rows); `at.nwg`
    says which."""
    raw = array.array("I")
    with open(path, "rb") as f:
        raw.frombytes(f.read())
    nwg = 3 if len(raw) == NCTA * 3 * PF_ROWS * NSLOT else NWG
    rows = len(raw) // (NCTA * nwg * NSLOT)
    if rows * NCTA * nwg * NSLOT != len(raw) or rows < 2:
        raise SystemExit(f"{path}: {len(raw) * 4} bytes is not a bwd_prof.py dump (u32 [132][2][S + 1][8])")
    maxs = rows - 1

    def at(sm, w, step, slot):
        return raw[((sm * nwg + w) * rows + step) * NSLOT + slot]

    at.nwg = nwg
    return maxs, at


def d(a, b):
    return (b - a) & 0xFFFFFFFF


def steps_of(maxs, at, skip, phases=PHASES):
    """(sm, cw, partial, phases dict, period) per recorded step after `skip`."""
    out = []
    for sm in range(NCTA):
        for w in range(NWG):
            if at(sm, w, maxs, 0) == 0:
                continue
            n = min(at(sm, w, maxs, 5), maxs)
            for s in range(skip, n):
                ph = {name: d(at(sm, w, s, a), at(sm, w, s, b)) for name, a, b in phases}
                if s == 0 and phases is PHASES:  # no dQ of a step before: the dK issue alone
                    ph["dQ prev"] = 0
                    ph["end"] = d(at(sm, w, s, 4), at(sm, w, s, 6))
                period = d(at(sm, w, s, 0), at(sm, w, s + 1, 0)) if s + 1 < n else None
                out.append((sm, w, at(sm, w, s, 7) >> 31 == 1, ph, period))
    return out


def table(rows, title, phases=PHASES):
    if not rows:
        return [f"{title}: no steps"]
    lines = [f"{title}: {len(rows)} steps"]
    for name, _, _ in phases:
        lines.append(f"  {name:10} {statistics.mean(r[3][name] for r in rows):8.0f} clk")
    per = [r[4] for r in rows if r[4] is not None]
    if per:
        lines.append(f"  {'step':10} {statistics.mean(per):8.0f} clk (top to top)")
    return lines


def timeline_rows(maxs, at, skip_tasks):
    """Per warpgroup, its stamped steps after its first `skip_tasks` tasks, as (index in task,
    phases, period to the next step's top or None, whether the next step starts a task)."""
    out = {}
    for sm in range(NCTA):
        for w in range(NWG):
            if at(sm, w, maxs, 0) == 0:
                continue
            n = min(at(sm, w, maxs, 5), maxs)
            idx = [at(sm, w, s, 7) & 0x7FFFFFFF for s in range(n)]
            starts = [s for s in range(n) if idx[s] == 0]
            if len(starts) <= skip_tasks:
                continue
            rows = []
            for s in range(starts[skip_tasks], n):
                ph = {name: d(at(sm, w, s, a), at(sm, w, s, b)) for name, a, b in PHASES if name != "dQ prev"}
                ph["end"] = d(at(sm, w, s, 4), at(sm, w, s, 6))
                if idx[s] == 0 and s > starts[skip_tasks]:  # slot 5: the task loop's top
                    ph["dQ+epilogue"] = d(at(sm, w, s - 1, 6), at(sm, w, s, 5))
                    ph["K/V wait"] = d(at(sm, w, s, 5), at(sm, w, s, 0))
                last = s + 1 < n and idx[s + 1] == 0
                period = d(at(sm, w, s, 0), at(sm, w, s + 1, 0)) if s + 1 < n else None
                rows.append((idx[s], ph, period, last))
            out[(sm, w)] = rows
    return out


def timeline_report(per_wg):
    rows = [r for rs in per_wg.values() for r in rs]
    if not rows:
        return ["timeline: no steps after the skipped tasks"]
    inner = [r[2] for r in rows if r[2] is not None and not r[3]]
    across = [r[2] for r in rows if r[2] is not None and r[3]]
    lines = [f"timeline: {len(per_wg)} warpgroups, {len(rows)} steps"]
    spans, lens = [], []
    for rs in per_wg.values():
        cur, t = None, 0
        for i, ph, period, last in rs:
            if i == 0:
                cur, t = 0, 0
            if cur is None or period is None:
                cur = None
                continue
            cur += 1
            t += period
            if last:
                spans.append(t)
                lens.append(cur)
                cur = None
    if inner:
        lines.append(f"  step inside a task     {statistics.mean(inner):8.0f} clk ({len(inner)} periods)")
    if across:
        lines.append(f"  step across a boundary {statistics.mean(across):8.0f} clk ({len(across)} periods)")
    if inner and across and spans:
        extra = statistics.mean(across) - statistics.mean(inner)
        span = statistics.mean(spans)
        lines.append(f"  task span              {span:8.0f} clk ({statistics.mean(lens):.1f} steps, {len(spans)} whole tasks)")
        lines.append(f"  boundary extra         {extra:8.0f} clk per task, {100 * extra / span:.1f} % of the span")
    tops = [r[1] for r in rows if "K/V wait" in r[1]]
    if tops:
        lines.append(f"  at a boundary: the last step's end to the next task's top (last dQ, dK/dV epilogue) "
                     f"{statistics.mean(t['dQ+epilogue'] for t in tops):.0f} clk, then to its first step "
                     f"(K/V wait, set-up) {statistics.mean(t['K/V wait'] for t in tops):.0f} clk")
    names = [name for name, _, _ in PHASES if name != "dQ prev"]
    for title, sel in (("first step of a task", lambda r: r[0] == 0),
                       ("inner steps", lambda r: r[0] != 0 and not r[3]),
                       ("last step of a task", lambda r: r[3])):
        got = [r for r in rows if sel(r)]
        if got:
            lines.append(f"  {title}: {len(got)} steps; " + ", ".join(
                f"{name} {statistics.mean(r[1][name] for r in got):.0f}" for name in names))
    return lines


def producer_report(maxs, at):
    """A `--timeline --cluster` dump's producer events (w 2) against the consumers' task
    boundaries, on the same SM's clock: per task after a CTA's first, each event's mean clocks
    from the end of the task before's last step (consumer warpgroup 0); negative: before it."""
    ev = {k: [] for k in ("next pair claimed", "producer loop top", "descriptors loaded", "first Q/dO copies issued",
                          "first Q/dO stage issued", "K/V issued (kv_empty seen)",
                          "consumers' task top", "consumers' first step top")}

    def rel(a, b):  # b - a, signed
        return ((b - a + 2**31) & 0xFFFFFFFF) - 2**31

    for sm in range(NCTA):
        if at(sm, 0, maxs, 0) == 0 or at(sm, 2, 0, 0) == 0:
            continue
        n = min(at(sm, 0, maxs, 5), maxs)
        starts = [s for s in range(n) if at(sm, 0, s, 7) & 0x7FFFFFFF == 0]
        for k in range(1, min(len(starts), maxs)):
            if at(sm, 2, k, 2) == 0:
                continue
            ref = at(sm, 0, starts[k] - 1, 6)
            ev["next pair claimed"].append(rel(ref, at(sm, 2, k - 1, 4)))
            for name, slot in (("producer loop top", 0), ("descriptors loaded", 1), ("first Q/dO stage issued", 3),
                               ("K/V issued (kv_empty seen)", 2)):
                ev[name].append(rel(ref, at(sm, 2, k, slot)))
            if at(sm, 2, k, 6):  # stamped since session 49
                ev["first Q/dO copies issued"].append(rel(ref, at(sm, 2, k, 6)))
            ev["consumers' task top"].append(rel(ref, at(sm, 0, starts[k], 5)))
            ev["consumers' first step top"].append(rel(ref, at(sm, 0, starts[k], 0)))
    if not ev["K/V issued (kv_empty seen)"]:
        return ["producer: no tasks after a CTA's first with stamps"]
    n = len(ev["K/V issued (kv_empty seen)"])
    lines = [f"producer, clk from the end of the task before's last step ({n} tasks):"]
    for name, v in ev.items():
        if v:
            lines.append(f"  {name:28} {statistics.mean(v):+8.0f}")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dumps", nargs="+")
    ap.add_argument("--skip", type=int, default=2, help="leading steps of each task left out")
    ap.add_argument("--ctas", type=int, default=6, help="CTAs listed, slowest step first")
    ap.add_argument("--bits", action="store_true", help="a bwd_prof.py --bits dump (slot 5: mask bits ready)")
    ap.add_argument("--timeline", action="store_true", help="a bwd_prof.py --timeline dump (steps over tasks)")
    ap.add_argument("--skip-tasks", type=int, default=1, help="--timeline: each CTA's first tasks left out")
    a = ap.parse_args(argv)
    if a.bits and a.timeline:
        ap.error("--bits and --timeline are different dumps")
    if a.timeline:
        for path in a.dumps:
            maxs, at = load(path)
            print(f"== {path}")
            print("\n".join(timeline_report(timeline_rows(maxs, at, a.skip_tasks))))
            if at.nwg == 3:
                print("\n".join(producer_report(maxs, at)))
        return 0
    phases = PHASES_BITS if a.bits else PHASES
    for path in a.dumps:
        maxs, at = load(path)
        rows = steps_of(maxs, at, a.skip, phases)
        print(f"== {path}: {len({(r[0], r[1]) for r in rows})} warpgroups with stamps, up to {maxs} steps each")
        print("\n".join(table([r for r in rows if r[2]], "partial-tile steps", phases)))
        print("\n".join(table([r for r in rows if not r[2]], "full-tile steps", phases)))
        per_cta = {}
        for r in rows:
            if r[4] is not None:
                per_cta.setdefault(r[0], []).append(r[4])
        ranked = sorted(per_cta.items(), key=lambda kv: -statistics.mean(kv[1]))
        for sm, per in ranked[: a.ctas]:
            kt = at(sm, 0, maxs, 2)
            part = sum(1 for r in rows if r[0] == sm and r[2])
            print(f"  SM {sm:3}: kv tile {kt:4}, step {statistics.mean(per):7.0f} clk, "
                  f"{part} partial of {sum(1 for r in rows if r[0] == sm)} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
