#!/usr/bin/env bash
# Kernel work in one GPU call: the random selftest against the CPU f64 reference for both kernel
# families (DCP_CUDA_FAMILY=sm90: the wgmma forward and backward; =mma: the mma.sync kernels),
# `dcp kernel-bench` for both on the fixed shapes (dense causal 32K and 128K, 120 packed short
# documents, lambda), compute-sanitizer memcheck and racecheck on small cases with the sm90
# kernels, PyTorch flash and cuDNN SDPA on exactly the same shapes (bench/gpu/torch_ref.py; with
# FLEX=1 also FlexAttention, the PyTorch path that takes every mask), and one side-by-side table
# last. Results under $OUT.
#   DCP=path/to/dcp OUT=dir bash bench/gpu/kernel_bench.sh
# Knobs: SELFTEST (cases per family, default 10), SELFTEST_FAMILIES, BENCH_FAMILIES, SHAPES,
# REPEATS, SAN_TOOLS (default "memcheck racecheck"; empty: none), SKIP_TORCH=1, FLEX=1, and
# per-step timeouts SELFTEST_T, BENCH_T, SAN_T, TORCH_T (seconds).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/env.sh"
OUT=${OUT:-/tmp/kbench}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
SHAPES=${SHAPES:-causal32k,causal128k,packed,lambda,full8k,blocks256}
# Steps are ordered by importance, each under its own timeout, so a hang or a short device call
# still returns the earlier results.
for fam in ${SELFTEST_FAMILIES:-sm90 mma}; do
  echo "== selftest, kernel family $fam"
  DCP_CUDA_FAMILY=$fam timeout -k 5 ${SELFTEST_T:-240} $DCP bench-gpu --selftest ${SELFTEST:-10} \
    --planners local,zigzag --timeout-s 30 --json $OUT/selftest_$fam.jsonl 2>&1 | tail -${TAILN:-4}
done
for fam in ${BENCH_FAMILIES:-mma sm90}; do
  DCP_CUDA_FAMILY=$fam timeout -k 5 ${BENCH_T:-150} $DCP kernel-bench --shapes $SHAPES --repeats ${REPEATS:-3} \
    --timeout-s 60 --json $OUT/kbench_$fam.jsonl 2>&1 | tail -6
done
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in ${SAN_TOOLS-memcheck racecheck}; do
  [ -n "$CS" ] || { echo "compute-sanitizer not found"; break; }
  echo "== $tool (sm90 kernels, 2 small cases)"
  DCP_CUDA_FAMILY=sm90 timeout -k 5 ${SAN_T:-150} $CS --tool $tool --print-limit 5 $DCP bench-gpu --selftest 2 \
    --planners local --timeout-s 100 2>&1 | grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|error|FAIL" | head -8
done
if [ -z "${SKIP_TORCH:-}" ]; then
  # The batches of whichever family was benched (both bench the same shapes).
  SRC=$(ls $OUT/kbench_sm90.jsonl $OUT/kbench_mma.jsonl 2>/dev/null | head -1)
  timeout -k 5 ${TORCH_T:-200} python3 "$HERE/torch_ref.py" ${FLEX:+--flex} $SRC $OUT/torch.jsonl 2>&1 | tail -8
fi
python3 - "$OUT" <<'PY'
import json, os, sys
d = sys.argv[1]
def rd(n):
    p = os.path.join(d, n)
    out = []
    if os.path.exists(p):
        for l in open(p):
            try: out.append(json.loads(l))
            except Exception: pass
    return out
for fam in ("sm90", "mma"):
    st = rd(f"selftest_{fam}.jsonl")
    if not st:
        continue
    ok = sum(1 for r in st if (r.get("check") or {}).get("pass"))
    worst = {k: max([(r.get("check") or {}).get(k, 0) or 0 for r in st] or [0]) for k in ("o", "lse", "dq", "dkv")}
    ks = sorted({r.get("kernels", "?") for r in st})
    print(f"selftest {fam}: {ok}/{len(st)} pass; worst rel err " + " ".join(f"{k}={v:.1e}" for k, v in worst.items()) + f"; kernels {ks}")
key = lambda r: (tuple(r["lens"]), r["mask"].split(":")[0])
torch = {key(r): r for r in rd("torch.jsonl")}
# ours by shape name (blocks256 and full8k share a batch), PyTorch's by batch and mask
ours = {fam: {r["shape"]: r for r in rd(f"kbench_{fam}.jsonl") if r.get("kind") == "bench"} for fam in ("mma", "sm90")}
print("\nTFLOP/s on attended FLOPs (fwd / bwd); ratios = sm90 over flash, cuDNN, FlexAttention (fwd / bwd)")
print("| shape | mma.sync | sm90 | torch flash | cuDNN | FlexAttention | sm90 / flash | sm90 / cuDNN | sm90 / flex |")
print("|---|---|---|---|---|---|---|---|---|")
for k in list(ours["sm90"]) + [k for k in ours["mma"] if k not in ours["sm90"]]:
    m, s = ours["mma"].get(k, {}), ours["sm90"].get(k, {})
    r0 = s or m
    t = torch.get(key(r0), {})
    f = lambda r, a, b: f"{r[a]:.0f} / {r[b]:.0f}" if a in r and b in r else "-"
    def ratio(x):
        a, b = f"{x}_fwd_tflops", f"{x}_bwd_tflops"
        if not s or a not in t or b not in t:
            return "-"
        return f"{s['fwd_tflops_per_gpu'] / t[a]:.2f} / {s['bwd_tflops_per_gpu'] / t[b]:.2f}"
    print(f"| {r0['shape']} ({r0['mask']}, {len(r0['lens'])} seqs, {r0['tokens']} tok) | {f(m, 'fwd_tflops_per_gpu', 'bwd_tflops_per_gpu')} | "
          f"{f(s, 'fwd_tflops_per_gpu', 'bwd_tflops_per_gpu')} | {f(t, 'flash_fwd_tflops', 'flash_bwd_tflops')} | "
          f"{f(t, 'cudnn_fwd_tflops', 'cudnn_bwd_tflops')} | {f(t, 'flex_fwd_tflops', 'flex_bwd_tflops')} | "
          f"{ratio('flash')} | {ratio('cudnn')} | {ratio('flex')} |")
PY
