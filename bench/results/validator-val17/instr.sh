#!/bin/bash
# usage: instr.sh bin... ; prints "topo bin planner Collected" per line: callgrind instruction counts of
# the validation alone (--toggle-collect=validate_paths), run-ahead, 131K; 4x8 = --count 2
# --repeats 3 (both batches), 8x8 / 32x8 = --count 1 --repeats 1. Outputs kept in /tmp/v17_cg_*.
set -u
for t in 4x8 8x8 32x8; do
  for b in "$@"; do
    for p in ring zigzag usp; do
      if [ $t = 4x8 ]; then A="--count 2 --repeats 3"; else A="--count 1 --repeats 1 --topology $t"; fi
      c=$(valgrind --tool=callgrind --callgrind-out-file=/tmp/v17_cg_${b}_${p}_$t.out \
        --toggle-collect='dcp_core::validate::validate_paths' /tmp/$b --budgets 131072 $A \
        --interleave --threads 1 --mode ahead --planners $p 2>&1 >/dev/null | grep Collected | awk '{print $4}')
      echo "$t $b $p $c"
    done
  done
done
