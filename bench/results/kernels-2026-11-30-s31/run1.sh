#!/usr/bin/env bash
# s31 call 1 (1x H200): LIMIT=200 timeout 215 bash .s31/run1.sh
# Ablation under the TMA forward: how much of a short task's time are its K/V bytes?
# nokv4: K/V TMA loads issued for every 4th task of a CTA only (the others compute on stale
# shared memory: wrong results, timing only) = the bound of K/V reused across the 4 q heads of a
# GQA group; nokvall: for a CTA's first task only. Alternated x2 against base (embedded kernels).
set -u
OUTD=${OUT:-/tmp/s31_out}
LIMIT=${LIMIT:-200}
R=/tmp/s31c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s31c1.tgz" --exclude=s31c1/dcp -C /tmp s31c1; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
D=$R/dcp; gunzip -c .s31/dcp7.gz > $D && chmod +x $D
SH=works1000,onework,causal@256x1000,causal@512x500,full@128x2000,packed,blockwise,causal32k
venv() { case $1 in base) echo "";; *) echo "DCP_CUDA_KERNELS=.s31/v/$1";; esac; }
for r in 1 2; do for v in base nokv4 nokvall; do if left 40; then
  echo "== $v $r t=$((SECONDS - T0))"
  env $(venv $v) timeout 60 $D kernel-bench --shapes $SH --repeats 3 --json "$R/kb_${v}_$r.jsonl" > "$R/kb_${v}_$r.log" 2>&1; echo "rc=$?"
fi; done; done
snap
python3 - "$R" <<'PY' | tee "$R/table.txt"
import json, sys, glob, collections, statistics
R = sys.argv[1]
t = collections.defaultdict(lambda: collections.defaultdict(list))
for f in sorted(glob.glob(R + "/kb_*.jsonl")):
    v = f.split("/kb_")[1].rsplit("_", 1)[0]
    for l in open(f):
        x = json.loads(l)
        if x.get("kind") == "bench": t[x["shape"]][v].append(x["fwd_tflops_per_gpu"])
print("| shape | base | nokv4 | nokvall |\n|---|---|---|---|")
for s, d in t.items():
    b = statistics.mean(d["base"]) if d.get("base") else float("nan")
    cell = lambda v: f"{statistics.mean(d[v]):.0f} ({statistics.mean(d[v]) / b:.3f})" if d.get(v) else "-"
    print(f"| {s} | {b:.0f} {' '.join('%.0f' % y for y in d['base'])} | {cell('nokv4')} | {cell('nokvall')} |")
PY
echo "== done t=$((SECONDS - T0))"
snap
