#!/usr/bin/env bash
# s36 call 4 (1x H200): LIMIT=480 bash .s36/run4.sh
# The session's tree with DCP_CUDA_PARTIAL_FIRST=bwd by default (call 3: onework backward
# +11.5 % / +24 %). bench/gpu/x1_final.sh on its binary and wheel.
set -u
P=/tmp/s36; rm -rf $P; mkdir -p $P
gunzip -c .s36/dcp4.gz > $P/dcp && chmod +x $P/dcp
export DCP=$P/dcp WHEEL=.s36/whl
LIMIT=${LIMIT:-480} bash bench/gpu/x1_final.sh
