//! Initial k-way partitioning of the coarsest hypergraph (small, so several seeded tries
//! are affordable). Constructive algorithms, alternated across tries (a portfolio: on the
//! 2-D DCP instances neither growing variant dominates):
//!
//! * **greedy hypergraph growing** (k-way tries): k regions grow simultaneously; the part with the
//!   smallest relative load takes the unassigned vertex most connected to it (sum of
//!   weights of nets already touching the part) that still fits;
//! * **FM-gain greedy growing for bisections** (`grow_bisection`): one block grows from
//!   a random seed, always taking the vertex with the best km1 gain;
//! * **net-level growing for bisections** (`net_growing`): one block grows by absorbing
//!   whole nets, the one with the largest share of its pins inside first (closes nets that
//!   vertex-level growing leaves cut a little, e.g. rows and columns of attention tiles);
//! * **multi-constraint LPT bin packing** (k-way tries): vertices by decreasing normalised dominant
//!   weight, each to the part whose relative load after adding it is smallest.
//!
//! Every try is then rebalanced and refined (label propagation + FM) on the coarsest
//! level; the best one wins (feasible first, then objective, then max relative load).

use std::collections::BinaryHeap;

use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::balance::rebalance;
use crate::hypergraph::Hypergraph;
use crate::refine::{fm, label_propagation, RefineParams};
use crate::state::{PartState, TopoInfo};
use crate::Params;

const UNASSIGNED: u32 = u32::MAX;

fn fits(hg: &Hypergraph, loads: &[u64], caps: &[u64], v: u32, p: usize) -> bool {
    let d = hg.dims();
    let w = hg.vertex_weight(v);
    (0..d).all(|i| loads[p * d + i] + w[i] <= caps[p * d + i])
}

fn rel_with(hg: &Hypergraph, loads: &[u64], caps: &[u64], w: &[u64], p: usize) -> f64 {
    let d = hg.dims();
    (0..d)
        .map(|i| (loads[p * d + i] + w[i]) as f64 / caps[p * d + i].max(1) as f64)
        .fold(0.0, f64::max)
}

fn add_load(hg: &Hypergraph, loads: &mut [u64], v: u32, p: usize) {
    let d = hg.dims();
    for (i, &w) in hg.vertex_weight(v).iter().enumerate() {
        loads[p * d + i] += w;
    }
}

/// Greedy hypergraph growing.
pub(crate) fn greedy_growing(
    hg: &Hypergraph,
    k: usize,
    caps: &[u64],
    fixed: &[Option<u32>],
    rng: &mut ChaCha8Rng,
) -> Vec<u32> {
    let n = hg.num_vertices();
    let dims = hg.dims();
    let mut parts = vec![UNASSIGNED; n];
    let mut loads = vec![0u64; k * dims];
    let mut touched_net = vec![false; hg.num_nets() * k];
    let mut conn = vec![0u64; n * k];
    let mut heaps: Vec<BinaryHeap<(u64, u32, u32)>> = vec![BinaryHeap::new(); k];
    let mut rank: Vec<u32> = (0..n as u32).collect();
    rank.shuffle(rng);
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.shuffle(rng);
    let mut remaining = n;

    let assign = |v: u32,
                  p: usize,
                  parts: &mut Vec<u32>,
                  loads: &mut Vec<u64>,
                  touched_net: &mut Vec<bool>,
                  conn: &mut Vec<u64>,
                  heaps: &mut Vec<BinaryHeap<(u64, u32, u32)>>| {
        parts[v as usize] = p as u32;
        add_load(hg, loads, v, p);
        for &e in hg.nets(v) {
            let ei = e as usize * k + p;
            if touched_net[ei] {
                continue;
            }
            touched_net[ei] = true;
            let w = hg.net_weight(e);
            for &u in hg.pins(e) {
                if parts[u as usize] == UNASSIGNED {
                    let c = &mut conn[u as usize * k + p];
                    *c += w;
                    heaps[p].push((*c, rank[u as usize], u));
                }
            }
        }
    };

    for v in 0..n {
        if let Some(p) = fixed.get(v).copied().flatten() {
            assign(
                v as u32,
                p as usize,
                &mut parts,
                &mut loads,
                &mut touched_net,
                &mut conn,
                &mut heaps,
            );
            remaining -= 1;
        }
    }
    let mut closed = vec![false; k];
    let mut cursor = 0usize;
    while remaining > 0 {
        // part with the smallest relative load among open parts
        let zero = vec![0u64; dims];
        let p = (0..k).filter(|&p| !closed[p]).min_by(|&a, &b| {
            rel_with(hg, &loads, caps, &zero, a)
                .total_cmp(&rel_with(hg, &loads, caps, &zero, b))
                .then(a.cmp(&b))
        });
        let Some(p) = p else { break };
        let mut pick = None;
        while let Some((c, _, u)) = heaps[p].pop() {
            if parts[u as usize] != UNASSIGNED || conn[u as usize * k + p] != c {
                continue;
            }
            if fits(hg, &loads, caps, u, p) {
                pick = Some(u);
                break;
            }
        }
        if pick.is_none() {
            // start a new region: next unassigned vertex in random order that fits
            while cursor < n && parts[order[cursor] as usize] != UNASSIGNED {
                cursor += 1;
            }
            pick = order[cursor..]
                .iter()
                .copied()
                .find(|&u| parts[u as usize] == UNASSIGNED && fits(hg, &loads, caps, u, p));
        }
        match pick {
            Some(u) => {
                assign(
                    u,
                    p,
                    &mut parts,
                    &mut loads,
                    &mut touched_net,
                    &mut conn,
                    &mut heaps,
                );
                remaining -= 1;
            }
            None => closed[p] = true,
        }
    }
    // leftovers (nothing fits anywhere): least relative load after adding
    for v in 0..n as u32 {
        if parts[v as usize] == UNASSIGNED {
            let w = hg.vertex_weight(v).to_vec();
            let p = (0..k)
                .min_by(|&a, &b| {
                    rel_with(hg, &loads, caps, &w, a).total_cmp(&rel_with(hg, &loads, caps, &w, b))
                })
                .unwrap();
            parts[v as usize] = p as u32;
            add_load(hg, &mut loads, v, p);
        }
    }
    parts
}

