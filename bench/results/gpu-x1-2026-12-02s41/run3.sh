#!/usr/bin/env bash
# Session 41, call 3: design 4 with the consumers' wait for D just before dS (CL_DD_WAIT=1): the
# A/B of bench/results/gpu-x1-2026-12-02s41/cl_dd.sh alone (no checks: the same code as call 2 but for the wait's place).
set -u
source bench/gpu/env.sh
R=/tmp/s41c3; rm -rf $R; mkdir -p $R; OUTD=${OUT:-/tmp/s41c3_out}; mkdir -p $OUTD
D=/tmp/dcp; gunzip -c .s41/dcp.gz > $D && chmod +x $D
for hd in 128 64; do
  timeout 250 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/ab$hd --deadline-s 200 --run-timeout 45 --rounds 3 \
    --bench "kernel-bench --head-dim $hd --shapes works1000,full@192x1333,full@160x1600,onework --warmup 3 --repeats 10" \
    --field bwd_tflops_per_gpu base:DCP_CUDA_BWD_CLUSTER_DD=0 dd:DCP_CUDA_BWD_CLUSTER_DD=1 ddw1:DCP_CUDA_BWD_CLUSTER_DD=1,bwd:CL_DD_WAIT=1 > $R/ab$hd.out 2>&1
  echo "D$hd A/B rc=$?"; tail -8 $R/ab$hd.out
done
tar czf $OUTD/s41c3.tgz -C /tmp --exclude='*/kernels_*' s41c3
