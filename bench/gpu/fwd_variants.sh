#!/usr/bin/env bash
# Forward-kernel A/B in one GPU call: for each kernel directory under $VDIR (attn_fwd_sm90.cu,
# util.cu, ... variants read through DCP_CUDA_KERNELS; an empty directory = the binary's embedded
# kernels), a short sm90 selftest against the CPU f64 reference, then `dcp kernel-bench` on
# $SHAPES; then optional extra runs, PyTorch flash / cuDNN on the same shapes, the mma.sync
# selftest, compute-sanitizer, one table last. Every step under its own timeout.
#   DCP=path/to/dcp VDIR=dir VARIANTS="v0 v1" OUT=dir bash bench/gpu/fwd_variants.sh
# Knobs: SELFTEST (cases, default 4; 0 skips) and SELFTEST_<v>, SHAPES and SHAPES_<v>, ENV_<v>
# (extra environment of variant v, e.g. "DCP_CUDA_FWD_CTAS=0"), PLANNERS (selftest planners,
# default local,zigzag), REPEATS;
# RING_SHAPES="packed" (kernel-bench --planner ring on those shapes; RING_<v> per variant);
# MODELS="hd64:--head-dim 64;f16:--dtype f16" + MODEL_VARIANT + MODEL_SHAPES (kernel-bench with
# other model arguments); LDC="v0 v1" (bench-gpu on 2 ldc batches, causal and lambda, planners
# local, zigzag, ring, per listed variant; LDC_COUNT); MMA_SELFTEST=N; NCU_VARIANTS="v0 v1" with NCU_SHAPE,
# NCU_SECTIONS, NCU_SOURCE=1 (stall reasons and top SASS lines); SAN_TOOLS="memcheck racecheck" with SAN_VARIANT;
# SKIP_TORCH=1 or TORCH_FROM="kbench_v.jsonl ..." (the records PyTorch runs on); outputs end up in $OUT/all.tgz;
# per-step timeouts SELFTEST_T, BENCH_T, TORCH_T, NCU_T, SAN_T, LDC_T (seconds).
# Results used: bench/results/kernels-2026-11-28e-fwd.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/env.sh"
OUT=${OUT:-/tmp/fwdvar}; mkdir -p "$OUT"
SHAPES=${SHAPES:-causal32k,lambda}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
T0=$SECONDS
venv() { local n=ENV_$1; echo "${!n:-}"; }
for v in $VARIANTS; do
  echo "== $v (t=$((SECONDS-T0))s) $(venv $v)"
  n_st=SELFTEST_$v; n_st=${!n_st:-${SELFTEST:-4}}; n_sh=SHAPES_$v; n_sh=${!n_sh:-$SHAPES}
  if [ "$n_st" != 0 ]; then
    env $(venv $v) DCP_CUDA_KERNELS=$VDIR/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 ${SELFTEST_T:-90} $DCP bench-gpu \
      --selftest $n_st --planners ${PLANNERS:-local,zigzag} --timeout-s 30 --json $OUT/selftest_$v.jsonl 2>&1 \
      | grep -E "FAIL|error|panic" | head -5
    python3 -c "import json,sys; r=[json.loads(l) for l in open('$OUT/selftest_$v.jsonl')]; c=[x.get('check') or {} for x in r]; print('selftest $v: %d/%d pass, worst o %.1e lse %.1e dq %.1e dkv %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('o',0) or 0 for x in c]+[0]), max([x.get('lse',0) or 0 for x in c]+[0]), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0])))" 2>&1 | tail -1
  fi
  env $(venv $v) DCP_CUDA_KERNELS=$VDIR/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 ${BENCH_T:-120} $DCP kernel-bench --shapes $n_sh \
    --repeats ${REPEATS:-3} --timeout-s 100 --json $OUT/kbench_$v.jsonl 2>&1 | grep -E "rror|panic" | head -4
  n_rs=RING_$v; n_rs=${!n_rs-${RING_SHAPES:-}}
  for sh in ${n_rs//,/ }; do
    env $(venv $v) DCP_CUDA_KERNELS=$VDIR/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 ${BENCH_T:-120} $DCP kernel-bench --shapes $sh \
      --planner ring --repeats ${REPEATS:-3} --timeout-s 100 --json $OUT/kring_$v.jsonl 2>&1 | grep -E "rror|panic" | head -4
  done
done
if [ -n "${MODELS:-}" ]; then
  v=${MODEL_VARIANT:-${VARIANTS%% *}}
  IFS=';' read -ra MS <<< "$MODELS"
  for m in "${MS[@]}"; do
    name=${m%%:*}; margs=${m#*:}
    echo "== model $name ($margs) on $v (t=$((SECONDS-T0))s)"
    env $(venv $v) DCP_CUDA_KERNELS=$VDIR/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 ${BENCH_T:-120} $DCP kernel-bench \
      --shapes ${MODEL_SHAPES:-causal32k} $margs --repeats ${REPEATS:-3} --timeout-s 100 --json $OUT/kmodel_$name.jsonl 2>&1 \
      | grep -E "rror|panic" | head -4
  done
fi
for v in ${LDC:-}; do
  echo "== ldc bench-gpu on $v (t=$((SECONDS-T0))s)"
  env $(venv $v) DCP_CUDA_KERNELS=$VDIR/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 ${LDC_T:-150} $DCP bench-gpu --dataset ldc \
    --count ${LDC_COUNT:-2} --masks causal,lambda --planners local,zigzag,ring --topology 1x1 --warmup 1 --repeats 3 \
    --timeout-s 100 --json $OUT/ldc_$v.jsonl > $OUT/ldc_$v.log 2>&1
  tail -12 $OUT/ldc_$v.log
done
if [ -z "${SKIP_TORCH:-}" ]; then
  echo "== torch (t=$((SECONDS-T0))s)"
  (cd $OUT && cat ${TORCH_FROM:-kbench_*.jsonl kmodel_*.jsonl} 2>/dev/null) > $OUT/torch_in.jsonl
  timeout -k 5 ${TORCH_T:-150} python3 "$HERE/torch_ref.py" $OUT/torch_in.jsonl $OUT/torch.jsonl 2>&1 | tail -14
fi
if [ -n "${MMA_SELFTEST:-}" ]; then
  echo "== mma selftest (t=$((SECONDS-T0))s)"
  DCP_CUDA_FAMILY=mma timeout -k 5 90 $DCP bench-gpu --selftest $MMA_SELFTEST --planners ${PLANNERS:-local,zigzag} \
    --timeout-s 30 --json $OUT/selftest_mma.jsonl 2>&1 | tail -2
fi
for v in ${NCU_VARIANTS:-}; do
  NCUB=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
  echo "== ncu ($NCUB) on $v (t=$((SECONDS-T0))s)"
  env $(venv $v) DCP_CUDA_KERNELS=$VDIR/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 ${NCU_T:-120} $NCUB --clock-control none \
    ${NCU_SECTIONS:---section SpeedOfLight --section WarpStateStats} -o $OUT/ncu_$v \
    -k regex:attn_fwd_sm90 -c 1 $DCP kernel-bench --shapes ${NCU_SHAPE:-causal32k} --repeats 1 --warmup 0 --timeout-s 100 \
    > $OUT/ncu_$v.log 2>&1
  timeout 60 $NCUB -i $OUT/ncu_$v.ncu-rep > $OUT/ncu_$v.txt 2>&1
  [ -n "${NCU_SOURCE:-}" ] && timeout 60 python3 "$HERE/ncu_summary.py" $NCUB $OUT/ncu_$v.ncu-rep 45 > $OUT/ncu_sum_$v.txt 2>&1
  grep -E "Duration|Compute \(SM\)|L2 Cache Throughput|Issue Slots|Warp Cycles Per Issued" $OUT/ncu_$v.txt | head -8
  head -16 $OUT/ncu_sum_$v.txt 2>/dev/null
done
for tool in ${SAN_TOOLS:-}; do
  CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
  v=${SAN_VARIANT:-}
  echo "== $tool (sm90 kernels, ${v:-embedded}, 2 small cases, t=$((SECONDS-T0))s)"
  env ${v:+$(venv $v)} DCP_CUDA_KERNELS=${v:+$VDIR/$v} DCP_CUDA_FAMILY=sm90 timeout -k 5 ${SAN_T:-120} $CS --tool $tool --print-limit 5 \
    $DCP bench-gpu --selftest 2 --planners local,zigzag --timeout-s 100 > $OUT/san_$tool.txt 2>&1
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|rror|FAIL|ok " $OUT/san_$tool.txt | head -8
done
echo "== table (t=$((SECONDS-T0))s)"
python3 - "$OUT" $VARIANTS <<'PY'
import json, os, sys, glob
d, vs = sys.argv[1], sys.argv[2:]
def rd(n):
    p = os.path.join(d, n)
    return [json.loads(l) for l in open(p) if l.strip().startswith("{")] if os.path.exists(p) else []
key = lambda r: (tuple(r["lens"]), r["mask"].split(":")[0], r.get("heads", 8), r.get("kv_heads", 2), r.get("head_dim", 128), r.get("dtype", "bf16"))
torch = {key(r): r for r in rd("torch.jsonl")}
def cell(r):
    t = torch.get(key(r), {})
    fl = t.get("flash_fwd_tflops"); cu = t.get("cudnn_fwd_tflops")
    return (f"{r['shape']} {r['fwd_tflops_per_gpu']:.0f} ({r['bwd_tflops_per_gpu']:.0f})"
            + (f" xF{r['fwd_tflops_per_gpu']/fl:.2f}" if fl else "") + (f" xC{r['fwd_tflops_per_gpu']/cu:.2f}" if cu else ""))
print("\nfwd TFLOP/s (bwd in brackets); xF / xC: fwd over PyTorch flash / cuDNN fwd")
for v in vs:
    st = rd(f"selftest_{v}.jsonl")
    ok = sum(1 for r in st if (r.get("check") or {}).get("pass"))
    cells = [cell(r) for r in rd(f"kbench_{v}.jsonl")]
    cells += ["ring:" + cell(r) + f" {r['fwd_ms']:.2f}ms" for r in rd(f"kring_{v}.jsonl")]
    print(f"{v:6} selftest {ok}/{len(st)} | " + " | ".join(cells))
for p in sorted(glob.glob(os.path.join(d, "kmodel_*.jsonl"))):
    n = os.path.basename(p)[7:-6]
    print(f"model {n:6} | " + " | ".join(cell(r) for r in rd(os.path.basename(p))))
for k, t in torch.items():
    print(f"torch {t['mask']} {len(t['lens'])} seqs {t.get('head_dim')} {t.get('kv_heads')} {t.get('dtype')}: flash {t.get('flash_fwd_tflops',0):.0f}/{t.get('flash_bwd_tflops',0):.0f} cudnn {t.get('cudnn_fwd_tflops',0):.0f}/{t.get('cudnn_bwd_tflops',0):.0f}")
PY
cd $OUT && tar czf all.tgz --exclude=all.tgz --exclude='*.ncu-rep' * 2>/dev/null && find . -maxdepth 1 -type f ! -name all.tgz -delete
