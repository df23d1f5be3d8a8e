# src_lines.py NCU_SRC_CSV(.gz) ANN KSRC [ranges]: per-SASS samples joined with offline line info;
# prints samples by source line (top), and checks the SASS text matches.
import csv, sys, io, gzip, collections, re
fn, ann, ksrc = sys.argv[1:4]
txt = (gzip.open(fn, 'rt') if fn.endswith('.gz') else open(fn)).read()
rows = list(csv.reader(io.StringIO(txt[txt.find('"Address"'):])))
hdr = rows[0]; ix = {h: i for i, h in enumerate(hdr)}
st_cols = [h for h in hdr if h.startswith('stall_') and 'Not Issued' not in h]
A = {}
for l in open(ann):
    a, ln, ins = l.split(' ', 2)
    A[int(a, 16)] = (int(ln) if ln != 'None' else 0, ins.strip())
src = open(ksrc).read().splitlines()
base = None; tot = 0; mism = 0; n = 0
byline = collections.Counter(); stl = collections.defaultdict(collections.Counter); exl = collections.Counter()
rowsout = []
for r in rows[1:]:
    if len(r) < len(hdr): continue
    try: a = int(r[ix['Address']], 16)
    except ValueError: continue
    if base is None: base = a
    off = a - base
    s = int(r[ix['Warp Stall Sampling (All Samples)']] or 0); tot += s
    ex = int(r[ix['Instructions Executed']] or 0)
    ln, ins = A.get(off, (0, '?'))
    n += 1
    if ins.split()[0].lstrip('@!P0123456789TU') and r[ix['Source']].strip().split()[0] not in ins: mism += 1
    byline[ln] += s; exl[ln] += ex
    for c in st_cols: stl[ln][c[6:]] += int(r[ix[c]] or 0)
    rowsout.append((off, s, ex, ln, r[ix['Source']].strip()))
print('total samples', tot, 'instructions', n, 'opcode mismatches vs offline', mism)
for ln, s in byline.most_common(int(sys.argv[4]) if len(sys.argv) > 4 else 40):
    top = ' '.join(f'{k}:{v}' for k, v in stl[ln].most_common(3) if v)
    print(f'{s:7d} {s / tot * 100:5.1f}% ex={exl[ln]:9d} L{ln:5d} {src[ln - 1].strip()[:80] if ln else "":80s} | {top}')
