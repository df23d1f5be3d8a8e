#!/usr/bin/env bash
# One GPU, end-of-session check of merged main in one call:
#  1. correctness: selftest world 1, a split-K forward (4096 tokens) and 150 short documents
#     (chained backward) against the CPU f64 reference (every mask kind, GQA, head dims, all
#     one-GPU planners), the mma.sync family too; compute-sanitizer memcheck and racecheck on
#     small cases; the Python package's GPU test;
#  2. kernel-bench: the sparse / short-work shapes at D 128 and D 64 (issue 10's ratios), dense
#     causal 32K over GQA ratios 1, 2, 4, 8 x bf16 / f16 x D 64 / 128, the packed batch;
#  3. PyTorch flash (varlen) and cuDNN SDPA on exactly the same shapes (bench/gpu/torch_ref.py).
# Env: DCP (binary), WHEEL (folder with the dcp wheel; optional), BASE (a second binary for an
# alternated D 128 A/B; optional), LIMIT (s, default 540).
# Everything lands in $OUT/x1.tgz; the table is printed last.
set -u
source bench/gpu/env.sh
OUT=${OUT:?}
T0=$SECONDS
LIMIT=${LIMIT:-540}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
J=$OUT/x1; mkdir -p $J
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $J/gpu.txt
summ() { python3 "$(dirname "${BASH_SOURCE[0]}")/check_summary.py" "$1" "$2"; }  # FILE LABEL: checks passed, worst errors

echo "== selftest world 1 (sm90) t=$((SECONDS-T0))s"
timeout -k 5 90 $DCP bench-gpu --selftest 12 --planners dcp,zigzag,ring,local,usp --json $J/st_sm90.jsonl > $J/st_sm90.log 2>&1; echo "rc=$?"
summ $J/st_sm90.jsonl "selftest sm90 w1" | tee -a $J/summary.txt; grep -E "FAIL|panic|rror" $J/st_sm90.log | head -3
echo "== selftest world 1 (mma) t=$((SECONDS-T0))s"
DCP_CUDA_FAMILY=mma timeout -k 5 60 $DCP bench-gpu --selftest 6 --planners local,zigzag --json $J/st_mma.jsonl > $J/st_mma.log 2>&1; echo "rc=$?"
summ $J/st_mma.jsonl "selftest mma w1" | tee -a $J/summary.txt; grep -E "FAIL|panic|rror" $J/st_mma.log | head -3

if [ -n "${WHEEL:-}" ] && [ -d "${WHEEL:-}" ] && left 120; then
  echo "== python GPU test t=$((SECONDS-T0))s"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $WHEEL/dcp-*.whl 2>/dev/null
  ( export PYTHONPATH=/tmp/site; eval "$(python3 -m dcp.env)"; cd python/tests && timeout 120 python3 -m pytest -q -x test_gpu.py 2>&1 | tail -3 ) | tee $J/pytest_gpu.txt
  echo "python GPU test: $(tail -1 $J/pytest_gpu.txt)" >> $J/summary.txt
fi

CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  echo "== $tool t=$((SECONDS-T0))s"
  DCP_CUDA_FAMILY=sm90 timeout -k 5 100 $CS --tool $tool --print-limit 5 $DCP bench-gpu --selftest 2 --planners local,zigzag,dcp --timeout-s 90 > $J/san_$tool.txt 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" $J/san_$tool.txt | head -4 | tee -a $J/summary.txt
done

echo "== forward split-K vs CPU f64 (one 4096-token sequence: its tasks are split) t=$((SECONDS-T0))s"
echo '{"batches": [[4096]]}' > $J/splitk.json
for D in 128 64; do
  timeout 100 $DCP bench-gpu --batches $J/splitk.json --masks causal,full --planners local --head-dim $D --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --json $J/splitk.jsonl > $J/splitk_d$D.log 2>&1; echo "rc=$?"
  grep -E "FAIL|panic|rror" $J/splitk_d$D.log | head -3
done
summ $J/splitk.jsonl "split-K check vs CPU f64" | tee -a $J/summary.txt

echo "== short documents vs CPU f64 (150 of 1-511 tokens: the backward chains at D 128) t=$((SECONDS-T0))s"
python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$J/short.json', 'w'))"
for D in 128 64; do
  timeout 60 $DCP bench-gpu --batches $J/short.json --head-dim $D --masks full,causal,causal-blockwise:128:2,sliding-window:100 --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --json $J/short.jsonl > $J/short_d$D.log 2>&1; echo "rc=$?"
  grep -E "FAIL|panic|rror" $J/short_d$D.log | head -3
