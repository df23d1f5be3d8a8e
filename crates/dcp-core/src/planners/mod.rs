//! Every planner, one folder each, and one entry point by name: `ring`/`zigzag`
//! ([`ring`]), `local` ([`local`]), the head-parallel baselines `ulysses` ([`ulysses`]) and
//! `usp` ([`usp`]), and `dcp` ([`dcp`]: placement, schedule, emission).

pub mod candidates;
pub mod dcp;
pub mod local;
pub mod ring;
pub mod ulysses;
pub mod usp;

use serde::{Deserialize, Serialize};

use crate::error::PlanningError;
use crate::plan::Plan;
use crate::spec::{BatchSpec, Topology};

/// The planners of this build, by their CLI / serialized name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlannerKind {
    /// Hypergraph placement and staged schedule; returns a static candidate (`local`, `zigzag`,
    /// `ring`) instead when the cost model predicts it faster, unless
    /// [`crate::dcp::DcpOptions::fallback_static`] is off (CLI `--no-static-fallback`).
    Dcp,
    Ring,
    Zigzag,
    Local,
    /// Head-parallel all-to-all (DeepSpeed-Ulysses), KV heads replicated when fewer than devices.
    Ulysses,
    /// 2-D head-parallel × zigzag ring (USP / LoongTrain); head degree from
    /// [`PlannerOptions::usp_heads`] (CLI `usp:H`), default the largest that needs no replication.
    Usp,
}

impl PlannerKind {
    pub const ALL: [PlannerKind; 4] = [
        PlannerKind::Ring,
        PlannerKind::Zigzag,
        PlannerKind::Local,
        PlannerKind::Dcp,
    ];
    /// The head-parallel baselines: not in [`PlannerKind::ALL`] because they refuse some shapes
    /// (more devices than query heads), so default comparisons leave them out.
    pub const HEAD_PARALLEL: [PlannerKind; 2] = [PlannerKind::Ulysses, PlannerKind::Usp];
    /// The CLI / serialized name.
    pub const fn name(self) -> &'static str {
        match self {
            PlannerKind::Dcp => "dcp",
            PlannerKind::Ring => "ring",
            PlannerKind::Zigzag => "zigzag",
            PlannerKind::Local => "local",
            PlannerKind::Ulysses => "ulysses",
            PlannerKind::Usp => "usp",
        }
    }

    /// What the planner does, one phrase (for lists of allowed names).
    pub const fn about(self) -> &'static str {
        match self {
            PlannerKind::Dcp => "hypergraph placement; a static candidate when predicted faster",
            PlannerKind::Ring => "ring attention",
            PlannerKind::Zigzag => "ring attention, zigzag chunks",
            PlannerKind::Local => "whole sequences per device",
            PlannerKind::Ulysses => "head-parallel all-to-all, DeepSpeed-Ulysses",
            PlannerKind::Usp => "2-D head-parallel x zigzag ring; usp:H picks the head degree H",
        }
    }
}

/// The names of `kinds`, in order (a `const` so lists like [`PLANNERS`] follow [`PlannerKind`]).
const fn names<const N: usize>(kinds: [PlannerKind; N]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = kinds[i].name();
        i += 1;
    }
    out
}

/// Every accepted planner name with what it does, for messages and help: the
/// [`PlannerKind::ALL`] names, the [`PlannerKind::HEAD_PARALLEL`] ones, `usp:H`, [`ULYSSES_PP`]
/// and [`DCP_ONLY`]; e.g. `ring, zigzag, local, dcp, ulysses (...), usp (...), dcp-only (...)`.
pub fn allowed_planners() -> String {
    let mut parts: Vec<String> = PLANNERS.iter().map(|s| s.to_string()).collect();
    parts.extend(
        PlannerKind::HEAD_PARALLEL
            .iter()
            .map(|k| format!("{} ({})", k.name(), k.about())),
    );
    parts.push(format!(
        "{ULYSSES_PP} (ulysses with its all-to-alls in two phases of sequences, beside the attention)"
    ));
    parts.push(format!(
        "{DCP_ONLY} (the DCP placement alone, never replaced by a static candidate)"
    ));
    parts.join(", ")
}

impl std::fmt::Display for PlannerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A planner name this build does not have.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown planner `{0}`: allowed are {allowed}", allowed = allowed_planners())]
pub struct UnknownPlanner(pub String);

impl std::str::FromStr for PlannerKind {
    type Err = UnknownPlanner;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PlannerKind::ALL
            .into_iter()
            .chain(PlannerKind::HEAD_PARALLEL)
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownPlanner(s.to_string()))
    }
}

/// Planner names every comparison runs ([`PlannerKind::ALL`]).
pub const PLANNERS: &[&str] = &names(PlannerKind::ALL);

/// Head-parallel static planners by name ([`PlannerKind::HEAD_PARALLEL`]); `usp:H` picks H.
pub const HEAD_PARALLEL: &[&str] = &names(PlannerKind::HEAD_PARALLEL);

