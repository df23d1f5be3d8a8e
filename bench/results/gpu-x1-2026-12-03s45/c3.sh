#!/usr/bin/env bash
# Session 45, call 3 (the final tree, D clusters' rule at 100 GB/s): auto's picks, the world-1
# selftest against CPU f64, then issue 10's one-GPU kernel rows at D 128 and 64 beside PyTorch
# flash / cuDNN on the same shapes.
set -u
source bench/gpu/env.sh
T0=$SECONDS
R=$OUT/s45c3; mkdir -p $R
exec > >(tee "$R/run.log") 2>&1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c .s45/dcp.gz > $D && chmod +x $D
summ() { python3 bench/gpu/check_summary.py "$1" "$2"; }
for hd in 128 64; do
  DCP_CUDA_BWD_PIECE_LOG=1 timeout 40 $D kernel-bench --head-dim $hd --shapes full@240x1100 --warmup 0 --repeats 1 2>&1 | grep -o "D clusters [0-9]* asked.*k: [0-9]*" | sed "s/^/D$hd 240x1100: /"
done | tee $R/picks.txt
echo "== selftest world 1 t=$((SECONDS-T0))s"
timeout -k 5 90 $D bench-gpu --selftest 12 --planners dcp,zigzag,ring,local,usp --json $R/st.jsonl > $R/st.log 2>&1; echo "rc=$?"
summ $R/st.jsonl "selftest sm90 w1" | tee -a $R/summary.txt
echo "== kernel-bench t=$((SECONDS-T0))s"
for hd in 128 64; do
  timeout 90 $D kernel-bench --shapes causal32k,sharedq,blockwise,lambda,works1000,onework,packed --head-dim $hd --repeats 3 --json $R/kb.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic' | sed "s/^/D$hd /"
done
echo "== torch t=$((SECONDS-T0))s"
timeout 150 python3 bench/gpu/torch_ref.py $R/kb.jsonl $R/torch.jsonl 2>&1 | tail -2
python3 - $R <<'PY' | tee $R/table.md
import json, sys
d = sys.argv[1]
kb = [json.loads(l) for l in open(d + "/kb.jsonl") if l.strip()]
try:
    tr = [json.loads(l) for l in open(d + "/torch.jsonl") if l.strip()]
except OSError:
    tr = []
print("| D | shape | dcp fwd | dcp bwd | cuDNN fwd | cuDNN bwd | flash fwd | flash bwd |")
print("|---|---|---|---|---|---|---|---|")
for i, r in enumerate(kb):
    t = tr[i] if i < len(tr) else {}
    f = lambda x: f"{x:.0f}" if isinstance(x, (int, float)) else "-"
    print(f"| {r.get('head_dim', '?')} | {r.get('shape', '?')} | {f(r.get('fwd_tflops_per_gpu'))} | {f(r.get('bwd_tflops_per_gpu'))} | "
          f"{f(t.get('cudnn_fwd_tflops'))} | {f(t.get('cudnn_bwd_tflops'))} | {f(t.get('flash_fwd_tflops'))} | {f(t.get('flash_bwd_tflops'))} |")
PY
echo "== done t=$((SECONDS-T0))s"
