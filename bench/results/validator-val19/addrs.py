#!/usr/bin/env python3
"""addrs.py cg.out fnsubstr ninstr: self Ir per address of one function (--dump-instr=yes), attributed via addr2line -i
to the innermost frame in the workspace; prints per workspace line Ir per plan instruction with the library callee chain"""
import sys, re, subprocess, collections
out, fns, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
binf = None
names = {}; cur = None; addr = 0; skip = False; cost = collections.Counter()
for l in open(out):
    l = l.rstrip('\n')
    if l.startswith('cmd:'): binf = l.split()[1]
    m = re.match(r'c?fn=\((\d+)\)(?: (.*))?', l)
    if m:
        if m.group(2): names[m.group(1)] = m.group(2)
        if l.startswith('fn='): cur = names.get(m.group(1), '')
        continue
    if l.startswith('calls='):
        skip = True; continue
    if not l or not (l[0] in '+-*0'):
        continue
    parts = l.split()
    a = parts[0]
    if a.startswith('0x'): addr = int(a, 16)
    elif a.startswith('+'): addr += int(a[1:])
    elif a.startswith('-'): addr -= int(a[1:])
    if skip:
        skip = False; continue
    if cur and cur.endswith(fns) and len(parts) >= 3:
        cost[addr] += int(parts[2])
tot = sum(cost.values())
addrs = sorted(cost)
res = subprocess.run(['addr2line', '-i', '-f', '-C', '-e', binf] + [hex(a) for a in addrs], capture_output=True, text=True).stdout
# addr2line -i output: per address a variable number of (func, file:line) pairs; separate with a marker query
res = subprocess.run(['addr2line', '-a', '-i', '-f', '-C', '-e', binf] + [hex(a) for a in addrs], capture_output=True, text=True).stdout.splitlines()
frames = {}; i = 0; a = None
while i < len(res):
    if res[i].startswith('0x'):
        a = int(res[i], 16); frames[a] = []; i += 1; continue
    frames[a].append((res[i], res[i+1])); i += 2
byline = collections.Counter(); chain = collections.defaultdict(collections.Counter)
for a, c in cost.items():
    fr = frames.get(a, [])
    lib = []
    key = '?'
    for f, loc in fr:
        if '/work/' in loc:
            key = loc.split('/src/')[-1]; break
        lib.append(f.split('<')[0])
    byline[key] += c
    chain[key]['/'.join(lib[:2]) or '-'] += c
print(f'total {tot/n:.1f} per plan instr')
for k, c in byline.most_common(60):
    top = ', '.join(f'{x} {v/n:.1f}' for x, v in chain[k].most_common(3))
    print(f'{c/n:6.1f}  {k:32s} {top}')
