#!/usr/bin/env bash
# Backward-kernel A/B in one GPU call: for each kernel directory under $VDIR (each holds an
# attn_bwd_sm90.cu variant, read through DCP_CUDA_KERNELS), a short sm90 selftest against the CPU
# f64 reference, then `dcp kernel-bench` on $SHAPES; optionally one Nsight Compute profile of
# the backward launch of the first variant (NCU=1), PyTorch flash/cuDNN on the same shapes
# (SKIP_TORCH=1 to skip) and one table last. Every step under its own timeout.
#   DCP=path/to/dcp VDIR=dir VARIANTS="v0 v1" OUT=dir bash bench/gpu/bwd_variants.sh
# An empty variant directory runs the binary's embedded kernels. Knobs: SELFTEST (cases, default
# 4) and SELFTEST_<variant>, SHAPES and SHAPES_<variant>, PLANNERS (default local), REPEATS,
# MMA_SELFTEST=N (the mma.sync family too), NCU=1 with NCU_VARIANT, NCU_SHAPE, NCU_SECTIONS and
# NCU_SOURCE=1 (per-SASS-instruction stall samples as CSV), SAN_TOOLS="memcheck racecheck" with
# SAN_VARIANT, and per-step timeouts SELFTEST_T, BENCH_T, TORCH_T, NCU_T, SAN_T (seconds).
# Results used: bench/results/kernels-2026-11-28d.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/env.sh"
OUT=${OUT:-/tmp/bwdvar}; mkdir -p "$OUT"
SHAPES=${SHAPES:-causal32k,lambda}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
T0=$SECONDS
for v in $VARIANTS; do
  echo "== $v (t=$((SECONDS-T0))s)"
  n_st=SELFTEST_$v; n_st=${!n_st:-${SELFTEST:-4}}; n_sh=SHAPES_$v; n_sh=${!n_sh:-$SHAPES}
  DCP_CUDA_KERNELS=$VDIR/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 ${SELFTEST_T:-60} $DCP bench-gpu \
    --selftest $n_st --planners ${PLANNERS:-local} --timeout-s 30 --json $OUT/selftest_$v.jsonl 2>&1 \
    | grep -E "FAIL|error|panic" | head -5
  python3 -c "import json,sys; r=[json.loads(l) for l in open('$OUT/selftest_$v.jsonl')]; c=[x.get('check') or {} for x in r]; print('selftest $v: %d/%d pass, worst dq %.1e dkv %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0])))" 2>&1 | tail -1
  DCP_CUDA_KERNELS=$VDIR/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 ${BENCH_T:-60} $DCP kernel-bench --shapes $n_sh \
    --repeats ${REPEATS:-3} --timeout-s 50 --json $OUT/kbench_$v.jsonl 2>&1 | grep -E "^causal|^lambda|^packed|rror" | head -6
done
if [ -z "${SKIP_TORCH:-}" ]; then
  echo "== torch (t=$((SECONDS-T0))s)"
  first=${VARIANTS%% *}
  timeout -k 5 ${TORCH_T:-120} python3 "$HERE/torch_ref.py" $OUT/kbench_$first.jsonl $OUT/torch.jsonl 2>&1 | tail -4
fi
if [ -n "${MMA_SELFTEST:-}" ]; then
  echo "== mma selftest (t=$((SECONDS-T0))s)"
  DCP_CUDA_FAMILY=mma timeout -k 5 60 $DCP bench-gpu --selftest $MMA_SELFTEST --planners ${PLANNERS:-local} \
    --timeout-s 30 --json $OUT/selftest_mma.jsonl 2>&1 | tail -2
fi
if [ -n "${NCU:-}" ]; then
  v=${NCU_VARIANT:-${VARIANTS%% *}}
  NCUB=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
  echo "== ncu ($NCUB) on $v (t=$((SECONDS-T0))s)"
  DCP_CUDA_KERNELS=$VDIR/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 ${NCU_T:-120} $NCUB --clock-control none \
    ${NCU_SECTIONS:---section SpeedOfLight --section WarpStateStats} -o $OUT/ncu_$v \
    -k regex:attn_bwd_sm90 -c 1 $DCP kernel-bench --shapes ${NCU_SHAPE:-causal32k} --repeats 1 --warmup 0 --timeout-s 100 \
    > $OUT/ncu_$v.log 2>&1
  timeout 60 $NCUB -i $OUT/ncu_$v.ncu-rep > $OUT/ncu_$v.txt 2>&1
  [ -n "${NCU_SOURCE:-}" ] && timeout 60 $NCUB -i $OUT/ncu_$v.ncu-rep --page source --csv --print-source sass > $OUT/ncu_src_$v.csv 2>&1
  grep -E "Duration|Throughput|Busy|Hit Rate|Stall|Warp Cycles|Issued|Executed Ipc|Pipe|Bank|spends" $OUT/ncu_$v.txt | head -40
fi
for tool in ${SAN_TOOLS:-}; do
  CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
  echo "== $tool (sm90 kernels, ${SAN_VARIANT:-embedded}, 2 small cases, t=$((SECONDS-T0))s)"
  DCP_CUDA_KERNELS=${SAN_VARIANT:+$VDIR/$SAN_VARIANT} DCP_CUDA_FAMILY=sm90 timeout -k 5 ${SAN_T:-90} $CS --tool $tool --print-limit 5 \
    $DCP bench-gpu --selftest 2 --planners local --timeout-s 80 > $OUT/san_$tool.txt 2>&1
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|rror|FAIL|ok " $OUT/san_$tool.txt | head -8
done
python3 - "$OUT" $VARIANTS <<'PY'
import json, os, sys
d, vs = sys.argv[1], sys.argv[2:]
def rd(n):
    p = os.path.join(d, n)
    return [json.loads(l) for l in open(p) if l.strip().startswith("{")] if os.path.exists(p) else []
key = lambda r: (tuple(r["lens"]), r["mask"].split(":")[0])
torch = {key(r): r for r in rd("torch.jsonl")}
print("\nbwd TFLOP/s (fwd in brackets); ratio over flash / cuDNN bwd")
for v in vs:
    st = rd(f"selftest_{v}.jsonl")
    ok = sum(1 for r in st if (r.get("check") or {}).get("pass"))
    cells = []
    for r in rd(f"kbench_{v}.jsonl"):
        t = torch.get(key(r), {})
        fl = t.get("flash_bwd_tflops"); cu = t.get("cudnn_bwd_tflops")
        cells.append(f"{r['shape']} {r['bwd_tflops_per_gpu']:.0f} ({r['fwd_tflops_per_gpu']:.0f})"
                     + (f" x{r['bwd_tflops_per_gpu']/fl:.2f}" if fl else "") + (f"/x{r['bwd_tflops_per_gpu']/cu:.2f}" if cu else ""))
    print(f"{v:5} selftest {ok}/{len(st)} | " + " | ".join(cells))
for k, t in torch.items():
    print(f"torch {t['mask']} {t['tokens']}: flash {t.get('flash_fwd_tflops',0):.0f}/{t.get('flash_bwd_tflops',0):.0f} cudnn {t.get('cudnn_fwd_tflops',0):.0f}/{t.get('cudnn_bwd_tflops',0):.0f}")
PY
