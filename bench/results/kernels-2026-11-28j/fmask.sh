#!/usr/bin/env bash
# session 7: forward mask from range ends (fmask) vs main: selftest + CPU f64 checks with sparse masks, then timing
set -u
source bench/gpu/env.sh
B=.pdev/new/dcp; T0=$SECONDS
echo "== selftest fmask (sm90) t=$((SECONDS-T0))"
DCP_CUDA_KERNELS=.pdev/vm/fmask DCP_CUDA_FAMILY=sm90 timeout 150 $B bench-gpu --selftest 24 --planners local,zigzag,dcp --timeout-s 120 --json $OUT/st_fmask.jsonl > /dev/null 2>&1; echo rc=$?
python3 -c "import json; r=[json.loads(l) for l in open('$OUT/st_fmask.jsonl')]; c=[x.get('check') or {} for x in r]; print('selftest fmask: %d/%d pass, worst o %.1e lse %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('o',0) or 0 for x in c]+[0]), max([x.get('lse',0) or 0 for x in c]+[0])))"
echo "== checks t=$((SECONDS-T0))"
echo '{"batches": [[3000], [1500, 700, 900]]}' > /tmp/c.json
DCP_CUDA_KERNELS=.pdev/vm/fmask timeout 150 $B bench-gpu --batches /tmp/c.json --masks causal-blockwise:128:2,lambda:64:512,shared-question:0.2:4,sliding-window:300,prefix-lm:500 --planners local,zigzag --check --cpu-check-tokens 3000 --warmup 0 --repeats 1 --json $OUT/chk_fmask.jsonl 2>&1 | grep -E ' ok | FAIL|rror' | head -24
for v in base fmask base fmask; do
  echo "== $v t=$((SECONDS-T0))"
  DCP_CUDA_KERNELS=.pdev/vm/$v timeout 90 $B kernel-bench --shapes blockwise,lambda,sharedq,causal32k,packed --repeats 3 --json $OUT/kf_$v.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror'
done
DCP_CUDA_KERNELS=.pdev/vm/fmask timeout 60 $B kernel-bench --shapes blockwise,lambda --head-dim 64 --repeats 3 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror'
timeout 60 $B kernel-bench --shapes blockwise,lambda --head-dim 64 --repeats 3 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror'
echo "== done t=$((SECONDS-T0))"
