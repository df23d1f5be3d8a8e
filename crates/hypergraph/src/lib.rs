//! Multilevel, multi-constraint, deterministic k-way hypergraph partitioner minimising
//! connectivity − 1 (km1), optionally topology-aware.
//!
//! This crate knows nothing about attention: it partitions a [`Hypergraph`] whose
//! vertices carry `D`-dimensional integer weights into `k` parts under per-part,
//! per-dimension capacities ([`PartitionConfig`]).
//!
//! Pipeline ([`partition`]): validate + resolve capacities ([`config`]) → coarsen
//! ([`mod@coarsen`]) → initial partition of the coarsest level ([`initial`]) → uncoarsen with
//! rebalancing ([`balance`]) + label propagation and k-way FM ([`refine`]) on each level
//! → optional V-cycles (`Params::vcycles`, currently 0 in every preset) → final rebalance and metrics ([`metrics`]).
//!
//! Guarantees: the returned partition respects every capacity in every dimension
//! (otherwise an [`Error::Infeasible`] is returned); the result is a pure function of the
//! hypergraph and the config (seeded ChaCha RNG, no threads, no hash-order dependence).
//! I/O in hMETIS format lives in [`hmetis`].

// Index loops over the (tiny) weight dimension read better than zipped iterators here.
#![allow(clippy::needless_range_loop)]

pub mod balance;
pub mod coarsen;
pub mod config;
pub mod error;
pub mod hmetis;
pub mod hypergraph;
pub mod initial;
pub mod metrics;
pub mod refine;
mod state;

use std::path::Path;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

pub use config::{PartitionConfig, Preset, Topology};
pub use error::{Error, Result};
pub use hypergraph::{Hypergraph, HypergraphBuilder, NetId, VertexId};

use coarsen::{coarsen, CoarsenParams};
use refine::RefineParams;
use state::{PartState, TopoInfo};

/// A k-way partition and its quality / balance metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Partition {
    /// `parts[v]` = part of vertex `v` (in `0..k`).
    pub parts: Vec<u32>,
    /// Connectivity − 1, weighted by net weight.
    pub km1: u64,
    /// Sum of weights of nets spanning more than one part.
    pub cut: u64,
    /// The optimised objective: topology-aware km1 if a topology was given, else km1.
    pub cost: u64,
    /// `loads[p][d]`.
    pub loads: Vec<Vec<u64>>,
    /// Per dimension: max load / (total / k).
    pub imbalance: Vec<f64>,
    /// Effective capacities `capacities[p][d]` the partition respects.
    pub capacities: Vec<Vec<u64>>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    /// Top-level coarsening stops at `limit_per_part * k` vertices.
    pub limit_per_part: usize,
    /// Initial-partitioning tries at the coarsest level of each bisection.
    pub tries: usize,
    pub refine: RefineParams,
    /// FM stop (moves without a new best prefix) inside the initial-partitioning tries.
    pub ip_fm_stop: usize,
    pub vcycles: usize,
}

fn params(preset: Preset) -> Params {
    let r = |lp, passes, stop| RefineParams {
        lp_rounds: lp,
        fm_passes: passes,
        fm_stop: stop,
        max_update_net: 2000,
        net_pins: 32,
        net_rounds: 3,
        net_whole: true,
        net_bisect: true,
    };
    // Top level: 160 vertices per part (Mt-KaHyPar's contraction limit), i.e. no top-level
    // coarsening on the planner's 4x8 instances: the recursive bisection (each bisection
    // multilevel itself) sees every tile. Measured on the planner's 40 folded 4x8
    // instances (bench/results/hypergraph.md): 20 -> 160 per part took Fast from 1.084x
    // to 1.063x Mt-KaHyPar's km1 at the same time, 80 -> 160 Default from 1.024x to
    // 1.022x and cheaper.
    match preset {
        // Initial-partitioning tries are what pays on DCP instances (the coarsest
        // level of each bisection is small): measured, more tries beat more FM passes at
        // equal time.
        Preset::Fast => Params {
            limit_per_part: 160,
            tries: 12,
            refine: r(3, 1, 100),
            ip_fm_stop: 100,
            vcycles: 0,
        },
        // 32 tries whose FM stops after 50 fruitless moves (the coarsest levels have ~160
        // vertices: 200 let every pass move every vertex; 50 measured as good, 10 % cheaper).
        Preset::Default => Params {
            limit_per_part: 160,
            tries: 32,
            refine: r(3, 2, 200),
            ip_fm_stop: 50,
            vcycles: 0,
        },
        Preset::Quality => Params {
            limit_per_part: 160,
            tries: 64,
            refine: r(5, 3, 250),
            ip_fm_stop: 250,
            vcycles: 0,
        },
    }
}

