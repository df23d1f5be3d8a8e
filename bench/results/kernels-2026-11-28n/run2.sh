#!/usr/bin/env bash
# kfwd9 call 2: O through shared memory (FWD_OST) after call 1's ablations. ONE call on 1x H200,
# from the repository root:  bash .kfwd9/run2.sh   (carry [".kfwd9"], kind nvidia-h200)
# 1. kernel-bench D 128 (causal32k, causal128k, blockwise, works1000, onework): main's kernel
#    first, between and last; ost, ostpd, xtost alternated (second round reversed).
# 2. selftest 8 (local, zigzag, dcp; every mask kind, D 64/128, bf16/f16, CPU f64 reference) of the
#    three, plus the 11 x 256 + 2900 CPU check (full, causal, causal-blockwise) of ost at D 128 / 64.
# 3. kernel-bench D 64: main, ost, ostpd, main. A table last; everything in $OUT/kfwd9b.tgz.
set -u
B=${B:-.kfwd9/dcp}; V=${V:-.kfwd9/v}; OUTD=${OUT:-/tmp/kfwd9_out}
R=/tmp/kfwd9b; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kfwd9b.tgz" -C /tmp kfwd9b; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt "$1" ]; }
S128=causal32k,causal128k,blockwise,works1000,onework
S64=causal32k,causal128k,blockwise,works1000
kb() {
  local n=$1 d=$2 sh=$3 tag=$4 envv=X_KFWD9=1
  if [ "$n" != base ]; then envv="DCP_CUDA_KERNELS=$V/$n"; fi
  echo "== $n d$d $tag t=$((SECONDS - T0))"
  env "$envv" timeout 30 "$B" kernel-bench --shapes "$sh" --head-dim "$d" --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
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
for v in ost ostpd xtost; do if left 35; then kb "$v" 128 "$S128" "${v}-d128_a"; fi; done
if left 40; then kb base 128 "$S128" base-d128_b; fi
for v in xtost ostpd ost; do if left 55; then kb "$v" 128 "$S128" "${v}-d128_b"; fi; done
if left 60; then kb base 128 "$S128" base-d128_c; fi
snap
python3 -c 'print({"batches": [[256] * 11, [2900]]})' | tr "'" '"' > "$R/c.json"
for v in ost ostpd xtost; do
  if left 80; then
    echo "== selftest $v t=$((SECONDS - T0))"
    ct=X_KFWD9=1; [ "$v" = xtost ] && ct=DCP_CUDA_FWD_CTAS=5
    env "$ct" DCP_CUDA_KERNELS="$V/$v" DCP_CUDA_FAMILY=sm90 timeout 25 "$B" bench-gpu --selftest 8 --planners local,zigzag,dcp \
      --timeout-s 20 --json "$R/st_$v.jsonl" > "$R/st_$v.log" 2>&1
    echo "rc=$?"; summ "$R/st_$v.jsonl" "selftest $v" | tee -a "$R/summ.txt"
  fi
done
for d in 128 64; do
  if left 88; then
    echo "== check d$d ost t=$((SECONDS - T0))"
    DCP_CUDA_KERNELS="$V/ost" DCP_CUDA_FAMILY=sm90 timeout 20 "$B" bench-gpu --batches "$R/c.json" --head-dim "$d" \
      --masks full,causal,causal-blockwise --planners local --check --cpu-check-tokens 3000 \
      --warmup 0 --repeats 1 --json "$R/chk_ost_d$d.jsonl" > "$R/chk_ost_d$d.log" 2>&1
    echo "rc=$?"; summ "$R/chk_ost_d$d.jsonl" "check d$d ost" | tee -a "$R/summ.txt"
  fi
done
snap
i=0
for v in base ost ostpd base; do
  i=$((i + 1))
  if left 100; then kb "$v" 64 "$S64" "${v}-d64_$i"; fi
done
echo "== table t=$((SECONDS - T0))"
timeout 10 python3 - "$R" <<'PY' | tee "$R/table.txt"
import glob, json, os, sys
R = sys.argv[1]
def load(p):
    try:
        return {x['shape']: x['fwd_tflops_per_gpu'] for x in (json.loads(l) for l in open(p) if l.strip())}
    except (OSError, ValueError, KeyError):
        return {}
rows = {}
for p in sorted(glob.glob(os.path.join(R, 'kb_*.jsonl')), key=os.path.getmtime):
    tag = os.path.basename(p)[3:-6]
    name, _, run = tag.partition('_')
    rows.setdefault(name, []).append(load(p))
def mean(name, shape):
    v = [r[shape] for r in rows.get(name, []) if shape in r]
    return sum(v) / len(v) if v else None
shapes = ['causal32k', 'causal128k', 'blockwise', 'works1000', 'onework']
print('fwd TFLOP/s, mean of runs (ratio to base of the same head dim); runs listed below')
print(f"{'variant':<11}" + ''.join(f"{s:>17}" for s in shapes))
for name, runs in rows.items():
    b = 'base-d' + name.split('-d')[-1]
    cells = []
    for s in shapes:
        m, mb = mean(name, s), mean(b, s)
        cells.append(f"{m:7.1f} ({m / mb:.3f})" if m and mb else '-')
    print(f"{name:<11}" + ''.join(f"{c:>17}" for c in cells))
for name in rows:
    wk, ow, bw, c32 = (mean(name, s) for s in ('works1000', 'onework', 'blockwise', 'causal32k'))
    if wk and ow and bw and c32:
        print(f"{name}: works1000/onework {wk / ow:.3f}, blockwise/causal32k {bw / c32:.3f}")
print('runs:')
for name, runs in rows.items():
    print(f"  {name:<11}", ' | '.join(' '.join(f"{r[s]:.1f}" for r in runs if s in r) for s in shapes))
PY
cat "$R/summ.txt" 2> /dev/null
echo "== done t=$((SECONDS - T0))"
snap
