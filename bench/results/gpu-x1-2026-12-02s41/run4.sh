#!/usr/bin/env bash
# Session 41, call 4: the D pre-pass's grid (DCP_CUDA_BWD_DD_CTAS, CTAs per SM; 4 is the default
# before a clustered / chained launch) on the shapes where it is 20 % of the backward, alternated x3.
set -u
source bench/gpu/env.sh
R=/tmp/s41c4; rm -rf $R; mkdir -p $R; OUTD=${OUT:-/tmp/s41c4_out}; mkdir -p $OUTD
D=/tmp/dcp; gunzip -c .s41/dcp.gz > $D && chmod +x $D
for hd in 128 64; do
  timeout 170 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/ab$hd --deadline-s 130 --run-timeout 45 --rounds 3 \
    --bench "kernel-bench --head-dim $hd --shapes works1000,full@160x1600,causal32k --warmup 3 --repeats 10" \
    --field bwd_tflops_per_gpu base:DCP_CUDA_BWD_DD_CTAS=4 c2:DCP_CUDA_BWD_DD_CTAS=2 c8:DCP_CUDA_BWD_DD_CTAS=8 > $R/ab$hd.out 2>&1
  echo "D$hd A/B rc=$?"; tail -7 $R/ab$hd.out
done
tar czf $OUTD/s41c4.tgz -C /tmp --exclude='*/kernels_*' s41c4
