#!/bin/bash
# usage: bench4.sh N planners bin:mode... ; appends rows
# "bin mode planner batch plan_ms validate_ms plan_cpu_ms validate_cpu_ms load1" (131K on 4x8,
# 2 batches, interleaved, median of 101 per run; variants alternated per round; mode seq =
# --threads 1, ahead = --threads 1 --mode ahead)
set -u
N=$1; P=$2; shift 2
for i in $(seq 1 $N); do
  for v in "$@"; do
    b=${v%%:*}; m=${v##*:}
    case $m in seq) F="--threads 1";; ahead) F="--threads 1 --mode ahead";; ahead2) F="--threads 1 --mode ahead2";; esac
    L=$(cut -d' ' -f1 /proc/loadavg)
    timeout 300 /tmp/$b --budgets 131072 --count 2 --repeats 101 --interleave $F --planners $P 2>&1 | grep '^| [a-z]' | grep -v 'planner |' | awk -F'|' -v b=$b -v m=$m -v L=$L '{gsub(/ /,"",$2); gsub(/ /,"",$4); print b, m, $2, $4, $10, $12, $11, $13, L}'
  done
done
