#!/usr/bin/env bash
# kbwd9 call 1 (issue 10: sparse masks / small works in the sm90 backward), 1x H200.
# One binary (.kbwd9/dcp: branch kbwd9 = main ea62882 + owned gradient rows behind
# DCP_CUDA_BWD_OWN=1); kernels through DCP_CUDA_KERNELS: base = main's kernel files, new = this
# branch's (defaults = main's behaviour + the owned-rows support), skip/rot/kve/all = new with
# BWD_SKIP_EMPTY / BWD_ROTATE / BWD_KV_EARLY+BWD_DKV_EARLY / all of them.
# Sections (most important first): sparse timings round 1, correctness of the owned rows, dense
# D 128 (base first, between, last), op times, dense D 64, sparse round 2, selftest, torch, lead
# binary, ncu (later sections only while time is left). A table is printed last; everything is in $OUT/r1.tgz.
set -u
P=.kbwd9; B=$P/dcp; K=$P/k
R=/tmp/r1; mkdir -p $R
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
snap() { tar czf $OUT/r1.tgz -C /tmp r1 2>/dev/null; }
source bench/gpu/env.sh
T0=$SECONDS
left() { echo $((240 - (SECONDS - T0))); }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader 2>&1 | tee $R/gpu.txt
# kb LABEL KDIR OWN SHAPES D  -> $R/kb_LABEL_dD.jsonl (appends)
kb() { local lab=$1 kd=$2 own=$3 sh=$4 d=$5
  echo "== kb $lab d$d own=$own $sh t=$((SECONDS-T0))"
  DCP_CUDA_KERNELS=$K/$kd DCP_CUDA_BWD_OWN=$own timeout 40 $B kernel-bench --shapes $sh --head-dim $d --repeats 3 \
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

# 1. sparse shapes, round 1
for v in "base base 0" "own new 1" "skip skip 0" "rot rot 0" "kve kve 0" "allown all 1"; do
  set -- $v; kb $1 $2 $3 $SP 128; done
snap

# 2. correctness of owned rows against the CPU f64 reference, every kernel option on: batch 0 of
# small documents of which most are owned (the fills stay), batch 1 of owned documents only (the
# local plan's dQ and dKV fills are dropped); D 128 four masks, D 64 two.
echo '{"batches": [[256, 256, 256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500], [256, 256, 130, 1, 64, 65, 200, 17, 128, 129, 250]]}' > $R/small.json
for dm in "128 full,causal,causal-blockwise:128:2,sliding-window:100" "64 full,causal"; do set -- $dm; d=$1
  echo "== check small docs all+own d$d t=$((SECONDS-T0))"
  DCP_CUDA_KERNELS=$K/all DCP_CUDA_BWD_OWN=1 timeout 30 $B bench-gpu --batches $R/small.json --head-dim $d \
    --masks $2 --planners local,dcp --check --cpu-check-tokens 3000 \
    --warmup 0 --repeats 1 --json $R/chk_all_d$d.jsonl > $R/chk_all_d$d.log 2>&1; echo rc=$?; summ $R/chk_all_d$d.jsonl "check all+own d$d"
done
echo "== selftest all+own t=$((SECONDS-T0))"
DCP_CUDA_FAMILY=sm90 DCP_CUDA_KERNELS=$K/all DCP_CUDA_BWD_OWN=1 timeout 35 $B bench-gpu --selftest 8 --planners local,zigzag,dcp \
  --timeout-s 30 --json $R/st_all.jsonl > $R/st_all.log 2>&1; echo rc=$?; summ $R/st_all.jsonl "selftest all+own"
snap

# 3. dense D 128: base first, between and last
for v in "base base 0" "new new 0" "skip skip 0" "base base 0" "all all 0" "rot rot 0" "kve kve 0" "base base 0"; do
  set -- $v; kb dn$1 $2 $3 $DN 128; done
snap

# 4. op times (backward ops of the local plan): base and owned rows
python3 -c "import json; json.dump({'batches': [[256]*1000]}, open('$R/w1000.json','w')); json.dump({'batches': [[8096]]}, open('$R/one.json','w')); json.dump({'batches': [[32768]]}, open('$R/bw.json','w'))"
for v in "base base 0" "own new 1"; do
  for b in "w1000 full" "one full" "bw causal-blockwise"; do set -- $v $b
    [ $(left) -gt 30 ] || break
    echo "== ops $1 $4 t=$((SECONDS-T0))"
    DCP_CUDA_KERNELS=$K/$2 DCP_CUDA_BWD_OWN=$3 timeout 30 $B bench-gpu --batches $R/$4.json --masks $5 --planners local \
      --warmup 1 --repeats 3 --op-times $R/ops_$1_$4 --json $R/ops_$1_$4.jsonl > $R/ops_$1_$4.log 2>&1; echo rc=$?
  done
done
snap

# 5. dense D 64
for v in "base base 0" "new new 0" "base base 0" "new new 0"; do
  [ $(left) -gt 20 ] || break
  set -- $v; kb dn$1 $2 $3 $DN 64; done
snap

# 6. sparse round 2 (reverse order)
for v in "allown all 1" "own new 1" "base base 0"; do
  [ $(left) -gt 20 ] || break
  set -- $v; kb $1 $2 $3 $SP 128; done
snap

# 7. selftest of the owned rows with the branch's default kernel
if [ $(left) -gt 40 ]; then
  echo "== selftest new+own t=$((SECONDS-T0))"
  DCP_CUDA_FAMILY=sm90 DCP_CUDA_KERNELS=$K/new DCP_CUDA_BWD_OWN=1 timeout 35 $B bench-gpu --selftest 8 --planners local,zigzag,dcp \
    --timeout-s 30 --json $R/st_new.jsonl > $R/st_new.log 2>&1; echo rc=$?; summ $R/st_new.jsonl "selftest new+own"
fi
snap

# 8. PyTorch cuDNN / flash on the same shapes; the lead's binary (main, embedded kernels) once
if [ $(left) -gt 25 ]; then
  echo "== torch t=$((SECONDS-T0))"; timeout 25 python3 bench/gpu/torch_ref.py $R/kb_base_d128.jsonl $R/torch.jsonl 2>&1 | tail -2
fi
if [ $(left) -gt 15 ]; then
  echo "== kb lead (main binary, embedded kernels) t=$((SECONDS-T0))"
  timeout 20 $P/lead_dcp kernel-bench --shapes $SP --head-dim 128 --repeats 3 --json $R/kb_lead_d128.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror'
fi
snap

# 9. DRAM bytes of the works1000 backward kernel (Nsight Compute), base
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1 || true)
echo "ncu: ${NCU:-none}"
if [ -n "${NCU:-}" ] && [ $(left) -gt 30 ]; then
  echo "== ncu base t=$((SECONDS-T0))"
  DCP_CUDA_KERNELS=$K/base timeout 25 $NCU -k regex:dcp_attn_bwd_sm90 --launch-skip 2 --launch-count 1 \
    --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,lts__t_sectors_op_red.sum \
    $B kernel-bench --shapes works1000 --head-dim 128 --warmup 1 --repeats 1 > $R/ncu_base.txt 2>&1; echo rc=$?
  grep -E "gpu__time|dram__bytes|lts__t_sectors_op_red" $R/ncu_base.txt
fi
snap

echo "== table t=$((SECONDS-T0))"
python3 $P/table.py $R 2>&1 | tee $R/table.txt
snap
echo "== done t=$((SECONDS-T0))"
