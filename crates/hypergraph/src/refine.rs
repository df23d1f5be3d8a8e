//! Local-search refinement of a k-way partition on one level of the hierarchy:
//! label propagation (cheap, positive-gain moves only) followed by k-way FM
//! (Fiduccia–Mattheyses): repeatedly move the unlocked vertex with the best
//! capacity-respecting gain (negative gains allowed to climb out of local minima), then
//! roll back to the best prefix of the move sequence.
//!
//! Gains are exact: they are recomputed on touch (only for pins of nets whose pin counts
//! crossed 0/1/2, see `PartState::touches_gains`) and verified again when popped from
//! the priority queue, so a stale key can never cause a wrong move. No move ever
//! violates a capacity; an already infeasible partition is left to [`crate::balance`].

use std::collections::BinaryHeap;

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::state::PartState;

/// Knobs for one level's refinement.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RefineParams {
    pub lp_rounds: usize,
    pub fm_passes: usize,
    /// Stop a pass after this many moves without a new best prefix.
    pub fm_stop: usize,
    /// Nets larger than this do not trigger neighbour gain updates (performance guard).
    pub max_update_net: usize,
    /// Net-level group moves (see [`net_moves`]) for groups of at most this many pins;
    /// 0 = off.
    pub net_pins: usize,
    /// Rounds of [`net_moves`] per level.
    pub net_rounds: usize,
    /// [`net_moves`] also moves all pins of a net that lies entirely in one part.
    pub net_whole: bool,
    /// [`net_moves`] runs inside the bisections (k = 2) too.
    pub net_bisect: bool,
}

const NONE: i64 = i64::MIN;

fn is_boundary(st: &PartState, v: u32) -> bool {
    let k = st.k;
    let a = st.parts[v as usize] as usize;
    st.hg
        .nets(v)
        .iter()
        .any(|&e| (st.phi[e as usize * k + a] as usize) < st.hg.net_size(e))
}

#[inline]
fn is_fixed(fixed: &[Option<u32>], v: u32) -> bool {
    fixed.get(v as usize).is_some_and(|f| f.is_some())
}

/// Moves `v` to part `t` with `touched` = its nets whose gains the move changes (found before
/// the move), for the caller to update their pins; returns `v`'s former part.
#[inline]
fn move_noting(st: &mut PartState, v: u32, t: usize, touched: &mut Vec<u32>) -> usize {
    let a = st.parts[v as usize] as usize;
    touched.clear();
    touched.extend(
        st.hg
            .nets(v)
            .iter()
            .copied()
            .filter(|&e| st.touches_gains(e, a, t)),
    );
    st.move_vertex(v, t);
    a
}

/// Label propagation: rounds of positive-gain moves over active boundary vertices
/// (2-way without topology: [`lp2`], same moves).
pub(crate) fn label_propagation(
    st: &mut PartState,
    fixed: &[Option<u32>],
    p: &RefineParams,
    rng: &mut ChaCha8Rng,
) -> i64 {
    if st.k == 2 && st.topo.is_none() {
        return lp2(st, fixed, p, rng);
    }
    lp_kway(st, fixed, p, rng)
}

fn lp_kway(
    st: &mut PartState,
    fixed: &[Option<u32>],
    p: &RefineParams,
    rng: &mut ChaCha8Rng,
) -> i64 {
    let n = st.hg.num_vertices();
    let mut order: Vec<u32> = (0..n as u32)
        .filter(|&v| !is_fixed(fixed, v) && is_boundary(st, v))
        .collect();
    let mut active = vec![false; n];
    let mut total = 0i64;
    let mut touched: Vec<u32> = Vec::new();
    for _ in 0..p.lp_rounds {
        order.shuffle(rng);
        let mut next: Vec<u32> = Vec::new();
        let mut gained = 0i64;
        for &v in &order {
            let Some((t, g)) = st.best_move(v) else {
                continue;
            };
            if g <= 0 {
                continue;
            }
            move_noting(st, v, t, &mut touched);
            gained += g;
            for &e in &touched {
                if st.hg.net_size(e) > p.max_update_net {
                    continue;
                }
                for &u in st.hg.pins(e) {
                    if !active[u as usize] && !is_fixed(fixed, u) {
                        active[u as usize] = true;
                        next.push(u);
                    }
                }
            }
        }
        total += gained;
        for &u in &next {
            active[u as usize] = false;
        }
        next.sort_unstable();
        order = next;
        if gained == 0 || order.is_empty() {
            break;
        }
    }
    total
}

