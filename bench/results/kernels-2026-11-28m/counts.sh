#!/usr/bin/env bash
# kfwd: per-step SASS instruction counts of the forward consumer (full tile) of main's kernel and
# each variant directory, D 128 and D 64 (NVRTC sm_90a from the pyenv wheels, no GPU).
# usage (repository root): bash bench/results/kernels-2026-11-28m/counts.sh [VARIANT_ROOT]
set -eu
M=bench/results/kernels-2026-11-28m; V=${1:-/work/main/.kfwd8/v}; T=$(mktemp -d)
for n in main fd lz fdlz fdlzpp sp pv2; do
  dir=$V/$n; [ "$n" = main ] && dir=crates/dcp-cuda/kernels
  for d in 128 64; do
    log=$(python3 $M/fwd_sass.py "$dir" "$T/$n$d" -DHEAD_DIM=$d 2>&1)
    sp=$(echo "$log" | grep -o '[0-9]* bytes spill stores' | head -1); ser=$(echo "$log" | grep -c C7511 || true)
    echo "$n d$d: $(python3 $M/fwd_hot.py "$T/$n$d.sass" | grep STEP | sed 's/.*STEP/STEP/'), $sp, C7511 warnings $ser"
  done
done
rm -rf "$T"
