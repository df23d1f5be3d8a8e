#!/usr/bin/env bash
# s33 call 8 (1x H200): timeout 540 bash .s33/run8.sh
# The final tree (DCP_CUDA_FWD_SHORT default 2 at D 64): (1) D 64 A/B, old (.s33/dcp2.gz)
# against new (.s33/dcp3.gz), alternated x2; (2) bench/gpu/x1_final.sh on the new binary and
# wheel (selftest both families, sanitizers, short / pair / split-K checks at D 128 and 64,
# kernel-bench beside PyTorch flash and cuDNN).
set -u
P=/tmp/s33f; rm -rf $P; mkdir -p $P $OUT/ab
gunzip -c .s33/dcp2.gz > $P/old && gunzip -c .s33/dcp3.gz > $P/new && chmod +x $P/old $P/new
source bench/gpu/env.sh
SH=works1000,full@128x2000,full@384x600,causal@256x1000,causal@1024x64,packed,causal32k
for r in 1 2; do for v in old new; do
  timeout 60 $P/$v kernel-bench --head-dim 64 --shapes $SH --warmup 3 --repeats 10 --json $OUT/ab/kb_${v}_$r.jsonl > $OUT/ab/kb_${v}_$r.log 2>&1; echo "ab $v $r rc=$?"
done; done
python3 bench/gpu/ab_table.py $OUT/ab fwd_tflops_per_gpu old new | tee $OUT/ab/table.txt
export DCP=$P/new WHEEL=.s33/whl3
LIMIT=${LIMIT:-400} bash bench/gpu/x1_final.sh
