//! One entry point for every planner, by name.

use crate::baselines;
use crate::error::PlanningError;
use crate::plan::Plan;
use crate::spec::{BatchSpec, Topology};

/// Names accepted by [`make_plan`].
pub const PLANNERS: &[&str] = &["ring", "zigzag", "local", "dcp"];

/// Options shared by planners (each uses what applies to it).
#[derive(Debug, Clone, Default)]
pub struct PlannerOptions {
    /// Per-device token budget for `local` (default: from the topology's device memory).
    pub budget_tokens: Option<u64>,
    /// Options of the `dcp` planner.
    pub dcp: crate::dcp::DcpOptions,
}

pub fn make_plan(
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
        other => Err(PlanningError::Unsupported {
            planner: "registry",
            what: format!("planner `{other}` (allowed: {})", PLANNERS.join(", ")),
        }),
    }
}
