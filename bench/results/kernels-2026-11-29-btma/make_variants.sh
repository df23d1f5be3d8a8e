#!/usr/bin/env bash
# kbtma10: variant directories for DCP_CUDA_KERNELS under DEST (default /work/main/.kbtma10/v), run
# from the worktree root. `base` = main's kernel files (/work/main, e707ce3: no BWD_TMA; its
# backward SASS equals this branch's BWD_TMA 0, nvrtc_sass.py); t1 / t2 = this branch's files
# with the #define prepended to attn_bwd_sm90.cu.
set -eu
DEST=${1:-/work/main/.kbtma10/v}
K=crates/dcp-cuda/kernels
rm -rf "$DEST/base"; mkdir -p "$DEST/base"; cp /work/main/crates/dcp-cuda/kernels/* "$DEST/base/"
mk() { local n=$1; shift; rm -rf "$DEST/$n"; mkdir -p "$DEST/$n"; cp $K/* "$DEST/$n/"
  { for d in "$@"; do echo "#define $d"; done; cat "$K/attn_bwd_sm90.cu"; } > "$DEST/$n/attn_bwd_sm90.cu"; }
mk t1 "BWD_TMA 1"   # K/V of one-region works by TMA (once per task)
mk t2 "BWD_TMA 2"   # + Q and dO q tiles of every step by TMA
# call 2
mk t2pf "BWD_TMA 2" "BWD_TMA_PF 1"   # + the next task's maps prefetched when it is claimed
