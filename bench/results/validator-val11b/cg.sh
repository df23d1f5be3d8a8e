#!/bin/bash
# usage: cg.sh; prints "planner binary function instructions" (3 calls each; divide by 3)
set -u
for p in ring zigzag usp dcp; do for b in vb11b_base vb11b_final; do
  for f in 'dcp_core::validate::validate_paths' 'dcp_core::planners::make_plan'; do
    n=$(timeout 300 valgrind --tool=callgrind --dump-instr=no --callgrind-out-file=/dev/null --toggle-collect="$f" /tmp/$b --budgets 131072 --count 1 --repeats 3 --plan-repeats 3 --planners $p 2>&1 | grep "Collected" | awk '{print $4}')
    echo "$p $b $f $n"
  done
done; done
