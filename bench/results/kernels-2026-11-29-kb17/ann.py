import re, sys
# ann.py NVD -> prints addr line insn
cur = None
for l in open(sys.argv[1]):
    m = re.search(r'line (\d+)', l)
    if l.strip().startswith('//## File'):
        cur = int(m.group(1)); continue
    m = re.match(r'\s+/\*([0-9a-f]+)\*/\s+(.*?);', l)
    if m: print(m.group(1), cur, m.group(2).strip())
