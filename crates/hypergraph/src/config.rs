//! [`PartitionConfig`]: what the caller asks for (k, imbalance / explicit capacities,
//! fixed vertices, topology, seed, effort preset) and its validation into the
//! effective per-part per-dimension capacities.
//!
//! Capacity rule when `capacities` is `None` (same rule as KaHyPar / Mt-KaHyPar, so
//! benchmark comparisons are fair):
//! `cap[p][d] = floor((1 + eps_d) * ceil(total_d / k))`.
//! Using `ceil(total_d / k)` as the base guarantees `k * cap_d >= total_d` even for
//! `eps_d = 0`; with integer weights a solution within the caps is still not
//! guaranteed to exist when single vertices are heavy relative to `total_d / k` (the
//! partitioner then returns [`Error::Infeasible`] if its rebalancer cannot fix it).

use crate::error::{Error, Result};
use crate::hypergraph::Hypergraph;

/// Effort / quality trade-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preset {
    /// Fewer initial tries, one FM pass per level.
    Fast,
    /// Balanced default.
    #[default]
    Default,
    /// Most initial-partitioning tries (V-cycles measured no better on DCP dumps).
    Quality,
}

/// Parts grouped into nodes (e.g. GPUs within a host). Crossing a node boundary costs
/// `inter_node_factor` times as much as crossing a part boundary inside a node.
///
/// Objective with topology, for every net `e` with connectivity `lambda_e` (parts
/// spanned) and `nu_e` (nodes spanned):
/// `cost(e) = w(e) * ((nu_e - 1) * inter_node_factor + (lambda_e - nu_e))`.
/// With one node (or `inter_node_factor == 1`) this is exactly km1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// `node_of_part[p]` = node hosting part `p` (length `k`; ids need not be dense).
    pub node_of_part: Vec<u32>,
    /// Cost multiplier of spanning one more node (>= 1).
    pub inter_node_factor: u64,
}

impl Topology {
    /// `parts_per_node` consecutive parts per node: node of part `p` is `p / parts_per_node`.
    pub fn uniform(k: u32, parts_per_node: u32, inter_node_factor: u64) -> Self {
        let ppn = parts_per_node.max(1);
        Topology {
            node_of_part: (0..k).map(|p| p / ppn).collect(),
            inter_node_factor,
        }
    }
}

/// Everything the partitioner needs besides the hypergraph.
#[derive(Debug, Clone)]
pub struct PartitionConfig {
    /// Number of parts (>= 1).
    pub k: u32,
    /// Allowed imbalance per dimension; a single value is broadcast to all dimensions.
    /// Ignored when `capacities` is `Some`.
    pub epsilon: Vec<f64>,
    /// Explicit maximum load `capacities[p][d]` per part and dimension (heterogeneous
    /// parts allowed).
    pub capacities: Option<Vec<Vec<u64>>>,
    /// `fixed[v] = Some(p)` pins vertex `v` to part `p`. Empty = no fixed vertices;
    /// otherwise length must equal the number of vertices.
    pub fixed: Vec<Option<u32>>,
    /// Optional node topology for the topology-aware km1 objective.
    pub topology: Option<Topology>,
    /// Random seed; results are a pure function of (hypergraph, config).
    pub seed: u64,
    /// Effort preset.
    pub preset: Preset,
}

impl PartitionConfig {
    /// `k` parts, a single epsilon for all dimensions, seed 0, default preset.
    pub fn new(k: u32, epsilon: f64) -> Self {
        PartitionConfig {
            k,
            epsilon: vec![epsilon],
            capacities: None,
            fixed: Vec::new(),
            topology: None,
            seed: 0,
            preset: Preset::Default,
        }
    }
    /// Builder-style seed setter.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Builder-style preset setter.
    pub fn with_preset(mut self, preset: Preset) -> Self {
        self.preset = preset;
        self
    }

