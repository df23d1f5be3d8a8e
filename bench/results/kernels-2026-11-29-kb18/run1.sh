#!/usr/bin/env bash
# kb18 call 1 (1 GPU): LIMIT=275 timeout 283 bash .kb18/run1.sh   (carry [".kb18"]), from /work/main.
# .kb18/dcp = branch kb18's release binary: programmatic dependent launch (DCP_CUDA_PDL, default 1:
# util.cu's kernels and both sm90 backward kernels launched with programmatic stream serialization,
# each waiting in griddepcontrol.wait first) and the D pass zeroing the launch's dK/dV fills
# (DCP_CUDA_BWD_DD_ZERO, default 1). One binary, the variants by environment:
#   base = PDL 0, DD_ZERO 0 (main's launches);  pdl = PDL 1, DD_ZERO 0;  new = both 1 (the defaults).
# 1. checks of new (CPU f64): selftest 3 (local, dcp), 4096-token causal-blockwise 256:2 (split-K,
#    split sink lists) + lambda; 2. kernel-bench base / pdl / new alternated x3 (blockwise, causal32k,
#    lambda, packed, onework, works1000); 3. op times (blockwise, lambda, causal) of the three; 4. pair
#    documents bf16 and f16-kv1, 150 short documents; 5. memcheck + racecheck (1024-token
#    causal-blockwise + lambda; then the pair documents if time is left).
set -u
OUTD=${OUT:-/tmp/kb18_out}
R=/tmp/kb18c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kb18c1.tgz" -C /tmp kb18c1; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
unset DCP_CUDA_BWD_CONVERT DCP_CUDA_BWD_DQ_PIPE DCP_CUDA_KERNELS DCP_CUDA_BWD_CHAIN DCP_CUDA_BWD_CHAIN_DD DCP_CUDA_BWD_CLUSTER DCP_CUDA_BWD_SMEM DCP_CUDA_FAMILY DCP_CUDA_BWD_ORDER DCP_CUDA_PDL
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
T0=$SECONDS
LIMIT=${LIMIT:-275}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 5 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
cat "$R/card.txt"
B=.kb18/dcp
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
  grep -E "FAIL|panic|rror" "$R/$tag.log" | head -3
  summ "$R/$tag.jsonl" "$tag" | tee -a "$R/summ.txt"
}
chk st env DCP_CUDA_FAMILY=sm90 timeout 30 $B bench-gpu --selftest 3 --planners local,dcp --timeout-s 25
chk chk4k timeout 25 $B bench-gpu --batches "$R/b4k.json" --masks causal-blockwise:256:2,lambda:64:1024 \
  --planners local --head-dim 128 --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --timeout-s 22
snap
venv() { case "$1" in base) echo DCP_CUDA_PDL=0 DCP_CUDA_BWD_DD_ZERO=0;; pdl) echo DCP_CUDA_PDL=1 DCP_CUDA_BWD_DD_ZERO=0;; new) echo DCP_CUDA_PDL=1 DCP_CUDA_BWD_DD_ZERO=1;; esac; }
i=0
for rnd in 1 2 3; do
  for v in base pdl new; do
    i=$((i + 1)); left 125 || continue
    echo "== $v t=$((SECONDS - T0))"
    env $(venv $v) timeout 25 $B kernel-bench --shapes blockwise,causal32k,lambda,packed,onework,works1000 --head-dim 128 \
      --repeats 5 --json "$R/kb_${v}-d128_$i.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic' | sed "s/^/$v /"
  done
done
for v in base pdl new; do
  left 110 || continue
  echo "== ops $v t=$((SECONDS - T0))"
  env $(venv $v) timeout 15 $B bench-gpu --batches "$R/b32k.json" --masks causal-blockwise,lambda,causal --planners local \
    --block-sizes 1024 --head-block 2 --warmup 1 --repeats 3 --op-times "$R/ops_$v" --json "$R/ops_$v.jsonl" > "$R/ops_$v.log" 2>&1; echo "rc=$?"
done
snap
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  left 70 || continue
  echo "== $tool t=$((SECONDS - T0))"
  timeout -k 2 18 "$CS" --tool $tool --print-limit 5 $B bench-gpu \
    --batches "$R/b1k.json" --masks causal-blockwise:128:2,lambda:32:256 --planners local --head-dim 128 --warmup 0 --repeats 1 \
    --timeout-s 15 > "$R/san_$tool.txt" 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" "$R/san_$tool.txt" | head -4 | sed "s/^/$tool: /" | tee -a "$R/summ.txt"
done
left 95 && chk pair timeout 30 $B bench-gpu --batches "$R/pair.json" --head-dim 128 --masks full --planners local --check \
  --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 28
left 80 && chk short timeout 40 $B bench-gpu --batches "$R/short.json" --head-dim 128 --masks full,causal,causal-blockwise:128:2,sliding-window:100 \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 38
left 55 && chk pairf16 timeout 45 $B bench-gpu --batches "$R/pair300.json" --head-dim 128 --dtype f16 --kv-heads 1 --masks full \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 42
snap
for tool in memcheck racecheck; do
  left 24 || continue
  echo "== $tool pair t=$((SECONDS - T0))"
  timeout -k 2 18 "$CS" --tool $tool --print-limit 5 $B bench-gpu --batches "$R/pair.json" --head-dim 128 --masks full \
    --planners local --warmup 0 --repeats 1 --timeout-s 15 > "$R/san_pair_$tool.txt" 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" "$R/san_pair_$tool.txt" | head -4 | sed "s/^/pair $tool: /" | tee -a "$R/summ.txt"
done
echo "== summary t=$((SECONDS - T0))"
cat "$R/summ.txt"
timeout 10 python3 .kb18/ab.py "$R" | tee "$R/ab.txt"
timeout 5 python3 .kb18/ops.py "$R/ops_base" "$R/ops_pdl" "$R/ops_new" 2>&1 | tail -18
echo "== done t=$((SECONDS - T0))"
snap
