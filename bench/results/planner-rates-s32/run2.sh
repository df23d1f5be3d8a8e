#!/usr/bin/env bash
# s32 call 2 (2x H200): LIMIT=280 timeout 300 bash .s32/run2.sh
# The planner's default cost model (PyTorch flash rates 350 / 324 TFLOP/s) against rates near this
# project's kernels (650 / 540, .s32/fast.json): on the 4 of 64 batches of topology 1x2 whose
# pick differs (longalign x4 causal #2, ldc x4 causal #4: ulysses -> local; longalign x4 lambda #5,
# ldc x1 lambda #5: ulysses -> dcp's placement), time both picks (the static candidates directly,
# and dcp itself under each model), alternated x3, checked in round 1.
set -u
OUTD=${OUT:-/tmp/s32_out}
LIMIT=${LIMIT:-280}
R=/tmp/s32c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s32c2.tgz" --exclude=s32c2/dcp -C /tmp s32c2; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
D=$R/dcp; gunzip -c .s32/dcp1.gz > $D && chmod +x $D
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
for r in 1 2 3; do for m in causal lambda; do if left 40; then
  case $m in causal) P=ulysses,local,dcp-only;; lambda) P=ulysses,dcp-only;; esac
  CHK=""; [ $r = 1 ] && CHK=--check
  echo "== $m round $r t=$((SECONDS - T0))"
  timeout 120 $D launch -n 2 -- bench-gpu --batches .s32/pick_$m.json --mask $m --planners $P $CHK --warmup 2 --repeats 5 --json $R/st_${m}_$r.jsonl > $R/st_${m}_$r.log 2>&1; echo "rc=$?"
  for cm in default fast; do
    A=""; [ $cm = fast ] && A="--cost-model .s32/fast.json"
    timeout 90 $D launch -n 2 -- bench-gpu --batches .s32/pick_$m.json --mask $m --planners dcp $A --warmup 2 --repeats 5 --json $R/dcp_${cm}_${m}_$r.jsonl > $R/dcp_${cm}_${m}_$r.log 2>&1; echo "rc=$? ($cm)"
  done
fi; done; done
snap
python3 - "$R" <<'PY' | tee "$R/table.txt"
import json, sys, glob, collections, statistics
R = sys.argv[1]
t = collections.defaultdict(lambda: collections.defaultdict(list))
chk = {}
for f in sorted(glob.glob(R + "/*.jsonl")):
    name = f.rsplit("/", 1)[1]
    for l in open(f):
        if not l.strip(): continue
        x = json.loads(l)
        if x.get("kind") != "bench" or x.get("fwd_ms") is None: continue
        who = x["planner"]
        if name.startswith("dcp_"):
            who = "dcp[%s]=%s" % (name.split("_")[1], x.get("candidate") or "dcp")
        key = (x["mask"], x["batch"])
        t[key][who].append(x["fwd_ms"] + x["bwd_ms"])
        if x.get("check"): chk[(key, who)] = x["check"].get("pass")
print("fwd + bwd ms, median over rounds (each a median of 5), max over ranks; check pass in round 1")
for key, d in t.items():
    print("\n%s batch %d:" % key)
    for who, v in sorted(d.items()):
        print("  %-28s %8.2f  (%s)  check %s" % (who, statistics.median(v), " ".join("%.2f" % y for y in v), chk.get((key, who), "-")))
PY
echo "== done t=$((SECONDS - T0))"
snap
