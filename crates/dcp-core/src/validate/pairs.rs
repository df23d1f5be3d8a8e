//! Attended pairs in closed form: a work's pairs, a mask's pairs and their coverage summaries.
//!
//! A set of attended pairs is stored as *trapezoids*: query tokens `[q0, q1)` of one sequence,
//! and per query `q` the keys `max(lo_i(q)) ≤ k < min(hi_j(q))` with every bound linear in `q`.
//! A work's pairs, the mask restricted to an output cell block, and any of their intersections
//! are such sets. Over a run of queries on which no two bounds cross, the lengths are an
//! arithmetic series and the pairs' hash a geometric one, so counting and hashing cost a few
//! operations per crossing, never per token.
//!
//! The hash of a pair set is the polynomial `Σ x^q · z^h · y^k` (global query token `q`, query
//! head `h`, global key token `k`) evaluated modulo the prime 2⁶¹−1 at fixed pseudo-random points.
//! Pair multisets that differ give different polynomials, so equal hashes of different sets need
//! the evaluation point to be a root of their difference: probability below 2⁻⁴⁰ for the sizes
//! we plan (Schwartz–Zippel, degree ≤ 2²¹).

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

use super::state::Few;
use super::work::LazyTraps;
use crate::mask::{CompiledMask, Lin};

const P: u64 = (1 << 61) - 1;

#[inline]
const fn mulm(a: u64, b: u64) -> u64 {
    let r = a as u128 * b as u128;
    let s = ((r as u64) & P) + ((r >> 61) as u64);
    if s >= P {
        s - P
    } else {
        s
    }
}

#[inline]
pub(super) fn addm(a: u64, b: u64) -> u64 {
    let s = a + b;
    if s >= P {
        s - P
    } else {
        s
    }
}

#[inline]
const fn subm(a: u64, b: u64) -> u64 {
    if a >= b {
        a - b
    } else {
        a + P - b
    }
}

const fn powm(mut b: u64, mut e: u64) -> u64 {
    let mut r = 1u64;
    while e > 0 {
        if e & 1 == 1 {
            r = mulm(r, b);
        }
        b = mulm(b, b);
        e >>= 1;
    }
    r
}

const fn invm(a: u64) -> u64 {
    powm(a, P - 2)
}

/// Count and hash of a multiset of attended pairs; adding sets adds summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct PairSum {
    pub count: u64,
    pub hash: u64,
}

impl PairSum {
    pub fn add(self, o: PairSum) -> PairSum {
        PairSum {
            count: self.count + o.count,
            hash: addm(self.hash, o.hash),
        }
    }
}

/// Powers of one base by table lookup: `b^e = T0[e mod 2¹¹] · T1[(e >> 11) mod 2¹¹] · T2[e >> 22]`
/// for `e < 2³³`, two multiplications instead of a square-and-multiply chain. The shared
/// hasher's tables are built at compile time ([`Hasher::shared`]): a validation pays no
/// set-up for them.
struct Powers {
    t: [[u64; Powers::N]; 3],
}

impl Powers {
    const BITS: u32 = 11;
    const N: usize = 1 << Self::BITS;

    const fn new(b: u64) -> Self {
        let mut t = [[0u64; Self::N]; 3];
        let mut step = b;
        let mut level = 0;
        while level < 3 {
            let mut acc = 1u64;
            let mut i = 0;
            while i < Self::N {
                t[level][i] = acc;
                acc = mulm(acc, step);
                i += 1;
            }
            // acc = step^(2^11): the next level's step.
            step = acc;
            level += 1;
        }
        Powers { t }
    }

    #[inline]
    fn pow(&self, e: u64) -> u64 {
        let m = (1u64 << Self::BITS) - 1;
        if e >> (3 * Self::BITS) != 0 {
            // Beyond the tables (never for token indices): fall back.
            let b = self.t[0][1];
            return powm(b, e);
        }
        let a = self.t[0][(e & m) as usize];
        let b = self.t[1][((e >> Self::BITS) & m) as usize];
        let c = self.t[2][(e >> (2 * Self::BITS)) as usize];
        mulm(mulm(a, b), c)
    }
}

/// The evaluation point and cached constants.
pub(super) struct Hasher {
    x: u64,
    xp: Powers,
    /// `x·y` and its powers: the ratio of a geometric sum under a slope-1 bound (a causal
    /// diagonal, a sliding window's edge).
    xy: u64,
    xyp: Powers,
    yp: Powers,
    zp: Powers,
    /// Powers of `1/y`.
    yip: Powers,
    inv_x1: u64,
    inv_y1: u64,
    inv_z1: u64,
    /// `1 / (x·y^m − 1)` for key slopes `m` in `-4..=4`.
    inv_ratio: [u64; 9],
}

impl Hasher {
    /// The one hasher, built at compile time (its power tables take ~25 K multiplications:
    /// built at run time they cost the first validation of a process 0.3–0.4 M instructions).
    pub fn shared() -> &'static Hasher {
        static H: Hasher = Hasher::new();
        &H
    }

    /// `Σ_{e=a}^{b-1} x^e`.
    #[inline]
    pub fn xs(&self, a: u64, b: u64) -> u64 {
        mulm(subm(self.xp.pow(b), self.xp.pow(a)), self.inv_x1)
    }

    /// `Σ_{e=a}^{b-1} y^e`.
    #[inline]
    pub fn ys(&self, a: u64, b: u64) -> u64 {
        mulm(subm(self.yp.pow(b), self.yp.pow(a)), self.inv_y1)
    }

    /// The pairs of the rectangle `[q0, q1) × [k0, k1)` (tokens of a sequence at global offset
    /// `off`; both non-empty), from the sums of its query and key powers (`xs`, `ys`).
    #[inline]
    pub fn rect(xs: u64, ys: u64, q: u64, k: u64) -> PairSum {
        PairSum {
            count: q * k,
            hash: mulm(xs, ys),
        }
    }

    pub const fn new() -> Self {
        // Fixed pseudo-random points (any values not 0 or 1 work; fixed keeps plans' verdicts
        // reproducible).
        let (x, y, z) = (
            0x1d2c_9a3f_6b4e_8f17 % P,
            0x0c5a_d7e1_93b2_4a6d % P,
            0x13f0_86c4_5e29_d1ab % P,
        );
        let y_inv = invm(y);
        let mut inv_ratio = [0u64; 9];
        let mut i = 0;
        while i < inv_ratio.len() {
            let r = mulm(x, pow_signed(y, y_inv, i as i64 - 4));
            inv_ratio[i] = if r == 1 { 0 } else { invm(subm(r, 1)) };
            i += 1;
        }
        Hasher {
            x,
            xp: Powers::new(x),
            xy: mulm(x, y),
            xyp: Powers::new(mulm(x, y)),
            yp: Powers::new(y),
            zp: Powers::new(z),
            yip: Powers::new(y_inv),
            inv_x1: invm(subm(x, 1)),
            inv_y1: invm(subm(y, 1)),
            inv_z1: invm(subm(z, 1)),
            inv_ratio,
        }
    }

    /// `y^e` for any sign of `e`.
    #[inline]
    fn y_pow(&self, e: i64) -> u64 {
        if e >= 0 {
            self.yp.pow(e as u64)
        } else {
            self.yip.pow(e.unsigned_abs())
        }
    }

    /// `(x·y^m)^e` for `e ≥ 0` (`x^e` for a constant bound, `m = 0`: `y^0 = 1`).
    #[inline]
    fn ratio_pow(&self, m: i64, e: i64) -> u64 {
        match m {
            0 => self.xp.pow(e as u64),
            // (x·y)^e = x^e · y^e, from its own table.
            1 if e >= 0 => self.xyp.pow(e as u64),
            _ => mulm(self.xp.pow(e as u64), self.y_pow(m.saturating_mul(e))),
        }
    }

    /// `Σ_{q=a}^{b-1} x^q · y^{c + m·q}` (exponents may be negative for `c` only).
    #[inline(always)]
    fn geo(&self, a: i64, b: i64, c: i64, m: i64) -> u64 {
        mulm(self.geo_series(a, b, m), self.y_pow(c))
    }

    /// [`Hasher::geo`] without its factor `y^c`: `Σ_{q=a}^{b-1} x^q · y^{m·q}`.
    #[inline(always)]
    fn geo_series(&self, a: i64, b: i64, m: i64) -> u64 {
        let n = b - a;
        let r = match m {
            0 => self.x,
            1 => self.xy,
            _ => mulm(self.x, self.y_pow(m)),
        };
        if r == 1 {
            n as u64 % P
        } else {
            let inv = if (-4..=4).contains(&m) {
                self.inv_ratio[(m + 4) as usize]
            } else {
                invm(subm(r, 1))
            };
            mulm(
                self.ratio_pow(m, a),
                mulm(subm(self.ratio_pow(m, n), 1), inv),
            )
        }
    }

    /// `x^e`.
    fn x_pow(&self, e: u64) -> u64 {
        self.xp.pow(e)
    }

    /// Hash factor and count of query heads `[h0, h1)`: `Σ z^h` and `h1 − h0`.
    pub fn heads(&self, h0: u32, h1: u32) -> PairSum {
        if h1 <= h0 {
            return PairSum::default();
        }
        PairSum {
            count: (h1 - h0) as u64,
            hash: mulm(
                subm(self.zp.pow(h1 as u64), self.zp.pow(h0 as u64)),
                self.inv_z1,
            ),
        }
    }
}

const fn pow_signed(b: u64, b_inv: u64, e: i64) -> u64 {
    if e >= 0 {
        powm(b, e as u64)
    } else {
        powm(b_inv, e.unsigned_abs())
    }
}