/// k-way FM passes until a pass brings no improvement; returns the total improvement
/// (2-way without topology: [`fm2`], same moves).
pub(crate) fn fm(
    st: &mut PartState,
    fixed: &[Option<u32>],
    p: &RefineParams,
    rng: &mut ChaCha8Rng,
) -> i64 {
    if st.k == 2 && st.topo.is_none() {
        return fm2(st, fixed, p, rng);
    }
    fm_kway(st, fixed, p, rng)
}

fn fm_kway(
    st: &mut PartState,
    fixed: &[Option<u32>],
    p: &RefineParams,
    rng: &mut ChaCha8Rng,
) -> i64 {
    let n = st.hg.num_vertices();
    let mut ws = FmWorkspace {
        key: vec![NONE; n],
        locked: vec![false; n],
        stamp: vec![0; n],
        rank: (0..n as u32).collect(),
    };
    let mut total = 0;
    for _ in 0..p.fm_passes {
        ws.rank.shuffle(rng);
        let imp = fm_pass(st, fixed, p, &mut ws);
        total += imp;
        if imp <= 0 {
            break;
        }
    }
    total
}

struct FmWorkspace {
    key: Vec<i64>,
    locked: Vec<bool>,
    stamp: Vec<u32>,
    rank: Vec<u32>,
}

fn fm_pass(
    st: &mut PartState,
    fixed: &[Option<u32>],
    p: &RefineParams,
    ws: &mut FmWorkspace,
) -> i64 {
    let n = st.hg.num_vertices();
    let mut heap: BinaryHeap<(i64, u32, u32)> = BinaryHeap::new();
    for v in 0..n as u32 {
        if is_fixed(fixed, v) || !is_boundary(st, v) {
            continue;
        }
        if let Some(g) = st.best_gain(v) {
            ws.key[v as usize] = g;
            heap.push((g, ws.rank[v as usize], v));
        }
    }
    let mut moves: Vec<(u32, u32)> = Vec::new();
    let (mut cur, mut best, mut best_len) = (0i64, 0i64, 0usize);
    let mut touched: Vec<u32> = Vec::new();
    let mut step: u32 = 0;
    while let Some((g, _, v)) = heap.pop() {
        let vi = v as usize;
        if ws.locked[vi] || ws.key[vi] != g {
            continue;
        }
        ws.key[vi] = NONE;
        let Some((t, ng)) = st.best_move(v) else {
            continue;
        };
        if ng < g {
            ws.key[vi] = ng;
            heap.push((ng, ws.rank[vi], v));
            continue;
        }
        let a = move_noting(st, v, t, &mut touched);
        ws.locked[vi] = true;
        moves.push((v, a as u32));
        cur += ng;
        if cur > best {
            best = cur;
            best_len = moves.len();
        }
        if moves.len() - best_len >= p.fm_stop {
            break;
        }
        step += 1;
        for &e in &touched {
            if st.hg.net_size(e) > p.max_update_net {
                continue;
            }
            for &u in st.hg.pins(e) {
                let ui = u as usize;
                if ws.locked[ui] || ws.stamp[ui] == step || is_fixed(fixed, u) {
                    continue;
                }
                ws.stamp[ui] = step;
                match st.best_gain(u) {
                    Some(g2) => {
                        if ws.key[ui] != g2 {
                            ws.key[ui] = g2;
                            heap.push((g2, ws.rank[ui], u));
                        }
                    }
                    None => ws.key[ui] = NONE,
                }
            }
        }
    }
    for &(v, a) in moves[best_len..].iter().rev() {
        st.move_vertex(v, a as usize);
    }
    for &(v, _) in &moves {
        ws.locked[v as usize] = false;
    }
    for (_, _, v) in heap.into_iter() {
        ws.key[v as usize] = NONE;
    }
    // stamps are compared against a per-pass step counter: reset them.
    ws.stamp.iter_mut().for_each(|s| *s = 0);
    best
}

