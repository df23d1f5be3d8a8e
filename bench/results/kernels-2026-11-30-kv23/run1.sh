#!/usr/bin/env bash
# kv23 call 1 (1x H200): LIMIT=420 timeout 430 bash .kv23/run1.sh   (carry [".kv23"]).
# .kv23/dcp = main + kf22's flat loop + FWD_KVSPLIT / FWD_QREL_EARLY (opt-in), release build.
# Variants of the short-task forward kernel (D 128): base (main's), kv (K and V barriers split),
# kvq (+ the owed Q release at the next task's first K release), kv4 / kv4q (+ FWD_FLAT 4),
# kv2q (+ FWD_FLAT 2), f3 (FWD_FLAT 3 after kf22's parity fix).
set -u
OUTD=${OUT:-/tmp/kv23_out}
LIMIT=${LIMIT:-420}
R=/tmp/kv23c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 15 tar czf "$OUTD/kv23c1.tgz" -C /tmp kv23c1; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
cat "$R/card.txt"
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
D=.kv23/dcp
BAD=""
python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[256] * 28 + [250, 130]]}, open('$R/san.json', 'w'))
json.dump({'batches': [[4096]]}, open('$R/splitk.json', 'w'))"
venv() {
  local e="" v=${1%S}; v=${v%P}
  case $v in
    base) e="DCP_CUDA_FWD_SHORT_FLAT=0";;
    kv) e="DCP_CUDA_FWD_SHORT_KVSPLIT=1";;
    kvq) e="DCP_CUDA_FWD_SHORT_KVSPLIT=2";;
    kv4) e="DCP_CUDA_FWD_SHORT_KVSPLIT=1 DCP_CUDA_FWD_SHORT_FLAT=4";;
    kv4q) e="DCP_CUDA_FWD_SHORT_KVSPLIT=2 DCP_CUDA_FWD_SHORT_FLAT=4";;
    kv2q) e="DCP_CUDA_FWD_SHORT_KVSPLIT=2 DCP_CUDA_FWD_SHORT_FLAT=2";;
    f3) e="DCP_CUDA_FWD_SHORT_FLAT=3";;
  esac
  case $1 in *PS) e="$e DCP_CUDA_FWD_HALF=0";; esac
  case $1 in *S) e="$e DCP_CUDA_FWD_SHORT=1000000";; esac
  echo $e
}
tagv() { local v=${1%S}; echo ${v%P}; }
bad() { case " $BAD " in *" $(tagv $1) "*) return 0;; esac; return 1; }
mark() { tail -1 "$R/summ.txt" | grep -q FAIL && BAD="$BAD $(tagv $1)"; }
st() {
  local v=$1
  echo "== selftest $v t=$((SECONDS - T0))"
  env $(venv $v) DCP_CUDA_FAMILY=sm90 timeout 45 $D bench-gpu --selftest 1 \
    --planners local,zigzag,dcp --timeout-s 42 --json "$R/st_$v.jsonl" > "$R/st_$v.log" 2>&1; echo "rc=$?"
  summ "$R/st_$v.jsonl" "selftest $v" | tee -a "$R/summ.txt"; mark $v
}
chk() {  # variant tag batches masks cpu-tokens timeout
  local v=$1 tag=$2 b=$3 m=$4 ct=$5 to=$6
  echo "== check $v $tag $m t=$((SECONDS - T0))"
  env $(venv $v) timeout $to $D bench-gpu --batches "$R/$b.json" --head-dim 128 \
    --masks $m --planners local --check --cpu-check-tokens $ct \
    --warmup 0 --repeats 1 --timeout-s $((to - 3)) --json "$R/${tag}_$v.jsonl" > "$R/${tag}_$v.log" 2>&1; echo "rc=$?"
  summ "$R/${tag}_$v.jsonl" "$tag $v ($m)" | tee -a "$R/summ.txt"; mark $v
}
san() {  # tool variant masks
  local tool=$1 v=$2 m=$3
  echo "== $tool $v $m (30 documents of 130-256 tokens, D 128) t=$((SECONDS - T0))"
  env $(venv $v) timeout -k 2 30 $CS --tool $tool --print-limit 5 $D bench-gpu \
    --batches "$R/san.json" --masks $m --head-dim 128 --planners local --warmup 0 --repeats 1 --timeout-s 40 \
    > "$R/san_${tool}_${v}_${m%%:*}.txt" 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard" "$R/san_${tool}_${v}_${m%%:*}.txt" | head -4 | sed "s/^/$v $tool $m: /" | tee -a "$R/summ.txt"
}
SH=works1000,onework,blockwise
i=0
kb() {
  local v=$1 to=${2:-12}
  if bad $v; then echo "== skip $v (failed)"; return; fi
  i=$((i + 1))
  echo "== $v $i t=$((SECONDS - T0))"
  env $(venv $v) timeout $to $D kernel-bench --shapes "$SH" --head-dim 128 --repeats 3 \
    --json "$R/kb_${v}-d128_$i.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
VS="kv kvq kv4 kv4q kv2q f3"
kb base 45
for v in $VS; do if left 300; then st ${v}S; fi; done
for v in kvq kv4q kv2q; do
  if left 250; then chk ${v}S short short full,sliding-window:100 100000 20; fi
  if left 240; then chk ${v}PS splitk splitk causal-blockwise:128:2 5000 12; fi
done
snap
for r in 1 2 3; do for v in base $VS; do if left 60; then kb $v; fi; done; done
snap
for tool in memcheck racecheck; do if left 30; then san $tool kv4qS full; fi; done
if left 12; then san memcheck kvqS full; fi
timeout 5 python3 .kv23/table.py "$R" 128 > "$R/table.md" 2>&1; cat "$R/table.md"
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