/// Scales a pair set over keys and queries by a head set: every pair taken once per head.
pub(super) fn times_heads(t: PairSum, h: PairSum) -> PairSum {
    PairSum {
        count: t.count * h.count,
        hash: mulm(t.hash, h.hash),
    }
}

/// Splits `[q0, q1)` into runs on which no two of `lines` cross: the order of any two lines (or
/// their equality) is the same on every query of a run. Calls `f(a, b)` per run, in order.
pub(super) fn constant_order_runs(q0: i64, q1: i64, lines: &[Lin], f: impl FnMut(i64, i64)) {
    if q0 >= q1 {
        return;
    }
    // Few bounds in practice: keep the cuts on the stack when they fit (a small array for up
    // to four lines, a sloped segment's range and the keys' bounds: no larger one to clear).
    let n = lines.len();
    let cap = 2 + n * n.saturating_sub(1);
    if cap <= 14 {
        order_runs(q0, q1, lines, &mut [0i64; 14], f)
    } else if cap <= 64 {
        order_runs(q0, q1, lines, &mut [0i64; 64], f)
    } else {
        order_runs(q0, q1, lines, &mut vec![0i64; cap], f)
    }
}

/// [`constant_order_runs`] with room `cuts` for its cuts.
fn order_runs(q0: i64, q1: i64, lines: &[Lin], cuts: &mut [i64], mut f: impl FnMut(i64, i64)) {
    cuts[0] = q0;
    cuts[1] = q1;
    let mut k = 2;
    for (i, a) in lines.iter().enumerate() {
        for b in &lines[i + 1..] {
            if a.slope != b.slope {
                // a(q) = b(q) at q = (b.c − a.c) / (a.slope − b.slope); isolate that query.
                let (num, den) = (b.c - a.c, a.slope - b.slope);
                let (num, den) = if den < 0 { (-num, -den) } else { (num, den) };
                let x = num.div_euclid(den);
                for p in [x, x + 1] {
                    if p > q0 && p < q1 {
                        cuts[k] = p;
                        k += 1;
                    }
                }
            }
        }
    }
    let cuts = &mut cuts[..k];
    cuts.sort_unstable();
    let mut prev = cuts[0];
    for &c in &cuts[1..] {
        if c != prev {
            f(prev, c);
            prev = c;
        }
    }
}

/// The bound that is largest (`max`) or smallest over a run without crossings.
fn extreme(lines: &[Lin], a: i64, b: i64, max: bool) -> Lin {
    let key = |l: &Lin| (l.at(a), l.at(b - 1));
    let it = lines.iter().copied();
    if max {
        it.max_by_key(key).expect("at least one bound")
    } else {
        it.min_by_key(key).expect("at least one bound")
    }
}

/// The bounds of `lines` that can be extreme: per slope, the largest (`max`) or smallest
/// constant. Uses `stack` when it fits, else `heap`.
fn tightest<'a>(
    lines: &[Lin],
    max: bool,
    stack: &'a mut [Lin; 8],
    heap: &'a mut Vec<Lin>,
) -> &'a [Lin] {
    let mut n = 0;
    let put = |out: &mut [Lin], n: &mut usize, l: Lin| {
        for o in out[..*n].iter_mut() {
            if o.slope == l.slope {
                if (max && l.c > o.c) || (!max && l.c < o.c) {
                    *o = l;
                }
                return;
            }
        }
        out[*n] = l;
        *n += 1;
    };
    if lines.len() <= stack.len() {
        for &l in lines {
            put(&mut stack[..], &mut n, l);
        }
        &stack[..n]
    } else {
        heap.resize(lines.len(), Lin::c(0));
        for &l in lines {
            put(&mut heap[..], &mut n, l);
        }
        heap.truncate(n);
        &heap[..]
    }
}

/// Count (and, unless `count_only`, hash) of the pairs `q ∈ [q0, q1)`,
/// `max(lo(q)) ≤ k < min(hi(q))`, with global offsets `qoff`, `koff` of the sequence.
pub(super) fn trap_sum(
    h: &Hasher,
    q0: i64,
    q1: i64,
    lo: &[Lin],
    hi: &[Lin],
    off: u64,
    count_only: bool,
) -> PairSum {
    if let Some(s) = causal_trap_sum(h, q0, q1, lo, hi, off, count_only) {
        // Debug builds (every test run): the general splitting gives the same sums.
        debug_assert_eq!(s, general_trap_sum(h, q0, q1, lo, hi, off, count_only));
        return s;
    }
    general_trap_sum(h, q0, q1, lo, hi, off, count_only)
}

/// [`trap_sum`] when every bound is constant or of slope 1 (a causal diagonal: keys from a
/// piece's start up to the query's own token; a sliding window: from `q − w` on): the lower
/// bound is the largest constant `l0` until the largest slope-1 line `q + l1` passes it, the
/// upper bound the line `q + u1` until it reaches the smallest constant `u0`, so `[q0, q1)`
/// splits into at most three runs with one lower and one upper line each, of which the rows
/// where the upper lies above the lower are summed as [`general_trap_sum`] sums a run. `None`
/// for any other bounds.
fn causal_trap_sum(
    h: &Hasher,
    q0: i64,
    q1: i64,
    lo: &[Lin],
    hi: &[Lin],
    off: u64,
    count_only: bool,
) -> Option<PairSum> {
    let (mut l0, mut l1) = (None::<i64>, None::<i64>);
    for b in lo {
        let l = match b.slope {
            0 => &mut l0,
            1 => &mut l1,
            _ => return None,
        };
        *l = Some(l.map_or(b.c, |x| x.max(b.c)));
    }
    let (mut u0, mut u1) = (None::<i64>, None::<i64>);
    for b in hi {
        let u = match b.slope {
            0 => &mut u0,
            1 => &mut u1,
            _ => return None,
        };
        *u = Some(u.map_or(b.c, |x| x.min(b.c)));
    }
    if (l0.is_none() && l1.is_none()) || (u0.is_none() && u1.is_none()) || q0 >= q1 {
        return None;
    }
    // Rows from which the line is the lower bound (`q + l1 ≥ l0`), and from which the constant
    // is the upper one (`q + u1 ≥ u0`).
    let qa = match (l0, l1) {
        (Some(l0), Some(l1)) => (l0 - l1).clamp(q0, q1),
        (None, _) => q0,
        (_, None) => q1,
    };
    let qb = match (u0, u1) {
        (Some(u0), Some(u1)) => (u0 - u1).clamp(q0, q1),
        (None, _) => q1,
        (_, None) => q0,
    };
    let lower = |q: i64| {
        if q < qa {
            Lin::c(l0.expect("a constant lower bound before qa"))
        } else {
            Lin::row(l1.expect("a slope-1 lower bound from qa"))
        }
    };
    let upper = |q: i64| {
        if q < qb {
            Lin::row(u1.expect("a slope-1 upper bound before qb"))
        } else {
            Lin::c(u0.expect("a constant upper bound from qb"))
        }
    };
    let mut out = PairSum::default();
    let mut count: i128 = 0;
    // The factor `x^off / (y − 1)` of every run's hash, once per call.
    let xo = if count_only {
        0
    } else {
        mulm(h.inv_y1, h.x_pow(off))
    };
    let off = off as i64;
    // One run `[a, b)` between lines `l` and `u`, non-empty on every row.
    let mut run = |a: i64, b: i64, l: Lin, u: Lin| {
        if a >= b {
            return;
        }
        let (la, lb) = (u.at(a) - l.at(a), u.at(b - 1) - l.at(b - 1));
        debug_assert!(la > 0 && lb > 0);
        count += (la + lb) as i128 * (b - a) as i128 / 2;
        if !count_only {
            // Σ x^q (y^{off + u(q)} − y^{off + l(q)}); with equal slopes one series times the
            // difference of the two constant factors.
            let d = if u.slope == l.slope {
                let ys = subm(h.y_pow(off + u.c), h.y_pow(off + l.c));
                mulm(h.geo_series(a, b, u.slope), ys)
            } else {
                subm(
                    h.geo(a, b, off + u.c, u.slope),
                    h.geo(a, b, off + l.c, l.slope),
                )
            };
            debug_assert_eq!(
                d,
                subm(
                    h.geo(a, b, off + u.c, u.slope),
                    h.geo(a, b, off + l.c, l.slope)
                )
            );
            out.hash = addm(out.hash, mulm(d, xo));
        }
    };
    let (c1, c2) = (qa.min(qb), qa.max(qb));
    for (a, b) in [(q0, c1), (c1, c2), (c2, q1)] {
        if a >= b {
            continue;
        }
        let (l, u) = (lower(a), upper(a));
        // The width `u − l` moves by `u.slope − l.slope` per row: the rows where it is
        // positive.
        let w = u.at(a) - l.at(a);
        let (from, to) = match u.slope - l.slope {
            0 if w > 0 => (a, b),
            0 => (a, a),
            1 => (a.max(a - w + 1), b),
            _ => (a, b.min(a + w)),
        };
        run(from, to.max(from), l, u);
    }
    out.count = count as u64;
    Some(out)
}

