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
    /// Net-level group moves (see [`net_moves`]) for groups of at most this many pins,
    /// in the k-way (k > 2) uncoarsening only; 0 = off.
    pub net_pins: usize,
    /// Rounds of [`net_moves`] per level.
    pub net_rounds: usize,
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

/// Net-level moves: for a net `e` with few pins (`<= max_pins`) in some part `a`, try to
/// move all of them to another part `b` already connected to `e` (so `e` loses part `a`),
/// keeping the group move only when its exact total gain is positive and `b` stays within
/// its capacities. Single-vertex FM cannot find these moves when every pin but the last
/// has gain <= 0 (e.g. a row strip of tiles whose other nets are all cut anyway).
/// Returns the total improvement.
pub(crate) fn net_moves(
    st: &mut PartState,
    fixed: &[Option<u32>],
    max_pins: usize,
    rounds: usize,
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
                if c == 0 || c > max_pins || c == st.hg.net_size(e) {
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
                        || st.phi[ei * k + b] == 0
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
    use crate::hypergraph::HypergraphBuilder;

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
        let g = net_moves(&mut st, &[], 8, 3);
        assert!(g > 0);
        assert_eq!(st.objective(), before - g);
        // the row net is no longer cut
        assert!((1..5).all(|v| st.parts[v] == st.parts[0]));
        // capacities block every group move onto the row net
        let caps = vec![3u64, 3, 10];
        let mut st = PartState::new(&hg, 3, &caps, None, vec![0, 0, 0, 1, 1, 1, 2, 2]);
        assert_eq!(net_moves(&mut st, &[], 8, 3), 0);
        assert!(st.loads.iter().zip(&caps).all(|(l, c)| l <= c));
    }
}
