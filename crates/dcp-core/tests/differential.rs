//! The backbone: every planner's plans pass the validator and the CPU reference executor agrees
//! with dense masked attention (forward O, LSE; backward dQ, dK, dV) on random batches.

use dcp_core::check::{check_plan, random_case};
use dcp_core::planners::{make_plan, PlannerOptions, PLANNERS};

#[test]
fn every_planner_matches_dense_attention() {
    let opts = PlannerOptions::default();
    for seed in 0..80u64 {
        let (batch, topo) = random_case(seed, 200);
        for &p in PLANNERS {
            let plan = make_plan(p, &batch, &topo, &opts)
                .unwrap_or_else(|e| panic!("{p} case {seed}: {e}"));
            if let Err(e) = check_plan(&plan, seed) {
                panic!(
                    "{p} plan of case {seed} ({} seqs, {} devices): {e}",
                    batch.seqs.len(),
                    topo.n_devices()
                );
            }
        }
    }
}

/// The DCP emitter itself (no zigzag fallback), with chosen and forced stage counts.
#[test]
fn dcp_emission_matches_dense_attention() {
    use dcp_core::dcp::{plan_dcp, DcpOptions};
    for seed in 100..160u64 {
        let (batch, topo) = random_case(seed, 200);
        for stages in [None, Some(3), Some(5)] {
            let opts = DcpOptions {
                fallback_static: false,
                stages,
                seed,
                ..DcpOptions::default()
            };
            let plan =
                plan_dcp(&batch, &topo, &opts).unwrap_or_else(|e| panic!("case {seed}: {e}"));
            assert_eq!(plan.planner, "dcp");
            if let Err(e) = check_plan(&plan, seed) {
                panic!(
                    "dcp plan of case {seed} (stages {stages:?}, {} devices): {e}",
                    topo.n_devices()
                );
            }
        }
    }
}
