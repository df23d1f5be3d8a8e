#!/usr/bin/env bash
# s31 call 3 (2x H200): timeout 330 bash .s31/run3.sh
# Why does the ulysses plan's backward of one causal 64K / 114 710-token sequence on 2 GPUs run
# 6-12 % slower than zigzag's (call 2), when 32K and 128K are equal? (a) per-op times of both plans
# (2 GPUs); (b) the per-GPU kernel alone: kernel-bench with 4 query / 1 KV head (ulysses's share)
# and 8 / 2 heads, at 32K / 64K / 114 710 / 128K, with PyTorch flash and cuDNN on the same shapes.
set -u
OUTD=${OUT:-/tmp/s31_out}
R=/tmp/s31c3; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s31c3.tgz" --exclude=s31c3/dcp -C /tmp s31c3; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
D=$R/dcp; gunzip -c .s31/dcp7.gz > $D && chmod +x $D
echo '{"batches": [[32768], [65536], [114710], [131072]]}' > $R/single.json
echo "== ops t=$((SECONDS - T0))"
timeout 120 $D launch -n 2 -- bench-gpu --batches $R/single.json --mask causal --planners ulysses,zigzag \
  --warmup 1 --repeats 3 --json $R/single.jsonl --op-times $R/ops > $R/single.log 2>&1; echo "rc=$?"
python3 bench/gpu/op_times.py $R/ops > $R/ops.md 2>&1; tar czf $R/ops.tgz -C $R ops && rm -rf $R/ops
snap
for hk in 4:1 8:2; do
  echo "== kernel-bench $hk t=$((SECONDS - T0))"
  timeout 60 $D kernel-bench --heads ${hk%:*} --kv-heads ${hk#*:} --shapes causal@32768,causal@65536,causal@114710,causal@131072 \
    --repeats 3 --json $R/kb_${hk/:/-}.jsonl 2>&1 | grep -E 'causal@|rror'
done
snap
echo "== torch t=$((SECONDS - T0))"
cat $R/kb_*.jsonl > $R/kb_all.jsonl
timeout 100 python3 bench/gpu/torch_ref.py $R/kb_all.jsonl $R/torch.jsonl 2>&1 | tail -12
python3 - $R <<'PY' | tee $R/table.txt
import json, sys
R = sys.argv[1]
for l in open(R + "/single.jsonl"):
    x = json.loads(l)
    if x.get("kind") == "bench": print(f"{x['planner']:8s} {x['tokens']:7d} fwd {x['fwd_ms']:7.2f} bwd {x['bwd_ms']:7.2f}")
PY
echo "== done t=$((SECONDS - T0))"
snap
