#!/usr/bin/env bash
# One GPU, kernel work in one call: selftest (every mask kind, GQA, head dims 64/128, vs CPU f64),
# the longalign batch through the local plan (causal + lambda) with the current kernels, the same
# with the previous kernels when OLD=DIR holds their sources (read at run time through
# DCP_CUDA_KERNELS, one m-tile per forward warp), PyTorch flash / cuDNN on the same batch, and a
# table last. Results under $OUT (selftest.jsonl, bench_new.jsonl, bench_old.jsonl, torch.jsonl).
set -uo pipefail
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
B="bench-gpu --dataset longalign --count 1 --planners local --block-sizes 1024 --warmup 1 --repeats ${REPEATS:-3}"
timeout 200 $DCP bench-gpu --selftest ${SELFTEST:-8} --planners ring,zigzag,local --json $OUT/selftest.jsonl 2>&1 | tail -${TAILN:-6}
for m in causal lambda; do timeout 100 $DCP $B --mask $m --json $OUT/bench_new.jsonl 2>&1 | tail -1; done
if [ -n "${OLD:-}" ] && [ -d "${OLD:-}" ]; then
  for m in causal lambda; do
    DCP_CUDA_KERNELS=$OLD DCP_CUDA_FWD_MT=1 timeout 100 $DCP $B --mask $m --json $OUT/bench_old.jsonl 2>&1 | tail -1
  done
fi
timeout 120 python3 bench/gpu/torch_ref.py $OUT/bench_new.jsonl $OUT/torch.jsonl 2>&1 | tail -3
python3 - "$OUT" <<'PY'
import json, os, sys
d = sys.argv[1]
def rd(n):
    p = os.path.join(d, n)
    return [json.loads(l) for l in open(p)] if os.path.exists(p) else []
st = rd("selftest.jsonl")
ok = sum(1 for r in st if (r.get("check") or {}).get("pass"))
worst = {k: max([(r.get("check") or {}).get(k, 0) or 0 for r in st] or [0]) for k in ("o", "lse", "dq", "dkv")}
print(f"selftest: {ok}/{len(st)} pass; worst rel err " + " ".join(f"{k}={v:.1e}" for k, v in worst.items()))
print("| version | mask | fwd ms | bwd ms | fwd TF | bwd TF |")
print("|---|---|---|---|---|---|")
for name, rows in (("new", rd("bench_new.jsonl")), ("old", rd("bench_old.jsonl"))):
    for r in rows:
        if r.get("kind") == "bench":
            print(f"| {name} | {r['mask']} | {r['fwd_ms']:.2f} | {r['bwd_ms']:.2f} | {r['fwd_tflops_per_gpu']:.0f} | {r['bwd_tflops_per_gpu']:.0f} |")
for r in rd("torch.jsonl"):
    print(f"| torch flash | {r['mask']} | {r['flash_fwd_ms']:.2f} | {r['flash_bwd_ms']:.2f} | {r['flash_fwd_tflops']:.0f} | {r['flash_bwd_tflops']:.0f} |")
    if r.get("cudnn_fwd_ms"):
        print(f"| cuDNN | {r['mask']} | {r['cudnn_fwd_ms']:.2f} | {r['cudnn_bwd_ms']:.2f} | {r['cudnn_fwd_tflops']:.0f} | {r['cudnn_bwd_tflops']:.0f} |")
PY
