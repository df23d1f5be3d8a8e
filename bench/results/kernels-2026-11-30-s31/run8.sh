#!/usr/bin/env bash
# s31 call 8 (1x H200): LIMIT=200 timeout 215 bash .s31/run8.sh
# How much of the power-capped backward is its dQ reductions? Ablations (wrong dQ, timing only):
# nodq = no dQ reduce-add at all; halfdq = only for even 128-row q tiles (the bound of halving the
# dQ traffic, e.g. by 2-CTA clusters summing adjacent kv tiles' dQ). Sustained timing (20 untimed
# runs, median of 20), alternated x2 against base (embedded kernels).
set -u
OUTD=${OUT:-/tmp/s31_out}
LIMIT=${LIMIT:-200}
R=/tmp/s31c8; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s31c8.tgz" --exclude=s31c8/dcp -C /tmp s31c8; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
D=$R/dcp; gunzip -c .s31/dcp6.gz > $D && chmod +x $D
SH=causal@32768,causal@131072,packed
venv() { case $1 in base) echo "";; *) echo "DCP_CUDA_KERNELS=.s31/v/$1";; esac; }
for r in 1 2; do for v in base nodq halfdq; do if left 30; then
  echo "== $v $r t=$((SECONDS - T0))"
  env $(venv $v) timeout 40 $D kernel-bench --shapes $SH --warmup 20 --repeats 20 --json "$R/kb_${v}_$r.jsonl" > "$R/kb_${v}_$r.log" 2>&1; echo "rc=$?"
fi; done; done
python3 - "$R" <<'PY' | tee "$R/table.txt"
import json, sys, glob, collections, statistics
R = sys.argv[1]
t = collections.defaultdict(lambda: collections.defaultdict(list))
for f in sorted(glob.glob(R + "/kb_*.jsonl")):
    v = f.split("/kb_")[1].rsplit("_", 1)[0]
    for l in open(f):
        x = json.loads(l)
        if x.get("kind") == "bench": t[x["shape"]][v].append(x["bwd_tflops_per_gpu"])
vs = ["base", "nodq", "halfdq"]
print("backward TFLOP/s, sustained (÷ base)\n| shape | " + " | ".join(vs) + " |\n|---|" + "---|" * len(vs))
for s, d in t.items():
    b = statistics.mean(d["base"]) if d.get("base") else float("nan")
    cells = [(" ".join("%.0f" % y for y in d[v]) + (f" ({statistics.mean(d[v]) / b:.3f})" if v != "base" else "")) if d.get(v) else "-" for v in vs]
    print(f"| {s} | " + " | ".join(cells) + " |")
PY
echo "== done t=$((SECONDS - T0))"
snap
