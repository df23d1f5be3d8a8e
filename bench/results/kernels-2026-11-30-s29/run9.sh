#!/usr/bin/env bash
# s29 call 9 (1x H200; the 2-GPU kind was not lent): timeout 200 bash .s29/run9.sh
# The final tree (c76b900's release build, .s29/dcp5.gz: FWD_LATEREL 3 in the short kernel, 4:4
# stages at D 64) on 1 GPU: the random selftest (every mask kind, D 64 and 128, odd lengths) plus
# the corpus against the CPU f64 reference, world 1; then the same at D 64 alone on packed short
# documents (100 documents of 100-700 tokens), every planner, checked.
set -u
OUTD=${OUT:-/tmp/s29_out}
R=/tmp/s29c9b; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
timeout 10 nvidia-smi --query-gpu=name,driver_version --format=csv | tee "$R/card.txt"
D=$R/dcp; gunzip -c .s29/dcp5.gz > $D && chmod +x $D
timeout 150 $D bench-gpu --selftest 16 --corpus testdata/ --planners local,zigzag,dcp,ulysses \
  --timeout-s 140 --json "$R/st.jsonl" > "$R/st.log" 2>&1; echo "selftest rc=$?"
python3 -c "
import json, random
r = random.Random(29)
json.dump({'batches': [[r.randint(100, 700) for _ in range(100)]]}, open('$R/short.json', 'w'))"
timeout 60 $D bench-gpu --batches "$R/short.json" --head-dim 64 --masks causal,full \
  --planners local,zigzag,dcp --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 50 --json "$R/short.jsonl" > "$R/short.log" 2>&1; echo "short rc=$?"
python3 - "$R" <<'PY' | tee "$R/table.txt"
import json, sys
R = sys.argv[1]
for f, name in (("st.jsonl", "selftest + corpus, world 1"), ("short.jsonl", "D 64 short documents, world 1")):
    try:
        rows = [json.loads(l) for l in open(f"{R}/{f}") if l.strip()]
    except OSError:
        rows = []
    rows = [x for x in rows if "check" in x]
    c = [x.get("check") or {} for x in rows]
    w = lambda k: max([x.get(k, 0) or 0 for x in c] + [0])
    print(f"{name}: {sum(1 for x in c if x.get('pass'))} / {len(c)} pass, worst o {w('o'):.1e} dq {w('dq'):.1e} dkv {w('dkv'):.1e}")
PY
cd /tmp && tar czf "$OUTD/s29c9b.tgz" --exclude=s29c9b/dcp s29c9b
