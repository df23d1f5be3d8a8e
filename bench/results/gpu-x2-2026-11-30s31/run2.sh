#!/usr/bin/env bash
# s31 call 2 (2x H200): timeout 500 bash .s31/run2.sh
# Issue 10's table (item 5) at world 2, since the 4-GPU kind is not lent: selftest at 2 and 1
# GPUs; one causal sequence of 32K / 64K / 114 710 / 128K tokens, dcp and zigzag (checked);
# five packed 131K batches, local / zigzag / dcp (checked); PyTorch context_parallel with cuDNN
# and flash on the same single sequences; PyTorch flash varlen on one GPU (the floor ÷ 2).
set -u
OUTD=${OUT:-/tmp/s31_out}
R=/tmp/s31c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s31c2.tgz" --exclude=s31c2/dcp -C /tmp s31c2; }
exec > >(tee "$R/run.log") 2>&1
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
gunzip -c .s31/dcp7.gz > $R/dcp && chmod +x $R/dcp
DCP=$R/dcp OUT=$R/t WORLD=2 PEER_CP=.s31/peers/torch_cp.py PEER_IDEAL=.s31/peers/ideal_attn.py \
  timeout 470 bash bench/gpu/x4_cp_table.sh
snap
