#!/usr/bin/env bash
# kf13b call 2 (1x H200): LIMIT=68 timeout 72 bash .kf13b/run2.sh   (carry [".kf13b"]).
# .kf13b/dcp = branch kf13b at cb1bbd9 (= main): base = its embedded kernels; cvt = the same binary
# with DCP_CUDA_KERNELS=.kf13b/v/cvt (this branch's kernels with FWD_ONECVT 1: O converted to
# the work's one 16-bit type in the epilogue instead of to both).
set -u
OUTD=${OUT:-/tmp/kf13b_out}
LIMIT=${LIMIT:-68}
R=/tmp/kf13bc2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/kf13bc2.tgz" -C /tmp kf13bc2; }
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
V=.kf13b/v/cvt
echo "== selftest cvt (2, all planners, CPU f64) t=$((SECONDS - T0))"
DCP_CUDA_KERNELS=$V DCP_CUDA_FAMILY=sm90 timeout 25 .kf13b/dcp bench-gpu --selftest 2 --planners local,zigzag,dcp --timeout-s 22 \
  --json "$R/st_cvt.jsonl" > "$R/st_cvt.log" 2>&1; echo "rc=$?"
summ "$R/st_cvt.jsonl" "selftest cvt" | tee -a "$R/summ.txt"
BAD=0; tail -1 "$R/summ.txt" | grep -q FAIL && BAD=1
SH=works1000,blockwise,causal32k,lambda,packed
kb() {
  local v=$1 tag=$2
  echo "== $v $tag t=$((SECONDS - T0))"
  if [ "$v" = base ]; then
    timeout 20 .kf13b/dcp kernel-bench --shapes "$SH" --head-dim 128 --repeats 3 --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +sm|rror|panic'
  else
    DCP_CUDA_KERNELS=$V timeout 20 .kf13b/dcp kernel-bench --shapes "$SH" --head-dim 128 --repeats 3 --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +sm|rror|panic'
  fi
}
if [ $BAD = 0 ]; then
  i=0
  for v in base cvt cvt base; do i=$((i + 1)); if left 30; then kb $v "${v}-d128_$i"; fi; done
  snap
  python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250]
json.dump({'batches': [[L[i % len(L)] for i in range(30)]]}, open('$R/short.json', 'w'))"
  CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
  for tool in memcheck racecheck; do
    if left 12; then
      echo "== $tool cvt (30 short documents, full + causal-blockwise:128:2, D 128) t=$((SECONDS - T0))"
      DCP_CUDA_KERNELS=$V DCP_CUDA_FAMILY=sm90 timeout -k 3 $((LIMIT - (SECONDS - T0) - 4)) $CS --tool $tool --print-limit 5 .kf13b/dcp bench-gpu \
        --batches "$R/short.json" --masks full,causal-blockwise:128:2 --head-dim 128 --planners local --warmup 0 --repeats 1 --timeout-s 30 \
        > "$R/san_$tool.txt" 2>&1; echo "rc=$?"
      grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard" "$R/san_$tool.txt" | head -4
    fi
  done
  for v in cvt base; do i=$((i + 1)); if left 14; then kb $v "${v}-d128_$i"; fi; done
fi
timeout 5 python3 .kf13b/table.py "$R" 128 > "$R/table.md" 2>&1; cat "$R/table.md"
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
