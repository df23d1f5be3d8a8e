#!/usr/bin/env python3
# kbb14: share of backward half steps (one 64-key half of a 128-key kv tile unseen by every row of a 64-row q tile) for one 32K sequence.

def share(rows_fn, n):
    # rows_fn(r) -> list of (s,e); vectorised per half-tile of 64 keys: seen[qt, kh]
    nq=(n+63)//64; nk=(n+63)//64
    seen=[[False]*nk for _ in range(nq)]
    for r in range(n):
        for s,e in rows_fn(r):
            
            if s<e:
                for k in range(s//64,(e-1)//64+1): seen[r//64][k]=True
    tot=0;half=0
    for qt in range(nq):
        for kt in range((n+127)//128):
            a=seen[qt][2*kt]; b=seen[qt][2*kt+1] if 2*kt+1<nk else False
            if a or b:
                tot+=1
                if a!=b: half+=1
    return half,tot,half/tot
n=32768
def bw(r):
    if r<769 or r>=32512: return [(0,r+1)]
    return [(0,256),(r-512,r+1)]
print('blockwise',share(bw,n))
print('causal',share(lambda r:[(0,r+1)],n))
def lam(r):
    s=max(0,r-4096+1)
    return [(0,min(64,s)),(s,r+1)] if s>64 else [(0,r+1)]
print('lambda',share(lam,n))
