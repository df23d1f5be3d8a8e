#!/usr/bin/env bash
# kf14 call 2 (1x H200): LIMIT=175 timeout 185 bash .kf14/run2.sh   (carry [".kf14"]).
# .kf14/dcp = call 1's binary (host = main's); every variant runs its kernels from a directory
# (DCP_CUDA_KERNELS): v/base = main 7f359bb's kernels; v/kv = this branch's short-task kernel with
# FWD_KVREUSE 1 (K/V kept in the stages across a run of tasks of one kv head) and FWD_T2 0;
# v/kvt2 = the same with FWD_T2 2 (straight-line two-tile tasks, only where both stages have landed).
set -u
OUTD=${OUT:-/tmp/kf14_out}
LIMIT=${LIMIT:-175}
R=/tmp/kf14c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/kf14c2.tgz" -C /tmp kf14c2; }
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
D=.kf14/dcp
BAD=""
python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[256] * 68 + [250, 130]]}, open('$R/san.json', 'w'))"
for v in kvt2 kv; do
  echo "== selftest $v (1, every non-half launch on the short kernel, all planners) t=$((SECONDS - T0))"
  DCP_CUDA_KERNELS=.kf14/v/$v DCP_CUDA_FWD_SHORT=1000000 DCP_CUDA_FAMILY=sm90 timeout 25 $D bench-gpu --selftest 1 \
    --planners local,zigzag,dcp --timeout-s 22 --json "$R/st_$v.jsonl" > "$R/st_$v.log" 2>&1; echo "rc=$?"
  summ "$R/st_$v.jsonl" "selftest $v" | tee -a "$R/summ.txt"; tail -1 "$R/summ.txt" | grep -q FAIL && BAD="$BAD $v"
  for d in 128; do
    echo "== short documents $v D $d t=$((SECONDS - T0))"
    DCP_CUDA_KERNELS=.kf14/v/$v DCP_CUDA_FWD_SHORT=3 timeout 45 $D bench-gpu --batches "$R/short.json" --head-dim $d \
      --masks full,causal,causal-blockwise:128:2,sliding-window:100 --planners local --check --cpu-check-tokens 100000 \
      --warmup 0 --repeats 1 --timeout-s 43 --json "$R/short_${v}_$d.jsonl" > "$R/short_${v}_$d.log" 2>&1; echo "rc=$?"
    summ "$R/short_${v}_$d.jsonl" "short documents $v D $d" | tee -a "$R/summ.txt"; tail -1 "$R/summ.txt" | grep -q FAIL && BAD="$BAD $v"
  done
done
snap
SH=works1000,onework,blockwise,causal32k,lambda,packed
kb() {
  local v=$1 tag=$2
  case " $BAD " in *" $v "*) echo "== skip $v (failed)"; return;; esac
  echo "== $v $tag t=$((SECONDS - T0))"
  DCP_CUDA_KERNELS=.kf14/v/$v timeout 25 $D kernel-bench --shapes "$SH" --head-dim 128 --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
i=0
for v in base kv kvt2 kvt2 kv base base kvt2 kv; do i=$((i + 1)); if left 40; then kb $v "${v}-d128_$i"; fi; done
snap
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for v in kvt2; do
  for tool in memcheck racecheck; do
    if left 8; then
      TL=$((LIMIT - (SECONDS - T0) - 4)); if [ $tool = memcheck ] && [ $TL -gt 25 ]; then TL=25; fi
      echo "== $tool $v (70 documents of 130-256 tokens, full, D 128: the short kernel, 1120 tasks: K/V runs) t=$((SECONDS - T0))"
      DCP_CUDA_KERNELS=.kf14/v/$v timeout -k 3 $TL $CS --tool $tool --print-limit 5 $D bench-gpu \
        --batches "$R/san.json" --masks full --head-dim 128 --planners local --warmup 0 --repeats 1 --timeout-s 40 \
        > "$R/san_${tool}_$v.txt" 2>&1; echo "rc=$?"
      grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard" "$R/san_${tool}_$v.txt" | head -4 | sed "s/^/$v $tool: /" | tee -a "$R/summ.txt"
    fi
  done
done
timeout 5 python3 .kf14/table.py "$R" 128 > "$R/table.md" 2>&1; cat "$R/table.md"
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
