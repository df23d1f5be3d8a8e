"""Session 30: list-scheduling makespan of a backward launch of equal causal documents on 132 CTAs,
under longest first, list order, windows of W documents and a final longest-first window (tail).
Each task: one kv tile of one document and KV head, 4 steps per q tile (GQA 4) + 4 of its own.
Run: python3 makespan_model.py (prints makespan / ideal)."""
import heapq
def makespan(durs, m=132):
    h=[0]*m
    for d in durs:
        t=heapq.heappop(h); heapq.heappush(h,t+d)
    return max(h)
def tasks(ndocs, nt, causal=True, kvh=2, g=4, cost=4):
    out=[]
    for d in range(ndocs):
        for j in range(nt):
            n = nt-j if causal else nt
            for h in range(kvh): out.append((d, n*g+cost, n))
    return out
for (nd, nt, c) in [(125,16,True),(250,8,True),(62,32,True),(500,4,True),(125,16,False)]:
    T=tasks(nd,nt,c)
    lst=[t[1] for t in T]
    lpt=[t[1] for t in sorted(T,key=lambda t:-t[2])]
    ideal=sum(lst)/132
    res=[f"docs {nd} x {nt*128} causal={c}: ideal {ideal:.0f} list {makespan(lst)/ideal:.3f} lpt {makespan(lpt)/ideal:.3f}"]
    for W in (2,4,8,16):
        win=[t[1] for t in sorted(T,key=lambda t:(t[0]//W,-t[2]))]
        res.append(f"W{W} {makespan(win)/ideal:.3f}")
    print("  ".join(res))
print("tail-LPT variants")
import random
for (nd, nt, c) in [(125,16,True),(250,8,True),(62,32,True),(500,4,True)]:
    T=tasks(nd,nt,c)
    ideal=sum(t[1] for t in T)/132
    res=[f"{nd}x{nt*128}:"]
    for frac in (0, 0.05, 0.1, 0.2, 0.3):
        # last works whose steps sum to frac of total go into one LPT window
        tot=sum(t[1] for t in T); acc=0; cut=nd
        per=[0]*nd
        for t in T: per[t[0]]+=t[1]
        for d in range(nd-1,-1,-1):
            if acc+per[d] > frac*tot: break
            acc+=per[d]; cut=d
        win=[t[1] for t in sorted(T,key=lambda t:((t[0] if t[0]<cut else nd),-t[2]))]
        res.append(f"tail{frac}: {makespan(win)/ideal:.3f}")
    print("  ".join(res))