/// Start of a growing bisection: every vertex on side `rest` except the fixed ones; returns
/// the parts, which vertices are free, and the loads of both sides.
fn bisection_start(
    hg: &Hypergraph,
    fixed: &[Option<u32>],
    rest: usize,
) -> (Vec<u32>, Vec<bool>, Vec<u64>) {
    let n = hg.num_vertices();
    let mut parts = vec![rest as u32; n];
    let mut free = vec![true; n];
    for v in 0..n {
        if let Some(p) = fixed.get(v).copied().flatten() {
            parts[v] = p;
            free[v] = false;
        }
    }
    let mut loads = vec![0u64; 2 * hg.dims()];
    for v in 0..n as u32 {
        add_load(hg, &mut loads, v, parts[v as usize] as usize);
    }
    (parts, free, loads)
}

/// Whether side `grow` has grown enough: the other side fits its capacities and (one
/// dimension) is no fuller, relative to its capacity, than `grow`.
fn grown_enough(loads: &[u64], caps: &[u64], dims: usize, grow: usize) -> bool {
    let rest = 1 - grow;
    let rel = |p: usize| -> f64 {
        (0..dims)
            .map(|d| loads[p * dims + d] as f64 / caps[p * dims + d].max(1) as f64)
            .fold(0.0, f64::max)
    };
    (0..dims).all(|d| loads[rest * dims + d] <= caps[rest * dims + d])
        && (dims > 1 || rel(grow) >= rel(rest))
}
/// Greedy hypergraph growing for bisections (KaHyPar's FM-gain GHG): every free vertex
/// starts in block `1 - grow`; block `grow` grows from a random seed by repeatedly taking
/// the vertex with the largest km1 gain of moving it across (ties: random rank) that still
/// fits, until the other block fits its capacities and is no more loaded (relatively) than
/// the growing one. Grows compact regions, unlike the simultaneous k-way variant.
pub(crate) fn grow_bisection(
    hg: &Hypergraph,
    caps: &[u64],
    fixed: &[Option<u32>],
    grow: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<u32> {
    let n = hg.num_vertices();
    let m = hg.num_nets();
    let dims = hg.dims();
    let rest = 1 - grow;
    let (mut parts, free, mut loads) = bisection_start(hg, fixed, rest);
    // pin counts per side
    let mut phi = vec![[0u32; 2]; m];
    for e in 0..m {
        for &v in hg.pins(e as u32) {
            phi[e][parts[v as usize] as usize] += 1;
        }
    }
    let mut gain = vec![0i64; n];
    for v in 0..n {
        if !free[v] {
            continue;
        }
        for &e in hg.nets(v as u32) {
            let w = hg.net_weight(e) as i64;
            let c = phi[e as usize];
            if c[rest] == 1 {
                gain[v] += w;
            }
            if c[grow] == 0 {
                gain[v] -= w;
            }
        }
    }
    let rank: Vec<u32> = {
        let mut r: Vec<u32> = (0..n as u32).collect();
        r.shuffle(rng);
        r
    };
    let mut heap: BinaryHeap<(i64, u32, u32)> = (0..n as u32)
        .filter(|&v| free[v as usize])
        .map(|v| (gain[v as usize], rank[v as usize], v))
        .collect();
    let done = |loads: &[u64]| grown_enough(loads, caps, dims, grow);
    // random seed first
    let seeds: Vec<u32> = (0..n as u32).filter(|&v| free[v as usize]).collect();
    let mut first = seeds.choose(rng).copied();
    while !done(&loads) {
        let v = match first.take() {
            Some(v) => v,
            None => {
                let mut pick = None;
                while let Some((g, _, v)) = heap.pop() {
                    let vi = v as usize;
                    if parts[vi] as usize != rest || !free[vi] || gain[vi] != g {
                        continue;
                    }
                    if fits(hg, &loads, caps, v, grow) {
                        pick = Some(v);
                        break;
                    }
                }
                match pick {
                    Some(v) => v,
                    None => break,
                }
            }
        };
        if !fits(hg, &loads, caps, v, grow) {
            continue;
        }
        // move v: rest -> grow, updating neighbour gains
        let vi = v as usize;
        parts[vi] = grow as u32;
        let w = hg.vertex_weight(v);
        for d in 0..dims {
            loads[rest * dims + d] -= w[d];
            loads[grow * dims + d] += w[d];
        }
        for &e in hg.nets(v) {
            let ew = hg.net_weight(e) as i64;
            let c = &mut phi[e as usize];
            let (g0, r0) = (c[grow], c[rest]);
            c[grow] += 1;
            c[rest] -= 1;
            if g0 == 0 || r0 == 2 {
                for &u in hg.pins(e) {
                    let ui = u as usize;
                    if parts[ui] as usize != rest || !free[ui] {
                        continue;
                    }
                    if g0 == 0 {
                        gain[ui] += ew;
                    }
                    if r0 == 2 {
                        gain[ui] += ew;
                    }
                    heap.push((gain[ui], rank[ui], u));
                }
            }
        }
    }
    parts
}

/// Net-level growing for bisections: side `grow` starts from a random vertex and repeatedly
/// absorbs every remaining pin (that fits) of the net with the largest share of its pins
/// already on that side (`weighted`: share × net weight, so heavy nets close first). Where
/// vertex-by-vertex growing cuts many nets a little (ragged fronts on grid-like
/// hypergraphs), this closes whole nets first, leaving them uncut.
pub(crate) fn net_growing(
    hg: &Hypergraph,
    caps: &[u64],
    fixed: &[Option<u32>],
    grow: usize,
    weighted: bool,
    rng: &mut ChaCha8Rng,
) -> Vec<u32> {
    let n = hg.num_vertices();
    let m = hg.num_nets();
    let dims = hg.dims();
    let rest = 1 - grow;
    let (mut parts, free, mut loads) = bisection_start(hg, fixed, rest);
    let mut inside = vec![0u32; m];
    for e in 0..m {
        inside[e] = hg
            .pins(e as u32)
            .iter()
            .filter(|&&v| parts[v as usize] as usize == grow)
            .count() as u32;
    }
    let mut used = vec![false; m];
    let score = |inside: &[u32], e: u32| -> i64 {
        let f = ((inside[e as usize] as i64) << 20) / hg.net_size(e).max(1) as i64;
        if weighted {
            f.saturating_mul(hg.net_weight(e) as i64)
        } else {
            f
        }
    };
    let rank: Vec<u32> = {
        let mut r: Vec<u32> = (0..m as u32).collect();
        r.shuffle(rng);
        r
    };
    let mut heap: BinaryHeap<(i64, u32, u32)> = BinaryHeap::new();
    let done = |loads: &[u64]| grown_enough(loads, caps, dims, grow);
    let mut order: Vec<u32> = (0..n as u32).filter(|&v| free[v as usize]).collect();
    order.shuffle(rng);
    let mut next_seed = 0usize;
    let take = |v: u32,
                parts: &mut [u32],
                loads: &mut [u64],
                inside: &mut [u32],
                used: &[bool],
                heap: &mut BinaryHeap<(i64, u32, u32)>| {
        parts[v as usize] = grow as u32;
        let w = hg.vertex_weight(v);
        for d in 0..dims {
            loads[rest * dims + d] -= w[d];
            loads[grow * dims + d] += w[d];
        }
        for &e in hg.nets(v) {
            inside[e as usize] += 1;
            if !used[e as usize] {
                heap.push((score(inside, e), rank[e as usize], e));
            }
        }
    };
    while !done(&loads) {
        // The best net not yet absorbed (lazy heap: stale scores are skipped).
        let mut pick = None;
        while let Some((sc, _, e)) = heap.pop() {
            if !used[e as usize] && sc == score(&inside, e) {
                pick = Some(e);
                break;
            }
        }
        let Some(e) = pick else {
            // Nothing touches the side yet (start, or a disconnected rest): a new seed.
            while next_seed < order.len() && parts[order[next_seed] as usize] as usize != rest {
                next_seed += 1;
            }
            let Some(&v) = order.get(next_seed) else {
                break;
            };
            next_seed += 1;
            if !fits(hg, &loads, caps, v, grow) {
                break;
            }
            take(v, &mut parts, &mut loads, &mut inside, &used, &mut heap);
            continue;
        };
        used[e as usize] = true;
        for &u in hg.pins(e) {
            if parts[u as usize] as usize == rest
                && free[u as usize]
                && fits(hg, &loads, caps, u, grow)
            {
                take(u, &mut parts, &mut loads, &mut inside, &used, &mut heap);
                if done(&loads) {
                    break;
                }
            }
        }
    }
    parts
}

/// Multi-constraint LPT bin packing (ignores connectivity; refinement fixes the cut).
pub(crate) fn bin_packing(
    hg: &Hypergraph,
    k: usize,
    caps: &[u64],
    fixed: &[Option<u32>],
    rng: &mut ChaCha8Rng,
) -> Vec<u32> {
    let n = hg.num_vertices();
    let dims = hg.dims();
    let mut parts = vec![UNASSIGNED; n];
    let mut loads = vec![0u64; k * dims];
    let avg_cap: Vec<f64> = (0..dims)
        .map(|d| (0..k).map(|p| caps[p * dims + d] as f64).sum::<f64>() / k as f64)
        .collect();
    let mut free: Vec<(f64, u64, u32)> = Vec::new();
    for v in 0..n as u32 {
        if let Some(p) = fixed.get(v as usize).copied().flatten() {
            parts[v as usize] = p;
            add_load(hg, &mut loads, v, p as usize);
        } else {
            let w = hg.vertex_weight(v);
            let dom = (0..dims)
                .map(|d| w[d] as f64 / avg_cap[d].max(1.0))
                .fold(0.0, f64::max);
            free.push((dom, rng.random::<u64>(), v));
        }
    }
    free.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, _, v) in &free {
        let w = hg.vertex_weight(v);
        let p = (0..k)
            .min_by(|&a, &b| {
                let fa = fits(hg, &loads, caps, v, a);
                let fb = fits(hg, &loads, caps, v, b);
                fb.cmp(&fa)
                    .then(
                        rel_with(hg, &loads, caps, w, a)
                            .total_cmp(&rel_with(hg, &loads, caps, w, b)),
                    )
                    .then(a.cmp(&b))
            })
            .unwrap();
        parts[v as usize] = p as u32;
        add_load(hg, &mut loads, v, p);
    }
    parts
}

