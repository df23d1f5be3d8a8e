#!/bin/bash
# usage: MODES="seq ahead auto2 phases2" map2.sh N topologies budgets planners bin... ; appends rows
# "bin mode topo planner budget batch plan_ms validate_ms plan_cpu_ms validate_cpu_ms load1"
# per round, per topology, per binary, per mode (in this order): seq = --threads 1
# (Threads::Sequential), ahead = --threads 1 --mode ahead (Threads::Ahead), auto2 / phases2 /
# flow2 = a 2-thread rayon pool with Threads::Auto / Phases / Flow, flow1 = Threads::Flow on a
# 1-thread pool. Interleaved plan /
# validate, 5 repeats per run (medians), batch 0 only.
set -u
N=$1; T=$2; B=$3; P=$4; shift 4
for i in $(seq 1 $N); do
  for t in ${T//,/ }; do
    for b in "$@"; do
      for m in ${MODES:-seq ahead}; do
        case $m in
          seq) F="--threads 1";;
          ahead) F="--threads 1 --mode ahead";;
          auto2) F="--threads 2 --mode auto";;
          phases2) F="--threads 2 --mode phases";;
          flow2) F="--threads 2 --mode flow";;
          flow1) F="--threads 1 --mode flow";;
          ahead2) F="--threads 1 --mode ahead2";;
        esac
        L=$(cut -d' ' -f1 /proc/loadavg)
        timeout 900 /tmp/$b --budgets $B --count 1 --repeats 5 --interleave --topology $t $F ${EXTRA:-} --planners $P 2>&1 | grep '^| [a-z]' | grep -v 'planner |' | awk -F'|' -v b=$b -v m=$m -v t=$t -v L=$L '{gsub(/ /,"",$2); gsub(/ /,"",$3); gsub(/ /,"",$4); print b, m, t, $2, $3, $4, $10, $12, $11, $13, L}'
      done
    done
  done
done
