#!/bin/bash
# usage: cg.sh bin topo planner what(val|plan)   (val18's cg.sh, paths under /tmp/d17)
b=$1; t=$2; p=$3; w=$4; r=${5:-1}
if [ $w = val ]; then T='dcp_core::validate::validate_paths'; else T='dcp_core::planners::make_plan'; fi
valgrind --tool=callgrind --callgrind-out-file=/tmp/d17cg/${b}_${w}_${p}_${t}_r$r.out --toggle-collect="$T" /tmp/d17/$b --budgets 131072 --count 1 --repeats $r --interleave --topology $t --threads 1 --mode ahead --planners $p 2>&1 >/dev/null | grep Collected | awk -v t=$t -v b=$b -v p=$p -v w=$w '{print t, b, p, w, $4}'