/// Initial partition of the coarsest level: recursive bisection for `k > 2` (each
/// bisection itself multilevel, see [`recursive_bisection`]), flat tries for `k <= 2`.
pub(crate) fn initial_partition(
    hg: &Hypergraph,
    k: usize,
    caps: &[u64],
    topo: Option<&TopoInfo>,
    fixed: &[Option<u32>],
    prm: &Params,
    rng: &mut ChaCha8Rng,
) -> Vec<u32> {
    if k <= 2 {
        let ipr = RefineParams {
            fm_stop: prm.ip_fm_stop,
            ..prm.refine
        };
        return flat_tries(hg, k, caps, topo, fixed, prm.tries, &ipr, rng);
    }
    let mut parts = vec![0u32; hg.num_vertices()];
    let all: Vec<u32> = (0..hg.num_vertices() as u32).collect();
    let bprm = Params {
        limit_per_part: 80,
        ..*prm
    };
    recursive_bisection(hg, &all, 0, k, caps, fixed, &bprm, &mut parts, rng);
    parts
}

/// Splits the part range `[p0, p0 + kk)` in two halves, bisects the sub-hypergraph `hg`
/// (whose local vertex `i` is global vertex `glob[i]`) with a multilevel 2-way run under
/// the summed capacities of each half (with an adaptive per-level imbalance so the
/// leaves can still meet their own capacities), then recurses on both sides.
#[allow(clippy::too_many_arguments)]
pub(crate) fn recursive_bisection(
    hg: &Hypergraph,
    glob: &[u32],
    p0: usize,
    kk: usize,
    caps: &[u64],
    fixed: &[Option<u32>],
    prm: &Params,
    out: &mut [u32],
    rng: &mut ChaCha8Rng,
) {
    if kk == 1 || glob.is_empty() {
        for &g in glob {
            out[g as usize] = p0 as u32;
        }
        return;
    }
    let dims = hg.dims();
    let k0 = kk / 2;
    let depth = (usize::BITS - (kk - 1).leading_zeros()) as i32; // ceil(log2 kk)
    let side_sum = |a: usize, b: usize, d: usize| -> u64 {
        (a..b)
            .map(|p| caps[p * dims + d])
            .fold(0u64, |x, y| x.saturating_add(y))
    };
    let mut caps2 = vec![0u64; 2 * dims];
    for d in 0..dims {
        let t = [side_sum(p0, p0 + k0, d), side_sum(p0 + k0, p0 + kk, d)];
        let w = hg.total_weight()[d];
        let tt = (t[0] as f64 + t[1] as f64).max(1.0);
        let eps = if w == 0 {
            0.0
        } else {
            ((tt / w as f64).powf(1.0 / depth as f64) - 1.0).max(0.0)
        };
        for s in 0..2 {
            let share = w as f64 * t[s] as f64 / tt;
            let c = ((share * (1.0 + eps)).floor() as u64).max(share.ceil() as u64);
            caps2[s * dims + d] = c.min(t[s]);
        }
    }
    let fixed2: Vec<Option<u32>> = if fixed.is_empty() {
        Vec::new()
    } else {
        glob.iter()
            .map(|&g| fixed[g as usize].map(|p| u32::from(p as usize >= p0 + k0)))
            .collect()
    };
    let bis = crate::multilevel(hg, 2, &caps2, None, &fixed2, None, prm, rng);
    for (s, (a, len)) in [(p0, k0), (p0 + k0, kk - k0)].into_iter().enumerate() {
        let local: Vec<u32> = (0..glob.len() as u32)
            .filter(|&v| bis[v as usize] == s as u32)
            .collect();
        let sub = hg.induced(&local);
        let sub_glob: Vec<u32> = local.iter().map(|&v| glob[v as usize]).collect();
        recursive_bisection(&sub, &sub_glob, a, len, caps, fixed, prm, out, rng);
    }
}

