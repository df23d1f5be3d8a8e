#!/usr/bin/env bash
# kb21 call 2 (1 GPU): LIMIT=165 timeout 172 bash .kb21/run2.sh   (carry [".kb21"]), from /work/main.
# .kb21/dcp = branch kb21 with DCP_CUDA_BWD_DQ_FIRST (first visits store, others wait; the D pass
# no longer zeroes those works' dQ). Variants: base = defaults (off); f1 = DCP_CUDA_BWD_DQ_FIRST=1
# (need-ordered walks, release at the storing step's end); fd = f1 + BWD_DQF_DEFER=1 (release a step later).
# 1. the model's decisions (DCP_CUDA_BWD_DQ_FIRST_LOG) and the kernel's wait counters (BWD_DQF_STATS) on
#    every shape; 2. checks with f1 vs CPU f64 (4096-token causal-blockwise + lambda, selftest 2, 150 short
#    documents unchained); 3. kernel-bench base / f1 / fd alternated x3; 4. memcheck + racecheck (f1, 1024 tokens).
set -u
OUTD=${OUT:-/tmp/kb21_out}
R=/tmp/kb21c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kb21c2.tgz" -C /tmp kb21c2; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
unset DCP_CUDA_BWD_CONVERT DCP_CUDA_BWD_DQ_PIPE DCP_CUDA_KERNELS DCP_CUDA_BWD_CHAIN DCP_CUDA_BWD_CHAIN_DD DCP_CUDA_BWD_CLUSTER DCP_CUDA_BWD_SMEM DCP_CUDA_FAMILY DCP_CUDA_BWD_ORDER DCP_CUDA_PDL DCP_CUDA_BWD_DD_ZERO DCP_CUDA_COPY_BATCH DCP_CUDA_BWD_DQ_NOZERO_WRONG DCP_CUDA_BWD_DQ_FIRST DCP_CUDA_BWD_DQ_FIRST_DEFS DCP_CUDA_BWD_DQ_FIRST_LOG DCP_CUDA_BWD_CTAS
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
T0=$SECONDS
LIMIT=${LIMIT:-165}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 5 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
cat "$R/card.txt"
B=.kb21/dcp
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
json.dump({'batches': [[4096]]}, open('$R/b4k.json', 'w'))
json.dump({'batches': [[1024]]}, open('$R/b1k.json', 'w'))"
chk() {  # tag cmd...
  local tag=$1; shift
  echo "== $tag t=$((SECONDS - T0))"
  "$@" --json "$R/$tag.jsonl" > "$R/$tag.log" 2>&1; echo "rc=$?"
  grep -E "FAIL|panic|rror" "$R/$tag.log" | head -3
  grep -c "dq first visits" "$R/$tag.log" | sed "s/^/$tag: model lines /"
  summ "$R/$tag.jsonl" "$tag" | tee -a "$R/summ.txt"
}
echo "== model + wait counters (f1, BWD_DQF_STATS) t=$((SECONDS - T0))"
DCP_CUDA_BWD_DQ_FIRST=1 DCP_CUDA_BWD_DQ_FIRST_LOG=1 DCP_CUDA_BWD_DQ_FIRST_DEFS=BWD_DQF_STATS=1 timeout 40 $B kernel-bench \
  --shapes blockwise,lambda,sharedq,onework,causal32k,causal128k,packed --head-dim 128 --repeats 1 --json "$R/stats.jsonl" > "$R/stats.log" 2>&1; echo "rc=$?"
grep -E "dq first visits|dqf stats|^[a-z0-9]+ +fwd|rror|panic" "$R/stats.log" | awk '!seen[$0]++' | head -40
snap
export DCP_CUDA_BWD_DQ_FIRST=1 DCP_CUDA_BWD_DQ_FIRST_LOG=1
chk chk4k timeout 25 $B bench-gpu --batches "$R/b4k.json" --masks causal-blockwise:256:2,lambda:64:1024 \
  --planners local --head-dim 128 --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --timeout-s 23
chk st env DCP_CUDA_FAMILY=sm90 timeout 30 $B bench-gpu --selftest 2 --planners local,dcp --timeout-s 27
left 120 && chk shortu env DCP_CUDA_BWD_CHAIN=0 timeout 20 $B bench-gpu --batches "$R/short.json" --head-dim 128 --masks full,causal-blockwise:128:2 \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 18
unset DCP_CUDA_BWD_DQ_FIRST DCP_CUDA_BWD_DQ_FIRST_LOG
snap
venv() { case "$1" in base) echo DCP_CUDA_BWD_DQ_FIRST=0;; f1) echo DCP_CUDA_BWD_DQ_FIRST=1;; fd) echo DCP_CUDA_BWD_DQ_FIRST=1 DCP_CUDA_BWD_DQ_FIRST_DEFS=BWD_DQF_DEFER=1;; esac; }
i=0
for rnd in 1 2 3; do
  for v in base f1 fd; do
    i=$((i + 1)); left 40 || continue
    echo "== $v t=$((SECONDS - T0))"
    env $(venv $v) timeout 16 $B kernel-bench --shapes blockwise,lambda,sharedq,onework,causal32k,causal128k,packed --head-dim 128 \
      --repeats 3 --json "$R/kb_${v}-d128_$i.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic' | sed "s/^/$v /"
  done
done
snap
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  left 22 || continue
  echo "== $tool t=$((SECONDS - T0))"
  DCP_CUDA_BWD_DQ_FIRST=1 DCP_CUDA_BWD_DQ_FIRST_LOG=1 timeout -k 2 16 "$CS" --tool $tool --print-limit 5 $B bench-gpu \
    --batches "$R/b1k.json" --masks causal-blockwise:128:2,lambda:32:256 --planners local --head-dim 128 --warmup 0 --repeats 1 \
    --timeout-s 13 > "$R/san_$tool.txt" 2>&1; echo "rc=$?"
  grep -c "dq first visits" "$R/san_$tool.txt" | sed "s/^/$tool: model lines /"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" "$R/san_$tool.txt" | head -4 | sed "s/^/$tool: /" | tee -a "$R/summ.txt"
done
snap
echo "== summary t=$((SECONDS - T0))"
cat "$R/summ.txt"
timeout 10 python3 .kb21/ab.py "$R" | tee "$R/ab.txt"
echo "== done t=$((SECONDS - T0))"
snap