/// Addressable binary max-heap of vertices keyed by `(gain, rank)`.
struct VertexHeap {
    heap: Vec<u32>,
    pos: Vec<u32>,
    key: Vec<(i64, u32)>,
}

const NOT_IN: u32 = u32::MAX;

impl VertexHeap {
    fn new(n: usize) -> Self {
        VertexHeap {
            heap: Vec::with_capacity(n),
            pos: vec![NOT_IN; n],
            key: vec![(0, 0); n],
        }
    }
    #[inline]
    fn less(&self, a: u32, b: u32) -> bool {
        self.key[a as usize] < self.key[b as usize]
    }
    fn sift_up(&mut self, mut i: usize) {
        let v = self.heap[i];
        while i > 0 {
            let parent = (i - 1) / 2;
            let pv = self.heap[parent];
            if !self.less(pv, v) {
                break;
            }
            self.heap[i] = pv;
            self.pos[pv as usize] = i as u32;
            i = parent;
        }
        self.heap[i] = v;
        self.pos[v as usize] = i as u32;
    }
    fn sift_down(&mut self, mut i: usize) {
        let v = self.heap[i];
        let len = self.heap.len();
        loop {
            let l = 2 * i + 1;
            if l >= len {
                break;
            }
            let r = l + 1;
            let c = if r < len && self.less(self.heap[l], self.heap[r]) {
                r
            } else {
                l
            };
            let cv = self.heap[c];
            if !self.less(v, cv) {
                break;
            }
            self.heap[i] = cv;
            self.pos[cv as usize] = i as u32;
            i = c;
        }
        self.heap[i] = v;
        self.pos[v as usize] = i as u32;
    }
    /// Inserts `v` or changes its key.
    fn set(&mut self, v: u32, key: (i64, u32)) {
        let vi = v as usize;
        if self.pos[vi] == NOT_IN {
            self.key[vi] = key;
            self.heap.push(v);
            self.sift_up(self.heap.len() - 1);
        } else {
            let old = self.key[vi];
            if old == key {
                return;
            }
            self.key[vi] = key;
            let i = self.pos[vi] as usize;
            if key > old {
                self.sift_up(i);
            } else {
                self.sift_down(i);
            }
        }
    }
    fn remove(&mut self, v: u32) {
        let i = self.pos[v as usize];
        if i == NOT_IN {
            return;
        }
        self.pos[v as usize] = NOT_IN;
        let last = self.heap.pop().unwrap();
        if last != v {
            let i = i as usize;
            self.heap[i] = last;
            self.pos[last as usize] = i as u32;
            self.sift_up(i);
            let i = self.pos[last as usize] as usize;
            self.sift_down(i);
        }
    }
    fn pop(&mut self) -> Option<u32> {
        let &v = self.heap.first()?;
        self.remove(v);
        Some(v)
    }
    fn clear(&mut self) {
        for &v in &self.heap {
            self.pos[v as usize] = NOT_IN;
        }
        self.heap.clear();
    }
}

/// Exact 2-way gains (no topology): `sum_{e in v} w(e) ([phi(e, a) = 1] - [phi(e, b) = 0])`.
fn gains2(st: &PartState, gain: &mut [i64]) {
    let hg = st.hg;
    for (v, g) in gain.iter_mut().enumerate() {
        let a = st.parts[v] as usize;
        let mut x = 0i64;
        for &e in hg.nets(v as u32) {
            let w = hg.net_weight(e) as i64;
            let ei = e as usize * 2;
            x += w & -i64::from(st.phi[ei + a] == 1);
            x -= w & -i64::from(st.phi[ei + (1 - a)] == 0);
        }
        *g = x;
    }
}

