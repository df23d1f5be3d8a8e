#!/usr/bin/env python3
# ktma10: table of kernel-bench runs R/kb_<variant>-d<D>_<run>.jsonl (in file-time order) and of
# the FWDPROF lines of R/prof_<variant>_<shape>.log (median per launch of the timed ones).
import glob, json, os, re, sys
R = sys.argv[1]
def load(p):
    try:
        return {x['shape']: x['fwd_tflops_per_gpu'] for x in (json.loads(l) for l in open(p) if l.strip())}
    except (OSError, ValueError, KeyError):
        return {}
rows = {}
for p in sorted(glob.glob(os.path.join(R, 'kb_*.jsonl')), key=os.path.getmtime):
    tag = os.path.basename(p)[3:-6]
    name, _, run = tag.rpartition('_')
    rows.setdefault(name, []).append(load(p))
def mean(name, shape):
    v = [r[shape] for r in rows.get(name, []) if shape in r]
    return sum(v) / len(v) if v else None
shapes = ['causal32k', 'causal128k', 'blockwise', 'works1000', 'onework', 'packed', 'lambda']
print('fwd TFLOP/s, mean of runs (ratio to t0 = main kernel, same head dim); runs listed below')
print(f"{'variant':<11}" + ''.join(f"{s:>17}" for s in shapes))
for name, runs in rows.items():
    b = 't0-d' + name.split('-d')[-1]
    cells = []
    for s in shapes:
        m, mb = mean(name, s), mean(b, s)
        cells.append(f"{m:7.1f} ({m / mb:.3f})" if m and mb else '-')
    print(f"{name:<11}" + ''.join(f"{c:>17}" for c in cells))
for name in rows:
    wk, ow, bw, c32 = (mean(name, s) for s in ('works1000', 'onework', 'blockwise', 'causal32k'))
    if wk and ow and bw and c32:
        print(f"{name}: works1000/onework {wk / ow:.3f}, blockwise/causal32k {bw / c32:.3f}")
print('runs:')
for name, runs in rows.items():
    print(f"  {name:<11}", ' | '.join(' '.join(f"{r[s]:.1f}" for r in runs if s in r) for s in shapes))
for p in sorted(glob.glob(os.path.join(R, 'prof_*.log'))):
    lines = [l.strip() for l in open(p, errors='replace') if l.startswith('FWDPROF')]
    print(os.path.basename(p)[5:-4], f'({len(lines)} launches; the last):')
    if lines:
        print('  ' + lines[-1])
