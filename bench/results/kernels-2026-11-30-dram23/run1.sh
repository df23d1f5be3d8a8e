#!/usr/bin/env bash
# s23 call 1 (1x H200): timeout 400 bash .s23/run1.sh  (carry [".s23"]).
# .s23/dcp = main 5c0b05e + the bench-only DCP_CUDA_DEBUG_ALIAS patch (alias.diff), release.
# works1000's forward with its Q / O+LSE / KV bytes served from L2 (every work aliased to work 0's
# rows): how much of the rate DRAM traffic holds back. Plus the card's copy / read bandwidth.
set -u
OUTD=${OUT:-/tmp/s23_out}
R=/tmp/s23c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
D=.s23/dcp
kb() { # tag alias shapes
  local e=""; [ -n "$2" ] && e="DCP_CUDA_DEBUG_ALIAS=$2"
  echo "== $1 ($e) $3 t=$((SECONDS - T0))"
  env $e timeout 90 $D kernel-bench --shapes "$3" --head-dim 128 --repeats 5 --json "$R/kb_$1.jsonl" 2>&1 | tail -4
}
kb base "" works1000,onework
for r in 1 2 3; do
  kb none "" works1000
  kb kv kv works1000
  kb q q works1000
  kb o o works1000
  kb qo qo works1000
  kb all qokv works1000
done
kb base2 "" works1000,onework
echo "== bandwidth t=$((SECONDS - T0))"
timeout 60 python3 - <<'PY' | tee "$R/bw.txt"
import torch
n = 655 * 2**20 // 2
x = torch.randn(n, device='cuda', dtype=torch.float32).to(torch.bfloat16)
y = torch.empty_like(x)
for name, f, b in [("copy 655MB->655MB", lambda: y.copy_(x), 2 * x.numel() * 2),
                   ("read 655MB (sum)", lambda: x.sum(dtype=torch.float32), x.numel() * 2)]:
    for _ in range(3): f()
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(True), torch.cuda.Event(True)
    ts = []
    for _ in range(10):
        s.record(); f(); e.record(); torch.cuda.synchronize(); ts.append(s.elapsed_time(e))
    ts.sort()
    print(f"{name}: median {ts[5]:.3f} ms, {b / ts[5] / 1e9:.2f} TB/s")
PY
python3 - "$R" <<'PY' | tee "$R/table.txt"
import json, sys, glob, collections, statistics
R = sys.argv[1]
v = collections.defaultdict(list)
for f in sorted(glob.glob(R + "/kb_*.jsonl")):
    tag = f.split("kb_")[1][:-6]
    for l in open(f):
        x = json.loads(l)
        v[(tag, x["shape"])].append((x["fwd_ms"], x["fwd_tflops_per_gpu"]))
for k in sorted(v):
    ms = [a for a, b in v[k]]; tf = [b for a, b in v[k]]
    print(f"{k[0]:>6} {k[1]:>10}  fwd ms {statistics.mean(ms):.4f}  TFLOP/s {statistics.mean(tf):6.1f}  runs {' '.join('%.1f' % t for t in tf)}")
PY
tar czf "$OUTD/s23c1.tgz" -C /tmp s23c1
echo "done t=$((SECONDS - T0))"
