#!/usr/bin/env bash
# session 7: NCCL p2p tuning for the Ulysses all-to-alls of one causal 64K / 128K sequence on 4 GPUs
set -u
DCP=.pdev/new/dcp
source bench/gpu/env.sh
T0=$SECONDS
echo '{"batches": [[65536], [131072]]}' > /tmp/single.json
run() { # name env...
  local name=$1; shift
  rm -rf $OUT/ops_$name
  env "$@" timeout 120 $DCP launch -n 4 -- bench-gpu --batches /tmp/single.json --mask causal --planners dcp --warmup 2 --repeats 5 --json $OUT/b_$name.jsonl --op-times $OUT/ops_$name > $OUT/log_$name.txt 2>&1
  python3 - $OUT/b_$name.jsonl $OUT/ops_$name $name <<'PY'
import json, sys, glob
rs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith('{')]
comm = {}
for f in glob.glob(sys.argv[2] + '/ops_rank*.jsonl'):
    for l in open(f):
        r = json.loads(l)
        for ph in ('fwd', 'bwd'):
            c = [op['end_ms'] - op['start_ms'] for op in r[ph] if op['op'] == 'comm']
            k = (r['batch'], ph)
            comm.setdefault(k, []).append(c)
out = []
for r in rs:
    b = 0 if r['lens'][0] == 65536 else 1
    cf = max(sum(c) for c in comm.get((b, 'fwd'), [[0]])); cb = max(sum(c) for c in comm.get((b, 'bwd'), [[0]]))
    cbi = max(c[0] for c in comm.get((b, 'bwd'), [[0]]) if c)
    out.append(f"{r['lens'][0]}: fwd {r['fwd_ms']:.2f} bwd {r['bwd_ms']:.2f} (comm fwd {cf:.2f}, bwd {cb:.2f}, bwd in {cbi:.2f})")
print(f"{sys.argv[3]:8} " + " | ".join(out))
PY
  tar czf $OUT/ops_$name.tgz -C $OUT ops_$name 2>/dev/null; rm -rf $OUT/ops_$name
}
for round in 1 2; do
  echo "== round $round t=$((SECONDS-T0))"
  run base NCCL_DEBUG=WARN
  run ch16 NCCL_MIN_P2P_NCHANNELS=16 NCCL_MAX_P2P_NCHANNELS=32
  run ck2m NCCL_P2P_NVL_CHUNKSIZE=2097152
  run both NCCL_MIN_P2P_NCHANNELS=16 NCCL_MAX_P2P_NCHANNELS=32 NCCL_P2P_NVL_CHUNKSIZE=2097152
  run simple NCCL_PROTO=Simple NCCL_MIN_P2P_NCHANNELS=32 NCCL_MAX_P2P_NCHANNELS=32
done
tar czf $OUT/nccl.tgz -C $OUT $(cd $OUT && ls | grep -v nccl.tgz) && find $OUT -mindepth 1 ! -name nccl.tgz -delete
echo "== done t=$((SECONDS-T0))"
