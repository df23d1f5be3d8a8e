#!/usr/bin/env python3
"""perline.py ann.txt file_suffix ninstr [min]: per-line Ir per plan instruction of one source file's auto-annotation"""
import sys, re
ann, suf, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
mn = float(sys.argv[4]) if len(sys.argv) > 4 else 0.5
on = False; tot = 0.0; ln = None
for l in open(ann):
    if l.startswith('-- Auto-annotated source:'):
        on = l.strip().endswith(suf); continue
    if not on: continue
    m = re.match(r'-- line (\d+)', l)
    if m: ln = int(m.group(1)); continue
    m = re.match(r'\s*([\d,]+) (.*)$', l)
    if m and ln is not None:
        v = int(m.group(1).replace(',', '')) / n; tot += v
        if v >= mn: print(f'{v:7.1f} {ln:5d} {m.group(2)[:110]}')
    if ln is not None and not l.startswith('--'):
        ln += 1
print(f'total {tot:.1f}')
