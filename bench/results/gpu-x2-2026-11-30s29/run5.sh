#!/usr/bin/env bash
# s29 call 5 (2x H200): LIMIT=540 timeout 560 bash .s29/run5.sh
# Regression of main with FWD_LATEREL 3 (967b551's release build, .s29/dcp3.gz, and its wheel,
# .s29/whl) on 2 GPUs: the random selftest plus the corpus against the CPU f64 reference; the
# index-0 matrix batches (longalign and ldc, scales 0.5-4) under 4 masks with dcp, zigzag and
# local, every output checked against the one-GPU local plan, timed (median of 3); then the whole
# python/tests suite with the wheel (its GPU tests on 1 and 2 GPUs included).
set -u
OUTD=${OUT:-/tmp/s29_out}
LIMIT=${LIMIT:-540}
R=/tmp/s29c5; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s29c5.tgz" --exclude=s29c5/dcp -C /tmp s29c5; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
D=$R/dcp; gunzip -c .s29/dcp3.gz > $D && chmod +x $D
python3 - > "$R/b.json" <<'PY'
import json
f = json.load(open("bench/gpu/x4_batches.json"))
keep = [i for i, l in enumerate(f["labels"]) if l["index"] < 1]
json.dump({"batches": [f["batches"][i] for i in keep], "labels": [f["labels"][i] for i in keep]}, open("/dev/stdout", "w"))
PY
echo "== selftest t=$((SECONDS - T0))"
timeout 150 $D launch -n 2 -- bench-gpu --selftest 16 --corpus testdata/ --planners local,zigzag,dcp,ulysses \
  --timeout-s 140 --json "$R/st.jsonl" > "$R/st.log" 2>&1; echo "rc=$?"
grep -h -E "pass|FAIL|cases" "$R/st.log" | tail -3
snap
echo "== matrix t=$((SECONDS - T0))"
timeout $((LIMIT - (SECONDS - T0) - 200)) $D launch -n 2 -- bench-gpu --batches "$R/b.json" \
  --masks causal,lambda,shared-question,causal-blockwise --planners dcp,zigzag,local --check \
  --warmup 1 --repeats 3 --json "$R/mx.jsonl" > "$R/mx.log" 2>&1; echo "rc=$?"
snap
python3 - "$R" <<'PY' | tee "$R/table.txt"
import json, sys, collections
R = sys.argv[1]
def rows(f):
    try:
        return [json.loads(l) for l in open(f) if l.strip()]
    except OSError:
        return []
st = rows(R + "/st.jsonl")
c = [x.get("check") or {} for x in st]
print(f"selftest + corpus on 2 GPUs: {sum(1 for x in c if x.get('pass'))} / {len(c)} pass"
      + (f", worst o {max(x.get('o', 0) for x in c):.1e} dq {max(x.get('dq', 0) for x in c):.1e}" if c else ""))
mx = [x for x in rows(R + "/mx.jsonl") if x.get("kind") == "bench"]
ck = [x.get("check") or {} for x in mx]
print(f"matrix checks: {sum(1 for x in ck if x.get('pass'))} / {len(ck)} pass")
t = collections.defaultdict(dict)
for x in mx:
    t[(x["mask"], x["batch"])][x["planner"]] = (x["fwd_ms"], x["bwd_ms"])
print(f"{'mask':17} {'batch':>5} " + "  ".join(f"{p:>15}" for p in ("dcp", "zigzag", "local")) + "   (fwd/bwd ms, max over ranks)")
for (m, b), d in sorted(t.items()):
    print(f"{m:17} {b:>5} " + "  ".join(f"{d[p][0]:6.2f}/{d[p][1]:7.2f}" if p in d else f"{'-':>15}" for p in ("dcp", "zigzag", "local")))
PY
echo "== done t=$((SECONDS - T0))"
snap
echo "== pytest t=$((SECONDS - T0))"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .s29/whl/dcp-*.whl || exit 1
( export PYTHONPATH=/tmp/site; eval "$(python3 -m dcp.env)"; source bench/gpu/env.sh; cd python/tests && \
  timeout 180 python3 -m pytest -q -rs . > "$R/pytest.txt" 2>&1; echo "pytest rc=$?" )
tail -6 "$R/pytest.txt"
echo "== done t=$((SECONDS - T0))"
snap
