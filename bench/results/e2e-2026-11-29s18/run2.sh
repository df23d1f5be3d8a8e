#!/usr/bin/env bash
# Session 18 call 2 (2x H200): attention alone with the card hot vs cold, dcp.torch.attention against
# PyTorch context_parallel + cuDNN in the same process (bench/gpu/torch_overhead.py), at the headline
# shapes (8/2 heads; 32K, 64K, 128K) and the e2e shape (16/4 heads, 128K); then examples/train.py on
# packed longalign batches (a new plan every step: the executor's prepare time with the buffer pool).
set -u
W=.pdev/s18a/whl
OUT=${OUT:?}; T0=$SECONDS; LIMIT=${LIMIT:-300}
python3 -m pip install -q --upgrade --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $W/dcp-*.whl || exit 1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
eval "$(python3 -m dcp.env)"
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader
mkdir -p $OUT/r
nvidia-smi --query-gpu=timestamp,index,clocks.sm,power.draw,temperature.gpu,utilization.gpu --format=csv,noheader -lms 250 > $OUT/r/smi.csv 2>&1 &
SMI=$!
port=29520
for cfg in "8 2 32768" "8 2 65536" "8 2 131072" "16 4 131072"; do
  set -- $cfg
  left=$((LIMIT - (SECONDS - T0)))
  [ $left -lt 150 ] && { echo "skip $cfg: ${left}s left"; continue; }
  echo "== torch_overhead heads $1/$2 seq $3 t=$((SECONDS-T0))s"
  port=$((port + 1))
  timeout -k 5 90 torchrun --nproc-per-node 2 --master-port $port bench/gpu/torch_overhead.py --heads $1 --kv-heads $2 --seq-len $3 \
    --variants grad,busy --cp cudnn --reps 6 --jsonl $OUT/r/overhead.jsonl > $OUT/r/overhead_$1_$3.log 2>&1; echo "rc=$?"
  grep -E "^(plan|variant|nograd|grad|fused|busy|cp:)" $OUT/r/overhead_$1_$3.log
done
left=$((LIMIT - (SECONDS - T0)))
if [ $left -gt 110 ]; then
  echo "== train.py longalign causal, dcp, 8 steps t=$((SECONDS-T0))s"
  OUT=$OUT/r PLANNERS=dcp MASKS=causal STEPS=8 WARMUP=2 NPROC=2 timeout -k 5 $((left - 10)) bash bench/gpu/x4_train.sh $W longalign 2>&1 | tail -25
  grep -h "prep" $OUT/r/*.log 2>/dev/null | head -3
else echo "skip train: ${left}s left"; fi
kill $SMI 2>/dev/null
python3 - $OUT/r/smi.csv <<'PY'
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
tar czf $OUT/all.tgz -C $OUT r && rm -rf $OUT/r
ls -la $OUT
echo "total $((SECONDS-T0))s"
