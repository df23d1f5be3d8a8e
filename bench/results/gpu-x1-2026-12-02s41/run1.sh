#!/usr/bin/env bash
# Session 41, call 1: D inside the clustered backward, design 3 (O staged in the step's own dS
# buffer; cl_dd_v3_dsbuf.diff), through bench/results/gpu-x1-2026-12-02s41/cl_dd.sh (written after this call from the
# script it ran; the same steps). Two configs ran a kernel directory whose cluster file defaults
# CL_DD_WAIT to 1 (the consumers' wait for D just before dS): $R/kw1, made by
#   mkdir -p $R/kw1 && cp crates/dcp-cuda/kernels/* $R/kw1/ &&
#   sed -i "s/^#define CL_DD_WAIT 0/#define CL_DD_WAIT 1/" $R/kw1/attn_bwd_cluster_sm90.cu
R=/tmp/s41c1
TAG=s41c1 DCP_GZ=.s41/dcp.gz \
CONFIGS="64 bf16 2 pair -;64 f16 8 pair300 -;64 bf16 1 pair300 -;128 bf16 2 pair -;128 f16 1 pair300 -;128 bf16 2 pair DCP_CUDA_KERNELS=$R/kw1;64 bf16 2 pair DCP_CUDA_KERNELS=$R/kw1" \
VARIANTS="base:DCP_CUDA_BWD_CLUSTER_DD=0 dd:DCP_CUDA_BWD_CLUSTER_DD=1 ddw1:DCP_CUDA_BWD_CLUSTER_DD=1,bwd:CL_DD_WAIT=1" \
  timeout 590 bash bench/results/gpu-x1-2026-12-02s41/cl_dd.sh
