#!/usr/bin/env bash
# kb12 call 2 (1x H200):  LIMIT=135 timeout 145 bash .kb12/run2.sh   (carry [".kb12"]).
# Binary .kb12/dcp_kb (branch kb12 1739629; its embedded kernel = the B16V4 0 build, SASS-identical):
#   base = DCP_CUDA_BWD_OWN=1 (main's owned rows), split = DCP_CUDA_BWD_OWN=split,
#   v4 = split + DCP_CUDA_KERNELS=.kb12/kv4 (BWD_EPI_B16V4 1: 16-byte dK/dV stores into 16-bit destinations),
#   splitnc = split + DCP_CUDA_BWD_CONVERT=0 (diagnostic: fp32 stores into scratch, whole dKV copy kept, fill shrunk).
# 1. correctness of v4 (selftest 4, 4096-token check, 150 short documents vs CPU f64; memcheck of the check).
# 2. op times base / split / v4 / splitnc: 32K causal-blockwise, packed (120 causal documents). 3. kernel-bench D 128 alternated.
set -u
OUTD=${OUT:-/tmp/kb12_out}
R=/tmp/kb12c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kb12c2.tgz" -C /tmp kb12c2; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
T0=$SECONDS
LIMIT=${LIMIT:-135}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
summ() {
  timeout 10 python3 - "$1" "$2" <<'PY'
import json, sys
try:
    r = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
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
    base) echo "DCP_CUDA_BWD_OWN=1";;
    split) echo "DCP_CUDA_BWD_OWN=split";;
    v4) echo "DCP_CUDA_BWD_OWN=split DCP_CUDA_KERNELS=.kb12/kv4";;
    splitnc) echo "DCP_CUDA_BWD_OWN=split DCP_CUDA_BWD_CONVERT=0";;
  esac
}
declare -A OK; OK[base]=1; OK[split]=1; OK[splitnc]=1
echo '{"batches": [[4096]]}' > "$R/b4k.json"
timeout 10 python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))"
echo "== selftest v4 t=$((SECONDS - T0))"
env $(venv v4) DCP_CUDA_FAMILY=sm90 timeout 45 .kb12/dcp_kb bench-gpu --selftest 4 --planners local,zigzag,dcp \
  --timeout-s 40 --json "$R/st_v4.jsonl" > "$R/st_v4.log" 2>&1; echo "rc=$?"
summ "$R/st_v4.jsonl" "selftest v4" | tee -a "$R/summ.txt"
echo "== check 4096 + short documents vs CPU f64 v4 t=$((SECONDS - T0))"
env $(venv v4) timeout 40 .kb12/dcp_kb bench-gpu --batches "$R/b4k.json" --masks causal,causal-blockwise:256:2,lambda:64:1024,full --planners local \
  --head-dim 128 --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --json "$R/chk_v4.jsonl" > "$R/chk_v4.log" 2>&1; echo "rc=$?"
env $(venv v4) timeout 40 .kb12/dcp_kb bench-gpu --batches "$R/short.json" --head-dim 128 --masks full,causal,causal-blockwise:128:2,sliding-window:100 \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --json "$R/short_v4.jsonl" > "$R/short_v4.log" 2>&1; echo "rc=$?"
summ "$R/chk_v4.jsonl" "check 4096 v4" | tee -a "$R/summ.txt"
summ "$R/short_v4.jsonl" "short documents v4" | tee -a "$R/summ.txt"
if ! grep -q FAIL "$R/summ.txt" && [ -s "$R/st_v4.jsonl" ] && [ -s "$R/chk_v4.jsonl" ] && [ -s "$R/short_v4.jsonl" ]; then OK[v4]=1; fi
snap
echo '{"batches": [[32768]]}' > "$R/b32k.json"
for v in base split v4 splitnc; do
  if [ -z "${OK[$v]:-}" ] || ! left 60; then continue; fi
  echo "== op times $v t=$((SECONDS - T0))"
  env $(venv $v) DCP_CUDA_OP_TIMES=1 timeout 25 .kb12/dcp_kb bench-gpu --batches "$R/b32k.json" --masks causal-blockwise \
    --planners local --block-sizes 1024 --warmup 1 --repeats 3 --op-times "$R/ops_$v" \
    --json "$R/ops_$v.jsonl" > "$R/ops_$v.log" 2>&1; echo "rc=$?"
  env $(venv $v) DCP_CUDA_OP_TIMES=1 timeout 25 .kb12/dcp_kb bench-gpu --batches .kb12/packed.json --masks causal \
    --planners local --block-sizes 1024 --warmup 1 --repeats 2 --op-times "$R/opsp_$v" \
    --json "$R/opsp_$v.jsonl" > "$R/opsp_$v.log" 2>&1; echo "rc=$?"
done
snap
SH=blockwise,causal32k,lambda,sharedq,packed,works1000,onework
kb() {
  local n=$1 d=$2 tag=$3
  if [ -z "${OK[$n]:-}" ]; then echo "== skip $n (check)"; return; fi
  echo "== $n d$d t=$((SECONDS - T0))"
  env $(venv $n) timeout 30 .kb12/dcp_kb kernel-bench --shapes "$SH" --head-dim "$d" --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
i=0
for v in base v4 split splitnc base v4 split base v4; do i=$((i + 1)); if left 22; then kb $v 128 "${v}-d128_$i"; fi; done
snap
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "${OK[v4]:-}" ] && [ -n "$CS" ] && left 12; then
  echo "== memcheck v4 t=$((SECONDS - T0))"
  env $(venv v4) timeout -k 3 $((LIMIT - (SECONDS - T0) - 3)) "$CS" --tool memcheck --print-limit 5 .kb12/dcp_kb bench-gpu \
    --batches "$R/b4k.json" --masks causal-blockwise:256:2,full --planners local --head-dim 128 --check --cpu-check-tokens 5000 \
    --warmup 0 --repeats 1 --timeout-s 60 > "$R/san_memcheck.txt" 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|Invalid" "$R/san_memcheck.txt" | head -4 | tee -a "$R/summ.txt"
fi
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