/// Partitions `hg` according to `cfg`.
pub fn partition(hg: &Hypergraph, cfg: &PartitionConfig) -> Result<Partition> {
    let caps = cfg.resolve_capacities(hg)?;
    let k = cfg.k as usize;
    let topo = cfg.topology.as_ref().and_then(TopoInfo::new);
    let prm = params(cfg.preset);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let parts = if k == 1 {
        vec![0; hg.num_vertices()]
    } else {
        let mut parts = multilevel(
            hg,
            k,
            &caps,
            topo.as_ref(),
            &cfg.fixed,
            None,
            &prm,
            &mut rng,
        );
        for _ in 0..prm.vcycles {
            parts = multilevel(
                hg,
                k,
                &caps,
                topo.as_ref(),
                &cfg.fixed,
                Some(&parts),
                &prm,
                &mut rng,
            );
        }
        parts
    };
    let mut st = PartState::new(hg, k, &caps, topo.as_ref(), parts);
    if st.overloaded() && !balance::rebalance(&mut st, &cfg.fixed) {
        return Err(infeasible(&st, &caps));
    }
    Ok(finish(hg, cfg, st.parts, &caps))
}

/// Top-level coarsening limit (vertices per part) of [`refine_from`]'s V-cycle. Lower than the
/// presets' 160: a V-cycle starts from a given partition and improves it by moving the
/// clusters its coarsening builds inside the parts; at 160 per part the planner's 4x8
/// instances were not coarsened at all and the V-cycle was a flat refinement (measured on the
/// reference 4x8 B1024 batches, placement from the geometric bisection: longalign causal
/// bytes 1.025x the reference planner's at 160, 1.003x at 20; 1.019x–1.055x at 8–30).
const VCYCLE_LIMIT_PER_PART: usize = 20;

/// Improves a given partition under `cfg` (possibly new, per-part capacities): one V-cycle
/// (coarsening inside the given parts, refinement on every level) after rebalancing the
/// given partition into the capacities. For callers that learn after a first partition
/// that some parts must carry less (e.g. a memory cost the hypergraph does not model).
pub fn refine_from(hg: &Hypergraph, cfg: &PartitionConfig, initial: &[u32]) -> Result<Partition> {
    let caps = cfg.resolve_capacities(hg)?;
    let k = cfg.k as usize;
    if initial.len() != hg.num_vertices() {
        return Err(Error::InvalidConfig(format!(
            "initial partition has {} entries for {} vertices",
            initial.len(),
            hg.num_vertices()
        )));
    }
    if let Some(v) = initial.iter().position(|&p| p as usize >= k) {
        return Err(Error::InvalidConfig(format!(
            "initial partition puts vertex {v} in part {} (k = {k})",
            initial[v]
        )));
    }
    let topo = cfg.topology.as_ref().and_then(TopoInfo::new);
    let prm = Params {
        limit_per_part: VCYCLE_LIMIT_PER_PART,
        ..params(cfg.preset)
    };
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut st = PartState::new(hg, k, &caps, topo.as_ref(), initial.to_vec());
    if st.overloaded() && !balance::rebalance(&mut st, &cfg.fixed) {
        return Err(infeasible(&st, &caps));
    }
    let parts = multilevel(
        hg,
        k,
        &caps,
        topo.as_ref(),
        &cfg.fixed,
        Some(&st.parts),
        &prm,
        &mut rng,
    );
    let mut st = PartState::new(hg, k, &caps, topo.as_ref(), parts);
    if st.overloaded() && !balance::rebalance(&mut st, &cfg.fixed) {
        return Err(infeasible(&st, &caps));
    }
    Ok(finish(hg, cfg, st.parts, &caps))
}

