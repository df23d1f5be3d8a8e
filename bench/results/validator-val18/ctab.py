#!/usr/bin/env python3
"""ctab.py bin planner what event: event per function per 1000 plan instructions (2 runs), 4x8..32x8"""
import sys, subprocess, re, collections, os
b, p, w, ev = sys.argv[1:5]
INSTRS = {'ring': [7856, 31072, 123584, 492928], 'zigzag': [9344, 37120, 147968, 590848], 'usp': [5216, 19648, 76160, 299776]}
topos = ['4x8', '8x8', '16x8', '32x8']
EV = ['Ir','Dr','Dw','I1mr','D1mr','D1mw','ILmr','DLmr','DLmw']
k = EV.index(ev)
d = collections.defaultdict(lambda: [0]*4); ir = collections.defaultdict(lambda: [0]*4)
tot = [0]*4; have=[]
for i, t in enumerate(topos):
    fn = f'c_{b}_{w}_{p}_{t}_r2.out'
    if not os.path.exists(fn): continue
    have.append(i)
    out = subprocess.run(['callgrind_annotate', '--threshold=100', f'--sort={ev}', fn], capture_output=True, text=True).stdout
    for l in out.splitlines():
        m = re.match(r'\s*((?:[\d,]+|\.)(?: \(\s*[\d.]+%\))?\s+){9}(.*?)\s*\[', l)
        if m and 'PROGRAM TOTALS' not in l:
            nums = re.findall(r'([\d,]+|\.)(?: \(\s*[\d.]+%\))?\s+', l[:l.find(m.group(2))])
            vals = [0 if x == '.' else int(x.replace(',', '')) for x in nums]
            f = m.group(2).replace('???:', '').replace('dcp_core::validate::', '')
            if 'malloc.c:' in f: f = 'malloc.c:' + f.split(':')[-1]
            if 'memmove' in f or 'memcpy' in f: f = 'memcpy/memmove'
            d[f][i] += vals[k]; ir[f][i] += vals[0]
        elif 'PROGRAM TOTALS' in l:
            nums = re.findall(r'([\d,]+)(?: \(\s*[\d.]+%\))', l)
            tot[i] = int(nums[k].replace(',', ''))
I = INSTRS[p]
print(f"# {b} {w} {p}: {ev} per 1000 plan instructions (2 validations); growth = 32x8/4x8 per instr")
print(f"{'function':60s} " + ' '.join(f'{t:>7s}' for t in topos) + '  share4x8 share32x8')
print(f"{'TOTAL':60s} " + ' '.join(f'{1000*tot[i]/I[i]:7.1f}' for i in range(4)))
last = have[-1]
rows = sorted(d.items(), key=lambda kv: -kv[1][last])
for f, v in rows[:int(os.environ.get('N', 25))]:
    print(f"{f[:60]:60s} " + ' '.join(f'{1000*v[i]/I[i]:7.1f}' for i in range(4)) + f"   {100*v[0]/max(tot[0],1):6.2f}%  {100*v[last]/max(tot[last],1):6.2f}%")
