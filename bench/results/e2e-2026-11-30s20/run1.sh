#!/usr/bin/env bash
# Session 20, call 1 (1x H200): (a) selftest of main 498e4cb (session 19's last CPU-side changes to
# the half-tile order and classify were not GPU-run yet); (b) issue 12 section 1 on a quiet CPU:
# validator_bench (validation vs planning CPU time, one thread) on the device host, which has 16
# cores and no other load, at 131K tokens on 4x8 / 8x8 / 32x8.
set -u
source bench/gpu/env.sh
T0=$SECONDS; LIMIT=${LIMIT:-400}
R=$OUT/r; mkdir -p $R
DCP=.lead/dcp; VB=.lead/validator_bench
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/gpu.txt
(lscpu | grep -E "Model name|^CPU\(s\)|MHz|L2|L3"; uptime) | tee $R/cpu.txt
echo "== selftest w1 t=$((SECONDS-T0))"
timeout -k 5 150 $DCP bench-gpu --selftest 30 --planners dcp,zigzag,ring,local,usp --json $R/st.jsonl > $R/st.log 2>&1; echo "rc=$?"
python3 - $R/st.jsonl <<'PY' | tee $R/st_summary.txt
import json,sys
rows=[json.loads(l) for l in open(sys.argv[1])]
c=[r.get("check") or {} for r in rows]
print(f"selftest w1: {sum(1 for x in c if x.get('pass'))}/{len(rows)} pass")
PY
echo '{"batches": [[4096]]}' > $R/splitk.json
timeout 100 $DCP bench-gpu --batches $R/splitk.json --masks causal,full --planners local --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 > $R/splitk.log 2>&1; echo "splitk rc=$?"; grep -c PASS $R/splitk.log
for T in 4x8 8x8 32x8; do
  [ $((SECONDS - T0)) -lt $((LIMIT - 60)) ] || break
  P=ring,zigzag,usp,dcp; [ $T = 32x8 ] && P=ring,zigzag,usp
  echo "== validator_bench $T t=$((SECONDS-T0))"
  timeout 120 $VB --budgets 131072 --count 2 --repeats 9 --interleave --topology $T --threads 1 --planners $P > $R/vb_$T.txt 2>&1; echo "rc=$?"
done
tar czf $OUT/all.tgz -C $OUT r && rm -rf $R
echo "t=$((SECONDS-T0))"
tar xzf $OUT/all.tgz -O r/st_summary.txt; for T in 4x8 8x8 32x8; do tar xzf $OUT/all.tgz -O r/vb_$T.txt 2>/dev/null | grep -E "^\|" ; done
