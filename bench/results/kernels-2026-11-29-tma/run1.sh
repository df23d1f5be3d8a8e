#!/usr/bin/env bash
# ktma10 call 1, ONE call on 1x H200 from the repository root:  bash .ktma10/run1.sh
# (carry [".ktma10"], kind nvidia-h200). Binary .ktma10/dcp (branch ktma10 27d39ca: host TMA maps,
# embedded kernel FWD_TMA 0 = main's SASS) = `base`; t1 / t2 / t3 through DCP_CUDA_KERNELS.
# 1. selftest 8 (local, zigzag, dcp; every mask kind, D 64/128, bf16/f16, CPU f64 reference) of
#    t3, t1, t2; a variant that fails is not timed.
# 2. kernel-bench D 128 (7 shapes): base t1 t2 t3 base t3 t2 t1 base; D 64 (4 shapes):
#    base t3 t1 t2 base.
# 3. t3 again: selftest with DCP_CUDA_FWD_CTAS=5, CPU check 11 x 256 + 2900 (full, causal,
#    causal-blockwise) with 3 CTAs at D 128 / 64. A table last; everything in $OUT/ktma10a.tgz.
set -u
B=${B:-.ktma10/dcp}; V=${V:-.ktma10/v}; OUTD=${OUT:-/tmp/ktma10_out}
R=/tmp/ktma10a; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/ktma10a.tgz" -C /tmp ktma10a; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt "$1" ]; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
SH=causal32k,causal128k,blockwise,works1000,onework,packed,lambda
SH64=causal32k,blockwise,works1000,onework
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
declare -A OK
st() {
  local n=$1 tag=$2 envx=${3:-X_KTMA10=1}
  echo "== selftest $n $tag t=$((SECONDS - T0))"
  env "$envx" DCP_CUDA_KERNELS="$V/$n" DCP_CUDA_FAMILY=sm90 timeout 30 "$B" bench-gpu --selftest 8 --planners local,zigzag,dcp \
    --timeout-s 25 --json "$R/st_$tag.jsonl" > "$R/st_$tag.log" 2>&1
  echo "rc=$?"; summ "$R/st_$tag.jsonl" "selftest $tag" | tee -a "$R/summ.txt"
}
for n in t3 t1 t2; do
  if left 100; then st "$n" "$n"; fi
  if tail -1 "$R/summ.txt" 2> /dev/null | grep -q "selftest $n: .* pass" && ! tail -1 "$R/summ.txt" | grep -q FAIL; then OK[$n]=1; fi
done
OK[base]=1
snap
kb() {
  local n=$1 d=$2 sh=$3 tag=$4 envv=X_KTMA10=1
  if [ -z "${OK[$n]:-}" ]; then echo "== skip $n (selftest)"; return; fi
  if [ "$n" != base ]; then envv="DCP_CUDA_KERNELS=$V/$n"; fi
  echo "== $n d$d $tag t=$((SECONDS - T0))"
  env "$envv" timeout 40 "$B" kernel-bench --shapes "$sh" --head-dim "$d" --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^(causal|works|onework|blockwise|packed|lambda|shape) |rror|panic'
}
i=0
for v in base t1 t2 t3 base t3 t2 t1 base; do
  i=$((i + 1))
  if left 190; then kb "$v" 128 "$SH" "${v}-d128_$i"; fi
done
snap
for v in base t3 t1 t2 base; do
  i=$((i + 1))
  if left 215; then kb "$v" 64 "$SH64" "${v}-d64_$i"; fi
done
snap
if [ -n "${OK[t3]:-}" ]; then
  if left 225; then st t3 t3ctas5 DCP_CUDA_FWD_CTAS=5; fi
  python3 -c 'print({"batches": [[256] * 11, [2900]]})' | tr "'" '"' > "$R/c.json"
  for d in 128 64; do
    if left 240; then
      echo "== check d$d t3 t=$((SECONDS - T0))"
      DCP_CUDA_FWD_CTAS=3 DCP_CUDA_KERNELS="$V/t3" DCP_CUDA_FAMILY=sm90 timeout 25 "$B" bench-gpu --batches "$R/c.json" --head-dim "$d" \
        --masks full,causal,causal-blockwise --planners local --check --cpu-check-tokens 3000 \
        --warmup 0 --repeats 1 --json "$R/chk_t3_d$d.jsonl" > "$R/chk_t3_d$d.log" 2>&1
      echo "rc=$?"; summ "$R/chk_t3_d$d.jsonl" "check d$d t3 (3 CTAs)" | tee -a "$R/summ.txt"
    fi
  done
fi
echo "== table t=$((SECONDS - T0))"
timeout 10 python3 .ktma10/table.py "$R" | tee "$R/table.txt"
cat "$R/summ.txt" 2> /dev/null
echo "== done t=$((SECONDS - T0))"
snap
