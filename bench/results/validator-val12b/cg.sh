#!/bin/bash
# usage: cg.sh bin... ; prints "planner binary instructions" (validate_paths, 3 calls; divide by 3)
set -u
for p in ${PL:-ring zigzag usp dcp}; do for b in "$@"; do
  n=$(timeout 300 valgrind --tool=callgrind --dump-instr=no --callgrind-out-file=/dev/null --toggle-collect='dcp_core::validate::validate_paths' /tmp/$b --budgets 131072 --count 1 --repeats 3 --plan-repeats 3 --planners $p 2>&1 | grep Collected | awk '{print $4}')
  echo "$p $b $n"
done; done
