#!/usr/bin/env bash
# s29 call 4 (1x H200): timeout 300 bash .s29/run4.sh
# (a) The committed default (FWD_LATEREL 3 in the short kernel, .s29/dcp3.gz = 967b551's release
# build) on the short shapes; (b) tiny documents (32, 64 tokens): the local plan (one work per
# document, a task per 128-row tile holds one document) against zigzag at world 1 (one work of
# every document, block-diagonal rows: several documents per tile); PyTorch flash / cuDNN on the
# same batches.
set -u
OUTD=${OUT:-/tmp/s29_out}
R=/tmp/s29c4; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
D=$R/dcp; gunzip -c .s29/dcp3.gz > $D && chmod +x $D
SH=full@32x8000,causal@32x8000,full@64x4000,causal@64x4000,full@128x2000,causal@128x2000,works1000,full@96x2666
for i in 1 2; do
  for p in local zigzag; do
    echo "== round $i planner $p"
    timeout 80 $D kernel-bench --shapes $SH --planner $p --head-dim 128 --repeats 5 \
      --json "$R/kb_${p}_$i.jsonl" 2>&1 | grep -E '^[a-z0-9@x]+ +fwd|rror|panic'
  done
done
timeout 150 python3 bench/gpu/torch_ref.py "$R/kb_local_1.jsonl" "$R/torch.jsonl" 2>&1 | tail -9
python3 - "$R" <<'PY' | tee "$R/table.txt"
import json, sys, glob, statistics, collections
R = sys.argv[1]
v = collections.defaultdict(lambda: collections.defaultdict(list)); order = []; lens = {}
for f in sorted(glob.glob(R + "/kb_*_*.jsonl")):
    var = f.split("/kb_")[1].rsplit("_", 1)[0]
    for l in open(f):
        r = json.loads(l)
        if r.get("kind") != "bench": continue
        v[r["shape"]][var].append((r["fwd_tflops_per_gpu"], r["bwd_tflops_per_gpu"], r.get("fwd_ms"), r.get("bwd_ms")))
        if r["shape"] not in order: order.append(r["shape"])
        lens[r["shape"]] = (tuple(r["lens"]), r["mask"].split(":")[0])
tr = {}
for l in open(R + "/torch.jsonl"):
    r = json.loads(l); tr[(tuple(r["lens"]), r["mask"].split(":")[0])] = r
print("TFLOP/s fwd / bwd (mean of 2 rounds), ms in brackets")
print("| shape | dcp local | dcp zigzag (world 1) | flash | cuDNN |")
print("|---|---|---|---|---|")
for s in order:
    c = []
    for p in ("local", "zigzag"):
        x = v[s][p]
        if not x: c.append("-"); continue
        m = [statistics.mean(y[k] for y in x) for k in range(4)]
        c.append(f"{m[0]:.0f} / {m[1]:.0f} ({m[2]:.3f} / {m[3]:.3f})")
    t = tr.get(lens[s], {})
    g = lambda p: f"{t[p + '_fwd_tflops']:.0f} / {t[p + '_bwd_tflops']:.0f} ({t[p + '_fwd_ms']:.3f} / {t[p + '_bwd_ms']:.3f})" if p + "_fwd_tflops" in t else "-"
    print(f"| {s} | {c[0]} | {c[1]} | {g('flash')} | {g('cudnn')} |")
PY
cd /tmp && tar czf "$OUTD/s29c4.tgz" --exclude=s29c4/dcp s29c4
