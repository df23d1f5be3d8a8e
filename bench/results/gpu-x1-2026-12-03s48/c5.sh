#!/usr/bin/env bash
# s48 call 5 (1x H200, run inline right after c4 on the warm machine; this is that command):
# works1000 / 1 600 x 160 at D 128, sustained, 12 + 12 runs (new, old, old, new x6): new = the
# landed defaults (.s48/dcp.gz), old = the same binary with CL_DQ_RELOAD 0, CL_ST_NA 0 (main's SASS).
source bench/gpu/env.sh; D=/tmp/dcp; gunzip -c .s48/dcp.gz > $D && chmod +x $D; K=/tmp/kold; rm -rf $K; mkdir -p $K; cp crates/dcp-cuda/kernels/* $K/; sed -i '1i #define CL_DQ_RELOAD 0\n#define CL_ST_NA 0' $K/bwd_sm90.cuh; mkdir -p $OUT; run() { if [ $1 = old ]; then export DCP_CUDA_KERNELS=$K; else unset DCP_CUDA_KERNELS; fi; timeout 60 $D kernel-bench --shapes works1000,full@160x1600 --head-dim 128 --warmup 20 --repeats 20 --json $OUT/c5_$1.jsonl > /dev/null 2>&1; }; for i in 1 2 3 4 5 6; do run new; run old; run old; run new; done; python3 - $OUT <<'PY'
import json, sys, statistics
for v in ("new", "old"):
    r = [json.loads(l) for l in open(f"{sys.argv[1]}/c5_{v}.jsonl") if l.strip()]
    for s in ("works1000", "full@160x1600"):
        xs = [x["bwd_tflops_per_gpu"] for x in r if x.get("kind") == "bench" and x["shape"] == s]
        print(v, s, len(xs), "median %.1f mean %.1f min %.1f max %.1f" % (statistics.median(xs), statistics.mean(xs), min(xs), max(xs)))
PY
