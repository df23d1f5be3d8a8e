#!/usr/bin/env bash
# Session 26, call 2 (1x H200): rate against size for dense causal and the sparse masks, two
# rounds (the second in reverse order), PyTorch flash / cuDNN on the same shapes in round 1.
set -u
OUTD=${OUT:-/tmp/s26_out}; R=/tmp/s26c2; rm -rf $R; mkdir -p $R $OUTD
exec > >(tee $R/run.log) 2>&1
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,power.limit --format=csv,noheader
S=""
for n in 4096 8192 16384 32768 65536 131072; do S="$S,causal@$n"; done
for n in 8192 16384 32768 65536 131072 262144; do S="$S,causal-blockwise@$n"; done
for n in 16384 32768 65536 131072; do S="$S,lambda@$n,shared-question@$n"; done
for n in 2048 4096 8096 16384; do S="$S,full@$n"; done
S="${S#,},works1000"
S2=$(echo $S | tr ',' '\n' | tac | paste -sd,)
DCP_CUDA_FAMILY=sm90 timeout -k 5 280 .s26/dcp kernel-bench --shapes $S --repeats 5 --timeout-s 60 \
  --json $R/kb1.jsonl 2>&1 | tail -3
DCP_CUDA_FAMILY=sm90 timeout -k 5 280 .s26/dcp kernel-bench --shapes $S2 --repeats 5 --timeout-s 60 \
  --json $R/kb2.jsonl 2>&1 | tail -3
timeout -k 5 200 python3 bench/gpu/torch_ref.py $R/kb1.jsonl $R/torch.jsonl 2>&1 | tail -3
python3 - $R <<'PY'
import json, sys, statistics as st
d = sys.argv[1]
rows = {}
for f in ("kb1.jsonl", "kb2.jsonl"):
    for l in open(f"{d}/{f}"):
        r = json.loads(l)
        if r.get("kind") == "bench":
            rows.setdefault(r["shape"], []).append((r["fwd_tflops_per_gpu"], r["bwd_tflops_per_gpu"]))
for k, v in rows.items():
    print(f"{k:28} {st.mean(x[0] for x in v):6.1f} / {st.mean(x[1] for x in v):6.1f}   " + " | ".join(f"{x[0]:.0f}/{x[1]:.0f}" for x in v))
PY
cd /tmp && tar czf $OUTD/s26c2.tgz s26c2
