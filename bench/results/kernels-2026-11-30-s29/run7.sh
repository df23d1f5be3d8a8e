#!/usr/bin/env bash
# s29 call 7 (1x H200): timeout 300 bash .s29/run7.sh
# Head dim 64 on short documents: the short-task kernel is off at D 64 (FWD_LATEREL 1 lost 8 %
# there in session 11), so one-tile tasks run the plain kernel, which releases Q after the O
# store's read. Variants alternated x2 on .s29/dcp3.gz (967b551): base; short3 = the short kernel
# at D 64 with the new default FWD_LATEREL 3 (DCP_CUDA_FWD_SHORT=3); short3r2 = the same with
# FWD_LATEREL 2. Then PyTorch flash / cuDNN on the same batches at D 64.
set -u
OUTD=${OUT:-/tmp/s29_out}
R=/tmp/s29c7; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
D=$R/dcp; gunzip -c .s29/dcp3.gz > $D && chmod +x $D
SH=full@128x2000,causal@128x2000,works1000,causal@256x1000,full@512x500,causal@512x500,packed,onework
declare -A V=([base]="" [short3]="DCP_CUDA_FWD_SHORT=3" [short3r2]="DCP_CUDA_FWD_SHORT=3 DCP_CUDA_FWD_SHORT_LATEREL=2")
for i in 1 2; do
  for v in base short3 short3r2; do
    echo "== round $i variant $v"
    env ${V[$v]} timeout 80 $D kernel-bench --shapes $SH --head-dim 64 --repeats 3 \
      --json "$R/kb_${v}_$i.jsonl" 2>&1 | grep -E 'rror|panic'
  done
done
timeout 120 python3 bench/gpu/torch_ref.py "$R/kb_base_1.jsonl" "$R/torch.jsonl" > "$R/torch.log" 2>&1; echo "torch rc=$?"
python3 - "$R" <<'PY' | tee "$R/table.txt"
import json, sys, glob, statistics, collections
R = sys.argv[1]
v = collections.defaultdict(lambda: collections.defaultdict(list)); order = []; key = {}
for f in sorted(glob.glob(R + "/kb_*_*.jsonl")):
    var = f.split("/kb_")[1].rsplit("_", 1)[0]
    for l in open(f):
        r = json.loads(l)
        if r.get("kind") != "bench": continue
        v[r["shape"]][var].append((r["fwd_tflops_per_gpu"], r["bwd_tflops_per_gpu"]))
        if r["shape"] not in order: order.append(r["shape"])
        key[r["shape"]] = (tuple(r["lens"]), r["mask"].split(":")[0])
tr = {}
for l in open(R + "/torch.jsonl"):
    r = json.loads(l); tr[(tuple(r["lens"]), r["mask"].split(":")[0])] = r
print("D 64: forward TFLOP/s per round (mean ÷ base); dcp bwd (base); PyTorch flash / cuDNN fwd / bwd")
print("| shape | base | short3 | short3r2 | dcp bwd | flash | cuDNN |")
print("|---|---|---|---|---|---|---|")
for s in order:
    b = statistics.mean(a for a, _ in v[s]["base"])
    t = tr.get(key[s], {})
    g = lambda p: f"{t[p + '_fwd_tflops']:.0f} / {t[p + '_bwd_tflops']:.0f}" if p + "_fwd_tflops" in t else "-"
    print(f"| {s} | " + " | ".join(" ".join(f"{a:.0f}" for a, _ in v[s][x]) + f" ({statistics.mean(a for a, _ in v[s][x]) / b:.3f})" for x in ("base", "short3", "short3r2"))
          + f" | {statistics.mean(x for _, x in v[s]['base']):.0f} | {g('flash')} | {g('cudnn')} |")
PY
cd /tmp && tar czf "$OUTD/s29c7.tgz" --exclude=s29c7/dcp s29c7
