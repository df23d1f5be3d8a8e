#!/usr/bin/env bash
# kfwd: variant directories (a copy of crates/dcp-cuda/kernels each, #defines prepended to
# attn_fwd_sm90.cu) under DEST (default /work/main/.kfwd8/v). Run from the repository root.
set -eu
DEST=${1:-/work/main/.kfwd8/v}
mk() { local n=$1; shift; rm -rf "$DEST/$n"; mkdir -p "$DEST/$n"; cp crates/dcp-cuda/kernels/* "$DEST/$n/"
  { for d in "$@"; do echo "#define $d"; done; cat bench/results/kernels-2026-11-28m/variants_attn_fwd_sm90.cu; } > "$DEST/$n/attn_fwd_sm90.cu"; }
mk fd     "FWD_FASTDESC 1" "FWD_LAZY 0" "FWD_SPLIT 0" "FWD_PP 0"
mk lz     "FWD_FASTDESC 0" "FWD_LAZY 1" "FWD_SPLIT 0" "FWD_PP 0"
mk fdlz   "FWD_FASTDESC 1" "FWD_LAZY 1" "FWD_SPLIT 0" "FWD_PP 0"
mk fdlzpp "FWD_FASTDESC 1" "FWD_LAZY 1" "FWD_SPLIT 0" "FWD_PP 1"
mk sp     "FWD_FASTDESC 1" "FWD_LAZY 1" "FWD_SPLIT 1" "FWD_PP 0"
mk pv2    "FWD_FASTDESC 1" "FWD_LAZY 1" "FWD_SPLIT 2" "FWD_PP 0"
