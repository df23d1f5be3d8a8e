#!/usr/bin/env bash
# kf12: kernel directories for DCP_CUDA_KERNELS, from this worktree's kernels with changed defaults.
# usage: make_variants.sh SRC_KERNEL_DIR DEST_DIR NAME=DEF:VAL[,DEF:VAL] ...  (DEST_DIR must exist; the
# calls used the kernels of commit 99f1780, whose knobs the later cleanup partly removed)
set -eu
src=$1; dst=$2; shift 2
for spec in "$@"; do
  n=${spec%%=*}; defs=${spec#*=}
  rm -rf "$dst/$n"; cp -r "$src" "$dst/$n"
  IFS=, read -ra kv <<< "$defs"
  for x in "${kv[@]}"; do
    d=${x%%:*}; v=${x#*:}
    grep -q "^#define $d " "$dst/$n/attn_fwd_sm90.cu" || { echo "no #define $d"; exit 1; }
    ve=$(printf '%s' "$v" | sed 's/[&|\\]/\\&/g')  # sed replacement: & | \ literal
    sed -i "s|^#define $d .*|#define $d $ve|" "$dst/$n/attn_fwd_sm90.cu"
  done
  echo "$n: made"
done
