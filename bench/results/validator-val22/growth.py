import subprocess, re, collections
files = {'8x8': ('c_base_val_ring_8x8.out', 2*31072), '32x8': ('c_base_val_ring_32x8.out', 2*492928), '32x8 seq': ('c_base_valseq_ring_32x8.out', 2*492928)}
ev = ['Ir', 'D1mr', 'DLmr', 'DLmw']
data = {}; tot = {}
for k, (f, n) in files.items():
    out = subprocess.run(['callgrind_annotate', '--threshold=100', '--show=' + ','.join(ev), f], capture_output=True, text=True).stdout
    d = collections.defaultdict(lambda: [0]*4)
    for l in out.splitlines():
        m = re.match(r'\s*((?:[\d,.]+ (?:\(\s*[\d.]+%\))?\s+){4})(.*?)(\s+\[.*\])?$', l)
        if not m: continue
        nums = re.findall(r'([\d,]+|\.)(?: \(\s*[\d.]+%\))?', m.group(1))
        vals = [0 if x == '.' else int(x.replace(',', '')) for x in nums[:4]]
        name = m.group(2).split(':', 1)[-1] if not m.group(2).startswith('PROGRAM') else 'TOTAL'
        name = name.replace('dcp_core::validate::', '')
        for i in range(4): d[name][i] += vals[i]
    data[k] = {nm: [x / n for x in v] for nm, v in d.items()}
names = sorted(data['32x8'], key=lambda nm: -data['32x8'][nm][0])[:22]
print("# ring, validation (run-ahead, and sequential at 32x8), per plan instruction: Ir / D1mr / DLmr (callgrind, D1 48K, LL 2M)")
print(f"{'function':60s} | {'8x8 Ir':>7s} {'D1mr':>5s} {'DLmr':>5s} | {'32x8 Ir':>7s} {'D1mr':>5s} {'DLmr':>5s} | {'seq Ir':>7s} {'D1mr':>5s} {'DLmr':>5s}")
for nm in names:
    row = []
    for k in files:
        v = data[k].get(nm, [0]*4)
        row.append(f"{v[0]:7.1f} {v[1]:5.2f} {v[2]:5.2f}")
    print(f"{nm[:60]:60s} | " + ' | '.join(row))
