#!/usr/bin/env bash
# kb13 call 3 (1x H200): LIMIT=175 timeout 185 bash .kb13/run3.sh   (carry [".kb13"]), from /work/main.
# Binary: .kb13/dcp_new = branch kb13 with the new defaults (BWD_CHAIN_ST16 1, D pre-pass 3 CTAs per SM).
#   new  : no variable
#   u8   : DCP_CUDA_BWD_DD_UNROLL=8 (D pre-pass with 8 pairs per lane slot in flight, 2 CTAs per SM; opt-in)
#   base : DCP_CUDA_BWD_CHAIN_DEFS=BWD_CHAIN_ST16=0 DCP_CUDA_BWD_DD_CTAS=16 (main 7e0e84f's behaviour:
#          its chain kernel and main kernel SASS-identical, its D pre-pass grid)
# 1. selftest 4 (local, zigzag, dcp; CPU f64) new and u8, 150 short documents full + causal vs CPU f64 (chains).
# 2. compute-sanitizer memcheck and racecheck, 150 short documents, causal (chains, the 16-byte path).
# 3. kernel-bench alternated base new u8 base new u8 base new (6 shapes); op times works1000 / blockwise new, u8.
set -u
OUTD=${OUT:-/tmp/kb13_out}
R=/tmp/kb13c3; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kb13c3.tgz" -C /tmp kb13c3; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
unset DCP_CUDA_BWD_CHAIN DCP_CUDA_BWD_CHAIN_DD DCP_CUDA_BWD_CHAIN_DEFS DCP_CUDA_BWD_DD_CTAS
T0=$SECONDS
LIMIT=${LIMIT:-175}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
B=.kb13/dcp_new
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
    base) echo DCP_CUDA_BWD_CHAIN_DEFS=BWD_CHAIN_ST16=0 DCP_CUDA_BWD_DD_CTAS=16;;
    u8) echo DCP_CUDA_BWD_DD_UNROLL=8;;
    *) echo KB13_NEW=1;;
  esac
}
timeout 10 python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[256] * 1000]}, open('$R/w1000.json', 'w'))
json.dump({'batches': [[32768]]}, open('$R/b32k.json', 'w'))"
for v in new u8; do
  echo "== selftest $v t=$((SECONDS - T0))"
  env $(venv $v) DCP_CUDA_FAMILY=sm90 timeout 40 $B bench-gpu --selftest 4 --planners local,zigzag,dcp \
    --timeout-s 35 --json "$R/st_$v.jsonl" > "$R/st_$v.log" 2>&1; echo "rc=$?"
  summ "$R/st_$v.jsonl" "selftest $v" | tee -a "$R/summ.txt"
done
echo "== short documents vs CPU f64 new t=$((SECONDS - T0))"
timeout 35 $B bench-gpu --batches "$R/short.json" --head-dim 128 --masks full,causal \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --op-times "$R/chkops_new" --json "$R/short_new.jsonl" > "$R/short_new.log" 2>&1; echo "rc=$?"
summ "$R/short_new.jsonl" "short documents new" | tee -a "$R/summ.txt"
snap
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "$CS" ]; then
  echo "== memcheck new t=$((SECONDS - T0))"
  timeout -k 3 35 "$CS" --tool memcheck --print-limit 5 $B bench-gpu \
    --batches "$R/short.json" --head-dim 128 --masks causal --planners local --warmup 0 --repeats 1 --timeout-s 60 \
    --op-times "$R/mc_ops" > "$R/san_memcheck.txt" 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|Invalid|FAIL" "$R/san_memcheck.txt" | head -4 | sed 's/^/memcheck: /' | tee -a "$R/summ.txt"
  snap
  echo "== racecheck new t=$((SECONDS - T0))"
  timeout -k 3 35 "$CS" --tool racecheck --print-limit 5 $B bench-gpu \
    --batches "$R/short.json" --head-dim 128 --masks causal --planners local --warmup 0 --repeats 1 --timeout-s 60 \
    > "$R/san_racecheck.txt" 2>&1; echo "rc=$?"
  grep -E "RACECHECK SUMMARY|hazard|FAIL" "$R/san_racecheck.txt" | head -4 | sed 's/^/racecheck: /' | tee -a "$R/summ.txt"
fi
snap
kb() {
  local n=$1 sh=$2 tag=$3
  echo "== $n $sh t=$((SECONDS - T0))"
  env $(venv $n) timeout 30 $B kernel-bench --shapes "$sh" --head-dim 128 --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
i=0
for v in base new u8 base new u8 base new; do
  i=$((i + 1)); if left 12; then kb $v works1000,blockwise,causal32k,lambda,packed,onework "${v}-d128_$i"; fi
done
snap
for v in new u8; do
  if ! left 10; then continue; fi
  echo "== op times $v t=$((SECONDS - T0))"
  env $(venv $v) timeout 10 $B bench-gpu --batches "$R/w1000.json" --masks full --planners local --warmup 1 --repeats 3 \
    --op-times "$R/ops_w_$v" --json "$R/ops_w_$v.jsonl" > "$R/ops_w_$v.log" 2>&1; echo "rc=$?"
  env $(venv $v) timeout 10 $B bench-gpu --batches "$R/b32k.json" --masks causal-blockwise --planners local --block-sizes 1024 \
    --head-block 2 --warmup 1 --repeats 3 --op-times "$R/ops_b_$v" --json "$R/ops_b_$v.jsonl" > "$R/ops_b_$v.log" 2>&1; echo "rc=$?"
done
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