    /// Validates the config against `hg` and returns the effective capacities
    /// (`k * D`, row-major by part).
    pub(crate) fn resolve_capacities(&self, hg: &Hypergraph) -> Result<Vec<u64>> {
        let k = self.k as usize;
        let dims = hg.dims();
        if k == 0 {
            return Err(Error::ZeroParts);
        }
        if !self.fixed.is_empty() && self.fixed.len() != hg.num_vertices() {
            return Err(Error::InvalidConfig(format!(
                "fixed has length {} but hypergraph has {} vertices",
                self.fixed.len(),
                hg.num_vertices()
            )));
        }
        for (v, f) in self.fixed.iter().enumerate() {
            if let Some(p) = *f {
                if p >= self.k {
                    return Err(Error::FixedOutOfRange {
                        vertex: v,
                        part: p,
                        k: self.k,
                    });
                }
            }
        }
        if let Some(t) = &self.topology {
            if t.node_of_part.len() != k {
                return Err(Error::InvalidConfig(format!(
                    "topology.node_of_part has length {} but k = {k}",
                    t.node_of_part.len()
                )));
            }
            if t.inter_node_factor == 0 {
                return Err(Error::InvalidConfig(
                    "topology.inter_node_factor must be >= 1".into(),
                ));
            }
        }
        let caps = match &self.capacities {
            Some(c) => {
                if c.len() != k {
                    return Err(Error::InvalidConfig(format!(
                        "capacities has {} rows but k = {k}",
                        c.len()
                    )));
                }
                let mut out = Vec::with_capacity(k * dims);
                for (p, row) in c.iter().enumerate() {
                    if row.len() != dims {
                        return Err(Error::InvalidConfig(format!(
                            "capacities[{p}] has {} entries but the hypergraph has {dims} dimension(s)",
                            row.len()
                        )));
                    }
                    out.extend_from_slice(row);
                }
                out
            }
            None => {
                let eps: Vec<f64> = match self.epsilon.len() {
                    1 => vec![self.epsilon[0]; dims],
                    l if l == dims => self.epsilon.clone(),
                    l => {
                        return Err(Error::InvalidConfig(format!(
                            "epsilon has {l} entries but the hypergraph has {dims} dimension(s)"
                        )))
                    }
                };
                let mut row = Vec::with_capacity(dims);
                for (d, &e) in eps.iter().enumerate() {
                    if !e.is_finite() || e < 0.0 {
                        return Err(Error::InvalidConfig(format!(
                            "epsilon[{d}] = {e} must be finite and >= 0"
                        )));
                    }
                    let base = hg.total_weight()[d].div_ceil(k as u64);
                    let cap = ((1.0 + e) * base as f64).floor();
                    let cap = if cap >= u64::MAX as f64 {
                        u64::MAX
                    } else {
                        (cap as u64).max(base)
                    };
                    row.push(cap);
                }
                let mut out = Vec::with_capacity(k * dims);
                for _ in 0..k {
                    out.extend_from_slice(&row);
                }
                out
            }
        };
        check_feasibility(hg, self, &caps)?;
        Ok(caps)
    }
}

/// Cheap necessary conditions for feasibility; violations become [`Error::Infeasible`].
fn check_feasibility(hg: &Hypergraph, cfg: &PartitionConfig, caps: &[u64]) -> Result<()> {
    let k = cfg.k as usize;
    let dims = hg.dims();
    for d in 0..dims {
        let sum: u128 = (0..k).map(|p| caps[p * dims + d] as u128).sum();
        if sum < hg.total_weight()[d] as u128 {
            return Err(Error::Infeasible {
                dim: d,
                part: None,
                reason: format!(
                    "sum of capacities {sum} < total weight {}",
                    hg.total_weight()[d]
                ),
            });
        }
    }
    let mut fixed_load = vec![0u64; k * dims];
    for v in 0..hg.num_vertices() {
        let w = hg.vertex_weight(v as u32);
        match cfg.fixed.get(v).copied().flatten() {
            Some(p) => {
                for d in 0..dims {
                    fixed_load[p as usize * dims + d] += w[d];
                }
            }
            None => {
                let fits = (0..k).any(|p| (0..dims).all(|d| w[d] <= caps[p * dims + d]));
                if !fits {
                    let d = (0..dims)
                        .max_by_key(|&d| {
                            let best = (0..k).map(|p| caps[p * dims + d]).max().unwrap_or(0);
                            w[d].saturating_sub(best)
                        })
                        .unwrap_or(0);
                    return Err(Error::Infeasible {
                        dim: d,
                        part: None,
                        reason: format!("vertex {v} (weight {w:?}) fits in no part"),
                    });
                }
            }
        }
    }
    for p in 0..k {
        for d in 0..dims {
            if fixed_load[p * dims + d] > caps[p * dims + d] {
                return Err(Error::Infeasible {
                    dim: d,
                    part: Some(p as u32),
                    reason: format!(
                        "fixed vertices weigh {} > capacity {}",
                        fixed_load[p * dims + d],
                        caps[p * dims + d]
                    ),
                });
            }
        }
    }
    Ok(())
}
