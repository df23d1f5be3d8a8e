#!/bin/bash
# usage: cg.sh BIN PLANNER [FUNCTION]; instructions of FUNCTION (default: validation) for 3 validations
set -u
B=$1; P=$2; F=${3:-dcp_core::validate::validate_paths}
timeout 300 valgrind --tool=callgrind --dump-instr=no --callgrind-out-file=/dev/null --toggle-collect="$F" /tmp/$B --budgets 131072 --count 1 --repeats 3 --plan-repeats 1 --planners $P 2>&1 | grep Collected | awk -v b=$B -v p=$P '{print b, p, $4}'
