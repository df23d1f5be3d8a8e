#!/usr/bin/env bash
# Session 13 last call (1 GPU): bench/gpu/x1_final.sh on merged main c50d377 (kf13 short-task
# forward kernel + split-K gate, kb13 chain dQ 16-byte stores + one-wave D pre-pass, kf13b
# FWD_ONECVT). The short documents' sanitizer runs take the short-task forward and the chain
# backward.
set -u
P=.pdev/s13f
export DCP=$P/dcp WHEEL=$P/whl
LIMIT=${LIMIT:-330} bash bench/gpu/x1_final.sh
