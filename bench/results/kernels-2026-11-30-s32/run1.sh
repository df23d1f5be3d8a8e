#!/usr/bin/env bash
# s32 call 1 (1x H200): LIMIT=300 timeout 320 bash .s32/run1.sh
# FWD_ONE_SUB: a one-step task's (256-key document's) row maximum over a sample of the keys, with
# a guard and an exact slow path. Variants through DCP_CUDA_KERNELS against main's embedded
# kernels (FWD_ONE_SUB 0 = main's SASS): sub4 / sub8 (every 4th / 8th group of 8 keys), sub4t (the
# slow path forced for every warp: correctness only), ub (timing-only bound: maximum of 2 keys, no
# guard). Checks first (f64 CPU reference; bf16 and f16; selftest; memcheck of the slow path),
# then forward TFLOP/s alternated x3.
set -u
OUTD=${OUT:-/tmp/s32_out}
LIMIT=${LIMIT:-300}
R=/tmp/s32c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s32c1.tgz" --exclude=s32c1/dcp -C /tmp s32c1; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
D=$R/dcp; gunzip -c .s32/dcp1.gz > $D && chmod +x $D
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
python3 -c "
import json
L = [256] * 60 + [128, 200, 256, 300, 512, 256, 1000, 256, 129]
json.dump({'batches': [[256] * 300, L]}, open('$R/b.json', 'w'))
json.dump({'batches': [[256] * 6 + [300]]}, open('$R/small.json', 'w'))"
venv() { case $1 in base) echo "";; *) echo "DCP_CUDA_KERNELS=.s32/v/$1";; esac; }
summ() { python3 -c "
import json
r = [json.loads(l) for l in open('$1') if l.strip()]
c = [x.get('check') or {} for x in r]
print('$2: %d/%d pass, worst o %.1e lse %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('o', 0) or 0 for x in c] + [0]), max([x.get('lse', 0) or 0 for x in c] + [0])))" 2>&1 | tee -a $R/summ.txt; }
for v in base sub4 sub8 sub4t; do for dt in bf16 f16; do
  echo "== check $v $dt t=$((SECONDS - T0))"
  env $(venv $v) timeout 60 $D bench-gpu --batches $R/b.json --masks full,causal --planners local --check --dtype $dt \
    --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 55 --json $R/chk_${v}_$dt.jsonl > $R/chk_${v}_$dt.log 2>&1; echo "rc=$?"
  summ $R/chk_${v}_$dt.jsonl "$v $dt"
done; done
for v in sub4 sub4t; do
  echo "== selftest $v t=$((SECONDS - T0))"
  env $(venv $v) timeout 60 $D bench-gpu --selftest 6 --planners dcp,ring,zigzag,local,ulysses,usp --json $R/st_$v.jsonl > $R/st_$v.log 2>&1; echo "rc=$?"
  summ $R/st_$v.jsonl "selftest $v"
done
snap
if command -v compute-sanitizer >/dev/null; then
  echo "== memcheck sub4t t=$((SECONDS - T0))"
  env $(venv sub4t) timeout 60 compute-sanitizer --tool memcheck $D bench-gpu --batches $R/small.json --masks full --planners local --check --warmup 0 --repeats 1 --timeout-s 55 > $R/memcheck.log 2>&1; echo "rc=$?"; grep -E 'ERROR SUMMARY|pass' $R/memcheck.log | tail -3
else echo "no compute-sanitizer"; fi
snap
SH=works1000,onework,packed
for r in 1 2 3; do for v in base ub sub4 sub8; do if left 25; then
  echo "== $v $r t=$((SECONDS - T0))"
  env $(venv $v) timeout 40 $D kernel-bench --shapes $SH --repeats 3 --json "$R/kb_${v}_$r.jsonl" > "$R/kb_${v}_$r.log" 2>&1; echo "rc=$?"
fi; done; done
python3 bench/gpu/ab_table.py "$R" fwd_tflops_per_gpu base ub sub4 sub8 | tee "$R/table.txt"
echo "== done t=$((SECONDS - T0))"
snap
