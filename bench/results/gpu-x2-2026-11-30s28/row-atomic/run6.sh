#!/usr/bin/env bash
# s28 call 6 (2x H200): LIMIT=400 timeout 420 bash .s28/run6.sh
# Row-atomic staging in the dcp planner (new) against main (old), the same batches, alternated:
# the index-0 matrix batches, masks lambda / shared-question / causal-blockwise, planners dcp
# (default cost model) and dcp-only, round 1 checked against the one-GPU local plan; a 2-GPU
# selftest of the new binary first.
set -u
OUTD=${OUT:-/tmp/s28_out}
LIMIT=${LIMIT:-400}
R=/tmp/s28c6; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s28c6.tgz" --exclude=s28c6/dcp_old --exclude=s28c6/dcp_new -C /tmp s28c6; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
for v in old new; do gunzip -c .s28/dcp_$v.gz > $R/dcp_$v && chmod +x $R/dcp_$v; done
python3 - > "$R/b.json" <<'PY'
import json
f = json.load(open("bench/gpu/x4_batches.json"))
keep = [i for i, l in enumerate(f["labels"]) if l["index"] < 1]
json.dump({"batches": [f["batches"][i] for i in keep], "labels": [f["labels"][i] for i in keep]}, open("/dev/stdout", "w"))
PY
echo "== selftest new t=$((SECONDS - T0))"
timeout 90 $R/dcp_new launch -n 2 -- bench-gpu --selftest 12 --corpus testdata/ --planners dcp,dcp-only \
  --timeout-s 85 --json "$R/st_new.jsonl" > "$R/st_new.log" 2>&1; echo "rc=$?"
python3 -c "
import json; r=[json.loads(l) for l in open('$R/st_new.jsonl')]; c=[x.get('check') or {} for x in r]
print('selftest new: %d/%d pass' % (sum(1 for x in c if x.get('pass')), len(r)))"
snap
for round in 1 2; do
  for v in old new; do
    left 70 || continue
    ck=""; [ $round = 1 ] && ck="--check"
    echo "== $v round $round t=$((SECONDS - T0))"
    timeout 150 $R/dcp_$v launch -n 2 -- bench-gpu --batches "$R/b.json" --masks lambda,shared-question,causal-blockwise \
      --planners dcp,dcp-only $ck --warmup 1 --repeats 3 --json "$R/mx_${v}_$round.jsonl" > "$R/mx_${v}_$round.log" 2>&1; echo "rc=$?"
  done
  snap
done
python3 - "$R" <<'PY' | tee "$R/table.txt"
import json, sys, glob, collections
R = sys.argv[1]
t = collections.defaultdict(list); checks = collections.Counter()
for f in glob.glob(R + "/mx_*.jsonl"):
    v = f.split("/mx_")[1].split("_")[0]
    for l in open(f):
        x = json.loads(l)
        if x.get("kind") != "bench": continue
        t[(v, x["mask"], x["planner"], x["batch"])].append(x["fwd_ms"] + x["bwd_ms"])
        c = x.get("check")
        if c: checks[(v, bool(c.get("pass")))] += 1
print("checks:", dict(checks))
for m in ("lambda", "shared-question", "causal-blockwise"):
    for p in ("dcp", "dcp-only"):
        o = [min(t.get(("old", m, p, b), [float("nan")])) for b in range(8)]
        n = [min(t.get(("new", m, p, b), [float("nan")])) for b in range(8)]
        print(f"{m:16} {p:8} old {sum(o):7.2f} new {sum(n):7.2f} ({sum(n)/sum(o):.3f}) | " + " ".join(f"{b/a:.2f}" for a, b in zip(o, n)))
PY
echo "== done t=$((SECONDS - T0))"
snap
