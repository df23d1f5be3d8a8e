#!/usr/bin/env bash
# s36 call 1 (1x H200): LIMIT=480 bash .s36/run1.sh
# Session 35's tree (aa76a06 plus the synchronize/shutdown GPU check), never run on a GPU:
# the executor split into modules, synchronize(timeout_s), shutdown letting a failed executor
# go. bench/gpu/x1_final.sh on its binary and wheel.
set -u
P=/tmp/s36; rm -rf $P; mkdir -p $P
gunzip -c .s36/dcp1.gz > $P/dcp && chmod +x $P/dcp
export DCP=$P/dcp WHEEL=.s36/whl
LIMIT=${LIMIT:-480} bash bench/gpu/x1_final.sh
