#!/usr/bin/env bash
# s36 call 9 (1x H200): timeout 120 bash .s36/run9.sh
# Call 8: at D 128 the consumers' masked path is the whole cost of a partial kv tile's list
# (BWD_T_NOMASK=2 restores full speed), at D 64 it is not (no change). Where does D 64's time
# go? Per-op times (DCP_CUDA_OP_TIMES through bench-gpu --op-times) of one 8 096- and one
# 8 192-token full-mask document, whole lists, local planner, D 64 and D 128. dcp5.
set -u
OUTD=${OUT:-/tmp/s36_out}
R=/tmp/s36c9; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
D=$R/dcp; gunzip -c .s36/dcp5.gz > $D && chmod +x $D
for n in 8096 8192; do echo "{\"batches\": [[$n]]}" > $R/b$n.json; done
for HD in 64 128; do for n in 8096 8192; do
  DCP_CUDA_BWD_ORDER=whole DCP_CUDA_BWD_PIECE_LOG=1 timeout 40 $D bench-gpu --batches $R/b$n.json --masks full --planners local \
    --head-dim $HD --warmup 2 --repeats 5 --op-times $R/ops_d${HD}_$n --json $R/bg_d${HD}_$n.jsonl > $R/bg_d${HD}_$n.log 2>&1
  echo "D$HD $n rc=$?"; grep -E "dcp-cuda: backward" $R/bg_d${HD}_$n.log | head -2
  python3 bench/gpu/op_times.py $R/ops_d${HD}_$n --top 6 2>&1 | tail -14
done; done
tar czf $OUTD/c9.tgz -C /tmp s36c9 --exclude=s36c9/dcp
