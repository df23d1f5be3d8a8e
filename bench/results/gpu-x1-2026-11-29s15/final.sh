#!/usr/bin/env bash
# Session 15 last call (1 GPU): bench/gpu/x1_final.sh on merged main (kf15 FWD_NOMAX, kb15 clustered
# backward on by default, kbb15 tiled D pre-pass), with an alternated A/B against the session's
# starting main 6c49ccb (BASE).
set -u
P=.pdev/s15f
export DCP=$P/dcp WHEEL=$P/whl BASE=$P/base
LIMIT=${LIMIT:-380} bash bench/gpu/x1_final.sh
