#!/usr/bin/env bash
# session 7: D pre-pass chunked per warp + local plan fills only rows without a work; old vs new binary
set -u
source bench/gpu/env.sh
T0=$SECONDS
for b in old new old new; do
  B=.pdev/dcp; [ $b = new ] && B=.pdev/new/dcp
  echo "== $b t=$((SECONDS-T0))"
  timeout 90 $B kernel-bench --shapes works1000,onework,packed,causal32k --repeats 3 --json $OUT/kb_$b.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror'
done
python3 -c "import json; json.dump({'batches': [[256]*1000]}, open('/tmp/w1000.json','w'))"
for b in old new; do
  B=.pdev/dcp; [ $b = new ] && B=.pdev/new/dcp
  timeout 90 $B bench-gpu --batches /tmp/w1000.json --mask full --planners local --warmup 1 --repeats 3 --op-times $OUT/ops_$b > /dev/null 2>&1
  python3 - $OUT/ops_$b $b <<'PY'
import json, sys, collections
for l in open(sys.argv[1] + "/ops_rank0.jsonl"):
    r = json.loads(l)
    for ph in ("fwd", "bwd"):
        agg = collections.defaultdict(float)
        for op in r[ph]:
            agg[op["op"]] += op["end_ms"] - op["start_ms"]
        print(sys.argv[2], ph, "%.3f ms" % r[ph + "_ms"], " ".join("%s=%.3f" % kv for kv in sorted(agg.items(), key=lambda x: -x[1])))
PY
done
echo "== selftest new t=$((SECONDS-T0))"
timeout 120 .pdev/new/dcp bench-gpu --selftest 10 --planners local,zigzag,dcp --timeout-s 100 --json $OUT/st_new.jsonl 2>&1 | grep -E 'passed|FAIL|rror' | tail -3
python3 -c "import json; r=[json.loads(l) for l in open('$OUT/st_new.jsonl')]; c=[x.get('check') or {} for x in r]; print('selftest new: %d/%d pass' % (sum(1 for x in c if x.get('pass')), len(r)))"
echo "== check new t=$((SECONDS-T0))"
echo '{"batches": [[2000, 300, 700], [3000]]}' > /tmp/c.json
timeout 120 .pdev/new/dcp bench-gpu --batches /tmp/c.json --masks causal,lambda --planners local,zigzag,dcp --check --cpu-check-tokens 3000 --warmup 0 --repeats 1 --json $OUT/chk_new.jsonl 2>&1 | grep -E ' ok | FAIL|rror' | head -14
tar czf $OUT/dd.tgz -C $OUT $(cd $OUT && ls -d ops_*) && rm -rf $OUT/ops_*
echo "== done t=$((SECONDS-T0))"
