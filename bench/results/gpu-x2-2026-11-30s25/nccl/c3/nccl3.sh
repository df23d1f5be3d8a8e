#!/usr/bin/env bash
# s25 call 3 (2x H200): the comm stream at the greatest priority (DCP_CUDA_COMM_PRIORITY=1), PDL off, both.
# CTA budget / copy-engine P2P with and without free SMs, alternated with the default.
set -u
OUTD=${OUT:-/tmp/s25_out}
R=/tmp/s25n3; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
DCP=.s25/dcp
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee "$R/card.txt"
python3 - > "$R/b.json" <<'PY'
import json
f = json.load(open("bench/gpu/x4_batches.json"))
keep = [i for i, l in enumerate(f["labels"]) if l["index"] < 1]
json.dump({"batches": [f["batches"][i] for i in keep], "labels": [f["labels"][i] for i in keep]}, open("/dev/stdout", "w"))
PY
declare -A V=(
  [base]=""
  [prio]="DCP_CUDA_COMM_PRIORITY=1"
  [nopdl]="DCP_CUDA_PDL=0"
  [prionopdl]="DCP_CUDA_COMM_PRIORITY=1 DCP_CUDA_PDL=0"
)
run() { # TAG SUFFIX [--op-times]
  local tag=$1 sfx=$2; shift 2
  local t0=$(date +%s)
  env ${V[$tag]} NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT,ENV,TUNING timeout 150 $DCP launch -n 2 -- bench-gpu --batches "$R/b.json" \
    --masks causal,shared-question --planners ring,zigzag,local,dcp@1024 --warmup 1 --repeats 3 \
    --json "$R/${tag}_$sfx.jsonl" "$@" > "$R/${tag}_$sfx.log" 2>&1
  echo "$tag/$sfx rc=$? $(( $(date +%s) - t0 )) s; $(grep -h -m3 -E 'p2p channels|CTA|MEMCPY|set by environment' "$R/${tag}_$sfx.log" | grep 'rank 0' | cut -c1-160 | tr '\n' ' ')"
}
run base 1 --op-times "$R/ops_base"
run prio 1 --op-times "$R/ops_prio"
run prionopdl 1 --op-times "$R/ops_prionopdl"
run nopdl 1
run base 2
run prio 2
run prionopdl 2
run nopdl 2
run base 3
run prio 3
python3 - "$R" <<'PY'
import json, sys, glob, os, collections
R = sys.argv[1]
def load(p):
    d = {}
    for l in open(p):
        r = json.loads(l)
        if r.get("kind") != "bench": continue
        d[(r["mask"], r["planner"], r["batch"])] = (r["fwd_ms"], r["bwd_ms"])
    return d
runs = collections.defaultdict(list)
for p in sorted(glob.glob(f"{R}/*_[123].jsonl")):
    tag = os.path.basename(p).rsplit("_", 1)[0]
    try: runs[tag].append(load(p))
    except Exception as e: print("skip", p, e)
base = runs.pop("base")
groups = collections.defaultdict(list)
for k in base[0]: groups[(k[0], k[1])].append(k)
tags = sorted(runs)
print(f"{'mask':16} {'planner':8} {'base fwd/bwd':>16} " + " ".join(f"{t:>13}" for t in tags + ['base2/1']))
for (m, p), ks in sorted(groups.items()):
    def tot(d, i): return sum(d[k][i] for k in ks if k in d)
    mf = sum(tot(b, 0) for b in base) / len(base); mb = sum(tot(b, 1) for b in base) / len(base)
    cells = []
    for t in tags:
        ds = [d for d in runs[t] if all(k in d for k in ks)]
        cells.append("%.3f/%.3f" % (sum(tot(d, 0) for d in ds) / len(ds) / mf, sum(tot(d, 1) for d in ds) / len(ds) / mb) if ds else "-")
    if len(base) > 1: cells.append("%.3f/%.3f" % (tot(base[1], 0) / tot(base[0], 0), tot(base[1], 1) / tot(base[0], 1)))
    print(f"{m:16} {p:8} {mf:7.2f}/{mb:7.2f} " + " ".join(f"{c:>13}" for c in cells))
# comm spans in the op-time runs (forward, ring/zigzag/dcp): total comm-op ms and its bytes-free estimate
for t in ("base", "prio", "prionopdl"):
    tot = collections.defaultdict(float)
    for p in glob.glob(f"{R}/ops_{t}/ops_rank*.jsonl"):
        for l in open(p):
            r = json.loads(l)
            for ph in ("fwd", "bwd"):
                tot[(r["planner"], ph)] += sum(o["end_ms"] - o["start_ms"] for o in r[ph] if o["op"] == "comm")
    print("comm op ms", t, {f"{k[0]}/{k[1]}": round(v, 2) for k, v in sorted(tot.items()) if v})
PY
cd /tmp && tar czf "$OUTD/s25n3.tgz" s25n3 && cp "$R/run.log" "$OUTD/"
