#!/usr/bin/env python3
"""tab.py bin planner what [inclusive]: self (or inclusive) Ir per function per plan instruction, 4x8..32x8"""
import sys, subprocess, re, collections
b, p, w = sys.argv[1:4]
incl = len(sys.argv) > 4
INSTRS = {'ring': [7856, 31072, 123584, 492928], 'zigzag': [9344, 37120, 147968, 590848], 'usp': [5216, 19648, 76160, 299776]}
topos = ['4x8', '8x8', '16x8', '32x8']
d = collections.defaultdict(lambda: [0]*4)
tot = [0]*4
for i, t in enumerate(topos):
    args = ['callgrind_annotate', '--threshold=100'] + (['--inclusive=yes'] if incl else []) + [f'{b}_{w}_{p}_{t}_r1.out']
    out = subprocess.run(args, capture_output=True, text=True).stdout
    for l in out.splitlines():
        m = re.match(r'\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*?)\s*\[', l)
        if m:
            n = int(m.group(1).replace(',', '')); f = m.group(2)
            f = re.sub(r'^.*?:(?=[^:/]*(::|$))', '', f, count=0) if f.startswith('???:') else f
            f = f.replace('???:', '').replace('dcp_core::validate::', '')
            if 'malloc.c:' in f: f = 'malloc.c:' + f.split(':')[-1]
            d[f][i] += n
        m = re.match(r'\s*([\d,]+) \(100.0%\)\s+PROGRAM TOTALS', l)
        if m: tot[i] = int(m.group(1).replace(',', ''))
I = INSTRS[p]
print(f"# {b} {w} {p}: {'inclusive' if incl else 'self'} Ir per plan instruction; share of total; growth = 32x8/4x8 per instr")
print(f"{'function':70s} " + ' '.join(f'{t:>7s}' for t in topos) + '   share4x8 share32x8  growth')
print(f"{'TOTAL':70s} " + ' '.join(f'{tot[i]/I[i]:7.1f}' for i in range(4)))
rows = sorted(d.items(), key=lambda kv: -kv[1][3])
for f, v in rows[:45]:
    g = (v[3]/I[3]) / (v[0]/I[0]) if v[0] else float('inf')
    print(f"{f[:70]:70s} " + ' '.join(f'{v[i]/I[i]:7.1f}' for i in range(4)) + f"   {100*v[0]/tot[0]:6.2f}%  {100*v[3]/tot[3]:6.2f}%  {g:6.2f}")
