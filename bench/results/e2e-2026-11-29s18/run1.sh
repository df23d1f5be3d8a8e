#!/usr/bin/env bash
# Session 18 call 1 (2x H200): where dcp.torch.attention's per-call overhead comes from.
# 1. bench/gpu/torch_overhead.py (the Python entry point alone, variants, one profiled call)
# 2. bench-gpu on the same plan shape (16/4 heads) with --op-times: the executor alone
# 3. the e2e dcp side with one profiled step and its Chrome trace (both ranks)
# nvidia-smi samples clocks / power all along.
set -u
P=.pdev/s18a
OUT=${OUT:?}; T0=$SECONDS; LIMIT=${LIMIT:-330}
python3 -m pip install -q --upgrade --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $P/whl/dcp-*.whl || exit 1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
eval "$(python3 -m dcp.env)"
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader
nvidia-smi --query-gpu=timestamp,index,clocks.sm,power.draw,temperature.gpu,utilization.gpu --format=csv,noheader -lms 250 > $OUT/smi.csv 2>&1 &
SMI=$!
echo "== torch_overhead t=$((SECONDS-T0))s"
timeout -k 5 150 torchrun --nproc-per-node 2 --master-port 29511 bench/gpu/torch_overhead.py --jsonl $OUT/overhead.jsonl > $OUT/overhead.log 2>&1; echo "rc=$?"
grep -v '^\[' $OUT/overhead.log | grep -v "^W1\|OMP_NUM\|\*\*\*\*" | tail -40
echo "== bench-gpu 16/4 heads t=$((SECONDS-T0))s"
echo '{"batches": [[131072]]}' > /tmp/single.json
timeout -k 5 120 $P/dcp launch -n 2 -- bench-gpu --batches /tmp/single.json --mask causal --heads 16 --kv-heads 4 --planners dcp --warmup 2 --repeats 6 --json $OUT/bg.jsonl --op-times $OUT/ops > $OUT/bg.log 2>&1; echo "rc=$?"
grep -v '^\[rank 0\] {' $OUT/bg.log | tail -6
python3 bench/gpu/op_times.py $OUT/ops 2>&1 | tail -30
echo "== e2e dcp side, profiled step + trace t=$((SECONDS-T0))s"
left=$((LIMIT - (SECONDS - T0)))
if [ $left -gt 90 ]; then
  timeout -k 5 $((left - 10)) torchrun --nproc-per-node 2 --master-port 29512 bench/gpu/e2e_same_model.py --seq-len 131072 --steps 4 --warmup 2 --sides dcp --profile dcp --trace $OUT --jsonl $OUT/e2e.jsonl > $OUT/e2e.log 2>&1; echo "rc=$?"
  grep -E '^\{"side' $OUT/e2e.log | python3 -c "
import json,sys
for l in sys.stdin:
    d=json.loads(l)
    if 'step' in d and 'summary' not in d: print(f\"step {d['step']} {d['step_ms']:.1f} ms attn {d['attn_fwd_ms']:.1f} + {d['attn_bwd_ms']:.1f}\")
"
  grep -v '^{' $OUT/e2e.log | grep -v "^W1\|OMP_NUM\|\*\*\*\*" | tail -12
else echo "skipped e2e: ${left}s left"; fi
kill $SMI 2>/dev/null
python3 - $OUT/smi.csv <<'PY'
import sys, collections
rows = [l.strip().split(", ") for l in open(sys.argv[1]) if l.count(",") >= 5]
by = collections.defaultdict(list)
for r in rows:
    try: by[r[1]].append((float(r[2].split()[0]), float(r[3].split()[0])))
    except ValueError: pass
for g, v in sorted(by.items()):
    busy = [x for x in v if x[1] > 300]
    if busy:
        cl = sorted(x[0] for x in busy); pw = sorted(x[1] for x in busy)
        print(f"gpu {g}: {len(busy)} samples >300 W: sm clock median {cl[len(cl)//2]:.0f} MHz (min {cl[0]:.0f}), power median {pw[len(pw)//2]:.0f} W (max {pw[-1]:.0f})")
PY
# at most 8 files come back: the traces as they are, the rest in one archive
(cd $OUT && tar czf all.tgz --exclude='trace_*' --exclude=all.tgz . && find . -mindepth 1 ! -name 'trace_*' ! -name all.tgz -delete)
ls -la $OUT
echo "total $((SECONDS-T0))s"
