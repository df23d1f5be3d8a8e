//! Every planner, one folder each, and one entry point by name: `ring`/`zigzag`
//! ([`ring`]), `local` ([`local`]) and `dcp` ([`dcp`]: placement, schedule, emission).

pub mod candidates;
pub mod dcp;
pub mod local;
pub mod ring;

use crate::error::PlanningError;
use crate::plan::Plan;
use crate::spec::{BatchSpec, Topology};

/// Planners every comparison runs (also accepted: `dcp-only`, the DCP placement without the
/// local/zigzag candidates).
pub const PLANNERS: &[&str] = &["ring", "zigzag", "local", "dcp"];

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
        "ring" => ring::plan_ring(batch, topo, false),
        "zigzag" => ring::plan_ring(batch, topo, true),
        "local" => local::plan_local(batch, topo, opts.budget_tokens),
        "dcp" => crate::dcp::plan_dcp(batch, topo, &opts.dcp),
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
                "planner `{other}` (allowed: {}, dcp-only)",
                PLANNERS.join(", ")
            ),
        }),
    }
}
