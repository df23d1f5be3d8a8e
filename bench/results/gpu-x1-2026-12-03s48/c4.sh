#!/usr/bin/env bash
# s48 call 4 (1x H200): timeout 300 bash bench/results/gpu-x1-2026-12-03s48/c4.sh
# works1000 / onework sustained (warm-up 20, median of 20, as session 46's call 1), the landed
# defaults (new: .s48/dcp.gz) and old (the same binary with CL_DQ_RELOAD 0, CL_ST_NA 0: main's
# SASS), two rounds in opposite orders, both head dims.
set -u
OUTD=${OUT:-/tmp/s48_out}
R=/tmp/s48c4; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c .s48/dcp.gz > $D && chmod +x $D
K=$R/kold; mkdir -p $K; cp crates/dcp-cuda/kernels/* $K/
sed -i '1i #define CL_DQ_RELOAD 0\n#define CL_ST_NA 0' $K/bwd_sm90.cuh
run() {  # run VARIANT HD ROUND
  if [ $1 = old ]; then export DCP_CUDA_KERNELS=$K; else unset DCP_CUDA_KERNELS; fi
  timeout 100 $D kernel-bench --shapes works1000,onework --head-dim $2 --warmup 20 --repeats 20 --json $R/sus_$1.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror' | sed "s/^/$1 D$2 r$3 /"
}
for hd in 128 64; do run new $hd 1; run old $hd 1; run old $hd 2; run new $hd 2; done
unset DCP_CUDA_KERNELS
python3 - $R <<'PY' | tee $R/sus.md
import json, sys, statistics
print("| variant | D | works1000 fwd / bwd | onework fwd / bwd | ratio fwd / bwd |")
print("|---|---|---|---|---|")
for v in ("new", "old"):
    r = [json.loads(l) for l in open(f"{sys.argv[1]}/sus_{v}.jsonl") if l.strip()]
    for d in (128, 64):
        def m(shape, f):
            return statistics.mean(x[f] for x in r if x.get("kind") == "bench" and x["head_dim"] == d and x["shape"] == shape)
        f, b = "fwd_tflops_per_gpu", "bwd_tflops_per_gpu"
        w, o = (m("works1000", f), m("works1000", b)), (m("onework", f), m("onework", b))
        print(f"| {v} | {d} | {w[0]:.0f} / {w[1]:.0f} | {o[0]:.0f} / {o[1]:.0f} | {w[0]/o[0]:.3f} / {w[1]/o[1]:.3f} |")
PY
tar czf $OUTD/c4.tgz -C /tmp --exclude=s48c4/kold s48c4
