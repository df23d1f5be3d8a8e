set -u
source bench/gpu/env.sh
R=$OUT/s45c4; mkdir -p $R
D=/tmp/dcp; gunzip -c .s45/dcp.gz > $D && chmod +x $D
nvidia-smi --query-gpu=name --format=csv,noheader | tee $R/card.txt
timeout 60 $D kernel-bench --shapes onework,causal32k --head-dim 128 --warmup 20 --repeats 20 --json $R/kb.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror'
TORCH_REF_WARMUP=20 TORCH_REF_REPEATS=20 timeout 100 python3 bench/gpu/torch_ref.py $R/kb.jsonl $R/torch.jsonl 2>&1 | tail -3
