//! The DCP planner: blockwise placement by hypergraph partitioning, an overlapped stage
//! schedule, and forward/backward programs in the Plan IR.
//!
//! 1. **Placement.** One vertex per token block (weight: resident memory) and one per
//!    computation tile (weight: attended pairs) — two separate balance constraints. One net per
//!    data block joins its token block to every tile that reads it; its weight is the bytes the
//!    plan moves when the net is cut, forward *and* backward (Q-side: Q, O, LSE out and back, dO,
//!    dQ; KV-side: KV twice and dKV). Connectivity−1 is then exactly the bytes moved, and with
//!    several nodes an inter-node span costs `inter_node_factor` times more.
//! 2. **Schedule.** Stage 0 runs the tiles whose inputs are local; the remote tiles are split
//!    into S−1 stages of equal compute, and the blocks a stage needs are fetched during the
//!    previous stage. S comes from the cost model. Partial outputs (O/LSE forward, dQ/dKV
//!    backward) leave for their owner in the first group launched after they are final.
//! 3. **Candidates.** The plan of the best stage count is compared by the cost model with the
//!    `local` plan (whole sequences per device, when they fit), the ring and zigzag plans and the
//!    head-parallel `ulysses` and `usp` plans (where the head counts allow them); the cheapest
//!    is returned, so a `dcp` plan is never predicted slower than static CP.

mod emit;
mod place;
mod schedule;
mod slots;

use hypergraph::Preset;

pub use place::{place, placement_problem, Placement};

use crate::blocks::BlockTable;
use crate::cost::{predict, CostModel};
use crate::error::PlanningError;
use crate::plan::Plan;
use crate::planners::candidates::{
    compute_lower_bound_ms, predict_head_parallel, predict_local, predict_ring, ring_lower_bound_ms,
};
use crate::planners::local::plan_local;
use crate::planners::ring::plan_ring;
use crate::planners::ulysses::plan_ulysses;
use crate::planners::usp::plan_usp;
use crate::planners::PlannerKind;
use crate::spec::{BatchSpec, Topology};
use emit::emit;
use schedule::{estimate, StageSplitter};

#[derive(Debug, Clone)]
pub struct DcpOptions {
    /// Allowed compute imbalance (max/mean − 1) of the placement.
    pub comp_epsilon: f64,
    /// Allowed memory imbalance of the home data.
    pub mem_epsilon: f64,
    /// Cost of an inter-node byte relative to an intra-node byte (default: from the topology's
    /// bandwidths, [`Topology::inter_cost_ratio`]).
    pub inter_node_factor: Option<u64>,
    pub seed: u64,
    /// Fixed number of stages (default: chosen by the cost model).
    pub stages: Option<u32>,
    pub cost: CostModel,
    pub preset: Preset,
    /// Return the zigzag plan when the cost model predicts it faster.
    pub fallback_static: bool,
}

impl Default for DcpOptions {
    fn default() -> Self {
        DcpOptions {
            comp_epsilon: 0.08,
            mem_epsilon: 0.15,
            inter_node_factor: None,
            seed: 0,
            stages: None,
            cost: CostModel::default(),
            preset: Preset::Fast,
            fallback_static: true,
        }
    }
}

/// Estimated pipeline time a stage count may exceed the fastest one's by, to hold less
/// resident memory on the fullest device.
const STAGE_TIME_SLACK: f64 = 0.03;

/// The stage count: among those within [`STAGE_TIME_SLACK`] of the fastest estimated
/// pipeline, the one of the smallest estimated resident memory imbalance (then the faster).
fn choose_stages(
    table: &BlockTable,
    pl: &Placement,
    topo: &Topology,
    cost: &CostModel,
    splitter: &StageSplitter,
) -> u32 {
    let cands: Vec<(u32, f64, f64)> = (2..=8u32)
        .map(|s| {
            let mem = splitter.resident(s);
            let stage = splitter.split(table.tiles.len(), s);
            let t = estimate(table, pl, topo, cost, &stage, s);
            let mean = mem.iter().sum::<u64>() as f64 / mem.len() as f64;
            let imb = mem.iter().copied().max().unwrap_or(0) as f64 / mean.max(1.0);
            (s, t, imb)
        })
        .collect();
    let fastest = cands.iter().map(|c| c.1).fold(f64::INFINITY, f64::min);
    cands
        .iter()
        .filter(|c| c.1 <= fastest * (1.0 + STAGE_TIME_SLACK))
        .min_by(|a, b| a.2.total_cmp(&b.2).then(a.1.total_cmp(&b.1)))
        .map_or(2, |c| c.0)
}