/// Whether `name` names a planner of this build ([`make_plan`] accepts it): a [`PlannerKind`],
/// [`DCP_ONLY`], [`ULYSSES_PP`], or `usp:H`.
pub fn is_planner(name: &str) -> bool {
    name == DCP_ONLY
        || name == ULYSSES_PP
        || name.parse::<PlannerKind>().is_ok()
        || usp_degree(name).is_some()
}

/// H of a `usp:H` name (a positive integer), else None.
fn usp_degree(name: &str) -> Option<u32> {
    name.strip_prefix("usp:")
        .and_then(|h| h.parse::<u32>().ok())
        .filter(|&h| h > 0)
}

/// Options shared by planners (each uses what applies to it).
#[derive(Debug, Clone)]
pub struct PlannerOptions {
    /// Per-device token budget for `local` (default: from the topology's device memory).
    pub budget_tokens: Option<u64>,
    /// Options of the `dcp` planner.
    pub dcp: crate::dcp::DcpOptions,
    /// Threads that build the `ring` and `zigzag` programs (one device per task; the plan is
    /// byte-identical for any count). Default 1.
    pub threads: usize,
    /// Head-parallel degree H of `usp` (None: the largest valid without KV replication).
    pub usp_heads: Option<u32>,
}

impl Default for PlannerOptions {
    fn default() -> Self {
        PlannerOptions {
            budget_tokens: None,
            dcp: crate::dcp::DcpOptions::default(),
            threads: 1,
            usp_heads: None,
        }
    }
}

