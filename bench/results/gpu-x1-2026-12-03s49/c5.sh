#!/usr/bin/env bash
# s49 call 5, prepared (refused: no device time left; ~4 min):
# timeout 235 bash bench/results/gpu-x1-2026-12-03s49/c5.sh (stage .s49/dcp.gz: a release build of the tree)
# A: works1000 / onework sustained (warm-up 20, median of 20) with this tree's defaults (CL_ST_NA
#    now on at D 64 too): D 128 x2, D 64 x2, and D 64 with CL_ST_NA 0 (session 48's default) x2.
# B: D 64 A/B x4, base / ec2kv (CL_EARLY_CLAIM 2 + BWD_KV_PF 1: call 4's +0.6 / +1.9 / +0.1 %).
set -u
OUTD=${OUT:-/tmp/s49_out}
R=/tmp/s49c5; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c .s49/dcp.gz > $D && chmod +x $D
K=$R/kold; mkdir -p $K; cp crates/dcp-cuda/kernels/* $K/
sed -i '1i #define CL_ST_NA (HEAD_DIM == 128)' $K/bwd_sm90.cuh
run() {  # run VARIANT HD ROUND
  if [ $1 = old ]; then export DCP_CUDA_KERNELS=$K; else unset DCP_CUDA_KERNELS; fi
  timeout 60 $D kernel-bench --shapes works1000,onework --head-dim $2 --warmup 20 --repeats 20 --json $R/sus_$1.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror' | sed "s/^/$1 D$2 r$3 /"
}
run new 128 1; run new 64 1; run old 64 1; run old 64 2; run new 64 2; run new 128 2
unset DCP_CUDA_KERNELS
python3 - $R <<'PY' | tee $R/sus.md
import json, sys, statistics
print("| variant | D | works1000 fwd / bwd | onework fwd / bwd | ratio fwd / bwd |")
print("|---|---|---|---|---|")
for v in ("new", "old"):
    r = [json.loads(l) for l in open(f"{sys.argv[1]}/sus_{v}.jsonl") if l.strip()]
    for d in (128, 64):
        def m(shape, f):
            xs = [x[f] for x in r if x.get("kind") == "bench" and x["head_dim"] == d and x["shape"] == shape]
            return statistics.mean(xs) if xs else float("nan")
        f, b = "fwd_tflops_per_gpu", "bwd_tflops_per_gpu"
        w, o = (m("works1000", f), m("works1000", b)), (m("onework", f), m("onework", b))
        if w[0] == w[0]:
            print(f"| {v} | {d} | {w[0]:.0f} / {w[1]:.0f} | {o[0]:.0f} / {o[1]:.0f} | {w[0]/o[0]:.3f} / {w[1]/o[1]:.3f} |")
PY
tar czf $OUTD/c5.tgz -C /tmp --exclude=s49c5/kold s49c5
echo "== B t=${SECONDS}s"
DL=$((200 - SECONDS))
timeout $((DL + 25)) python3 bench/gpu/ab_rounds.py --dcp $D --out $R/kb64 --deadline-s $DL --run-timeout 30 --rounds 4 \
  --bench "kernel-bench --head-dim 64 --shapes works1000,full@160x1600,onework --warmup 10 --repeats 20" \
  --field bwd_tflops_per_gpu base ec2kv:bwd:CL_EARLY_CLAIM=2,bwd:BWD_KV_PF=1 > $R/kb64.out 2>&1
grep -A8 'bwd_tflops' $R/kb64.out
tar czf $OUTD/c5.tgz -C /tmp --exclude=s49c5/kold --exclude='*/k' s49c5
echo "== done t=${SECONDS}s"
cat $R/sus.md
