#!/usr/bin/env bash
# kbw11 call 1 (1x H200, from /work/main's tree):  bash .kbw11/run1.sh   (carry [".kbw11"])
# base = the lead's binary (main 01bfdc9, embedded kernels); half = DCP_CUDA_KERNELS=.kbw11/v/half (FWD_HALF 1).
# 1. correctness of half: selftest 8 (local, zigzag, dcp) vs CPU f64; the same with DCP_CUDA_TILE_MASKS=0
#    (ranges path); split-K forward 4096 tokens causal/full/causal-blockwise vs CPU f64, D 128 and 64.
# 2. breakdown: bench-gpu --op-times, one 32K sequence, causal-blockwise and causal, local, base and half.
# 3. kernel-bench alternated: D 128 base half base half base; D 64 base half base half.
set -u
B=${B:-.kbw11/dcp}; V=${V:-.kbw11/v}; OUTD=${OUT:-/tmp/kbw11_out}
R=/tmp/kbw11a; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kbw11a.tgz" -C /tmp kbw11a; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt "$1" ]; }
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
kenv() { if [ "$1" = base ]; then echo X_KBW11=1; else echo "DCP_CUDA_KERNELS=$V/$1"; fi; }
echo "== selftest half t=$((SECONDS - T0))"
env "$(kenv half)" DCP_CUDA_FAMILY=sm90 timeout 40 "$B" bench-gpu --selftest 8 --planners local,zigzag,dcp \
  --timeout-s 35 --json "$R/st_half.jsonl" > "$R/st_half.log" 2>&1; echo "rc=$?"
summ "$R/st_half.jsonl" "selftest half" | tee -a "$R/summ.txt"
echo "== selftest half, TILE_MASKS=0 t=$((SECONDS - T0))"
env "$(kenv half)" DCP_CUDA_TILE_MASKS=0 DCP_CUDA_FAMILY=sm90 timeout 40 "$B" bench-gpu --selftest 4 --planners local,zigzag,dcp \
  --timeout-s 35 --json "$R/st_half_tm0.jsonl" > "$R/st_half_tm0.log" 2>&1; echo "rc=$?"
summ "$R/st_half_tm0.jsonl" "selftest half tilemasks0" | tee -a "$R/summ.txt"
echo '{"batches": [[4096]]}' > "$R/splitk.json"
for D in 128 64; do
  echo "== split-K check half D $D t=$((SECONDS - T0))"
  env "$(kenv half)" timeout 60 "$B" bench-gpu --batches "$R/splitk.json" --masks causal,full,causal-blockwise --planners local \
    --head-dim $D --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --json "$R/splitk.jsonl" > "$R/splitk_d$D.log" 2>&1; echo "rc=$?"
done
summ "$R/splitk.jsonl" "split-K half vs CPU f64" | tee -a "$R/summ.txt"
OK=1; grep -q FAIL "$R/summ.txt" && OK=0
grep -q "pass" "$R/summ.txt" || OK=0
snap
echo '{"batches": [[32768]]}' > "$R/b32k.json"
for v in base half; do
  if [ $v = half ] && [ $OK = 0 ]; then continue; fi
  echo "== op times $v t=$((SECONDS - T0))"
  env "$(kenv $v)" DCP_CUDA_OP_TIMES=1 timeout 60 "$B" bench-gpu --batches "$R/b32k.json" --masks causal-blockwise,causal \
    --planners local --block-sizes 1024 --head-block 2 --warmup 1 --repeats 3 --op-times "$R/ops_$v" \
    --json "$R/ops_$v.jsonl" > "$R/ops_$v.log" 2>&1; echo "rc=$?"
  timeout 10 python3 bench/gpu/op_times.py "$R/ops_$v" --top 6 > "$R/ops_$v.txt" 2>&1; head -40 "$R/ops_$v.txt"
done
snap
SH=blockwise,causal32k,lambda,sharedq,packed,works1000
kb() {
  local n=$1 d=$2 tag=$3
  if [ $n = half ] && [ $OK = 0 ]; then echo "== skip half (selftest)"; return; fi
  echo "== $n d$d $tag t=$((SECONDS - T0))"
  env "$(kenv $n)" timeout 60 "$B" kernel-bench --shapes "$SH" --head-dim "$d" --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^(causal|works|onework|blockwise|packed|lambda|sharedq|shape) |rror|panic'
}
i=0
for v in base half base half base; do i=$((i + 1)); if left 140; then kb $v 128 "${v}-d128_$i"; fi; done
snap
for v in base half base half; do i=$((i + 1)); if left 175; then kb $v 64 "${v}-d64_$i"; fi; done
for v in baseprof halfprof; do
  if left 200; then echo "== prof $v t=$((SECONDS - T0))"
    env "$(kenv $v)" timeout 40 "$B" kernel-bench --shapes blockwise,causal32k,works1000 --repeats 2 2>&1 | grep -E "FWDPROF|^(causal|works|blockwise) |rror|panic" | tail -12; fi
done
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
