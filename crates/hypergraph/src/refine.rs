//! Local-search refinement of a k-way partition on one level of the hierarchy:
//! label propagation (cheap, positive-gain moves only) followed by k-way FM
//! (Fiduccia–Mattheyses): repeatedly move the unlocked vertex with the best
//! capacity-respecting gain (negative gains allowed to climb out of local minima), then
//! roll back to the best prefix of the move sequence.
//!
//! Gains are exact: they are recomputed on touch (only for pins of nets whose pin counts
//! crossed 0/1/2, see [`PartState::touches_gains`]) and verified again when popped from
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

/// Label propagation: rounds of positive-gain moves over active boundary vertices.
pub(crate) fn label_propagation(
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

/// k-way FM passes until a pass brings no improvement; returns the total improvement.
pub(crate) fn fm(
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
        if let Some((_, g)) = st.best_move(v) {
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
        let a = st.parts[vi] as usize;
        touched.clear();
        touched.extend(
            st.hg
                .nets(v)
                .iter()
                .copied()
                .filter(|&e| st.touches_gains(e, a, t)),
        );
        st.move_vertex(v, t);
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
                match st.best_move(u) {
                    Some((_, g2)) => {
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
