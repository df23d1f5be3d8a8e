//! Rebalancing: turns a partition that violates some capacity into one that respects
//! all of them, losing as little objective as possible.
//!
//! Greedy rounds: for every overloaded part, each movable vertex is scored by
//! `gain / overload_reduction` (objective change per unit of normalised overload it
//! removes), using its best *fitting* target; candidates are applied best-first while
//! they still reduce an overload and still fit. When no single fitting move exists the
//! heuristic gives up (returns `false`); the caller turns that into
//! [`crate::Error::Infeasible`] at the finest level. This is a heuristic: deciding
//! feasibility of multi-constraint packing is NP-hard.

use crate::state::PartState;

/// Normalised amount by which moving `v` out of part `p` reduces its overload.
fn reduction(st: &PartState, v: u32, p: usize) -> f64 {
    let d = st.dims;
    let w = st.hg.vertex_weight(v);
    let mut r = 0.0;
    for i in 0..d {
        let over = st.loads[p * d + i].saturating_sub(st.caps[p * d + i]);
        if over > 0 {
            r += w[i].min(over) as f64 / st.caps[p * d + i].max(1) as f64;
        }
    }
    r
}

fn part_overloaded(st: &PartState, p: usize) -> bool {
    let d = st.dims;
    (0..d).any(|i| st.loads[p * d + i] > st.caps[p * d + i])
}

/// Returns true when every capacity holds afterwards.
pub(crate) fn rebalance(st: &mut PartState, fixed: &[Option<u32>]) -> bool {
    let n = st.hg.num_vertices();
    let max_rounds = 64 + n;
    for _ in 0..max_rounds {
        if !st.overloaded() {
            return true;
        }
        let mut cands: Vec<(f64, u32, usize)> = Vec::new();
        for v in 0..n as u32 {
            if fixed.get(v as usize).is_some_and(|f| f.is_some()) {
                continue;
            }
            let p = st.parts[v as usize] as usize;
            if !part_overloaded(st, p) {
                continue;
            }
            let r = reduction(st, v, p);
            if r <= 0.0 {
                continue;
            }
            if let Some((t, g)) = st.best_move(v) {
                let g = g as f64;
                let score = if g < 0.0 { g / r } else { g * r };
                cands.push((score, v, t));
            }
        }
        if cands.is_empty() {
            if try_swap(st, fixed) {
                continue;
            }
            return false;
        }
        cands.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut moved = false;
        for &(_, v, t) in &cands {
            let p = st.parts[v as usize] as usize;
            if !part_overloaded(st, p) || reduction(st, v, p) <= 0.0 {
                continue;
            }
            let t = if st.fits(v, t) {
                t
            } else {
                match st.best_move(v) {
                    Some((t2, _)) => t2,
                    None => continue,
                }
            };
            st.move_vertex(v, t);
            moved = true;
        }
        if !moved && !try_swap(st, fixed) {
            return false;
        }
    }
    !st.overloaded()
}

/// Fallback when no single move fits: swap a vertex `v` of an overloaded part `p` with a
/// vertex `u` of another part `q` such that `q` stays within its capacities and the
/// overload of `p` strictly decreases (tight bin-packing situations, e.g. a memory
/// dimension where every part can hold only a few blocks). Cheapest objective loss first
/// is not attempted here: the first improving swap in a deterministic scan is taken.
fn try_swap(st: &mut PartState, fixed: &[Option<u32>]) -> bool {
    let n = st.hg.num_vertices();
    let d = st.dims;
    let over = |st: &PartState, p: usize, sub: &[u64], add: &[u64]| -> u128 {
        (0..d)
            .map(|i| {
                (st.loads[p * d + i] + add[i] - sub[i]).saturating_sub(st.caps[p * d + i]) as u128
            })
            .sum()
    };
    let movable = |v: u32| !fixed.get(v as usize).is_some_and(|f| f.is_some());
    let zero = vec![0u64; d];
    for v in 0..n as u32 {
        let p = st.parts[v as usize] as usize;
        if !movable(v) || !part_overloaded(st, p) {
            continue;
        }
        let wv = st.hg.vertex_weight(v).to_vec();
        let before = over(st, p, &zero, &zero);
        for u in 0..n as u32 {
            let q = st.parts[u as usize] as usize;
            if q == p || !movable(u) {
                continue;
            }
            let wu = st.hg.vertex_weight(u);
            // q after swap: loses u, gains v
            let q_ok = (0..d).all(|i| st.loads[q * d + i] + wv[i] - wu[i] <= st.caps[q * d + i]);
            if q_ok && over(st, p, &wv, wu) < before {
                st.move_vertex(v, q);
                st.move_vertex(u, p);
                return true;
            }
        }
    }
    false
}
