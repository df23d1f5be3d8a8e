#!/usr/bin/env bash
# kfwd (issue 10, D 128 forward): ONE call on 1x H200, run from the repository root:
#   bash .kfwd8/run.sh        (carry [".kfwd8"], kind nvidia-h200, timeout 200 s)
# 1. kernel-bench causal32k,causal128k D 128: main's kernel (.kfwd8/dcp, embedded, no override) alternated
#    with the six variants (DCP_CUDA_KERNELS=.kfwd8/v/<name>), base first and last, two rounds.
# 2. PyTorch flash / cuDNN on the same shapes (torch_ref.py on base's JSON).
# 3. selftest 8 (local, zigzag, dcp; D 64 / 128, bf16 / f16, against the CPU f64 reference) and a
#    3000-token CPU check of the two most promising variants (sp, pv2).
# 4. kernel-bench D 64 of them (and fdlz) next to main's kernel. A table last; everything in $OUT/kfwd8.tgz.
set -u
B=${B:-.kfwd8/dcp}; V=${V:-.kfwd8/v}; OUTD=${OUT:-/tmp/kfwd8_out}
R=/tmp/kfwd8; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/kfwd8.tgz" -C /tmp kfwd8; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
LIMIT=${LIMIT:-185}   # seconds after which optional steps are skipped
left() { [ $((SECONDS - T0)) -lt "$1" ]; }
{ command -v nvidia-smi > /dev/null && timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader; } 2>&1 | tee "$R/gpu.txt"
# kb NAME HEADDIM TAG: kernel-bench of variant NAME (base = embedded kernels) into $R/kb_<TAG>.jsonl
kb() {
  local n=$1 d=$2 tag=$3 envv=X_KFWD8=1
  if [ "$n" != base ]; then envv="DCP_CUDA_KERNELS=$V/$n"; fi
  echo "== $n d$d $tag t=$((SECONDS - T0))"
  env "$envv" timeout 30 "$B" kernel-bench --shapes causal32k,causal128k --head-dim "$d" --repeats 3 \
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
VARS="fd lz fdlz fdlzpp sp pv2"
REV="pv2 sp fdlzpp fdlz lz fd"
i=0
kb base 128 base-d128_a
for v in $VARS; do if left 100; then kb "$v" 128 "${v}-d128_a"; fi; done
if left 110; then kb base 128 base-d128_b; fi
snap
for v in $REV; do if left 120; then kb "$v" 128 "${v}-d128_b"; fi; done
if left 140; then kb base 128 base-d128_c; fi
snap
if left 130; then
  echo "== torch t=$((SECONDS - T0))"
  timeout 40 python3 bench/gpu/torch_ref.py "$R/kb_base-d128_a.jsonl" "$R/torch.jsonl" > "$R/torch.log" 2>&1
  echo "rc=$?"; tail -4 "$R/torch.log"
fi
snap
echo '{"batches": [[3000], [1500, 700, 900]]}' > "$R/c.json"
for v in sp pv2; do
  if left 150; then
    echo "== selftest $v t=$((SECONDS - T0))"
    DCP_CUDA_KERNELS="$V/$v" DCP_CUDA_FAMILY=sm90 timeout 40 "$B" bench-gpu --selftest 8 --planners local,zigzag,dcp \
      --timeout-s 35 --json "$R/st_$v.jsonl" > "$R/st_$v.log" 2>&1
    echo "rc=$?"; summ "$R/st_$v.jsonl" "selftest $v" | tee -a "$R/summ.txt"
  fi
  if left 160; then
    echo "== check d128 $v t=$((SECONDS - T0))"
    DCP_CUDA_KERNELS="$V/$v" DCP_CUDA_FAMILY=sm90 timeout 25 "$B" bench-gpu --batches "$R/c.json" --head-dim 128 \
      --masks causal,causal-blockwise:128:2,lambda:64:512 --planners local,zigzag --check --cpu-check-tokens 3000 \
      --warmup 0 --repeats 1 --json "$R/chk_$v.jsonl" > "$R/chk_$v.log" 2>&1
    echo "rc=$?"; summ "$R/chk_$v.jsonl" "check d128 $v" | tee -a "$R/summ.txt"
  fi
  snap
done
for v in base sp pv2 fdlz base; do
  i=$((i + 1))
  if left "$LIMIT"; then kb "$v" 64 "${v}-d64_$i"; fi
done
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
print('fwd TFLOP/s (each run; ratio = mean / mean of base in the same head dim)')
print(f"{'variant':<12} {'causal32k':<28} {'causal128k':<28} {'x base 32k':>10} {'x base 128k':>11}")
for name, runs in rows.items():
    d = '128' if name.endswith('128') else '64'
    b = "base-d" + d
    f = lambda s: ' '.join(f"{r[s]:.1f}" for r in runs if s in r)
    q = lambda s: (f"{mean(name, s) / mean(b, s):.3f}" if mean(name, s) and mean(b, s) else '-')
    print(f"{name:<12} {f('causal32k'):<28} {f('causal128k'):<28} {q('causal32k'):>10} {q('causal128k'):>11}")
try:
    for l in open(os.path.join(R, 'torch.jsonl')):
        t = json.loads(l)
        print(f"cuDNN {t['tokens']} d{t['head_dim']}: fwd {t['cudnn_fwd_tflops']:.1f}, flash {t['flash_fwd_tflops']:.1f}")
except (OSError, ValueError, KeyError) as e:
    print('no torch reference:', e)
PY
cat "$R/summ.txt" 2> /dev/null
echo "== done t=$((SECONDS - T0))"
snap
