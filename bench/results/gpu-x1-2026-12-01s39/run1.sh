#!/usr/bin/env bash
# Session 39, call 1: the clustered backward at D 64 (works exactly two kv tiles wide, e.g. works1000).
#   timeout 570 bash bench/results/gpu-x1-2026-12-01s39/run1.sh
# Needs .s39/dcp.gz: this tree, cargo build --release; gzip -c target/release/dcp.
# 1. CPU f64 checks of pair documents (every work 129-256 keys: clustered) at D 64 bf16 GQA 8:2,
#    f16 GQA 1:1 (odd step counts: the second q tile of a list's last step absent), bf16 8:1, and
#    D 128 (regression), each with its op times (which backward kernel ran); 150 mixed short
#    documents at D 64 (launches that do not cluster); a small selftest.
# 2. compute-sanitizer memcheck / racecheck on the D 64 pair documents.
# 3. Op times of works1000 at D 64, clusters on / off (DCP_CUDA_BWD_CLUSTER=0: the plain path every
#    D 64 launch took before).
# 4. Alternated A/B (ab_rounds.py) at D 64: works1000, onework, blocks256, packed; cl / nocl.
# 5. PyTorch flash / cuDNN on works1000 and onework at D 64.
set -u
OUTD=${OUT:-/tmp/s39_out}
R=$OUTD/c1; mkdir -p $R
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c .s39/dcp.gz > $D && chmod +x $D
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
summ() {
  python3 - "$1" "$2" <<'PY'
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1])] if os.path.exists(sys.argv[1]) else []
c = [r.get("check") or {} for r in rows]
ok = sum(1 for x in c if x.get("pass"))
w = {k: max([x.get(k, 0) or 0 for x in c] + [0]) for k in ("o", "lse", "dq", "dkv")}
print(f"{sys.argv[2]}: {ok}/{len(rows)} pass; worst rel err " + " ".join(f"{k}={v:.1e}" for k, v in w.items()))
PY
}
python3 -c "
import json
P = [256, 130, 129, 200, 250, 255, 192, 160, 240, 222, 131, 180, 129, 255, 140]
json.dump({'batches': [[P[i % len(P)] for i in range(150)]]}, open('$R/pair.json', 'w'))
json.dump({'batches': [[P[(3 * i) % len(P)] for i in range(300)]]}, open('$R/pair300.json', 'w'))
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[256] * 1000]}, open('$R/works.json', 'w'))"

echo "== 1. pair documents vs CPU f64 t=$((SECONDS-T0))s"
for cfg in "64 bf16 2 pair" "64 f16 8 pair300" "64 bf16 1 pair300" "128 bf16 2 pair" "128 f16 1 pair300"; do
  set -- $cfg; n=d$1_$2_kv$3
  timeout 60 $D bench-gpu --batches $R/$4.json --head-dim $1 --dtype $2 --kv-heads $3 --masks full --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --op-times $R/ops_$n --json $R/pair.jsonl > $R/pair_$n.log 2>&1
  echo "$n rc=$? backward kernels: $(cat $R/ops_$n/* 2>/dev/null | grep -o 'Bwd[A-Za-z]*' | sort | uniq -c | tr -s ' \n' ' ')"
  grep -E "FAIL|panic|rror" $R/pair_$n.log | head -3
done
summ $R/pair.jsonl "pair documents vs CPU f64" | tee -a $R/summary.txt
timeout 60 $D bench-gpu --batches $R/short.json --head-dim 64 --masks full,causal,causal-blockwise:128:2,sliding-window:100 --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --json $R/short.jsonl > $R/short_d64.log 2>&1; echo "short rc=$?"
grep -E "FAIL|panic|rror" $R/short_d64.log | head -3
summ $R/short.jsonl "short documents D 64 vs CPU f64" | tee -a $R/summary.txt
timeout -k 5 90 $D bench-gpu --selftest 4 --planners dcp,local,zigzag --json $R/st.jsonl > $R/st.log 2>&1; echo "selftest rc=$?"
summ $R/st.jsonl "selftest w1" | tee -a $R/summary.txt

echo "== 2. sanitizers, D 64 pair documents t=$((SECONDS-T0))s"
for tool in memcheck racecheck; do
  timeout -k 5 100 $CS --tool $tool --print-limit 5 $D bench-gpu --batches $R/pair.json --head-dim 64 --masks full --planners local --warmup 0 --repeats 1 --timeout-s 90 > $R/san_$tool.txt 2>&1; echo "$tool rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" $R/san_$tool.txt | head -4 | sed "s/^/$tool: /" | tee -a $R/summary.txt
done

echo "== 3. op times, works1000 D 64 t=$((SECONDS-T0))s"
for v in cl nocl; do
  e=""; [ $v = nocl ] && e="DCP_CUDA_BWD_CLUSTER=0"
  env $e timeout 60 $D bench-gpu --batches $R/works.json --head-dim 64 --masks full --planners local --warmup 2 --repeats 5 --op-times $R/wops_$v --json $R/wops.jsonl > $R/wops_$v.log 2>&1; echo "$v rc=$?"
  python3 bench/gpu/op_times.py $R/wops_$v --top 8 2>&1 | tail -14 | sed "s/^/$v: /"
done

echo "== 4. A/B D 64 t=$((SECONDS-T0))s"
timeout 200 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/ab64 --deadline-s 150 --run-timeout 40 --rounds 3 \
  --bench "kernel-bench --head-dim 64 --shapes works1000,onework,blocks256,packed --warmup 3 --repeats 10" \
  --field bwd_tflops_per_gpu --field fwd_tflops_per_gpu --snap $OUTD/c1_ab64.tgz \
  cl nocl:DCP_CUDA_BWD_CLUSTER=0

echo "== 5. torch D 64 t=$((SECONDS-T0))s"
timeout 40 $D kernel-bench --shapes works1000,onework --head-dim 64 --repeats 5 --json $R/kb64.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
timeout 90 python3 bench/gpu/torch_ref.py $R/kb64.jsonl $R/torch64.jsonl 2>&1 | tail -4

echo "== done t=$((SECONDS-T0))s"
cat $R/summary.txt
cat $R/ab64/table.md 2>/dev/null
