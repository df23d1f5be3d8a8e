#!/usr/bin/env bash
# session 6, x4 call 1: issue-10 table (with per-op times) + one-GPU kernel bench incl. blocks256, blockwise, D64 vs torch
set -u
export DCP=.pdev/dcp
OUT=$OUT/cp OPS_TIMES=1 PEER_CP=.pdev/torch_cp.py PEER_IDEAL=.pdev/ideal_attn.py bash bench/gpu/x4_cp_table.sh 2>&1 | tail -60
source bench/gpu/env.sh
K=$OUT/kb; mkdir -p $K
echo "== kernel-bench D128"
CUDA_VISIBLE_DEVICES=0 timeout -k 5 150 $DCP kernel-bench --shapes causal32k,causal128k,blockwise,sharedq,lambda,full8k,blocks256,onework,works1000 --repeats 3 --timeout-s 60 --json $K/kbench.jsonl 2>&1 | tail -12
echo "== kernel-bench D64"
CUDA_VISIBLE_DEVICES=0 timeout -k 5 60 $DCP kernel-bench --shapes causal32k,causal128k --head-dim 64 --repeats 3 --timeout-s 60 --json $K/kbench.jsonl 2>&1 | tail -4
echo "== torch"
CUDA_VISIBLE_DEVICES=0 timeout -k 5 150 python3 bench/gpu/torch_ref.py $K/kbench.jsonl $K/torch.jsonl 2>&1 | tail -16
