#!/usr/bin/env bash
# Session 26, x2 call 3: dcp with ulysses-pp among its candidates (new) against dcp without (old),
# and ulysses against ulysses-pp, alternated in separate processes x3, causal and shared-question
# (index-0 batches of the matrix), planner profile = session 25's 2-GPU matrix profile.
set -u
OUTD=${OUT:-/tmp/s26_out}; R=/tmp/s26pp2; rm -rf $R; mkdir -p $R $OUTD
exec > >(tee $R/run.log) 2>&1
source bench/gpu/env.sh
gunzip -k .s26/dcp_old.gz .s26/dcp_new.gz && chmod +x .s26/dcp_old .s26/dcp_new
python3 - > $R/b.json <<'PY'
import json
f = json.load(open("bench/gpu/x4_batches.json"))
keep = [i for i, l in enumerate(f["labels"]) if l["index"] < 1]
json.dump({"batches": [f["batches"][i] for i in keep], "labels": [f["labels"][i] for i in keep]}, open("/dev/stdout", "w"))
PY
PROF=.s26/prof/profile_x4.json
run() { local tag=$1 bin=$2 pl=$3 r=$4 extra=${5:-}
  timeout 150 $bin launch -n 2 -- bench-gpu --batches $R/b.json --masks causal,shared-question --planners $pl \
    --planner-profile $PROF --warmup 1 --repeats 3 $extra --json $R/${tag}_$r.jsonl > $R/${tag}_$r.log 2>&1
  echo "$tag/$r rc=$? $(grep -h -E 'plan runs|FAIL' $R/${tag}_$r.log | tail -1)"; }
run old .s26/dcp_old dcp 1 --check; run new .s26/dcp_new dcp 1 --check; run u .s26/dcp_new ulysses 1; run pp .s26/dcp_new ulysses-pp 1
run new .s26/dcp_new dcp 2; run old .s26/dcp_old dcp 2; run pp .s26/dcp_new ulysses-pp 2; run u .s26/dcp_new ulysses 2
run old .s26/dcp_old dcp 3; run new .s26/dcp_new dcp 3; run u .s26/dcp_new ulysses 3; run pp .s26/dcp_new ulysses-pp 3
python3 - $R <<'PY'
import json, sys, collections, math, glob, os
R = sys.argv[1]
t = collections.defaultdict(list); cand = {}
for p in glob.glob(f"{R}/*_[123].jsonl"):
    tag = os.path.basename(p).rsplit("_", 1)[0]
    for l in open(p):
        x = json.loads(l)
        if x.get("kind") == "bench":
            t[(x["mask"], x["batch"], tag)].append((x["fwd_ms"], x["bwd_ms"]))
            if tag == "new": cand[(x["mask"], x["batch"])] = x.get("candidate")
g = lambda a: math.exp(sum(map(math.log, a)) / len(a)) if a else float("nan")
for a, b in (("new", "old"), ("pp", "u")):
    for m in ("causal", "shared-question"):
        rows = []
        for (mm, bb, tag), v in sorted(t.items()):
            if mm != m or tag != b or (mm, bb, a) not in t: continue
            w = t[(mm, bb, a)]
            f = lambda v, i: sorted(x[i] for x in v)[len(v) // 2]
            rows.append((bb, f(w, 0) / f(v, 0), f(w, 1) / f(v, 1), (f(w, 0) + f(w, 1)) / (f(v, 0) + f(v, 1)), [round(x[1], 2) for x in v], [round(x[1], 2) for x in w]))
        print(f"{a}/{b} {m}: fwd {g([r[1] for r in rows]):.3f} bwd {g([r[2] for r in rows]):.3f} total {g([r[3] for r in rows]):.3f}")
        for r in rows: print(f"   b{r[0]} {r[1]:.3f} {r[2]:.3f} {r[3]:.3f} bwd {b} {r[4]} {a} {r[5]}" + (f" cand {cand.get((m, r[0]))}" if a == "new" else ""))
PY
cd /tmp && tar czf $OUTD/s26pp2.tgz s26pp2
