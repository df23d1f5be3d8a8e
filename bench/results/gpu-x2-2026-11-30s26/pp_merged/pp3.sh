#!/usr/bin/env bash
# Session 26, x2 call 4: ulysses-pp with its backward merged into one launch after both phases'
# inputs (bench-only DCP_PP_MERGED_BWD=1, pp_merged_bwd.diff) against ulysses-pp and ulysses,
# alternated in separate processes x3, causal and shared-question (index-0 batches of the matrix).
set -u
OUTD=${OUT:-/tmp/s26_out}; R=/tmp/s26pp3; rm -rf $R; mkdir -p $R $OUTD
exec > >(tee $R/run.log) 2>&1
source bench/gpu/env.sh
gunzip -k .s26/dcp_m.gz && chmod +x .s26/dcp_m
python3 - > $R/b.json <<'PY'
import json
f = json.load(open("bench/gpu/x4_batches.json"))
keep = [i for i, l in enumerate(f["labels"]) if l["index"] < 1]
json.dump({"batches": [f["batches"][i] for i in keep], "labels": [f["labels"][i] for i in keep]}, open("/dev/stdout", "w"))
PY
run() { local tag=$1 pl=$2 r=$3 env=$4 extra=${5:-}
  env $env timeout 150 .s26/dcp_m launch -n 2 -- bench-gpu --batches $R/b.json --masks causal,shared-question --planners $pl \
    --warmup 1 --repeats 3 $extra --json $R/${tag}_$r.jsonl > $R/${tag}_$r.log 2>&1
  echo "$tag/$r rc=$? $(grep -h -E 'plan runs|FAIL' $R/${tag}_$r.log | tail -1)"; }
run ppm ulysses-pp 1 DCP_PP_MERGED_BWD=1 --check; run pp ulysses-pp 1 X=0; run u ulysses 1 X=0
run u ulysses 2 X=0; run ppm ulysses-pp 2 DCP_PP_MERGED_BWD=1; run pp ulysses-pp 2 X=0
run pp ulysses-pp 3 X=0; run u ulysses 3 X=0; run ppm ulysses-pp 3 DCP_PP_MERGED_BWD=1
python3 - $R <<'PY'
import json, sys, collections, math, glob, os
R = sys.argv[1]
t = collections.defaultdict(list)
for p in glob.glob(f"{R}/*_[123].jsonl"):
    tag = os.path.basename(p).rsplit("_", 1)[0]
    for l in open(p):
        x = json.loads(l)
        if x.get("kind") == "bench":
            t[(x["mask"], x["batch"], tag)].append((x["fwd_ms"], x["bwd_ms"]))
g = lambda a: math.exp(sum(map(math.log, a)) / len(a)) if a else float("nan")
med = lambda v, i: sorted(x[i] for x in v)[len(v) // 2]
for m in ("causal", "shared-question"):
    print(f"{m}: per batch, ratios to ulysses (fwd / bwd / total): pp | ppm")
    acc = collections.defaultdict(list)
    for b in range(8):
        u = t.get((m, b, "u"))
        if not u: continue
        cells = []
        for tag in ("pp", "ppm"):
            w = t.get((m, b, tag))
            r = (med(w, 0) / med(u, 0), med(w, 1) / med(u, 1), (med(w, 0) + med(w, 1)) / (med(u, 0) + med(u, 1)))
            acc[tag].append(r); cells.append("%.3f/%.3f/%.3f" % r)
        print(f"   b{b} u {med(u,0):.2f}/{med(u,1):.2f}  " + " | ".join(cells))
    for tag, v in acc.items():
        print(f"   geomean {tag}: fwd {g([x[0] for x in v]):.3f} bwd {g([x[1] for x in v]):.3f} total {g([x[2] for x in v]):.3f}")
PY
cd /tmp && tar czf $OUTD/s26pp3.tgz s26pp3
