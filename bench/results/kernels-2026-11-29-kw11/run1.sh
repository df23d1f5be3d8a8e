#!/usr/bin/env bash
# kw11 call 1 (issue 10, works1000 backward), 1x H200: lead's main binary (.kw11/dcp, "base")
# against this branch's binary (.kw11/dcpk) with DCP_CUDA_BWD_CHAIN=1 ("ch": chains, every other
# task reversed), =fwd ("cf": chains, all forward), =0 ("off": the branch with chains off).
# Checks first (CPU f64 on a batch that chains; selftest), then op times, then kernel-bench
# alternated, then memcheck if time is left. Everything under $OUT/r1.tgz.
set -u
P=.kw11; BB=$P/dcp; BN=$P/dcpk
R=/tmp/r1; mkdir -p $R
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
snap() { tar czf $OUT/r1.tgz -C /tmp r1 2>/dev/null; }
source bench/gpu/env.sh
T0=$SECONDS
LIMIT=${LIMIT:-330}
left() { echo $((LIMIT - (SECONDS - T0))); }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader 2>&1 | tee $R/gpu.txt
bin() { case $1 in base) echo $BB;; *) echo $BN;; esac; }
cm() { case $1 in ch) echo 1;; cf) echo fwd;; *) echo 0;; esac; }
kb() { local lab=$1 sh=$2 d=$3
  echo "== kb $lab d$d $sh t=$((SECONDS-T0))"
  DCP_CUDA_BWD_CHAIN=$(cm $lab) timeout 40 $(bin $lab) kernel-bench --shapes $sh --head-dim $d --repeats 3 \
    --json $R/kb_$lab\_d$d.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic|failed'; }
summ() { python3 - "$1" "$2" <<'PY'
import json, sys
try:
    r = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith('{')]
except FileNotFoundError:
    r = []
c = [x.get('check') or {} for x in r]
print('%s: %d/%d pass, worst o %.1e dq %.1e dkv %.1e' % (sys.argv[2], sum(1 for x in c if x.get('pass')), len(r),
      max([x.get('o', 0) or 0 for x in c] + [0]), max([x.get('dq', 0) or 0 for x in c] + [0]),
      max([x.get('dkv', 0) or 0 for x in c] + [0])))
PY
}
# 150 documents of 1..512 tokens (partial q tiles, rows past a work's end, 1..4 kv tiles): 300
# chains at GQA 8:2, enough to chain on 132 SMs; and 300 documents of 256 (works1000's shape).
python3 -c "
import json
L=[256,130,1,64,65,200,17,128,129,250,300,500,384,511,63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)], [256]*300]}, open('$R/small.json','w'))
json.dump({'batches': [[256]*1000]}, open('$R/w1000.json','w'))"
for v in "ch 1" "cf fwd"; do set -- $v
  echo "== check $1 d128 t=$((SECONDS-T0))"
  DCP_CUDA_BWD_CHAIN=$2 timeout 60 $BN bench-gpu --batches $R/small.json --head-dim 128 \
    --masks full,causal,causal-blockwise:128:2,sliding-window:100 --planners local,dcp --check --cpu-check-tokens 100000 \
    --warmup 0 --repeats 1 --op-times $R/chkops_$1 --json $R/chk_$1.jsonl > $R/chk_$1.log 2>&1; echo rc=$?; summ $R/chk_$1.jsonl "check $1 d128"
  grep -E "FAIL|panic|rror" $R/chk_$1.log | head -3
done
echo "== selftest ch t=$((SECONDS-T0))"
DCP_CUDA_BWD_CHAIN=1 DCP_CUDA_FAMILY=sm90 timeout 40 $BN bench-gpu --selftest 8 --planners local,zigzag,dcp \
  --timeout-s 35 --json $R/st_ch.jsonl > $R/st_ch.log 2>&1; echo rc=$?; summ $R/st_ch.jsonl "selftest ch"
snap
for v in base ch cf; do
  [ $(left) -gt 150 ] || break
  echo "== ops $v t=$((SECONDS-T0))"
  DCP_CUDA_BWD_CHAIN=$(cm $v) timeout 25 $(bin $v) bench-gpu --batches $R/w1000.json --masks full --planners local \
    --warmup 1 --repeats 3 --op-times $R/ops_$v --json $R/ops_$v.jsonl > $R/ops_$v.log 2>&1; echo rc=$?
done
snap
for v in base ch cf base ch cf off; do [ $(left) -gt 45 ] || break; kb $v works1000,onework,causal32k,packed 128; done
snap
for v in base ch; do [ $(left) -gt 30 ] || break; kb $v works1000,onework,causal32k 64; done
snap
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "$CS" ] && [ $(left) -gt 25 ]; then
  echo "== memcheck ch t=$((SECONDS-T0))"
  python3 -c "
import json
L=[256,130,1,64,65,200,17,128,129,250,300,500,384,511,63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/san.json','w'))"
  DCP_CUDA_BWD_CHAIN=1 timeout $(( $(left) - 8 )) $CS --tool memcheck --print-limit 5 $BN bench-gpu --batches $R/san.json \
    --head-dim 128 --masks causal --planners local --warmup 0 --repeats 1 --op-times $R/sanops > $R/san_memcheck.txt 2>&1; echo rc=$?
  grep -E "ERROR SUMMARY|Invalid|FAIL" $R/san_memcheck.txt | head -4
fi
echo "== done t=$((SECONDS-T0))"
snap
