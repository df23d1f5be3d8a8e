//! The simulator runs the head-parallel plans (`ulysses`, `usp`): all-to-all groups with several
//! peers and several regions per peer, rings across head groups. Every device's attention FLOPs
//! add up to the batch's, Ulysses' FLOPs are balanced, and the 2-node `usp` keeps its
//! all-to-all inside the node (consecutive devices form a head group).

use dcp_core::mask::MaskSpec;
use dcp_core::planners::{make_plan, PlannerOptions};
use dcp_core::spec::{BatchSpec, ModelShape, Topology};
use dcp_core::stats::plan_stats;
use dcp_sim::{simulate, Cluster, Hardware, Profile, SimOptions};

#[test]
fn head_parallel_plans_simulate() {
    let p = Profile::h100();
    let batch = BatchSpec::uniform(
        &[9000, 3000, 700, 20000],
        MaskSpec::Causal,
        ModelShape::default(),
        1024,
    );
    let want: f64 = batch
        .seqs
        .iter()
        .map(|s| s.len as f64 * (s.len as f64 + 1.0) / 2.0 * 4.0 * 128.0 * 8.0)
        .sum();
    for (topo, names) in [
        (
            Topology::new(1, 4),
            &["ulysses", "usp", "usp:1", "usp:4"][..],
        ),
        (Topology::new(2, 4), &["ulysses", "usp", "usp:4"][..]),
    ] {
        let cluster = Cluster::from_topology(&topo, &p);
        for name in names {
            let plan = make_plan(name, &batch, &topo, &PlannerOptions::default()).unwrap();
            let r = simulate(
                &plan,
                &cluster,
                &Hardware::new(p.clone()),
                &SimOptions::default(),
            )
            .unwrap_or_else(|e| panic!("{name} on {topo:?}: {e}"));
            let (f, b) = (r.forward.summary(), r.backward.summary());
            assert!(f.ms > 0.0 && b.ms > f.ms, "{name}: {f:?} {b:?}");
            let flops: f64 = r.forward.devices.iter().map(|d| d.flops).sum();
            assert!(
                (flops / want - 1.0).abs() < 1e-9,
                "{name}: {flops} vs {want}"
            );
            let s = plan_stats(&plan);
            if *name == "ulysses" {
                // Whole sequences per head share (or zigzag row halves): equal attention FLOPs.
                assert!(s.compute_imbalance < 1.01, "{name}: {s:?}");
            }
            assert!(s.fwd_bytes_intra > 0, "{name}");
            if *name == "usp:4" {
                // Head groups of 4 consecutive devices = one node; only the ring leaves it.
                let ring_only = s.fwd_bytes_inter < s.fwd_bytes_intra;
                assert!(ring_only || topo.nodes == 1, "{name}: {s:?}");
            }
        }
    }
}
