#!/usr/bin/env bash
# session 6 call: pool + claim-late A/B + selftest after the pool
set -u
source bench/gpu/env.sh
NEW=.pdev/new/dcp; O=$OUT; T0=$SECONDS
summ() { python3 -c "import json,sys; r=[json.loads(l) for l in open('$1')]; c=[x.get('check') or {} for x in r]; print('$2: %d/%d pass, worst dq %.1e dkv %.1e o %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0]), max([x.get('o',0) or 0 for x in c]+[0])))" 2>&1 | tail -1; }
echo "== selftest (t=$((SECONDS-T0)))"
timeout -k 5 120 $NEW bench-gpu --selftest 12 --planners dcp,dcp-only,ring,zigzag,local,ulysses,usp --json $O/selftest.jsonl 2>&1 | grep -E "FAIL|rror|panic" | head -5; summ $O/selftest.jsonl selftest
for pool in 0 8192 0 8192; do
  echo "== bench-gpu longalign x1 5 batches x 5 planners, DCP_CUDA_POOL_MB=$pool (t=$((SECONDS-T0)))"
  DCP_CUDA_POOL_MB=$pool timeout 120 $NEW bench-gpu --dataset longalign --count 5 --planners local,zigzag,ring,ulysses,dcp --warmup 1 --repeats 2 --json $O/pool_$pool.jsonl 2>&1 | grep -E 'plan runs in|rror'
done
S=causal32k,causal128k,packed,lambda,blockwise,sharedq
for v in base late base late; do
  E=""; [ $v = late ] && E="DCP_CUDA_KERNELS=.pdev/v/fl"
  echo "== kernel-bench fwd claim $v (t=$((SECONDS-T0)))"
  env $E timeout 90 $NEW kernel-bench --shapes $S --repeats 3 --json $O/kb_$v.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror'
done
echo "== selftest claim late (t=$((SECONDS-T0)))"
DCP_CUDA_KERNELS=.pdev/v/fl timeout 60 $NEW bench-gpu --selftest 6 --planners local,zigzag,dcp --json $O/selftest_late.jsonl >/dev/null 2>&1; summ $O/selftest_late.jsonl "selftest late"
echo "== done (t=$((SECONDS-T0)))"
