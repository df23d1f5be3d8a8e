# usage: summ.py rows.txt bin1 bin2 ... : medians over runs of each binary's per-run medians;
# rows of 5 fields (wall only) or 7 (wall, then thread CPU: plan, validate).
import sys, statistics as st, collections
rows=collections.defaultdict(lambda: ([],[],[],[]))
for l in open(sys.argv[1]):
    f=l.split()
    b,p,bt,pl,v=f[:5]; r=rows[(p,bt,b)]; r[0].append(float(pl)); r[1].append(float(v))
    if len(f)==7 and f[5]!='0.000': r[2].append(float(f[5])); r[3].append(float(f[6]))
bins=sorted({k[2] for k in rows}, key=lambda x: sys.argv[2:].index(x) if x in sys.argv[2:] else 9)
cpu=all(rows[k][2] for k in rows)
print("| planner | batch | " + " | ".join(f"{b} plan | {b} validate | {b} ÷" + (f" | {b} CPU ÷" if cpu else "") for b in bins) + (" | validate change |" if len(bins)>1 else " |"))
base=bins[0]
for (p,bt) in sorted({(k[0],k[1]) for k in rows}, key=lambda x:(["ring","zigzag","usp","dcp"].index(x[0]),x[1])):
    cells=[]
    for b in bins:
        pl,v,pc,vc=rows[(p,bt,b)]; mp,mv=st.median(pl),st.median(v)
        cells.append(f"{mp:.3f} | {mv:.3f} | {mv/mp:.2f}" + (f" | {st.median(vc)/st.median(pc):.2f}" if cpu else ""))
    ch=""
    if len(bins)>1:
        v0=st.median(rows[(p,bt,base)][1]); v1=st.median(rows[(p,bt,bins[-1])][1]); ch=f" | {100*(v1/v0-1):+.1f} %"
    print(f"| {p} | {bt} | "+" | ".join(cells)+ch+" |")
