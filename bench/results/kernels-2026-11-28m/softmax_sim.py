#!/usr/bin/env python3
# kfwd: usage `python3 softmax_sim.py` (numpy; e.g. /work/main/target/pyenv/bin/python).
# Emulates the consumer's online softmax of FWD_LAZY / FWD_SPLIT 1 / FWD_SPLIT 2 (float32 numpy,
# bf16 rounding of P omitted) on rows of a "warpgroup" (decisions: any over the group) and
# compares O, LSE with a direct softmax. Includes masked (-inf) keys, rows starting late,
# and score jumps larger than tau.
import numpy as np
rng = np.random.default_rng(1)
TAU = 8.0
def ex2(x): return np.exp2(x).astype(np.float32)
def run(S, V, mode, scale_log2):
    R, K = S.shape; D = V.shape[1]
    mm = np.full(R, -np.inf, np.float32); ll = np.zeros(R, np.float32); O = np.zeros((R, D), np.float32)
    def fmax(s):
        mx = s.max(axis=1) * scale_log2
        mn = np.maximum(mm, mx)
        need = (mn > mm + TAU).any()
        return mn, need
    def rescale(mn):
        nonlocal mm, ll, O
        mu = np.where(mn == -np.inf, 0, mn)
        al = ex2(mm - mu); mm = mn.copy(); ll = ll * al; O = O * al[:, None]
    def exp(s, m):
        mu = np.where(m == -np.inf, 0, m)
        p = ex2(s * scale_log2 - mu[:, None]); assert p.max(initial=0) <= 2 ** TAU * 1.0001, p.max(); return p
    for t in range(0, K, 128):
        s = S[:, t:t + 128]; v = V[t:t + 128]
        if mode == 'sp':
            sa, sb = s[:, :64], s[:, 64:]
            mn, need = fmax(sa)
            if need: rescale(mn)
            pa = exp(sa, mm); ll += pa.sum(1)
            Oa = pa @ v[:64]                      # P V a in flight
            mn, nb = fmax(sb)
            mb = mn if nb else mm
            pb = exp(sb, mb); lb = pb.sum(1)
            O = O + Oa                            # P V a lands
            if nb: rescale(mn)
            ll += lb; O = O + pb @ v[64:]
        else:  # lz and pv2 (same math; pv2 only splits the P V issue)
            mn, need = fmax(s) if mode != 'std' else (None, True)
            if mode == 'std':
                mn = np.maximum(mm, s.max(1) * scale_log2); need = True
            if need: rescale(mn)
            p = exp(s, mm); ll += p.sum(1); O = O + p @ v
    inv = np.where(ll > 0, 1 / np.where(ll > 0, ll, 1), 0)
    lse = np.where(ll > 0, (mm + np.log2(np.where(ll > 0, ll, 1))) * np.log(2), -np.inf)
    return O * inv[:, None], lse
def ref(S, V, scale):
    x = S.astype(np.float64) * scale
    m = x.max(1, keepdims=True); m = np.where(np.isfinite(m), m, 0)
    e = np.exp(x - m); l = e.sum(1)
    O = np.where(l[:, None] > 0, (e @ V) / np.where(l > 0, l, 1)[:, None], 0)
    lse = np.where(l > 0, np.log(np.where(l > 0, l, 1)) + m[:, 0], -np.inf)
    return O, lse
worst = 0
for case in range(300):
    R, K, D = 16, 128 * rng.integers(1, 6), 32
    scale = 1 / np.sqrt(128)
    S = (rng.standard_normal((R, K)) * rng.choice([1, 4, 30])).astype(np.float32)
    if case % 3 == 0:  # jumps: later tiles much larger
        S[:, K // 2:] += rng.uniform(0, 400)
    if case % 4 == 1:  # key ranges: row r sees keys [lo_r, hi_r)
        for r in range(R):
            lo = rng.integers(0, K); hi = rng.integers(lo, K + 1)
            S[r, :lo] = -np.inf; S[r, hi:] = -np.inf
    if case % 5 == 2: S[: R // 2, :] = -np.inf  # rows with no key
    V = rng.standard_normal((K, D)).astype(np.float32)
    Or, lr = ref(S, V, scale)
    for mode in ['std', 'lz', 'sp']:
        O, l = run(S, V, mode, np.float32(scale * np.log2(np.e)))
        assert np.array_equal(np.isinf(l), np.isinf(lr)), (case, mode)
        fin = np.isfinite(lr)
        e = max(np.abs(O - Or).max(), np.abs(l[fin] - lr[fin]).max(initial=0) / max(1, np.abs(lr[fin]).max(initial=1)))
        assert not np.isnan(O).any(), (case, mode)
        worst = max(worst, e)
print('300 cases x std/lz/sp: worst abs err O / rel LSE', worst)
