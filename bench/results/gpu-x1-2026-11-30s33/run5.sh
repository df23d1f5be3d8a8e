#!/usr/bin/env bash
# s33 call 5 (1x H200): bash .s33/run5.sh
# The final tree's kernels end to end on one GPU (bench/gpu/x1_final.sh, last run whole in
# session 15/16): selftest (sm90 and mma.sync families), sanitizers, split-K / short / pair
# document checks, the Python GPU test, kernel-bench sparse + GQA x dtype x D beside PyTorch
# flash and cuDNN on the same shapes. No A/B (the kernels did not change this session).
set -u
P=/tmp/s33f; rm -rf $P; mkdir -p $P
gunzip -c .s33/dcp2.gz > $P/dcp && chmod +x $P/dcp
export DCP=$P/dcp WHEEL=.s33/whl
LIMIT=${LIMIT:-500} bash bench/gpu/x1_final.sh
