#!/usr/bin/env bash
# kbwd10 call 2 (issue 10), 1x H200. Two binaries: .kbwd10/dcp = main 444c8fc (base), .kbwd10/dcpn
# = branch kbwd10 with its defaults (labels: new = dK/dV stored into the copy destination
# (DCP_CUDA_BWD_CONVERT=dkv, the default) + the dQ zero fill done by the D pre-pass
# (DCP_CUDA_BWD_FUSE_FILL=1, the default); fz0 = new with DCP_CUDA_BWD_FUSE_FILL=0).
set -u
P=.kbwd10; BB=$P/dcp; BN=$P/dcpn
R=/tmp/r2; mkdir -p $R
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
snap() { tar czf $OUT/r2.tgz -C /tmp r2 2>/dev/null; }
source bench/gpu/env.sh
T0=$SECONDS
LIMIT=${LIMIT:-200}
left() { echo $((LIMIT - (SECONDS - T0))); }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader 2>&1 | tee $R/gpu.txt
bin() { case $1 in base) echo $BB;; *) echo $BN;; esac; }
ff() { case $1 in fz0) echo 0;; *) echo 1;; esac; }
kb() { local lab=$1 sh=$2 d=$3 tag=${4:-}
  echo "== kb $lab$tag d$d $sh t=$((SECONDS-T0))"
  DCP_CUDA_BWD_FUSE_FILL=$(ff $lab) timeout 40 $(bin $lab) kernel-bench --shapes $sh --head-dim $d --repeats 3 \
    --json $R/kb_$tag$lab\_d$d.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic|failed'; }
summ() { python3 - "$1" "$2" <<'PY'
import json, sys
try:
    r = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith('{')]
except FileNotFoundError:
    r = []
c = [x.get('check') or {} for x in r]
print('%s: %d/%d pass, worst o %.1e dq %.1e dkv %.1e' % (sys.argv[2], sum(1 for x in c if x.get('pass')), len(r),
      max([x.get('o', 0) or 0 for x in c] + [0]), max([x.get('dq', 0) or 0 for x in c] + [0]),
      max([x.get('dkv', 0) or 0 for x in c] + [0])))
PY
}
SP=blockwise,works1000,onework,sharedq,causal32k

# 0. correctness of the defaults against the CPU f64 reference (poisoned outputs), then the
# random selftest (every mask kind, D 64/128, bf16/f16)
echo '{"batches": [[256, 256, 256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500], [256, 256, 130, 1, 64, 65, 200, 17, 128, 129, 250]]}' > $R/small.json
for v in "new 128 full,causal,causal-blockwise:128:2,sliding-window:100" "new 64 full,causal,causal-blockwise:128:2"; do
  set -- $v
  echo "== check small docs $1 d$2 t=$((SECONDS-T0))"
  timeout 40 $(bin $1) bench-gpu --batches $R/small.json --head-dim $2 \
    --masks $3 --planners local,dcp,zigzag --check --cpu-check-tokens 3000 \
    --warmup 0 --repeats 1 --json $R/chk_$1_d$2.jsonl > $R/chk_$1_d$2.log 2>&1; echo rc=$?; summ $R/chk_$1_d$2.jsonl "check $1 d$2"
done
echo "== selftest new t=$((SECONDS-T0))"
DCP_CUDA_FAMILY=sm90 timeout 40 $BN bench-gpu --selftest 12 --planners local,zigzag,dcp \
  --timeout-s 35 --json $R/st_new.jsonl > $R/st_new.log 2>&1; echo rc=$?; summ $R/st_new.jsonl "selftest new"
snap

# 1. sparse shapes D 128: base first, between and last; variants alternated
for v in base new fz0 base fz0 new base; do kb $v $SP 128; done
snap

# 2. dense: base first, between and last (D 128 32K and 128K; D 64 32K)
for v in base new base new base; do [ $(left) -gt 40 ] || break; kb $v causal32k,causal128k 128 dn; done
for v in base new base new base; do [ $(left) -gt 30 ] || break; kb $v causal32k 64 dn; done
snap

# 3. op times of the local plan's backward (works1000; blockwise; onework)
python3 -c "import json; json.dump({'batches': [[256]*1000]}, open('$R/w1000.json','w')); json.dump({'batches': [[32768]]}, open('$R/bw.json','w')); json.dump({'batches': [[8096]]}, open('$R/one.json','w'))"
for v in "base w1000 full" "new w1000 full" "fz0 w1000 full" "base bw causal-blockwise" "new bw causal-blockwise" "new one full"; do set -- $v
  [ $(left) -gt 15 ] || break
  echo "== ops $1 $2 t=$((SECONDS-T0))"
  DCP_CUDA_BWD_FUSE_FILL=$(ff $1) timeout 25 $(bin $1) bench-gpu --batches $R/$2.json --masks $3 --planners local \
    --warmup 1 --repeats 3 --op-times $R/ops_$1_$2 --json $R/ops_$1_$2.jsonl > $R/ops_$1_$2.log 2>&1; echo rc=$?
done
snap

# 4. DRAM bytes of the works1000 backward kernel (Nsight Compute; skip the first launch)
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1 || true)
for v in base new; do
  [ -n "${NCU:-}" ] && [ $(left) -gt 20 ] || break
  echo "== ncu $v t=$((SECONDS-T0))"
  timeout 20 $NCU -k regex:dcp_attn_bwd_sm90 --launch-skip 1 --launch-count 1 \
    --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum \
    $(bin $v) kernel-bench --shapes works1000 --head-dim 128 --warmup 1 --repeats 1 > $R/ncu_$v.txt 2>&1; echo rc=$?
  grep -E "gpu__time|dram__bytes" $R/ncu_$v.txt
done
snap

echo "== table t=$((SECONDS-T0))"
python3 $P/table.py $R 2>&1 | tee $R/table.txt
snap
echo "== done t=$((SECONDS-T0))"
