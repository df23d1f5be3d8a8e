#!/usr/bin/env bash
# kf18 call 1 (1x H200): LIMIT=150 timeout 158 bash .kf18/run1.sh   (carry [".kf18"]).
# .kf18/dcp = branch kf18's release binary (+ kf13b's prof_host.diff, measurement hook only) whose
# embedded kernels are main's SASS unless DCP_CUDA_FWD_HALF_AT=end|split (then the half kernel is
# compiled with FWD_HALFEND and the host orders the half tiles last / split);
# .kf18/prof_main = main's kernels with the clock stamps (main's bench/gpu/fwd_prof.py),
# .kf18/prof_new = this branch's kernels with the stamps (this branch's fwd_prof.py).
set -u
OUTD=${OUT:-/tmp/kf18_out}
LIMIT=${LIMIT:-150}
R=/tmp/kf18c1; rm -rf "$R"; mkdir -p "$R/pf" "$R/pf_end" "$OUTD"
snap() { timeout 15 tar czf "$OUTD/kf18c1.tgz" -C /tmp kf18c1; }
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
json.dump({'batches': [[4096]]}, open('$R/splitk.json', 'w'))
json.dump({'batches': [[256] * 28 + [250, 130]]}, open('$R/san.json', 'w'))"
venv() { case $1 in base) echo DCP_CUDA_FWD_HALF_AT=start;; *) echo DCP_CUDA_FWD_HALF_AT=$1;; esac; }
st() {
  local v=$1
  echo "== selftest $v t=$((SECONDS - T0))"
  env $(venv $v) DCP_CUDA_FAMILY=sm90 timeout 25 $D bench-gpu --selftest 1 \
    --planners local,zigzag,dcp --timeout-s 22 --json "$R/st_$v.jsonl" > "$R/st_$v.log" 2>&1; echo "rc=$?"
  summ "$R/st_$v.jsonl" "selftest $v" | tee -a "$R/summ.txt"; tail -1 "$R/summ.txt" | grep -q FAIL && BAD="$BAD $v"
}
chk() {  # variant tag batches masks cpu-tokens timeout
  local v=$1 tag=$2 b=$3 m=$4 ct=$5 to=$6
  echo "== check $v $tag t=$((SECONDS - T0))"
  env $(venv $v) timeout $to $D bench-gpu --batches "$R/$b.json" --head-dim 128 \
    --masks $m --planners local --check --cpu-check-tokens $ct \
    --warmup 0 --repeats 1 --timeout-s $((to - 3)) --json "$R/${tag}_$v.jsonl" > "$R/${tag}_$v.log" 2>&1; echo "rc=$?"
  summ "$R/${tag}_$v.jsonl" "$tag $v" | tee -a "$R/summ.txt"; tail -1 "$R/summ.txt" | grep -q FAIL && BAD="$BAD $v"
}
SH=works1000,onework,blockwise,causal32k,lambda,packed
kb() {
  local v=$1 tag=$2
  case " $BAD " in *" $v "*) echo "== skip $v (failed)"; return;; esac
  echo "== $v $tag t=$((SECONDS - T0))"
  env $(venv $v) timeout 20 $D kernel-bench --shapes "$SH" --head-dim 128 --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
st end
st split
chk end splitk splitk causal-blockwise:128:2 5000 16
chk split splitk splitk causal-blockwise:128:2 5000 16
snap
i=0
for v in base end split; do i=$((i + 1)); if left 60; then kb $v "${v}-d128_$i"; fi; done
# The profile of main's kernels (item 1): raw dumps gzipped and snapped before anything else.
if left 50; then
  echo "== profile main t=$((SECONDS - T0))"
  DCP_CUDA_KERNELS=.kf18/prof_main DCP_CUDA_PROF_DUMP="$R/pf" timeout 25 $D kernel-bench --shapes blockwise,works1000 \
    --head-dim 128 --repeats 3 --json "$R/kb_prof.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
  for f in "$R"/pf/*.bin; do [ -f "$f" ] && timeout 10 gzip -1 "$f"; done
  ls -la "$R/pf"
  snap
fi
for v in split end base; do i=$((i + 1)); if left 40; then kb $v "${v}-d128_$i"; fi; done
snap
if left 35; then chk end short short full,causal-blockwise:128:2 100000 20; fi
if left 30; then chk split short short full,causal-blockwise:128:2 100000 20; fi
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  for v in end split; do
    if left 25; then
      echo "== $tool $v (30 documents of 130-256 tokens, causal-blockwise:128:2, D 128) t=$((SECONDS - T0))"
      env $(venv $v) timeout -k 2 12 $CS --tool $tool --print-limit 5 $D bench-gpu \
        --batches "$R/san.json" --masks causal-blockwise:128:2 --head-dim 128 --planners local --warmup 0 --repeats 1 --timeout-s 40 \
        > "$R/san_${tool}_$v.txt" 2>&1; echo "rc=$?"
      grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard" "$R/san_${tool}_$v.txt" | head -4 | sed "s/^/$v $tool: /" | tee -a "$R/summ.txt"
    fi
  done
done
snap
for v in base end split; do i=$((i + 1)); if left 14; then kb $v "${v}-d128_$i"; fi; done
snap
if left 12; then
  echo "== profile end t=$((SECONDS - T0))"
  DCP_CUDA_FWD_HALF_AT=end DCP_CUDA_KERNELS=.kf18/prof_new DCP_CUDA_PROF_DUMP="$R/pf_end" timeout 10 $D kernel-bench --shapes blockwise \
    --head-dim 128 --repeats 3 --json "$R/kb_prof_end.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
  for f in "$R"/pf_end/*.bin; do [ -f "$f" ] && timeout 5 gzip -1 "$f"; done
fi
timeout 5 python3 .kf18/table.py "$R" 128 > "$R/table.md" 2>&1; cat "$R/table.md"
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
