#!/usr/bin/env bash
# s31 call 6 (1x H200): LIMIT=330 timeout 345 bash .s31/run6.sh
# Burst against sustained timing, ours and PyTorch's (flash, cuDNN) on the same shapes: long runs
# sit at the 700 W cap (call 5). burst = kernel-bench's default (warm-up 1, median of 3) and
# torch_ref's (2, 5); sustained = 20 untimed runs then the median of 20, both sides. SM clock and
# power sampled throughout (nvidia-smi, ~100 ms).
set -u
OUTD=${OUT:-/tmp/s31_out}
LIMIT=${LIMIT:-330}
R=/tmp/s31c6; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s31c6.tgz" --exclude=s31c6/dcp -C /tmp s31c6; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
D=$R/dcp; gunzip -c .s31/dcp6.gz > $D && chmod +x $D
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu,clocks_event_reasons.sw_power_cap --format=csv -lms 100 > $R/smi.csv 2>&1 &
SMI=$!
SH=causal@32768,causal@65536,causal@131072,packed,works1000
for m in burst sustained; do
  case $m in burst) W=1; N=3; TW=2; TN=5;; sustained) W=20; N=20; TW=20; TN=20;; esac
  if left 120; then
    echo "== ours $m t=$((SECONDS - T0)) $(date +%H:%M:%S)"
    timeout 120 $D kernel-bench --shapes $SH --warmup $W --repeats $N --json $R/kb_$m.jsonl 2>&1 | grep -E '^[a-z0-9@x]+ +fwd|rror'
  fi
  if left 100; then
    echo "== torch $m t=$((SECONDS - T0)) $(date +%H:%M:%S)"
    TORCH_REF_WARMUP=$TW TORCH_REF_REPEATS=$TN timeout 150 python3 bench/gpu/torch_ref.py $R/kb_$m.jsonl $R/torch_$m.jsonl 2>&1 | tail -7
  fi
  snap
done
kill $SMI
python3 - $R <<'PY' | tee $R/table.txt
import json, sys
R = sys.argv[1]
def rows(f):
    try: return [json.loads(l) for l in open(f) if l.strip()]
    except OSError: return []
print("| shape | mode | ours fwd / bwd TFLOP/s | cuDNN | flash | ours ÷ cuDNN |\n|---|---|---|---|---|---|")
for m in ("burst", "sustained"):
    ours = {x["shape"]: x for x in rows(f"{R}/kb_{m}.jsonl") if x.get("kind") == "bench"}
    tr = {(tuple(x["lens"]), x["mask"]): x for x in rows(f"{R}/torch_{m}.jsonl")}
    for s, x in ours.items():
        t = tr.get((tuple(x["lens"]), x["mask"]), {})
        c = (t.get("cudnn_fwd_tflops", float("nan")), t.get("cudnn_bwd_tflops", float("nan")))
        fl = (t.get("flash_fwd_tflops", float("nan")), t.get("flash_bwd_tflops", float("nan")))
        o = (x["fwd_tflops_per_gpu"], x["bwd_tflops_per_gpu"])
        print(f"| {s} | {m} | {o[0]:.0f} / {o[1]:.0f} | {c[0]:.0f} / {c[1]:.0f} | {fl[0]:.0f} / {fl[1]:.0f} | {o[0] / c[0]:.2f} / {o[1] / c[1]:.2f} |")
PY
echo "== done t=$((SECONDS - T0))"
snap
