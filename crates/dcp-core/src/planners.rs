//! One entry point for every planner, by name.

use crate::baselines;
use crate::error::PlanningError;
use crate::plan::Plan;
use crate::spec::{BatchSpec, Topology};

/// Planners every comparison runs (also accepted: `dcp-only`, the DCP placement without the
/// local/zigzag candidates).
pub const PLANNERS: &[&str] = &["ring", "zigzag", "local", "dcp"];

/// Head-parallel static planners: `ulysses` and the 2-D `usp` (also `usp:H`, head-parallel
/// degree H). Not in [`PLANNERS`]: they refuse some shapes (more devices than query heads).
pub const HEAD_PARALLEL: &[&str] = &["ulysses", "usp"];

/// Whether `name` names a planner of this build (`PLANNERS`, `HEAD_PARALLEL`, `dcp-only`,
/// `usp:H`).
pub fn is_planner(name: &str) -> bool {
    PLANNERS.contains(&name)
        || HEAD_PARALLEL.contains(&name)
        || name == "dcp-only"
        || name
            .strip_prefix("usp:")
            .is_some_and(|h| h.parse::<u32>().is_ok())
}

/// Options shared by planners (each uses what applies to it).
#[derive(Debug, Clone, Default)]
pub struct PlannerOptions {
    /// Per-device token budget for `local` (default: from the topology's device memory).
    pub budget_tokens: Option<u64>,
    /// Options of the `dcp` planner.
    pub dcp: crate::dcp::DcpOptions,
}

/// Plans `batch` with the named planner and checks every device's buffers against the topology's
/// per-device memory cap.
pub fn make_plan(
    name: &str,
    batch: &BatchSpec,
    topo: &Topology,
    opts: &PlannerOptions,
) -> Result<Plan, PlanningError> {
    let plan = plan_unchecked(name, batch, topo, opts)?;
    check_memory(&plan)?;
    Ok(plan)
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

fn plan_unchecked(
    name: &str,
    batch: &BatchSpec,
    topo: &Topology,
    opts: &PlannerOptions,
) -> Result<Plan, PlanningError> {
    match name {
        "ring" => baselines::plan_ring(batch, topo, false),
        "zigzag" => baselines::plan_ring(batch, topo, true),
        "local" => baselines::plan_local(batch, topo, opts.budget_tokens),
        "dcp" => crate::dcp::plan_dcp(batch, topo, &opts.dcp),
        "ulysses" => crate::ulysses::plan_ulysses(batch, topo),
        "usp" => crate::usp::plan_usp(batch, topo, None),
        h if h.starts_with("usp:") => match h[4..].parse::<u32>() {
            Ok(h) => crate::usp::plan_usp(batch, topo, Some(h)),
            Err(_) => Err(PlanningError::Unsupported {
                planner: "registry",
                what: format!("planner `{h}` (usp:H needs a positive integer H)"),
            }),
        },
        // The DCP placement itself, never replaced by a candidate (for testing and benchmarking it).
        "dcp-only" => {
            let o = crate::dcp::DcpOptions {
                fallback_static: false,
                ..opts.dcp.clone()
            };
            crate::dcp::plan_dcp(batch, topo, &o)
        }
        other => Err(PlanningError::Unsupported {
            planner: "registry",
            what: format!(
                "planner `{other}` (allowed: {}, {}, usp:H, dcp-only)",
                PLANNERS.join(", "),
                HEAD_PARALLEL.join(", ")
            ),
        }),
    }
}