/// Moves `v` to the other side of a 2-way partition and updates the exact gains of `v`
/// and of the pins of its nets by the classic delta rules; calls `touched(u)` for every
/// pin `u` (`v` included) of a net whose pin counts crossed 0/1/2 (the pins whose gain may
/// have changed), for nets of at most `max_net` pins. Nets above `max_net` still get their
/// gains updated.
#[inline]
fn move2(
    st: &mut PartState,
    gain: &mut [i64],
    v: u32,
    max_net: usize,
    mut touched: impl FnMut(u32),
) {
    let hg = st.hg;
    let a = st.parts[v as usize] as usize;
    let b = 1 - a;
    st.move_vertex(v, b);
    // moving back undoes the move exactly
    gain[v as usize] = -gain[v as usize];
    for &e in hg.nets(v) {
        let w = hg.net_weight(e) as i64;
        let ei = e as usize * 2;
        // pin counts before the move
        let (pa, pb) = (st.phi[ei + a] + 1, st.phi[ei + b] - 1);
        if pa > 2 && pb > 1 {
            continue;
        }
        // same delta for every pin on a given side
        let mut da = 0i64; // pins still in a
        let mut db = 0i64; // pins in b (other than v)
        if pb == 0 {
            da += w; // e stops being entirely in a
            db += w;
        }
        if pb == 1 {
            db -= w; // the lone pin in b no longer uncuts e by leaving
        }
        if pa == 1 {
            da -= w; // e is now entirely in b
            db -= w;
        }
        if pa == 2 {
            da += w; // the lone remaining pin in a uncuts e by leaving
        }
        let notify = hg.net_size(e) <= max_net;
        for &u in hg.pins(e) {
            let ui = u as usize;
            if u != v {
                gain[ui] += if st.parts[ui] as usize == a { da } else { db };
            }
            if notify {
                touched(u);
            }
        }
    }
}

/// Two-way label propagation (no topology): [`label_propagation`] with exact gains kept
/// by delta updates. Same moves.
fn lp2(st: &mut PartState, fixed: &[Option<u32>], p: &RefineParams, rng: &mut ChaCha8Rng) -> i64 {
    let n = st.hg.num_vertices();
    let mut gain = vec![0i64; n];
    gains2(st, &mut gain);
    let mut order: Vec<u32> = (0..n as u32)
        .filter(|&v| !is_fixed(fixed, v) && is_boundary(st, v))
        .collect();
    let mut active = vec![false; n];
    let mut total = 0i64;
    let mut next: Vec<u32> = Vec::new();
    for _ in 0..p.lp_rounds {
        order.shuffle(rng);
        next.clear();
        let mut gained = 0i64;
        for &v in &order {
            let g = gain[v as usize];
            if g <= 0 || !st.fits(v, 1 - st.parts[v as usize] as usize) {
                continue;
            }
            move2(st, &mut gain, v, p.max_update_net, |u| {
                if !active[u as usize] && !is_fixed(fixed, u) {
                    active[u as usize] = true;
                    next.push(u);
                }
            });
            gained += g;
        }
        total += gained;
        for &u in &next {
            active[u as usize] = false;
        }
        next.sort_unstable();
        std::mem::swap(&mut order, &mut next);
        if gained == 0 || order.is_empty() {
            break;
        }
    }
    total
}

/// Two-way FM (no topology): the k-way FM specialised to one target per vertex, with
/// gains kept by the classic delta rules instead of recomputed, and an addressable heap
/// instead of a lazy one. Same moves as [`fm`] would make (same keys, same tie-break by
/// rank, same stopping rule).
fn fm2(st: &mut PartState, fixed: &[Option<u32>], p: &RefineParams, rng: &mut ChaCha8Rng) -> i64 {
    let n = st.hg.num_vertices();
    let mut rank: Vec<u32> = (0..n as u32).collect();
    let mut heap = VertexHeap::new(n);
    let mut gain = vec![0i64; n];
    let mut locked = vec![false; n];
    let mut moves: Vec<u32> = Vec::new();
    let mut touched: Vec<u32> = Vec::new();
    let mut total = 0;
    for _ in 0..p.fm_passes {
        rank.shuffle(rng);
        let imp = fm2_pass(
            st,
            fixed,
            p,
            &rank,
            &mut heap,
            &mut gain,
            &mut locked,
            &mut moves,
            &mut touched,
        );
        total += imp;
        if imp <= 0 {
            break;
        }
    }
    total
}