done
summ $J/short.jsonl "short documents vs CPU f64" | tee -a $J/summary.txt
for tool in memcheck racecheck; do
  echo "== $tool, short documents (chains) t=$((SECONDS-T0))s"
  timeout -k 5 100 $CS --tool $tool --print-limit 5 $DCP bench-gpu --batches $J/short.json --masks full --planners local --warmup 0 --repeats 1 --timeout-s 90 > $J/san_short_$tool.txt 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" $J/san_short_$tool.txt | head -4 | sed 's/^/short: /' | tee -a $J/summary.txt
done


echo "== pair documents vs CPU f64 (every work two kv tiles wide: the clustered backward) t=$((SECONDS-T0))s"
python3 -c "
import json
P = [256, 130, 129, 200, 250, 255, 192, 160, 240, 222, 131, 180, 129, 255, 140]
json.dump({'batches': [[P[i % len(P)] for i in range(150)]]}, open('$J/pair.json', 'w'))
json.dump({'batches': [[P[(3 * i) % len(P)] for i in range(300)]]}, open('$J/pair300.json', 'w'))"
timeout 60 $DCP bench-gpu --batches $J/pair.json --head-dim 128 --masks full --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --op-times $J/pair_ops --json $J/pair.jsonl > $J/pair_bf16.log 2>&1; echo "rc=$?"
timeout 60 $DCP bench-gpu --batches $J/pair300.json --head-dim 128 --dtype f16 --kv-heads 1 --masks full --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --op-times $J/pair_ops_f16 --json $J/pair.jsonl > $J/pair_f16.log 2>&1; echo "rc=$?"
grep -E "FAIL|panic|rror" $J/pair_bf16.log $J/pair_f16.log | head -3
summ $J/pair.jsonl "pair documents vs CPU f64 (bf16; f16 1 kv head)" | tee -a $J/summary.txt
echo "pair documents' backward kernels: $(cat $J/pair_ops/* $J/pair_ops_f16/* 2>/dev/null | grep -o 'Bwd[A-Za-z]*' | sort | uniq -c | tr -s ' \n' ' ')" | tee -a $J/summary.txt
for tool in memcheck racecheck; do
  left 150 || break
  echo "== $tool, pair documents (clusters) t=$((SECONDS-T0))s"
  timeout -k 5 100 $CS --tool $tool --print-limit 5 $DCP bench-gpu --batches $J/pair.json --head-dim 128 --masks full --planners local --warmup 0 --repeats 1 --timeout-s 90 > $J/san_pair_$tool.txt 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" $J/san_pair_$tool.txt | head -4 | sed 's/^/pair: /' | tee -a $J/summary.txt
done

# Optional A/B against another binary (BASE, e.g. the session's starting main), alternated in this
# call: D 128 sparse shapes, BASE NEW BASE NEW (the NEW runs beside the main table's).
if [ -n "${BASE:-}" ] && [ -x "${BASE:-}" ]; then
  for i in 1 2; do
    for v in base new; do
      left 200 || break
      b=$BASE; [ $v = new ] && b=$DCP
      echo "== A/B $v $i t=$((SECONDS-T0))s"
      timeout 60 $b kernel-bench --shapes causal32k,blockwise,lambda,works1000,onework,packed --head-dim 128 --repeats 3 --json $J/ab_${v}_$i.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic' | sed "s/^/$v /"
    done
  done
fi

echo "== kernel-bench sparse t=$((SECONDS-T0))s"
for D in 128 64; do
  timeout 90 $DCP kernel-bench --shapes causal32k,sharedq,blockwise,lambda,works1000,onework,packed --head-dim $D --repeats 3 --json $J/kb_sparse_d$D.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
done
echo "== kernel-bench GQA x dtype x D (causal32k) t=$((SECONDS-T0))s"
for cfg in "128 bf16 8" "128 bf16 4" "128 bf16 1" "128 f16 2" "64 bf16 8" "64 bf16 1" "64 f16 2"; do
  set -- $cfg; D=$1; dt=$2; kv=$3
  left 150 || break
  timeout 40 $DCP kernel-bench --shapes causal32k --kv-heads $kv --dtype $dt --head-dim $D --repeats 3 --json $J/kb_gqa.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic' | sed "s/^/D$D $dt kv$kv /"
