#!/usr/bin/env python3
# kfwd: SASS instructions of one sm90 forward consumer step (full tile) along the executed path.
# usage: fwd_hot.py FILE.sass [ADDR=T|F ...]  (conditional branches: not taken unless listed T;
# prints every conditional branch met so the path can be chosen; retry branches after TRYWAIT are not taken)
import re, sys, collections
f = sys.argv[1]
dec = {int(a.split('=')[0], 16): a.split('=')[1] == 'T' for a in sys.argv[2:]}
ins = []
for l in open(f):
    m = re.match(r'\s+/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;', l)
    if m: ins.append((int(m.group(1), 16), m.group(2).strip()))
idx = {a: i for i, (a, _) in enumerate(ins)}
alloc = [i for i, (a, s) in enumerate(ins) if 'TRY_ALLOC' in s][0]
tw = [(i, int(re.search(r'\+0x([0-9a-f]+)\]', s).group(1), 16)) for i, (a, s) in enumerate(ins) if i > alloc and 'TRYWAIT' in s]
wait = min(tw, key=lambda x: x[1])[0]
# the step loop: the back edge is the first branch after the full-barrier wait jumping back before it
back = [j for j in range(wait, len(ins)) if re.search(r'BRA (0x[0-9a-f]+)$', ins[j][1]) and int(re.search(r'BRA (0x[0-9a-f]+)$', ins[j][1]).group(1), 16) <= ins[wait][0]][0]
head = idx[int(re.search(r'BRA (0x[0-9a-f]+)$', ins[back][1]).group(1), 16)]
i = head; path = []; seen = 0
while True:
    a, s = ins[i]
    path.append(s)
    m = re.match(r'^(@!?U?P[T0-9]+ )?BRA (0x[0-9a-f]+)$', s)
    if m:
        t = int(m.group(2), 16)
        if m.group(1) is None: i = idx[t]
        else:
            prev = ins[i - 1][1] if 'TRYWAIT' in ins[i - 1][1] else ''
            pv = ins[i - 1][1]
            auto = None
            if 'VOTE.ANY' in pv: auto = s.startswith('@!')   # lazy rescale: skipped when no row grew
            if any(re.search(r'ISETP.GT.AND P\d, PT, R\d+, -0x1', ins[i - k][1]) for k in (1, 2)): auto = True  # full tile (word >> 31 == 0)
            blk = [x for _, x in ins[i + 1:idx[t]]] if t > a else []
            if sum('FMUL' in x for x in blk) >= 32 and not any('HGMMA' in x for x in blk): auto = True  # lazy: rescale of O skipped
            tk = dec.get(a, auto if auto is not None else False) if not prev else False
            if not prev: print(f'  branch {a:#x} {s} -> {"T" if tk else "F"}   after: {ins[i-1][1][:60]}')
            i = idx[t] if tk else i + 1
    else: i += 1
    if i == back:
        path.append(ins[back][1]); break
    if i == head or len(path) > 5000: break
hot = [s for s in path if not s.startswith('@!PT')]
c = collections.Counter(re.sub(r'^@!?U?P[T0-9]+ ', '', s).split()[0].split('.')[0] for s in hot)
u = sum(v for k, v in c.items() if k.startswith('U') or k == 'R2UR')
print(f, 'loop', hex(ins[head][0]), hex(ins[back][0]), 'STEP', len(hot), 'uniform+R2UR', u)
print(sorted(c.items(), key=lambda x: -x[1]))
