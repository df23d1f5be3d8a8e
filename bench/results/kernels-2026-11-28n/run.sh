#!/usr/bin/env bash
# kfwd9 (issue 10: short tasks / sparse masks in the sm90 forward): ONE call on 1x H200, from the
# repository root:  bash .kfwd9/run.sh   (carry [".kfwd9"], kind nvidia-h200)
# 1. kernel-bench D 128 (causal32k, causal128k, blockwise, works1000, onework, sharedq): main's
#    kernel (.kfwd9/dcp, embedded) first, between the two rounds and last; variants
#    (DCP_CUDA_KERNELS=.kfwd9/v/<name>) alternated, second round reversed.
# 2. selftest 8 (local, zigzag, dcp; every mask kind, D 64/128, bf16/f16, CPU f64 reference) of the
#    correct variants (`all` with DCP_CUDA_FWD_CTAS=5), and a CPU check of 11 documents of 256 + one of 2900 (full, causal,
#    causal-blockwise) at D 128 (3 CTAs) and D 64.
# 3. kernel-bench D 64 of main and the variants (causal32k, causal128k, blockwise, works1000).
# 4. timing ablations d1 d2 d4 d8 d7 (wrong results) on works1000, onework, blockwise.
# 5. PyTorch cuDNN / flash on the base JSON (torch_ref.py); ncu of main's forward on works1000.
# A table last; everything in $OUT/kfwd9.tgz.
set -u
B=${B:-.kfwd9/dcp}; V=${V:-.kfwd9/v}; OUTD=${OUT:-/tmp/kfwd9_out}
R=/tmp/kfwd9; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kfwd9.tgz" -C /tmp kfwd9; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
LIMIT=${LIMIT:-195}   # no ncu profile started after this many seconds
left() { [ $((SECONDS - T0)) -lt "$1" ]; }
{ command -v nvidia-smi > /dev/null && timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader; } 2>&1 | tee "$R/gpu.txt"
S128=causal32k,causal128k,blockwise,works1000,onework,sharedq
S64=causal32k,causal128k,blockwise,works1000
SD=works1000,onework,blockwise
# kb NAME HEADDIM SHAPES TAG: kernel-bench of variant NAME (base = embedded kernels) into $R/kb_<TAG>.jsonl
kb() {
  local n=$1 d=$2 sh=$3 tag=$4 envv=X_KFWD9=1
  if [ "$n" != base ]; then envv="DCP_CUDA_KERNELS=$V/$n"; fi
  echo "== $n d$d $tag t=$((SECONDS - T0))"
  env "$envv" timeout 40 "$B" kernel-bench --shapes "$sh" --head-dim "$d" --repeats 3 \
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
VARS="xt hf xthf pd epi all"
REV="all epi pd xthf hf xt"
kb base 128 "$S128" base-d128_a
for v in $VARS; do if left 90; then kb "$v" 128 "$S128" "${v}-d128_a"; fi; done
if left 100; then kb base 128 "$S128" base-d128_b; fi
snap
for v in $REV; do if left 140; then kb "$v" 128 "$S128" "${v}-d128_b"; fi; done
if left 150; then kb base 128 "$S128" base-d128_c; fi
snap
python3 -c 'print({"batches": [[256] * 11, [2900]]})' | tr "'" '"' > "$R/c.json"
for v in all xt hf; do
  if left 175; then
    echo "== selftest $v t=$((SECONDS - T0))"
    # `all` with 5 CTAs: every CTA runs many tasks (the cross-task path of FWD_XT)
    ct=X_KFWD9=1; [ "$v" = all ] && ct=DCP_CUDA_FWD_CTAS=5
    env "$ct" DCP_CUDA_KERNELS="$V/$v" DCP_CUDA_FAMILY=sm90 timeout 45 "$B" bench-gpu --selftest 8 --planners local,zigzag,dcp \
      --timeout-s 40 --json "$R/st_$v.jsonl" > "$R/st_$v.log" 2>&1
    echo "rc=$?"; summ "$R/st_$v.jsonl" "selftest $v" | tee -a "$R/summ.txt"
  fi
  for d in 128 64; do
    if [ "$v" = all ] && left 185; then
      echo "== check d$d $v t=$((SECONDS - T0))"
      ct=X_KFWD9=1; [ "$d" = 128 ] && ct=DCP_CUDA_FWD_CTAS=3
      env "$ct" DCP_CUDA_KERNELS="$V/$v" DCP_CUDA_FAMILY=sm90 timeout 30 "$B" bench-gpu --batches "$R/c.json" --head-dim "$d" \
        --masks full,causal,causal-blockwise --planners local --check --cpu-check-tokens 3000 \
        --warmup 0 --repeats 1 --json "$R/chk_${v}_d$d.jsonl" > "$R/chk_${v}_d$d.log" 2>&1
      echo "rc=$?"; summ "$R/chk_${v}_d$d.jsonl" "check d$d $v" | tee -a "$R/summ.txt"
    fi
  done
  snap
done
i=0
for v in base xt hf all base; do
  i=$((i + 1))
  if left 205; then kb "$v" 64 "$S64" "${v}-d64_$i"; fi
done
snap
for v in d1 d2 d4 d8 d7; do if left 215; then kb "$v" 128 "$SD" "${v}-d128_a"; fi; done
snap
if left 220; then
  echo "== torch t=$((SECONDS - T0))"
  grep -E '"shape":"(causal32k|works1000|onework)"' "$R/kb_base-d128_a.jsonl" > "$R/torch_in.jsonl"
  timeout 40 python3 bench/gpu/torch_ref.py "$R/torch_in.jsonl" "$R/torch.jsonl" > "$R/torch.log" 2>&1
  echo "rc=$?"; tail -4 "$R/torch.log"
fi
snap
NCUB=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2> /dev/null | head -1)
if left "$LIMIT" && [ -n "$NCUB" ]; then
  echo "== ncu base works1000 ($NCUB) t=$((SECONDS - T0))"
  timeout 45 "$NCUB" --clock-control none --section SpeedOfLight --section WarpStateStats --section SourceCounters \
    --section MemoryWorkloadAnalysis -k regex:attn_fwd_sm90 -c 1 -o "$R/ncu_w1000" \
    "$B" kernel-bench --shapes works1000 --repeats 1 --warmup 0 --timeout-s 40 > "$R/ncu_w1000.log" 2>&1
  echo "rc=$?"
  timeout 20 "$NCUB" -i "$R/ncu_w1000.ncu-rep" > "$R/ncu_w1000.txt" 2>&1
  timeout 30 python3 bench/gpu/ncu_summary.py "$NCUB" "$R/ncu_w1000.ncu-rep" 60 > "$R/ncu_w1000_top.txt" 2>&1
  grep -E "Duration|Throughput|Warp Cycles|Issued|Executed Ipc|Active" "$R/ncu_w1000.txt" | head -16
  head -20 "$R/ncu_w1000_top.txt"
  rm -f "$R/ncu_w1000.ncu-rep"
