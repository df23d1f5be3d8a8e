//! Coarsening: builds the hierarchy of successively smaller hypergraphs.
//!
//! One level = one clustering pass plus a contraction. The clustering visits vertices in
//! random (seeded) order; a still-singleton vertex `u` joins the neighbouring cluster `C`
//! maximising the heavy-edge rating `sum_{e ∋ u, e ∩ C ≠ ∅} w(e) / (|e| - 1)`, divided
//! by `1 + |C|` (size penalty), subject to
//! (a) the cluster weight staying below a per-dimension maximum, (b) never mixing
//! vertices fixed to different parts, (c) never mixing different communities (used by
//! the V-cycle to coarsen inside the parts of an existing partition). A pass stops once
//! the vertex count shrank by `MAX_SHRINK`, so levels stay gradual.
//!
//! Contraction drops nets that collapse to one pin (they can never be cut) and merges
//! parallel nets (identical pin sets) by summing their weights, which is what keeps
//! coarse levels cheap.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::hypergraph::Hypergraph;

const MAX_SHRINK: f64 = 2.5;

/// One coarse level: the coarse hypergraph and the fine->coarse vertex map.
pub(crate) struct Level {
    pub hg: Hypergraph,
    pub map: Vec<u32>,
    pub fixed: Vec<Option<u32>>,
    pub community: Option<Vec<u32>>,
}

/// Knobs for the coarsening phase.
pub(crate) struct CoarsenParams {
    pub limit: usize,
    /// Per-dimension maximum cluster weight.
    pub max_weight: Vec<u64>,
    /// Nets larger than this are ignored for ratings.
    pub max_rating_net: usize,
    /// Divide ratings by (1 + cluster size): grows clusters evenly instead of letting a
    /// few large ones absorb their whole row/column (measured better on DCP instances).
    pub penalty: bool,
}

/// Coarsens until `limit` vertices or until a pass stalls. `fixed` / `community` are for
/// the finest level (both may be empty / None).
pub(crate) fn coarsen(
    hg: &Hypergraph,
    fixed: &[Option<u32>],
    community: Option<&[u32]>,
    p: &CoarsenParams,
    rng: &mut ChaCha8Rng,
) -> Vec<Level> {
    let mut levels: Vec<Level> = Vec::new();
    loop {
        let (cur, cur_fixed, cur_comm): (&Hypergraph, &[Option<u32>], Option<&[u32]>) =
            match levels.last() {
                Some(l) => (&l.hg, &l.fixed, l.community.as_deref()),
                None => (hg, fixed, community),
            };
        let n = cur.num_vertices();
        if n <= p.limit {
            break;
        }
        let (map, nc) = cluster(cur, cur_fixed, cur_comm, p, rng);
        if (nc as f64) > 0.97 * n as f64 {
            break;
        }
        let coarse = contract(cur, &map, nc);
        let mut cfixed = Vec::new();
        if !cur_fixed.is_empty() {
            cfixed = vec![None; nc];
            for (v, f) in cur_fixed.iter().enumerate() {
                if f.is_some() {
                    cfixed[map[v] as usize] = *f;
                }
            }
        }
        let ccomm = cur_comm.map(|c| {
            let mut cc = vec![0u32; nc];
            for (v, &x) in c.iter().enumerate() {
                cc[map[v] as usize] = x;
            }
            cc
        });
        levels.push(Level {
            hg: coarse,
            map,
            fixed: cfixed,
            community: ccomm,
        });
    }
    levels
}

