//! Properties of the dcp planner (behaviour, not speed): whole sequences stay whole when they
//! pack evenly, and the returned plan is never predicted slower than ring or zigzag and never
//! moves more bytes than zigzag.

use dcp_core::cost::{predict, CostModel};
use dcp_core::datasets::{make_batches, Dataset};
use dcp_core::mask::MaskSpec;
use dcp_core::planners::{make_plan, PlannerOptions};
use dcp_core::spec::{BatchSpec, ModelShape, Topology};
use dcp_core::stats::plan_stats;

fn bytes(p: &dcp_core::plan::Plan) -> u64 {
    let s = plan_stats(p);
    s.fwd_bytes_intra + s.fwd_bytes_inter + s.bwd_bytes_intra + s.bwd_bytes_inter
}

#[test]
fn short_sequences_that_pack_evenly_stay_whole() {
    let b = BatchSpec::uniform(&[4096; 16], MaskSpec::Causal, ModelShape::default(), 1024);
    let plan = make_plan(
        "dcp-only",
        &b,
        &Topology::new(1, 4),
        &PlannerOptions::default(),
    )
    .unwrap();
    assert_eq!(bytes(&plan), 0, "no sequence needs splitting");
    for d in &plan.devices {
        assert_eq!(d.local_tokens(), 4 * 4096);
    }
}

#[test]
fn dcp_is_never_predicted_slower_than_static_cp() {
    let cost = CostModel::default();
    let opts = PlannerOptions::default();
    let model = ModelShape::default();
    // Scaled-down batches (16K-token budget) keep the test quick; the full-size check is the
    // planner benchmark (bench/results/planner.md).
    let lens = make_batches(Dataset::Ldc, 0.125, 2, 16384, 3);
    for (i, l) in lens.iter().enumerate() {
        for mask in [MaskSpec::Causal, MaskSpec::lambda(), MaskSpec::Full] {
            for topo in [Topology::new(1, 2), Topology::new(2, 4)] {
                let b = BatchSpec::uniform(l, mask.clone(), model, 512);
                let dcp = make_plan("dcp", &b, &topo, &opts).unwrap();
                let pd = predict(&dcp, &cost);
                for st in ["ring", "zigzag"] {
                    let sp = make_plan(st, &b, &topo, &opts).unwrap();
                    let ps = predict(&sp, &cost);
                    assert!(
                        pd.fwd_ms + pd.bwd_ms <= ps.fwd_ms + ps.bwd_ms + 1e-9,
                        "batch {i} {mask:?} {topo:?}: dcp {pd:?} vs {st} {ps:?}"
                    );
                    if st == "zigzag" {
                        assert!(
                            bytes(&dcp) <= bytes(&sp),
                            "batch {i} {mask:?}: dcp moves more bytes than zigzag"
                        );
                    }
                }
            }
        }
    }
}

/// Every backward work of every planner accumulates dQ and dKV into fp32 buffers (16-bit
/// accumulation loses gradient precision on long sequences); only a converting copy may write
/// the caller's 16-bit gradients.
#[test]
fn backward_works_accumulate_gradients_in_fp32() {
    use dcp_core::check::random_case;
    use dcp_core::plan::Instr;
    use dcp_core::spec::DType;
    let opts = PlannerOptions::default();
    let mut checked = 0usize;
    for seed in 0..60u64 {
        let (batch, topo) = random_case(seed, 96);
        for planner in ["ring", "zigzag", "local", "dcp", "dcp-only"] {
            let Ok(plan) = make_plan(planner, &batch, &topo, &opts) else {
                continue;
            };
            for d in &plan.devices {
                let bufs = &d.backward.buffers;
                for ins in &d.backward.instrs {
                    if let Instr::AttnBwd { works, .. } = ins {
                        for w in works {
                            for r in std::iter::once(&w.dq).chain(&w.dkv) {
                                let b = &bufs[r.buf as usize];
                                assert_eq!(
                                    b.dtype,
                                    DType::F32,
                                    "seed {seed} {planner} device {}: backward work accumulates into {} ({:?})",
                                    d.device,
                                    b.name,
                                    b.dtype
                                );
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 100, "too few backward works checked ({checked})");
}
