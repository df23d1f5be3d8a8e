#!/usr/bin/env bash
# kf15 call 2 (1x H200): LIMIT=165 timeout 175 bash .kf15/run2.sh   (carry [".kf15"]).
# .kf15/dcp = call 1's binary; kernels from directories (DCP_CUDA_KERNELS): v/base2 (this branch's kernels,
# defaults: SASS-identical to main's), v/nm (FWD_NOMAX 1: no row maximum for warps whose rows all have one),
# v/nmt1 (test mode 1: the guard trips, exact power-of-two fix), v/nmt2 (test mode 2: the recompute path).
set -u
OUTD=${OUT:-/tmp/kf15_out}
LIMIT=${LIMIT:-165}
R=/tmp/kf15c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/kf15c2.tgz" -C /tmp kf15c2; }
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
D=.kf15/dcp
BAD=""
python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))"
st() {  # variant tag extra-env...
  local v=$1 tag=$2; shift 2
  echo "== selftest $v $tag t=$((SECONDS - T0))"
  env "$@" DCP_CUDA_KERNELS=.kf15/v/$v DCP_CUDA_FAMILY=sm90 timeout 30 $D bench-gpu --selftest 1 \
    --planners local,zigzag,dcp --timeout-s 27 --json "$R/st_${v}_$tag.jsonl" > "$R/st_${v}_$tag.log" 2>&1; echo "rc=$?"
  summ "$R/st_${v}_$tag.jsonl" "selftest $v $tag" | tee -a "$R/summ.txt"; tail -1 "$R/summ.txt" | grep -q FAIL && BAD="$BAD $v"
}
sd() {  # variant head-dim
  local v=$1 d=$2
  echo "== short documents $v D $d t=$((SECONDS - T0))"
  DCP_CUDA_KERNELS=.kf15/v/$v timeout 40 $D bench-gpu --batches "$R/short.json" --head-dim $d \
    --masks full,causal,causal-blockwise:128:2,sliding-window:100 --planners local --check --cpu-check-tokens 100000 \
    --warmup 0 --repeats 1 --timeout-s 37 --json "$R/short_${v}_$d.jsonl" > "$R/short_${v}_$d.log" 2>&1; echo "rc=$?"
  summ "$R/short_${v}_$d.jsonl" "short documents $v D $d" | tee -a "$R/summ.txt"; tail -1 "$R/summ.txt" | grep -q FAIL && BAD="$BAD $v"
}
st nm plain
st nm short DCP_CUDA_FWD_SHORT=1000000
st nmt1 plain
st nmt2 plain
st nmt2 short DCP_CUDA_FWD_SHORT=1000000
sd nm 128
case " $BAD " in *" nmt1 "*|*" nmt2 "*) BAD="$BAD nm";; esac
snap
SH=works1000,onework,blockwise,causal32k,lambda,packed
kb() {
  local v=$1 tag=$2 d=$3 sh=$4
  case " $BAD " in *" $v "*) echo "== skip $v (failed)"; return;; esac
  echo "== $v $tag t=$((SECONDS - T0))"
  DCP_CUDA_KERNELS=.kf15/v/$v timeout 25 $D kernel-bench --shapes "$sh" --head-dim $d --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
i=0
for v in base2 nm nm base2 base2 nm nm base2 base2 nm; do
  i=$((i + 1)); if left 30; then kb $v "${v}-d128_$i" 128 "$SH"; fi
done
snap
python3 -c "
import json
json.dump({'batches': [[256] * 68 + [250, 130]]}, open('$R/san.json', 'w'))"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  for m in full causal; do
    if left 8; then
      TL=$((LIMIT - (SECONDS - T0) - 4)); if [ $TL -gt 25 ]; then TL=25; fi
      echo "== $tool nm (70 documents of 130-256 tokens, $m, D 128) t=$((SECONDS - T0))"
      DCP_CUDA_KERNELS=.kf15/v/nm timeout -k 3 $TL $CS --tool $tool --print-limit 5 $D bench-gpu \
        --batches "$R/san.json" --masks $m --head-dim 128 --planners local --warmup 0 --repeats 1 --timeout-s 40 \
        > "$R/san_${tool}_$m.txt" 2>&1; echo "rc=$?"
      grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard" "$R/san_${tool}_$m.txt" | head -4 | sed "s/^/nm $tool $m: /" | tee -a "$R/summ.txt"
    fi
  done
done
timeout 5 python3 .kf15/table.py "$R" 128 > "$R/table.md" 2>&1; cat "$R/table.md"
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
