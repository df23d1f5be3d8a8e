#!/usr/bin/env bash
# Session 16 last call (1 GPU): bench/gpu/x1_final.sh on merged main, with an alternated A/B
# against the session's starting main 7cd68d5 (BASE).
set -u
P=.pdev/s16f
export DCP=$P/dcp WHEEL=$P/whl BASE=$P/base
LIMIT=${LIMIT:-380} bash bench/gpu/x1_final.sh
