#!/bin/bash
# usage: cgc.sh bin topo planner what(val|plan) : callgrind with cache simulation (D1 48K 12-way, LL 2 MiB 16-way = this VM's L1d / L2 per core), one warm-ish run (repeats 2)
b=$1; t=$2; p=$3; w=$4; r=${5:-2}
if [ $w = val ]; then T='dcp_core::validate::validate_paths'; else T='dcp_core::planners::make_plan'; fi
valgrind --tool=callgrind --cache-sim=yes --D1=49152,12,64 --LL=2097152,16,64 --callgrind-out-file=/tmp/v18cg/c_${b}_${w}_${p}_${t}_r$r.out --toggle-collect="$T" /tmp/$b --budgets 131072 --count 1 --repeats $r --interleave --topology $t --threads 1 --mode ahead --planners $p 2>&1 >/dev/null | grep -E "Collected" | awk -v t=$t -v b=$b -v p=$p -v w=$w '{print t, b, p, w, $0}'
