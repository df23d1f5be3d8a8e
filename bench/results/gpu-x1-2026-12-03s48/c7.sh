#!/usr/bin/env bash
# s48 call 7, prepared (refused: no device time left; the next session's first call, ~3 min):
# timeout 250 bash bench/results/gpu-x1-2026-12-03s48/c7.sh
# Call 6's profile: in the landed D 64 build the dQ warpgroup stalls ~1 400 samples on an LDL
# (tq_get()'s spilled slot address) before each dQ store's shared read. CL_DQ_RELOAD 2 reads the
# counter's word from %tid.x instead (offline: 20 consumer spill instructions against 33).
# Each with CL_ST_NA too (no-allocate stores, so that fewer lines evict the spilled ones; alone
# +0.3 % at D 64 in session 48, not measured with a reload). CPU f64 checks, then A/B x3 against
# the landed default (CL_DQ_RELOAD 1), D 64. Stage the binary as .s48/dcp.gz (a release build of
# this tree) or set DCP_GZ.
set -u
OUTD=${OUT:-/tmp/s48_out}
R=/tmp/s48c7; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c ${DCP_GZ:-.s48/dcp.gz} > $D && chmod +x $D
K=$R/k2; mkdir -p $K; cp crates/dcp-cuda/kernels/* $K/; sed -i '1i #define CL_DQ_RELOAD 2' $K/bwd_sm90.cuh
python3 -c "
import json, random
random.seed(4849)
json.dump({'batches': [[random.randint(129, 256) for _ in range(300)]]}, open('$R/m300.json', 'w'))"
K2=$R/k2na; mkdir -p $K2; cp $K/* $K2/; sed -i '1i #define CL_ST_NA 1' $K2/bwd_sm90.cuh
for cfg in "64 bf16 2 $K" "64 f16 8 $K" "64 bf16 1 $K2"; do
  set -- $cfg
  DCP_CUDA_KERNELS=$4 timeout 60 $D bench-gpu --batches $R/m300.json --head-dim $1 --dtype $2 --kv-heads $3 --masks full --planners local --check --cpu-check-tokens 200000 --warmup 0 --repeats 1 --json $R/chk.jsonl > $R/chk_$1_$2_$3.log 2>&1
  echo "reload2 $(basename $4) D$1 $2 kv$3 rc=$?"
done
python3 bench/gpu/check_summary.py $R/chk.jsonl "CL_DQ_RELOAD 2 (and with CL_ST_NA 1) vs CPU f64"
timeout 150 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/kb64 --deadline-s 110 --run-timeout 30 --rounds 3 \
  --bench "kernel-bench --head-dim 64 --shapes works1000,full@160x1600,onework --warmup 10 --repeats 20" \
  --field bwd_tflops_per_gpu base r2:bwd:CL_DQ_RELOAD=2 r1na:bwd:CL_ST_NA=1 r2na:bwd:CL_DQ_RELOAD=2,bwd:CL_ST_NA=1 > $R/kb64.out 2>&1
grep -A6 'bwd_tflops' $R/kb64.out
tar czf $OUTD/c7.tgz -C /tmp --exclude=s48c7/k2 --exclude=s48c7/k2na --exclude='*/k' s48c7
echo "== done t=${SECONDS}s"