/// [`trap_sum`] for any bounds: `[q0, q1)` split into runs on which no two bounds cross.
fn general_trap_sum(
    h: &Hasher,
    q0: i64,
    q1: i64,
    lo: &[Lin],
    hi: &[Lin],
    off: u64,
    count_only: bool,
) -> PairSum {
    // Of bounds with one slope only the tightest matters: fewer crossings to split at.
    let (mut lb, mut ub) = ([Lin::c(0); 8], [Lin::c(0); 8]);
    let (mut lv, mut uv) = (Vec::new(), Vec::new());
    let lo = tightest(lo, true, &mut lb, &mut lv);
    let hi = tightest(hi, false, &mut ub, &mut uv);
    let mut buf = [Lin::c(0); 16];
    let mut heap = Vec::new();
    let lines: &[Lin] = if lo.len() + hi.len() <= buf.len() {
        buf[..lo.len()].copy_from_slice(lo);
        buf[lo.len()..lo.len() + hi.len()].copy_from_slice(hi);
        &buf[..lo.len() + hi.len()]
    } else {
        heap.extend_from_slice(lo);
        heap.extend_from_slice(hi);
        &heap
    };
    let mut out = PairSum::default();
    let mut count: i128 = 0;
    let off = off as i64;
    constant_order_runs(q0, q1, lines, |a, b| {
        let l = extreme(lo, a, b, true);
        let u = extreme(hi, a, b, false);
        let (la, lb) = (u.at(a) - l.at(a), u.at(b - 1) - l.at(b - 1));
        if la <= 0 || lb <= 0 {
            // No crossing inside: the run is empty throughout (a touching end is an isolated
            // run of its own).
            return;
        }
        count += (la + lb) as i128 * (b - a) as i128 / 2;
        if !count_only {
            // Σ_q x^(off+q) (y^(off+u(q)) − y^(off+l(q))) / (y − 1).
            let gu = h.geo(a, b, off + u.c, u.slope);
            let gl = h.geo(a, b, off + l.c, l.slope);
            let xo = h.x_pow(off as u64);
            out.hash = addm(out.hash, mulm(mulm(subm(gu, gl), h.inv_y1), xo));
        }
    });
    out.count = count as u64;
    out
}

/// Pairs of one work: trapezoids over (query token, key token), each inside one sequence and
/// taken once per query head of `qheads`; with the sums and extents of each query run's and each
/// KV run's trapezoids, which its coverage leaves are.
#[derive(Debug)]
pub(super) struct WorkPairs<'a> {
    /// Query heads as runs `[h0, h1)`.
    pub qheads: Few<(u32, u32)>,
    traps: Traps<'a>,
    /// Σ z^h and count over `qheads`.
    heads: PairSum,
    /// Per query run and per KV run: extent, sum times heads and sum (one head) of its
    /// trapezoids.
    sides: Sides,
}

// What a validation writes per work and per coverage node (at 131K ring on 32x8, 66 K works
// and, by val14's count, ≈ 14 MB of nodes): kept from growing back unnoticed (WorkPairs was
// 536 bytes, a node 88).
const _: () = assert!(std::mem::size_of::<WorkPairs>() <= 216);
const _: () = assert!(std::mem::size_of::<CovNode>() <= 80);

/// Extent, sum times heads and sum (one head) of the trapezoids of one query run or KV run.
type RunSide = (Extent, PairSum, PairSum);

/// A work's [`RunSide`]s. A work of one query run and one KV run whose two sides are equal (a
/// ring step's work: both runs hold every trapezoid, and each extent is the query rows by the
/// KV rows) keeps the side once, inline (80 bytes instead of two inline lists of 168: the
/// works a validation writes and reads back at 131K on 32x8 were ≈ 18 MB against a 2 MiB
/// L2); any other work its query runs' sides then its KV runs' in one list.
#[derive(Debug)]
enum Sides {
    One(RunSide),
    Runs { nq: u32, all: Vec<RunSide> },
}

impl Sides {
    fn q(&self) -> &[RunSide] {
        match self {
            Sides::One(s) => std::slice::from_ref(s),
            Sides::Runs { nq, all } => &all[..*nq as usize],
        }
    }

    fn k(&self) -> &[RunSide] {
        match self {
            Sides::One(s) => std::slice::from_ref(s),
            Sides::Runs { nq, all } => &all[*nq as usize..],
        }
    }
}

impl Drop for Sides {
    /// A list goes back to this thread's [`SIDE_LISTS`] (a usp head group's works make one
    /// each: allocated and freed per work, they cost ≈ 5 % of its validation).
    fn drop(&mut self) {
        if let Sides::Runs { all, .. } = self {
            if all.capacity() <= SIDE_LIST_MAX {
                let mut v = std::mem::take(all);
                v.clear();
                // `try_with`: nothing to keep once the thread is ending.
                let _ = SIDE_LISTS.try_with(|pool| {
                    let mut pool = pool.borrow_mut();
                    if pool.len() < SIDE_POOL_MAX {
                        pool.push(v);
                    }
                });
            }
        }
    }
}

/// The longest side list a thread keeps for reuse, and how many it keeps.
const SIDE_LIST_MAX: usize = 16;
const SIDE_POOL_MAX: usize = 1 << 16;

thread_local! {
    /// Emptied side lists of dropped works, for the next works' [`side_list`].
    static SIDE_LISTS: std::cell::RefCell<Vec<Vec<RunSide>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// An empty side list with room for `n` (from [`SIDE_LISTS`] when one is kept).
fn side_list(n: usize) -> Vec<RunSide> {
    let mut v = SIDE_LISTS.with_borrow_mut(Vec::pop).unwrap_or_default();
    v.reserve(n);
    v
}

/// Whether two sides are equal: extent, sum times heads, sum.
fn same_side(x: &RunSide, y: &RunSide) -> bool {
    x.0 == y.0 && x.1 == y.1 && x.2 == y.2
}

/// A work's trapezoids: its own, those of an earlier work of the same query rows, KV rows and
/// row ranges (a usp head group's devices: [`WorkPairs::traps`] reads through to them, no
/// copy), or made on first use from the work's operands and row ranges (a work checked by the
/// rectangle path, which sums without making them: a valid plan reads its works' coverage
/// whole, and only a partial read needs them).
#[derive(Debug)]
pub(super) enum Traps<'a> {
    Own(Vec<Trap>),
    Of(&'a WorkPairs<'a>),
    Lazy(LazyTraps<'a>),
}

impl<'a> Traps<'a> {
    /// The trapezoids of `w`, shared: pointing at the work that owns them.
    pub fn of(w: &'a WorkPairs<'a>) -> Traps<'a> {
        match &w.traps {
            Traps::Of(root) => Traps::Of(root),
            Traps::Own(_) | Traps::Lazy(_) => Traps::Of(w),
        }
    }

    fn get(&self) -> &[Trap] {
        match self {
            Traps::Own(v) => v,
            Traps::Of(w) => w.traps(),
            Traps::Lazy(l) => l.get(),
        }
    }
}

/// The trapezoids a coverage leaf holds: those of one query run of its work (what the work adds
/// to that run's output rows) or of one KV run (what it adds to that run's dKV rows). By run,
/// not by the run's rows: two runs of an operand may hold the same rows, and each output row
/// holds only what was computed for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Q(u32),
    K(u32),
}

impl Side {
    fn holds(self, t: &Trap) -> bool {
        match self {
            Side::Q(i) => t.qrun == i,
            Side::K(j) => t.krun == j,
        }
    }
}

/// Queries `[q0, q1)`, keys `max(lo) ≤ k < min(hi)` (tokens of the sequence at global offset
/// `off`), from the work's query run `qrun` and KV run `krun`. `lo[1]` and `hi[1]` are constant: the
/// token bounds of the KV piece the keys are read from. Query token `q` is global row `q + gq`,
/// key token `k` global row `k + gk` (a trap lies inside one query piece and one KV piece).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Trap {
    pub q0: u32,
    pub q1: u32,
    pub lo: [Lin; 2],
    pub hi: [Lin; 2],
    pub qrun: u32,
    pub krun: u32,
    pub off: u64,
    pub gq: i64,
    pub gk: i64,
    /// The sum over the whole trapezoid (one head).
    pub full: PairSum,
}

/// Which cells a coverage is read for: query rows and key rows (global rows, [`super::gspace`]),
/// query heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cells {
    pub q: (i64, i64),
    pub k: (i64, i64),
    pub heads: (u32, u32),
}

/// Beyond every global row, and safe to subtract a row shift from.
const FAR: i64 = 1 << 60;

impl Cells {
    /// All cells.
    pub const ALL: Cells = Cells {
        q: (-FAR, FAR),
        k: (-FAR, FAR),
        heads: (0, u32::MAX),
    };

    /// The cells in both.
    pub fn clip(&self, o: &Cells) -> Cells {
        let i = |x: (i64, i64), y: (i64, i64)| (x.0.max(y.0), x.1.min(y.1));
        Cells {
            q: i(self.q, o.q),
            k: i(self.k, o.k),
            heads: (self.heads.0.max(o.heads.0), self.heads.1.min(o.heads.1)),
        }
    }
}

impl<'a> WorkPairs<'a> {
    /// The pairs of `traps` times the query heads `qheads`; `q_runs` and `k_runs` are the global
    /// rows of the work's query runs and KV runs (all regions'), which the traps' `qrun` and
    /// `krun` index.
    #[cfg(test)]
    pub fn new<Q, K>(
        h: &Hasher,
        qheads: Few<(u32, u32)>,
        traps: Vec<Trap>,
        q_runs: Q,
        k_runs: K,
    ) -> Self
    where
        Q: Iterator<Item = (i64, i64)> + Clone,
        K: Iterator<Item = (i64, i64)> + Clone,
    {
        Self::new_from(h, qheads, Traps::Own(traps), q_runs, k_runs)
    }

    /// The tests' `WorkPairs::new`, of owned or shared trapezoids.
    pub fn new_from<Q, K>(
        h: &Hasher,
        qheads: Few<(u32, u32)>,
        traps: Traps<'a>,
        q_runs: Q,
        k_runs: K,
    ) -> Self
    where
        Q: Iterator<Item = (i64, i64)> + Clone,
        K: Iterator<Item = (i64, i64)> + Clone,
    {
        Self::with_sums(h, qheads, traps, q_runs, k_runs, None)
    }

