#!/usr/bin/env bash
# kbw11 call 2 (1x H200):  bash .kbw11/run2.sh   (carry [".kbw11"]). Binary .kbw11/dcp = main 01bfdc9 (base).
# Variants (DCP_CUDA_KERNELS=.kbw11/v/NAME, make_variants.sh): m (merge fast path), mh (+ half tiles D 128),
# mh2 (+ half tiles, word prefetched), ml (merge + late Q release), mhl, mh2l.
# 1. correctness of mh2l and mhl: selftest 8 (local, zigzag, dcp), mh2l with TILE_MASKS=0, split-K vs CPU f64.
# 2. op times of mh2l (blockwise, causal). 3. kernel-bench alternated D 128 (6 shapes), D 64 (base m ml).
# 4. FWDPROF of mh2 and mh2l (blockwise).
set -u
B=${B:-.kbw11/dcp}; V=${V:-.kbw11/v}; OUTD=${OUT:-/tmp/kbw11_out}
R=/tmp/kbw11b; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kbw11b.tgz" -C /tmp kbw11b; }
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
declare -A OK; OK[base]=1
for v in mh2l mhl; do
  echo "== selftest $v t=$((SECONDS - T0))"
  env "$(kenv $v)" DCP_CUDA_FAMILY=sm90 timeout 40 "$B" bench-gpu --selftest 8 --planners local,zigzag,dcp \
    --timeout-s 35 --json "$R/st_$v.jsonl" > "$R/st_$v.log" 2>&1; echo "rc=$?"
  summ "$R/st_$v.jsonl" "selftest $v" | tee -a "$R/summ.txt"
  if tail -1 "$R/summ.txt" | grep -q " pass" && ! tail -1 "$R/summ.txt" | grep -q FAIL; then OK[$v]=1; fi
done
echo "== selftest mh2l, TILE_MASKS=0 t=$((SECONDS - T0))"
env "$(kenv mh2l)" DCP_CUDA_TILE_MASKS=0 DCP_CUDA_FAMILY=sm90 timeout 40 "$B" bench-gpu --selftest 4 --planners local,zigzag,dcp \
  --timeout-s 35 --json "$R/st_mh2l_tm0.jsonl" > "$R/st_mh2l_tm0.log" 2>&1; echo "rc=$?"
summ "$R/st_mh2l_tm0.jsonl" "selftest mh2l tilemasks0" | tee -a "$R/summ.txt"
echo '{"batches": [[4096]]}' > "$R/splitk.json"
for D in 128 64; do
  echo "== split-K check mh2l D $D t=$((SECONDS - T0))"
  env "$(kenv mh2l)" timeout 60 "$B" bench-gpu --batches "$R/splitk.json" --masks causal,causal-blockwise --planners local \
    --head-dim $D --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --json "$R/splitk.jsonl" > "$R/splitk_d$D.log" 2>&1; echo "rc=$?"
done
summ "$R/splitk.jsonl" "split-K mh2l vs CPU f64" | tee -a "$R/summ.txt"
if grep -q FAIL "$R/summ.txt"; then unset 'OK[mh2l]'; fi
if [ -n "${OK[mh2l]:-}" ]; then OK[m]=1; OK[mh]=1; OK[mh2]=1; OK[ml]=1; fi
snap
echo '{"batches": [[32768]]}' > "$R/b32k.json"
if [ -n "${OK[mh2l]:-}" ]; then
  echo "== op times mh2l t=$((SECONDS - T0))"
  env "$(kenv mh2l)" DCP_CUDA_OP_TIMES=1 timeout 60 "$B" bench-gpu --batches "$R/b32k.json" --masks causal-blockwise,causal \
    --planners local --block-sizes 1024 --head-block 2 --warmup 1 --repeats 3 --op-times "$R/ops_mh2l" \
    --json "$R/ops_mh2l.jsonl" > "$R/ops_mh2l.log" 2>&1; echo "rc=$?"
  timeout 10 python3 bench/gpu/op_times.py "$R/ops_mh2l" --top 6 > "$R/ops_mh2l.txt" 2>&1; cat "$R/ops_mh2l.txt"
fi
SH=blockwise,causal32k,lambda,sharedq,packed,works1000
kb() {
  local n=$1 d=$2 sh=$3 tag=$4
  if [ -z "${OK[$n]:-}" ]; then echo "== skip $n (selftest)"; return; fi
  echo "== $n d$d $tag t=$((SECONDS - T0))"
  env "$(kenv $n)" timeout 60 "$B" kernel-bench --shapes "$sh" --head-dim "$d" --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
i=0
for v in base m mh mh2 ml mh2l mhl base mhl mh2l ml mh2 mh m base; do i=$((i + 1)); if left 125; then kb $v 128 "$SH" "${v}-d128_$i"; fi; done
snap
for v in base m ml base ml m; do i=$((i + 1)); if left 150; then kb $v 64 "$SH" "${v}-d64_$i"; fi; done
snap
for v in mh2prof mh2lprof; do
  if left 160; then echo "== prof $v t=$((SECONDS - T0))"
    env "$(kenv $v)" timeout 30 "$B" kernel-bench --shapes blockwise,works1000 --repeats 2 2>&1 | grep -E "FWDPROF|rror|panic" | tail -4; fi
done
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
