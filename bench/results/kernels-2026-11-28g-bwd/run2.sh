#!/usr/bin/env bash
# kbwd2 call 2: deeper Q/dO pipelines next to the TMA dQ reductions. wQ*: separate Q and dO stage
# barriers (Q 3 stages, dO 2: dO released after dV); wS*: one 8 KB dQ staging box per consumer
# (boxes one after the other) so 3 full stages fit; wQS3 both. v0 = main's kernel. Sanitizers on
# the 3-stage variants; PyTorch flash/cuDNN on the same shapes.
set -uo pipefail
source bench/gpu/env.sh
K=.kbwd2; DCP=$K/dcp; O=${OUT:-/tmp/o}/r2; mkdir -p $O
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
T0=$SECONDS
summ() { python3 -c "import json,sys; r=[json.loads(l) for l in open('$1')]; c=[x.get('check') or {} for x in r]; print('selftest $2: %d/%d pass, worst dq %.1e dkv %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0])))" 2>&1 | tail -1; }
smem() { case $1 in wQ3|wS3|wQS3) echo 232448;; *) echo 0;; esac; }
ALL=causal32k,causal128k,packed,lambda
for spec in "wQ3:4" "v0:0" "wS3:4" "wQS3:4" "wQ2:2" "wS2:2"; do
  IFS=: read v nst <<< "$spec"
  echo "== $v (t=$((SECONDS-T0))s)"
  if [ $nst -gt 0 ]; then
    DCP_CUDA_BWD_SMEM=$(smem $v) DCP_CUDA_KERNELS=$K/v/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 60 $DCP bench-gpu --selftest $nst \
      --planners local,zigzag --timeout-s 30 --json $O/selftest_$v.jsonl 2>&1 | grep -E "FAIL|rror|panic" | head -5
    summ $O/selftest_$v.jsonl $v
  fi
  DCP_CUDA_BWD_SMEM=$(smem $v) DCP_CUDA_KERNELS=$K/v/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 90 $DCP kernel-bench --shapes $ALL \
    --repeats 3 --timeout-s 80 --json $O/kbench_$v.jsonl 2>&1 | grep -E "^[a-z0-9]+ +fwd|rror" | head -8
done
for v in v0 wS3 wQ3 wQS3 v0 wQ3 wS3; do
  echo "== $v again (t=$((SECONDS-T0))s)"
  DCP_CUDA_BWD_SMEM=$(smem $v) DCP_CUDA_KERNELS=$K/v/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 60 $DCP kernel-bench --shapes causal32k,causal128k \
    --repeats 3 --timeout-s 50 --json $O/kbench2_$v.jsonl 2>&1 | grep -E "^[a-z0-9]+ +fwd|rror" | head -3
done
for v in v0 wQ3 wS3; do
  echo "== $v hd64 / f16 (t=$((SECONDS-T0))s)"
  for m in "--head-dim 64" "--dtype f16"; do
    DCP_CUDA_BWD_SMEM=$(smem $v) DCP_CUDA_KERNELS=$K/v/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 40 $DCP kernel-bench --shapes causal32k $m \
      --repeats 3 --timeout-s 35 --json $O/kbench_${v}_models.jsonl 2>&1 | grep -E "^[a-z0-9]+ +fwd|rror" | head -2
  done
done
echo "== torch (t=$((SECONDS-T0))s)"
timeout -k 5 150 python3 $K/torch_ref.py $O/kbench_v0.jsonl $O/torch.jsonl 2>&1 | tail -6
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for v in wQ3 wS3 wQS3; do
  for tool in racecheck memcheck; do
    echo "== $tool $v (t=$((SECONDS-T0))s)"
    DCP_CUDA_BWD_SMEM=$(smem $v) DCP_CUDA_KERNELS=$K/v/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 45 $CS --tool $tool --print-limit 5 \
      $DCP bench-gpu --selftest 2 --planners local --timeout-s 50 > $O/san_${tool}_$v.txt 2>&1
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" $O/san_${tool}_$v.txt | head -4
  done
done
python3 - $O v0 wQ3 wS3 wQS3 wQ2 wS2 <<'PY'
import json, os, sys
d, vs = sys.argv[1], sys.argv[2:]
def rd(n):
    p = os.path.join(d, n)
    return [json.loads(l) for l in open(p) if l.strip().startswith("{")] if os.path.exists(p) else []
key = lambda r: (tuple(r["lens"]), r["mask"].split(":")[0])
torch = {key(r): r for r in rd("torch.jsonl")}
print("\nbwd TFLOP/s (fwd); x flash / x cuDNN bwd")
for v in vs:
    cells = []
    for r in rd(f"kbench_{v}.jsonl") + rd(f"kbench2_{v}.jsonl"):
        if r.get("kind") not in (None, "bench"): continue
        t = torch.get(key(r), {}); fl = t.get("flash_bwd_tflops"); cu = t.get("cudnn_bwd_tflops")
        cells.append(f"{r['shape']} {r['bwd_tflops_per_gpu']:.0f} ({r['fwd_tflops_per_gpu']:.0f})" + (f"/x{r['bwd_tflops_per_gpu']/cu:.2f}" if cu else ""))
    print(f"{v:4} | " + " | ".join(cells))
for k, t in torch.items():
    print(f"torch {t['mask']} {t['tokens']}: flash {t.get('flash_fwd_tflops',0):.0f}/{t.get('flash_bwd_tflops',0):.0f} cudnn {t.get('cudnn_fwd_tflops',0):.0f}/{t.get('cudnn_bwd_tflops',0):.0f}")
PY

echo "== end (t=$((SECONDS-T0))s)"
