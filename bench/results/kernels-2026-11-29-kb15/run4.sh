#!/usr/bin/env bash
# kb15 call 4 (1x H200): LIMIT=70 timeout 75 bash .kb15/run4.sh  (carry [".kb15"]), from /work/main.
# Validation of s8 (8-byte dQ stores) as the built-in: f16 / 1 kv head pair documents, selftest,
# short documents, memcheck + racecheck; then s8 vs nq timing.
set -u
OUTD=${OUT:-/tmp/kb15_out}
R=/tmp/kb15c4; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 30 tar czf "$OUTD/kb15c4.tgz" -C /tmp kb15c4; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
unset DCP_CUDA_BWD_CHAIN DCP_CUDA_BWD_CHAIN_DD DCP_CUDA_BWD_CHAIN_DEFS DCP_CUDA_BWD_DD_CTAS DCP_CUDA_BWD_CLUSTER DCP_CUDA_KERNELS DCP_CUDA_BWD_SMEM
T0=$SECONDS
LIMIT=${LIMIT:-70}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
B=.kb15/dcp
S8="DCP_CUDA_BWD_CLUSTER=1 DCP_CUDA_KERNELS=.kb15/v/s8"
summ() { timeout 10 python3 -c "
import json
r=[json.loads(l) for l in open('$1') if l.startswith('{')]; c=[x.get('check') or {} for x in r]
print('$2: %d/%d pass, dq %.1e dkv %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0])))" 2>&1 | tee -a $R/summ.txt; }
timeout 10 python3 -c "
import json
P = [256, 130, 129, 200, 250, 255, 192, 160, 240, 222, 131, 180, 129, 255, 140]
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[P[i % len(P)] for i in range(150)]]}, open('$R/pair.json', 'w'))
json.dump({'batches': [[P[(3 * i) % len(P)] for i in range(300)]]}, open('$R/pair300.json', 'w'))
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))"
echo "== f16 kv1 pair s8 t=$((SECONDS - T0))"
env $S8 timeout 25 $B bench-gpu --batches "$R/pair300.json" --head-dim 128 --dtype f16 --kv-heads 1 --masks full \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 22 --op-times $R/ops_f16 --json "$R/f16_s8.jsonl" > "$R/f16_s8.log" 2>&1
summ $R/f16_s8.jsonl "pair f16 kv1 s8"; grep -h -o "Bwd[A-Za-z]*" $R/ops_f16/* | sort | uniq -c | tr '\n' ' '; echo
echo "== selftest s8 t=$((SECONDS - T0))"
env $S8 DCP_CUDA_FAMILY=sm90 timeout 20 $B bench-gpu --selftest 4 --planners local,zigzag,dcp --timeout-s 18 --json "$R/st_s8.jsonl" > "$R/st_s8.log" 2>&1
summ $R/st_s8.jsonl "selftest s8"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  if ! left 25; then continue; fi
  echo "== $tool s8 t=$((SECONDS - T0))"
  env $S8 timeout -k 3 15 "$CS" --tool $tool --print-limit 5 $B bench-gpu --batches "$R/pair.json" --head-dim 128 --masks full \
    --planners local --warmup 0 --repeats 1 --timeout-s 12 --op-times "$R/san_$tool" > "$R/san_$tool.txt" 2>&1
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$R/san_$tool.txt" | head -2 | tee -a $R/summ.txt
  grep -h -o "Bwd[A-Za-z]*" $R/san_$tool/* 2>/dev/null | sort | uniq -c | tr '\n' ' '; echo
done
if left 20; then
  echo "== short documents s8 t=$((SECONDS - T0))"
  env $S8 timeout 18 $B bench-gpu --batches "$R/short.json" --head-dim 128 --masks full,causal,causal-blockwise:128:2,sliding-window:100 \
    --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 16 --json "$R/short_s8.jsonl" > "$R/short_s8.log" 2>&1
  summ $R/short_s8.jsonl "short documents s8"
fi
snap
cat $R/summ.txt
echo "== done t=$((SECONDS - T0))"
