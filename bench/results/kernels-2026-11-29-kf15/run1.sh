#!/usr/bin/env bash
# kf15 call 1 (1x H200): LIMIT=150 timeout 160 bash .kf15/run1.sh   (carry [".kf15"]).
# .kf15/dcp = branch kf15's release binary (its embedded forward = main's: FWD_EMU 0, SASS-identical);
# every variant runs its kernels from a directory (DCP_CUDA_KERNELS): v/base (FWD_EMU 0), v/e4 (0x8080:
# 1/8 of the exponentials on the FMA pipe), v/e8 (0x8888: 1/4), v/e12 (0xA4A4: 3/8), v/e12b4 (3/8 in
# the first 64-key half, 1/8 in the second), v/eall (0xFFFF: every exponential emulated, correctness only).
set -u
OUTD=${OUT:-/tmp/kf15_out}
LIMIT=${LIMIT:-150}
R=/tmp/kf15c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/kf15c1.tgz" -C /tmp kf15c1; }
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
# every exponential emulated: the strongest check of the emulation (all kernels: plain, short, half; D 64/128; bf16/f16)
st eall plain
st eall short DCP_CUDA_FWD_SHORT=1000000
sd eall 128
sd eall 64
case " $BAD " in *" eall "*) BAD="$BAD e4 e8 e12 e12b4";; esac
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
for v in base e4 e8 e12 e12b4 e12b4 e12 e8 e4 base base e8 e12 e12b4 e4; do
  i=$((i + 1)); if left 45; then kb $v "${v}-d128_$i" 128 "$SH"; fi
done
snap
for v in base e8 e12 e12 e8 base; do
  i=$((i + 1)); if left 22; then kb $v "${v}-d64_$i" 64 causal32k,onework,packed; fi
done
snap
if left 12; then st e8 plain; fi
timeout 5 python3 .kf15/table.py "$R" > "$R/table.md" 2>&1; cat "$R/table.md"
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
