#!/usr/bin/env bash
# Session 22, on the GPU machine's 16-core host: run-ahead in blocks on several threads
# (Threads::AheadPar) against run-ahead on one thread (what validate runs today on one thread),
# flow, and what Auto picks with 16 threads (rayon's global pool, validation from the main thread).
# usage (repo root; validator_bench carried in DIR): VB=DIR/validator_bench run_host4.sh OUTDIR
set -uo pipefail
out=$1
VB=${VB:-target/release/examples/validator_bench}
mkdir -p "$out"
nproc > "$out/nproc.txt"; lscpu > "$out/lscpu.txt" 2>&1
T0=$SECONDS
one() {  # budget topology threads mode planners [count]
  timeout 90 "$VB" --budgets "$1" --count "${6:-2}" --repeats 5 --interleave --topology "$2" \
    --threads "$3" --mode "$4" --planners "$5" > "$out/vb_$1_$2_t$3_$4.txt" 2>&1
  echo "$1 $2 t$3 $4 done t=$((SECONDS - T0))"
}
P=ring,zigzag,usp
for T in 8x8 16x8 32x8; do
  one 131072 $T 1 ahead $P
  for t in 4 8 16; do one 131072 $T $t aheadpar $P; done
  one 131072 $T 16 flow $P
  one 131072 $T 16 auto $P
done
one 131072 4x8 1 ahead $P,dcp
one 131072 4x8 8 aheadpar $P,dcp
one 131072 4x8 16 aheadpar $P,dcp
one 131072 32x8 1 ahead dcp
one 131072 32x8 16 aheadpar dcp
one 1000000 32x8 1 ahead $P 1
one 1000000 32x8 8 aheadpar $P 1
one 1000000 32x8 16 aheadpar $P 1
one 1000000 32x8 16 flow $P 1
one 1000000 32x8 16 auto $P 1
( cd "$out" && tar czf ../vh4.tgz . )
for f in "$out"/vb_*.txt; do echo "== $(basename $f)"; grep '^| [rzud]' "$f" | awk -F'|' '{printf "%s b%s plan %s val %s wall %s %s\n", $2, $4, $10, $12, $15, $16}'; done
