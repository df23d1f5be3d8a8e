#!/usr/bin/env bash
# kbw11b call 2 (1x H200):  bash .kbw11b/run2.sh   (carry [".kbw11b"]). Binary .kbw11b/dcp = branch kbw11b
# with DCP_CUDA_BWD_ORDER list (base: main's task order) / even (split lists in the model-chosen piece size).
# 1. correctness of even: selftest 4 (local, zigzag, dcp; CPU f64), bench-gpu --check of a 4096-token causal /
#    causal-blockwise / lambda sequence vs CPU f64 (D 128). 2. op times of even (32K blockwise).
# 3. kernel-bench alternated D 128 (base even base even base), D 64 (base even base even).
# 4. compute-sanitizer memcheck of a small selftest with even (if time is left).
set -u
B=${B:-.kbw11b/dcp}; OUTD=${OUT:-/tmp/kbw11b_out}
R=/tmp/kbw11b2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kbw11b2.tgz" -C /tmp kbw11b2; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
T0=$SECONDS
LIMIT=${LIMIT:-88}
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
oenv() { case "$1" in base) echo DCP_CUDA_BWD_ORDER=list;; even) echo DCP_CUDA_BWD_ORDER=even;; esac; }
declare -A OK; OK[base]=1
echo '{"batches": [[4096]]}' > "$R/b4k.json"
echo "== selftest even t=$((SECONDS - T0))"
env "$(oenv even)" DCP_CUDA_FAMILY=sm90 timeout 40 "$B" bench-gpu --selftest 4 --planners local,zigzag,dcp \
  --timeout-s 35 --json "$R/st_even.jsonl" > "$R/st_even.log" 2>&1; echo "rc=$?"
summ "$R/st_even.jsonl" "selftest even" | tee -a "$R/summ.txt"
echo "== check 4096 vs CPU f64 even t=$((SECONDS - T0))"
env "$(oenv even)" timeout 40 "$B" bench-gpu --batches "$R/b4k.json" --masks causal,causal-blockwise:256:2,lambda:64:1024 --planners local \
  --head-dim 128 --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --json "$R/chk_even.jsonl" > "$R/chk_even.log" 2>&1; echo "rc=$?"
summ "$R/chk_even.jsonl" "check 4096 even" | tee -a "$R/summ.txt"
if ! grep -q FAIL "$R/summ.txt" && [ -s "$R/st_even.jsonl" ] && [ -s "$R/chk_even.jsonl" ]; then OK[even]=1; fi
snap
echo '{"batches": [[32768]]}' > "$R/b32k.json"
if [ -n "${OK[even]:-}" ]; then
  echo "== op times even t=$((SECONDS - T0))"
  env "$(oenv even)" DCP_CUDA_OP_TIMES=1 timeout 30 "$B" bench-gpu --batches "$R/b32k.json" --masks causal-blockwise \
    --planners local --block-sizes 1024 --head-block 2 --warmup 1 --repeats 3 --op-times "$R/ops_even" \
    --json "$R/ops_even.jsonl" > "$R/ops_even.log" 2>&1; echo "rc=$?"
  timeout 10 python3 bench/gpu/op_times.py "$R/ops_even" --top 6 2>&1 | tail -1
fi
SH=blockwise,causal32k,lambda,sharedq,packed,works1000,onework
kb() {
  local n=$1 d=$2 tag=$3
  if [ -z "${OK[$n]:-}" ]; then echo "== skip $n (check)"; return; fi
  echo "== $n d$d t=$((SECONDS - T0))"
  env "$(oenv $n)" timeout 30 "$B" kernel-bench --shapes "$SH" --head-dim "$d" --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
i=0
for v in base even base even base; do i=$((i + 1)); if left 30; then kb $v 128 "${v}-d128_$i"; fi; done
snap
for v in base even base even; do i=$((i + 1)); if left 22; then kb $v 64 "${v}-d64_$i"; fi; done
snap
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "${OK[even]:-}" ] && [ -n "$CS" ] && left 18; then
  echo "== memcheck even t=$((SECONDS - T0))"
  env "$(oenv even)" DCP_CUDA_FAMILY=sm90 timeout -k 3 $((LIMIT - (SECONDS - T0) - 3)) "$CS" --tool memcheck --print-limit 5 "$B" bench-gpu \
    --selftest 1 --planners local --timeout-s 60 > "$R/san_memcheck.txt" 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|Invalid|FAIL|pass" "$R/san_memcheck.txt" | head -4 | tee -a "$R/summ.txt"
fi
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
