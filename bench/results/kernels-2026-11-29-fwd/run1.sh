#!/usr/bin/env bash
# kfwd10 call 1, ONE call on 1x H200 from the repository root:  bash .kfwd10/run1.sh
# (carry [".kfwd10"], kind nvidia-h200). Binary .kfwd10/dcp (main 444c8fc), variants .kfwd10/v/*.
# 1. kernel-bench D 128 (causal32k, causal128k, blockwise, works1000, onework): main's embedded
#    kernel first, between and last; pf, pf2, d2, d4 then pf2, pf (alternated).
# 2. FWDPROF (cycle counters per task) of main's kernel on works1000, onework, blockwise, causal32k
#    and of pf2 on works1000 and blockwise (separate kernel-bench runs, warmup 1, repeats 2).
# 3. selftest 8 (local, zigzag, dcp; every mask kind, D 64/128, bf16/f16, CPU f64 reference) of
#    pf and pf2. A table last; everything in $OUT/kfwd10a.tgz.
set -u
B=${B:-.kfwd10/dcp}; V=${V:-.kfwd10/v}; OUTD=${OUT:-/tmp/kfwd10_out}; TL=${TL:-170}
R=/tmp/kfwd10a; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kfwd10a.tgz" -C /tmp kfwd10a; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt "$1" ]; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
S128=causal32k,causal128k,blockwise,works1000,onework
kb() {
  local n=$1 d=$2 sh=$3 tag=$4 envv=X_KFWD10=1
  if [ "$n" != base ]; then envv="DCP_CUDA_KERNELS=$V/$n"; fi
  echo "== $n d$d $tag t=$((SECONDS - T0))"
  env "$envv" timeout 40 "$B" kernel-bench --shapes "$sh" --head-dim "$d" --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^(causal|works|onework|blockwise|shape) |rror|panic'
}
kbp() {
  local n=$1 sh=$2
  echo "== prof $n $sh t=$((SECONDS - T0))"
  DCP_CUDA_KERNELS="$V/$n" timeout 30 "$B" kernel-bench --shapes "$sh" --head-dim 128 --warmup 1 --repeats 2 \
    > "$R/prof_${n}_$sh.log" 2>&1
  echo "rc=$?"; grep FWDPROF "$R/prof_${n}_$sh.log" | tail -1
}
summ() {
  timeout 10 python3 - "$1" "$2" <<'PY'
import json, sys
try:
    r = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
except OSError:
    r = []
c = [x.get('check') or {} for x in r]
w = lambda k: max([x.get(k, 0) or 0 for x in c] + [0])
print('%s: %d/%d pass, worst o %.1e dq %.1e dkv %.1e' % (sys.argv[2], sum(1 for x in c if x.get('pass')), len(r), w('o'), w('dq'), w('dkv')))
PY
}
kb base 128 "$S128" base-d128_a
for v in pf pf2 d2 d4; do if left 60; then kb "$v" 128 "$S128" "${v}-d128_a"; fi; done
if left 70; then kb base 128 "$S128" base-d128_b; fi
for v in pf2 pf; do if left 85; then kb "$v" 128 "$S128" "${v}-d128_b"; fi; done
if left 95; then kb base 128 "$S128" base-d128_c; fi
snap
for sh in works1000 onework blockwise causal32k; do if left 120; then kbp prof "$sh"; fi; done
for sh in works1000 blockwise; do if left 130; then kbp pf2prof "$sh"; fi; done
snap
for v in pf2 pf; do
  if left 150; then
    echo "== selftest $v t=$((SECONDS - T0))"
    DCP_CUDA_KERNELS="$V/$v" DCP_CUDA_FAMILY=sm90 timeout 25 "$B" bench-gpu --selftest 8 --planners local,zigzag,dcp \
      --timeout-s 20 --json "$R/st_$v.jsonl" > "$R/st_$v.log" 2>&1
    echo "rc=$?"; summ "$R/st_$v.jsonl" "selftest $v" | tee -a "$R/summ.txt"
  fi
done
echo "== table t=$((SECONDS - T0))"
cp .kfwd10/table.py "$R/" 2> /dev/null
timeout 10 python3 .kfwd10/table.py "$R" | tee "$R/table.txt"
cat "$R/summ.txt" 2> /dev/null
echo "== done t=$((SECONDS - T0))"
snap
