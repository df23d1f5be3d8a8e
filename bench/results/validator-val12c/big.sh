#!/bin/bash
# usage: big.sh N budgets count planners bin... ; appends rows
# "bin planner budget batch plan_ms validate_ms plan_cpu_ms validate_cpu_ms" (32x8 topology,
# interleaved, 5 repeats; binaries alternated per round; EXTRA adds flags, e.g. --threads 2)
set -u
N=$1; B=$2; C=$3; P=$4; shift 4
for i in $(seq 1 $N); do
  for b in "$@"; do
    timeout 600 /tmp/$b --budgets $B --count $C --repeats 5 --interleave --topology 32x8 ${EXTRA:-} --planners $P 2>&1 | grep '^| [a-z]' | grep -v planner | awk -F'|' -v b=$b '{gsub(/ /,"",$2); gsub(/ /,"",$3); gsub(/ /,"",$4); print b, $2, $3, $4, $10, $12, $11, $13}'
  done
done
