#!/usr/bin/env bash
# kf16 call 1 (1x H200): LIMIT=150 timeout 160 bash .kf16/run1.sh   (carry [".kf16"]).
# .kf16/dcp = branch kf16's release binary (kernel defaults = main's SASS); kernels from directories
# (DCP_CUDA_KERNELS): v/base (main 7cd68d5's attn_fwd_sm90.cu), v/e (FWD_EPRE), v/ef (+ FWD_NOFENCE),
# v/efr (+ FWD_LATEREL 2 in the plain and half kernels).
set -u
OUTD=${OUT:-/tmp/kf16_out}
LIMIT=${LIMIT:-150}
R=/tmp/kf16c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/kf16c1.tgz" -C /tmp kf16c1; }
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
D=.kf16/dcp
BAD=""
python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[4096]]}, open('$R/splitk.json', 'w'))"
st() {  # variant tag extra-env...
  local v=$1 tag=$2; shift 2
  echo "== selftest $v $tag t=$((SECONDS - T0))"
  env "$@" DCP_CUDA_KERNELS=.kf16/v/$v DCP_CUDA_FAMILY=sm90 timeout 30 $D bench-gpu --selftest 1 \
    --planners local,zigzag,dcp --timeout-s 27 --json "$R/st_${v}_$tag.jsonl" > "$R/st_${v}_$tag.log" 2>&1; echo "rc=$?"
  summ "$R/st_${v}_$tag.jsonl" "selftest $v $tag" | tee -a "$R/summ.txt"; tail -1 "$R/summ.txt" | grep -q FAIL && BAD="$BAD $v"
}
sd() {  # variant head-dim
  local v=$1 d=$2
  echo "== short documents $v D $d t=$((SECONDS - T0))"
  DCP_CUDA_KERNELS=.kf16/v/$v timeout 40 $D bench-gpu --batches "$R/short.json" --head-dim $d \
    --masks full,causal,causal-blockwise:128:2,sliding-window:100 --planners local --check --cpu-check-tokens 100000 \
    --warmup 0 --repeats 1 --timeout-s 37 --json "$R/short_${v}_$d.jsonl" > "$R/short_${v}_$d.log" 2>&1; echo "rc=$?"
  summ "$R/short_${v}_$d.jsonl" "short documents $v D $d" | tee -a "$R/summ.txt"; tail -1 "$R/summ.txt" | grep -q FAIL && BAD="$BAD $v"
}
sk() {  # variant head-dim: split-K forward (one 4096-token sequence) vs CPU f64
  local v=$1 d=$2
  echo "== split-K $v D $d t=$((SECONDS - T0))"
  DCP_CUDA_KERNELS=.kf16/v/$v timeout 30 $D bench-gpu --batches "$R/splitk.json" --head-dim $d \
    --masks causal,full,causal-blockwise:128:2 --planners local --check --cpu-check-tokens 5000 \
    --warmup 0 --repeats 1 --timeout-s 27 --json "$R/splitk_${v}_$d.jsonl" > "$R/splitk_${v}_$d.log" 2>&1; echo "rc=$?"
  summ "$R/splitk_${v}_$d.jsonl" "split-K $v D $d" | tee -a "$R/summ.txt"; tail -1 "$R/summ.txt" | grep -q FAIL && BAD="$BAD $v"
}
st efr plain
st efr short DCP_CUDA_FWD_SHORT=1000000

sk efr 128
sd efr 128
case " $BAD " in *" efr "*) ;; *) ;; esac
snap
SH=works1000,onework,blockwise,causal32k,lambda,packed
kb() {
  local v=$1 tag=$2 d=$3 sh=$4
  case " $BAD " in *" $v "*) echo "== skip $v (failed)"; return;; esac
  echo "== $v $tag t=$((SECONDS - T0))"
  DCP_CUDA_KERNELS=.kf16/v/$v timeout 25 $D kernel-bench --shapes "$sh" --head-dim $d --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
i=0
for v in base e ef efr efr ef e base base e ef efr; do
  i=$((i + 1)); if left 28; then kb $v "${v}-d128_$i" 128 "$SH"; fi
done
snap
for v in base efr efr base; do
  i=$((i + 1)); if left 12; then kb $v "${v}-d64_$i" 64 works1000,onework,causal32k,packed; fi
done
if left 35; then sd efr 64; fi
timeout 5 python3 .kf16/table.py "$R" > "$R/table.md" 2>&1; cat "$R/table.md"
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
