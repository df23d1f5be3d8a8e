#!/usr/bin/env bash
# kbtma10 call 2, ONE call on 1x H200 from the repository root:  bash .kbtma10/run2.sh
# (carry [".kbtma10"], kind nvidia-h200). Binary .kbtma10/dcp (branch kbtma10 + the
# DCP_CUDA_BWD_TMA_MIN_KEYS knob). Kernels via DCP_CUDA_KERNELS: base (main's files), t2
# (BWD_TMA 2), t2pf (+ BWD_TMA_PF 1: next task's maps prefetched at its claim); t2m = t2 with
# DCP_CUDA_BWD_TMA_MIN_KEYS=1024 (works with fewer keys keep the cp.async rows).
# 1. selftest 12 (local, zigzag, dcp) of t2pf; a failing one is not timed.
# 2. kernel-bench D 128 (7 shapes): base t2pf t2m t2 base t2pf t2m t2 base; selftest of t2m if
#    time is left. A table last; everything in $OUT/kbtma10b.tgz.
set -u
B=${B:-.kbtma10/dcp}; V=${V:-.kbtma10/v}; OUTD=${OUT:-/tmp/kbtma10_out}; TAG=${TAG:-kbtma10b}
R=/tmp/$TAG; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/$TAG.tgz" -C /tmp "$TAG"; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt "$1" ]; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
SH=causal32k,causal128k,blockwise,works1000,onework,packed,lambda
SH64=causal32k,works1000
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
# variant -> kernel directory and extra environment
kdir() { case $1 in t2m) echo t2 ;; *) echo "$1" ;; esac; }
kenv() { case $1 in t2m) echo DCP_CUDA_BWD_TMA_MIN_KEYS=1024 ;; *) echo X_KBTMA10=1 ;; esac; }
st() {
  local n=$1
  echo "== selftest $n t=$((SECONDS - T0))"
  env "$(kenv "$n")" DCP_CUDA_KERNELS=$V/$(kdir "$n") DCP_CUDA_FAMILY=sm90 timeout 50 "$B" bench-gpu --selftest 12 --planners local,zigzag,dcp \
    --timeout-s 45 --json "$R/st_$n.jsonl" > "$R/st_$n.log" 2>&1
  echo "rc=$?"; summ "$R/st_$n.jsonl" "selftest $n" | tee -a "$R/summ.txt"
}
for n in t2pf; do
  if left 60; then st "$n"; fi
  if tail -1 "$R/summ.txt" 2> /dev/null | grep -q "selftest $n: .* pass" && ! tail -1 "$R/summ.txt" | grep -q FAIL; then OK[$n]=1; fi
done
OK[base]=1; OK[t2]=1; OK[t2m]=1
snap
kb() {
  local n=$1 d=$2 sh=$3 tag=$4
  if [ -z "${OK[$n]:-}" ]; then echo "== skip $n (selftest)"; return; fi
  echo "== $n d$d $tag t=$((SECONDS - T0))"
  env "$(kenv "$n")" DCP_CUDA_KERNELS=$V/$(kdir "$n") timeout 30 "$B" kernel-bench --shapes "$sh" --head-dim "$d" --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^(causal|works|onework|blockwise|packed|lambda|shape) |rror|panic'
}
i=0
for v in base t2pf t2m t2 base t2pf t2m t2 base; do
  i=$((i + 1))
  if left 70; then kb "$v" 128 "$SH" "${v}-d128_$i"; fi
done
snap
if left 74; then st t2m; fi
echo "== table t=$((SECONDS - T0))"
timeout 10 python3 .kbtma10/table.py "$R" | tee "$R/table.txt"
cat "$R/summ.txt" 2> /dev/null
echo "== done t=$((SECONDS - T0))"
snap