    /// [`WorkPairs::new_from`] with the per-run sums of the trapezoids given (`sums`: per query
    /// run, per KV run, one head) instead of summed from them (lazy trapezoids).
    pub fn with_sums<Q, K>(
        h: &Hasher,
        qheads: Few<(u32, u32)>,
        traps: Traps<'a>,
        q_runs: Q,
        k_runs: K,
        sums: Option<(&[PairSum], &[PairSum])>,
    ) -> Self
    where
        Q: Iterator<Item = (i64, i64)> + Clone,
        K: Iterator<Item = (i64, i64)> + Clone,
    {
        let mut heads = PairSum::default();
        for &(a, b) in &qheads {
            heads = heads.add(h.heads(a, b));
        }
        let (h0, h1) = qheads
            .iter()
            .fold((u32::MAX, 0), |(a, b), &(x, y)| (a.min(x), b.max(y)));
        // Extents: the run's own rows on its side, all of the work's rows on the other; none
        // where the run holds no pairs.
        let bbox = |a: (i64, i64), x: (i64, i64)| (a.0.min(x.0), a.1.max(x.1));
        let empty = (i64::MAX, i64::MIN);
        let (qa, ka) = (
            q_runs.clone().fold(empty, bbox),
            k_runs.clone().fold(empty, bbox),
        );
        let side = |q: (i64, i64), k: (i64, i64)| {
            let e = Extent::of(Cells {
                q,
                k,
                heads: (h0, h1),
            });
            (e.clip(&Cells::ALL), PairSum::default(), PairSum::default())
        };
        // Query runs' sides, then KV runs' (one list: one allocation at most).
        let nq = q_runs.clone().count();
        let sides = q_runs
            .map(|q| side(q, ka))
            .chain(k_runs.clone().map(|k| side(qa, k)));
        // Two sides inline; more in a kept list ([`side_list`]).
        let mut all: Few<RunSide> = match nq + k_runs.count() {
            0..=2 => sides.collect(),
            n => {
                let mut list = side_list(n);
                list.extend(sides);
                Few::Many(list)
            }
        };
        {
            let (q_side, k_side) = all.split_at_mut(nq);
            if let Some((qs, ks)) = sums {
                for (x, s) in q_side.iter_mut().zip(qs) {
                    x.2 = *s;
                }
                for (x, s) in k_side.iter_mut().zip(ks) {
                    x.2 = *s;
                }
            } else if let ([q], [k]) = (&mut *q_side, &mut *k_side) {
                // One query run and one KV run (a ring step's work): both hold every
                // trapezoid.
                let all = traps
                    .get()
                    .iter()
                    .fold(PairSum::default(), |s, t| s.add(t.full));
                (q.2, k.2) = (all, all);
            } else {
                for t in traps.get() {
                    let q = &mut q_side[t.qrun as usize].2;
                    *q = q.add(t.full);
                    let k = &mut k_side[t.krun as usize].2;
                    *k = k.add(t.full);
                }
            }
        }
        for (e, s, one) in all.iter_mut() {
            if one.count == 0 {
                *e = Extent::NONE;
            }
            *s = times_heads(*one, heads);
        }
        let sides = match all {
            Few::Two([q, k]) if nq == 1 && same_side(&q, &k) => Sides::One(q),
            Few::Many(all) => Sides::Runs { nq: nq as u32, all },
            all => {
                let mut list = side_list(all.len());
                list.extend_from_slice(&all);
                Sides::Runs {
                    nq: nq as u32,
                    all: list,
                }
            }
        };
        WorkPairs {
            qheads,
            traps,
            heads,
            sides,
        }
    }

    /// [`WorkPairs::new_from`] for a work of one query head run `qheads`, one query run of global
    /// rows `q` and one KV run `k` (a ring step's work): the same pairs without the general
    /// constructor's per-run collections.
    pub fn one_run(
        h: &Hasher,
        qheads: (u32, u32),
        traps: Traps<'a>,
        q: (i64, i64),
        k: (i64, i64),
    ) -> Self {
        let all = traps
            .get()
            .iter()
            .fold(PairSum::default(), |s, t| s.add(t.full));
        Self::one_run_sum(h, qheads, traps, q, k, all)
    }

    /// [`WorkPairs::one_run`] with the trapezoids' sum (one head) given.
    pub fn one_run_sum(
        h: &Hasher,
        qheads: (u32, u32),
        traps: Traps<'a>,
        q: (i64, i64),
        k: (i64, i64),
        all: PairSum,
    ) -> Self {
        let heads = PairSum::default().add(h.heads(qheads.0, qheads.1));
        let ext = if all.count == 0 {
            Extent::NONE
        } else {
            Extent::of(Cells {
                q,
                k,
                heads: qheads,
            })
            .clip(&Cells::ALL)
        };
        let side = (ext, times_heads(all, heads), all);
        WorkPairs {
            qheads: Few::One(qheads),
            traps,
            heads,
            sides: Sides::One(side),
        }
    }

    /// Whether `o` holds the same pairs in the same form: equal trapezoids in the same order,
    /// heads, and per-run extents and sums (what a fast path must reproduce exactly).
    #[cfg(debug_assertions)]
    pub fn same_as(&self, o: &WorkPairs<'_>) -> bool {
        let sides = |a: &[RunSide], b: &[RunSide]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_side(x, y))
        };
        self.qheads == o.qheads
            && self.traps() == o.traps()
            && self.heads == o.heads
            && sides(self.sides.q(), o.sides.q())
            && sides(self.sides.k(), o.sides.k())
    }

    /// The trapezoids (each once, for one head).
    pub fn traps(&self) -> &[Trap] {
        self.traps.get()
    }

    /// Extent and sum of the trapezoids of `side`.
    fn side(&self, side: Side) -> (Extent, PairSum) {
        let (e, s, _) = match side {
            Side::Q(i) => self.sides.q()[i as usize],
            Side::K(j) => self.sides.k()[j as usize],
        };
        (e, s)
    }

    /// Per query run and per KV run, the sum (one head) of its trapezoids.
    pub fn one_head_sums(&self) -> (Few<PairSum>, Few<PairSum>) {
        (
            self.sides.q().iter().map(|x| x.2).collect(),
            self.sides.k().iter().map(|x| x.2).collect(),
        )
    }

    /// Summary of the pairs of `side` inside `cells`.
    pub fn sum(&self, h: &Hasher, cells: &Cells, side: Side) -> PairSum {
        let (ext, full) = self.side(side);
        if ext.inside(cells) {
            return full;
        }
        let mut t = PairSum::default();
        for tr in self.traps() {
            if !side.holds(tr) {
                continue;
            }
            let q0 = (tr.q0 as i64).max(cells.q.0 - tr.gq);
            let q1 = (tr.q1 as i64).min(cells.q.1 - tr.gq);
            if q0 >= q1 {
                continue;
            }
            let (kl, ku) = (cells.k.0 - tr.gk, cells.k.1 - tr.gk);
            // The trapezoid's keys lie in its KV piece `[lo[1], hi[1])`: none inside the cells.
            if ku <= tr.lo[1].c || tr.hi[1].c <= kl {
                continue;
            }
            // Cells holding the whole trapezoid: its own sum (the cells' bounds bind nothing).
            if (q0, q1) == (tr.q0 as i64, tr.q1 as i64) && kl <= tr.lo[1].c && tr.hi[1].c <= ku {
                t = t.add(tr.full);
                continue;
            }
            let lo = [tr.lo[0], tr.lo[1], Lin::c(kl)];
            let hi = [tr.hi[0], tr.hi[1], Lin::c(ku)];
            t = t.add(trap_sum(h, q0, q1, &lo, &hi, tr.off, false));
        }
        let heads = if (cells.heads.0, cells.heads.1) == (0, u32::MAX) {
            self.heads
        } else {
            let mut s = PairSum::default();
            for &(a, b) in &self.qheads {
                s = s.add(h.heads(a.max(cells.heads.0), b.min(cells.heads.1)));
            }
            s
        };
        times_heads(t, heads)
    }
}

/// Pairs of `mask` (a sequence at global offset `off`) with query in `q`, key in `k`: the pairs an
/// output block must hold, per head.
pub(super) fn mask_sum(
    h: &Hasher,
    mask: &CompiledMask,
    off: u64,
    q: (u32, u32),
    k: (u32, u32),
) -> PairSum {
    let (q0, q1) = (q.0 as i64, q.1 as i64);
    let mut t = PairSum::default();
    let first = mask.segs.partition_point(|s| s.rows.1 <= q0);
    let (kl, ku) = (Lin::c(k.0 as i64), Lin::c(k.1 as i64));
    let (zero, len) = (Lin::c(0), Lin::c(mask.len as i64));
    for seg in &mask.segs[first..] {
        if seg.rows.0 >= q1 {
            break;
        }
        let (a, b) = (seg.rows.0.max(q0), seg.rows.1.min(q1));
        for r in &seg.ranges {
            t = t.add(trap_sum(
                h,
                a,
                b,
                &[r.start, zero, kl],
                &[r.end, len, ku],
                off,
                false,
            ));
        }
    }
    t
}

/// The first of the mask's segments that can hold row `q0` or later.
pub(super) fn mask_seg(mask: &CompiledMask, q0: i64) -> usize {
    mask.segs.partition_point(|s| s.rows.1 <= q0)
}