fn cluster(
    hg: &Hypergraph,
    fixed: &[Option<u32>],
    community: Option<&[u32]>,
    p: &CoarsenParams,
    rng: &mut ChaCha8Rng,
) -> (Vec<u32>, usize) {
    let n = hg.num_vertices();
    let dims = hg.dims();
    let mut rep: Vec<u32> = (0..n as u32).collect();
    let mut size = vec![1u32; n];
    let mut cw: Vec<u64> = hg.raw_vertex_weights().to_vec();
    let mut cfix: Vec<Option<u32>> = if fixed.is_empty() {
        vec![None; n]
    } else {
        fixed.to_vec()
    };
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.shuffle(rng);
    let mut rating = vec![0.0f64; n];
    let mut touched: Vec<u32> = Vec::new();
    let target = ((n as f64 / MAX_SHRINK).ceil() as usize).max(p.limit);
    let mut clusters = n;
    for &u in &order {
        if clusters <= target {
            break;
        }
        let ui = u as usize;
        if rep[ui] != u || size[ui] > 1 {
            continue;
        }
        for &e in hg.nets(u) {
            let sz = hg.net_size(e);
            if sz < 2 || sz > p.max_rating_net {
                continue;
            }
            let s = hg.net_weight(e) as f64 / (sz - 1) as f64;
            for &v in hg.pins(e) {
                if v == u {
                    continue;
                }
                let c = rep[v as usize];
                if rating[c as usize] == 0.0 {
                    touched.push(c);
                }
                rating[c as usize] += s;
            }
        }
        let wu = hg.vertex_weight(u);
        let mut best: Option<(u32, f64, u64)> = None;
        for &c in &touched {
            let ci = c as usize;
            let r = rating[ci];
            rating[ci] = 0.0;
            if c == u || r <= 0.0 {
                continue;
            }
            if let (Some(a), Some(b)) = (cfix[ui], cfix[ci]) {
                if a != b {
                    continue;
                }
            }
            if let Some(cm) = community {
                if cm[ui] != cm[ci] {
                    continue;
                }
            }
            if (0..dims).any(|d| cw[ci * dims + d] + wu[d] > p.max_weight[d]) {
                continue;
            }
            let heavy: u64 = (0..dims).map(|d| cw[ci * dims + d]).sum();
            let r = if p.penalty {
                r / (1.0 + size[ci] as f64)
            } else {
                r
            };
            match best {
                Some((_, br, bw)) if r < br || (r == br && heavy >= bw) => {}
                _ => best = Some((c, r, heavy)),
            }
        }
        touched.clear();
        if let Some((c, _, _)) = best {
            let ci = c as usize;
            rep[ui] = c;
            size[ci] += 1;
            size[ui] = 0;
            for d in 0..dims {
                cw[ci * dims + d] += wu[d];
            }
            if cfix[ci].is_none() {
                cfix[ci] = cfix[ui];
            }
            clusters -= 1;
        }
    }
    // compact: representatives keep their own id in rep (rep[c] == c)
    let mut id = vec![u32::MAX; n];
    let mut nc = 0u32;
    for v in 0..n {
        if rep[v] as usize == v {
            id[v] = nc;
            nc += 1;
        }
    }
    let map = (0..n).map(|v| id[rep[v] as usize]).collect();
    (map, nc as usize)
}

/// FNV-1a style mixing; deterministic across runs and platforms.
#[inline]
fn mix(h: u64, x: u32) -> u64 {
    (h ^ x as u64).wrapping_mul(0x100_0000_01b3)
}

/// Contracts `hg` along `map` (fine vertex -> coarse id in `0..nc`).
pub(crate) fn contract(hg: &Hypergraph, map: &[u32], nc: usize) -> Hypergraph {
    let dims = hg.dims();
    let mut vw = vec![0u64; nc * dims];
    for (v, &c) in map.iter().enumerate() {
        let w = hg.vertex_weight(v as u32);
        for d in 0..dims {
            vw[c as usize * dims + d] += w[d];
        }
    }
    let mut mark = vec![u32::MAX; nc];
    let mut off: Vec<usize> = vec![0];
    let mut pins: Vec<u32> = Vec::with_capacity(hg.num_pins());
    let mut nw: Vec<u64> = Vec::new();
    let mut hashes: Vec<u64> = Vec::new();
    for e in 0..hg.num_nets() as u32 {
        let start = pins.len();
        for &v in hg.pins(e) {
            let c = map[v as usize];
            if mark[c as usize] != e {
                mark[c as usize] = e;
                pins.push(c);
            }
        }
        if pins.len() - start < 2 || hg.net_weight(e) == 0 {
            pins.truncate(start);
            continue;
        }
        pins[start..].sort_unstable();
        let h = pins[start..]
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, &x| mix(h, x));
        hashes.push(h);
        nw.push(hg.net_weight(e));
        off.push(pins.len());
    }
    // parallel net detection: sort by (hash, size, index) and compare neighbours
    let m = nw.len();
    let mut idx: Vec<u32> = (0..m as u32).collect();
    idx.sort_unstable_by_key(|&i| (hashes[i as usize], off[i as usize + 1] - off[i as usize], i));
    let mut keep = vec![true; m];
    let mut i = 0;
    while i < m {
        let a = idx[i] as usize;
        let mut j = i + 1;
        while j < m && hashes[idx[j] as usize] == hashes[a] {
            let b = idx[j] as usize;
            if keep[b] && pins[off[a]..off[a + 1]] == pins[off[b]..off[b + 1]] {
                nw[a] += nw[b];
                keep[b] = false;
            }
            j += 1;
        }
        // advance to the next not-yet-merged entry in this hash group, or past it
        i += 1;
        while i < m && !keep[idx[i] as usize] {
            i += 1;
        }
    }
    let mut off2 = vec![0usize];
    let mut pins2 = Vec::with_capacity(pins.len());
    let mut nw2 = Vec::new();
    for e in 0..m {
        if keep[e] {
            pins2.extend_from_slice(&pins[off[e]..off[e + 1]]);
            off2.push(pins2.len());
            nw2.push(nw[e]);
        }
    }
    Hypergraph::from_csr(dims, vw, nw2, off2, pins2)
}