fn infeasible(st: &PartState, caps: &[u64]) -> Error {
    let dims = st.dims;
    let k = caps.len() / dims;
    let (p, d) = (0..k * dims)
        .map(|i| (i / dims, i % dims))
        .max_by_key(|&(p, d)| st.loads[p * dims + d].saturating_sub(st.caps[p * dims + d]))
        .unwrap_or((0, 0));
    Error::Infeasible {
        dim: d,
        part: Some(p as u32),
        reason: format!(
            "rebalancing heuristic could not bring load {} under capacity {}",
            st.loads[p * dims + d],
            caps[p * dims + d]
        ),
    }
}

fn finish(hg: &Hypergraph, cfg: &PartitionConfig, parts: Vec<u32>, caps: &[u64]) -> Partition {
    let dims = hg.dims();
    let (km1, cut, cost) = metrics::per_net(hg, &parts, cfg.topology.as_ref());
    let loads = metrics::loads(hg, &parts, cfg.k);
    let imbalance = metrics::imbalance(hg, &loads);
    Partition {
        parts,
        km1,
        cut,
        cost,
        loads,
        imbalance,
        capacities: caps.chunks(dims).map(|c| c.to_vec()).collect(),
    }
}

/// One multilevel cycle. With `initial`, coarsening stays inside its parts and the
/// coarsest level starts from it (V-cycle); otherwise an initial partition is computed.
#[allow(clippy::too_many_arguments)]
pub(crate) fn multilevel(
    hg: &Hypergraph,
    k: usize,
    caps: &[u64],
    topo: Option<&TopoInfo>,
    fixed: &[Option<u32>],
    initial: Option<&[u32]>,
    prm: &Params,
    rng: &mut ChaCha8Rng,
) -> Vec<u32> {
    let dims = hg.dims();
    let limit = (prm.limit_per_part * k).max(160);
    let max_weight: Vec<u64> = (0..dims)
        .map(|d| {
            let min_cap = (0..k).map(|p| caps[p * dims + d]).min().unwrap_or(0);
            hg.total_weight()[d]
                .div_ceil(limit as u64)
                .min(min_cap)
                .max(1)
        })
        .collect();
    let cp = CoarsenParams {
        limit,
        max_weight,
        max_rating_net: 5000,
        penalty: true,
    };
    let levels = coarsen(hg, fixed, initial, &cp, rng);
    let (chg, cfixed): (&Hypergraph, &[Option<u32>]) = match levels.last() {
        Some(l) => (&l.hg, &l.fixed),
        None => (hg, fixed),
    };
    let mut parts = match initial {
        Some(init) => {
            let mut p = init.to_vec();
            for l in &levels {
                let mut c = vec![0u32; l.hg.num_vertices()];
                for (v, &cv) in l.map.iter().enumerate() {
                    c[cv as usize] = p[v];
                }
                p = c;
            }
            p
        }
        None => initial::initial_partition(chg, k, caps, topo, cfixed, prm, rng),
    };
    // uncoarsen: refine on each level from coarsest to finest
    for i in (0..=levels.len()).rev() {
        let (lhg, lfixed): (&Hypergraph, &[Option<u32>]) = if i == 0 {
            (hg, fixed)
        } else {
            (&levels[i - 1].hg, &levels[i - 1].fixed)
        };
        let mut st = PartState::new(lhg, k, caps, topo, parts);
        if st.overloaded() {
            balance::rebalance(&mut st, lfixed);
        }
        refine::label_propagation(&mut st, lfixed, &prm.refine, rng);
        refine::fm(&mut st, lfixed, &prm.refine, rng);
        // Group moves of a net's pins in one part (all of them, too, with `net_whole`):
        // single-vertex FM cannot move a row of attention tiles whose tiles each lose
        // alone. Measured on the planner's folded instances: inside the bisections as well
        // as in the k-way levels (km1 -0.2 % to -0.6 %).
        if (k > 2 || prm.refine.net_bisect)
            && prm.refine.net_pins > 0
            && refine::net_moves(
                &mut st,
                lfixed,
                prm.refine.net_pins,
                prm.refine.net_rounds,
                prm.refine.net_whole,
            ) > 0
        {
            refine::fm(&mut st, lfixed, &prm.refine, rng);
        }
        parts = st.parts;
        if i > 0 {
            let map = &levels[i - 1].map;
            parts = map.iter().map(|&c| parts[c as usize]).collect();
        }
    }
    parts
}

