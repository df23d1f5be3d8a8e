#!/usr/bin/env bash
# kf19 call 2 (1x H200): LIMIT=125 timeout 132 bash .kf19/run2.sh   (carry [".kf19"]).
# Call 1's processes were slower than planned (cold machine: the first kernel-bench and several
# checks hit their timeouts); here: longer timeouts, ow dropped (works1000 -3 % in call 1),
# base / rs / el / z0 alternated, the checks call 1 did not finish.
# .kf19/dcp = branch kf19's release build; its embedded kernels are main's SASS unless
#   DCP_CUDA_FWD_HALF_AT (rsplit / start:64:end / rsplit:16:end) -> the half kernel with FWD_HALFEND,
#   DCP_CUDA_FWD_OWARP=1 -> every forward kernel with FWD_OWARP (per-warp O stores, 16-row O boxes);
# .kf19/v/z0 = this branch's kernels with FWD_Z0 on in the plain / short builds (DCP_CUDA_KERNELS).
set -u
OUTD=${OUT:-/tmp/kf19_out}
LIMIT=${LIMIT:-125}
R=/tmp/kf19c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/kf19c2.tgz" -C /tmp kf19c2; }
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
D=.kf19/dcp
BAD=""
python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[4096]]}, open('$R/splitk.json', 'w'))
json.dump({'batches': [[256] * 28 + [250, 130]]}, open('$R/san.json', 'w'))"
# variant -> environment
venv() {
  case $1 in
    base) echo DCP_CUDA_FWD_HALF_AT=start;;
    rs) echo DCP_CUDA_FWD_HALF_AT=rsplit;;
    el) echo DCP_CUDA_FWD_HALF_AT=start:64:end;;
    rse) echo DCP_CUDA_FWD_HALF_AT=rsplit:16:end;;
    ow) echo DCP_CUDA_FWD_OWARP=1;;
    z0) echo DCP_CUDA_KERNELS=.kf19/v/z0;;
    z0s) echo DCP_CUDA_KERNELS=.kf19/v/z0 DCP_CUDA_FWD_SHORT=1000000;;
    z0p) echo DCP_CUDA_KERNELS=.kf19/v/z0 DCP_CUDA_FWD_HALF=0;;
  esac
}
st() {
  local v=$1
  echo "== selftest $v t=$((SECONDS - T0))"
  env $(venv $v) DCP_CUDA_FAMILY=sm90 timeout 25 $D bench-gpu --selftest 1 \
    --planners local,zigzag,dcp --timeout-s 22 --json "$R/st_$v.jsonl" > "$R/st_$v.log" 2>&1; echo "rc=$?"
  summ "$R/st_$v.jsonl" "selftest $v" | tee -a "$R/summ.txt"; tail -1 "$R/summ.txt" | grep -q FAIL && BAD="$BAD ${v:0:2}"
}
chk() {  # variant tag batches masks cpu-tokens timeout
  local v=$1 tag=$2 b=$3 m=$4 ct=$5 to=$6
  echo "== check $v $tag t=$((SECONDS - T0))"
  env $(venv $v) timeout $to $D bench-gpu --batches "$R/$b.json" --head-dim 128 \
    --masks $m --planners local --check --cpu-check-tokens $ct \
    --warmup 0 --repeats 1 --timeout-s $((to - 3)) --json "$R/${tag}_$v.jsonl" > "$R/${tag}_$v.log" 2>&1; echo "rc=$?"
  summ "$R/${tag}_$v.jsonl" "$tag $v" | tee -a "$R/summ.txt"; tail -1 "$R/summ.txt" | grep -q FAIL && BAD="$BAD ${v:0:2}"
}
san() {  # tool variant masks
  local tool=$1 v=$2 m=$3
  echo "== $tool $v $m (30 documents of 130-256 tokens, D 128) t=$((SECONDS - T0))"
  env $(venv $v) timeout -k 2 14 $CS --tool $tool --print-limit 5 $D bench-gpu \
    --batches "$R/san.json" --masks $m --head-dim 128 --planners local --warmup 0 --repeats 1 --timeout-s 40 \
    > "$R/san_${tool}_${v}_${m%%:*}.txt" 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard" "$R/san_${tool}_${v}_${m%%:*}.txt" | head -4 | sed "s/^/$v $tool $m: /" | tee -a "$R/summ.txt"
}
SH=works1000,onework,blockwise,causal32k,lambda,packed
i=0
kb() {
  local v=$1 to=${2:-25}
  case " $BAD " in *" $v "*) echo "== skip $v (failed)"; return;; esac
  i=$((i + 1))
  echo "== $v $i t=$((SECONDS - T0))"
  env $(venv $v) timeout $to $D kernel-bench --shapes "$SH" --head-dim 128 --repeats 3 \
    --json "$R/kb_${v}-d128_$i.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
kb base 45
for v in rs el z0; do kb $v 30; done
snap
chk rse splitk splitk causal-blockwise:128:2 5000 30
chk rse short short causal-blockwise:128:2 100000 25
snap
for v in z0 el rs base; do if left 50; then kb $v; fi; done
snap
for tool in memcheck racecheck; do
  if left 40; then san $tool z0 full; fi
  if left 37; then san $tool rse causal-blockwise:128:2; fi
done
snap
for v in base rs el z0; do if left 14; then kb $v; fi; done
snap
if left 12; then chk z0p splitk splitk causal-blockwise:128:2 5000 11; fi
timeout 5 python3 .kf19/table.py "$R" 128 > "$R/table.md" 2>&1; cat "$R/table.md"
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
