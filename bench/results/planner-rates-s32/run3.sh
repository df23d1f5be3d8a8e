#!/usr/bin/env bash
# s32 call 3 (2x H200): LIMIT=280 timeout 300 bash .s32/run3.sh
# dcp under the default cost model against .s32/fast.json (650 / 540) on whole dataset slices at
# 1x2 (5 batches each), alternated x2: where the candidate is the same, does the placement differ
# and does it cost anything?
set -u
OUTD=${OUT:-/tmp/s32_out}
LIMIT=${LIMIT:-280}
R=/tmp/s32c3; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s32c3.tgz" --exclude=s32c3/dcp -C /tmp s32c3; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
D=$R/dcp; gunzip -c .s32/dcp1.gz > $D && chmod +x $D
for r in 1 2; do for c in longalign:1:lambda ldc:4:lambda longalign:4:lambda ldc:1:causal longalign:1:causal ldc:4:causal; do
  IFS=: read ds sc m <<< "$c"
  for cm in default fast; do if left 20; then
    A=""; [ $cm = fast ] && A="--cost-model .s32/fast.json"
    echo "== $c $cm $r t=$((SECONDS - T0))"
    timeout 60 $D launch -n 2 -- bench-gpu --dataset $ds --scale $sc --count 5 --mask $m --planners dcp $A --warmup 1 --repeats 3 --json $R/m_${ds}_${sc}_${m}_${cm}_$r.jsonl > $R/m_${ds}_${sc}_${m}_${cm}_$r.log 2>&1; echo "rc=$?"
  fi; done
done; done
snap
python3 - "$R" <<'PY' | tee "$R/table.txt"
import json, sys, glob, collections, statistics
R = sys.argv[1]
t = collections.defaultdict(lambda: collections.defaultdict(list))
cand = collections.defaultdict(set)
for f in sorted(glob.glob(R + "/m_*.jsonl")):
    _, ds, sc, m, cm, r = f.rsplit("/", 1)[1][:-6].split("_")
    for l in open(f):
        if not l.strip(): continue
        x = json.loads(l)
        if x.get("kind") != "bench" or x.get("fwd_ms") is None: continue
        k = (ds, sc, m, x["batch"])
        t[k][cm].append(x["fwd_ms"] + x["bwd_ms"])
        cand[(k, cm)].add(x.get("candidate") or "dcp")
print("| dataset | scale | mask | batch | default: pick, fwd+bwd ms | fast: pick, ms | fast / default |\n|---|---|---|---|---|---|---|")
for k, d in sorted(t.items()):
    a = statistics.median(d["default"]) if d.get("default") else float("nan")
    b = statistics.median(d["fast"]) if d.get("fast") else float("nan")
    print("| %s | %s | %s | %d | %s %.2f | %s %.2f | %.3f |" % (*k, "/".join(cand[(k, "default")]), a, "/".join(cand[(k, "fast")]), b, b / a))
PY
echo "== done t=$((SECONDS - T0))"
snap
