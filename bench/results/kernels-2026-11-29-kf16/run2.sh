#!/usr/bin/env bash
# kf16 call 2 (1x H200): LIMIT=58 timeout 64 bash .kf16/run2.sh   (carry [".kf16"]).
# .kf16/dcp = branch kf16's release binary with the new defaults embedded (FWD_EPRE at D 128; FWD_LATEREL 2
# in the half kernel at D 128); v/base = main 7cd68d5's attn_fwd_sm90.cu (DCP_CUDA_KERNELS).
set -u
OUTD=${OUT:-/tmp/kf16_out}
LIMIT=${LIMIT:-58}
R=/tmp/kf16c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/kf16c2.tgz" -C /tmp kf16c2; }
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
python3 -c "
import json
json.dump({'batches': [[4096]]}, open('$R/splitk.json', 'w'))
json.dump({'batches': [[256] * 68 + [250, 130]]}, open('$R/san.json', 'w'))"
echo "== selftest new (embedded) t=$((SECONDS - T0))"
DCP_CUDA_FAMILY=sm90 timeout 20 $D bench-gpu --selftest 1 --planners local,zigzag,dcp --timeout-s 18 \
  --json "$R/st_new.jsonl" > "$R/st_new.log" 2>&1; echo "rc=$?"
summ "$R/st_new.jsonl" "selftest new" | tee -a "$R/summ.txt"
SH=works1000,onework,blockwise,causal32k,lambda,packed
kb() {
  local v=$1 tag=$2
  echo "== $v $tag t=$((SECONDS - T0))"
  if [ "$v" = base ]; then export DCP_CUDA_KERNELS=.kf16/v/base; else unset DCP_CUDA_KERNELS; fi
  timeout 12 $D kernel-bench --shapes "$SH" --head-dim 128 --repeats 3 --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
  unset DCP_CUDA_KERNELS
}
i=0
for v in base new new base base new; do
  i=$((i + 1)); if left 24; then kb $v "${v}-d128_$i"; fi
done
snap
echo "== split-K causal-blockwise (new) t=$((SECONDS - T0))"
timeout 14 $D bench-gpu --batches "$R/splitk.json" --head-dim 128 --masks causal-blockwise:128:2 --planners local \
  --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --timeout-s 12 --json "$R/splitk_new.jsonl" > "$R/splitk_new.log" 2>&1; echo "rc=$?"
summ "$R/splitk_new.jsonl" "split-K causal-blockwise new" | tee -a "$R/summ.txt"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  for m in full causal-blockwise:128:2; do
    if left 3; then
      TL=$((LIMIT - (SECONDS - T0) - 2)); if [ $TL -gt 12 ]; then TL=12; fi
      echo "== $tool new (70 documents of 130-256 tokens, $m, D 128) t=$((SECONDS - T0))"
      timeout -k 2 $TL $CS --tool $tool --print-limit 5 $D bench-gpu --batches "$R/san.json" --masks $m --head-dim 128 \
        --planners local --warmup 0 --repeats 1 --timeout-s 40 > "$R/san_${tool}_${m%%:*}.txt" 2>&1; echo "rc=$?"
      grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard" "$R/san_${tool}_${m%%:*}.txt" | head -4 | sed "s/^/new $tool $m: /" | tee -a "$R/summ.txt"
    fi
  done
done
timeout 5 python3 .kf16/table.py "$R" 128 > "$R/table.md" 2>&1; cat "$R/table.md"
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