#[allow(clippy::too_many_arguments)]
fn fm2_pass(
    st: &mut PartState,
    fixed: &[Option<u32>],
    p: &RefineParams,
    rank: &[u32],
    heap: &mut VertexHeap,
    gain: &mut [i64],
    locked: &mut [bool],
    moves: &mut Vec<u32>,
    touched: &mut Vec<u32>,
) -> i64 {
    let n = st.hg.num_vertices();
    gains2(st, gain);
    for v in 0..n as u32 {
        let vi = v as usize;
        if !is_fixed(fixed, v) && is_boundary(st, v) && st.fits(v, 1 - st.parts[vi] as usize) {
            heap.set(v, (gain[vi], rank[vi]));
        }
    }
    moves.clear();
    let (mut cur, mut best, mut best_len) = (0i64, 0i64, 0usize);
    while let Some(v) = heap.pop() {
        let vi = v as usize;
        let b = 1 - st.parts[vi] as usize;
        if !st.fits(v, b) {
            continue;
        }
        let g = gain[vi];
        if g < heap.key[vi].0 {
            // stale key (a pin of a net above `max_update_net`): requeue
            heap.set(v, (g, rank[vi]));
            continue;
        }
        locked[vi] = true;
        moves.push(v);
        cur += g;
        if cur > best {
            best = cur;
            best_len = moves.len();
        }
        if moves.len() - best_len >= p.fm_stop {
            move2(st, gain, v, p.max_update_net, |_| {});
            break;
        }
        // re-key after the whole move: a pin of two of v's nets must not keep the gain
        // between the two updates
        touched.clear();
        move2(st, gain, v, p.max_update_net, |u| {
            if !locked[u as usize] && !is_fixed(fixed, u) {
                touched.push(u);
            }
        });
        for &u in touched.iter() {
            let ui = u as usize;
            if st.fits(u, 1 - st.parts[ui] as usize) {
                heap.set(u, (gain[ui], rank[ui]));
            } else {
                heap.remove(u);
            }
        }
    }
    for &v in moves[best_len..].iter().rev() {
        let a = st.parts[v as usize] as usize;
        st.move_vertex(v, 1 - a);
    }
    for &v in moves.iter() {
        locked[v as usize] = false;
    }
    heap.clear();
    best
}

/// Net-level moves: for a net `e` with few pins (`<= max_pins`) in some part `a`, try to
/// move all of them to another part `b` already connected to `e` (so `e` loses part `a`),
/// keeping the group move only when its exact total gain is positive and `b` stays within
/// its capacities. Single-vertex FM cannot find these moves when every pin but the last
/// has gain <= 0 (e.g. a row strip of tiles whose other nets are all cut anyway).
/// With `whole`, a net lying entirely in `a` (and small enough) may move as a group too,
/// to any part `b` adjacent to one of the group's other nets: the net stays uncut and the
/// group's other nets decide the gain (a whole row of tiles leaving a part it shares only
/// its columns with). Returns the total improvement.
pub(crate) fn net_moves(
    st: &mut PartState,
    fixed: &[Option<u32>],
    max_pins: usize,
    rounds: usize,
    whole: bool,
) -> i64 {
    let k = st.k;
    let dims = st.dims;
    let m = st.hg.num_nets();
    let mut total = 0i64;
    let mut group: Vec<u32> = Vec::new();
    let mut w = vec![0u64; dims];
    // per touched net: (net, pins of the group in it)
    let mut cnt = vec![0u32; m];
    let mut nets: Vec<u32> = Vec::new();
    for _ in 0..rounds {
        let mut gained = 0i64;
        for e in 0..m as u32 {
            let ei = e as usize;
            for a in 0..k {
                let c = st.phi[ei * k + a] as usize;
                let full = c == st.hg.net_size(e);
                if c == 0 || c > max_pins || (full && !whole) {
                    continue;
                }
                group.clear();
                group.extend(
                    st.hg
                        .pins(e)
                        .iter()
                        .copied()
                        .filter(|&v| st.parts[v as usize] as usize == a),
                );
                if group.iter().any(|&v| is_fixed(fixed, v)) {
                    continue;
                }
                w.iter_mut().for_each(|x| *x = 0);
                nets.clear();
                for &v in &group {
                    for (d, x) in st.hg.vertex_weight(v).iter().enumerate() {
                        w[d] += x;
                    }
                    for &f in st.hg.nets(v) {
                        if cnt[f as usize] == 0 {
                            nets.push(f);
                        }
                        cnt[f as usize] += 1;
                    }
                }
                let mut best: Option<(usize, i64)> = None;
                for b in 0..k {
                    if b == a
                        || (!full && st.phi[ei * k + b] == 0)
                        || (full && !nets.iter().any(|&f| st.phi[f as usize * k + b] > 0))
                        || (0..dims).any(|d| st.loads[b * dims + d] + w[d] > st.caps[b * dims + d])
                    {
                        continue;
                    }
                    let g = group_gain(st, &nets, &cnt, a, b);
                    if g > 0 && best.is_none_or(|(_, bg)| g > bg) {
                        best = Some((b, g));
                    }
                }
                for &f in &nets {
                    cnt[f as usize] = 0;
                }
                if let Some((b, g)) = best {
                    for &v in &group {
                        st.move_vertex(v, b);
                    }
                    gained += g;
                }
            }
        }
        total += gained;
        if gained == 0 {
            break;
        }
    }
    total
}

