#!/usr/bin/env bash
# kf12b call 1 (1x H200): LIMIT=205 timeout 215 bash .kf12b/run1.sh   (carry [".kf12b"]).
# Binary .kf12b/dcp = main c3794e6 (release). Kernel dirs (DCP_CUDA_KERNELS, host default):
# ep = FWD_EPOV at D 128 (the next task's first S issued in the epilogue, under the stmatrix /
# tensor store / read wait), in the plain and the half-tile kernel; ept = ep + FWD_EPOV_TRY 1
# (only when the next task's Q and first stage have already landed).
set -u
B=${B:-.kf12b/dcp}; KD=${KD:-.kf12b}; OUTD=${OUT:-/tmp/kf12b_out}
LIMIT=${LIMIT:-205}
R=/tmp/kf12bc1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kf12bc1.tgz" -C /tmp kf12bc1; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
T0=$SECONDS
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
print('%s: %d/%d pass, worst o %.1e lse %.1e dq %.1e dkv %.1e%s' % (sys.argv[2], sum(1 for x in c if x.get('pass')), len(r), w('o'), w('lse'), w('dq'), w('dkv'), '' if ok else ' FAIL'))
PY
}
run_v() {
  local v=$1; shift
  case $v in
    base) env "$@" ;;
    ep|ept) env DCP_CUDA_KERNELS="$KD/$v" "$@" ;;
    *) echo "unknown variant $v"; return 1 ;;
  esac
}
BAD=""
for v in ep ept; do
  echo "== selftest $v t=$((SECONDS - T0))"
  run_v $v timeout 30 "$B" bench-gpu --selftest 3 --planners local,zigzag,dcp --timeout-s 25 --json "$R/st_$v.jsonl" > "$R/st_$v.log" 2>&1; echo "rc=$?"
  summ "$R/st_$v.jsonl" "selftest $v" | tee -a "$R/summ.txt"; tail -1 "$R/summ.txt" | grep -q FAIL && BAD="$BAD $v"
done
snap
SH=causal32k,sharedq,lambda,blockwise,works1000,onework,packed
kb() {
  local v=$1 d=$2 tag=$3
  case " $BAD " in *" $v "*) echo "== skip $v (failed)"; return;; esac
  echo "== $v d$d $tag t=$((SECONDS - T0))"
  run_v "$v" timeout 40 "$B" kernel-bench --shapes "$SH" --head-dim "$d" --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
i=0
for v in base ep ept base ept ep base ep ept base; do i=$((i + 1)); if left 85; then kb $v 128 "${v}-d128_$i"; fi; done
snap
echo '{"batches": [[4096]]}' > "$R/splitk.json"
python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[L[i % len(L)] for i in range(45)]]}, open('$R/short45.json', 'w'))"
for v in ep ept; do
  left 45 || break
  echo "== split-K $v t=$((SECONDS - T0))"
  run_v $v timeout 30 "$B" bench-gpu --batches "$R/splitk.json" --masks causal,full,causal-blockwise --planners local --head-dim 128 \
    --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --json "$R/splitk_$v.jsonl" > "$R/splitk_$v.log" 2>&1; echo "rc=$?"
  summ "$R/splitk_$v.jsonl" "split-K $v vs CPU f64" | tee -a "$R/summ.txt"
  echo "== short documents $v t=$((SECONDS - T0))"
  run_v $v timeout 30 "$B" bench-gpu --batches "$R/short.json" --head-dim 128 --masks full,causal,causal-blockwise:128:2,sliding-window:100 \
    --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --json "$R/short_$v.jsonl" > "$R/short_$v.log" 2>&1; echo "rc=$?"
  summ "$R/short_$v.jsonl" "short documents $v vs CPU f64" | tee -a "$R/summ.txt"
done
snap
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
san() {
  local v=$1 tool=$2 tag=$3; shift 3
  if [ -n "$CS" ] && left 22; then
    echo "== $tool $v $tag t=$((SECONDS - T0))"
    run_v $v DCP_CUDA_FAMILY=sm90 timeout -k 3 20 "$CS" --tool $tool --print-limit 5 "$B" "$@" > "$R/san_${tool}_${v}_$tag.txt" 2>&1; echo "rc=$?"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" "$R/san_${tool}_${v}_$tag.txt" | head -4 | sed "s/^/$tool $v $tag: /" | tee -a "$R/summ.txt"
  fi
}
# 45 short documents at D 128: ~700 tasks over <= 132 CTAs, so tasks follow tasks (the prefetch path);
# causal: the half kernel, full: the plain kernel (its partial last tiles).
san ep racecheck short45c bench-gpu --batches "$R/short45.json" --head-dim 128 --masks causal --planners local --warmup 0 --repeats 1 --timeout-s 18
san ep memcheck short45 bench-gpu --batches "$R/short45.json" --head-dim 128 --masks full,causal --planners local --warmup 0 --repeats 1 --timeout-s 18
san ep racecheck short45f bench-gpu --batches "$R/short45.json" --head-dim 128 --masks full --planners local --warmup 0 --repeats 1 --timeout-s 18
snap
echo '{"batches": [[32768]]}' > "$R/b32k.json"
for v in base ep; do
  left 12 || break
  echo "== op times $v t=$((SECONDS - T0))"
  run_v $v DCP_CUDA_OP_TIMES=1 timeout 11 "$B" bench-gpu --batches "$R/b32k.json" --masks causal-blockwise \
    --planners local --block-sizes 1024 --head-block 2 --warmup 1 --repeats 3 --op-times "$R/ops_$v" \
    --json "$R/ops_$v.jsonl" > "$R/ops_$v.log" 2>&1; echo "rc=$?"
  timeout 10 python3 bench/gpu/op_times.py "$R/ops_$v" --top 4 > "$R/ops_$v.txt" 2>&1; cat "$R/ops_$v.txt"
done
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
