#!/usr/bin/env bash
# kb17 call 3 (1x H200): LIMIT=75 timeout 80 bash .kb17/run3.sh   (carry [".kb17"]), from /work/main.
# .kb17/dcp = branch kb17's release binary at the commit of call 3 (`new4`, built-in kernels: call 2's
# plain kernel + BWD_RED32, the fp32 dK/dV reductions of split tasks as straight-line code, and the
# b90_seg_ptr cleanup; the cluster kernel = call 2's `cl`); kernel directories (DCP_CUDA_KERNELS):
#   base : main 9f1d8d9's kernels;   new : call 1-2's kernels (commit da76aba)
# 1. checks of new4 (CPU f64): selftest 4 (local, dcp), 4096-token causal-blockwise (split sink
#    lists: the fp32 path) + lambda; memcheck + racecheck (1024-token causal-blockwise + lambda).
# 2. kernel-bench base / new / new4 alternated x3 on blockwise, causal32k, lambda, packed, onework.
set -u
OUTD=${OUT:-/tmp/kb17_out}
R=/tmp/kb17c3; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kb17c3.tgz" -C /tmp kb17c3; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
unset DCP_CUDA_BWD_CONVERT DCP_CUDA_BWD_DQ_PIPE DCP_CUDA_KERNELS DCP_CUDA_BWD_CHAIN DCP_CUDA_BWD_CHAIN_DD DCP_CUDA_BWD_CLUSTER DCP_CUDA_BWD_SMEM DCP_CUDA_FAMILY DCP_CUDA_BWD_ORDER
T0=$SECONDS
LIMIT=${LIMIT:-75}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 5 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
B=.kb17/dcp
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
json.dump({'batches': [[P[(3 * i) % len(P)] for i in range(300)]]}, open('$R/pair300.json', 'w'))
json.dump({'batches': [[4096]]}, open('$R/b4k.json', 'w'))
json.dump({'batches': [[1024]]}, open('$R/b1k.json', 'w'))
json.dump({'batches': [[32768]]}, open('$R/b32k.json', 'w'))"
chk() {  # tag cmd...
  local tag=$1; shift
  echo "== $tag t=$((SECONDS - T0))"
  "$@" --json "$R/$tag.jsonl" > "$R/$tag.log" 2>&1; echo "rc=$?"
  summ "$R/$tag.jsonl" "$tag" | tee -a "$R/summ.txt"
}
chk st env DCP_CUDA_FAMILY=sm90 timeout 30 $B bench-gpu --selftest 4 --planners local,dcp --timeout-s 25
chk chk4k timeout 20 $B bench-gpu --batches "$R/b4k.json" --masks causal-blockwise:256:2,lambda:64:1024 \
  --planners local --head-dim 128 --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --timeout-s 18 --op-times "$R/chk4k_ops"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  left 45 || continue
  echo "== $tool t=$((SECONDS - T0))"
  timeout -k 2 15 "$CS" --tool $tool --print-limit 5 $B bench-gpu \
    --batches "$R/b1k.json" --masks causal-blockwise:128:2,lambda:32:256 --planners local --head-dim 128 --warmup 0 --repeats 1 \
    --timeout-s 12 --op-times "$R/san_${tool}_ops" > "$R/san_$tool.txt" 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" "$R/san_$tool.txt" | head -4 | sed "s/^/$tool: /" | tee -a "$R/summ.txt"
done
snap
venv() { case "$1" in new4) echo;; *) echo DCP_CUDA_KERNELS=.kb17/$1;; esac; }
i=0
for rnd in 1 2 3; do
  for v in base new new4; do
    i=$((i + 1)); left 5 || continue
    echo "== $v t=$((SECONDS - T0))"
    env $(venv $v) timeout 15 $B kernel-bench --shapes blockwise,causal32k,lambda,packed,onework --head-dim 128 --repeats 3 \
      --json "$R/kb_${v}-d128_$i.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic' | sed "s/^/$v /"
  done
done
echo "== summary t=$((SECONDS - T0))"
cat "$R/summ.txt"
timeout 5 python3 bench/results/kernels-2026-11-29-kbb14/table.py "$R" 128 | head -6
echo "== done t=$((SECONDS - T0))"
snap
