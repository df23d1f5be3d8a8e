#!/usr/bin/env bash
# session 6 call: upload fix + fusion/split + persistent bwd (kbwd3) + one-pass D: checks, then old vs new kernel-bench
set -u
source bench/gpu/env.sh
NEW=.pdev/new/dcp; OLD=.pdev/dcp; O=$OUT; T0=$SECONDS
summ() { python3 -c "import json,sys; r=[json.loads(l) for l in open('$1')]; c=[x.get('check') or {} for x in r]; print('$2: %d/%d pass, worst dq %.1e dkv %.1e o %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0]), max([x.get('o',0) or 0 for x in c]+[0])))" 2>&1 | tail -1; }
echo "== selftest (t=$((SECONDS-T0)))"
timeout -k 5 120 $NEW bench-gpu --selftest 12 --planners dcp,dcp-only,ring,zigzag,local,ulysses,usp --json $O/selftest.jsonl 2>&1 | grep -E "FAIL|rror|panic" | head -5; summ $O/selftest.jsonl selftest
echo '{"batches": [[2000], [3000], [2500, 500]]}' > /tmp/c.json
echo "== check vs CPU f64 (t=$((SECONDS-T0)))"
timeout -k 5 150 $NEW bench-gpu --batches /tmp/c.json --masks causal --planners local,zigzag,dcp-only@256+512 --check --cpu-check-tokens 3000 --warmup 0 --repeats 1 --json $O/check.jsonl >/dev/null 2>&1
summ $O/check.jsonl "check 2-3K causal"
python3 -c "
import json
for l in open('$O/check.jsonl'):
    r=json.loads(l); c=r['check']
    print(' ', r['lens'], r['planner'], r['block_size'], c['pass'], 'o %.1e dq %.1e dkv %.1e'%(c['o'],c['dq'],c['dkv']))
"
S=causal32k,causal128k,blockwise,blocks256,full8k,lambda,sharedq,packed,works1000
for v in old new; do
  B=$OLD; [ $v = new ] && B=$NEW
  echo "== kernel-bench $v (t=$((SECONDS-T0)))"
  timeout -k 5 150 $B kernel-bench --shapes $S --repeats 3 --timeout-s 60 --json $O/kb_$v.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd' | head -12
done
echo "== kernel-bench new D64 (t=$((SECONDS-T0)))"
timeout -k 5 60 $NEW kernel-bench --shapes causal32k --head-dim 64 --repeats 3 --timeout-s 60 --json $O/kb_new64.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd' | head -3
echo "== done (t=$((SECONDS-T0)))"
