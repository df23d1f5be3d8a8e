#!/usr/bin/env bash
# s25 call 1 (2x H200): does NCCL's transfer overlap the persistent attention kernels?
# A/B: default grid (one CTA per SM) against grids that leave SMs free (DCP_CUDA_FWD_CTAS /
# DCP_CUDA_BWD_CTAS), alternated, on ring / zigzag / local / dcp plans; op times for two batches.
set -u
OUTD=${OUT:-/tmp/s25_out}
R=/tmp/s25n1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
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
python3 -c "import json; b=json.load(open('$R/b.json')); print('batches', [sum(x) for x in b['batches']])"
run() { # TAG [ENV=V ...]
  local tag=$1; shift
  local t0=$(date +%s)
  env "$@" timeout 170 $DCP launch -n 2 -- bench-gpu --batches "$R/b.json" --masks causal,shared-question \
    --planners ring,zigzag,local,dcp@1024 --warmup 1 --repeats 3 --json "$R/$tag.jsonl" > "$R/$tag.log" 2>&1
  echo "$tag rc=$? $(( $(date +%s) - t0 )) s"
}
run base1
run c124a DCP_CUDA_FWD_CTAS=124 DCP_CUDA_BWD_CTAS=124
run c128a DCP_CUDA_FWD_CTAS=128 DCP_CUDA_BWD_CTAS=128
run base2
run c124b DCP_CUDA_FWD_CTAS=124 DCP_CUDA_BWD_CTAS=124
# op times of two batches (scale 1 of each data set), both grids
python3 - "$R" <<'PY'
import json, sys
R = sys.argv[1]
b = json.load(open(f"{R}/b.json"))
keep = [i for i, l in enumerate(b["labels"]) if l.get("scale") in (1, 1.0)][:2] or [0, 1]
json.dump({"batches": [b["batches"][i] for i in keep], "labels": [b["labels"][i] for i in keep]}, open(f"{R}/b2.json", "w"))
print("op-time batches", keep)
PY
for tag in base c124; do
  E=(); [ $tag = c124 ] && E=(DCP_CUDA_FWD_CTAS=124 DCP_CUDA_BWD_CTAS=124)
  env "${E[@]}" NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT,P2P timeout 120 $DCP launch -n 2 -- bench-gpu --batches "$R/b2.json" \
    --masks causal,shared-question --planners ring,zigzag,local,dcp@1024 --warmup 1 --repeats 2 \
    --op-times "$R/ops_$tag" --json "$R/ops_$tag.jsonl" > "$R/ops_$tag.log" 2>&1
  echo "ops $tag rc=$?"
done
grep -h -i "channel" "$R/ops_base.log" | sort | uniq -c | sort -rn | head -8
python3 - "$R" <<'PY'
import json, sys, math, collections
R = sys.argv[1]
def load(t):
    d = {}
    for l in open(f"{R}/{t}.jsonl"):
        r = json.loads(l)
        if r.get("kind") != "bench": continue
        d[(r["mask"], r["planner"], r["block_size"] if r["planner"].startswith("dcp") else 0, r["batch"])] = (r["fwd_ms"], r["bwd_ms"])
    return d
base = [load("base1"), load("base2")]
alt = {"c124": [load("c124a"), load("c124b")], "c128": [load("c128a")]}
print("rows: base", len(base[0]), len(base[1]))
print(f"{'mask':16} {'planner':8} {'base fwd/bwd ms (sum)':>24} {'c124 ratio':>14} {'c128 ratio':>14} {'base2/base1':>12}")
groups = collections.defaultdict(list)
for k in base[0]:
    groups[(k[0], k[1])].append(k)
for (m, p), ks in sorted(groups.items()):
    def tot(d, i): return sum(d[k][i] for k in ks if k in d)
    bf = [tot(b, 0) for b in base]; bb = [tot(b, 1) for b in base]
    mf, mb = sum(bf) / 2, sum(bb) / 2
    def rr(ds):
        return "%.3f/%.3f" % (sum(tot(d, 0) for d in ds) / len(ds) / mf, sum(tot(d, 1) for d in ds) / len(ds) / mb)
    print(f"{m:16} {p:8} {mf:11.2f}/{mb:11.2f} {rr(alt['c124']):>14} {rr(alt['c128']):>14} {bf[1]/bf[0]:.3f}/{bb[1]/bb[0]:.3f}")
PY
cd /tmp && tar czf "$OUTD/s25n1.tgz" s25n1 && cp "$R/run.log" "$OUTD/"
