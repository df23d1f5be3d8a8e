#!/usr/bin/env bash
# session 7: precomputed tile masks (sm90 fwd + bwd): selftests (masks on, and off = in-kernel ranges), CPU f64 checks on
# sparse masks, memcheck, then timing masks on vs off
set -u
source bench/gpu/env.sh
B=.pdev/new2/dcp; T0=$SECONDS
summ() { python3 -c "import json; r=[json.loads(l) for l in open('$1')]; c=[x.get('check') or {} for x in r]; print('$2: %d/%d pass, worst o %.1e dq %.1e dkv %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('o',0) or 0 for x in c]+[0]), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0])))"; }
echo "== selftest masks t=$((SECONDS-T0))"
DCP_CUDA_FAMILY=sm90 timeout 150 $B bench-gpu --selftest 24 --planners local,zigzag,dcp --timeout-s 120 --json $OUT/st_on.jsonl > $OUT/st_on.log 2>&1; echo rc=$?; summ $OUT/st_on.jsonl "selftest masks on"
echo "== selftest masks off t=$((SECONDS-T0))"
DCP_CUDA_TILE_MASKS=0 DCP_CUDA_FAMILY=sm90 timeout 120 $B bench-gpu --selftest 12 --planners local,zigzag,dcp --timeout-s 100 --json $OUT/st_off.jsonl > /dev/null 2>&1; echo rc=$?; summ $OUT/st_off.jsonl "selftest masks off"
echo "== checks t=$((SECONDS-T0))"
echo '{"batches": [[3000], [1500, 700, 900]]}' > /tmp/c.json
timeout 150 $B bench-gpu --batches /tmp/c.json --masks causal-blockwise:128:2,lambda:64:512,shared-question:0.2:4,sliding-window:300,prefix-lm:500,causal --planners local,zigzag,dcp --check --cpu-check-tokens 3000 --warmup 0 --repeats 1 --json $OUT/chk.jsonl > /dev/null 2>&1; echo rc=$?; summ $OUT/chk.jsonl "checks"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
echo "== memcheck t=$((SECONDS-T0))"
DCP_CUDA_FAMILY=sm90 timeout 100 $CS --tool memcheck --print-limit 5 $B bench-gpu --selftest 3 --planners local,zigzag --timeout-s 90 > $OUT/memcheck.txt 2>&1; grep -E "ERROR SUMMARY" $OUT/memcheck.txt
for v in on off on off; do
  E=""; [ $v = off ] && E="DCP_CUDA_TILE_MASKS=0"
  echo "== $v t=$((SECONDS-T0))"
  env $E timeout 90 $B kernel-bench --shapes blockwise,lambda,sharedq,causal32k,packed,works1000 --repeats 3 --json $OUT/kt_$v.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror'
done
env timeout 60 $B kernel-bench --shapes blockwise,lambda --head-dim 64 --repeats 3 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror'
env DCP_CUDA_TILE_MASKS=0 timeout 60 $B kernel-bench --shapes blockwise,lambda --head-dim 64 --repeats 3 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror'
echo "== done t=$((SECONDS-T0))"
