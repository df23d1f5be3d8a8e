#!/usr/bin/env bash
# s33 call 9 (1x H200): compute-sanitizer memcheck and racecheck on the D 64 short-task forward
# (new default): 150 short documents (1-511 tokens) and 200 of 256 tokens, full mask, D 64.
set -u
P=/tmp/s33f; mkdir -p $P $OUT; gunzip -c .s33/dcp3.gz > $P/new && chmod +x $P/new
source bench/gpu/env.sh
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)], [256] * 200]}, open('$P/short.json', 'w'))"
for tool in memcheck racecheck; do
  DCP_CUDA_BWD_PIECE_LOG=0 timeout -k 5 110 $CS --tool $tool --print-limit 5 $P/new bench-gpu --batches $P/short.json --head-dim 64 --masks full,causal --planners local --warmup 0 --repeats 1 --timeout-s 100 > $OUT/san64_$tool.txt 2>&1; echo "$tool rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" $OUT/san64_$tool.txt | head -4
done
timeout 60 $P/new bench-gpu --batches $P/short.json --head-dim 64 --masks full,causal --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --json $OUT/chk64.jsonl > $OUT/chk64.log 2>&1; echo "check rc=$?"
python3 -c "
import json
r = [json.loads(l) for l in open('$OUT/chk64.jsonl') if l.strip()]
print('D 64 short documents vs CPU f64: %d/%d pass' % (sum(1 for x in r if (x.get('check') or {}).get('pass')), len(r)))"
