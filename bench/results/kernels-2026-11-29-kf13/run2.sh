#!/usr/bin/env bash
# kf13 call 2 (1x H200): LIMIT=170 timeout 180 bash .kf13/run2.sh   (carry [".kf13"]).
# Binary .kf13/dcp = branch kf13 with the short-task forward kernel (DCP_CUDA_FWD_SHORT: launches
# without half tiles whose tasks average <= 3 tiles run FWD_LATEREL 1; default on at D 128) and
# the A/B knob DCP_CUDA_FWD_SPLIT_PER_SM (split-K pieces aim at total / (N SMs) tiles, default 4).
# Variants (same binary): base = DCP_CUDA_FWD_SHORT=0 (main's kernels and choices), short = default,
# sp2 = default + DCP_CUDA_FWD_SPLIT_PER_SM=2.
set -u
B=${B:-.kf13/dcp}; OUTD=${OUT:-/tmp/kf13_out}
LIMIT=${LIMIT:-170}
R=/tmp/kf13c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kf13c2.tgz" -C /tmp kf13c2; }
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
    base) env DCP_CUDA_FWD_SHORT=0 "$@" ;;
    short) env "$@" ;;
    sp2) env DCP_CUDA_FWD_SPLIT_PER_SM=2 "$@" ;;
    all) env DCP_CUDA_FWD_SHORT=1000000 "$@" ;;  # every launch without half tiles: short kernel
    *) echo "unknown variant $v"; return 1 ;;
  esac
}
BAD=""
echo "== selftest all (3, all planners; every non-half launch on the short kernel, D 64 too) t=$((SECONDS - T0))"
run_v all timeout 30 "$B" bench-gpu --selftest 3 --planners local,zigzag,dcp --timeout-s 25 --json "$R/st_all.jsonl" > "$R/st_all.log" 2>&1; echo "rc=$?"
summ "$R/st_all.jsonl" "selftest all" | tee -a "$R/summ.txt"; tail -1 "$R/summ.txt" | grep -q FAIL && BAD="$BAD short sp2"
echo "== selftest sp2 (2) t=$((SECONDS - T0))"
run_v sp2 timeout 20 "$B" bench-gpu --selftest 2 --planners local,zigzag,dcp --timeout-s 18 --json "$R/st_sp2.jsonl" > "$R/st_sp2.log" 2>&1; echo "rc=$?"
summ "$R/st_sp2.jsonl" "selftest sp2" | tee -a "$R/summ.txt"; tail -1 "$R/summ.txt" | grep -q FAIL && BAD="$BAD sp2"
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
for v in base short sp2 base sp2 short base short sp2 base; do i=$((i + 1)); if left 85; then kb $v 128 "${v}-d128_$i"; fi; done
snap
echo '{"batches": [[4096]]}' > "$R/splitk.json"
python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))"
if left 60; then
  echo "== split-K all + sp2 t=$((SECONDS - T0))"
  run_v all DCP_CUDA_FWD_SPLIT_PER_SM=2 timeout 30 "$B" bench-gpu --batches "$R/splitk.json" --masks causal,full,causal-blockwise --planners local --head-dim 128 \
    --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --timeout-s 25 --json "$R/splitk.jsonl" > "$R/splitk.log" 2>&1; echo "rc=$?"
  summ "$R/splitk.jsonl" "split-K all+sp2 vs CPU f64" | tee -a "$R/summ.txt"
fi
if left 45; then
  echo "== short documents (default: full-mask launches on the short kernel) t=$((SECONDS - T0))"
  run_v short timeout 30 "$B" bench-gpu --batches "$R/short.json" --head-dim 128 --masks full,causal,causal-blockwise:128:2,sliding-window:100 \
    --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 25 --json "$R/short.jsonl" > "$R/short.log" 2>&1; echo "rc=$?"
  summ "$R/short.jsonl" "short documents vs CPU f64" | tee -a "$R/summ.txt"
fi
snap
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
san() {
  local v=$1 tool=$2 tag=$3; shift 3
  if [ -n "$CS" ] && left 20; then
    echo "== $tool $v $tag t=$((SECONDS - T0))"
    run_v $v DCP_CUDA_FAMILY=sm90 timeout -k 3 18 "$CS" --tool $tool --print-limit 5 "$B" "$@" > "$R/san_${tool}_${v}_$tag.txt" 2>&1; echo "rc=$?"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" "$R/san_${tool}_${v}_$tag.txt" | head -4 | sed "s/^/$tool $v $tag: /" | tee -a "$R/summ.txt"
  fi
}
san short memcheck short bench-gpu --batches "$R/short.json" --masks full --planners local --warmup 0 --repeats 1 --timeout-s 16
san short racecheck short bench-gpu --batches "$R/short.json" --masks full --planners local --warmup 0 --repeats 1 --timeout-s 16
san all memcheck st bench-gpu --selftest 2 --planners local --timeout-s 16
san all racecheck st bench-gpu --selftest 1 --planners local --timeout-s 16
snap
echo '{"batches": [[32768]]}' > "$R/b32k.json"
for v in base sp2; do
  left 12 || break
  echo "== op times $v t=$((SECONDS - T0))"
  run_v $v DCP_CUDA_OP_TIMES=1 timeout 11 "$B" bench-gpu --batches "$R/b32k.json" --masks causal-blockwise \
    --planners local --block-sizes 1024 --head-block 2 --warmup 1 --repeats 3 --op-times "$R/ops_$v" \
    --json "$R/ops_$v.jsonl" > "$R/ops_$v.log" 2>&1; echo "rc=$?"
  timeout 8 python3 bench/gpu/op_times.py "$R/ops_$v" --top 4 > "$R/ops_$v.txt" 2>&1; cat "$R/ops_$v.txt"
done
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
