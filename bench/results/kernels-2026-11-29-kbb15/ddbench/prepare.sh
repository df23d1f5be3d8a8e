#!/usr/bin/env bash
# Rebuilds the three files ddbench.cu includes beside util_new.cu, from the repository's history
# (kept out of the results folder as copies): common.cuh and util.cu = main 6c49ccb's kernels (the
# base the microbenchmark compares against); util_kbb15.cu = commit 5010a2c's util.cu (kbb15's
# tiled D pre-pass as measured in calls 2-3) with every kernel and helper renamed *_k15 so both
# forms link into one program. Run from anywhere inside the repository, then
#   nvcc -O3 -std=c++17 -arch=sm_90a -o ddbench ddbench.cu && ./ddbench
set -eu
cd "$(dirname "$0")"
git show 6c49ccb:crates/dcp-cuda/kernels/common.cuh > common.cuh
git show 6c49ccb:crates/dcp-cuda/kernels/util.cu > util.cu
expr=()
for n in dcp_bwd_dd dcp_copy_raw16 dcp_copy dcp_fill dcp_merge dcp_sum dd_pair dd_vec dq_zero_pair \
  esize load8_as_f32 merge_row_fast merge_row region_flat region_index region_row splat16 store8_from_f32; do
  expr+=(-e "s/\\b$n\\b/${n}_k15/g")
done
git show 5010a2c:crates/dcp-cuda/kernels/util.cu | sed "${expr[@]}" > util_kbb15.cu
