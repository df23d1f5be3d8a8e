#!/usr/bin/env bash
# kbwd10 call 1 (issue 10), 1x H200. Two binaries: .kbwd10/dcp = main 444c8fc (base), .kbwd10/dcpn
# = branch kbwd10 (embedded kernels). Labels: base (main); off (new, DCP_CUDA_BWD_CONVERT=0: the
# session-9 behaviour with the fixed info slot and the conversion code compiled in, unused);
# dkv (=dkv: dK/dV stored into the copy destination, dKV copy dropped); dq (=dq: dQ converted by
# its last writer, dQ copy dropped); all (=1, both: the new default); nocv (new binary, kernels
# from .kbwd10/k/nocv = this branch's files with BWD_DQ_CONV 0 prepended, =dkv: what the
# conversion code's mere presence costs the dense kernel).
set -u
P=.kbwd10; BB=$P/dcp; BN=$P/dcpn
R=/tmp/r1; mkdir -p $R
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
snap() { tar czf $OUT/r1.tgz -C /tmp r1 2>/dev/null; }
source bench/gpu/env.sh
T0=$SECONDS
LIMIT=${LIMIT:-245}
left() { echo $((LIMIT - (SECONDS - T0))); }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader 2>&1 | tee $R/gpu.txt
bin() { case $1 in base) echo $BB;; *) echo $BN;; esac; }
cv() { case $1 in base|off) echo 0;; dkv|nocv) echo dkv;; dq) echo dq;; all) echo 1;; esac; }
kd() { case $1 in nocv) echo $P/k/nocv;; *) echo "";; esac; }
kb() { local lab=$1 sh=$2 d=$3 tag=${4:-}
  echo "== kb $lab$tag d$d $sh t=$((SECONDS-T0))"
  local kdir; kdir=$(kd $lab)
  env ${kdir:+DCP_CUDA_KERNELS=$kdir} DCP_CUDA_BWD_CONVERT=$(cv $lab) timeout 40 $(bin $lab) kernel-bench --shapes $sh --head-dim $d --repeats 3 \
    --json $R/kb_$tag$lab\_d$d.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|^[a-z0-9]+ +[A-Za-z0-9_]+.* [0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+$|rror|panic|failed'; }
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
SP=blockwise,works1000,onework,sharedq,causal32k

# 0. correctness first (a wrong variant is not worth timing): small documents against the CPU
# f64 reference (batch 0: 14 documents of 1-500 tokens, most owned; batch 1: 11 owned documents),
# outputs poisoned before each run; then the random selftest (every mask kind, D 64/128).
echo '{"batches": [[256, 256, 256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500], [256, 256, 130, 1, 64, 65, 200, 17, 128, 129, 250]]}' > $R/small.json
for v in "all 128 full,causal,causal-blockwise:128:2,sliding-window:100" "dq 128 full,causal" "dkv 128 full,causal" "all 64 full,causal"; do
  set -- $v
  echo "== check small docs $1 d$2 t=$((SECONDS-T0))"
  DCP_CUDA_BWD_CONVERT=$(cv $1) timeout 30 $(bin $1) bench-gpu --batches $R/small.json --head-dim $2 \
    --masks $3 --planners local,dcp,zigzag --check --cpu-check-tokens 3000 \
    --warmup 0 --repeats 1 --json $R/chk_$1_d$2.jsonl > $R/chk_$1_d$2.log 2>&1; echo rc=$?; summ $R/chk_$1_d$2.jsonl "check $1 d$2"
done
echo "== selftest all t=$((SECONDS-T0))"
DCP_CUDA_FAMILY=sm90 DCP_CUDA_BWD_CONVERT=1 timeout 30 $BN bench-gpu --selftest 8 --planners local,zigzag,dcp \
  --timeout-s 25 --json $R/st_all.jsonl > $R/st_all.log 2>&1; echo rc=$?; summ $R/st_all.jsonl "selftest all"
snap

# 1. sparse shapes D 128, two rounds (second reversed): base first, between (off) and last
for v in base all dkv dq off dq dkv all base; do kb $v $SP 128; done
snap

# 2. dense: base first, between and last (D 128 32K and 128K; D 64 32K)
for v in base all nocv off base all nocv base; do [ $(left) -gt 30 ] || break; kb $v causal32k,causal128k 128 dn; done
for v in base all base all base; do [ $(left) -gt 20 ] || break; kb $v causal32k 64 dn; done
snap

# 3. op times of the local plan's backward (works1000; blockwise)
python3 -c "import json; json.dump({'batches': [[256]*1000]}, open('$R/w1000.json','w')); json.dump({'batches': [[32768]]}, open('$R/bw.json','w'))"
for v in "off w1000 full" "all w1000 full" "dkv w1000 full" "dq w1000 full" "off bw causal-blockwise" "all bw causal-blockwise"; do set -- $v
  [ $(left) -gt 10 ] || break
  echo "== ops $1 $2 t=$((SECONDS-T0))"
  DCP_CUDA_BWD_CONVERT=$(cv $1) timeout 25 $BN bench-gpu --batches $R/$2.json --masks $3 --planners local \
    --warmup 1 --repeats 3 --op-times $R/ops_$1_$2 --json $R/ops_$1_$2.jsonl > $R/ops_$1_$2.log 2>&1; echo rc=$?
done
snap

echo "== table t=$((SECONDS-T0))"
python3 $P/table.py $R 2>&1 | tee $R/table.txt
snap
echo "== done t=$((SECONDS-T0))"