fi
snap
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
shapes = ['causal32k', 'causal128k', 'blockwise', 'works1000', 'onework', 'sharedq']
print('fwd TFLOP/s, mean of runs (ratio to base of the same head dim); runs listed below')
print(f"{'variant':<11}" + ''.join(f"{s:>17}" for s in shapes))
for name, runs in rows.items():
    b = 'base-d' + name.split('-d')[-1]
    cells = []
    for s in shapes:
        m, mb = mean(name, s), mean(b, s)
        cells.append(f"{m:7.1f} ({m / mb:.3f})" if m and mb else f"{m:7.1f}        " if m else '-')
    print(f"{name:<11}" + ''.join(f"{c:>17}" for c in cells))
for name in ('base-d128', 'base-d64'):
    wk, ow, bw, c32 = (mean(name, s) for s in ('works1000', 'onework', 'blockwise', 'causal32k'))
    if wk and ow and bw and c32:
        print(f"{name}: works1000/onework {wk / ow:.3f}, blockwise/causal32k {bw / c32:.3f}")
for name in rows:
    wk, ow, bw = (mean(name, s) for s in ('works1000', 'onework', 'blockwise'))
    c32 = mean(name, 'causal32k') or mean('base-' + name.split('-')[-1], 'causal32k')
    if wk and ow and bw and c32 and not name.startswith('base'):
        print(f"{name}: works1000/onework {wk / ow:.3f}, blockwise/causal32k {bw / c32:.3f}")
print('runs:')
for name, runs in rows.items():
    print(f"  {name:<11}", ' | '.join(' '.join(f"{r[s]:.1f}" for r in runs if s in r) for s in shapes))
try:
    for l in open(os.path.join(R, 'torch.jsonl')):
        t = json.loads(l)
        print(f"torch {t.get('mask')} {t.get('tokens')}: cuDNN fwd {t.get('cudnn_fwd_tflops', 0):.1f}, flash fwd {t.get('flash_fwd_tflops', 0):.1f}")
except (OSError, ValueError) as e:
    print('no torch reference:', e)
PY
cat "$R/summ.txt" 2> /dev/null
echo "== done t=$((SECONDS - T0))"
snap
