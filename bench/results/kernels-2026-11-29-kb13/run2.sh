#!/usr/bin/env bash
# kb13 call 2 (timing only; correctness in call 1) (1x H200): LIMIT=200 timeout 215 bash .kb13/run1.sh   (carry [".kb13"]), from /work/main.
# Binary: .kb13/dcp_kb = branch kb13 (kernel switches off by default = main's kernels; variants by env):
#   base  : no variable (chain kernel SASS = main's)
#   st16  : DCP_CUDA_BWD_CHAIN_DEFS=BWD_CHAIN_ST16=1   (last-visit dQ by 16-byte stores)
#   l2    : DCP_CUDA_BWD_CHAIN_DEFS=BWD_CHAIN_L2=1     (evict_last partials + discard, evict_first)
#   both  : both switches
#   dd3   : DCP_CUDA_BWD_DD_CTAS=3                     (D pre-pass in one wave of 3 CTAs per SM)
#   all   : both + dd3
# 1. correctness vs CPU f64: 150 short documents (chains) for st16 / l2 / both; f16 kv1 300x256 both;
#    selftest 4 (local, zigzag, dcp) + 4096-token check with all.  2. op times works1000 + blockwise base / all.
# 3. kernel-bench works1000 alternated base st16 l2 both dd3 all (x2); 4. other shapes base / all alternated.
set -u
OUTD=${OUT:-/tmp/kb13_out}
R=/tmp/kb13c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kb13c2.tgz" -C /tmp kb13c2; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
unset DCP_CUDA_BWD_CHAIN DCP_CUDA_BWD_CHAIN_DD DCP_CUDA_BWD_CHAIN_DEFS DCP_CUDA_BWD_DD_CTAS
T0=$SECONDS
LIMIT=${LIMIT:-200}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
B=.kb13/dcp_kb
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
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
venv() {
  case "$1" in
    st16) echo DCP_CUDA_BWD_CHAIN_DEFS=BWD_CHAIN_ST16=1;;
    l2) echo DCP_CUDA_BWD_CHAIN_DEFS=BWD_CHAIN_L2=1;;
    both) echo DCP_CUDA_BWD_CHAIN_DEFS=BWD_CHAIN_ST16=1,BWD_CHAIN_L2=1;;
    dd3) echo DCP_CUDA_BWD_DD_CTAS=3;;
    all) echo DCP_CUDA_BWD_CHAIN_DEFS=BWD_CHAIN_ST16=1,BWD_CHAIN_L2=1 DCP_CUDA_BWD_DD_CTAS=3;;
    *) echo KB13_BASE=1;;
  esac
}
declare -A OK; OK[base]=1; OK[dd3]=1; OK[st16]=1; OK[l2]=1; OK[both]=1; OK[all]=1
timeout 10 python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[256] * 300]}, open('$R/s300.json', 'w'))
json.dump({'batches': [[256] * 1000]}, open('$R/w1000.json', 'w'))
json.dump({'batches': [[32768]]}, open('$R/b32k.json', 'w'))
json.dump({'batches': [[4096]]}, open('$R/b4k.json', 'w'))"
kb() {
  local n=$1 sh=$2 tag=$3
  echo "== $n $sh t=$((SECONDS - T0))"
  env $(venv $n) timeout 30 $B kernel-bench --shapes "$sh" --head-dim 128 --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
i=0
for v in base st16 l2 both all base st16 l2 both all; do
  i=$((i + 1)); if left 40; then kb $v works1000 "${v}-d128_$i"; fi
done
snap
for v in base all; do
  if ! left 25; then continue; fi
  echo "== op times $v t=$((SECONDS - T0))"
  env $(venv $v) timeout 20 $B bench-gpu --batches "$R/w1000.json" --masks full --planners local --warmup 1 --repeats 3 \
    --op-times "$R/ops_w_$v" --json "$R/ops_w_$v.jsonl" > "$R/ops_w_$v.log" 2>&1; echo "rc=$?"
  env $(venv $v) timeout 20 $B bench-gpu --batches "$R/b32k.json" --masks causal-blockwise --planners local --block-sizes 1024 \
    --head-block 2 --warmup 1 --repeats 3 --op-times "$R/ops_b_$v" --json "$R/ops_b_$v.jsonl" > "$R/ops_b_$v.log" 2>&1; echo "rc=$?"
done
snap
for v in dd3 base dd3; do
  i=$((i + 1)); if left 8; then kb $v blockwise,works1000 "${v}-d128_$i"; fi
done
echo "== done t=$((SECONDS - T0))"
snap
