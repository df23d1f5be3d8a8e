#!/usr/bin/env bash
# kfwd10: variant directories for DCP_CUDA_KERNELS (a copy of crates/dcp-cuda/kernels each, with
# variants_attn_fwd_sm90.cu and the variant's #defines prepended as attn_fwd_sm90.cu) under DEST
# (default /work/main/.kfwd10/v). Run from the repository root.
set -eu
DEST=${1:-/work/main/.kfwd10/v}
VS=bench/results/kernels-2026-11-29-fwd/variants_attn_fwd_sm90.cu
mk() { local n=$1; shift; rm -rf "$DEST/$n"; mkdir -p "$DEST/$n"; cp crates/dcp-cuda/kernels/* "$DEST/$n/"
  { for d in "$@"; do echo "#define $d"; done; cat "$VS"; } > "$DEST/$n/attn_fwd_sm90.cu"; }
mk same                       # the variants file with no switch: must equal the embedded kernel
mk prof "FWD_PROF 1"          # cycle counters per task (timing diagnostics)
mk pf   "FWD_PF 1"            # L2 prefetch of the next K/V tile
mk d2   "FWD_DIAG 2"          # ablation: no K/V loads (wrong results)
mk d4   "FWD_DIAG 4"          # ablation: no Q loads (wrong results)
mk pfprof "FWD_PF 1" "FWD_PROF 1"
mk pf2  "FWD_PF 2"            # the same with prefetch.global.L2 per 128-byte line
mk pf2prof "FWD_PF 2" "FWD_PROF 1"
# call 2 (after call 1's profile: the consumers' epilogue is ~22 % of a works1000 task)
mk po     "FWD_PO 1"          # the producer copies the staged O out
mk poprof "FWD_PO 1" "FWD_PROF 1"
# `new`: this branch's crates/dcp-cuda/kernels as they are (FWD_PO default on)
rm -rf "$DEST/new"; mkdir -p "$DEST/new"; cp crates/dcp-cuda/kernels/* "$DEST/new/"
# `newpd`: the same with FWD_PREDESC at D 64 too
rm -rf "$DEST/newpd"; mkdir -p "$DEST/newpd"; cp crates/dcp-cuda/kernels/* "$DEST/newpd/"
{ echo "#define FWD_PREDESC 1"; cat crates/dcp-cuda/kernels/attn_fwd_sm90.cu; } > "$DEST/newpd/attn_fwd_sm90.cu"
