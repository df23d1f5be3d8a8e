#!/usr/bin/env python3
"""Ours vs Mt-KaHyPar on real DCP planner dumps, folded to one weight dimension.

Requires `pip install mtkahypar` and `cargo build --release -p hypergraph --examples`.
Dumps come from `dcp plan --planner dcp ... --dump-hgr DIR` (batchN.hgr + batchN.json).

Every instance is folded to 1-D by `bench_dcp --fold1d` (tile = compute weight, token
block = 1, no topology, epsilon = the planner's compute capacity over ceil(total/k)), then
partitioned by Mt-KaHyPar (DEFAULT preset, 1 thread, km1) and by ours (`partition`
example, each requested preset) with the same epsilon. km1 and feasibility are recomputed
here from the part vectors with one formula. Times = partitioning call only, as CPU time of
the calling thread by default (`--clock cpu`: other processes on a loaded, shared machine
inflate it much less than wall time; both tools run single-threaded) or wall time
(`--clock wall`).

Usage: dcp_compare.py [--presets fast,default,quality] [--seed 0] [--clock cpu|wall]
                      [--examples DIR] [--base DIR] [--out FILE.json] DIR...
`--base DIR` also runs every preset with the examples in DIR (e.g. a build of another
commit), as `base-PRESET`, in the same run (same Mt-KaHyPar times).
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "target" / "release" / "examples"


def read_hgr(path):
    with open(path) as f:
        lines = [l for l in f if l.strip() and not l.startswith("%")]
    h = lines[0].split()
    m, n = int(h[0]), int(h[1])
    nets, nw = [], []
    for l in lines[1 : 1 + m]:
        t = [int(x) for x in l.split()]
        nw.append(t[0])
        nets.append([p - 1 for p in t[1:]])
    vw = [int(l.split()[0]) for l in lines[1 + m : 1 + m + n]]
    return n, nets, nw, vw


def metrics(inst, parts, k, eps):
    n, nets, nw, vw = inst
    km1 = sum(nw[e] * (len({parts[p] for p in pins}) - 1) for e, pins in enumerate(nets))
    loads = [0] * k
    for v in range(n):
        loads[parts[v]] += vw[v]
    total = sum(loads)
    cap = math.floor((1 + eps) * math.ceil(total / k))
    return km1, max(loads) <= cap, max(loads) / (total / k)


def mtk_worker(files, seed, clock):
    import mtkahypar

    init = mtkahypar.initialize(1, False)
    out = []
    for path, k, eps in files:
        ctx = init.context_from_preset(mtkahypar.PresetType.DEFAULT)
        ctx.set_partitioning_parameters(k, eps, mtkahypar.Objective.KM1)
        ctx.logging = False
        mtkahypar.set_seed(seed)
        hg = init.hypergraph_from_file(path, ctx)
        now = time.thread_time if clock == "cpu" else time.perf_counter
        t = now()
        phg = hg.partition(ctx)
        ms = (now() - t) * 1e3
        out.append({"ms": ms, "parts": [phg.block_id(v) for v in range(hg.num_nodes())]})
    return out


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        files = json.loads(sys.stdin.read())
        print(json.dumps(mtk_worker(files, int(sys.argv[2]), sys.argv[3])))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--presets", default="fast,default,quality")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    ap.add_argument("--examples", default=str(EX),
                    help="folder with the bench_dcp and partition examples (another build)")
    ap.add_argument("--base", default=None, help="examples folder of a baseline build")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    ex = Path(a.examples)
    runs = [(p, ex, p) for p in a.presets.split(",")]
    if a.base:
        runs += [(f"base-{p}", Path(a.base), p) for p in a.presets.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="dcpfold"))
    subprocess.run([str(ex / "bench_dcp"), "--fold1d", str(tmp), *a.dirs], check=True)
    files = []
    for hgr in sorted(tmp.glob("*.hgr")):
        k, eps = hgr.with_suffix(".eps").read_text().split()
        files.append((str(hgr), int(k), float(eps)))
    r = subprocess.run([sys.executable, __file__, "--worker", str(a.seed), a.clock],
                       input=json.dumps(files), capture_output=True, text=True, check=True)
    mtk = json.loads(r.stdout.strip().splitlines()[-1])
    rows = []
    for (path, k, eps), m in zip(files, mtk):
        inst = read_hgr(path)
        row = {"instance": Path(path).stem, "k": k, "eps": eps}
        km1, feas, imb = metrics(inst, m["parts"], k, eps)
        row["mtk"] = {"km1": km1, "feasible": feas, "imb": imb, "ms": m["ms"]}
        for label, exd, p in runs:
            o = subprocess.run([str(exd / "partition"), path, str(k), f"{eps:.6f}", str(a.seed),
                                "--dims", "1", "--preset", p, "--parts"],
                               capture_output=True, text=True)
            if o.returncode != 0:
                row[label] = {"error": o.stderr.strip()[-200:]}
                continue
            rep = json.loads(o.stdout.strip().splitlines()[-1])
            km1, feas, imb = metrics(inst, rep["parts"], k, eps)
            ms = rep["cpu_ms"] if a.clock == "cpu" else rep["ms"]
            row[label] = {"km1": km1, "feasible": feas, "imb": imb, "ms": ms}
        rows.append(row)
        cells = [f"{p}={row[p].get('km1', 0) / max(row['mtk']['km1'], 1):.3f}/{row[p].get('ms', 0):.0f}ms"
                 for p, _, _ in runs]
        print(f"{row['instance']:40s} mtk {row['mtk']['km1']:>12} {m['ms']:7.0f}ms  " + " ".join(cells),
              flush=True)
    print("\ngeo-mean km1 ratio vs mtk / time ratio, per preset and group:")
    groups = sorted({r["instance"].rsplit("_b", 1)[0] for r in rows}) + ["ALL"]
    for p, _, _ in runs:
        for g in groups:
            rs = [r for r in rows if (g == "ALL" or r["instance"].rsplit("_b", 1)[0] == g)
                  and "km1" in r[p]]
            if not rs:
                continue
            gk = math.exp(sum(math.log(max(r[p]["km1"], 1) / max(r["mtk"]["km1"], 1)) for r in rs) / len(rs))
            gt = math.exp(sum(math.log(r[p]["ms"] / r["mtk"]["ms"]) for r in rs) / len(rs))
            ms = sum(r[p]["ms"] for r in rs) / len(rs)
            mms = sum(r["mtk"]["ms"] for r in rs) / len(rs)
            feas = all(r[p]["feasible"] for r in rs)
            print(f"  {p:8s} {g:34s} km1x {gk:.3f}  timex {gt:.2f}  ({ms:.1f} vs {mms:.1f} ms)  feasible={feas}")
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
