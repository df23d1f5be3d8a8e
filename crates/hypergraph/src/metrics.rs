//! Objective and balance metrics computed from scratch (no incremental state), used for
//! the returned [`crate::Partition`] and as the brute-force reference in tests.
//!
//! * km1 = sum over nets of `w(e) * (lambda(e) - 1)`, lambda = number of parts spanned;
//! * cut = sum of `w(e)` over nets with `lambda(e) > 1`;
//! * topology cost (see [`crate::Topology`]) = sum of
//!   `w(e) * ((nu(e) - 1) * f + lambda(e) - nu(e))`, nu = number of nodes spanned;
//! * imbalance per dimension = max part load / (total / k).

use crate::config::Topology;
use crate::hypergraph::Hypergraph;

/// Connectivity-minus-one objective, weighted by net weight.
pub fn km1(hg: &Hypergraph, parts: &[u32]) -> u64 {
    per_net(hg, parts, None).0
}

/// Sum of weights of nets spanning more than one part.
pub fn cut(hg: &Hypergraph, parts: &[u32]) -> u64 {
    per_net(hg, parts, None).1
}

/// Topology-aware km1 (equals [`km1`] when `topology` is `None`).
pub fn topology_cost(hg: &Hypergraph, parts: &[u32], topology: Option<&Topology>) -> u64 {
    per_net(hg, parts, topology).2
}

/// Returns (km1, cut, topology cost).
pub(crate) fn per_net(
    hg: &Hypergraph,
    parts: &[u32],
    topology: Option<&Topology>,
) -> (u64, u64, u64) {
    let mut seen_p: Vec<u32> = Vec::new();
    let mut seen_n: Vec<u32> = Vec::new();
    let (mut k1, mut c, mut t) = (0u64, 0u64, 0u64);
    for e in 0..hg.num_nets() as u32 {
        seen_p.clear();
        seen_n.clear();
        for &v in hg.pins(e) {
            let p = parts[v as usize];
            if !seen_p.contains(&p) {
                seen_p.push(p);
                if let Some(tp) = topology {
                    let nd = tp.node_of_part[p as usize];
                    if !seen_n.contains(&nd) {
                        seen_n.push(nd);
                    }
                }
            }
        }
        let w = hg.net_weight(e);
        let lam = seen_p.len() as u64;
        k1 += w * (lam - 1);
        if lam > 1 {
            c += w;
        }
        t += match topology {
            Some(tp) => {
                let nu = seen_n.len() as u64;
                w * ((nu - 1) * tp.inter_node_factor + lam - nu)
            }
            None => w * (lam - 1),
        };
    }
    (k1, c, t)
}

/// Per-part loads: `loads[p][d]`.
pub fn loads(hg: &Hypergraph, parts: &[u32], k: u32) -> Vec<Vec<u64>> {
    let mut l = vec![vec![0u64; hg.dims()]; k as usize];
    for (v, &p) in parts.iter().enumerate() {
        for (d, &w) in hg.vertex_weight(v as u32).iter().enumerate() {
            l[p as usize][d] += w;
        }
    }
    l
}

/// Per-dimension imbalance: max load / (total / k); 1.0 for an all-zero dimension.
pub fn imbalance(hg: &Hypergraph, loads: &[Vec<u64>]) -> Vec<f64> {
    let k = loads.len().max(1) as f64;
    (0..hg.dims())
        .map(|d| {
            let total = hg.total_weight()[d] as f64;
            let max = loads.iter().map(|l| l[d]).max().unwrap_or(0) as f64;
            if total == 0.0 {
                1.0
            } else {
                max / (total / k)
            }
        })
        .collect()
}
