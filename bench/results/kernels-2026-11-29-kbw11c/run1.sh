#!/usr/bin/env bash
# kbw11c call 1 (1x H200):  bash .kbw11c/run.sh   (carry [".kbw11c"]).
# base = .kbw11c/dcp-base (main 9fd6924, release); new = .kbw11c/dcp (branch kbw11c: half tiles per
# task, FWD_HALF at D 128, host order + count); h64 = new binary with DCP_CUDA_KERNELS=.kbw11c/k64h
# (the same kernels with FWD_HALF 1 at D 64 too); new0 = new with DCP_CUDA_FWD_HALF=0 (plain loop only).
# 1. correctness of new: selftest (local, zigzag, dcp; CPU f64), the same with DCP_CUDA_TILE_MASKS=0,
#    split-K forward vs CPU f64 (4096 tokens); 2. kernel-bench alternated; 3. compute-sanitizer memcheck
#    (selftest 3, a 4096-token causal-blockwise at D 128); 4. op times; 5. h64 selftest.
set -u
B0=${B0:-.kbw11c/dcp-base}; B1=${B1:-.kbw11c/dcp}; K64=${K64:-.kbw11c/k64h}; OUTD=${OUT:-/tmp/kbw11c_out}
LIMIT=${LIMIT:-140}
R=/tmp/kbw11c; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kbw11c.tgz" -C /tmp kbw11c; }
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
# variant -> "binary env..."
run_v() {
  local v=$1; shift
  case $v in
    base) env X_KBW11C=1 "$@" ;;
    new) env X_KBW11C=1 "$@" ;;
    new0) env DCP_CUDA_FWD_HALF=0 "$@" ;;
    h64) env DCP_CUDA_KERNELS="$K64" "$@" ;;
  esac
}
bin() { if [ "$1" = base ]; then echo "$B0"; else echo "$B1"; fi; }
OKNEW=1
echo "== selftest new t=$((SECONDS - T0))"
run_v new timeout 40 "$B1" bench-gpu --selftest 6 --planners local,zigzag,dcp --timeout-s 35 \
  --json "$R/st_new.jsonl" > "$R/st_new.log" 2>&1; echo "rc=$?"
summ "$R/st_new.jsonl" "selftest new" | tee -a "$R/summ.txt"
echo "== selftest new, TILE_MASKS=0 t=$((SECONDS - T0))"
run_v new DCP_CUDA_TILE_MASKS=0 timeout 30 "$B1" bench-gpu --selftest 3 --planners local,zigzag,dcp \
  --timeout-s 25 --json "$R/st_new_tm0.jsonl" > "$R/st_new_tm0.log" 2>&1; echo "rc=$?"
summ "$R/st_new_tm0.jsonl" "selftest new tilemasks0" | tee -a "$R/summ.txt"
echo '{"batches": [[4096]]}' > "$R/splitk.json"
for cfg in "128 causal,full,causal-blockwise" "64 causal-blockwise"; do
  set -- $cfg
  echo "== split-K check new D $1 t=$((SECONDS - T0))"
  run_v new timeout 45 "$B1" bench-gpu --batches "$R/splitk.json" --masks "$2" --planners local \
    --head-dim "$1" --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --json "$R/splitk.jsonl" > "$R/splitk_d$1.log" 2>&1; echo "rc=$?"
done
summ "$R/splitk.jsonl" "split-K new vs CPU f64" | tee -a "$R/summ.txt"
if grep -q FAIL "$R/summ.txt"; then OKNEW=; echo "new FAILED a check: new not benched"; fi
snap
SH=blockwise,causal32k,lambda,sharedq,packed,works1000
kb() {
  local v=$1 d=$2 tag=$3
  if [ "$v" != base ] && [ -z "$OKNEW" ]; then echo "== skip $v"; return; fi
  echo "== $v d$d $tag t=$((SECONDS - T0))"
  run_v "$v" timeout 40 "$(bin "$v")" kernel-bench --shapes "$SH" --head-dim "$d" --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
i=0
for v in base new base new new0; do i=$((i + 1)); if left 60; then kb $v 128 "${v}-d128_$i"; fi; done
snap
for v in base new h64; do i=$((i + 1)); if left 50; then kb $v 64 "${v}-d64_$i"; fi; done
snap
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "$CS" ] && [ -n "$OKNEW" ] && left 30; then
  echo "== memcheck new: selftest 3 local t=$((SECONDS - T0))"
  run_v new DCP_CUDA_FAMILY=sm90 timeout -k 3 25 "$CS" --tool memcheck --print-limit 5 "$B1" bench-gpu --selftest 3 \
    --planners local --timeout-s 25 > "$R/san_memcheck.txt" 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|Invalid|FAIL" "$R/san_memcheck.txt" | head -4 | sed 's/^/selftest 3: /' | tee -a "$R/summ.txt"
fi
if [ -n "$CS" ] && [ -n "$OKNEW" ] && left 25; then
  echo "== memcheck new: 4096-token causal-blockwise D 128 (split, half tiles) t=$((SECONDS - T0))"
  run_v new timeout -k 3 20 "$CS" --tool memcheck --print-limit 5 "$B1" bench-gpu --batches "$R/splitk.json" \
    --masks causal-blockwise --planners local --head-dim 128 --warmup 0 --repeats 1 > "$R/san_memcheck_bw.txt" 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|Invalid|FAIL" "$R/san_memcheck_bw.txt" | head -4 | sed 's/^/blockwise 4096: /' | tee -a "$R/summ.txt"
fi
snap
if [ -n "$OKNEW" ] && left 40; then
  echo "== selftest h64 t=$((SECONDS - T0))"
  run_v h64 timeout 25 "$B1" bench-gpu --selftest 3 --planners local,zigzag,dcp --timeout-s 20 \
    --json "$R/st_h64.jsonl" > "$R/st_h64.log" 2>&1; echo "rc=$?"
  summ "$R/st_h64.jsonl" "selftest h64" | tee -a "$R/summ.txt"
fi
echo '{"batches": [[32768]]}' > "$R/b32k.json"
if [ -n "$OKNEW" ] && left 45; then
  echo "== op times new t=$((SECONDS - T0))"
  run_v new DCP_CUDA_OP_TIMES=1 timeout 30 "$B1" bench-gpu --batches "$R/b32k.json" --masks causal-blockwise \
    --planners local --block-sizes 1024 --head-block 2 --warmup 1 --repeats 3 --op-times "$R/ops_new" \
    --json "$R/ops_new.jsonl" > "$R/ops_new.log" 2>&1; echo "rc=$?"
  timeout 10 python3 bench/gpu/op_times.py "$R/ops_new" --top 4 > "$R/ops_new.txt" 2>&1; cat "$R/ops_new.txt"
fi
snap
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
