#!/usr/bin/env bash
# s24 call 3 (1x H200): timeout 580 bash .s24/run3.sh
# torch_ref --flex (flash, cuDNN, FlexAttention with block lists built by the script) on call 2's
# round-1 batches (.s24/kb_c2_r1.jsonl: main b1333e9's records).
set -u
OUTD=${OUT:-/tmp/s24_out}
R=/tmp/s24c3; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
timeout 560 python3 bench/gpu/torch_ref.py --flex .s24/kb_c2_r1.jsonl "$R/torch_flex.jsonl" 2>&1 | grep -v '^{' | grep -v Warn | tail -24
tar czf "$OUTD/s24c3.tgz" -C /tmp s24c3
echo "done t=$((SECONDS - T0))"