/// Plans a batch with DCP.
/// Whether `dcp` offers the `local` candidate (whole sequences on single devices) at this
/// compute imbalance: within the compute tolerance, at least 10 %. An unbalanced local plan
/// also unbalances everything else the rank computes on its tokens in training (the layers
/// outside attention), which an attention-time prediction does not see.
pub fn local_is_balanced(imbalance: f64, comp_epsilon: f64) -> bool {
    imbalance <= 1.0 + comp_epsilon.max(0.10)
}

pub fn plan_dcp(
    batch: &BatchSpec,
    topo: &Topology,
    opts: &DcpOptions,
) -> Result<Plan, PlanningError> {
    let table = BlockTable::build(batch)?;
    let pl = place(&table, batch, topo, opts)?;
    let n = topo.n_devices();
    let any_remote = table.tiles.iter().enumerate().any(|(ti, t)| {
        let d = pl.tile_dev[ti];
        pl.block_home[t.q_block as usize] != d || pl.block_home[t.kv_block as usize] != d
    });
    let splitter = StageSplitter::new(&table, &pl, n, &batch.model);
    let stages = match opts.stages {
        Some(s) => s.max(if any_remote { 2 } else { 1 }),
        None if !any_remote => 1,
        None => choose_stages(&table, &pl, topo, &opts.cost, &splitter),
    };
    let stage = if stages == 1 {
        vec![0; table.tiles.len()]
    } else {
        splitter.split(table.tiles.len(), stages)
    };
    let plan = emit(batch, topo, &table, &pl, &stage, stages);
    if !(opts.fallback_static && n > 1) {
        return Ok(plan);
    }
    // The static candidates are predicted without building them; only a winner is emitted.
    let mut best_t = {
        let a = predict(&plan, &opts.cost);
        a.fwd_ms + a.bwd_ms
    };
    let mut winner: Option<PlannerKind> = None;
    // Whole sequences on single devices (no communication at all) when they fit and balance
    // within the compute tolerance: the best plan when few devices share a batch of many
    // sequences. (An unbalanced local plan can only win when the batch is so cheap that
    // latencies dominate; it is not offered then.)
    if let Ok((p, imbalance)) = predict_local(batch, topo, &opts.cost, None) {
        let balanced = local_is_balanced(imbalance, opts.comp_epsilon);
        if balanced && p.fwd_ms + p.bwd_ms < best_t {
            best_t = p.fwd_ms + p.bwd_ms;
            winner = Some(PlannerKind::Local);
        }
    }
    // Ring and zigzag: the model costs O(devices² · sequences) tile counts; skip it when even a
    // lower bound (perfect compute balance; serialized KV and dKV hops over each device's link)
    // cannot beat the best so far.
    let flops: f64 = table.tiles.iter().map(|t| table.tile_flops(t)).sum();
    for (kind, zigzag) in [(PlannerKind::Zigzag, true), (PlannerKind::Ring, false)] {
        if best_t > ring_lower_bound_ms(batch, topo, &opts.cost, flops, zigzag) {
            let p = predict_ring(batch, topo, &opts.cost, zigzag);
            if p.fwd_ms + p.bwd_ms < best_t {
                best_t = p.fwd_ms + p.bwd_ms;
                winner = Some(kind);
            }
        }
    }
    // Head-parallel: `ulysses` and `usp` (default head degree), where they apply to the shape,
    // predicted without building their plans (a fitted kernel model builds them: then the
    // winner's built plan is kept); skipped when even perfect compute balance with no
    // communication could not beat the best so far.
    let mut head_parallel: Option<Plan> = None;
    if best_t > compute_lower_bound_ms(&opts.cost, flops, n) {
        for kind in PlannerKind::HEAD_PARALLEL {
            // An unsupported shape (too many devices for the heads) is no candidate.
            let Ok((t, built)) = predict_head_parallel(kind, batch, topo, &opts.cost, None) else {
                continue;
            };
            if t.fwd_ms + t.bwd_ms < best_t {
                best_t = t.fwd_ms + t.bwd_ms;
                winner = Some(kind);
                head_parallel = built;
            }
        }
    }
    // The plan says which candidate won (`candidate`); its planner stays `dcp`.
    let mut best = match winner {
        None => return Ok(plan),
        Some(PlannerKind::Local) => plan_local(batch, topo, None)?,
        Some(PlannerKind::Ulysses) => match head_parallel {
            Some(p) => p,
            None => plan_ulysses(batch, topo)?,
        },
        Some(PlannerKind::Usp) => match head_parallel {
            Some(p) => p,
            None => plan_usp(batch, topo, None)?,
        },
        Some(z) => plan_ring(batch, topo, z == PlannerKind::Zigzag)?,
    };
    best.planner = PlannerKind::Dcp.name().to_string();
    best.candidate = winner;
    Ok(best)
}