/// Whether the rectangle `[q0, q1) × [k0, k1)` (keys inside the sequence) lies inside the mask,
/// from its segment `first` = [`mask_seg`]`(q0)` on: [`inside_mask`] for constant bounds,
/// without building a trapezoid.
#[inline]
pub(super) fn rect_inside_mask(
    mask: &CompiledMask,
    first: usize,
    (q0, q1): (i64, i64),
    (k0, k1): (i64, i64),
) -> bool {
    let mut at = q0;
    for seg in &mask.segs[first..] {
        if at >= q1 {
            break;
        }
        if seg.rows.0 > at {
            return false;
        }
        let b = seg.rows.1.min(q1) - 1;
        let ok = seg.ranges.iter().any(|r| {
            r.start.at(at) <= k0 && r.start.at(b) <= k0 && k1 <= r.end.at(at) && k1 <= r.end.at(b)
        });
        if !ok {
            return false;
        }
        at = b + 1;
    }
    at >= q1
}

/// Attended pairs of `tr` that lie inside the mask (count only).
pub(super) fn count_inside_mask(h: &Hasher, mask: &CompiledMask, tr: &Trap) -> u64 {
    if inside_mask(mask, tr) {
        return tr.full.count;
    }
    let (q0, q1) = (tr.q0 as i64, tr.q1 as i64);
    let first = mask.segs.partition_point(|s| s.rows.1 <= q0);
    let (zero, len) = (Lin::c(0), Lin::c(mask.len as i64));
    let mut n = 0;
    for seg in &mask.segs[first..] {
        if seg.rows.0 >= q1 {
            break;
        }
        let (a, b) = (seg.rows.0.max(q0), seg.rows.1.min(q1));
        for r in &seg.ranges {
            let lo = [tr.lo[0], tr.lo[1], r.start, zero];
            let hi = [tr.hi[0], tr.hi[1], r.end, len];
            n += trap_sum(h, a, b, &lo, &hi, 0, true).count;
        }
    }
    n
}

/// A sufficient test that every pair of `tr` lies inside the mask, by comparing lines at the
/// ends of row runs (no sums): the mask's segments cover the trapezoid's rows, and on each, one
/// mask range starts at or before one of the trapezoid's lower bounds and ends at or after one
/// of its upper bounds, at both end rows (lines: then on every row between). Keys lie inside
/// the sequence (a KV piece's tokens), so the mask's clamping to `[0, len)` binds nothing.
fn inside_mask(mask: &CompiledMask, tr: &Trap) -> bool {
    let (q0, q1) = (tr.q0 as i64, tr.q1 as i64);
    let first = mask.segs.partition_point(|s| s.rows.1 <= q0);
    let mut at = q0;
    for seg in &mask.segs[first..] {
        if at >= q1 {
            break;
        }
        if seg.rows.0 > at {
            return false;
        }
        let (a, b) = (at, seg.rows.1.min(q1));
        let le = |x: &Lin, y: &Lin| x.at(a) <= y.at(a) && x.at(b - 1) <= y.at(b - 1);
        let ok = seg
            .ranges
            .iter()
            .any(|r| tr.lo.iter().any(|l| le(&r.start, l)) && tr.hi.iter().any(|u| le(u, &r.end)));
        if !ok {
            return false;
        }
        at = b;
    }
    at >= q1
}

/// The bounding box of a coverage's pairs: query rows, key rows, query heads (none: no pairs).
/// A block whose cells contain it reads the coverage's full sum. "No pairs" is one empty box,
/// [`Extent::NONE`], not an `Option` (40 bytes, not 48: every coverage node and every work's
/// run side holds one); every other extent is a non-empty box (made by [`Extent::clip`] or
/// [`Extent::union`]), so equality is that of the `Option` form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Extent(Cells);

impl Extent {
    /// No pairs.
    const NONE: Extent = Extent(Cells {
        q: (0, 0),
        k: (0, 0),
        heads: (0, 0),
    });

    /// The box `c`, as it is (to be clipped).
    fn of(c: Cells) -> Extent {
        Extent(c)
    }

    /// The box, `None` for no pairs.
    #[inline]
    fn get(self) -> Option<Cells> {
        (self != Extent::NONE).then_some(self.0)
    }

    /// A box of the pairs inside `c` too (not the tightest: used only to skip sums).
    fn clip(self, c: &Cells) -> Extent {
        self.get()
            .map(|e| e.clip(c))
            .filter(|b| b.q.0 < b.q.1 && b.k.0 < b.k.1 && b.heads.0 < b.heads.1)
            .map_or(Extent::NONE, Extent)
    }

    fn union(self, o: Extent) -> Extent {
        match (self.get(), o.get()) {
            (None, _) => o,
            (_, None) => self,
            (Some(a), Some(b)) => {
                let u = |x: (i64, i64), y: (i64, i64)| (x.0.min(y.0), x.1.max(y.1));
                Extent(Cells {
                    q: u(a.q, b.q),
                    k: u(a.k, b.k),
                    heads: (a.heads.0.min(b.heads.0), a.heads.1.max(b.heads.1)),
                })
            }
        }
    }

    fn inside(&self, c: &Cells) -> bool {
        let within = |x: (i64, i64), y: (i64, i64)| y.0 <= x.0 && x.1 <= y.1;
        match self.get() {
            None => true,
            Some(e) => {
                within(e.q, c.q)
                    && within(e.k, c.k)
                    && c.heads.0 <= e.heads.0
                    && e.heads.1 <= c.heads.1
            }
        }
    }
}

/// Which pairs a partial result holds: the pairs of the works folded into it. Shared between the
/// blocks a result is copied or split into; a block reads it for its own cells only. Nodes live
/// in one arena per device ([`NodeArena`]) and are named by index, so a value holding one is plain
/// data (no reference count to move, no allocation per node).
#[derive(Debug)]
pub(super) struct CovNode<'a> {
    kind: CovKind<'a>,
    ext: Extent,
    /// The sum over all cells, computed when the node is made (a leaf's work sum, a join's two
    /// children's sums): the children are in cache then, and most blocks hold whole works.
    full: PairSum,
}

#[derive(Debug)]
enum CovKind<'a> {
    /// The pairs of one query run or KV run of a work.
    Leaf {
        w: &'a WorkPairs<'a>,
        side: Side,
    },
    Join(Cov, Cov),
}

/// A coverage node: the device whose arena holds it (high 32 bits) and its index there
/// ([`NodeArena`]).
pub(super) type Cov = u64;

/// The coverage nodes of one device: appended by its device only, read by all (a value holding
/// a node reaches other devices by a transfer, which happens after the node is made). Nodes
/// live in buckets of 32, 64, 128, ... slots that never move, each slot set once, so readers
/// need no lock and devices run concurrently ([`Arena`]).
pub(super) type NodeArena<'a> = SlotArena<CovNode<'a>>;

/// Items appended by one owner and read by all, in buckets of 32, 64, 128, ... slots that never
/// move, each slot set once: readers need no lock, and an item stays where it is while the
/// arena lives (coverage nodes by index, [`NodeArena`]; a device's checked works by reference,
/// [`WorkArena`]). One allocation per bucket, not per item. A slot is its value and a flag set
/// once the value is written (a `OnceLock` per slot cost a call into `Once` and a second copy
/// of the value per item: ≈ 5 % of validating a zigzag plan, whose works' pairs are ~400
/// bytes).
pub(super) struct SlotArena<T> {
    buckets: Vec<OnceLock<Box<[Slot<T>]>>>,
    /// Slots taken (each push takes the next, once).
    len: AtomicUsize,
}

struct Slot<T> {
    /// Set (release) once `val` is written; never cleared.
    ready: AtomicBool,
    /// `None` until written (an `Option`, not `MaybeUninit`: the arena then needs no `Drop`
    /// of its own, which the borrow checker would refuse for items that borrow each other).
    val: UnsafeCell<Option<T>>,
}

impl<T> Slot<T> {
    fn empty() -> Self {
        Slot {
            ready: AtomicBool::new(false),
            val: UnsafeCell::new(None),
        }
    }

    /// The value, once written.
    #[inline]
    fn get(&self) -> Option<&T> {
        if !self.ready.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: `ready` is set (with release, read here with acquire) only after the value
        // was written, by the one push that took this slot; the value is never written again,
        // moved or dropped while the arena (which `&self` borrows) lives.
        unsafe { (*self.val.get()).as_ref() }
    }
}

// SAFETY: an arena shared between threads hands out `&T` to any of them (`T: Sync`) and drops
// items another thread may have pushed (`T: Send`); its slots are written once, by the one push
// that took the slot (an atomic counter), and read only after their flag says so (release/
// acquire): no data race.
unsafe impl<T: Send + Sync> Sync for SlotArena<T> {}

impl<T> std::fmt::Debug for SlotArena<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotArena")
            .field("len", &self.len.load(Ordering::Relaxed))
            .finish()
    }
}

/// One device's checked works' pairs: coverage leaves, memo entries and shared trapezoids hold
/// them by reference ([`SlotArena::push_ref`]), for the whole validation of both programs.
pub(super) type WorkArena<'a> = SlotArena<WorkPairs<'a>>;

/// Bucket `b` holds nodes `[32·(2^b − 1), 32·(2^(b+1) − 1))`.
const FIRST_BUCKET: usize = 32;

#[inline]
fn bucket_of(i: usize) -> (usize, usize) {
    let j = i + FIRST_BUCKET;
    let b = (usize::BITS - 1 - j.leading_zeros()) as usize - FIRST_BUCKET.trailing_zeros() as usize;
    (b, j - (FIRST_BUCKET << b))
}

impl<T> Default for SlotArena<T> {
    fn default() -> Self {
        // Buckets for 32·(2^28 − 1) items: every index a `Cov` can name.
        SlotArena {
            buckets: (0..28).map(|_| OnceLock::new()).collect(),
            len: AtomicUsize::new(0),
        }
    }
}

