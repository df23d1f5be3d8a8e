#!/usr/bin/env bash
# kbw16 run4 (NOT RUN in session 16; for the next session): LIMIT=230 timeout 240 bash .kbw16/run4.sh (carry [".kbw16"]), from /work/main.
# .kbw16/dcp = branch kbw16 at its last commit (BWD_DQ_CONV 3: arrivals at the task's end as in
# main's DCP_CUDA_BWD_CONVERT=1, conversions pipelined one box per step; compiled offline only).
# Variants of the one binary:
#   base : no variable (main's launches and kernels)
#   new  : DCP_CUDA_BWD_CONVERT=1 DCP_CUDA_BWD_DQ_PIPE=2
# Compare with main's end-of-task form (DCP_CUDA_BWD_CONVERT=1 alone: blockwise backward -8 % in
# call 1) by adding a variant if time allows. Correctness first, then A/B x3, op times, sanitizers.
set -u
OUTD=${OUT:-/tmp/kbw16_out}
R=/tmp/kbw16c4; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/kbw16c4.tgz" -C /tmp kbw16c4; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
unset DCP_CUDA_BWD_CONVERT DCP_CUDA_BWD_DQ_PIPE DCP_CUDA_KERNELS DCP_CUDA_BWD_CHAIN
T0=$SECONDS
LIMIT=${LIMIT:-230}
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
P = [256, 130, 129, 200, 250, 255, 192, 160, 240, 222, 131, 180, 129, 255, 140]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[P[i % len(P)] for i in range(150)]]}, open('$R/pair.json', 'w'))
json.dump({'batches': [[4096]]}, open('$R/b4k.json', 'w'))
json.dump({'batches': [[1024]]}, open('$R/b1k.json', 'w'))
json.dump({'batches': [[32768]]}, open('$R/b32k.json', 'w'))"
NEW="DCP_CUDA_BWD_CONVERT=1 DCP_CUDA_BWD_DQ_PIPE=2"
chk() {  # tag args...
  local tag=$1; shift
  echo "== $tag t=$((SECONDS - T0))"
  env $NEW "$@" --json "$R/$tag.jsonl" > "$R/$tag.log" 2>&1; echo "rc=$?"
  summ "$R/$tag.jsonl" "$tag" | tee -a "$R/summ.txt"
}
chk st env DCP_CUDA_FAMILY=sm90 timeout 40 $B bench-gpu --selftest 4 --planners local,zigzag,dcp --timeout-s 35
chk chk4k timeout 60 $B bench-gpu --batches "$R/b4k.json" --masks causal,causal-blockwise:256:2,lambda:64:1024,full \
  --planners local --head-dim 128 --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --timeout-s 55 --op-times "$R/chk4k_ops"
chk shortnc env DCP_CUDA_BWD_CHAIN=0 timeout 30 $B bench-gpu --batches "$R/short.json" --head-dim 128 --masks causal,causal-blockwise:128:2 \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 25 --op-times "$R/shortnc_ops"
chk short timeout 30 $B bench-gpu --batches "$R/short.json" --head-dim 128 --masks full,causal,causal-blockwise:128:2,sliding-window:100 \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 25
chk pair timeout 25 $B bench-gpu --batches "$R/pair.json" --head-dim 128 --masks full --planners local --check \
  --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 20
OK=1; grep -q FAIL "$R/summ.txt" && OK=
for f in st chk4k shortnc short pair; do [ -s "$R/$f.jsonl" ] || OK=; done
echo "checks ok: ${OK:-no}"
snap
SH=blockwise,causal32k,lambda,packed,onework,works1000
i=0
for v in base new base new base new; do
  i=$((i + 1))
  if [ "$v" = new ] && [ -z "$OK" ]; then echo "== skip new (check)"; continue; fi
  if ! left 60; then continue; fi
  e=; [ "$v" = new ] && e=$NEW
  echo "== $v t=$((SECONDS - T0))"
  env $e timeout 40 $B kernel-bench --shapes "$SH" --head-dim 128 --repeats 3 --json "$R/kb_${v}-d128_$i.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
done
snap
for v in new base; do
  if [ "$v" = new ] && [ -z "$OK" ]; then continue; fi
  if ! left 50; then continue; fi
  e=; [ "$v" = new ] && e=$NEW
  echo "== ops $v t=$((SECONDS - T0))"
  env $e timeout 20 $B bench-gpu --batches "$R/b32k.json" --masks causal-blockwise,lambda,causal --planners local --block-sizes 1024 \
    --head-block 2 --warmup 1 --repeats 3 --op-times "$R/ops_$v" --json "$R/ops_$v.jsonl" > "$R/ops_$v.log" 2>&1; echo "rc=$?"
done
snap
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "$OK" ] && [ -n "$CS" ]; then
  for tool in memcheck racecheck; do
    if ! left 22; then continue; fi
    echo "== $tool t=$((SECONDS - T0))"
    env $NEW timeout -k 2 $((LIMIT - (SECONDS - T0) - 4)) "$CS" --tool $tool --print-limit 5 $B bench-gpu \
      --batches "$R/b1k.json" --masks causal-blockwise:128:2,lambda:32:256 --planners local --head-dim 128 --warmup 0 --repeats 1 \
      --timeout-s 60 --op-times "$R/san_${tool}_ops" > "$R/san_$tool.txt" 2>&1; echo "rc=$?"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" "$R/san_$tool.txt" | head -4 | sed "s/^/$tool: /" | tee -a "$R/summ.txt"
  done
fi
echo "== summary t=$((SECONDS - T0))"
cat "$R/summ.txt"
timeout 5 python3 .kbw16/table.py "$R" 128 | head -6
for v in base new; do [ -d "$R/ops_$v" ] && { echo "-- ops $v"; timeout 5 python3 .kbw16/ops.py "$R/ops_$v" | grep bwd | cut -c1-150; }; done
for d in chk4k_ops shortnc_ops san_memcheck_ops; do [ -d "$R/$d" ] && { echo "-- $d"; timeout 5 python3 .kbw16/ops.py "$R/$d" | grep bwd | cut -c1-150; }; done
echo "== done t=$((SECONDS - T0))"
snap
