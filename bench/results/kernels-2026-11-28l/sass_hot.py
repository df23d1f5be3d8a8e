#!/usr/bin/env python3
# kd128: SASS instructions of the sm90 backward consumer step (loop from the full-barrier wait to the back edge,
# minus the partial-tile range-mask block and the 16-bit dQ path). usage: sass_hot.py FILE.sass (nvrtc_sass.py output)
import re,sys,collections
f=sys.argv[1]
ins=[]
for l in open(f):
    m=re.match(r'\s+/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;',l)
    if m: ins.append((int(m.group(1),16),m.group(2).strip()))
addr=[a for a,_ in ins]
# loop head: first full-barrier wait of the consumer (offset 0x31120 TRYWAIT); back edge: BRA to before it
head=[a for a,s in ins if 'TRYWAIT' in s and '0x31120' in s][0]
back=[a for a,s in ins if re.search(r'BRA 0x([0-9a-f]+)$',s) and int(re.search(r'BRA 0x([0-9a-f]+)$',s).group(1),16)<=head and a>head][0]
# cold 1: partial-mask block: first conditional BRA after the 16th HGMMA of the loop, skipping forward
seg=[(a,s) for a,s in ins if head<=a<=back]
h=[a for a,s in seg if 'HGMMA' in s]
a16=h[15]
b1=[(a,s) for a,s in seg if a>a16 and 'BRA' in s][0]
t1=int(b1[1].split('0x')[-1],16)
# cold 2: 16-bit dQ path: from the conditional BRA whose target is just before the first named BAR.SYNC R.., to that target
bar=[a for a,s in seg if s.startswith('BAR.SYNC') and ' R' in s][0]
cands=[(a,s) for a,s in seg if 'BRA' in s and a<bar and t1<a and int(s.split('0x')[-1],16)<=bar and int(s.split('0x')[-1],16)>a+0x400]
b2=cands[0]; t2=int(b2[1].split('0x')[-1],16)
hot=[(a,s) for a,s in seg if not (b1[0]<a<t1) and not (b2[0]<a<t2) and not s.startswith('@!PT')]
c=collections.Counter(re.sub(r'^@!?U?P[T0-9] ','',s).split()[0].split('.')[0] for _,s in hot)
print(f, hex(head),hex(back),'cold',hex(b1[0]),hex(t1),hex(b2[0]),hex(t2),'HOT',len(hot))
print(sorted(c.items(),key=lambda x:-x[1])[:28])
