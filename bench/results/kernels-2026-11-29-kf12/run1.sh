#!/usr/bin/env bash
# kf12 call 1 (1x H200): LIMIT=200 timeout 210 bash .kf12/run1.sh   (carry [".kf12"]).
# Binary .kf12/dcp = main cf06c00 (release). Variants: base = default (half-tile kernel for launches
# with half tiles, half tiles first); p0 = DCP_CUDA_FWD_HALF=0 (plain kernel, key order); hfull = half
# order + half kernel computing its half tiles as whole masked tiles (FWD_HALF_FULL); st1 / st2 =
# plain kernel + key order + a one-time stagger per task (FWD_PP 1: warpgroup 1's first S waits for
# warpgroup 0's first S to complete / its first P V issue); pp0 / pp2 = plain kernel + ping-pong
# every step (FWD_PP 2, go after S issue / after first P V issue); hst2 = half order + half kernel
# with the st2 stagger in its plain loop.
set -u
B=${B:-.kf12/dcp}; KD=${KD:-.kf12}; OUTD=${OUT:-/tmp/kf12_out}
LIMIT=${LIMIT:-200}
R=/tmp/kf12c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kf12c1.tgz" -C /tmp kf12c1; }
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
    p0) env DCP_CUDA_FWD_HALF=0 "$@" ;;
    hfull) env DCP_CUDA_KERNELS="$KD/hfull" "$@" ;;
    st1|st2|pp0|pp2) env DCP_CUDA_FWD_HALF=0 DCP_CUDA_KERNELS="$KD/$v" "$@" ;;
    hst2) env DCP_CUDA_KERNELS="$KD/st2" "$@" ;;
    *) echo "unknown variant $v"; return 1 ;;
  esac
}
echo "== warm-up selftest base t=$((SECONDS - T0))"
run_v base timeout 40 "$B" bench-gpu --selftest 2 --planners local --timeout-s 35 --json "$R/st_base.jsonl" > "$R/st_base.log" 2>&1; echo "rc=$?"
summ "$R/st_base.jsonl" "selftest base" | tee -a "$R/summ.txt"
BAD=""
for v in hfull st1 st2 pp0 pp2 hst2; do
  left 120 || break
  echo "== selftest $v t=$((SECONDS - T0))"
  run_v $v timeout 30 "$B" bench-gpu --selftest 3 --planners local,zigzag,dcp --timeout-s 25 \
    --json "$R/st_$v.jsonl" > "$R/st_$v.log" 2>&1; echo "rc=$?"
  summ "$R/st_$v.jsonl" "selftest $v" | tee -a "$R/summ.txt"
  if tail -1 "$R/summ.txt" | grep -q FAIL; then BAD="$BAD $v"; fi
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
for v in base p0 hfull st1 st2 pp0 pp2 hst2 base hst2 pp2 pp0 st2 st1 hfull p0 base; do
  i=$((i + 1)); if left 45; then kb $v 128 "${v}-d128_$i"; fi
done
snap
for v in base st2 pp2 base pp2 st2 base; do i=$((i + 1)); if left 20; then kb $v 64 "${v}-d64_$i"; fi; done
snap
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for v in ${SAN:-}; do
  for tool in memcheck racecheck; do
    if [ -n "$CS" ] && left 12; then
      echo "== $tool $v t=$((SECONDS - T0))"
      run_v $v DCP_CUDA_FAMILY=sm90 timeout -k 3 10 "$CS" --tool $tool --print-limit 5 "$B" bench-gpu --selftest 1 \
        --planners local --timeout-s 9 > "$R/san_${tool}_$v.txt" 2>&1; echo "rc=$?"
      grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" "$R/san_${tool}_$v.txt" | head -4 | sed "s/^/$tool $v: /" | tee -a "$R/summ.txt"
    fi
  done
done
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