/// What `dcp partition FILE.hgr` prints (as one JSON object).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartitionReport {
    pub vertices: usize,
    pub nets: usize,
    pub pins: usize,
    pub k: u32,
    pub epsilon: f64,
    pub seed: u64,
    pub km1: u64,
    pub cut: u64,
    /// `loads[p][d]`.
    pub loads: Vec<Vec<u64>>,
    /// Per dimension: max load / (total / k).
    pub imbalance: Vec<f64>,
    /// Wall time of the partitioning only (not the file read), milliseconds.
    pub ms: f64,
    /// Per-part assignment (omitted from the report unless requested).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<u32>>,
}

impl PartitionReport {
    /// The report of partition `p` of `hg` into `k` parts with imbalance `epsilon` and `seed`,
    /// found in `ms` milliseconds; with the part vector where `with_parts`.
    pub fn new(
        hg: &Hypergraph,
        (k, epsilon, seed): (u32, f64, u64),
        p: Partition,
        ms: f64,
        with_parts: bool,
    ) -> PartitionReport {
        PartitionReport {
            vertices: hg.num_vertices(),
            nets: hg.num_nets(),
            pins: hg.num_pins(),
            k,
            epsilon,
            seed,
            km1: p.km1,
            cut: p.cut,
            loads: p.loads,
            imbalance: p.imbalance,
            ms,
            parts: with_parts.then_some(p.parts),
        }
    }
}

/// Reads an hMETIS file (see [`hmetis`]; `weight_dims` = expected weights per vertex line,
/// `None` = take it from the header, default 1), partitions it into `k` parts with
/// imbalance `epsilon` in every dimension, and reports metrics and partitioning time.
pub fn partition_file(
    path: &Path,
    k: u32,
    epsilon: f64,
    seed: u64,
    weight_dims: Option<usize>,
) -> Result<PartitionReport> {
    partition_file_with(path, k, epsilon, seed, weight_dims, Preset::Default, false)
}

/// [`partition_file`] with an explicit preset and optional part vector in the report.
pub fn partition_file_with(
    path: &Path,
    k: u32,
    epsilon: f64,
    seed: u64,
    weight_dims: Option<usize>,
    preset: Preset,
    with_parts: bool,
) -> Result<PartitionReport> {
    let hg = hmetis::read_hgr_file(path, weight_dims)?;
    let cfg = PartitionConfig::new(k, epsilon)
        .with_seed(seed)
        .with_preset(preset);
    let t = Instant::now();
    let p = partition(&hg, &cfg)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    Ok(PartitionReport::new(
        &hg,
        (k, epsilon, seed),
        p,
        ms,
        with_parts,
    ))
}
