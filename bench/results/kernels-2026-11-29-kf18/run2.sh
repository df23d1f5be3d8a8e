#!/usr/bin/env bash
# kf18 call 2 (1x H200): LIMIT=90 timeout 96 bash .kf18/run2.sh   (carry [".kf18"]).
# .kf18/dcp = call 1's binary (env DCP_CUDA_FWD_HALF_AT unset: main's host); kernel dirs
# (DCP_CUDA_KERNELS): v/base = main 1c71233's kernels, v/opf1 / v/opf2 = this branch's source with
# FWD_OPF 1 (the producer prefetches the O tensor map) / 2 (the storing consumer thread does).
set -u
OUTD=${OUT:-/tmp/kf18_out}
LIMIT=${LIMIT:-90}
R=/tmp/kf18c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/kf18c2.tgz" -C /tmp kf18c2; }
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
D=.kf18/dcp
BAD=""
python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[256] * 28 + [250, 130]]}, open('$R/san.json', 'w'))"
st() {
  local v=$1
  echo "== selftest $v t=$((SECONDS - T0))"
  DCP_CUDA_KERNELS=.kf18/v/$v DCP_CUDA_FAMILY=sm90 timeout 25 $D bench-gpu --selftest 1 \
    --planners local,zigzag,dcp --timeout-s 22 --json "$R/st_$v.jsonl" > "$R/st_$v.log" 2>&1; echo "rc=$?"
  summ "$R/st_$v.jsonl" "selftest $v" | tee -a "$R/summ.txt"; tail -1 "$R/summ.txt" | grep -q FAIL && BAD="$BAD $v"
}
chk() {  # variant tag batches masks cpu-tokens timeout
  local v=$1 tag=$2 b=$3 m=$4 ct=$5 to=$6
  echo "== check $v $tag t=$((SECONDS - T0))"
  DCP_CUDA_KERNELS=.kf18/v/$v timeout $to $D bench-gpu --batches "$R/$b.json" --head-dim 128 \
    --masks $m --planners local --check --cpu-check-tokens $ct \
    --warmup 0 --repeats 1 --timeout-s $((to - 3)) --json "$R/${tag}_$v.jsonl" > "$R/${tag}_$v.log" 2>&1; echo "rc=$?"
  summ "$R/${tag}_$v.jsonl" "$tag $v" | tee -a "$R/summ.txt"; tail -1 "$R/summ.txt" | grep -q FAIL && BAD="$BAD $v"
}
SH=works1000,onework,blockwise,causal32k,lambda,packed
kb() {
  local v=$1 tag=$2
  case " $BAD " in *" $v "*) echo "== skip $v (failed)"; return;; esac
  echo "== $v $tag t=$((SECONDS - T0))"
  DCP_CUDA_KERNELS=.kf18/v/$v timeout 20 $D kernel-bench --shapes "$SH" --head-dim 128 --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
st opf1
st opf2
i=0
for v in base opf1 opf2; do i=$((i + 1)); if left 40; then kb $v "${v}-d128_$i"; fi; done
snap
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  for v in opf1 opf2; do
    if left 35; then
      echo "== $tool $v (30 documents of 130-256 tokens, full: the short kernel, D 128) t=$((SECONDS - T0))"
      DCP_CUDA_KERNELS=.kf18/v/$v timeout -k 2 12 $CS --tool $tool --print-limit 5 $D bench-gpu \
        --batches "$R/san.json" --masks full --head-dim 128 --planners local --warmup 0 --repeats 1 --timeout-s 40 \
        > "$R/san_${tool}_$v.txt" 2>&1; echo "rc=$?"
      grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard" "$R/san_${tool}_$v.txt" | head -4 | sed "s/^/$v $tool: /" | tee -a "$R/summ.txt"
    fi
  done
done
for v in opf2 opf1 base; do i=$((i + 1)); if left 22; then kb $v "${v}-d128_$i"; fi; done
snap
for v in base opf1 opf2; do i=$((i + 1)); if left 7; then kb $v "${v}-d128_$i"; fi; done
if left 14; then chk opf1 short short full,causal-blockwise:128:2 100000 12; fi
if left 6; then chk opf2 short short full,causal-blockwise:128:2 100000 12; fi
timeout 5 python3 .kf18/table.py "$R" 128 > "$R/table.md" 2>&1; cat "$R/table.md"
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
