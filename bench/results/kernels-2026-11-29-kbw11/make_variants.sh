#!/usr/bin/env bash
# kbw11: variant directories for DCP_CUDA_KERNELS under DEST (default /work/main/.kbw11/v): a copy of
# crates/dcp-cuda/kernels each (this branch), the variant's #defines prepended to attn_fwd_sm90.cu.
# Run from the worktree root. `base` is the lead's binary's embedded kernels (main 01bfdc9).
set -eu
DEST=${1:-/work/main/.kbw11/v}
K=crates/dcp-cuda/kernels
mk() { local n=$1; shift; rm -rf "$DEST/$n"; mkdir -p "$DEST/$n"; cp $K/* "$DEST/$n/"
  { for d in "$@"; do echo "#define $d"; done; cat "$K/attn_fwd_sm90.cu"; } > "$DEST/$n/attn_fwd_sm90.cu"; }
# call 1: `half` was this branch's kernels at FWD_HALF 1 (util.cu unchanged from main then)
# call 2 (util.cu with the merge fast path in all of them). FWD_HALF 2 (mh2, mh2l) was removed from the
# kernel after this call (worse than FWD_HALF 1 everywhere): those two need the source of call 2.
mk m    "FWD_HALF 0" "FWD_LATEREL 0"                              # merge fast path only
mk mh   "FWD_HALF (HEAD_DIM == 128)" "FWD_LATEREL 0"              # + half tiles (D 128)
mk mh2  "FWD_HALF (HEAD_DIM == 128 ? 2 : 0)" "FWD_LATEREL 0"      # + half tiles, word prefetched
mk ml   "FWD_HALF 0" "FWD_LATEREL 1"                              # merge + late Q-buffer release
mk mhl  "FWD_HALF (HEAD_DIM == 128)" "FWD_LATEREL 1"
mk mh2l "FWD_HALF (HEAD_DIM == 128 ? 2 : 0)" "FWD_LATEREL 1"
