#!/usr/bin/env bash
# s34 call 4 (1x H200): LIMIT=420 bash .s34/run4.sh
# The final tree (367ebcd: D 64 forward defaults FWD_FASTDESC / FWD_SPLIT 2 / FWD_LAZY in the
# plain kernel, FWD_ONE as its own kernel, on at D 64 too): bench/gpu/x1_final.sh on its binary
# and wheel (selftest both families, sanitizers, split-K / short / pair document checks at
# D 128 and 64, the Python GPU test, kernel-bench beside PyTorch flash and cuDNN).
set -u
P=/tmp/s34f; rm -rf $P; mkdir -p $P
gunzip -c .s34/dcp3.gz > $P/dcp && chmod +x $P/dcp
export DCP=$P/dcp WHEEL=.s34/whl
LIMIT=${LIMIT:-420} bash bench/gpu/x1_final.sh
