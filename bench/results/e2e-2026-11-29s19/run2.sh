#!/usr/bin/env bash
# Session 19 final call (2x H200): merged main (pinned arena staging, distinct tile masks, classify
# without per-call memsets, kb19's COPY_BATCH default, kf20's result) checked against the CPU f64
# reference at world 1 and 2 and by compute-sanitizer, the Python GPU test; an alternated
# kernel-bench A/B against the session's starting kernels (BASE); examples/train.py on the same
# longalign batches with the session-start-of-call-1 wheel (A: pinned staging, masks per tile) and
# the merged wheel (B), with DCP_CUDA_PREPARE_PROFILE=1 on rank 0's stderr.
set -u
P=.pdev/s19f; A=.pdev/s19a; BASE=$A/dcp; DCP=$P/dcp
OUT=${OUT:?}; T0=$SECONDS; LIMIT=${LIMIT:-420}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
for v in A B; do
  w=$P/whl; [ $v = A ] && w=$A/whl
  python3 -m pip install -q --upgrade --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site$v $w/dcp-*.whl || exit 1
done
PP0=${PYTHONPATH:-}
export PYTHONPATH=/tmp/siteB${PP0:+:$PP0} PYTHONUNBUFFERED=1
eval "$(python3 -m dcp.env)"
source bench/gpu/env.sh
J=$OUT/r; mkdir -p $J
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $J/gpu.txt
summ() {
  python3 - "$1" "$2" <<'PY'
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1])] if os.path.exists(sys.argv[1]) else []
c = [r.get("check") or {} for r in rows if "check" in r]
ok = sum(1 for x in c if x.get("pass"))
w = {k: max([x.get(k, 0) or 0 for x in c] + [0]) for k in ("o", "lse", "dq", "dkv")}
print(f"{sys.argv[2]}: {ok}/{len(c)} pass; worst rel err " + " ".join(f"{k}={v:.1e}" for k, v in w.items()))
PY
}
echo "== selftest w1 t=$((SECONDS-T0))s"
CUDA_VISIBLE_DEVICES=0 timeout -k 5 90 $DCP bench-gpu --selftest 10 --planners dcp,zigzag,ring,local,usp --json $J/st1.jsonl > $J/st1.log 2>&1; echo "rc=$?"
summ $J/st1.jsonl "selftest sm90 w1" | tee -a $J/summary.txt
echo "== selftest w2 t=$((SECONDS-T0))s"
timeout -k 5 90 $DCP launch -n 2 -- bench-gpu --selftest 7 --planners dcp,ring,zigzag,local,ulysses,usp --json $J/st2.jsonl > $J/st2.log 2>&1; echo "rc=$?"
summ $J/st2.jsonl "selftest w2" | tee -a $J/summary.txt
export CUDA_VISIBLE_DEVICES=0
echo '{"batches": [[4096]]}' > $J/splitk.json
timeout 100 $DCP bench-gpu --batches $J/splitk.json --masks causal,full,causal-blockwise:512:2,lambda:64:1024 --planners local --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --json $J/splitk.jsonl > $J/splitk.log 2>&1; echo "rc=$?"
summ $J/splitk.jsonl "split-K 4096 vs CPU f64" | tee -a $J/summary.txt
python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
P = [256, 130, 129, 200, 250, 255, 192, 160, 240, 222, 131, 180, 129, 255, 140]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$J/short.json', 'w'))
json.dump({'batches': [[P[i % len(P)] for i in range(150)]]}, open('$J/pair.json', 'w'))"
timeout 80 $DCP bench-gpu --batches $J/short.json --masks full,causal,causal-blockwise:128:2,sliding-window:100 --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --json $J/short.jsonl > $J/short.log 2>&1; echo "rc=$?"
summ $J/short.jsonl "150 short documents vs CPU f64" | tee -a $J/summary.txt
timeout 60 $DCP bench-gpu --batches $J/pair.json --masks full --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --json $J/pair.jsonl > $J/pair.log 2>&1; echo "rc=$?"
summ $J/pair.jsonl "pair documents vs CPU f64" | tee -a $J/summary.txt
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  left 250 || break
  echo "== $tool t=$((SECONDS-T0))s"
  timeout -k 5 80 $CS --tool $tool --print-limit 5 $DCP bench-gpu --selftest 2 --planners local,zigzag,dcp --timeout-s 70 > $J/san_$tool.txt 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" $J/san_$tool.txt | head -3 | sed "s/^/$tool: /" | tee -a $J/summary.txt
