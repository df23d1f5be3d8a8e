#!/usr/bin/env bash
# kf17 call 1 (1x H200): LIMIT=150 timeout 158 bash .kf17/run1.sh   (carry [".kf17"]).
# .kf17/dcp = branch kf17's release binary (embedded kernels = main's SASS; host knows
# DCP_CUDA_FWD_HALFBITS); kernel dirs (DCP_CUDA_KERNELS): v/base = main 9f1d8d9's kernels,
# v/r = FWD_LATEREL 2 in the half kernel, v/z = FWD_FIRST0, v/hb = kf17's source with defaults off
# (FWD_HALFBITS comes from the host: DCP_CUDA_FWD_HALFBITS=1), v/all = r + z (+ HALFBITS env).
set -u
OUTD=${OUT:-/tmp/kf17_out}
LIMIT=${LIMIT:-150}
R=/tmp/kf17c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/kf17c1.tgz" -C /tmp kf17c1; }
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
D=.kf17/dcp
BAD=""
python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[4096]]}, open('$R/splitk.json', 'w'))
json.dump({'batches': [[256] * 28 + [250, 130]]}, open('$R/san.json', 'w'))"
venv() { case $1 in hb|all) echo DCP_CUDA_FWD_HALFBITS=1;; *) echo DCP_CUDA_FWD_HALFBITS=0;; esac; }
st() {  # variant tag extra-env...
  local v=$1 tag=$2; shift 2
  echo "== selftest $v $tag t=$((SECONDS - T0))"
  env "$@" $(venv $v) DCP_CUDA_KERNELS=.kf17/v/$v DCP_CUDA_FAMILY=sm90 timeout 25 $D bench-gpu --selftest 1 \
    --planners local,zigzag,dcp --timeout-s 22 --json "$R/st_${v}_$tag.jsonl" > "$R/st_${v}_$tag.log" 2>&1; echo "rc=$?"
  summ "$R/st_${v}_$tag.jsonl" "selftest $v $tag" | tee -a "$R/summ.txt"; tail -1 "$R/summ.txt" | grep -q FAIL && BAD="$BAD $v"
}
chk() {  # variant tag batches masks cpu-tokens timeout
  local v=$1 tag=$2 b=$3 m=$4 ct=$5 to=$6
  echo "== check $v $tag t=$((SECONDS - T0))"
  env $(venv $v) DCP_CUDA_KERNELS=.kf17/v/$v timeout $to $D bench-gpu --batches "$R/$b.json" --head-dim 128 \
    --masks $m --planners local --check --cpu-check-tokens $ct \
    --warmup 0 --repeats 1 --timeout-s $((to - 3)) --json "$R/${tag}_$v.jsonl" > "$R/${tag}_$v.log" 2>&1; echo "rc=$?"
  summ "$R/${tag}_$v.jsonl" "$tag $v" | tee -a "$R/summ.txt"; tail -1 "$R/summ.txt" | grep -q FAIL && BAD="$BAD $v"
}
st all plain
st all short DCP_CUDA_FWD_SHORT=1000000
chk all splitk splitk causal-blockwise:128:2 5000 16
snap
SH=works1000,onework,blockwise,causal32k,lambda,packed
kb() {
  local v=$1 tag=$2
  case " $BAD " in *" $v "*) echo "== skip $v (failed)"; return;; esac
  echo "== $v $tag t=$((SECONDS - T0))"
  env $(venv $v) DCP_CUDA_KERNELS=.kf17/v/$v timeout 20 $D kernel-bench --shapes "$SH" --head-dim 128 --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
i=0
for v in base r z hb all all hb z r base; do
  i=$((i + 1)); if left 40; then kb $v "${v}-d128_$i"; fi
done
snap
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  for m in causal-blockwise:128:2 full; do
    if left 20; then
      echo "== $tool all (30 documents of 130-256 tokens, $m, D 128) t=$((SECONDS - T0))"
      DCP_CUDA_FWD_HALFBITS=1 DCP_CUDA_KERNELS=.kf17/v/all timeout -k 2 12 $CS --tool $tool --print-limit 5 $D bench-gpu \
        --batches "$R/san.json" --masks $m --head-dim 128 --planners local --warmup 0 --repeats 1 --timeout-s 40 \
        > "$R/san_${tool}_${m%%:*}.txt" 2>&1; echo "rc=$?"
      grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard" "$R/san_${tool}_${m%%:*}.txt" | head -4 | sed "s/^/all $tool $m: /" | tee -a "$R/summ.txt"
    fi
  done
done
snap
if left 22; then chk all short short full,causal-blockwise:128:2 100000 20; fi
for v in base r z hb all; do
  i=$((i + 1)); if left 7; then kb $v "${v}-d128_$i"; fi
done
timeout 5 python3 .kf17/table.py "$R" 128 > "$R/table.md" 2>&1; cat "$R/table.md"
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
