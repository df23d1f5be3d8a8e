#!/usr/bin/env bash
# kbwd9 call 2 (issue 10), 1x H200. One binary (.kbwd9/dcp, branch kbwd9); kernels through
# DCP_CUDA_KERNELS: base = main's files, lean = this branch's (util.cu: the D pre-pass with 4
# pairs per lane in flight; attn_bwd_sm90.cu: dK/dV stores on TaskDesc.pad bit 31, chains under
# BWD_CHAIN, hot loop identical to main). Labels: base (main), dd (lean, DCP_CUDA_BWD_OWN=0: the
# pre-pass alone), kv (lean, =1: + dK/dV stores and dropped dKV fill), ch (lean, =chain: + chains
# storing dQ, dropped dQ fill; the host builds the kernel with BWD_CHAIN 1).
set -u
P=.kbwd9; B=$P/dcp; K=$P/k
R=/tmp/r2; mkdir -p $R
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
snap() { tar czf $OUT/r2.tgz -C /tmp r2 2>/dev/null; }
source bench/gpu/env.sh
T0=$SECONDS
left() { echo $((135 - (SECONDS - T0))); }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader 2>&1 | tee $R/gpu.txt
kb() { local lab=$1 kd=$2 own=$3 sh=$4 d=$5
  echo "== kb $lab d$d own=$own $sh t=$((SECONDS-T0))"
  DCP_CUDA_KERNELS=$K/$kd DCP_CUDA_BWD_OWN=$own timeout 30 $B kernel-bench --shapes $sh --head-dim $d --repeats 3 \
    --json $R/kb_${lab}_d$d.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic|failed'; }
summ() { python3 - "$1" "$2" <<'PY'
import json, sys
try:
    r = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
except FileNotFoundError:
    r = []
c = [x.get('check') or {} for x in r]
print('%s: %d/%d pass, worst o %.1e dq %.1e dkv %.1e' % (sys.argv[2], sum(1 for x in c if x.get('pass')), len(r),
      max([x.get('o', 0) or 0 for x in c] + [0]), max([x.get('dq', 0) or 0 for x in c] + [0]),
      max([x.get('dkv', 0) or 0 for x in c] + [0])))
PY
}
SP=blockwise,works1000,onework,sharedq,causal32k
DN=causal32k,causal128k

# 1. sparse shapes, two rounds (second reversed)
for v in "base base 0" "dd lean 0" "kv lean 1" "ch lean chain" "ch lean chain" "kv lean 1" "dd lean 0" "base base 0"; do
  set -- $v; kb $1 $2 $3 $SP 128; done
snap

# 2. correctness against the CPU f64 reference (batch 0: small documents, most owned; batch 1:
# owned documents only, fills dropped), then the random selftest
echo '{"batches": [[256, 256, 256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500], [256, 256, 130, 1, 64, 65, 200, 17, 128, 129, 250]]}' > $R/small.json
for v in "kv 1 128 full,causal,causal-blockwise:128:2,sliding-window:100" "ch chain 128 full,causal,causal-blockwise:128:2,sliding-window:100" "kv 1 64 full,causal" "ch chain 64 full,causal"; do
  set -- $v
  echo "== check small docs $1 d$3 t=$((SECONDS-T0))"
  DCP_CUDA_KERNELS=$K/lean DCP_CUDA_BWD_OWN=$2 timeout 25 $B bench-gpu --batches $R/small.json --head-dim $3 \
    --masks $4 --planners local,dcp --check --cpu-check-tokens 3000 \
    --warmup 0 --repeats 1 --json $R/chk_$1_d$3.jsonl > $R/chk_$1_d$3.log 2>&1; echo rc=$?; summ $R/chk_$1_d$3.jsonl "check $1 d$3"
done
for v in "kv 1" "ch chain"; do set -- $v
  echo "== selftest $1 t=$((SECONDS-T0))"
  DCP_CUDA_FAMILY=sm90 DCP_CUDA_KERNELS=$K/lean DCP_CUDA_BWD_OWN=$2 timeout 25 $B bench-gpu --selftest 8 --planners local,zigzag,dcp \
    --timeout-s 20 --json $R/st_$1.jsonl > $R/st_$1.log 2>&1; echo rc=$?; summ $R/st_$1.jsonl "selftest $1"
done
snap

# 3. dense: base first, between and last
for d in 128 64; do
  for v in "base base 0" "kv lean 1" "base base 0" "kv lean 1" "base base 0"; do
    [ $(left) -gt 12 ] || break
    set -- $v; kb dn$1 $2 $3 $DN $d; done
done
snap

# 4. op times of the local plan's backward
python3 -c "import json; json.dump({'batches': [[256]*1000]}, open('$R/w1000.json','w')); json.dump({'batches': [[32768]]}, open('$R/bw.json','w'))"
for v in "dd 0 w1000 full" "kv 1 w1000 full" "ch chain w1000 full" "kv 1 bw causal-blockwise"; do set -- $v
  [ $(left) -gt 10 ] || break
  echo "== ops $1 $3 t=$((SECONDS-T0))"
  DCP_CUDA_KERNELS=$K/lean DCP_CUDA_BWD_OWN=$2 timeout 20 $B bench-gpu --batches $R/$3.json --masks $4 --planners local \
    --warmup 1 --repeats 3 --op-times $R/ops_$1_$3 --json $R/ops_$1_$3.jsonl > $R/ops_$1_$3.log 2>&1; echo rc=$?
done
snap

# 5. DRAM bytes of the works1000 backward kernel (Nsight Compute; 2 launches per run: skip 1)
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1 || true)
for v in "base base 0" "kv lean 1" "ch lean chain"; do set -- $v
  [ -n "${NCU:-}" ] && [ $(left) -gt 15 ] || break
  echo "== ncu $1 t=$((SECONDS-T0))"
  DCP_CUDA_KERNELS=$K/$2 DCP_CUDA_BWD_OWN=$3 timeout 15 $NCU -k regex:dcp_attn_bwd_sm90 --launch-skip 1 --launch-count 1 \
    --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum \
    $B kernel-bench --shapes works1000 --head-dim 128 --warmup 1 --repeats 1 > $R/ncu_$1.txt 2>&1; echo rc=$?
  grep -E "gpu__time|dram__bytes" $R/ncu_$1.txt
done
snap

echo "== table t=$((SECONDS-T0))"
python3 $P/table.py $R 2>&1 | tee $R/table.txt
snap
echo "== done t=$((SECONDS-T0))"
