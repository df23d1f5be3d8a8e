#!/usr/bin/env python3
"""Compare our partitioner (crates/hypergraph) with Mt-KaHyPar and KaHyPar.

Not a dependency of the library. Requires `pip install mtkahypar kahypar` and a release
build of the examples: `cargo build --release -p hypergraph --examples`.

For every instance x k: runs
  * ours:       target/release/examples/partition FILE K EPS SEED --parts
  * Mt-KaHyPar: DEFAULT preset, 1 thread, objective km1
  * KaHyPar:    km1_kKaHyPar_sea20.ini (written to a temp file; the wheel ships none)
each in its own subprocess (with a timeout), then recomputes km1 and the max part load
from the returned part vectors in Python (same formula for every tool), so the numbers
are comparable. Times are the partitioning call only (file reading excluded) as reported
by each tool's own wrapper. Capacity: floor((1+eps)*ceil(total/k)) (KaHyPar rule).

Usage: compare.py [--inst DIR] [--k 16 32] [--eps 0.03] [--seed 1] [--no-kahypar]
                  [--out bench/results/hypergraph] FILE.hgr ...
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OURS = Path(os.environ.get("HG_PARTITION_BIN", ROOT / "target" / "release" / "examples" / "partition"))

KAHYPAR_INI = """# km1_kKaHyPar_sea20.ini (KaHyPar repository, config/)
mode=direct
objective=km1
seed=-1
cmaxnet=1000
vcycles=0
p-use-sparsifier=true
p-sparsifier-min-median-he-size=28
p-sparsifier-max-hyperedge-size=1200
p-sparsifier-max-cluster-size=10
p-sparsifier-min-cluster-size=2
p-sparsifier-num-hash-func=5
p-sparsifier-combined-num-hash-func=100
p-detect-communities=true
p-detect-communities-in-ip=true
p-reuse-communities=false
p-max-louvain-pass-iterations=100
p-min-eps-improvement=0.0001
p-louvain-edge-weight=hybrid
p-large-he-threshold=1000
p-smallest-maxnet-threshold=50000
p-maxnet-removal-factor=0.01
c-type=ml_style
c-s=1
c-t=160
c-rating-score=heavy_edge
c-rating-use-communities=true
c-rating-heavy_node_penalty=no_penalty
c-rating-acceptance-criterion=best_prefer_unmatched
c-fixed-vertex-acceptance-criterion=fixed_vertex_allowed
i-mode=recursive
i-technique=multi
i-c-type=ml_style
i-c-s=1
i-c-t=150
i-c-rating-score=heavy_edge
i-c-rating-use-communities=true
i-c-rating-heavy_node_penalty=no_penalty
i-c-rating-acceptance-criterion=best_prefer_unmatched
i-c-fixed-vertex-acceptance-criterion=fixed_vertex_allowed
i-algo=pool
i-runs=20
i-bp-algorithm=worst_fit
i-bp-heuristic-prepacking=false
i-bp-early-restart=true
i-bp-late-restart=true
i-r-type=twoway_fm
i-r-runs=-1
i-r-fm-stop=simple
i-r-fm-stop-i=50
r-type=kway_fm_hyperflow_cutter_km1
r-runs=-1
r-fm-stop=adaptive_opt
r-fm-stop-alpha=1
r-fm-stop-i=350
r-flow-execution-policy=exponential
r-hfc-size-constraint=mf-style
r-hfc-scaling=16
r-hfc-distance-based-piercing=true
r-hfc-mbc=true
"""


def read_hgr(path: Path):
    """Minimal hMETIS reader (with our 4th-header-field multi-weight extension)."""
    with open(path) as f:
        lines = [l for l in f if l.strip() and not l.startswith("%")]
    h = lines[0].split()
    m, n = int(h[0]), int(h[1])
    fmt = int(h[2]) if len(h) > 2 else 0
    dims = int(h[3]) if len(h) > 3 else 1
    has_nw, has_vw = fmt % 10 == 1, fmt // 10 == 1
    nets, nw = [], []
    for l in lines[1 : 1 + m]:
        t = [int(x) for x in l.split()]
        if has_nw:
            nw.append(t[0])
            t = t[1:]
        else:
            nw.append(1)
        nets.append([p - 1 for p in t])
    if has_vw:
        vw = [[int(x) for x in l.split()] for l in lines[1 + m : 1 + m + n]]
    else:
        vw = [[1] * dims for _ in range(n)]
    return n, nets, nw, vw, dims


def metrics(inst, parts, k, eps):
    n, nets, nw, vw, dims = inst
    km1 = 0
    for e, pins in enumerate(nets):
        km1 += nw[e] * (len({parts[p] for p in pins}) - 1)
    feasible = True
    imb = []
    for d in range(dims):
        loads = [0] * k
        for v in range(n):
            loads[parts[v]] += vw[v][d]
        total = sum(loads)
        cap = math.floor((1 + eps) * math.ceil(total / k))
        feasible &= max(loads) <= cap
        imb.append(max(loads) / (total / k) if total else 1.0)
    return km1, feasible, imb


def worker(tool: str, path: str, k: int, eps: float, seed: int) -> dict:
    if tool == "mtk":
        import mtkahypar

        init = mtkahypar.initialize(1, False)
        ctx = init.context_from_preset(mtkahypar.PresetType.DEFAULT)
        ctx.set_partitioning_parameters(k, eps, mtkahypar.Objective.KM1)
        ctx.logging = False
        mtkahypar.set_seed(seed)
        hg = init.hypergraph_from_file(path, ctx)
        t = time.perf_counter()
        phg = hg.partition(ctx)
        ms = (time.perf_counter() - t) * 1e3
        parts = [phg.block_id(v) for v in range(hg.num_nodes())]
        return {"ms": ms, "parts": parts, "km1_tool": phg.km1()}
    if tool == "kahypar":
        import kahypar

        with tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False) as f:
            f.write(KAHYPAR_INI)
            ini = f.name
        hg = kahypar.createHypergraphFromFile(path, k)
        ctx = kahypar.Context()
        ctx.loadINIconfiguration(ini)
        ctx.setK(k)
        ctx.setEpsilon(eps)
        ctx.setSeed(seed)
        ctx.suppressOutput(True)
        t = time.perf_counter()
        kahypar.partition(hg, ctx)
        ms = (time.perf_counter() - t) * 1e3
        os.unlink(ini)
        parts = [hg.blockID(v) for v in range(hg.numNodes())]
        return {"ms": ms, "parts": parts, "km1_tool": kahypar.connectivityMinusOne(hg)}
    raise ValueError(tool)


def run_tool(tool, path, k, eps, seed, timeout, preset="default"):
    if tool == "ours":
        cmd = [str(OURS), str(path), str(k), str(eps), str(seed), "--parts", "--preset", preset]
    else:
        cmd = [sys.executable, __file__, "--worker", tool, str(path), str(k), str(eps), str(seed)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout {timeout}s"}
    if r.returncode != 0:
        return {"error": r.stderr.strip()[-300:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _, _, tool, path, k, eps, seed = sys.argv
        print(json.dumps(worker(tool, path, int(k), float(eps), int(seed))))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--k", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--eps", type=float, default=0.03)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--no-kahypar", action="store_true")
    ap.add_argument("--timeout", type=int, default=300)
    ap.add_argument("--out", default=None, help="write OUT.md and OUT.json")
    a = ap.parse_args()
    tools = ["ours", "mtk"] + ([] if a.no_kahypar else ["kahypar"])
    rows = []
    for f in a.files:
        path = Path(f)
        inst = read_hgr(path)
        for k in a.k:
            row = {"instance": path.stem, "k": k, "eps": a.eps, "dims": inst[4]}
            for tool in tools:
                if tool != "ours" and inst[4] > 1:
                    continue  # external tools: one weight dimension only
                res = run_tool(tool, path, k, a.eps, a.seed, a.timeout, a.preset)
                if "error" in res:
                    row[tool] = {"error": res["error"]}
                else:
                    km1, feas, imb = metrics(inst, res["parts"], k, a.eps)
                    row[tool] = {"km1": km1, "ms": round(res["ms"], 1), "feasible": feas,
                                 "imbalance": [round(x, 4) for x in imb]}
                print(path.stem, k, tool, row[tool], file=sys.stderr, flush=True)
            rows.append(row)
    md = table(rows, tools)
    print(md)
    if a.out:
        meta = {
            "date": dt.datetime.now().isoformat(timespec="seconds"),
            "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}",
            "command": " ".join(sys.argv),
            "rows": rows,
        }
        Path(a.out + ".json").write_text(json.dumps(meta, indent=1))
        Path(a.out + ".table.md").write_text(md)


def fmt_ratio(a, b):
    return f"{a / b:.3f}" if b else "-"


def table(rows, tools):
    hdr = ["instance", "k", "dims", "ours km1", "mtk km1", "km1 ratio", "ours ms", "mtk ms",
           "time ratio", "ours feasible"]
    if "kahypar" in tools:
        hdr += ["kahypar km1", "km1 ratio vs kahypar", "kahypar ms"]
    out = ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    for r in rows:
        o, m, kh = r.get("ours", {}), r.get("mtk", {}), r.get("kahypar", {})
        g = lambda d, key: d.get(key, d.get("error", "-"))
        cells = [r["instance"], r["k"], r["dims"], g(o, "km1"), g(m, "km1"),
                 fmt_ratio(o["km1"], m["km1"]) if "km1" in o and "km1" in m else "-",
                 g(o, "ms"), g(m, "ms"),
                 fmt_ratio(o["ms"], m["ms"]) if "ms" in o and "ms" in m else "-",
                 g(o, "feasible")]
        if "kahypar" in tools:
            cells += [g(kh, "km1"),
                      fmt_ratio(o["km1"], kh["km1"]) if "km1" in o and "km1" in kh else "-",
                      g(kh, "ms")]
        out.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
