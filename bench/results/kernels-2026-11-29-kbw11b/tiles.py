#!/usr/bin/env python3
"""kbw11b: tile accounting of the sm90 backward (K-outer: a task = one 128-key kv tile x one KV head,
its steps = 64-row q tiles x the 4 query heads of the group) for one sequence, and a list-scheduling
model of the persistent grid (132 CTAs claim tasks in list order as they finish).

    tiles.py [L] [MASK]   MASK: blockwise (causal-blockwise 256:2, kernel-bench's) or causal
Mirrors exec.rs attn_bwd: chunk = max(8, ceil(sum(list len x kv heads) / (4 x SMs))), lists
longer than chunk split into pieces of chunk (their dK/dV added atomically, the work's dKV then
not owned: fill + converting copy stay).
"""
import sys
L = int(sys.argv[1]) if len(sys.argv) > 1 else 32768
MASK = sys.argv[2] if len(sys.argv) > 2 else "blockwise"
BR, BC, SMS, KVH, GROUP = 64, 128, 132, 2, 4
B, K = 256, 2

def rng(i):
    """key ranges of row i"""
    if MASK == "causal":
        return [(0, i + 1)]
    if MASK == "full":
        return [(0, L)]
    if MASK == "lambda":  # 64 sink + 4096 window
        return [(0, i + 1)] if i < 64 + 4096 else [(0, 64), (i - 4095, i + 1)]
    if MASK == "sharedq":  # question 0.2 L causal, 4 answers see it and themselves causally
        nq = int(0.2 * L)
        if i < nq:
            return [(0, i + 1)]
        al = (L - nq) // 4
        a = min((i - nq) // al, 3)
        return [(0, nq), (nq + a * al, i + 1)]
    nb = (L + B - 1) // B
    last = (nb - 1) * B
    split = min(max((K + 1) * B + 1, B), last)
    if i < split or i >= last:
        return [(0, i + 1)]
    return [(0, B), (max(B, i - K * B), i + 1)]

nq, nk = -(-L // BR), -(-L // BC)
lists = [[] for _ in range(nk)]
att = 0
for qt in range(nq):
    cnt = [0] * nk
    for i in range(qt * BR, min(L, qt * BR + BR)):
        for a, b in rng(i):
            att += b - a
            for kt in range(a // BC, (b - 1) // BC + 1):
                cnt[kt] += min(b, kt * BC + BC) - max(a, kt * BC)
    for kt in range(nk):
        if cnt[kt]:
            lists[kt].append((qt, cnt[kt] < BR * BC))
total = sum(len(l) for l in lists) * KVH
chunk = max(8, -(-total // (4 * SMS)))
tasks = []  # (steps, split?)
for kt, l in enumerate(lists):
    for i in range(0, len(l), chunk):
        part = l[i:i + chunk]
        for _ in range(KVH):
            tasks.append((len(part) * GROUP, len(l) > chunk, sum(p for _, p in part) * GROUP))
steps = sum(t[0] for t in tasks)
pst = sum(t[2] for t in tasks)
print(f"{MASK} L={L}: kv tiles {nk}, q tiles {nq}, (q tile, kv tile) pairs {sum(len(l) for l in lists)}, chunk {chunk}")
print(f"tasks {len(tasks)} (split pieces {sum(1 for t in tasks if t[1])}), steps {steps} (partial {pst}, {100*pst/steps:.1f} %),"
      f" steps per task mean {steps/len(tasks):.1f} max {max(t[0] for t in tasks)}")
print(f"computed / attended elements: {steps * BR * BC / (att * 8):.3f} (attended {att*8:.3e} score elements over 8 heads)")
import collections
print("list lengths:", sorted(collections.Counter(len(l) for l in lists).items())[:12])

def sched(durs):
    import heapq
    h = [0.0] * SMS
    heapq.heapify(h)
    for d in durs:
        t = heapq.heappop(h)
        heapq.heappush(h, t + d)
    return max(h), sum(durs) / SMS

def model(ts, c, order="list", tail_chunk=None):
    t_step = ts
    ds = []
    for s, sp, _ in tasks:
        ds.append((s * t_step + c, sp))
    if order == "lpt":
        ds.sort(key=lambda x: -x[0])
    return sched([d for d, _ in ds])

if __name__ == "__main__":
    ts = float(sys.argv[3]) if len(sys.argv) > 3 else 2.24  # us per step per SM (dense causal 32K)
    for c in (0.0, 3.0, 6.0):
        mk, avg = model(ts, c)
        mk2, _ = model(ts, c, "lpt")
        print(f"t_step {ts} us, per-task cost {c} us: mean busy {avg:.0f} us, makespan list order {mk:.0f} (tail {mk-avg:.0f}), LPT {mk2:.0f}")

def tail_variant(ts, c, div, last=True):
    """split lists cut into pieces of ceil(chunk / div), those pieces after the unsplit tasks"""
    small = max(1, -(-chunk // div))
    main, tail = [], []
    for kt, l in enumerate(lists):
        if len(l) > chunk:
            for i in range(0, len(l), small):
                n = len(l[i:i + small])
                (tail if last else main).extend([n * GROUP * ts + c] * KVH)
        else:
            main.extend([len(l) * GROUP * ts + c] * KVH)
    return sched(main + tail), len(main) + len(tail)

if __name__ == "__main__":
    for c in (0.0, 3.0, 6.0):
        for div, last in ((1, True), (2, True), (3, True), (4, True), (2, False)):
            (mk, avg), n = tail_variant(ts, c, div, last)
            print(f"c {c}: split pieces of chunk/{div} {'last' if last else 'first'}: tasks {n}, makespan {mk:.0f} (mean {avg:.0f}, tail {mk-avg:.0f})")

def lpt_variant(ts, c, div):
    """split lists cut into pieces of ceil(chunk / div); all tasks sorted longest first (stable)"""
    small = max(1, -(-chunk // div))
    ds = []
    for kt, l in enumerate(lists):
        piece = small if len(l) > chunk else chunk
        for i in range(0, len(l), piece):
            ds.extend([len(l[i:i + piece]) * GROUP * ts + c] * KVH)
    ds.sort(key=lambda x: -x)
    return sched(ds), len(ds)

if __name__ == "__main__":
    for c in (0.0, 4.0):
        for div in (1, 2, 3, 4, 6, 8):
            (mk, avg), n = lpt_variant(ts, c, div)
            print(f"LPT c {c}: split pieces of chunk/{div}: tasks {n}, makespan {mk:.0f} (mean {avg:.0f}, tail {mk-avg:.0f})")

def equal_variant(ts, c, piece):
    """split lists cut into pieces of `piece` q tiles, list order"""
    ds = []
    for kt, l in enumerate(lists):
        p = piece if len(l) > chunk else chunk
        for i in range(0, len(l), p):
            ds.extend([len(l[i:i + p]) * GROUP * ts + c] * KVH)
    return sched(ds), len(ds)

if __name__ == "__main__":
    for c in (0.0, 8.0):
        for piece in (chunk, 16, 14, 12, 10, 7):
            (mk, avg), n = equal_variant(ts, c, piece)
            print(f"equal c {c}: split pieces of {piece}: tasks {n}, makespan {mk:.0f} (mean {avg:.0f}, tail {mk-avg:.0f})")

def best_piece(c_steps=4):
    """the piece size (chunk/2 .. chunk) for split lists whose list-order schedule ends first"""
    best = None
    for p in range(chunk, max(1, chunk // 2) - 1, -1):
        ds = []
        for l in lists:
            q = p if len(l) > chunk else chunk
            for i in range(0, len(l), q):
                ds.extend([len(l[i:i + q]) * GROUP + c_steps] * KVH)
        mk, _ = sched(ds)
        if best is None or mk < best[1]:
            best = (p, mk)
    return best

if __name__ == "__main__":
    p, mk = best_piece()
    (mk0, avg0), _ = equal_variant(ts, 4 * ts, chunk)
    (mk1, avg1), n1 = equal_variant(ts, 4 * ts, p)
    print(f"model-chosen piece {p} (chunk {chunk}): makespan {mk0:.0f} -> {mk1:.0f} us (mean {avg0:.0f} -> {avg1:.0f}, tasks {n1})")


def even_piece_rs(c_steps=4):
    """order.rs even_piece: of at most 32 sizes chunk .. ceil(chunk / 2), the best (ties: larger)"""
    lo = -(-chunk // 2)
    stride = max(1, -(-(chunk - lo) // 32))
    best = None
    for p in range(chunk, lo - 1, -stride):
        ds = []
        for l in lists:
            q = p if len(l) > chunk else chunk
            for i in range(0, len(l), q):
                ds.extend([len(l[i:i + q]) * GROUP + c_steps] * KVH)
        mk, _ = sched(ds)
        if best is None or mk < best[1]:
            best = (p, mk)
        if p == chunk:
            mk0 = mk
    return best[0], mk0, best[1]

if __name__ == "__main__":
    p, m0, m1 = even_piece_rs()
    print(f"even_piece: chunk {chunk} -> {p}, modelled makespan {m0} -> {m1} steps ({100 * (m0 - m1) / m0:.1f} % less)")
