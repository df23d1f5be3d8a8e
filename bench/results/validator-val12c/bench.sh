#!/bin/bash
# usage: bench.sh N planners bin1 bin2 ... ; appends rows
# "bin planner batch plan_ms validate_ms plan_cpu_ms validate_cpu_ms" (binaries alternated per
# round; EXTRA adds flags, e.g. EXTRA=--interleave)
set -u
N=$1; P=$2; shift 2
for i in $(seq 1 $N); do
  for b in "$@"; do
    timeout 120 /tmp/$b --budgets 131072 --count 2 --repeats 101 ${EXTRA:-} --planners $P 2>&1 | grep '^| [a-z]' | grep -v planner | awk -F'|' -v b=$b '{gsub(/ /,"",$2); gsub(/ /,"",$4); print b, $2, $4, $10, $12, $11, $13}'
  done
done
