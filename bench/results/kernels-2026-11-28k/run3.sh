#!/usr/bin/env bash
# k64 call 3: the merged kernel (new binary, embedded kernels, default settings) against main's kernels
# (old binary + main's kernel files) at D 64 and D 128, PyTorch flash/cuDNN on the same shapes, selftests,
# CPU f64 checks at D 64, memcheck.
set -u
R=/tmp/r3; mkdir -p $R; snap() { tar czf $OUT/r3.tgz -C /tmp r3; }
source bench/gpu/env.sh
OLD=".k64/dcp"; NEW=".k64/new/dcp"; T0=$SECONDS
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader
kb() { # tag binary head-dim shapes [env]
  echo "== $1 d$3 $4 t=$((SECONDS-T0))"
  env $5 timeout 60 $2 kernel-bench --shapes $4 --head-dim $3 --repeats 3 --json $R/kb3_$1_d$3.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'; }
summ() { python3 -c "import json; r=[json.loads(l) for l in open('$1')]; c=[x.get('check') or {} for x in r]; print('$2: %d/%d pass, worst o %.1e dq %.1e dkv %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('o',0) or 0 for x in c]+[0]), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0])))"; }
C=causal32k,causal128k
kb old1 $OLD 64 $C DCP_CUDA_KERNELS=.k64/v3/base
kb new1 $NEW 64 $C
kb old2 $OLD 64 $C DCP_CUDA_KERNELS=.k64/v3/base
kb new2 $NEW 64 $C
echo "== torch d64 t=$((SECONDS-T0))"; timeout 40 python3 bench/gpu/torch_ref.py $R/kb3_old1_d64.jsonl $R/torch3.jsonl 2>&1 | tail -3
snap
echo "== selftest new t=$((SECONDS-T0))"
DCP_CUDA_FAMILY=sm90 timeout 50 $NEW bench-gpu --selftest 12 --planners local,zigzag,dcp --timeout-s 45 --json $R/st3.jsonl > /dev/null 2>&1; echo rc=$?; summ $R/st3.jsonl "selftest new"
echo "== check d64 t=$((SECONDS-T0))"
echo '{"batches": [[3000], [1500, 700, 900]]}' > /tmp/c.json
timeout 40 $NEW bench-gpu --batches /tmp/c.json --head-dim 64 --masks causal,causal-blockwise:128:2,lambda:64:512,sliding-window:300 --planners local,zigzag --check --cpu-check-tokens 3000 --warmup 0 --repeats 1 --json $R/chk3.jsonl > /dev/null 2>&1; echo rc=$?; summ $R/chk3.jsonl "check d64 new"
snap
kb old1 $OLD 128 $C DCP_CUDA_KERNELS=.k64/v3/base
kb new1 $NEW 128 $C
kb old2 $OLD 128 $C DCP_CUDA_KERNELS=.k64/v3/base
kb new2 $NEW 128 $C
echo "== memcheck t=$((SECONDS-T0))"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
DCP_CUDA_FAMILY=sm90 timeout 25 $CS --tool memcheck --print-limit 5 $NEW bench-gpu --selftest 2 --planners local --timeout-s 35 > $R/memcheck3.txt 2>&1; grep -E "ERROR SUMMARY" $R/memcheck3.txt
kb oldsp $OLD 64 packed,lambda,blockwise DCP_CUDA_KERNELS=.k64/v3/base
kb newsp $NEW 64 packed,lambda,blockwise
snap
echo "== done t=$((SECONDS-T0))"
