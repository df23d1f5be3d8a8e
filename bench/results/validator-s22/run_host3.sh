#!/usr/bin/env bash
# Session 22, on the GPU machine's 16-core host: validation on several threads as `dcp` runs it
# (rayon's global pool, validation from the main thread; validator_bench since ec00263) against
# run-ahead on one thread, wall ms, 131K tokens, ring / zigzag / usp on 8x8, 16x8, 32x8; modes:
# ahead (1 thread), auto (16 threads: what validate picks there), flow and phases (4, 8, 16).
# usage (repo root; validator_bench carried in DIR): VB=DIR/validator_bench run_host3.sh OUTDIR
set -uo pipefail
out=$1
VB=${VB:-target/release/examples/validator_bench}
mkdir -p "$out"
nproc > "$out/nproc.txt"; lscpu > "$out/lscpu.txt" 2>&1
one() {  # topology threads mode
  timeout 60 "$VB" --budgets 131072 --count 2 --repeats 5 --interleave --topology "$1" \
    --threads "$2" --mode "$3" --planners ring,zigzag,usp > "$out/vb_$1_t$2_$3.txt" 2>&1
}
for T in 8x8 16x8 32x8; do
  one $T 1 ahead
  one $T 16 auto
  for t in 4 8 16; do one $T $t flow; done
  for t in 4 16; do one $T $t phases; done
  one $T 1 ahead
done
( cd "$out" && tar czf ../vh3.tgz . )
for f in "$out"/vb_*.txt; do echo "== $(basename $f)"; grep '^| [rzu]' "$f" | awk -F'|' '{printf "%s b%s plan %s val %s wall %s %s\n", $2, $4, $10, $12, $15, $16}'; done
