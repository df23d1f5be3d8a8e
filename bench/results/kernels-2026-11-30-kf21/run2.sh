#!/usr/bin/env bash
# kf21 call 2 (1x H200): LIMIT=125 timeout 131 bash .kf21/run2.sh   (carry [".kf21"]).
# .kf21/dcp = branch kf21 commit 5fac08c release: main's kernels by default; opt-in host switches
#   DCP_CUDA_FWD_SHORT_ED=1 (short kernel with FWD_ED: the epilogue deferred under the next S),
#   DCP_CUDA_FWD_SHORT_QWG=1. .kf21/dcp_prof = call 1's (8b074ff + prof_host.diff); .kf21/prof_ed =
#   5fac08c's kernels through bench/gpu/fwd_prof.py with FWD_ED forced in the short (LATEREL 1) build.
set -u
OUTD=${OUT:-/tmp/kf21_out}
LIMIT=${LIMIT:-125}
R=/tmp/kf21c2; rm -rf "$R"; mkdir -p "$R/pf" "$OUTD"
snap() { timeout 15 tar czf "$OUTD/kf21c2.tgz" --exclude='*.bin.gz' -C /tmp kf21c2; }
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
D=.kf21/dcp
BAD=""
python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[256] * 28 + [250, 130]]}, open('$R/san.json', 'w'))
json.dump({'batches': [[4096]]}, open('$R/splitk.json', 'w'))"
# variant -> environment (S suffix: every launch without half tiles on the short kernel)
venv() {
  local e=""
  case ${1%S} in
    base) e="DCP_CUDA_FWD_SHORT_PP=0";;
    ed) e="DCP_CUDA_FWD_SHORT_ED=1";;
    edq) e="DCP_CUDA_FWD_SHORT_ED=1 DCP_CUDA_FWD_SHORT_QWG=1";;
    edp) e="DCP_CUDA_FWD_HALF=0 DCP_CUDA_FWD_SHORT_ED=1";;
  esac
  case $1 in *S) e="$e DCP_CUDA_FWD_SHORT=1000000";; esac
  echo $e
}
bad() { case " $BAD " in *" ${1%S} "*) return 0;; esac; return 1; }
mark() { tail -1 "$R/summ.txt" | grep -q FAIL && BAD="$BAD ${1%S}"; }
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
SH=works1000,onework
i=0
kb() {
  local v=$1 to=${2:-25}
  if bad $v; then echo "== skip $v (failed)"; return; fi
  i=$((i + 1))
  echo "== $v $i t=$((SECONDS - T0))"
  env $(venv $v) timeout $to $D kernel-bench --shapes "$SH" --head-dim 128 --repeats 3 \
    --json "$R/kb_${v}-d128_$i.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
prof() {
  local v=$1
  echo "== profile $v t=$((SECONDS - T0))"
  mkdir -p "$R/pf/$v"
  env $(venv $v) DCP_CUDA_KERNELS=.kf21/prof_ed DCP_CUDA_PROF_DUMP="$R/pf/$v" timeout 30 .kf21/dcp_prof kernel-bench \
    --shapes works1000 --head-dim 128 --repeats 3 --json "$R/prof_$v.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
  for t in "$R/pf/$v"/*.txt; do
    [ -f "$t" ] || continue
    b=${t%.txt}.bin
    if grep -q FWD_LATEREL "$t" && [ -f "$b" ]; then
      timeout 20 python3 .kf21/offs.py "$b" "$v" > "$R/offs_$v.txt" 2>&1; cat "$R/offs_$v.txt"
      timeout 25 python3 .kf21/fwd_prof_sum.py "$b" "$v" > "$R/prof_$v.sum" 2>&1
      timeout 10 gzip -1 "$b"
    else
      rm -f "$b"
    fi
  done
}
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
kb base 70
for v in edS edqS; do if left 90; then st $v; fi; done
for v in edS edqS; do if left 80; then chk $v short short full,sliding-window:100 100000 35; fi; done
if left 70; then chk edpS splitk splitk causal-blockwise:128:2 5000 30; fi
snap
for v in ed edq base; do if left 55; then kb $v; fi; done
for v in base edq ed; do if left 45; then kb $v; fi; done
snap
if left 35; then prof ed; fi
for v in ed; do mkdir -p "$OUTD/pf_$v"; cp "$R"/pf/$v/*.gz "$R"/pf/$v/*.txt "$OUTD/pf_$v/" 2>/dev/null; done
snap
for v in ed edq base; do if left 16; then kb $v 12; fi; done
for tool in memcheck racecheck; do if left 8; then san $tool edS full; fi; done
timeout 5 python3 .kf21/table.py "$R" 128 > "$R/table.md" 2>&1; cat "$R/table.md"
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