/// Exact objective decrease of moving every vertex of a group from part `a` to `b`;
/// `nets` = the nets touched by the group, `cnt[f]` = the group's pins in net `f`.
fn group_gain(st: &PartState, nets: &[u32], cnt: &[u32], a: usize, b: usize) -> i64 {
    let k = st.k;
    let mut g = 0i64;
    let node = st.topo.map(|t| {
        (
            t.nnodes,
            t.node_of[a] as usize,
            t.node_of[b] as usize,
            t.factor - 1,
        )
    });
    for &f in nets {
        let fi = f as usize;
        let w = st.hg.net_weight(f) as i64;
        let c = cnt[fi];
        let mut d = 0i64;
        if st.phi[fi * k + a] == c {
            d += 1;
        }
        if st.phi[fi * k + b] == 0 {
            d -= 1;
        }
        if let Some((nn, na, nb, f1)) = node {
            if na != nb {
                let mut dn = 0i64;
                if st.nphi[fi * nn + na] == c {
                    dn += 1;
                }
                if st.nphi[fi * nn + nb] == 0 {
                    dn -= 1;
                }
                d += f1 * dn;
            }
        }
        g += w * d;
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypergraph::{Hypergraph, HypergraphBuilder};
    use rand::{Rng, SeedableRng};

    fn random_hypergraph(rng: &mut ChaCha8Rng, n: u32, m: usize, dims: usize) -> Hypergraph {
        let mut b = HypergraphBuilder::new(dims);
        for _ in 0..n {
            let w: Vec<u64> = (0..dims).map(|_| rng.random_range(1..5)).collect();
            b.add_vertex(&w);
        }
        for _ in 0..m {
            let size = rng.random_range(2..9usize);
            let pins: Vec<u32> = (0..size).map(|_| rng.random_range(0..n)).collect();
            b.add_net(rng.random_range(1..20), &pins);
        }
        b.build().unwrap()
    }

    /// The 2-way LP and FM (delta gains, addressable heap) make exactly the moves of the
    /// k-way code on k = 2, fixed vertices and small nets (update guard) included.
    #[test]
    fn two_way_refinement_matches_kway() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for case in 0..40 {
            let dims = 1 + case % 2;
            let hg = random_hypergraph(&mut rng, 60, 90, dims);
            let caps: Vec<u64> = (0..2 * dims)
                .map(|d| hg.total_weight()[d % dims] * 11 / 20)
                .collect();
            let parts: Vec<u32> = (0..60).map(|_| rng.random_range(0..2)).collect();
            let fixed: Vec<Option<u32>> = (0..60)
                .map(|v| (case % 3 == 0 && v % 7 == 0).then_some(parts[v]))
                .collect();
            let p = RefineParams {
                lp_rounds: 3,
                fm_passes: 2,
                fm_stop: 10 + case,
                max_update_net: 4 + case % 6,
                net_pins: 0,
                net_rounds: 0,
                net_whole: false,
                net_bisect: false,
            };
            let seed = rng.random::<u64>();
            let mut a = PartState::new(&hg, 2, &caps, None, parts.clone());
            let mut b = PartState::new(&hg, 2, &caps, None, parts);
            let (mut ra, mut rb) = (
                ChaCha8Rng::seed_from_u64(seed),
                ChaCha8Rng::seed_from_u64(seed),
            );
            let la = lp2(&mut a, &fixed, &p, &mut ra);
            let lb = lp_kway(&mut b, &fixed, &p, &mut rb);
            assert_eq!((la, &a.parts), (lb, &b.parts), "lp, case {case}");
            let fa = fm2(&mut a, &fixed, &p, &mut ra);
            let fb = fm_kway(&mut b, &fixed, &p, &mut rb);
            assert_eq!((fa, &a.parts), (fb, &b.parts), "fm, case {case}");
            assert_eq!(a.objective(), b.objective());
        }
    }

    /// Two rows (nets entirely in one part each) joined by three columns: every single
    /// or partial-row move cuts a row, only moving a whole row uncuts the columns.
    #[test]
    fn whole_net_move() {
        let mut b = HypergraphBuilder::new(1);
        for _ in 0..8 {
            b.add_vertex(&[1]);
        }
        b.add_net(4, &[0, 1, 2]); // the row, all in part 0
        b.add_net(1, &[0, 3]); // columns: 0, 1, 2 with 3, 4, 5 in part 1
        b.add_net(1, &[1, 4]);
        b.add_net(1, &[2, 5]);
        b.add_net(4, &[3, 4, 5]); // the row of part 1: moving 3, 4 or 5 alone cuts it
        b.add_net(1, &[6, 7]);
        let hg = b.build().unwrap();
        let caps = vec![8u64, 8];
        let parts = vec![0, 0, 0, 1, 1, 1, 0, 0];
        let mut st = PartState::new(&hg, 2, &caps, None, parts.clone());
        assert_eq!(net_moves(&mut st, &[], 8, 3, false), 0);
        let mut st = PartState::new(&hg, 2, &caps, None, parts);
        assert_eq!(net_moves(&mut st, &[], 8, 3, true), 3);
        assert_eq!(st.objective(), 0);
        assert_eq!(&st.parts[..6], &[1, 1, 1, 1, 1, 1]);
    }

    /// A "row" net whose two pins in part 1 each have gain 0 alone (their other net is
    /// cut either way): only the group move uncuts the row net.
    #[test]
    fn net_move_uncuts_a_net_single_moves_cannot() {
        let mut b = HypergraphBuilder::new(1);
        for _ in 0..8 {
            b.add_vertex(&[1]);
        }
        b.add_net(5, &[0, 1, 2, 3, 4]); // row: 0,1,2 in part 0; 3,4 in part 1
        b.add_net(1, &[3, 5]); // 5 in part 1, 6 in part 2: moving 3 alone cuts this
        b.add_net(1, &[4, 6]);
        b.add_net(1, &[5, 7]);
        let hg = b.build().unwrap();
        let parts = vec![0, 0, 0, 1, 1, 1, 2, 2];
        let caps = vec![10u64; 3];
        let mut st = PartState::new(&hg, 3, &caps, None, parts);
        let before = st.objective();
        let g = net_moves(&mut st, &[], 8, 3, false);
        assert!(g > 0);
        assert_eq!(st.objective(), before - g);
        // the row net is no longer cut
        assert!((1..5).all(|v| st.parts[v] == st.parts[0]));
        // capacities block every group move onto the row net
        let caps = vec![3u64, 3, 10];
        let mut st = PartState::new(&hg, 3, &caps, None, vec![0, 0, 0, 1, 1, 1, 2, 2]);
        assert_eq!(net_moves(&mut st, &[], 8, 3, false), 0);
        assert!(st.loads.iter().zip(&caps).all(|(l, c)| l <= c));
    }
}
