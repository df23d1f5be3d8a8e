#!/usr/bin/env bash
# kbwd2 call 1: dQ by red.global.add.v4.f32 from registers (no staging), 3 Q/dO stages, hoisted
# work fields; main's kernel (v0) side by side; ncu of vR; PyTorch flash/cuDNN on the same shapes.
set -uo pipefail
source bench/gpu/env.sh
K=.kbwd2; DCP=$K/dcp; O0=${OUT:-/tmp/o}; O=/tmp/r1; mkdir -p $O $O0
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
T0=$SECONDS
summ() { python3 -c "import json,sys; r=[json.loads(l) for l in open('$1')]; c=[x.get('check') or {} for x in r]; print('selftest $2: %d/%d pass, worst dq %.1e dkv %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0])))" 2>&1 | tail -1; }
ALL=causal32k,causal128k,packed,lambda
for spec in "vR:4" "v0:0" "vR3:4" "vH:2"; do
  IFS=: read v nst <<< "$spec"
  SM=; [ $v = vR3 ] && SM=232448
  echo "== $v (t=$((SECONDS-T0))s)"
  if [ $nst -gt 0 ]; then
    DCP_CUDA_BWD_SMEM=${SM:-0} DCP_CUDA_KERNELS=$K/v/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 60 $DCP bench-gpu --selftest $nst \
      --planners local,zigzag --timeout-s 30 --json $O/selftest_$v.jsonl 2>&1 | grep -E "FAIL|rror|panic" | head -5
    summ $O/selftest_$v.jsonl $v
  fi
  DCP_CUDA_BWD_SMEM=${SM:-0} DCP_CUDA_KERNELS=$K/v/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 90 $DCP kernel-bench --shapes $ALL \
    --repeats 3 --timeout-s 80 --json $O/kbench_$v.jsonl 2>&1 | grep -E "^[a-z0-9]+ +fwd|rror" | head -8
done
# second timing of the two main candidates (order effects / clocks)
for v in v0 vR; do
  echo "== $v again (t=$((SECONDS-T0))s)"
  DCP_CUDA_KERNELS=$K/v/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 60 $DCP kernel-bench --shapes causal32k \
    --repeats 3 --timeout-s 50 --json $O/kbench2_$v.jsonl 2>&1 | grep -E "^[a-z0-9]+ +fwd|rror" | head -3
done
echo "== torch (t=$((SECONDS-T0))s)"
timeout -k 5 150 python3 $K/torch_ref.py $O/kbench_v0.jsonl $O/torch.jsonl 2>&1 | tail -6
NCUB=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
echo "== ncu vR ($NCUB, t=$((SECONDS-T0))s)"
DCP_CUDA_KERNELS=$K/v/vR DCP_CUDA_FAMILY=sm90 timeout -k 5 100 $NCUB --clock-control none \
  --section SpeedOfLight --section WarpStateStats --section SourceCounters --section MemoryWorkloadAnalysis \
  -o $O/ncu_vR -k regex:attn_bwd_sm90 -c 1 $DCP kernel-bench --shapes causal32k --repeats 1 --warmup 0 --timeout-s 90 > $O/ncu_vR.log 2>&1
timeout 60 $NCUB -i $O/ncu_vR.ncu-rep > $O/ncu_vR.txt 2>&1
timeout 60 $NCUB -i $O/ncu_vR.ncu-rep --page source --csv --print-source sass > $O/ncu_src_vR.csv 2>&1
grep -E "Duration|Throughput|Busy|Hit Rate|Warp Cycles|SM Frequency" $O/ncu_vR.txt | head -14
python3 - $O vR v0 vR3 vH <<'PY'
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
        cells.append(f"{r['shape']} {r['bwd_tflops_per_gpu']:.0f} ({r['fwd_tflops_per_gpu']:.0f})" + (f" x{r['bwd_tflops_per_gpu']/fl:.2f}" if fl else "") + (f"/x{r['bwd_tflops_per_gpu']/cu:.2f}" if cu else ""))
    print(f"{v:4} | " + " | ".join(cells))
for k, t in torch.items():
    print(f"torch {t['mask']} {t['tokens']}: flash {t.get('flash_fwd_tflops',0):.0f}/{t.get('flash_bwd_tflops',0):.0f} cudnn {t.get('cudnn_fwd_tflops',0):.0f}/{t.get('cudnn_bwd_tflops',0):.0f}")
PY
rm -f $O/ncu_vR.ncu-rep.bak; tar czf $O0/r1.tgz -C /tmp r1
echo "== end (t=$((SECONDS-T0))s)"
