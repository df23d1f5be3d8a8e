#!/usr/bin/env bash
# kfwd10 call 2, ONE call on 1x H200 from the repository root:  bash .kfwd10/run2.sh
# (carry [".kfwd10"], kind nvidia-h200). Binary .kfwd10/dcp (main 444c8fc: its embedded kernel is
# `base`); `new` = this branch's kernels (FWD_PO on) through DCP_CUDA_KERNELS.
# 1. kernel-bench D 128 (causal32k, causal128k, blockwise, works1000, onework, packed):
#    base, new, base, new, base, new; D 64 the same shapes: base, new, newpd, base, newpd, new
#    (newpd: FWD_PREDESC at D 64 too).
# 2. FWDPROF of poprof (FWD_PO + counters) on works1000, blockwise, onework, and of prof (main's
#    kernel + counters) on blockwise, onework, works1000 (kernel span, busy time, clock).
# 3. selftest 8 (local, zigzag, dcp; every mask kind, D 64/128, bf16/f16, CPU f64 reference) of new,
#    default CTAs and DCP_CUDA_FWD_CTAS=5; CPU check (11 x 256 + 2900; full, causal,
#    causal-blockwise) at D 128 / 64 with 3 CTAs. A table last; everything in $OUT/kfwd10b.tgz.
set -u
B=${B:-.kfwd10/dcp}; V=${V:-.kfwd10/v}; OUTD=${OUT:-/tmp/kfwd10_out}
R=/tmp/kfwd10b; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kfwd10b.tgz" -C /tmp kfwd10b; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt "$1" ]; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
SH=causal32k,causal128k,blockwise,works1000,onework,packed
kb() {
  local n=$1 d=$2 sh=$3 tag=$4 envv=X_KFWD10=1
  if [ "$n" != base ]; then envv="DCP_CUDA_KERNELS=$V/$n"; fi
  echo "== $n d$d $tag t=$((SECONDS - T0))"
  env "$envv" timeout 40 "$B" kernel-bench --shapes "$sh" --head-dim "$d" --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^(causal|works|onework|blockwise|packed|shape) |rror|panic'
}
kbp() {
  local n=$1 sh=$2
  echo "== prof $n $sh t=$((SECONDS - T0))"
  DCP_CUDA_KERNELS="$V/$n" timeout 30 "$B" kernel-bench --shapes "$sh" --head-dim 128 --warmup 1 --repeats 2 \
    > "$R/prof_${n}_$sh.log" 2>&1
  echo "rc=$?"; grep FWDPROF "$R/prof_${n}_$sh.log" | tail -1
}
summ() {
  timeout 10 python3 - "$1" "$2" <<'PY'
import json, sys
try:
    r = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
except OSError:
    r = []
c = [x.get('check') or {} for x in r]
w = lambda k: max([x.get(k, 0) or 0 for x in c] + [0])
print('%s: %d/%d pass, worst o %.1e dq %.1e dkv %.1e' % (sys.argv[2], sum(1 for x in c if x.get('pass')), len(r), w('o'), w('dq'), w('dkv')))
PY
}
i=0
for v in base new base new base new; do
  i=$((i + 1))
  if left 75; then kb "$v" 128 "$SH" "${v}-d128_$i"; fi
done
snap
for v in base new newpd base newpd new; do
  i=$((i + 1))
  if left 115; then kb "$v" 64 "$SH" "${v}-d64_$i"; fi
done
snap
for sh in works1000 blockwise onework; do if left 130; then kbp poprof "$sh"; fi; done
for sh in blockwise onework works1000; do if left 135; then kbp prof "$sh"; fi; done
echo "== selftest new t=$((SECONDS - T0))"
DCP_CUDA_KERNELS="$V/new" DCP_CUDA_FAMILY=sm90 timeout 25 "$B" bench-gpu --selftest 8 --planners local,zigzag,dcp \
  --timeout-s 20 --json "$R/st_new.jsonl" > "$R/st_new.log" 2>&1
echo "rc=$?"; summ "$R/st_new.jsonl" "selftest new" | tee -a "$R/summ.txt"
snap
if left 170; then
  echo "== selftest new ctas5 t=$((SECONDS - T0))"
  DCP_CUDA_FWD_CTAS=5 DCP_CUDA_KERNELS="$V/new" DCP_CUDA_FAMILY=sm90 timeout 25 "$B" bench-gpu --selftest 8 --planners local,zigzag,dcp \
    --timeout-s 20 --json "$R/st_new5.jsonl" > "$R/st_new5.log" 2>&1
  echo "rc=$?"; summ "$R/st_new5.jsonl" "selftest new ctas5" | tee -a "$R/summ.txt"
fi
python3 -c 'print({"batches": [[256] * 11, [2900]]})' | tr "'" '"' > "$R/c.json"
for d in 128 64; do
  if left 185; then
    echo "== check d$d new t=$((SECONDS - T0))"
    DCP_CUDA_FWD_CTAS=3 DCP_CUDA_KERNELS="$V/new" DCP_CUDA_FAMILY=sm90 timeout 20 "$B" bench-gpu --batches "$R/c.json" --head-dim "$d" \
      --masks full,causal,causal-blockwise --planners local --check --cpu-check-tokens 3000 \
      --warmup 0 --repeats 1 --json "$R/chk_new_d$d.jsonl" > "$R/chk_new_d$d.log" 2>&1
    echo "rc=$?"; summ "$R/chk_new_d$d.jsonl" "check d$d new (3 CTAs)" | tee -a "$R/summ.txt"
  fi
done
echo "== table t=$((SECONDS - T0))"
timeout 10 python3 .kfwd10/table.py "$R" | tee "$R/table.txt"
cat "$R/summ.txt" 2> /dev/null
echo "== done t=$((SECONDS - T0))"
snap
