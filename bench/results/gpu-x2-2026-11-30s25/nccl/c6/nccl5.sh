#!/usr/bin/env bash
# s25 call 6 (2x H200): NCCL send/recv bandwidth settings (dcp calibrate's curve), then the best
# against the default on ulysses / dcp plans, alternated.
set -u
OUTD=${OUT:-/tmp/s25_out}
R=/tmp/s25n5; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
DCP=.s25/dcp
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1
declare -A V=(
  [base]=""
  [chunk1m]="NCCL_P2P_NVL_CHUNKSIZE=1048576"
  [chunk2m]="NCCL_P2P_NVL_CHUNKSIZE=2097152"
  [simple]="NCCL_PROTO=Simple"
  [ce]="NCCL_P2P_USE_CUDA_MEMCPY=1"
)
for v in base chunk1m chunk2m simple ce; do
  env ${V[$v]} timeout 60 $DCP launch -n 2 -- calibrate --out "$R/prof_$v.json" > "$R/cal_$v.log" 2>&1
  python3 - "$R/prof_$v.json" "$v" <<'PY' || echo "$v: calibrate failed"
import json, sys
p = json.load(open(sys.argv[1]))
c = {x["bytes"]: x["gbps"] for x in p["p2p_curve"]}
print(f"{sys.argv[2]:8} " + " ".join(f"{b >> 20 if b >= 1 << 20 else b}{'M' if b >= 1 << 20 else 'B'}:{g:6.1f}" for b, g in sorted(c.items()) if b >= 1 << 20), f"lat {p['intra_latency_us']:.1f} us")
PY
done
BEST=$(python3 - "$R" <<'PY'
import json, sys, glob, os
best, bg = "base", 0
for f in glob.glob(sys.argv[1] + "/prof_*.json"):
    p = json.load(open(f)); c = {x["bytes"]: x["gbps"] for x in p["p2p_curve"]}
    g = c.get(67108864, 0)
    if g > bg: best, bg = os.path.basename(f)[5:-5], g
print(best)
PY
)
echo "best at 64 MB: $BEST"
python3 - > "$R/b.json" <<'PY'
import json
f = json.load(open("bench/gpu/x4_batches.json"))
keep = [i for i, l in enumerate(f["labels"]) if l["index"] < 1]
json.dump({"batches": [f["batches"][i] for i in keep], "labels": [f["labels"][i] for i in keep]}, open("/dev/stdout", "w"))
PY
run() { local tag=$1 sfx=$2
  env ${V[$tag]} timeout 100 $DCP launch -n 2 -- bench-gpu --batches "$R/b.json" --masks causal,shared-question \
    --planners ulysses,dcp@1024 --warmup 1 --repeats 3 --json "$R/${tag}_$sfx.jsonl" > "$R/${tag}_$sfx.log" 2>&1
  echo "$tag/$sfx rc=$?"; }
if [ "$BEST" != base ]; then
  run base 1; run $BEST 1; run base 2; run $BEST 2
  python3 - "$R" "$BEST" <<'PY'
import json, sys, collections
R, best = sys.argv[1], sys.argv[2]
def load(t):
    d = collections.defaultdict(lambda: [0.0, 0.0])
    for s in (1, 2):
        for l in open(f"{R}/{t}_{s}.jsonl"):
            r = json.loads(l)
            if r.get("kind") != "bench": continue
            k = (r["mask"], r["planner"]); d[k][0] += r["fwd_ms"]; d[k][1] += r["bwd_ms"]
    return d
a, b = load("base"), load(best)
for k in sorted(a):
    print(f"{k[0]:16} {k[1]:8} base {a[k][0]/2:7.2f}/{a[k][1]/2:7.2f}  {best} {b[k][0]/a[k][0]:.3f}/{b[k][1]/a[k][1]:.3f}")
PY
fi
cd /tmp && tar czf "$OUTD/s25n5.tgz" s25n5
