import csv, sys, io
fn = sys.argv[1]
txt = open(fn).read()
rows = list(csv.reader(io.StringIO(txt[txt.find('"Address"'):])))
hdr = rows[0]; body = rows[1:]
ix = {h: i for i, h in enumerate(hdr)}
st_cols = [h for h in hdr if h.startswith('stall_') and 'Not Issued' not in h]
out = []
tot = 0
base = None
for r in body:
    if len(r) < len(hdr): continue
    try: a = int(r[ix['Address']], 16)
    except: continue
    if base is None: base = a
    s = int(r[ix['Warp Stall Sampling (All Samples)']] or 0)
    ex = int(r[ix['Instructions Executed']] or 0)
    tot += s
    st = sorted(((int(r[ix[c]] or 0), c[6:]) for c in st_cols), reverse=True)
    st = ' '.join(f'{n}:{v}' for v, n in st[:3] if v > 0)
    out.append((a - base, s, ex, r[ix['Source']].strip(), st, r[ix['L1 Wavefronts Shared']], r[ix['L1 Wavefronts Shared Ideal']]))
print('total samples', tot, 'instructions', len(out))
for o in out:
    print(f'{o[0]:6x} {o[1]:6d} {o[1]/tot*100:5.2f}% ex={o[2]:9d} wf={o[5]}/{o[6]} | {o[3][:70]:70s} | {o[4]}')
