#!/usr/bin/env bash
# Prepared in session 41, not run (no device time left): where design 4's extra kernel time goes.
# Apply cl_dd_v4_abl.diff (design 4 plus the timing-only switch CL_DD_ABL) to e75d4c4d or later,
# build the release binary, gzip it to .s41/dcp.gz (untracked), and in one device call:
#   timeout 560 bash bench/results/gpu-x1-2026-12-02s41/next_abl.sh   (HDS=128 for D 128 alone)
# Variants (backward TFLOP/s; D is wrong under CL_DD_ABL, so no checks): base (the pre-pass),
# dd (design 4), a1 (no O copies), a2 (no dot products, no exchange), a3 (neither). If a3 is at
# base + the pre-pass's time saved, the protocol is free and a1 / a2 say whether the O traffic or
# the producer's dot / hand-off chain costs the 0.31 ms. Per-step stamps of the same build:
# `bench/gpu/bwd_prof.py --cluster crates/dcp-cuda/kernels DIR` (session 41; with the diff applied
# the consumers' wait for D counts in its "S+dP" phase) and DCP_CUDA_KERNELS=DIR on the
# measurement binary (../kernels-2026-11-29-kf13b/prof_host.diff), summed by bwd_prof_sum.py.
set -u
source bench/gpu/env.sh
R=/tmp/s41abl; rm -rf $R; mkdir -p $R; OUTD=${OUT:-/tmp/s41abl_out}; mkdir -p $OUTD
D=/tmp/dcp; gunzip -c .s41/dcp.gz > $D && chmod +x $D
for hd in ${HDS:-128 64}; do
  timeout 250 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/ab$hd --deadline-s 200 --run-timeout 45 --rounds 3 \
    --bench "kernel-bench --head-dim $hd --shapes works1000,full@160x1600 --warmup 3 --repeats 10" \
    --field bwd_tflops_per_gpu base:DCP_CUDA_BWD_CLUSTER_DD=0 dd:DCP_CUDA_BWD_CLUSTER_DD=1 \
    a1:DCP_CUDA_BWD_CLUSTER_DD=1,bwd:CL_DD_ABL=1 a2:DCP_CUDA_BWD_CLUSTER_DD=1,bwd:CL_DD_ABL=2 \
    a3:DCP_CUDA_BWD_CLUSTER_DD=1,bwd:CL_DD_ABL=3 > $R/ab$hd.out 2>&1
  echo "D$hd A/B rc=$?"; tail -6 $R/ab$hd.out
done
tar czf $OUTD/s41abl.tgz -C /tmp --exclude='*/ab*/k' s41abl
