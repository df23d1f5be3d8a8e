#!/usr/bin/env bash
# Session 42, call 2: D = rowsum(P o dP) in the clustered backward (DCP_CUDA_BWD_CLUSTER_PDP,
# kernels/attn_bwd_cluster_sm90.cu CL_PDP, head dim 128; cl_pdp.diff applied) against the D
# pre-pass. The call ran a copy of ../gpu-x1-2026-12-02s41/cl_dd.sh (its text is in commit
# 28fd9f86); bench/gpu/bwd_switch.sh issues the same dcp and compute-sanitizer commands (checked
# with logging stubs of both), so this is now:
#   TAG=s42c2 DCP_GZ=.s42/dcp.gz timeout 590 bash bench/results/gpu-x1-2026-12-02s42/cl_pdp.sh
export SWITCH=DCP_CUDA_BWD_CLUSTER_PDP HDS=128 SHORT_HD=128 TAG=${TAG:-cl_pdp}
export CONFIGS=${CONFIGS:-"128 bf16 2 pair -;128 f16 1 pair300 -;128 bf16 8 pair300 -;128 f16 2 pair -;128 bf16 4 pair300 -"}
export SHAPES=works1000,full@192x1333,full@160x1600,onework
export VARIANTS=${VARIANTS:-"base:DCP_CUDA_BWD_CLUSTER_PDP=0 pdp:DCP_CUDA_BWD_CLUSTER_PDP=1 abl:DCP_CUDA_BWD_CLUSTER_PDP=1,bwd:CL_PDP_ABL=1"}
exec bash bench/gpu/bwd_switch.sh
