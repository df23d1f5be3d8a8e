#!/usr/bin/env bash
# session 7, x4 call 2: selftest at world 2, compute-sanitizer on the merged session-6 kernels, op times of
# works1000 (1000 x 256 tokens, full mask) at world 1, then training ldc causal with the pool.
set -u
source bench/gpu/env.sh
B=.pdev/dcp; T0=$SECONDS; J=$OUT/fin; mkdir -p $J
summ() { python3 -c "import json,sys; r=[json.loads(l) for l in open('$1')]; c=[x.get('check') or {} for x in r]; print('$2: %d/%d pass, worst dq %.1e dkv %.1e o %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0]), max([x.get('o',0) or 0 for x in c]+[0])))" 2>&1 | tail -1; }
echo "== selftest world 2"
timeout -k 5 90 $B launch -n 2 -- bench-gpu --selftest 8 --planners dcp,ring,zigzag,local,ulysses,usp --json $J/selftest_w2.jsonl > $J/st2.log 2>&1; echo "rc=$?"; summ $J/selftest_w2.jsonl "selftest w2"; grep -E "FAIL|panic" $J/st2.log | head -3
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  echo "== $tool t=$((SECONDS-T0))s"
  DCP_CUDA_FAMILY=sm90 timeout -k 5 100 $CS --tool $tool --print-limit 5 $B bench-gpu --selftest 2 --planners local,zigzag,dcp --timeout-s 90 > $J/san_$tool.txt 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL|passed" $J/san_$tool.txt | head -6
done
echo "== works1000 op times t=$((SECONDS-T0))s"
python3 -c "import json; json.dump({'batches': [[256]*1000, [8096]]}, open('/tmp/w1000.json','w'))"
timeout 90 $B bench-gpu --batches /tmp/w1000.json --mask full --planners local --warmup 1 --repeats 3 --op-times $J/ops_w1000 2>&1 | grep -vE '^\{' | tail -5
python3 - $J/ops_w1000 <<'PY'
import json, sys, glob, collections
for f in glob.glob(sys.argv[1] + "/ops_rank0.jsonl"):
    for l in open(f):
        r = json.loads(l)
        for ph in ("fwd", "bwd"):
            agg = collections.defaultdict(float)
            for op in r[ph]:
                agg[op["op"]] += op["end_ms"] - op["start_ms"]
            print(r["batch"], ph, "%.3f ms" % r[ph + "_ms"], " ".join("%s=%.3f" % kv for kv in sorted(agg.items(), key=lambda x: -x[1])))
PY
echo "== train ldc causal t=$((SECONDS-T0))s"
OUT=$J/train MASKS=causal STEPS=12 timeout 300 bash bench/gpu/x4_train.sh .pdev/whl ldc 2>&1 | tail -8
tar czf $OUT/fin.tgz -C $OUT fin && rm -rf $J
echo "== done t=$((SECONDS-T0))s"
