#!/usr/bin/env bash
# s32 call 9 (2x H200): timeout 560 bash .s32/run9.sh
# The backward's piece model (order.rs even_piece) now schedules the pieces longest first, as
# the launch claims them. Old binary (.s32/dcp5.gz) against new (.s32/dcp9.gz):
# (1) one GPU, kernel-bench D 128 backward on the shapes `even` was measured on, alternated x2;
# (2) two GPUs, ulysses at 64K, 114 710, 128K, sustained 10 + 10, checked, both binaries;
# (3) the new binary: selftest at world 2, then issue 10's table sustained (SUSTAIN=20).
set -u
OUTD=${OUT:-/tmp/s32_out}
R=/tmp/s32c9; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s32c9.tgz" --exclude=s32c9/old --exclude=s32c9/new -C /tmp s32c9; }
exec > >(tee "$R/run.log") 2>&1
T0=$SECONDS
source bench/gpu/env.sh
gunzip -c .s32/dcp5.gz > $R/old && gunzip -c .s32/dcp9.gz > $R/new && chmod +x $R/old $R/new
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
SH=blockwise,sharedq,packed,causal32k,lambda,full8k
for r in 1 2; do for v in old new; do
  echo "== kb $v $r t=$((SECONDS - T0))"
  timeout 60 $R/$v kernel-bench --shapes $SH --json $R/kb_${v}_$r.jsonl > $R/kb_${v}_$r.log 2>&1; echo "rc=$?"
done; done
python3 bench/gpu/ab_table.py $R bwd_tflops_per_gpu old new | tee $R/kb_table.txt
snap
echo '{"batches": [[65536], [114710], [131072]]}' > $R/b.json
for v in old new; do
  echo "== ulysses $v t=$((SECONDS - T0))"
  timeout 100 $R/$v launch -n 2 -- bench-gpu --batches $R/b.json --mask causal --planners ulysses --check --warmup 10 --repeats 10 --json $R/u_$v.jsonl > $R/u_$v.log 2>&1; echo "rc=$?"
  python3 -c "
import json
for l in open('$R/u_$v.jsonl'):
    x = json.loads(l); print('$v', x['tokens'], 'fwd %.2f bwd %.2f' % (x['fwd_ms'], x['bwd_ms']), (x.get('check') or {}).get('pass'))"
done
snap
echo "== selftest w2 new t=$((SECONDS - T0))"
timeout 90 $R/new launch -n 2 -- bench-gpu --selftest 8 --planners dcp,ring,zigzag,local,ulysses,usp --json $R/st2.jsonl > $R/st2.log 2>&1; echo "rc=$?"
python3 -c "
import json
r = [json.loads(l) for l in open('$R/st2.jsonl') if l.strip()]
c = [x.get('check') or {} for x in r]
print('selftest w2: %d/%d pass' % (sum(1 for x in c if x.get('pass')), len(r)))"
echo "== table t=$((SECONDS - T0))"
DCP=$R/new WORLD=2 SELFTEST=0 SUSTAIN=20 PEER_IDEAL=.s32/peers/ideal_attn.py OUT=$R/t timeout $((545 - (SECONDS - T0))) bash bench/gpu/x4_cp_table.sh > $R/table.log 2>&1; echo "rc=$?"
tail -18 $R/table.log
echo "== done t=$((SECONDS - T0))"
snap
