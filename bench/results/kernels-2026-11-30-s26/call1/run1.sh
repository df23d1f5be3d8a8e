#!/usr/bin/env bash
# Session 26, call 1 (1x H200): the sparse masks' ratios against dense at the same size and at
# the same attended FLOPs, two rounds (the second in reverse shape order), torch on the same shapes.
set -u
OUTD=${OUT:-/tmp/s26_out}; R=/tmp/s26c1; rm -rf $R; mkdir -p $R $OUTD
exec > >(tee $R/run.log) 2>&1
source bench/gpu/env.sh
S1=works1000,onework,blockwise,causal8k,causal32k,blockwise128k,causal16k,causal128k,lambda,lambda128k,sharedq,sharedq128k
S2=$(echo $S1 | tr ',' '\n' | tac | paste -sd,)
DCP=.s26/dcp OUT=$R/kb SELFTEST=4 SELFTEST_FAMILIES=sm90 BENCH_FAMILIES=sm90 SAN_TOOLS="" REPEATS=5 \
  SHAPES=$S1 BENCH_T=200 TORCH_T=200 bash bench/gpu/kernel_bench.sh 2>&1 | tail -25
DCP_CUDA_FAMILY=sm90 timeout -k 5 200 .s26/dcp kernel-bench --shapes $S2 --repeats 5 --timeout-s 60 \
  --json $R/kb/kbench_r2.jsonl 2>&1 | tail -3
python3 - $R/kb <<'PY'
import json, sys, statistics as st
d = sys.argv[1]
rows = {}
for f in ("kbench_sm90.jsonl", "kbench_r2.jsonl"):
    for l in open(f"{d}/{f}"):
        r = json.loads(l)
        if r.get("kind") == "bench":
            rows.setdefault(r["shape"], []).append((r["fwd_tflops_per_gpu"], r["bwd_tflops_per_gpu"]))
m = {k: (st.mean(x[0] for x in v), st.mean(x[1] for x in v), v) for k, v in rows.items()}
print("\nshape: fwd / bwd TFLOP/s (round 1 | round 2)")
for k, (f, b, v) in m.items():
    print(f"{k:14} {f:6.1f} / {b:6.1f}   " + " | ".join(f"{x[0]:.1f}/{x[1]:.1f}" for x in v))
print("\nratio (fwd / bwd)")
for a, b in [("works1000", "onework"), ("blockwise", "causal32k"), ("blockwise", "causal8k"),
             ("blockwise128k", "causal128k"), ("blockwise128k", "causal16k"),
             ("lambda", "causal32k"), ("lambda128k", "causal128k"), ("sharedq", "causal32k"),
             ("sharedq128k", "causal128k")]:
    if a in m and b in m:
        print(f"{a:14} / {b:11} {m[a][0]/m[b][0]:.3f} / {m[a][1]/m[b][1]:.3f}")
PY
cd /tmp && tar czf $OUTD/s26c1.tgz s26c1
