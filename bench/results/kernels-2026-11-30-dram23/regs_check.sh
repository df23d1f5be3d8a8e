#!/usr/bin/env bash
# Offline register checks of the forward kernel's shapes (NVRTC 13.0 via kf20's sass1.py; needs
# /tmp/kb13/nv). Run from the repository root. Prints ptxas's spill line per variant.
set -u
K=crates/dcp-cuda/kernels; T=/tmp/w3k; mkdir -p $T /tmp/kf20; cp $K/common.cuh $K/mma.cuh $K/sm90.cuh $T/
S=bench/results/kernels-2026-11-29-kf20/sass1.py
run() { python3 $S $T "$1" HEAD_DIM=128 FWD_LATEREL=1 2>&1 | grep -E "spill|Used"; }
echo "main (384 threads, producer 56 / consumers 224)"; python3 $S $K main HEAD_DIM=128 FWD_LATEREL=1 2>&1 | grep -E "spill|Used"
echo "three consumer warpgroups' budget (512 threads, 24 / 160)"
sed -e 's/#define S90_THREADS 384/#define S90_THREADS 512/' -e 's/#define FWD_PROD_REGS 56/#define FWD_PROD_REGS 24/' \
    -e 's/#define FWD_CONS_REGS 224/#define FWD_CONS_REGS 160/' -e 's/<= 384 \* 168/<= 512 * 128/' $K/attn_fwd_sm90.cu > $T/attn_fwd_sm90.cu; run w3
echo "producer 24 / consumers 240 (384 threads)"
sed -e 's/#define FWD_PROD_REGS 56/#define FWD_PROD_REGS 24/' -e 's/#define FWD_CONS_REGS 224/#define FWD_CONS_REGS 240/' \
    $K/attn_fwd_sm90.cu > $T/attn_fwd_sm90.cu; run c240
echo "two CTAs per SM (256 threads, launch bounds (256, 2), 24 / 232)"
sed -e 's/#define S90_THREADS 384/#define S90_THREADS 256/' -e 's/__launch_bounds__(S90_THREADS, 1)/__launch_bounds__(S90_THREADS, 2)/' \
    -e 's/#define FWD_PROD_REGS 56/#define FWD_PROD_REGS 24/' -e 's/#define FWD_CONS_REGS 224/#define FWD_CONS_REGS 232/' \
    -e 's/<= 384 \* 168/<= 9999999/' $K/attn_fwd_sm90.cu > $T/attn_fwd_sm90.cu; run cta2
