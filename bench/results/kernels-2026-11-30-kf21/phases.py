import array, statistics, sys
MAXT, NS, NCTA = 192, 80, 132
def load(f):
    r = array.array("I"); r.frombytes(open(f,'rb').read()); return r
def d(a, b):
    x = (b - a) & 0xffffffff
    return x - (1 << 32) if x >= (1 << 31) else x
names = [("Q wait",0,1),("setup",1,4),("KV wait j0",4,5),("S j0",5,6),("smax1 j0",6,7),("smax2 j0",7,8),("PV wait j0",8,9),("gap j0-j1",9,10),("KV wait j1",10,11),("S j1",11,12),("smax1 j1",12,13),("smax2 j1",13,14),("PV wait j1",14,15),("tail",15,56)]
res = {}
for f in sys.argv[1:]:
    raw = load(f)
    acc = {n: [] for n,_,_ in names}; acc["epilogue (56 -> next 0)"] = []; acc["task"] = []
    for b in range(NCTA):
        for tq in range(MAXT - 1):
            for r in (1, 2):
                o = ((b * MAXT + tq) * 3 + r) * NS
                c = raw[o:o+NS]
                if c[0] == 0 or (c[2] & 0xffff) != 2 or c[56] == 0: continue
                o2 = ((b * MAXT + tq + 1) * 3 + r) * NS
                n0 = raw[o2]
                for nm, a, bb in names:
                    if c[a] and c[bb]: acc[nm].append(d(c[a], c[bb]))
                if n0:
                    acc["epilogue (56 -> next 0)"].append(d(c[56], n0)); acc["task"].append(d(c[0], n0))
    res[f] = {k: statistics.median(v) if v else float('nan') for k, v in acc.items()}
keys = list(next(iter(res.values())).keys())
print("%-26s" % "phase (median clk)" + "".join("%10s" % f.split("/")[-1].split(".")[0][:9] for f in res))
for k in keys:
    print("%-26s" % k + "".join("%10.0f" % res[f][k] for f in res))
