# var.py BASE.sass VARIANT.sass ...: the plain kernel's step loop (instruction 1800 to the first backward branch
# after the first MUFU.EX2) as opcodes without register numbers, against BASE's (difflib); kb17.
import sys, re, difflib, subprocess
def ops_from_sass(f):
    out = []
    for l in open(f):
        if ';' not in l: continue
        m = re.match(r'\s+/\*([0-9a-f]+)\*/\s+(.*?);', l)
        if not m: continue
        ins = m.group(2).strip()
        op = re.sub(r'UR\d+', 'UR', ins); op = re.sub(r'R\d+', 'R', op); op = re.sub(r'P\d', 'P', op); op = re.sub(r'B\d', 'B', op)
        op = re.sub(r'\.L_x_\d+', 'L', op); op = re.sub(r'0x[0-9a-f]+', 'X', op)
        out.append((int(m.group(1), 16), op, ins))
    return out
def back_edge(o):
    fe = next(i for i, x in enumerate(o) if 'MUFU.EX2' in x[1])
    for i in range(fe, len(o)):
        m = re.search(r'BRA\s+(?:`\()?0x([0-9a-f]+)', o[i][2])
        if m and int(m.group(1), 16) < o[i][0]:
            return i
base = ops_from_sass(sys.argv[1])
for f in sys.argv[2:]:
    o = ops_from_sass(f)
    b0, b1 = 1800, 3193; n0, n1 = 1800, None
    # region: from index 1800 (inside the step loop, before the elementwise block) to the back edge index in each
    be = back_edge(base); ne = back_edge(o)
    A = [x[1] for x in base[1800:be + 1]]; B = [x[1] for x in o[1800:ne + 1]]
    sm = difflib.SequenceMatcher(None, A, B, autojunk=False)
    nd = sum(max(i2 - i1, j2 - j1) for t, i1, i2, j1, j2 in sm.get_opcodes() if t != 'equal')
    print(f, 'loop part', len(A), len(B), 'differing ops', nd, 'identical' if A == B else '')