/// Runs `tries` constructive tries + refinement and returns the best partition.
#[allow(clippy::too_many_arguments)]
fn flat_tries(
    hg: &Hypergraph,
    k: usize,
    caps: &[u64],
    topo: Option<&TopoInfo>,
    fixed: &[Option<u32>],
    tries: usize,
    refine: &RefineParams,
    rng: &mut ChaCha8Rng,
) -> Vec<u32> {
    let mut best: Option<(bool, i64, f64, Vec<u32>)> = None;
    // When coarsening stalled (e.g. random hypergraphs) the "coarsest" level can be large:
    // scale the number of tries down so initial partitioning stays a small fraction.
    let n = hg.num_vertices().max(1);
    let tries = if n > 1000 {
        (tries * 1000 / n).max(2)
    } else {
        tries
    };
    for t in 0..tries.max(1) {
        // Bisections: vertex-level FM-gain growing on even tries, net-level growing from
        // either side on odd ones, by share and by weighted share in turn (measured on the
        // planner's folded instances: km1 1.137x -> 1.085x Mt-KaHyPar with Fast, against
        // greedy growing and bin packing on odd tries).
        let parts = if k == 2 && t % 2 == 0 {
            grow_bisection(hg, caps, fixed, (t / 2) % 2, rng)
        } else if k == 2 {
            net_growing(
                hg,
                caps,
                fixed,
                ((t / 2) % 2) ^ ((t / 4) % 2),
                (t / 2) % 2 == 1,
                rng,
            )
        } else if t % 4 == 3 {
            bin_packing(hg, k, caps, fixed, rng)
        } else {
            greedy_growing(hg, k, caps, fixed, rng)
        };
        let mut st = PartState::new(hg, k, caps, topo, parts);
        if st.overloaded() {
            rebalance(&mut st, fixed);
        }
        label_propagation(&mut st, fixed, refine, rng);
        fm(&mut st, fixed, refine, rng);
        let feasible = !st.overloaded();
        let obj = st.objective();
        let zero = vec![0u64; hg.dims()];
        let maxrel = (0..k)
            .map(|p| st.rel_load_with(p, &zero))
            .fold(0.0, f64::max);
        let better = match &best {
            None => true,
            Some((bf, bo, br, _)) => (feasible, -obj, -maxrel) > (*bf, -*bo, -*br),
        };
        if better {
            best = Some((feasible, obj, maxrel, st.parts));
        }
    }
    best.unwrap().3
}
