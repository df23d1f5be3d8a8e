#!/usr/bin/env bash
# s32 call 8 (2x H200): timeout 300 bash .s32/run8.sh
# ulysses's 64K backward launch runs 21.7 ms in the plan against 20.07 alone (kernel-bench, the
# same 4 / 1-head shape). Which executor path differs? The backward switches one at a time, on
# the 2-GPU ulysses plan (op times; sustained 10 + 10) and on kernel-bench's local plan.
set -u
OUTD=${OUT:-/tmp/s32_out}
R=/tmp/s32c8; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s32c8.tgz" --exclude=s32c8/dcp -C /tmp s32c8; }
exec > >(tee "$R/run.log") 2>&1
T0=$SECONDS
source bench/gpu/env.sh
D=$R/dcp; gunzip -c .s32/dcp5.gz > $D && chmod +x $D
echo '{"batches": [[65536]]}' > $R/b64.json
run() {  # name, env...
  local n=$1; shift
  echo "== $n t=$((SECONDS - T0))"
  env "$@" timeout 60 $D launch -n 2 -- bench-gpu --batches $R/b64.json --mask causal --planners ulysses --warmup 10 --repeats 10 --op-times $R/ops_$n --json $R/s_$n.jsonl > $R/s_$n.log 2>&1; echo "rc=$?"
  python3 bench/gpu/op_times.py $R/ops_$n --top 3 2>&1 | grep bwd | tee -a $R/summary.md
  env "$@" timeout 60 $D kernel-bench --shapes causal@65536 --heads 4 --kv-heads 1 --warmup 10 --repeats 10 --json $R/kb_$n.jsonl > $R/kb_$n.log 2>&1
  python3 -c "
import json
for l in open('$R/kb_$n.jsonl'):
    x = json.loads(l)
    if x.get('kind') == 'bench': print('kb $n: bwd %.2f ms' % x['bwd_ms'])" | tee -a $R/summary.md
}
run base X=1
run order_list DCP_CUDA_BWD_ORDER=list
run own0 DCP_CUDA_BWD_OWN=0
run conv0 DCP_CUDA_BWD_CONVERT=0
run fill0 DCP_CUDA_BWD_FUSE_FILL=0
run ddz0 DCP_CUDA_BWD_DD_ZERO=0
run commfirst0 DCP_CUDA_COMM_FIRST=0
run base2 X=1
echo "== done t=$((SECONDS - T0))"
snap