impl<T> SlotArena<T> {
    #[inline]
    fn get(&self, i: usize) -> &T {
        let (b, k) = bucket_of(i);
        self.buckets[b]
            .get()
            .and_then(|s| s.get(k))
            .and_then(Slot::get)
            .expect("an arena item made before it is read")
    }

    /// Prefetches, in two stages a device's turn apart (`stage` 0, then 1), what the next push
    /// touches first: its bucket's cell, then its slot (the old value it checks, the new one
    /// it writes: a cold slot written by a copy was read back before the copy's stores left,
    /// a stall per forward work on 256 devices). Hints only (`Validator::prefetch_ahead`).
    pub(super) fn prefetch_next(&self, stage: usize) {
        let (b, k) = bucket_of(self.len.load(Ordering::Relaxed));
        let Some(cell) = self.buckets.get(b) else {
            return;
        };
        if stage == 0 {
            crate::prefetch::prefetch_bytes(cell, std::mem::size_of_val(cell));
        } else if let Some(slot) = cell.get().and_then(|s| s.get(k)) {
            crate::prefetch::prefetch_bytes(slot, std::mem::size_of::<Slot<T>>());
        }
    }

    /// Appends `n` (only the owning device does); returns its index.
    fn push(&self, n: T) -> usize {
        self.push_slot(n).0
    }

    /// Appends `n` (only the owning device does); returns it where it stays.
    #[inline]
    pub fn push_ref(&self, n: T) -> &T {
        self.push_slot(n).1
    }

    #[inline]
    fn push_slot(&self, n: T) -> (usize, &T) {
        // The next slot, this push's alone (two pushes never take one slot, even from two
        // threads).
        let i = self.len.fetch_add(1, Ordering::Relaxed);
        let (b, k) = bucket_of(i);
        let bucket =
            self.buckets[b].get_or_init(|| (0..FIRST_BUCKET << b).map(|_| Slot::empty()).collect());
        let slot = &bucket[k];
        // SAFETY: slot `i` was taken by this push alone (above) and is not ready yet, so no
        // other write to it and no read of it (reads wait for `ready`) can happen meanwhile.
        unsafe { *slot.val.get() = Some(n) };
        slot.ready.store(true, Ordering::Release);
        (i, slot.get().expect("just written"))
    }
}

/// Every device's coverage nodes: shared arenas when devices run concurrently, one plain vector
/// for all devices when one device runs at a time (no slot to initialize and no atomics: the
/// sequential validator's nodes cost what they did before devices ran in parallel; a node is
/// named by its index there, with its device in the high bits as in the arenas).
#[derive(Debug)]
pub(super) enum Covs<'a> {
    Shared(Vec<NodeArena<'a>>),
    Owned(Vec<CovNode<'a>>),
}

impl<'a> Covs<'a> {
    /// Arenas for devices expecting about `nodes[d]` nodes each (a plain vector gets room for
    /// them: growing one copies it again and again).
    pub fn new(nodes: impl Iterator<Item = usize>, shared: bool) -> Self {
        if shared {
            Covs::Shared(nodes.map(|_| NodeArena::default()).collect())
        } else {
            let mut v = NODE_POOL
                .with_borrow_mut(Option::take)
                .map_or_else(Vec::new, recycle);
            // Exactly: `reserve` doubles a pooled vector that is short (a backward with more
            // instructions than the forward before it), and a doubled one can pass
            // [`NODE_POOL_BYTES`] and go back to the system at the end, so that every
            // validation faulted its nodes in again (ring at 131K on 32x8: forward 35 MB,
            // backward 52 MB of room, doubled to 70 MB; ≈ 2 000 faults per validation).
            v.reserve_exact(nodes.sum::<usize>().max(POOL_MIN_NODES));
            Covs::Owned(v)
        }
    }

    /// Device `dev`'s view.
    pub fn arena(&mut self, dev: u32) -> Arena<'_, 'a> {
        let nodes = match self {
            Covs::Shared(all) => Nodes::Shared(all),
            Covs::Owned(all) => Nodes::Owned(all),
        };
        Arena { nodes, dev }
    }

    /// The shared arenas (devices running concurrently each take a view of them).
    pub fn shared(&self) -> &[NodeArena<'a>] {
        match self {
            Covs::Shared(all) => all,
            Covs::Owned(_) => unreachable!("devices run concurrently only on shared arenas"),
        }
    }
}

impl Drop for Covs<'_> {
    /// The plain vector goes back to this thread's [`NODE_POOL`] (up to [`NODE_POOL_BYTES`]).
    fn drop(&mut self) {
        if let Covs::Owned(v) = self {
            if v.capacity() * std::mem::size_of::<CovNode>() <= NODE_POOL_BYTES {
                let v = recycle(std::mem::take(v));
                NODE_POOL.with_borrow_mut(|pool| *pool = Some(v));
            }
        }
    }
}

/// Room for at least this many nodes (just over 32 MiB of address space, of which a
/// validation touches what it uses: 0.4 MiB for ring at 131K on 4x8): glibc maps an allocation
/// this large outside its heap whatever its dynamic threshold (which stays ≤ 32 MiB on 64-bit
/// targets unless the program sets it), so the vector kept between validations does not pin
/// the heap that the planners' allocations use.
const POOL_MIN_NODES: usize = (32 << 20) / std::mem::size_of::<CovNode>() + 1;

/// The most bytes of nodes' room a thread keeps between validations ([`NODE_POOL`]).
const NODE_POOL_BYTES: usize = 64 << 20;

thread_local! {
    /// The emptied node vector of the previous validation on this thread, for the next one's
    /// [`Covs::new`]. Allocated fresh, its pages were new to the process every time (glibc
    /// returns freed memory to the system), and each validation paid a page fault per 4 KiB of
    /// nodes it made (ring at 131K on 4x8: ≈ 50 faults, ≈ 9 % of its time).
    static NODE_POOL: std::cell::RefCell<Option<Vec<CovNode<'static>>>> =
        const { std::cell::RefCell::new(None) };
}

/// `v` emptied, as a vector of nodes of another lifetime. The standard library collects a
/// vector's `into_iter().map(..)` into the same allocation when the item layouts agree (the
/// same type here, but for its lifetime); `recycling_keeps_the_allocation` checks it.
fn recycle<'b>(mut v: Vec<CovNode<'_>>) -> Vec<CovNode<'b>> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("the vector was cleared"))
        .collect()
}

/// The storage an [`Arena`] reads and appends to.
pub(super) enum Nodes<'v, 'a> {
    Shared(&'v [NodeArena<'a>]),
    /// All devices' nodes, exclusively (one device runs at a time).
    Owned(&'v mut Vec<CovNode<'a>>),
}

/// Device `dev`'s view of all devices' coverage nodes: it makes nodes in its own arena and
/// reads any device's.
pub(super) struct Arena<'v, 'a> {
    pub nodes: Nodes<'v, 'a>,
    pub dev: u32,
}

impl<'a> Arena<'_, 'a> {
    #[inline(always)]
    fn node(&self, c: Cov) -> &CovNode<'a> {
        let (d, i) = ((c >> 32) as usize, (c as u32) as usize);
        match &self.nodes {
            Nodes::Shared(all) => all[d].get(i),
            Nodes::Owned(all) => &all[i],
        }
    }

    /// Always inlined: called, it received the node through memory its caller had just
    /// written field by field, and its copy into the vector (wide loads over those narrower
    /// stores) waited for them to drain (≈ 60 % of its samples by the clock).
    #[inline(always)]
    fn push(&mut self, n: CovNode<'a>) -> Cov {
        let dev = self.dev as usize;
        let i = match &mut self.nodes {
            Nodes::Shared(all) => all[dev].push(n),
            Nodes::Owned(all) => {
                all.push(n);
                all.len() - 1
            }
        };
        let i = u32::try_from(i).expect("fewer than 2^32 coverage nodes per device");
        ((self.dev as u64) << 32) | i as u64
    }

    /// The pairs of `side` of `w`: what a work adds to the output rows of one query run, or to
    /// the dKV rows of one KV run.
    #[inline]
    pub fn leaf(&mut self, w: &'a WorkPairs<'a>, side: Side) -> Cov {
        let (ext, full) = w.side(side);
        self.push(CovNode {
            ext,
            full,
            kind: CovKind::Leaf { w, side },
        })
    }

    #[inline]
    pub fn join(&mut self, a: Cov, b: Cov) -> Cov {
        let (x, y) = (self.node(a), self.node(b));
        let n = CovNode {
            ext: x.ext.union(y.ext),
            full: x.full.add(y.full),
            kind: CovKind::Join(a, b),
        };
        self.push(n)
    }

    /// Same pairs by construction (one node, or equal trees of shared works).
    pub fn same(&self, a: Cov, b: Cov) -> bool {
        if a == b {
            return true;
        }
        match (&self.node(a).kind, &self.node(b).kind) {
            (CovKind::Leaf { w, side }, CovKind::Leaf { w: w2, side: s2 }) => {
                std::ptr::eq(*w, *w2) && side == s2
            }
            (CovKind::Join(a1, a2), CovKind::Join(b1, b2)) => {
                self.same(*a1, *b1) && self.same(*a2, *b2)
            }
            _ => false,
        }
    }

    /// Same pairs by content (debug cross-checks of fast paths, whose nodes and works are not
    /// the general path's): trees of the same shape whose leaves hold the same side of works
    /// with the same pairs ([`WorkPairs::same_as`]).
    #[cfg(debug_assertions)]
    pub fn same_content(&self, a: Cov, b: Cov) -> bool {
        if a == b {
            return true;
        }
        match (&self.node(a).kind, &self.node(b).kind) {
            (CovKind::Leaf { w, side }, CovKind::Leaf { w: w2, side: s2 }) => {
                side == s2 && (std::ptr::eq(*w, *w2) || w.same_as(w2))
            }
            (CovKind::Join(a1, a2), CovKind::Join(b1, b2)) => {
                self.same_content(*a1, *b1) && self.same_content(*a2, *b2)
            }
            _ => false,
        }
    }

    /// Sums a coverage over `cells`: sub-trees whose extent lies inside `cells` by their full
    /// sum, every other node once (`memo`, cleared here: a sub-tree shared by several joins is
    /// summed once and counted once per reference).
    pub fn sum(&self, h: &Hasher, cov: Cov, cells: &Cells, memo: &mut Memo) -> PairSum {
        let node = |c: Cov| self.node(c);
        if node(cov).ext.inside(cells) {
            return node(cov).full;
        }
        // Clearing touches the whole table, even when empty: only when used.
        if !memo.is_empty() {
            memo.clear();
        }
        // Post-order walk with an explicit stack (accumulation chains can be long).
        let mut stack: Vec<(Cov, bool)> = vec![(cov, false)];
        let mut vals: Vec<PairSum> = Vec::new();
        while let Some((c, expanded)) = stack.pop() {
            let n = node(c);
            if !expanded {
                if n.ext.inside(cells) {
                    vals.push(n.full);
                    continue;
                }
                if let Some(v) = memo.get(&c) {
                    vals.push(*v);
                    continue;
                }
                match &n.kind {
                    CovKind::Leaf { w, side } => {
                        let v = w.sum(h, cells, *side);
                        memo.insert(c, v);
                        vals.push(v);
                    }
                    CovKind::Join(a, b) => {
                        stack.push((c, true));
                        stack.push((*b, false));
                        stack.push((*a, false));
                    }
                }
            } else {
                let b = vals.pop().expect("child value");
                let a = vals.pop().expect("child value");
                let v = a.add(b);
                memo.insert(c, v);
                vals.push(v);
            }
        }
        vals.pop().unwrap_or_default()
    }
}

