import sys, statistics as st, collections
rows=collections.defaultdict(lambda: ([],[]))
for l in open(sys.argv[1]):
    b,p,bt,pl,v=l.split(); rows[(p,bt,b)][0].append(float(pl)); rows[(p,bt,b)][1].append(float(v))
bins=sorted({k[2] for k in rows}, key=lambda x: sys.argv[2:].index(x) if x in sys.argv[2:] else 9)
print("| planner | batch | " + " | ".join(f"{b} plan | {b} validate | {b} ÷ | {b} ÷ base plan" for b in bins) + " |")
base=bins[0]
for (p,bt) in sorted({(k[0],k[1]) for k in rows}, key=lambda x:(["ring","zigzag","usp","dcp"].index(x[0]),x[1])):
    bp=st.median(rows[(p,bt,base)][0])
    cells=[]
    for b in bins:
        pl,v=rows[(p,bt,b)]; mp,mv=st.median(pl),st.median(v)
        cells.append(f"{mp:.3f} | {mv:.3f} | {mv/mp:.2f} | {mv/bp:.2f}")
    print(f"| {p} | {bt} | "+" | ".join(cells)+" |")
