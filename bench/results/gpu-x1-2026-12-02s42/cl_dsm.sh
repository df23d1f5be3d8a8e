#!/usr/bin/env bash
# Session 42, calls 3-6: D clusters (DCP_CUDA_BWD_CLUSTER_DSM = K, kernels/attn_bwd_cluster_sm90.cu
# CL_DSM, the cl_dsm_v*.diff of each call applied) against the D pre-pass, both head dims.
# The calls ran a copy of ../gpu-x1-2026-12-02s41/cl_dd.sh (its text is in commit 5dd0ffa7);
# bench/gpu/bwd_switch.sh issues the same dcp and compute-sanitizer commands (checked with
# logging stubs of both), so this is now:
#   K=4 TAG=s42c3 DCP_GZ=.s42/dcp.gz timeout 590 bash bench/results/gpu-x1-2026-12-02s42/cl_dsm.sh
# Calls 4 and 5: K=8 and VARIANTS base / k4 / k8 / k12 / k16 and base / k4 / k8 / k16; call 6:
# K=4, CONFIGS "128 bf16 2 pair -;64 f16 8 pair300 -;128 f16 1 pair300 -", base / k4 / k8.
K=${K:-4}
export SWITCH=DCP_CUDA_BWD_CLUSTER_DSM ON=$K SAN_HDS="64 128" TAG=${TAG:-cl_dsm}
export VARIANTS=${VARIANTS:-"base:DCP_CUDA_BWD_CLUSTER_DSM=0 k2:DCP_CUDA_BWD_CLUSTER_DSM=2 k4:DCP_CUDA_BWD_CLUSTER_DSM=4 k6:DCP_CUDA_BWD_CLUSTER_DSM=6"}
exec bash bench/gpu/bwd_switch.sh
