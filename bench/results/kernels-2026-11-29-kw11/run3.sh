#!/usr/bin/env bash
# kw11 call 3: this branch's final binary (.kw11/dcpk, chains on by default: no variable set)
# against main (.kw11/dcp). The lead's selftest, the CPU f64 check on a batch that chains, op
# times, kernel-bench base / new alternated. Everything under $OUT/r3.tgz.
set -u
P=.kw11; BB=$P/dcp; BN=$P/dcpk
R=/tmp/r3; mkdir -p $R
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
snap() { tar czf $OUT/r3.tgz -C /tmp r3 2>/dev/null; }
source bench/gpu/env.sh
unset DCP_CUDA_BWD_CHAIN
T0=$SECONDS
LIMIT=${LIMIT:-110}
left() { echo $((LIMIT - (SECONDS - T0))); }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader 2>&1 | tee $R/gpu.txt
bin() { case $1 in base) echo $BB;; *) echo $BN;; esac; }
kb() { local lab=$1 sh=$2 d=$3
  echo "== kb $lab d$d $sh t=$((SECONDS-T0))"
  timeout 30 $(bin $lab) kernel-bench --shapes $sh --head-dim $d --repeats 3 \
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
python3 -c "
import json
L=[256,130,1,64,65,200,17,128,129,250,300,500,384,511,63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/small1.json','w'))
json.dump({'batches': [[256]*1000]}, open('$R/w1000.json','w'))"
echo "== selftest world 1 (sm90, the lead's command) t=$((SECONDS-T0))"
timeout 50 $BN bench-gpu --selftest 12 --planners dcp,zigzag,ring,local,usp --json $R/st_new.jsonl > $R/st_new.log 2>&1; echo rc=$?
summ $R/st_new.jsonl "selftest new"; grep -E "FAIL|panic|rror" $R/st_new.log | head -3
echo "== check new d128 t=$((SECONDS-T0))"
timeout 40 $BN bench-gpu --batches $R/small1.json --head-dim 128 --masks full,causal,causal-blockwise:128:2,sliding-window:100 \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --op-times $R/chkops_new \
  --json $R/chk_new.jsonl > $R/chk_new.log 2>&1; echo rc=$?; summ $R/chk_new.jsonl "check new d128"
snap
for v in base new; do
  [ $(left) -gt 45 ] || break
  echo "== ops $v t=$((SECONDS-T0))"
  timeout 20 $(bin $v) bench-gpu --batches $R/w1000.json --masks full --planners local \
    --warmup 1 --repeats 3 --op-times $R/ops_$v --json $R/ops_$v.jsonl > $R/ops_$v.log 2>&1; echo rc=$?
done
snap
for v in base new base new; do [ $(left) -gt 12 ] || break; kb $v works1000,onework,causal32k,packed 128; done
for v in base new; do [ $(left) -gt 8 ] || break; kb $v works1000,onework 64; done
echo "== done t=$((SECONDS-T0))"
snap
