#!/usr/bin/env bash
# Session 46, call 1: the pairs' claim order kept longest-first where no D clusters are planned
# (cluster::plan_in_d_order). D clusters' plans per batch, CPU f64 checks on batches with and
# without a plan, an alternated A/B of the build before the change (old) against this tree (new),
# the world-1 selftest, and works1000 / onework sustained (20 + 20) at D 128 and 64.
# Binaries staged untracked: .s46/dcp.gz (this tree), .s46/old.gz (f10c48ae's exec.rs / cluster.rs).
set -u
source bench/gpu/env.sh
T0=$SECONDS
R=/tmp/s46c1; rm -rf $R; mkdir -p $R
exec > >(tee "$R/run.log") 2>&1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c .s46/dcp.gz > $D && chmod +x $D
O=/tmp/dcp_old; gunzip -c .s46/old.gz > $O && chmod +x $O
summ() { python3 bench/gpu/check_summary.py "$1" "$2"; }
python3 -c "
import json, random
random.seed(46)
m = lambda n: [random.randint(129, 256) for _ in range(n)]
json.dump({'batches': [m(20), m(34), m(37), m(300)]}, open('$R/mixed.json', 'w'))"
echo "== plans t=$((SECONDS-T0))s"
for hd in 128 64; do
  DCP_CUDA_BWD_PIECE_LOG=1 timeout 60 $D bench-gpu --batches $R/mixed.json --head-dim $hd --masks full --planners local --warmup 0 --repeats 1 2>&1 | grep "D clusters" | sed "s/^/D$hd: /"
done | tee $R/plans.txt
echo "== CPU f64 t=$((SECONDS-T0))s"
for cfg in "128 bf16 2" "64 f16 8" "128 f16 1"; do
  set -- $cfg
  timeout 90 $D bench-gpu --batches $R/mixed.json --head-dim $1 --dtype $2 --kv-heads $3 --masks full --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --op-times $R/ops_$1_$2_$3 --json $R/chk.jsonl > $R/chk_$1_$2_$3.log 2>&1
  echo "D$1 $2 kv$3 rc=$? ops: $(cat $R/ops_$1_$2_$3/* 2>/dev/null | grep -o 'launch:[A-Za-z]*' | sort | uniq -c | tr -s ' \n' ' ')"
done
summ $R/chk.jsonl "mixed 129-256 documents, 20/34/37/300, vs CPU f64" | tee -a $R/summary.txt
echo "== A/B old vs new t=$((SECONDS-T0))s"
for hd in 128 64; do
  timeout 110 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/ab$hd --deadline-s 70 --run-timeout 40 --rounds 3 \
    --bench "bench-gpu --batches $R/mixed.json --head-dim $hd --masks full --planners local --warmup 5 --repeats 20" \
    --field bwd_tflops_per_gpu --field fwd_tflops_per_gpu old:bin:$O new > $R/ab$hd.out 2>&1
  grep -A8 'bwd_tflops' $R/ab$hd.out | sed "s/^/D$hd /"
done
tar czf $OUT/s46c1.tgz -C /tmp --exclude='*/k' s46c1
echo "== selftest world 1 t=$((SECONDS-T0))s"
timeout -k 5 120 $D bench-gpu --selftest 12 --planners dcp,zigzag,ring,local,usp --json $R/st.jsonl > $R/st.log 2>&1; echo "rc=$?"
summ $R/st.jsonl "selftest sm90 w1" | tee -a $R/summary.txt
echo "== sustained works1000 / onework t=$((SECONDS-T0))s"
for hd in 128 64; do
  timeout 100 $D kernel-bench --shapes works1000,onework --head-dim $hd --warmup 20 --repeats 20 --json $R/sus.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror' | sed "s/^/D$hd /"
done
python3 - $R/sus.jsonl <<'PY' | tee $R/sus.md
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {(x["head_dim"], x["shape"]): x for x in r if x.get("kind") == "bench"}
print("| D | works1000 fwd / bwd | onework fwd / bwd | ratio fwd / bwd |")
print("|---|---|---|---|")
for d in (128, 64):
    w, o = by.get((d, "works1000")), by.get((d, "onework"))
    if w and o:
        f, b = "fwd_tflops_per_gpu", "bwd_tflops_per_gpu"
        print(f"| {d} | {w[f]:.0f} / {w[b]:.0f} | {o[f]:.0f} / {o[b]:.0f} | {w[f]/o[f]:.3f} / {w[b]/o[b]:.3f} |")
PY
tar czf $OUT/s46c1.tgz -C /tmp --exclude='*/k' s46c1
echo "== done t=$((SECONDS-T0))s"
cat $R/summary.txt
