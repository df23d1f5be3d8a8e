#!/usr/bin/env bash
# s29 call 2 (1x H200): timeout 400 bash .s29/run2.sh
# Short documents' forward: 128-token documents ran at 216 TFLOP/s against cuDNN's 362 in call 1,
# slower per task than 256-token ones. Suspect: in the short-task kernel (FWD_LATEREL 1) the owed Q
# release comes after the next task's first tile step, which for a one-tile task is its end, so the
# Q load after next is issued late. Host switches alternated x2 (no rebuild): base, the release at
# the next task's start (DCP_CUDA_FWD_SHORT_LATEREL=2), the plain kernel (DCP_CUDA_FWD_SHORT=0),
# the generic O store (DCP_CUDA_FWD_SHORT_OMAP=0). Then PyTorch flash / cuDNN on the same batches.
set -u
OUTD=${OUT:-/tmp/s29_out}
R=/tmp/s29c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
D=$R/dcp; gunzip -c .s29/dcp.gz > $D && chmod +x $D
SH=full@128x2000,causal@128x2000,full@192x1333,works1000,causal@256x1000,full@512x500,causal@512x500,packed,onework
declare -A V=([base]="" [rel2]="DCP_CUDA_FWD_SHORT_LATEREL=2" [short0]="DCP_CUDA_FWD_SHORT=0" [omap0]="DCP_CUDA_FWD_SHORT_OMAP=0")
for i in 1 2; do
  for v in base rel2 short0 omap0; do
    echo "== round $i variant $v"
    env ${V[$v]} timeout 80 $D kernel-bench --shapes $SH --head-dim 128 --repeats 5 \
      --json "$R/kb_${v}_$i.jsonl" 2>&1 | grep -E '^[a-z0-9@x]+ +fwd|rror|panic'
  done
done
timeout 150 python3 bench/gpu/torch_ref.py "$R/kb_base_1.jsonl" "$R/torch.jsonl" 2>&1 | tail -11
python3 - "$R" <<'PY' | tee "$R/table.txt"
import json, sys, glob, statistics, collections
R = sys.argv[1]
v = collections.defaultdict(lambda: collections.defaultdict(list))
order = []
for f in sorted(glob.glob(R + "/kb_*_*.jsonl")):
    var = f.split("/kb_")[1].rsplit("_", 1)[0]
    for l in open(f):
        r = json.loads(l)
        if r.get("kind") != "bench": continue
        v[r["shape"]][var].append((r["fwd_tflops_per_gpu"], r["bwd_tflops_per_gpu"]))
        if r["shape"] not in order: order.append(r["shape"])
key = lambda r: (tuple(r["lens"]), r["mask"].split(":")[0])
tr = {}
for l in open(R + "/torch.jsonl"):
    r = json.loads(l); tr[key(r)] = r
lens = {}
for l in open(R + "/kb_base_1.jsonl"):
    r = json.loads(l)
    if r.get("kind") == "bench": lens[r["shape"]] = key(r)
vars_ = ["base", "rel2", "short0", "omap0"]
print("forward TFLOP/s per round (mean; ÷ base), then PyTorch flash / cuDNN fwd / bwd; dcp bwd (base)")
print("| shape | " + " | ".join(vars_) + " | dcp bwd | flash | cuDNN |")
print("|---|" + "---|" * (len(vars_) + 3))
for s in order:
    b = statistics.mean(a for a, _ in v[s]["base"])
    cells = []
    for x in vars_:
        f = [a for a, _ in v[s][x]]
        if not f: cells.append("-"); continue
        m = statistics.mean(f)
        cells.append(" ".join(f"{a:.0f}" for a in f) + f" ({m / b:.3f})")
    t = tr.get(lens.get(s), {})
    g = lambda p: f"{t[p + '_fwd_tflops']:.0f} / {t[p + '_bwd_tflops']:.0f}" if p + "_fwd_tflops" in t else "-"
    bb = statistics.mean(x for _, x in v[s]["base"])
    print(f"| {s} | " + " | ".join(cells) + f" | {bb:.0f} | {g('flash')} | {g('cudnn')} |")
PY
cd /tmp && tar czf "$OUTD/s29c2.tgz" --exclude=s29c2/dcp s29c2
