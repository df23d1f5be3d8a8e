import sys, re, subprocess, collections
p = sys.argv[1]
# perf: leaf (non-inlined) symbol among samples under validate_paths
cnt = collections.Counter(); tot = 0; frames = []
def flush():
    global tot
    if frames and any('validate::validate_paths' in f for f in frames):
        tot += 1
        leaf = next((f for f in frames if '(inlined)' not in f), frames[0])
        m = re.match(r'\s*[0-9a-f]+\s+(.*?)(\+0x[0-9a-f]+)?\s+\(', leaf)
        cnt[(m.group(1) if m else leaf.strip())] += 1
for line in open(f'perfd2_{p}.script', errors='replace'):
    if line[:1] in '\t ' and line.strip():
        frames.append(line.rstrip())
    else:
        flush(); frames.clear()
flush()
out = subprocess.run(['callgrind_annotate', '--threshold=100', f'd_val_{p}_16x8.out'], capture_output=True, text=True).stdout
ir = collections.Counter(); itot = 0
for l in out.splitlines():
    m = re.match(r'\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*?)(\s+\[.*\])?$', l)
    if not m: continue
    n = int(m.group(1).replace(',', '')); f = m.group(2)
    if 'PROGRAM TOTALS' in f: itot = n; continue
    f = f.split(':', 1)[1] if ':' in f and (f.startswith('/') or f.startswith('.') or f.startswith('?')) else f
    ir[f] += n
def norm(s):
    s = s.replace('__memcpy_avx_unaligned_erms', 'MEMCPY').replace('__memmove_avx512_unaligned_erms', 'MEMCPY')
    s = re.sub(r'^(cfree@GLIBC_2.2.5|free)$', '_free', s)
    return s
pt = collections.Counter(); it = collections.Counter()
for k, v in cnt.items(): pt[norm(k)] += v
for k, v in ir.items(): it[norm(k)] += v
print(f"# {p} 16x8 validation: perf samples {tot} (cpu-clock, leaf function), callgrind Ir {itot}")
print(f"{'function':75s} {'time %':>7s} {'Ir %':>7s} {'time/Ir':>7s}")
keys = sorted(set(pt) | set(it), key=lambda k: -pt[k])
for k in keys[:30]:
    ts = 100 * pt[k] / tot; iss = 100 * it[k] / itot
    print(f"{k[:75]:75s} {ts:7.2f} {iss:7.2f} {ts/iss if iss > 0.05 else float('nan'):7.2f}")
