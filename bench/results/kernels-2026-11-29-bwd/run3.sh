#!/usr/bin/env bash
# kbwd10 call 3 (issue 10), 1x H200: the final binary (.kbwd10/dcpf, branch kbwd10: the dQ
# conversion compiled out by default, BWD_DQ_CONV) against main (.kbwd10/dcp, base). Checks and
# selftest of the defaults, then base first, between and last.
set -u
P=.kbwd10; BB=$P/dcp; BN=$P/dcpf
R=/tmp/r3; mkdir -p $R
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
snap() { tar czf $OUT/r3.tgz -C /tmp r3 2>/dev/null; }
source bench/gpu/env.sh
T0=$SECONDS
LIMIT=${LIMIT:-110}
left() { echo $((LIMIT - (SECONDS - T0))); }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader 2>&1 | tee $R/gpu.txt
bin() { case $1 in base) echo $BB;; *) echo $BN;; esac; }
kb() { local lab=$1 sh=$2 d=$3 tag=${4:-}
  echo "== kb $lab$tag d$d $sh t=$((SECONDS-T0))"
  timeout 40 $(bin $lab) kernel-bench --shapes $sh --head-dim $d --repeats 3 \
    --json $R/kb_$tag$lab\_d$d.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic|failed'; }
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
echo '{"batches": [[256, 256, 256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500], [256, 256, 130, 1, 64, 65, 200, 17, 128, 129, 250]]}' > $R/small.json
for v in "new 128 full,causal,causal-blockwise:128:2,sliding-window:100" "new 64 full,causal"; do
  set -- $v
  echo "== check small docs $1 d$2 t=$((SECONDS-T0))"
  timeout 40 $BN bench-gpu --batches $R/small.json --head-dim $2 \
    --masks $3 --planners local,dcp,zigzag --check --cpu-check-tokens 3000 \
    --warmup 0 --repeats 1 --json $R/chk_$1_d$2.jsonl > $R/chk_$1_d$2.log 2>&1; echo rc=$?; summ $R/chk_$1_d$2.jsonl "check $1 d$2"
done
echo "== selftest new t=$((SECONDS-T0))"
DCP_CUDA_FAMILY=sm90 timeout 40 $BN bench-gpu --selftest 12 --planners local,zigzag,dcp \
  --timeout-s 35 --json $R/st_new.jsonl > $R/st_new.log 2>&1; echo rc=$?; summ $R/st_new.jsonl "selftest new"
snap
for v in base new base new base; do [ $(left) -gt 15 ] || break; kb $v blockwise,works1000,onework,sharedq,causal32k,causal128k 128; done
snap
for v in base new base; do [ $(left) -gt 8 ] || break; kb $v causal32k 64 dn; done
echo "== table t=$((SECONDS-T0))"
python3 $P/table.py $R 2>&1 | tee $R/table.txt
snap
echo "== done t=$((SECONDS-T0))"
