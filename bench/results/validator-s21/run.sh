#!/usr/bin/env bash
# Session 21: validate ÷ plan at 131K on one thread, the order `validate` runs there (`auto`:
# run ahead from 32 devices on) against `sequential` (what session 20's Xeon table ran, its
# header saying Auto), each topology in ROUNDS separate processes per mode, alternated.
# usage: run.sh OUTDIR [ROUNDS]
set -euo pipefail
out=$1; rounds=${2:-3}
VB=${VB:-target/release/examples/validator_bench}
mkdir -p "$out"
for r in $(seq 1 "$rounds"); do
  for T in 4x8 8x8 16x8 32x8; do
    P=ring,zigzag,usp,dcp; [ "$T" = 32x8 ] && P=ring,zigzag,usp
    for m in auto sequential; do
      "$VB" --budgets 131072 --count 2 --repeats 9 --interleave --topology "$T" --threads 1 \
        --mode "$m" --planners "$P" > "$out/vb_${T}_${m}_r$r.txt"
    done
  done
done
