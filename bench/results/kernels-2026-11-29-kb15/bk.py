import csv, sys, io, collections
fn = sys.argv[1]; bounds = [int(x, 16) for x in sys.argv[2].split(',')]; names = sys.argv[3].split(',')
txt = open(fn).read()
rows = list(csv.reader(io.StringIO(txt[txt.find('"Address"'):])))
hdr = rows[0]; ix = {h: i for i, h in enumerate(hdr)}
st_cols = [h for h in hdr if h.startswith('stall_') and 'Not Issued' not in h]
base = None; tot = 0
B = collections.defaultdict(lambda: collections.Counter()); S = collections.Counter(); I = collections.Counter()
for r in rows[1:]:
    if len(r) < len(hdr): continue
    try: a = int(r[ix['Address']], 16)
    except: continue
    if base is None: base = a
    a -= base
    s = int(r[ix['Warp Stall Sampling (All Samples)']] or 0); tot += s
    k = sum(1 for b in bounds if a >= b)
    S[k] += s; I[k] += int(r[ix['Instructions Executed']] or 0)
    for c in st_cols: B[k][c[6:]] += int(r[ix[c]] or 0)
print('total', tot)
for k in sorted(S):
    nm = names[k] if k < len(names) else str(k)
    top = ' '.join(f'{n}:{v/tot*100:.1f}' for n, v in B[k].most_common(4) if v)
    print(f'{nm:14s} {S[k]:7d} {S[k]/tot*100:5.1f}%  inst={I[k]:10d} | {top}')
