#!/usr/bin/env bash
# kd128 call 3: the merged kernel (new binary, embedded kernels, defaults) against main's kernel (same binary with
# main's attn_bwd_sm90.cu through DCP_CUDA_KERNELS) at D 128 and D 64; PyTorch flash/cuDNN on the D 128 shapes;
# selftest; CPU f64 checks at D 128; memcheck (D 64: SASS identical to main, not re-timed).
set -u
R=/tmp/r3; mkdir -p $R; snap() { tar czf $OUT/r3.tgz -C /tmp r3; }
source bench/gpu/env.sh
B=.kd128/dcp; OLDK=DCP_CUDA_KERNELS=.kd128/v2/base; T0=$SECONDS
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader
kb() { echo "== $1 d$2 $3 t=$((SECONDS-T0))"
  env $5 timeout 30 $B kernel-bench --shapes $3 --head-dim $2 --repeats 3 --json $R/kb3_$1_d$2.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'; }
summ() { python3 -c "import json; r=[json.loads(l) for l in open('$1')]; c=[x.get('check') or {} for x in r]; print('$2: %d/%d pass, worst o %.1e dq %.1e dkv %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('o',0) or 0 for x in c]+[0]), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0])))"; }
C=causal32k,causal128k
kb old1 128 $C $OLDK
kb new1 128 $C X=1
kb old2 128 $C $OLDK
kb new2 128 $C X=1
snap
echo "== selftest new t=$((SECONDS-T0))"
DCP_CUDA_FAMILY=sm90 timeout 40 $B bench-gpu --selftest 12 --planners local,zigzag,dcp --timeout-s 35 --json $R/st3.jsonl > /dev/null 2>&1; echo rc=$?; summ $R/st3.jsonl "selftest new"
echo "== check d128 t=$((SECONDS-T0))"
echo '{"batches": [[3000], [1500, 700, 900]]}' > /tmp/c.json
timeout 30 $B bench-gpu --batches /tmp/c.json --head-dim 128 --masks causal,causal-blockwise:128:2,lambda:64:512,sliding-window:300,prefix-lm:500 --planners local,zigzag --check --cpu-check-tokens 3000 --warmup 0 --repeats 1 --json $R/chk3.jsonl > /dev/null 2>&1; echo rc=$?; summ $R/chk3.jsonl "check d128 new"
snap
kb oldsp 128 packed,lambda,blockwise $OLDK
kb newsp 128 packed,lambda,blockwise X=1
snap
echo "== memcheck t=$((SECONDS-T0))"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
DCP_CUDA_FAMILY=sm90 timeout 10 $CS --tool memcheck --print-limit 5 $B bench-gpu --selftest 2 --planners local --timeout-s 35 > $R/memcheck3.txt 2>&1; grep -E "ERROR SUMMARY" $R/memcheck3.txt
echo "== torch d128 t=$((SECONDS-T0))"; timeout 18 python3 bench/gpu/torch_ref.py $R/kb3_old1_d128.jsonl $R/torch3.jsonl 2>&1 | tail -3
snap
echo "== done t=$((SECONDS-T0))"
