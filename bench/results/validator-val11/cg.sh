#!/bin/bash
set -u
for p in ring zigzag usp; do for b in vb_base2 vb_final; do
  for f in 'dcp_core::validate::validate_paths' 'dcp_core::planners::make_plan'; do
    n=$(timeout 300 valgrind --tool=callgrind --dump-instr=no --callgrind-out-file=/dev/null --toggle-collect="$f" /tmp/$b --budgets 131072 --count 1 --repeats 3 --plan-repeats 3 --planners $p 2>&1 | grep "Collected" | awk '{print $4}')
    echo "$p $b $f $n"
  done
done; done