/// Sums of coverage nodes during one [`Arena::sum`], keyed by index (a multiplicative hash: the
/// keys are indices or fingerprints, no adversary chooses them).
pub(super) type Memo = HashMap<Cov, PairSum, BuildHasherDefault<PtrHash>>;

#[derive(Default)]
pub(super) struct PtrHash(u64);

impl std::hash::Hasher for PtrHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::MaskSpec;

    /// Brute-force pair set summary for small cases.
    fn brute(h: &Hasher, pairs: &[(u64, u32, u64)]) -> PairSum {
        let mut s = PairSum::default();
        for &(q, hd, k) in pairs {
            s = s.add(PairSum {
                count: 1,
                hash: mulm(mulm(powm(h.x, q), h.zp.pow(hd as u64)), h.yp.pow(k)),
            });
        }
        s
    }

    /// A slot arena hands back every item where it was put, across buckets and from other
    /// threads, and drops each item once with the arena.
    #[test]
    fn slot_arena_keeps_and_drops_its_items() {
        use std::sync::atomic::AtomicUsize;
        use std::sync::Arc;
        struct Item(usize, Arc<AtomicUsize>);
        impl Drop for Item {
            fn drop(&mut self) {
                self.1.fetch_add(1, Ordering::Relaxed);
            }
        }
        let drops = Arc::new(AtomicUsize::new(0));
        let n = 3 * FIRST_BUCKET + 5; // into the third bucket
        {
            let arena: SlotArena<Item> = SlotArena::default();
            let mut refs = Vec::new();
            for i in 0..n {
                let r = arena.push_ref(Item(i, drops.clone()));
                assert_eq!(r.0, i);
                refs.push(r as *const Item);
            }
            for (i, &r) in refs.iter().enumerate() {
                // Items stay where they were put.
                assert!(std::ptr::eq(arena.get(i), r));
                assert_eq!(arena.get(i).0, i);
            }
            std::thread::scope(|s| {
                s.spawn(|| {
                    assert_eq!(arena.get(n - 1).0, n - 1);
                    assert_eq!(arena.push(Item(n, drops.clone())), n);
                });
            });
            assert_eq!(arena.get(n).0, n);
            assert_eq!(drops.load(Ordering::Relaxed), 0);
        }
        assert_eq!(drops.load(Ordering::Relaxed), n + 1);
    }

    /// A node vector handed from one validation to the next keeps its allocation.
    #[test]
    fn recycling_keeps_the_allocation() {
        let v: Vec<CovNode<'static>> = Vec::with_capacity(100);
        let p = v.as_ptr() as usize;
        let w: Vec<CovNode<'_>> = recycle(v);
        assert_eq!((w.as_ptr() as usize, w.capacity(), w.len()), (p, 100, 0));
        // And through the pool: a second set of arenas gets the first one's vector, emptied.
        let at = |c: &Covs| match c {
            Covs::Owned(v) => (v.as_ptr() as usize, v.len(), v.capacity()),
            Covs::Shared(_) => unreachable!(),
        };
        let mut a = Covs::new([1000usize, 1000].into_iter(), false);
        let w = w2(&Hasher::new(), Vec::new());
        let mut ar = a.arena(1);
        let leaf = ar.leaf(w, Side::Q(0));
        let join = ar.join(leaf, leaf);
        assert_eq!((leaf >> 32, join >> 32), (1, 1));
        assert!(ar.same(join, join) && !ar.same(leaf, join));
        let (p, n, cap) = at(&a);
        assert_eq!(n, 2);
        assert!(cap >= POOL_MIN_NODES);
        drop(a);
        let b = Covs::new([10usize, 10].into_iter(), false);
        assert_eq!(at(&b), (p, 0, cap));
    }

    /// A program that needs more room than the pooled vector has gets just that room, not
    /// double, so that the vector stays within what the pool keeps (a forward, then a larger
    /// backward, both near the pool's size).
    #[test]
    fn a_larger_program_grows_the_pooled_vector_exactly() {
        let per = NODE_POOL_BYTES / std::mem::size_of::<CovNode>();
        let (small, large) = (per * 9 / 16, per * 13 / 16);
        assert!(small > POOL_MIN_NODES);
        let cap = |c: &Covs| match c {
            Covs::Owned(v) => v.capacity(),
            Covs::Shared(_) => unreachable!(),
        };
        drop(Covs::new([small].into_iter(), false));
        let b = Covs::new([large].into_iter(), false);
        assert_eq!(cap(&b), large);
        drop(b);
        // Kept: the next validation starts with the larger room.
        let c = Covs::new([small].into_iter(), false);
        assert_eq!(cap(&c), large);
    }

    #[test]
    fn closed_form_sums_match_brute_force() {
        let h = Hasher::shared();
        let masks = [
            MaskSpec::Causal,
            MaskSpec::Full,
            MaskSpec::SlidingWindow { window: 5 },
            MaskSpec::Lambda { sink: 2, window: 4 },
            MaskSpec::shared_question(),
            MaskSpec::CausalBlockwise { block: 3, local: 1 },
            MaskSpec::PrefixLm { prefix: 6 },
        ];
        let len = 23u32;
        let off = 7u64;
        for m in masks {
            let cm = m.compile(len);
            for (q, k) in [((0, len), (0, len)), ((3, 17), (2, 9)), ((10, 11), (0, 23))] {
                let mut pairs = Vec::new();
                for qq in q.0..q.1 {
                    for (s, e) in cm.row_ranges(qq) {
                        for kk in s.max(k.0)..e.min(k.1) {
                            for hd in 1..3 {
                                pairs.push((off + qq as u64, hd, off + kk as u64));
                            }
                        }
                    }
                }
                let got = times_heads(mask_sum(h, &cm, off, q, k), h.heads(1, 3));
                assert_eq!(got, brute(h, &pairs), "{m:?} {q:?} {k:?}");
                assert_eq!(got.count, 2 * cm.count_tile(q.0, q.1, k.0, k.1));
            }
        }
    }

    /// The causal shortcut of [`trap_sum`] equals a pair-by-pair sum, and the general splitting,
    /// for constant lower bounds and constant or slope-1 upper bounds placed all around the
    /// query range (crossing before, inside, after it; empty; none of one kind).
    #[test]
    fn causal_trap_sums_match_brute_force() {
        let h = Hasher::shared();
        let off = 11u64;
        let mut taken = 0;
        for (q0, q1) in [(0i64, 9i64), (4, 13), (6, 7), (5, 5)] {
            for lo in [
                vec![Lin::c(0)],
                vec![Lin::c(3), Lin::c(-2)],
                vec![Lin::c(9)],
                // Sliding windows: a slope-1 lower bound, alone or against a constant.
                vec![Lin::row(-3)],
                vec![Lin::row(-4), Lin::c(2)],
                vec![Lin::row(-7), Lin::c(5), Lin::row(-9)],
                vec![Lin::row(2), Lin::c(0)],
            ] {
                for hi in [
                    vec![Lin::row(1)],
                    vec![Lin::row(1), Lin::c(8)],
                    vec![Lin::row(-3), Lin::c(20), Lin::row(2)],
                    vec![Lin::c(6)],
                    vec![Lin::c(2), Lin::c(12)],
                    vec![Lin::row(-20), Lin::c(5)],
                    vec![Lin { c: 30, slope: -1 }, Lin::row(0)],
                ] {
                    let (l, u) = (
                        |q: i64| lo.iter().map(|b| b.at(q)).max().unwrap(),
                        |q: i64| hi.iter().map(|b| b.at(q)).min().unwrap(),
                    );
                    let mut pairs = Vec::new();
                    for q in q0..q1 {
                        for k in l(q)..u(q) {
                            pairs.push((off + q as u64, 0, (off as i64 + k) as u64));
                        }
                    }
                    // Head 0: z^0 = 1, the pairs' own hash.
                    let want = brute(h, &pairs);
                    let fast = causal_trap_sum(h, q0, q1, &lo, &hi, off, false);
                    taken += usize::from(fast.is_some());
                    let general = general_trap_sum(h, q0, q1, &lo, &hi, off, false);
                    assert_eq!(general, want, "{q0}..{q1} {lo:?} {hi:?}");
                    if let Some(f) = fast {
                        assert_eq!(f, want, "{q0}..{q1} {lo:?} {hi:?}");
                    }
                    assert_eq!(trap_sum(h, q0, q1, &lo, &hi, off, true).count, want.count);
                }
            }
        }
        assert!(taken >= 80, "the slope-0/1 shortcut took {taken} cases");
    }

    #[test]
    fn coverage_sums_split_over_cells() {
        // Two works over a causal sequence (tokens at global rows + 100); blocks of a
        // coverage add up to its full sum.
        let h = Hasher::shared();
        let causal = |q0: u32, q1: u32, k0: i64, k1: i64, krun| {
            let (lo, hi) = ([Lin::c(k0), Lin::c(k0)], [Lin::row(1), Lin::c(k1)]);
            Trap {
                q0,
                q1,
                lo,
                hi,
                qrun: 0,
                krun,
                off: 3,
                gq: 100,
                gk: 100,
                full: trap_sum(h, q0 as i64, q1 as i64, &lo, &hi, 3, false),
            }
        };
        // One query run (global rows 100..120), two KV runs (keys 0..10 and 10..20).
        let w = |traps| {
            let heads = [(0, 2), (4, 5)].into_iter().collect();
            let k = [(100, 110), (110, 120)];
            &*Box::leak(Box::new(WorkPairs::new(
                h,
                heads,
                traps,
                [(100, 120)].into_iter(),
                k.into_iter(),
            )))
        };
        let mut all = Covs::new([0].into_iter(), true);
        let mut covs = all.arena(0);
        let a = covs.leaf(w(vec![causal(0, 10, 0, 10, 0)]), Side::Q(0));
        let b = covs.leaf(
            w(vec![causal(10, 20, 0, 10, 0), causal(10, 20, 10, 20, 1)]),
            Side::Q(0),
        );
        let ab = covs.join(a, b);
        let both = covs.join(ab, ab);
        let mut memo = Memo::default();
        let cells = |q: (i64, i64), heads: (u32, u32)| Cells {
            q: (q.0 + 100, q.1 + 100),
            k: (100, 120),
            heads,
        };
        let full = covs.sum(h, ab, &cells((0, 20), (0, 8)), &mut memo);
        assert_eq!(full.count, 3 * (55 + 155));
        let mut parts = PairSum::default();
        for q in [(0, 7), (7, 13), (13, 20)] {
            for hd in [(0, 1), (1, 8)] {
                parts = parts.add(covs.sum(h, ab, &cells(q, hd), &mut memo));
            }
        }
        assert_eq!(parts, full);
        // A shared sub-tree counts once per reference.
        let twice = covs.sum(h, both, &cells((0, 20), (0, 8)), &mut memo);
        assert_eq!(twice, full.add(full));
        let dkv = covs.leaf(
            w(vec![causal(10, 20, 0, 10, 0), causal(10, 20, 10, 20, 1)]),
            Side::K(1),
        );
        let k = Cells {
            q: (100, 120),
            k: (110, 120),
            heads: (0, 8),
        };
        assert_eq!(covs.sum(h, dkv, &k, &mut memo).count, 3 * 55);
        // A leaf read for some query rows: those rows' pairs.
        let half = covs.sum(h, a, &cells((0, 5), (0, 8)), &mut memo);
        assert_eq!(half.count, 3 * 15);
        // The leaf of one of two runs holding the same rows holds only its own run's pairs.
        let mut t = causal(0, 10, 0, 10, 0);
        t.qrun = 1;
        let two = w2(h, vec![causal(0, 10, 0, 10, 0), t]);
        let one = covs.leaf(two, Side::Q(1));
        assert_eq!(
            covs.sum(h, one, &cells((0, 20), (0, 8)), &mut memo).count,
            3 * 55
        );
    }

    /// Pairs of two query runs over the same global rows 100..120.
    fn w2(h: &Hasher, traps: Vec<Trap>) -> &'static WorkPairs<'static> {
        let heads = [(0, 2), (4, 5)].into_iter().collect();
        let q = [(100, 120), (100, 120)];
        Box::leak(Box::new(WorkPairs::new(
            h,
            heads,
            traps,
            q.into_iter(),
            [(100, 110), (110, 120)].into_iter(),
        )))
    }

    #[test]
    fn rectangles_sum_like_trapezoids() {
        let h = Hasher::shared();
        for (q0, q1, k0, k1, off) in [
            (0u64, 1u64, 0u64, 1u64, 0u64),
            (3, 17, 2, 9, 40),
            (5, 6, 0, 30, 7),
        ] {
            let lo = [Lin::c(k0 as i64), Lin::c(0)];
            let hi = [Lin::c(k1 as i64), Lin::c(100)];
            let t = trap_sum(h, q0 as i64, q1 as i64, &lo, &hi, off, false);
            let r = Hasher::rect(
                h.xs(off + q0, off + q1),
                h.ys(off + k0, off + k1),
                q1 - q0,
                k1 - k0,
            );
            assert_eq!(r, t, "{q0}..{q1} × {k0}..{k1}");
        }
    }

    #[test]
    fn the_quick_mask_test_agrees_with_counting() {
        // Whenever the sufficient test says "inside", every pair is inside (exact count).
        let h = Hasher::shared();
        let masks = [
            MaskSpec::Causal,
            MaskSpec::Full,
            MaskSpec::SlidingWindow { window: 5 },
            MaskSpec::Lambda { sink: 2, window: 4 },
            MaskSpec::CausalBlockwise { block: 3, local: 1 },
            MaskSpec::PrefixLm { prefix: 6 },
        ];
        let len = 23u32;
        let mut quick = 0;
        for m in masks {
            let cm = m.compile(len);
            for (q0, q1) in [(0u32, 23u32), (3, 9), (10, 11), (12, 23)] {
                for (k0, k1) in [(0i64, 23i64), (0, 3), (2, 9), (9, 12), (20, 23)] {
                    for slope in [0, 1] {
                        let lo = [Lin::c(k0), Lin::c(k0)];
                        let hi = [Lin { c: 1, slope }, Lin::c(k1)];
                        let hi = if slope == 0 {
                            [Lin::c(k1), Lin::c(k1)]
                        } else {
                            hi
                        };
                        let full = trap_sum(h, q0 as i64, q1 as i64, &lo, &hi, 0, true);
                        let tr = Trap {
                            q0,
                            q1,
                            lo,
                            hi,
                            qrun: 0,
                            krun: 0,
                            off: 0,
                            gq: 0,
                            gk: 0,
                            full,
                        };
                        let mut exact = 0;
                        for q in q0..q1 {
                            let l = lo.iter().map(|x| x.at(q as i64)).max().unwrap();
                            let u = hi.iter().map(|x| x.at(q as i64)).min().unwrap();
                            for (s, e) in cm.row_ranges(q) {
                                exact += (u.min(e as i64) - l.max(s as i64)).max(0) as u64;
                            }
                        }
                        if slope == 0 {
                            let (a, b) = (q0 as i64, q1 as i64);
                            let rect = rect_inside_mask(&cm, mask_seg(&cm, a), (a, b), (k0, k1));
                            assert_eq!(rect, inside_mask(&cm, &tr), "{m:?}");
                        }
                        if inside_mask(&cm, &tr) {
                            quick += 1;
                            assert_eq!(exact, full.count, "{m:?} {q0}..{q1} {k0}..{k1}");
                        }
                        assert_eq!(count_inside_mask(h, &cm, &tr), exact);
                    }
                }
            }
        }
        assert!(quick > 10, "the quick test decides common cases ({quick})");
    }

    #[test]
    fn table_powers_match_square_and_multiply() {
        let t = Powers::new(0x0c5a_d7e1_93b2_4a6d % P);
        for e in [
            0u64,
            1,
            2047,
            2048,
            4_194_303,
            4_194_304,
            123_456_789,
            1 << 33,
            u64::MAX / 3,
        ] {
            assert_eq!(t.pow(e), powm(0x0c5a_d7e1_93b2_4a6d % P, e), "{e}");
        }
    }

    #[test]
    fn crossing_bounds_are_split_exactly() {
        let h = Hasher::shared();
        // lo = max(q/… slopes −1, 0, 2), hi = min(slopes 1, 3) with crossings inside.
        let lo = [
            Lin { c: 20, slope: -1 },
            Lin::c(3),
            Lin { c: -30, slope: 2 },
        ];
        let hi = [Lin { c: 4, slope: 1 }, Lin { c: -2, slope: 3 }, Lin::c(40)];
        let mut pairs = Vec::new();
        for q in 0..40i64 {
            let l = lo.iter().map(|x| x.at(q)).max().unwrap();
            let u = hi.iter().map(|x| x.at(q)).min().unwrap();
            for k in l..u {
                pairs.push((5 + q as u64, 0, 5 + k as u64));
            }
        }
        let got = trap_sum(h, 0, 40, &lo, &hi, 5, false);
        assert_eq!(times_heads(got, h.heads(0, 1)), brute(h, &pairs));
    }
}
