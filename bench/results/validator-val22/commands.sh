#!/bin/bash
# val22's measurements (base = main f435884, no code change). Binaries: B = target/release/examples/validator_bench
# (release), D = the same built with CARGO_PROFILE_RELEASE_DEBUG=line-tables-only (CARGO_TARGET_DIR=/tmp/v22tgt).
B=/tmp/v22_base; D=/tmp/v22_dbg; cd /tmp/v22cg
# 1. clock, 3 processes per topology (raw/clock_*):
for t in 8x8 16x8 32x8; do $B --budgets 131072 --count 1 --repeats 9 --interleave --topology $t --threads 1 --mode ahead --planners ring,zigzag,usp; done
# 2. callgrind with the cache model of this VM's core (D1 48 KiB, LL = L2 2 MiB), validation only, 2 plan+validate runs:
for t in 8x8 32x8; do valgrind --tool=callgrind --cache-sim=yes --D1=49152,12,64 --LL=2097152,16,64 --callgrind-out-file=c_base_val_ring_$t.out --toggle-collect='dcp_core::validate::validate_paths' $B --budgets 131072 --count 1 --repeats 2 --interleave --topology $t --threads 1 --mode ahead --planners ring; done
valgrind --tool=callgrind --cache-sim=yes --D1=49152,12,64 --LL=2097152,16,64 --callgrind-out-file=c_base_valseq_ring_32x8.out --toggle-collect='dcp_core::validate::validate_paths' $B --budgets 131072 --count 1 --repeats 2 --interleave --topology 32x8 --threads 1 --mode sequential --planners ring
python3 growth.py   # -> growth_ring.txt
# 3. time share (perf cpu-clock, dwarf stacks, samples under validate_paths by leaf function) against Ir share (callgrind), 16x8:
for p in ring zigzag usp; do
  perf record -e cpu-clock -F 4000 --call-graph dwarf,16384 -o perfd2_$p.data $D --budgets 131072 --count 1 --repeats 9 --interleave --topology 16x8 --threads 1 --mode ahead --planners $p
  perf script -i perfd2_$p.data -F ip,sym,dso > perfd2_$p.script
  valgrind --tool=callgrind --callgrind-out-file=d_val_${p}_16x8.out --toggle-collect='dcp_core::validate::validate_paths' $D --budgets 131072 --count 1 --repeats 1 --interleave --topology 16x8 --threads 1 --mode ahead --planners $p
  python3 join.py $p   # -> raw/perf_vs_ir_$p_16x8.txt
done