done


echo "== torch reference t=$((SECONDS-T0))s"
cat $J/kb_sparse_d*.jsonl $J/kb_gqa.jsonl 2>/dev/null > $J/kb_all.jsonl
left 40 && timeout $((LIMIT - (SECONDS - T0) - 20)) python3 bench/gpu/torch_ref.py $J/kb_all.jsonl $J/torch.jsonl 2>&1 | tail -3
python3 - $J <<'PY' | tee $J/table.md
import json, os, sys
d = sys.argv[1]
def rd(n):
    p = os.path.join(d, n)
    return [json.loads(l) for l in open(p)] if os.path.exists(p) else []
def key(r):
    return (tuple(r.get("lens") or []), str(r.get("mask")).split(":")[0], r.get("heads", 8), r.get("kv_heads", 2), r.get("head_dim", 128), str(r.get("dtype", "bf16")).lower())
tor = {key(r): r for r in rd("torch.jsonl")}
f = lambda x: f"{x:.0f}" if x else "-"
print("| shape | D | dtype | kv heads | dcp fwd / bwd TFLOP/s | flash fwd / bwd | cuDNN fwd / bwd | dcp / cuDNN fwd, bwd | dcp / flash fwd, bwd |")
print("|---|---|---|---|---|---|---|---|---|")
below = []
for r in rd("kb_all.jsonl"):
    if r.get("kind") != "bench":
        continue
    t = tor.get(key(r), {})
    a, b = r["fwd_tflops_per_gpu"], r["bwd_tflops_per_gpu"]
    for way, ours, ref in (("fwd", a, t.get("cudnn_fwd_tflops")), ("bwd", b, t.get("cudnn_bwd_tflops"))):
        if ref and ours < ref:
            below.append(f"below cuDNN: {r.get('shape', r.get('mask'))} D {r.get('head_dim')} {r.get('dtype')} "
                         f"kv {r.get('kv_heads')} {way} {ours:.0f} / {ref:.0f} = {ours / ref:.2f}x")
    rc = f"{a / t['cudnn_fwd_tflops']:.2f}, {b / t['cudnn_bwd_tflops']:.2f}" if t.get("cudnn_fwd_tflops") else "-"
    rf = f"{a / t['flash_fwd_tflops']:.2f}, {b / t['flash_bwd_tflops']:.2f}" if t.get("flash_fwd_tflops") else "-"
    print(f"| {r.get('shape', r.get('mask'))} | {r.get('head_dim')} | {r.get('dtype')} | {r.get('kv_heads')} | {a:.0f} / {b:.0f} | "
          f"{f(t.get('flash_fwd_tflops'))} / {f(t.get('flash_bwd_tflops'))} | {f(t.get('cudnn_fwd_tflops'))} / {f(t.get('cudnn_bwd_tflops'))} | {rc} | {rf} |")
print()
print("\n".join(below) if below else "below cuDNN: none of the rows cuDNN ran")
PY
grep '^below cuDNN' $J/table.md >> $J/summary.txt
python3 - $J <<'PY' | tee -a $J/summary.txt
import glob, json, os, sys, statistics as st
d = sys.argv[1]
runs = {}
for p in sorted(glob.glob(os.path.join(d, "ab_*.jsonl"))):
    v = os.path.basename(p).split("_")[1]
    for l in open(p):
        r = json.loads(l)
        if r.get("kind") == "bench":
            runs.setdefault((r.get("shape"), v), []).append((r["fwd_tflops_per_gpu"], r["bwd_tflops_per_gpu"]))
for s in sorted({k[0] for k in runs}):
    b, n = runs.get((s, "base"), []), runs.get((s, "new"), [])
    if b and n:
        fb, bb = st.median(x[0] for x in b), st.median(x[1] for x in b)
        fn, bn = st.median(x[0] for x in n), st.median(x[1] for x in n)
        print(f"A/B {s}: fwd {fb:.0f} -> {fn:.0f} ({fn / fb:.3f}), bwd {bb:.0f} -> {bn:.0f} ({bn / bb:.3f})")
PY
cat $J/summary.txt
tar czf $OUT/x1.tgz -C $OUT x1 && rm -rf $J
echo "== all done t=$((SECONDS-T0))s"
