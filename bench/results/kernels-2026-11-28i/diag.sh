#!/usr/bin/env bash
# sporadic bwd check failures at 2-3K tokens: sm90 vs mma family, and racecheck of one failing plan
set -u
source bench/gpu/env.sh
B=.pdev/new/dcp; T0=$SECONDS
echo '{"batches": [[2000], [3000]]}' > /tmp/c.json
for fam in sm90 mma sm90; do
  echo "== $fam (t=$((SECONDS-T0)))"
  DCP_CUDA_FAMILY=$fam timeout 120 $B bench-gpu --batches /tmp/c.json --masks causal --planners zigzag,dcp-only@256+512 --check --cpu-check-tokens 3000 --warmup 0 --repeats 1 --json $OUT/f_$fam.jsonl > /dev/null 2>&1
  python3 -c "
import json
for l in open('$OUT/f_$fam.jsonl'):
    r=json.loads(l); c=r['check']
    print(r['lens'], r['planner'], r['block_size'], r['kernels'], c['pass'], 'o %.1e dq %.1e dkv %.1e'%(c['o'],c['dq'],c['dkv']))
"; rm -f $OUT/f_$fam.jsonl
done
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
echo '{"batches": [[2000]]}' > /tmp/c1.json
echo "== racecheck (t=$((SECONDS-T0)))"
timeout 150 $CS --tool racecheck --print-limit 5 $B bench-gpu --batches /tmp/c1.json --mask causal --planners dcp-only@256 --warmup 0 --repeats 1 2>&1 | grep -E "RACECHECK SUMMARY|hazard|Race|rror" | head -10
echo "== done (t=$((SECONDS-T0)))"
