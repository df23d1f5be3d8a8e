#!/usr/bin/env bash
# ktma10: variant directories for DCP_CUDA_KERNELS under DEST (default /work/main/.ktma10/v): a copy
# of crates/dcp-cuda/kernels each, with the variant's #define prepended to attn_fwd_sm90.cu. Run from
# the worktree root. `base` is the binary's embedded kernel (FWD_TMA 0 = main's SASS).
set -eu
DEST=${1:-/work/main/.ktma10/v}
K=crates/dcp-cuda/kernels
mk() { local n=$1; shift; rm -rf "$DEST/$n"; mkdir -p "$DEST/$n"; cp $K/* "$DEST/$n/"
  { for d in "$@"; do echo "#define $d"; done; cat "$K/attn_fwd_sm90.cu"; } > "$DEST/$n/attn_fwd_sm90.cu"; }
mk t1 "FWD_TMA 1"   # K/V tiles of one-region works by TMA
mk t2 "FWD_TMA 2"   # + Q by TMA
mk t3 "FWD_TMA 3"   # + 16-bit O stored by TMA from the stmatrix staging
# call 2 (the embedded default is now FWD_TMA 3 at D 128, 0 at D 64)
mk t0   "FWD_TMA 0"                       # main's kernel (SASS identical to main 444c8fc's)
mk t3pd "FWD_TMA 3" "FWD_PREDESC 1"       # D 64: TMA with the descriptor prefetch of D 128
mk t3cl "FWD_TMA 3" "FWD_CLAIM_LATE 1"    # next task claimed after the last K/V load
