#!/usr/bin/env bash
# Session 40, call 4: the half-tile forward at D 64, limited by half tiles per q tile
# (DCP_CUDA_FWD_HALF_MAX, new). Call 3 (next_fwd64.sh) measured DCP_CUDA_FWD_HALF=1 at D 64:
# causal 32K +5.0 %, causal 512-token documents +5.5 %, packed +4.1 %; session 34 lambda -6.4 %.
# A causal q tile has one half tile (its diagonal), causal-blockwise two, lambda three.
#   timeout 560 bash bench/results/gpu-x1-2026-12-02s40/run4.sh
# Needs .s40/dcp.gz (this tree). Variants, alternated x3 with CPU f64 checks at D 64: base (half
# off, D 64's default), half (on), h15 (on, at most 1.5 half tiles per q tile), h25 (2.5),
# h15s3 (h15 with DCP_CUDA_FWD_SHORT=3).
set -u
OUTD=${OUT:-/tmp/s40_out}
R=/tmp/s40c4; rm -rf $R; mkdir -p $R $OUTD
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c .s40/dcp.gz > $D && chmod +x $D
python3 -c "
import json
L = [512, 384, 300, 511, 450, 1024, 700]
json.dump({'batches': [[2048], [L[i % len(L)] for i in range(40)]]}, open('$R/chk.json', 'w'))"
SH=causal32k,lambda,sharedq,blockwise,causal@512x500,packed,works1000,full@384x666
timeout 500 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/ab --deadline-s 400 --run-timeout 60 --rounds 3 \
  --bench "kernel-bench --head-dim 64 --shapes $SH --warmup 3 --repeats 10" \
  --check "--batches $R/chk.json --head-dim 64 --masks causal,lambda,shared-question,causal-blockwise" \
  --snap $OUTD/c4.tgz \
  --field fwd_tflops_per_gpu --field bwd_tflops_per_gpu \
  base half:DCP_CUDA_FWD_HALF=1 h15:DCP_CUDA_FWD_HALF=1,DCP_CUDA_FWD_HALF_MAX=1.5 \
  h25:DCP_CUDA_FWD_HALF=1,DCP_CUDA_FWD_HALF_MAX=2.5 h15s3:DCP_CUDA_FWD_HALF=1,DCP_CUDA_FWD_HALF_MAX=1.5,DCP_CUDA_FWD_SHORT=3
tar czf $OUTD/c4.tgz -C /tmp --exclude='*/k' s40c4
grep -h "check" $R/ab/ab_rounds.log
cat $R/ab/table.md
echo "== done t=$((SECONDS-T0))s"
