import json, sys, collections
meas={}
for l in open("bench/results/gpu-x4-2026-11-28s5/matrix/x4_matrix.jsonl"):
    r=json.loads(l)
    if r.get("kind")!="bench": continue
    meas[(r["mask"],r["batch"],r["planner"],r["block_size"])]=r
def t(r): return r["fwd_ms"]+r["bwd_ms"]
simdir=sys.argv[1]
stat=collections.Counter()
for m in ["causal","lambda","shared-question"]:
    for l in open(f"{simdir}/sim_{m}.jsonl"):
        s=json.loads(l)
        if s["planner"]!="dcp": continue
        b,bs=s["batch"],s["block_size"]
        md=meas.get((m,b,"dcp",bs))
        if not md: continue
        kind=s["plan_kind"]  # e.g. dcp, dcp:ulysses
        cand = kind.split(":")[1] if ":" in kind else "dcp-only"
        cands={}
        for c in ["ring","zigzag","ulysses","usp","local"]:
            r=meas.get((m,b,c,1024))
            if r and (c!="local" or r.get("compute_imbalance",9)<=1.10): cands[c]=t(r)
        if bs==1024 and (m,b,"dcp-only",1024) in meas: cands["dcp-only"]=t(meas[(m,b,"dcp-only",1024)])
        if cand=="dcp-only" and bs!=1024: continue
        if cand not in cands: stat["unknown"]+=1; continue
        best=min(cands.values())
        old=md.get("candidate") or "dcp-only"
        stat[m+" n"]+=1
        stat[m+" new hit"]+= cands[cand]<=best*1.03
        stat[m+" old hit"]+= (cands.get(old, t(md)))<=best*1.03
        stat[m+" new/old ms sum"]+=0
        stat[m+" new_sum"]+=cands[cand]; stat[m+" old_sum"]+=cands.get(old,t(md))
for k in sorted(stat): print(k, round(stat[k],2))
