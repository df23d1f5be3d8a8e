#!/usr/bin/env bash
# Session 22 (a cut of run_host.sh for one device call): on the GPU machine's 16-core host,
# (1) the one-thread table of run.sh in 2 rounds (run-ahead = what validate runs from 32 devices,
# and sequential), (2) validate's own choice with pools of 4, 8 and 16 threads against run-ahead
# on one thread, wall ms, 131K tokens, ring / zigzag / usp on 8x8, 16x8, 32x8.
# usage (repo root; validator_bench carried in DIR): VB=DIR/validator_bench run_host2.sh OUTDIR
set -uo pipefail
out=$1
VB=${VB:-target/release/examples/validator_bench}
here=$(dirname "$0")
mkdir -p "$out"
nproc > "$out/nproc.txt"; lscpu > "$out/lscpu.txt" 2>&1
VB=$VB timeout 300 bash "$here/run.sh" "$out" 2
for T in 8x8 16x8 32x8; do
  for t in 1 4 8 16; do
    mode=auto; [ "$t" = 1 ] && mode=ahead
    timeout 90 "$VB" --budgets 131072 --count 2 --repeats 5 --interleave --topology "$T" \
      --threads "$t" --mode "$mode" --planners ring,zigzag,usp > "$out/vbt_${T}_t${t}.txt"
  done
done
python3 "$here/table.py" "$out" > "$out/table.md" 2>&1
for f in "$out"/vbt_*_t*.txt; do echo "== $f"; grep '^| [rzu]' "$f"; done
