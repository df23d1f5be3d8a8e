#!/usr/bin/env bash
# session 7: packed backward old vs new binary (did the chunked D pre-pass cost 3 %?), op times per launch kind
set -u
source bench/gpu/env.sh
T0=$SECONDS
for b in new old new old; do
  B=.pdev/dcp; [ $b = new ] && B=.pdev/new/dcp
  echo "== $b t=$((SECONDS-T0))"
  timeout 90 $B kernel-bench --shapes packed,works1000 --repeats 5 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror'
done
python3 - > /tmp/packed.json <<'PY'
import random, json
random.seed(7); lens=[]; 
while sum(lens) < 131072 - 12000: lens.append(random.randint(300, 12000))
print(json.dumps({"batches": [lens]}))
PY
for b in old new old new; do
  B=.pdev/dcp; [ $b = new ] && B=.pdev/new/dcp
  rm -rf $OUT/o_$b
  timeout 90 $B bench-gpu --batches /tmp/packed.json --mask causal --planners local --warmup 1 --repeats 5 --op-times $OUT/o_$b > /dev/null 2>&1
  python3 - $OUT/o_$b $b <<'PY'
import json, sys, collections
for l in open(sys.argv[1] + "/ops_rank0.jsonl"):
    r = json.loads(l)
    for ph in ("fwd", "bwd"):
        agg = collections.defaultdict(float)
        for op in r[ph]:
            agg[op["op"]] += op["end_ms"] - op["start_ms"]
        print(sys.argv[2], ph, "%.3f ms" % r[ph + "_ms"], " ".join("%s=%.3f" % kv for kv in sorted(agg.items(), key=lambda x: -x[1])))
PY
  rm -rf $OUT/o_$b
done
echo "== done t=$((SECONDS-T0))"
