#!/bin/bash
# GPU check of the dcp Python package, run from the repo root on a machine with 2 GPUs and PyTorch:
# installs the wheel, runs the GPU pytest (2 ranks: every planner x mask vs dense attention, memory
# growth) and a few steps of examples/train.py (small model, short batches) per planner. Writes
# gpu_attention.json and train.json to $OUT (default /tmp/dcp-gpu-check).
set -u
OUT=${OUT:-/tmp/dcp-gpu-check}; mkdir -p "$OUT"; export OUT
W=${1:?usage: python/gpu_check.sh WHEEL_DIR (a dcp wheel built with: cd python && maturin build --release)}
T_DIR=python/tests; TRAIN=examples/train.py
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $W/dcp-*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
eval "$(python3 -m dcp.env)"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nvidia-smi -L
python3 -c "import torch,dcp;print('torch',torch.__version__,'nccl',torch.cuda.nccl.version(),'dcp',dcp.__version__,'dcp nccl',dcp._native.nccl_version())"
echo "== GPU pytest (2 ranks, every planner x mask, memory growth)"
DCP_GPU_OUT=$OUT/gpu_attention.json timeout 120 python3 -m pytest -q -rs -s $T_DIR/test_gpu.py 2>&1 | grep -v "^$" | tail -45
S="--layers 2 --hidden 1024 --heads 8 --kv-heads 2 --ffn 2816 --budget 32768 --scale 0.25 --steps 6 --warmup 2"
run() { name=$1; shift; echo "== train $name"; timeout ${T:-40} "$@" --out $OUT/t_$name.json 2>&1 | grep -E "^(model|step|summary)|Error|error" | tail -9; }
for pl in dcp ring zigzag local; do run $pl torchrun --nproc-per-node 2 $TRAIN --planner $pl $S; done
run reference python3 $TRAIN --single-gpu-reference $S
run dcp_lambda torchrun --nproc-per-node 2 $TRAIN --planner dcp --mask lambda $S
T=60 run full_dcp torchrun --nproc-per-node 2 $TRAIN --planner dcp --steps 4 --warmup 1
python3 - <<'PY'
import glob, json, os
out = os.environ["OUT"]; runs = {}
for f in sorted(glob.glob(f"{out}/t_*.json")):
    runs[os.path.basename(f)[2:-5]] = json.load(open(f)); os.remove(f)
json.dump(runs, open(f"{out}/train.json", "w"), indent=1)
print(f"{'run':12} {'plan':10} {'step ms':>9} {'tok/s/GPU':>10} {'wait ms':>8} {'peak GiB':>8}  losses")
for k, r in runs.items():
    s = r["summary"]
    print(f"{k:12} {r['steps'][-1]['plan']:10} {s['mean_step_s']*1e3:9.1f} {s['mean_tokens_per_s_per_gpu']:10.0f} {s['loader_wait_s_total']*1e3:8.1f} {s['peak_mem_gib']:8.2f}  " + " ".join(f"{x['loss']:.4f}" for x in r["steps"]))
PY
