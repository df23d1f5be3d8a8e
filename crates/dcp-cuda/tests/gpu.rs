//! GPU test: a small causal + lambda batch through the `local` and `ring` planners on one GPU,
//! checked against the CPU f64 reference. Skips with a message where no GPU/driver is found.

use std::time::Duration;

use dcp_core::mask::MaskSpec;
use dcp_core::planners::{make_validated_plan, PlannerOptions};
use dcp_core::spec::{BatchSpec, ModelShape, Topology};
use dcp_cuda::runner::{compare_global, cpu_reference, PlanRun, Rank, RankOptions};

#[test]
fn small_batch_matches_cpu_reference() {
    if !dcp_cuda::gpu::driver_present() || dcp_cuda::gpu::device_count().unwrap_or(0) == 0 {
        eprintln!("skipping GPU test: no CUDA driver or GPU on this machine");
        return;
    }
    let opts = RankOptions::library(Duration::from_secs(120)).expect("options");
    let mut rank = Rank::init(opts).expect("rank");
    for mask in [
        MaskSpec::Causal,
        MaskSpec::Lambda {
            sink: 8,
            window: 100,
        },
    ] {
        let batch = BatchSpec::uniform(&[300, 77, 1], mask, ModelShape::default(), 64);
        let want = cpu_reference(&batch, 3);
        for planner in ["local", "ring"] {
            let plan = make_validated_plan(
                planner,
                &batch,
                &Topology::new(1, 1),
                &PlannerOptions::default(),
            )
            .expect("plan");
            let run = PlanRun::new(&mut rank, &plan, 0).expect("prepare");
            run.load_inputs(&rank, &batch, 3).expect("inputs");
            run.run_fwd(&mut rank).expect("fwd");
            run.feed_backward(&rank).expect("feed");
            run.run_bwd(&mut rank).expect("bwd");
            let out = run.outputs(&rank).expect("outputs");
            let e = compare_global(
                &batch,
                &run.tokens,
                &out,
                &want.o,
                &want.lse,
                &want.dq,
                &want.dkv,
            )
            .report();
            assert!(e.pass, "{planner}: {e:?}");
        }
    }
}