done
unset CUDA_VISIBLE_DEVICES
if left 220; then
  echo "== pytest test_gpu.py t=$((SECONDS-T0))s"
  ( cd python/tests && timeout 120 python3 -m pytest -q -x test_gpu.py 2>&1 | tail -3 ) | tee $J/pytest_gpu.txt
  echo "python GPU test: $(tail -1 $J/pytest_gpu.txt)" >> $J/summary.txt
fi
for i in 1 2; do
  for v in base new; do
    left 130 || break
    b=$BASE; [ $v = new ] && b=$DCP
    echo "== A/B $v $i t=$((SECONDS-T0))s"
    CUDA_VISIBLE_DEVICES=0 timeout 60 $b kernel-bench --shapes causal32k,blockwise,lambda,works1000,onework,packed --head-dim 128 --repeats 3 --json $J/ab_${v}_$i.jsonl > $J/ab_${v}_$i.log 2>&1
  done
done
port=29580
for v in A B A B; do
  left 45 || { echo "skip train $v"; continue; }
  n=1; [ -e $J/train_${v}_1.json ] && n=2
  echo "== train $v $n t=$((SECONDS-T0))s"
  port=$((port + 1))
  PYTHONPATH=/tmp/site$v${PP0:+:$PP0} DCP_CUDA_PREPARE_PROFILE=1 timeout -k 5 90 torchrun --nproc-per-node 2 --master-port $port examples/train.py --planner dcp --dataset longalign --mask causal --steps 8 --warmup 2 --out $J/train_${v}_$n.json > $J/train_${v}_$n.log 2> $J/train_${v}_$n.err; echo "rc=$?"
done
python3 - $J <<'PY' | tee $J/tables.txt
import glob, json, os, re, sys
J = sys.argv[1]
def ab(v):
    out = {}
    for f in sorted(glob.glob(os.path.join(J, f"ab_{v}_*.jsonl"))):
        for l in open(f):
            d = json.loads(l)
            if "shape" in d and "fwd_tflops_per_gpu" in d:
                out.setdefault(d["shape"], []).append((d["fwd_tflops_per_gpu"], d["bwd_tflops_per_gpu"]))
    return out
b, n = ab("base"), ab("new")
if b and n:
    print("kernel-bench D 128 TFLOP/s fwd / bwd, base (session start) vs new (merged), mean of runs")
    for s in n:
        if s in b:
            bf = sum(x[0] for x in b[s]) / len(b[s]); bb = sum(x[1] for x in b[s]) / len(b[s])
            nf = sum(x[0] for x in n[s]) / len(n[s]); nb = sum(x[1] for x in n[s]) / len(n[s])
            print(f"  {s:10} {bf:6.1f} / {bb:6.1f}  ->  {nf:6.1f} / {nb:6.1f}   ({nf/bf:.3f} / {nb/bb:.3f})")
print("train.py longalign causal dcp, 2 GPUs, mean of steps 2-7 (rank 0); A = call-1 wheel, B = merged")
for f in sorted(glob.glob(os.path.join(J, "train_*.json"))):
    st = json.load(open(f))["steps"]; s = st[2:]
    m = lambda k: sum(r.get(k, 0) for r in s) / len(s)
    name = os.path.basename(f)[6:-5]
    prep = [float(x) for x in re.findall(r"dcp-cuda prepare \w+ .*?: ([0-9.]+) ms", open(f[:-5] + ".err").read())]
    print(f"  {name:5} step {m('step_s')*1e3:7.1f} ms | prepare {m('prepare_s')*1e3:6.1f} ms per step | programs: {len(prep)}, median {sorted(prep)[len(prep)//2] if prep else 0:.1f} ms | loss {st[-1]['loss']:.4f}")
PY
echo "== summary"; cat $J/summary.txt
tar czf $OUT/all.tgz -C $OUT r && rm -rf $J
echo "total $((SECONDS-T0))s"
