#!/usr/bin/env bash
# ktma10 call 2, ONE call on 1x H200 from the repository root:  bash .ktma10/run2.sh
# (carry [".ktma10"], kind nvidia-h200). Binary .ktma10/dcp (branch ktma10, embedded kernel
# FWD_TMA 3 at D 128, 0 at D 64) = `emb`; t0 (main's kernel), t1, t3, t3pd, t3cl via DCP_CUDA_KERNELS.
# 1. selftest 8 (local, zigzag, dcp; CPU f64 reference) of emb, t3pd, t3cl; a failing one is not timed.
# 2. kernel-bench D 128 (7 shapes): emb t0 t3cl emb t3cl t0 emb; D 64 (6 shapes):
#    t0 t1 t3 t3pd t0 t3pd t3 t1 t0. A table last; everything in $OUT/ktma10b.tgz.
set -u
B=${B:-.ktma10/dcp}; V=${V:-.ktma10/v}; OUTD=${OUT:-/tmp/ktma10_out}
R=/tmp/ktma10b; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/ktma10b.tgz" -C /tmp ktma10b; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt "$1" ]; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
SH=causal32k,causal128k,blockwise,works1000,onework,packed,lambda
SH64=causal32k,causal128k,blockwise,works1000,onework,packed
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
  local n=$1 envv=X_KTMA10=1
  if [ "$n" != emb ]; then envv="DCP_CUDA_KERNELS=$V/$n"; fi
  echo "== selftest $n t=$((SECONDS - T0))"
  env "$envv" DCP_CUDA_FAMILY=sm90 timeout 30 "$B" bench-gpu --selftest 8 --planners local,zigzag,dcp \
    --timeout-s 25 --json "$R/st_$n.jsonl" > "$R/st_$n.log" 2>&1
  echo "rc=$?"; summ "$R/st_$n.jsonl" "selftest $n" | tee -a "$R/summ.txt"
}
for n in emb t3pd t3cl; do
  if left 60; then st "$n"; fi
  if tail -1 "$R/summ.txt" 2> /dev/null | grep -q "selftest $n: .* pass" && ! tail -1 "$R/summ.txt" | grep -q FAIL; then OK[$n]=1; fi
done
OK[t0]=1; OK[t1]=1; OK[t3]=1
snap
kb() {
  local n=$1 d=$2 sh=$3 tag=$4 envv=X_KTMA10=1
  if [ -z "${OK[$n]:-}" ]; then echo "== skip $n (selftest)"; return; fi
  if [ "$n" != emb ]; then envv="DCP_CUDA_KERNELS=$V/$n"; fi
  echo "== $n d$d $tag t=$((SECONDS - T0))"
  env "$envv" timeout 40 "$B" kernel-bench --shapes "$sh" --head-dim "$d" --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^(causal|works|onework|blockwise|packed|lambda|shape) |rror|panic'
}
i=0
for v in emb t0 t3cl emb t3cl t0 emb; do
  i=$((i + 1))
  if left 130; then kb "$v" 128 "$SH" "${v}-d128_$i"; fi
done
snap
for v in t0 t1 t3 t3pd t0 t3pd t3 t1 t0; do
  i=$((i + 1))
  if left 175; then kb "$v" 64 "$SH64" "${v}-d64_$i"; fi
done
echo "== table t=$((SECONDS - T0))"
timeout 10 python3 .ktma10/table2.py "$R" | tee "$R/table.txt"
cat "$R/summ.txt" 2> /dev/null
echo "== done t=$((SECONDS - T0))"
snap
