#!/usr/bin/env bash
# s32 call 5 (2x H200): timeout 560 bash .s32/run5.sh
# (1) bench/gpu/torch_cp_ref.py (new, ours) against shared/peers/torch_cp.py, both at their
#     default 3 + 5 runs, cuDNN, 32K / 64K / 128K: do they agree?
# (2) issue 10's table at world 2, sustained: SUSTAIN=20 (20 untimed + 20 timed runs of every
#     single sequence on both sides), selftest skipped (call 3 of session 31 ran it).
set -u
OUTD=${OUT:-/tmp/s32_out}
R=/tmp/s32c5; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s32c5.tgz" --exclude=s32c5/dcp -C /tmp s32c5; }
exec > >(tee "$R/run.log") 2>&1
T0=$SECONDS
source bench/gpu/env.sh
D=$R/dcp; gunzip -c .s32/dcp5.gz > $D && chmod +x $D
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
echo "== (1) peer vs ours, cudnn, default runs t=$((SECONDS - T0))"
timeout 100 python3 -m torch.distributed.run --nproc-per-node 2 .s32/peers/torch_cp.py cudnn gqa 2>$R/peer.log | grep '^{' | tee $R/peer.jsonl
timeout 100 python3 -m torch.distributed.run --nproc-per-node 2 bench/gpu/torch_cp_ref.py cudnn 2>$R/ours.log | grep '^{' | tee $R/ours.jsonl
snap
echo "== (2) sustained table t=$((SECONDS - T0))"
DCP=$D WORLD=2 SELFTEST=0 SUSTAIN=20 PEER_IDEAL=.s32/peers/ideal_attn.py OUT=$R/t timeout $((540 - (SECONDS - T0))) bash bench/gpu/x4_cp_table.sh > $R/table.log 2>&1; echo "rc=$?"
tail -30 $R/table.log
echo "== done t=$((SECONDS - T0))"
snap
