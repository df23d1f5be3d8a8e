#!/usr/bin/env bash
# kf13 call 1 (1x H200): LIMIT=200 timeout 210 bash .kf13/run1.sh   (carry [".kf13"]).
# Binary .kf13/dcp = branch kf13 (release; host = main 7e0e84f, embedded kernels SASS-identical to
# main's). Kernel dirs (DCP_CUDA_KERNELS, host default: half tiles first, half kernel where a
# launch has any): pst = FWD_PST 1 (producer stores O; all kernels, D 128 and 64); pstlag = pst +
# FWD_LAG 1500 (warpgroup 1 starts 1500 clk late, once per CTA); pstpp = pst + FWD_PP in the
# plain kernel too (per-task stagger, tasks of >= 4 tiles).
set -u
B=${B:-.kf13/dcp}; KD=${KD:-.kf13}; OUTD=${OUT:-/tmp/kf13_out}
LIMIT=${LIMIT:-200}
R=/tmp/kf13c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kf13c1.tgz" -C /tmp kf13c1; }
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
    pst|pstlag|pstpp) env DCP_CUDA_KERNELS="$KD/$v" "$@" ;;
    *) echo "unknown variant $v"; return 1 ;;
  esac
}
BAD=""
echo "== selftest pst (4, all planners) t=$((SECONDS - T0))"
run_v pst timeout 40 "$B" bench-gpu --selftest 4 --planners local,zigzag,dcp --timeout-s 35 --json "$R/st_pst.jsonl" > "$R/st_pst.log" 2>&1; echo "rc=$?"
summ "$R/st_pst.jsonl" "selftest pst" | tee -a "$R/summ.txt"; tail -1 "$R/summ.txt" | grep -q FAIL && BAD="$BAD pst pstlag pstpp"
for v in pstlag pstpp; do
  echo "== selftest $v t=$((SECONDS - T0))"
  run_v $v timeout 25 "$B" bench-gpu --selftest 2 --planners local,zigzag,dcp --timeout-s 20 --json "$R/st_$v.jsonl" > "$R/st_$v.log" 2>&1; echo "rc=$?"
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
for v in base pst pstlag pstpp base pstpp pstlag pst base; do i=$((i + 1)); if left 110; then kb $v 128 "${v}-d128_$i"; fi; done
snap
for v in base pst base pst; do i=$((i + 1)); if left 90; then kb $v 64 "${v}-d64_$i"; fi; done
snap
echo '{"batches": [[4096]]}' > "$R/splitk.json"
python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))"
for v in pst; do
  left 70 || break
  echo "== split-K $v t=$((SECONDS - T0))"
  run_v $v timeout 30 "$B" bench-gpu --batches "$R/splitk.json" --masks causal,full,causal-blockwise --planners local --head-dim 128 \
    --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --timeout-s 25 --json "$R/splitk_$v.jsonl" > "$R/splitk_$v.log" 2>&1; echo "rc=$?"
  summ "$R/splitk_$v.jsonl" "split-K $v vs CPU f64" | tee -a "$R/summ.txt"
  echo "== short documents $v t=$((SECONDS - T0))"
  run_v $v timeout 30 "$B" bench-gpu --batches "$R/short.json" --head-dim 128 --masks full,causal,causal-blockwise:128:2,sliding-window:100 \
    --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 25 --json "$R/short_$v.jsonl" > "$R/short_$v.log" 2>&1; echo "rc=$?"
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
san pst memcheck st bench-gpu --selftest 2 --planners local --timeout-s 18
san pst racecheck st bench-gpu --selftest 1 --planners local --timeout-s 18
san pst memcheck short bench-gpu --batches "$R/short.json" --masks full --planners local --warmup 0 --repeats 1 --timeout-s 18
san pst racecheck short bench-gpu --batches "$R/short.json" --masks causal --planners local --warmup 0 --repeats 1 --timeout-s 18
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
