#!/usr/bin/env bash
# kb13 call 1 (1x H200): LIMIT=200 timeout 215 bash .kb13/run1.sh   (carry [".kb13"]), from /work/main.
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
R=/tmp/kb13c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kb13c1.tgz" -C /tmp kb13c1; }
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
declare -A OK; OK[base]=1; OK[dd3]=1
timeout 10 python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[256] * 300]}, open('$R/s300.json', 'w'))
json.dump({'batches': [[256] * 1000]}, open('$R/w1000.json', 'w'))
json.dump({'batches': [[32768]]}, open('$R/b32k.json', 'w'))
json.dump({'batches': [[4096]]}, open('$R/b4k.json', 'w'))"
for v in st16 l2 both; do
  echo "== short documents vs CPU f64 $v t=$((SECONDS - T0))"
  env $(venv $v) timeout 40 $B bench-gpu --batches "$R/short.json" --head-dim 128 --masks full,causal,causal-blockwise:128:2,sliding-window:100 \
    --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --op-times "$R/chkops_$v" --json "$R/short_$v.jsonl" > "$R/short_$v.log" 2>&1; echo "rc=$?"
  summ "$R/short_$v.jsonl" "short documents $v" | tee -a "$R/summ.txt"
  if ! tail -1 "$R/summ.txt" | grep -q FAIL; then OK[$v]=1; fi
done
snap
echo "== f16 kv1 300x256 vs CPU f64 both t=$((SECONDS - T0))"
env $(venv both) timeout 30 $B bench-gpu --batches "$R/s300.json" --head-dim 128 --dtype f16 --kv-heads 1 --masks full,causal \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --json "$R/f16_both.jsonl" > "$R/f16_both.log" 2>&1; echo "rc=$?"
summ "$R/f16_both.jsonl" "f16 kv1 both" | tee -a "$R/summ.txt"
tail -1 "$R/summ.txt" | grep -q FAIL && unset 'OK[both]'
echo "== selftest all t=$((SECONDS - T0))"
env $(venv all) DCP_CUDA_FAMILY=sm90 timeout 45 $B bench-gpu --selftest 4 --planners local,zigzag,dcp \
  --timeout-s 40 --json "$R/st_all.jsonl" > "$R/st_all.log" 2>&1; echo "rc=$?"
summ "$R/st_all.jsonl" "selftest all (dd3 + both)" | tee -a "$R/summ.txt"
echo "== check 4096 vs CPU f64 all t=$((SECONDS - T0))"
env $(venv all) timeout 40 $B bench-gpu --batches "$R/b4k.json" --masks causal,causal-blockwise:256:2,lambda:64:1024,full --planners local \
  --head-dim 128 --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --json "$R/chk_all.jsonl" > "$R/chk_all.log" 2>&1; echo "rc=$?"
summ "$R/chk_all.jsonl" "check 4096 all" | tee -a "$R/summ.txt"
if [ -n "${OK[both]:-}" ] && ! grep -q "all.*FAIL" "$R/summ.txt"; then OK[all]=1; else unset 'OK[dd3]'; fi
snap
for v in base all; do
  if [ -z "${OK[$v]:-}" ] || ! left 150; then continue; fi
  echo "== op times $v t=$((SECONDS - T0))"
  env $(venv $v) timeout 25 $B bench-gpu --batches "$R/w1000.json" --masks full --planners local --warmup 1 --repeats 3 \
    --op-times "$R/ops_w_$v" --json "$R/ops_w_$v.jsonl" > "$R/ops_w_$v.log" 2>&1; echo "rc=$?"
  env $(venv $v) timeout 25 $B bench-gpu --batches "$R/b32k.json" --masks causal-blockwise --planners local --block-sizes 1024 \
    --head-block 2 --warmup 1 --repeats 3 --op-times "$R/ops_b_$v" --json "$R/ops_b_$v.jsonl" > "$R/ops_b_$v.log" 2>&1; echo "rc=$?"
done
snap
kb() {
  local n=$1 sh=$2 tag=$3
  if [ -z "${OK[$n]:-}" ]; then echo "== skip $n (check)"; return; fi
  echo "== $n $sh t=$((SECONDS - T0))"
  env $(venv $n) timeout 40 $B kernel-bench --shapes "$sh" --head-dim 128 --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
i=0
for v in base st16 l2 both all base st16 l2 both all; do
  i=$((i + 1)); if left 60; then kb $v works1000 "${v}-d128_$i"; fi
done
snap
for v in base all base all base all; do
  i=$((i + 1)); if left 12; then kb $v blockwise,causal32k,lambda,packed,onework "${v}-d128_$i"; fi
done
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
