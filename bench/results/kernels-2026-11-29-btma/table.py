#!/usr/bin/env python3
# kbtma10: table of kernel-bench runs R/kb_<variant>-d<D>_<run>.jsonl (run order): backward
# TFLOP/s (mean of runs, ratio to `base` of the same head dim), the forward as a noise control.
import glob, json, os, sys
R = sys.argv[1]
def load(p):
    try:
        return {x['shape']: (x['bwd_tflops_per_gpu'], x['fwd_tflops_per_gpu'])
                for x in (json.loads(l) for l in open(p) if l.strip())}
    except (OSError, ValueError, KeyError):
        return {}
rows = {}
def run_no(p):
    return int(os.path.basename(p)[:-6].rpartition('_')[2])
for p in sorted(glob.glob(os.path.join(R, 'kb_*.jsonl')), key=run_no):
    name = os.path.basename(p)[3:-6].rpartition('_')[0]
    rows.setdefault(name, []).append(load(p))
def mean(name, shape, k):
    v = [r[shape][k] for r in rows.get(name, []) if shape in r]
    return sum(v) / len(v) if v else None
shapes = ['causal32k', 'causal128k', 'blockwise', 'works1000', 'onework', 'packed', 'lambda']
for k, what in ((0, 'bwd'), (1, 'fwd (control: forward kernel identical in all variants)')):
    print(f'{what} TFLOP/s, mean of runs (ratio to base, same head dim)')
    print(f"{'variant':<10}{'runs':>5}" + ''.join(f"{s:>17}" for s in shapes))
    for name, runs in rows.items():
        b = 'base-d' + name.split('-d')[-1]
        cells = []
        for s in shapes:
            m, mb = mean(name, s, k), mean(b, s, k)
            cells.append(f"{m:7.1f} ({m / mb:.3f})" if m and mb else '-')
        print(f"{name:<10}{len(runs):>5}" + ''.join(f"{c:>17}" for c in cells))
for name in rows:
    wk, ow, bw, c32 = (mean(name, s, 0) for s in ('works1000', 'onework', 'blockwise', 'causal32k'))
    if wk and ow and bw and c32:
        print(f"{name}: bwd works1000/onework {wk / ow:.3f} (time {ow / wk:.2f}x), blockwise/causal32k {bw / c32:.3f}")
print('bwd runs:')
for name, runs in rows.items():
    print(f"  {name:<10}", ' | '.join(' '.join(f"{r[s][0]:.1f}" for r in runs if s in r) for s in shapes))
