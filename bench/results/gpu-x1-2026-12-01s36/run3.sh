#!/usr/bin/env bash
# s36 call 3 (1x H200): bash .s36/run3.sh
# Call 2 found onework (8 096 tokens: a partial last kv tile) 10 % slower per FLOP in the
# backward than full8k, and whole lists 26 % slower still: the partial kv tile's list is masked
# on every step and its pieces are claimed last among the equal-length ones. dcp3 = dcp2 plus
# DCP_CUDA_PARTIAL_FIRST (among tasks of equal length, more partial tiles first).
# CPU f64 checks of both orders, then kernel-bench alternated x3 at D 128 and D 64.
set -u
OUTD=${OUT:-/tmp/s36_out}
R=/tmp/s36c3; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
D=$R/dcp; gunzip -c .s36/dcp3.gz > $D && chmod +x $D
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
echo '{"batches": [[4096], [2000, 1500, 700]]}' > $R/chk.json
SH=onework,full8k,causal32k,causal@16384,packed,blockwise,lambda,sharedq,works1000
for HD in 128 64; do
  timeout 260 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/d$HD --deadline-s 170 --run-timeout 60 \
    --bench "kernel-bench --head-dim $HD --shapes $SH --warmup 3 --repeats 10" \
    --check "--batches $R/chk.json --head-dim $HD --masks full,causal" \
    --field bwd_tflops_per_gpu --field fwd_tflops_per_gpu --snap $OUTD/c3_d$HD.tgz \
    base pfb:DCP_CUDA_PARTIAL_FIRST=bwd pf1:DCP_CUDA_PARTIAL_FIRST=1
done
