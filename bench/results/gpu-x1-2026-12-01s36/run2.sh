#!/usr/bin/env bash
# s36 call 2 (1x H200): bash .s36/run2.sh
# The backward's list cuts on full-mask work (onework's backward is the one row below cuDNN,
# 0.87x in call 1). dcp2 = d40306d plus DCP_CUDA_BWD_ORDER=whole (no list cut: every kv tile's
# q-tile list one task, dK/dV stored in 16 bits where owned, no fp32 scratch / conversion).
# CPU f64 checks of both orders, then kernel-bench alternated x3 at D 128 and D 64.
set -u
OUTD=${OUT:-/tmp/s36_out}
R=/tmp/s36c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
D=$R/dcp; gunzip -c .s36/dcp2.gz > $D && chmod +x $D
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
echo '{"batches": [[4096], [2000, 1500, 700]]}' > $R/chk.json
SH=onework,full8k,full@16384,full@4096x4,causal@16384,causal32k,packed
for HD in 128 64; do
  timeout 260 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/d$HD --deadline-s 150 --run-timeout 60 \
    --bench "kernel-bench --head-dim $HD --shapes $SH --warmup 3 --repeats 10" \
    --check "--batches $R/chk.json --head-dim $HD --masks full,causal" \
    --field bwd_tflops_per_gpu --field fwd_tflops_per_gpu --snap $OUTD/c2_d$HD.tgz \
    base whole:DCP_CUDA_BWD_ORDER=whole
done
