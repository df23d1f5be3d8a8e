#!/usr/bin/env bash
# session 6 call 2 (1 GPU): work fusion + KV coalescing + row-span split-K: correctness, then old vs new kernel-bench
set -u
source bench/gpu/env.sh
NEW=.pdev/new/dcp; OLD=.pdev/dcp; O=$OUT; T0=$SECONDS
summ() { python3 -c "import json,sys; r=[json.loads(l) for l in open('$1')]; c=[x.get('check') or {} for x in r]; print('$2: %d/%d pass, worst dq %.1e dkv %.1e o %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0]), max([x.get('o',0) or 0 for x in c]+[0])))" 2>&1 | tail -1; }
echo "== selftest new (t=$((SECONDS-T0)))"
timeout -k 5 120 $NEW bench-gpu --selftest 12 --planners dcp,dcp-only,ring,zigzag,local,ulysses,usp --json $O/selftest.jsonl 2>&1 | grep -E "FAIL|rror|panic" | head -5; summ $O/selftest.jsonl selftest
echo '{"batches": [[8192], [6000, 2192], [3000]]}' > /tmp/chk.json
echo "== check vs CPU f64 (t=$((SECONDS-T0)))"
timeout -k 5 200 $NEW bench-gpu --batches /tmp/chk.json --masks causal-blockwise,causal,lambda --planners local,dcp-only@256,zigzag --check --cpu-check-tokens 9000 --warmup 0 --repeats 1 --json $O/check.jsonl 2>&1 | grep -E 'check|FAIL|rror|panic|#' | tail -30
S=causal32k,causal128k,blockwise,blocks256,full8k,lambda,sharedq,packed,works1000
for v in old new; do
  B=$OLD; [ $v = new ] && B=$NEW
  echo "== kernel-bench $v (t=$((SECONDS-T0)))"
  timeout -k 5 150 $B kernel-bench --shapes $S --repeats 3 --timeout-s 60 --json $O/kb_$v.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd' | head -12
done
echo "== kernel-bench old again causal32k,blocks256,blockwise (t=$((SECONDS-T0)))"
timeout -k 5 60 $OLD kernel-bench --shapes causal32k,blocks256,blockwise --repeats 3 --timeout-s 60 --json $O/kb_old2.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd' | head -4
echo "== done (t=$((SECONDS-T0)))"
