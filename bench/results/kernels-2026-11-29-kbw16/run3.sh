#!/usr/bin/env bash
# kbw16 call 3 (1x H200): LIMIT=85 timeout 92 bash .kbw16/run3.sh   (carry [".kbw16"]), from /work/main.
# .kbw16/dcp = call 2's binary (host unchanged since). Kernel variants through DCP_CUDA_KERNELS:
#   base : no variable (main's launches and kernels)
#   A    : DCP_CUDA_BWD_CONVERT=1 DCP_CUDA_KERNELS=.kbw16/kA   (the counter arrival's fences moved
#          before the step's reductions are issued: nothing of the thread's in flight at the fence)
#   A2   : as A with kA2: no fence.acq_rel.gpu at all (timing only: what the MEMBAR costs)
set -u
OUTD=${OUT:-/tmp/kbw16_out}
R=/tmp/kbw16c3; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/kbw16c3.tgz" -C /tmp kbw16c3; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
unset DCP_CUDA_BWD_CONVERT DCP_CUDA_BWD_DQ_PIPE DCP_CUDA_KERNELS DCP_CUDA_BWD_CHAIN
T0=$SECONDS
LIMIT=${LIMIT:-85}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 5 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
B=.kbw16/dcp
summ() {
  timeout 10 python3 - "$1" "$2" <<'PY'
import json, sys
try:
    r = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith('{')]
except (OSError, ValueError):
    r = []
c = [x.get('check') or {} for x in r]
w = lambda k: max([x.get(k, 0) or 0 for x in c] + [0])
ok = len(r) > 0 and all(x.get('pass') for x in c)
print('%s: %d/%d pass, worst o %.1e dq %.1e dkv %.1e%s' % (sys.argv[2], sum(1 for x in c if x.get('pass')), len(r), w('o'), w('dq'), w('dkv'), '' if ok else ' FAIL'))
PY
}
timeout 10 python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[4096]]}, open('$R/b4k.json', 'w'))"
venv() { case "$1" in base) echo X_KBW16=base;; A) echo DCP_CUDA_BWD_CONVERT=1 DCP_CUDA_KERNELS=.kbw16/kA;; A2) echo DCP_CUDA_BWD_CONVERT=1 DCP_CUDA_KERNELS=.kbw16/kA2;; esac; }
echo "== chk4k A t=$((SECONDS - T0))"
env $(venv A) timeout 25 $B bench-gpu --batches "$R/b4k.json" --masks causal,causal-blockwise:256:2,lambda:64:1024,full \
  --planners local --head-dim 128 --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --timeout-s 20 --op-times "$R/chk4k_ops" --json "$R/chk4k.jsonl" > "$R/chk4k.log" 2>&1; echo "rc=$?"
summ "$R/chk4k.jsonl" "chk4k A" | tee -a "$R/summ.txt"
OK=1; grep -q FAIL "$R/summ.txt" && OK=; [ -s "$R/chk4k.jsonl" ] || OK=
snap
SH=blockwise,causal32k,lambda
i=0
for v in base A A2 base A A2 base A A2; do
  i=$((i + 1))
  if [ "$v" != base ] && [ -z "$OK" ]; then echo "== skip $v (check)"; continue; fi
  if ! left 18; then continue; fi
  echo "== $v t=$((SECONDS - T0))"
  env $(venv $v) timeout 25 $B kernel-bench --shapes "$SH" --head-dim 128 --repeats 3 --json "$R/kb_${v}-d128_$i.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
done
snap
if [ -n "$OK" ] && left 12; then
  echo "== shortnc A t=$((SECONDS - T0))"
  env $(venv A) DCP_CUDA_BWD_CHAIN=0 timeout $((LIMIT - (SECONDS - T0) - 2)) $B bench-gpu --batches "$R/short.json" --head-dim 128 --masks causal,causal-blockwise:128:2 \
    --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 20 --json "$R/shortnc.jsonl" > "$R/shortnc.log" 2>&1; echo "rc=$?"
  summ "$R/shortnc.jsonl" "shortnc A" | tee -a "$R/summ.txt"
fi
echo "== summary t=$((SECONDS - T0))"
cat "$R/summ.txt"
timeout 5 python3 .kbw16/table.py "$R" 128 2>/dev/null | head -6
[ -d "$R/chk4k_ops" ] && timeout 5 python3 .kbw16/ops.py "$R/chk4k_ops" | grep bwd | cut -c1-150
echo "== done t=$((SECONDS - T0))"
snap