/// `f` over `0..n` on up to `threads` scoped threads (contiguous chunks), results in order, so
/// the output does not depend on the thread count. A panic in a worker is resumed here.
pub(crate) fn par_map<T: Send>(n: u32, threads: usize, f: impl Fn(u32) -> T + Sync) -> Vec<T> {
    let t = threads.clamp(1, n.max(1) as usize);
    if t == 1 {
        return (0..n).map(f).collect();
    }
    let chunk = (n as usize).div_ceil(t);
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = (0..t)
            .map(|c| {
                let (a, b) = ((c * chunk) as u32, ((c + 1) * chunk).min(n as usize) as u32);
                s.spawn(move || (a..b).map(f).collect::<Vec<T>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Name accepted by [`make_plan`] (not a [`PlannerKind`]): the `dcp` planner with
/// [`crate::dcp::DcpOptions::fallback_static`] off, i.e. always the bare DCP placement (for
/// benchmarks that take planner lists, such as `dcp bench-gpu --planners dcp,dcp-only`).
pub const DCP_ONLY: &str = "dcp-only";

/// Name accepted by [`make_plan`] (not a [`PlannerKind`]): `ulysses` with its all-to-alls in two
/// phases of sequences beside the attention ([`ulysses::plan_ulysses_pp`]).
pub const ULYSSES_PP: &str = "ulysses-pp";

/// Plans `batch` with the named planner (a [`PlannerKind`] name, [`DCP_ONLY`], [`ULYSSES_PP`]
/// or `usp:H`) and checks
/// every device's buffers against the topology's per-device memory cap.
pub fn make_plan(
    name: &str,
    batch: &BatchSpec,
    topo: &Topology,
    opts: &PlannerOptions,
) -> Result<Plan, PlanningError> {
    if name == DCP_ONLY {
        let mut o = opts.clone();
        o.dcp.fallback_static = false;
        return plan_with(PlannerKind::Dcp, batch, topo, &o);
    }
    if let Some(h) = usp_degree(name) {
        let mut o = opts.clone();
        o.usp_heads = Some(h);
        return plan_with(PlannerKind::Usp, batch, topo, &o);
    }
    if name == ULYSSES_PP {
        // (Sized as `ulysses`: the same works and buffers, in twice as many groups.)
        return checked(PlannerKind::Ulysses, batch, topo, || {
            ulysses::plan_ulysses_pp(batch, topo)
        });
    }
    plan_with(name.parse()?, batch, topo, opts)
}

/// The checks around every planner: the batch is valid, its `size_kind` plan is not too large
/// ([`check_size`]) before `build` runs, and the built plan fits each device's memory.
fn checked(
    size_kind: PlannerKind,
    batch: &BatchSpec,
    topo: &Topology,
    build: impl FnOnce() -> Result<Plan, PlanningError>,
) -> Result<Plan, PlanningError> {
    batch.validate()?;
    check_size(size_kind, batch, topo)?;
    let plan = build()?;
    check_memory(&plan)?;
    Ok(plan)
}

/// [`make_plan`], then the validator: the plan an executor may run ([`crate::ValidatedPlan`]).
pub fn make_validated_plan(
    name: &str,
    batch: &BatchSpec,
    topo: &Topology,
    opts: &PlannerOptions,
) -> Result<crate::validate::ValidatedPlan, PlanningError> {
    let plan = make_plan(name, batch, topo, opts)?;
    crate::validate::ValidatedPlan::new(plan).map_err(|e| PlanningError::Invalid(Box::new(e)))
}

/// Plans `batch` with planner `kind` and checks every device's buffers against the topology's
/// per-device memory cap. Batches whose plan would be absurdly large are refused up front.
pub fn plan_with(
    kind: PlannerKind,
    batch: &BatchSpec,
    topo: &Topology,
    opts: &PlannerOptions,
) -> Result<Plan, PlanningError> {
    checked(kind, batch, topo, || match kind {
        PlannerKind::Ring => ring::plan_ring_threads(batch, topo, false, opts.threads),
        PlannerKind::Zigzag => ring::plan_ring_threads(batch, topo, true, opts.threads),
        PlannerKind::Local => local::plan_local(batch, topo, opts.budget_tokens),
        PlannerKind::Dcp => dcp::plan_dcp(batch, topo, &opts.dcp),
        PlannerKind::Ulysses => ulysses::plan_ulysses(batch, topo),
        PlannerKind::Usp => usp::plan_usp(batch, topo, opts.usp_heads),
    })
}

/// Most attention works (forward) a plan may hold: about 1 GB of IR per million works, so 20 M
/// works is already a plan of tens of GB that no executor could use.
pub const MAX_PLAN_WORKS: u64 = 20_000_000;

/// Refuses a batch whose `kind` plan would exceed [`MAX_PLAN_WORKS`], estimated from its shape
/// before anything is built: ring/zigzag hold a row-range segment per (device, step, sequence
/// piece) (one work per device and step), dcp at
/// most one per attended tile, local one per sequence. Also refuses a batch whose even share per
/// device exceeds the device memory.
pub fn check_size(
    kind: PlannerKind,
    batch: &BatchSpec,
    topo: &Topology,
) -> Result<(), PlanningError> {
    let n = topo.n_devices() as u64;
    // The smallest share any plan gives a device must fit its memory.
    let bpt = local::bytes_per_token(batch);
    let share = batch.total_tokens().div_ceil(n);
    if share.saturating_mul(bpt) > topo.device_memory_bytes {
        let budget = topo.device_memory_bytes / bpt;
        let longest = batch
            .seqs
            .iter()
            .enumerate()
            .max_by_key(|(i, s)| (s.len, usize::MAX - i));
        if let Some((seq, s)) = longest.filter(|(_, s)| s.len as u64 > budget.saturating_mul(n)) {
            return Err(PlanningError::SequenceExceedsCluster {
                seq,
                tokens: s.len as u64,
                devices: n as u32,
                budget,
            });
        }
        return Err(PlanningError::BatchTooLarge {
            tokens: batch.total_tokens(),
            devices: n as u32,
            budget: topo.device_memory_bytes / bpt,
        });
    }
    let nh = (batch.model.kv_heads / batch.head_block.max(1)) as u64;
    let b = batch.block_size.max(1) as u64;
    let per_seq = |s: &crate::spec::Sequence| -> u64 {
        let len = s.len as u64;
        match kind {
            // Ring steps × pieces; the head-parallel plans hold at most as many (one work per
            // member and ring step and piece).
            PlannerKind::Ring | PlannerKind::Zigzag | PlannerKind::Ulysses | PlannerKind::Usp => {
                let pieces = len.min(n);
                pieces * pieces
            }
            PlannerKind::Local => 1,
            // At most one work per attended tile: the attended pairs over B², plus two partial
            // tiles per block row (closed-form count; the square bound for huge sequences).
            PlannerKind::Dcp => {
                let blocks = len.div_ceil(b);
                let tiles = if len < 1 << 31 {
                    (s.mask.compile(s.len).count_all() / (b * b) + 2 * blocks).min(blocks * blocks)
                } else {
                    blocks.saturating_mul(blocks)
                };
                tiles.saturating_mul(nh)
            }
        }
    };
    let (mut works, mut worst) = (0u64, (0usize, 0u64, 0u64));
    for (i, s) in batch.seqs.iter().enumerate() {
        let w = per_seq(s);
        works = works.saturating_add(w);
        if w > worst.2 {
            worst = (i, s.len as u64, w);
        }
    }
    if works > MAX_PLAN_WORKS {
        return Err(PlanningError::PlanTooLarge {
            planner: kind,
            seq: worst.0,
            tokens: worst.1,
            works,
            limit: MAX_PLAN_WORKS,
        });
    }
    Ok(())
}

/// Fails when some device's resident buffers (the larger of its forward and backward programs)
/// exceed `topology.device_memory_bytes`.
pub fn check_memory(plan: &Plan) -> Result<(), PlanningError> {
    let cap = plan.topology.device_memory_bytes;
    for d in &plan.devices {
        let need = d.forward.bytes().max(d.backward.bytes());
        if need > cap {
            return Err(PlanningError::MemoryCap {
                planner: plan.planner.clone(),
                device: d.device,
                need,
                cap,
            });
        }
    }
    Ok(())
}
