#!/usr/bin/env bash
# kfwd9: variant directories for DCP_CUDA_KERNELS (a copy of crates/dcp-cuda/kernels each, with
# variants_attn_fwd_sm90.cu and #defines prepended as attn_fwd_sm90.cu) under DEST (default /work/main/.kfwd9/v). Run from the repository root.
set -eu
DEST=${1:-/work/main/.kfwd9/v}
mk() { local n=$1; shift; rm -rf "$DEST/$n"; mkdir -p "$DEST/$n"; cp crates/dcp-cuda/kernels/* "$DEST/$n/"
  { for d in "$@"; do echo "#define $d"; done; cat bench/results/kernels-2026-11-28n/variants_attn_fwd_sm90.cu; } > "$DEST/$n/attn_fwd_sm90.cu"; }
mk xt   "FWD_XT 1"
mk hf   "FWD_HALF 1"
mk xthf "FWD_XT 1" "FWD_HALF 1"
mk pd   "FWD_PREDESC 1"
mk epi  "FWD_EPI 1"
mk all  "FWD_XT 1" "FWD_HALF 1" "FWD_PREDESC 1"
# timing ablations (wrong results): no O/LSE stores, no K/V loads, no Q loads, no consumer fence
mk d1 "FWD_DIAG 1"
mk d2 "FWD_DIAG 2"
mk d4 "FWD_DIAG 4"
mk d8 "FWD_DIAG 8"
mk d7 "FWD_DIAG 7"
# call 2 (after the ablations showed the O stores cost works1000 36 %)
mk ost   "FWD_OST 1"
mk ostpd "FWD_OST 1" "FWD_PREDESC 1"
mk xtost "FWD_XT 1" "FWD_OST 1"
