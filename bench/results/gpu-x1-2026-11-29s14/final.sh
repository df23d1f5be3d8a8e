#!/usr/bin/env bash
# Session 14 last call (1 GPU): bench/gpu/x1_final.sh on merged main (kbb14 opt-in half-step backward, kf14 tests, kb14 opt-in cluster backward; defaults as session 13).
set -u
P=.pdev/s14f
export DCP=$P/dcp WHEEL=$P/whl
LIMIT=${LIMIT:-330} bash bench/gpu/x1_final.sh
