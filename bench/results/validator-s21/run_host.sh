#!/usr/bin/env bash
# Prepared in session 21 for the next device call (not run yet): on the GPU machine's many-core
# host, (1) run.sh's one-thread table (the order `validate` runs: ahead from 32 devices on, and
# sequential), (2) what `validate` picks with a pool of T threads (Phases for long phases) against
# run-ahead on one thread, wall ms, to decide whether Auto should prefer run-ahead there.
# usage (repo root, validator_bench carried in DIR): VB=DIR/validator_bench run_host.sh OUTDIR
set -euo pipefail
out=$1
VB=${VB:-target/release/examples/validator_bench}
here=$(dirname "$0")
VB=$VB timeout 400 bash "$here/run.sh" "$out" 3
for T in 16x8 32x8; do
  for t in 1 4 16; do
    mode=auto; [ "$t" = 1 ] && mode=ahead
    timeout 120 "$VB" --budgets 131072,1000000 --count 2 --repeats 5 --interleave --topology "$T" \
      --threads "$t" --mode "$mode" --planners ring,zigzag,usp > "$out/vb_${T}_t${t}.txt"
  done
done
python3 "$here/table.py" "$out"
for f in "$out"/vb_*_t*.txt; do echo "== $f"; grep '^| [rzu]' "$f"; done
