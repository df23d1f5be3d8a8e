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

/// Whether `planner` can plan this shape (what its typed errors say it refuses).
fn head_parallel_supports(planner: &str, heads: u32, kv: u32, n: u32) -> bool {
    let h = match planner {
        "ulysses" => n,
        "usp" => return true,
        p => p[4..].parse::<u32>().unwrap(),
    };
    n.is_multiple_of(h) && h <= heads && (kv.is_multiple_of(h) || h.is_multiple_of(kv))
}

/// The head-parallel planners (`ulysses`, `usp` with its default and every head-parallel
/// degree) on the same random cases; shapes they refuse must be refused with an error that says
/// why, every other plan must be right.
#[test]
fn head_parallel_planners_match_dense_attention() {
    use dcp_core::planners::HEAD_PARALLEL;
    let opts = PlannerOptions::default();
    let mut checked = 0;
    for seed in 0..80u64 {
        let (batch, topo) = random_case(seed, 200);
        let (m, n) = (batch.model, topo.n_devices());
        let mut names: Vec<String> = HEAD_PARALLEL.iter().map(|s| s.to_string()).collect();
        names.extend((1..=n).map(|h| format!("usp:{h}")));
        for p in &names {
            match make_plan(p, &batch, &topo, &opts) {
                Err(e) => {
                    assert!(
                        !head_parallel_supports(p, m.heads, m.kv_heads, n),
                        "{p} case {seed} refused a supported shape: {e}"
                    );
                    let e = e.to_string();
                    assert!(e.contains("heads"), "{p} case {seed}: unclear error {e}");
                }
                Ok(plan) => {
                    assert!(
                        head_parallel_supports(p, m.heads, m.kv_heads, n),
                        "{p} {seed}"
                    );
                    if let Err(e) = check_plan(&plan, seed) {
                        panic!(
                            "{p} plan of case {seed} ({} seqs, {} devices, {}/{} heads): {e}",
                            batch.seqs.len(),
                            n,
                            m.heads,
                            m.kv_heads
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 150, "only {checked} head-parallel plans checked");
}

/// Shapes the random cases rarely reach: KV heads replicated (more devices than KV heads) with
/// and without a ring, several KV heads per device, non-power-of-two grids.
#[test]
fn head_parallel_grids_match_dense_attention() {
    use dcp_core::mask::MaskSpec;
    use dcp_core::spec::{BatchSpec, DType, ModelShape, Topology};
    let masks = [
        MaskSpec::Causal,
        MaskSpec::lambda(),
        MaskSpec::SharedQuestion {
            question_frac: 0.2,
            answers: 3,
        },
        MaskSpec::CausalBlockwise { block: 5, local: 2 },
        MaskSpec::Full,
    ];
    // (query heads, KV heads, devices, planners)
    let shapes: [(u32, u32, u32, &[&str]); 7] = [
        (8, 2, 4, &["ulysses", "usp", "usp:1", "usp:4"]),
        (8, 2, 8, &["ulysses", "usp:4", "usp:8"]),
        (6, 3, 3, &["ulysses", "usp"]),
        (12, 3, 6, &["ulysses", "usp", "usp:6"]),
        (4, 4, 2, &["ulysses", "usp"]),
        (4, 1, 4, &["ulysses", "usp:2", "usp:4"]),
        (8, 4, 8, &["usp", "usp:2", "ulysses"]),
    ];
    for (si, &(heads, kv_heads, n, planners)) in shapes.iter().enumerate() {
        let model = ModelShape {
            heads,
            kv_heads,
            head_dim: 4,
            dtype: DType::Bf16,
        };
        for (mi, mask) in masks.iter().enumerate() {
            let lens = [67u32, 1, 2 * n, 29 + mi as u32];
            let batch = BatchSpec::uniform(&lens, mask.clone(), model, 16);
            let topo = Topology::new(1, n);
            for p in planners {
                let plan = make_plan(p, &batch, &topo, &PlannerOptions::default())
                    .unwrap_or_else(|e| panic!("{p} shape {si}: {e}"));
                if let Err(e) = check_plan(&plan, si as u64) {
                    panic!("{p} shape {si} ({heads}/{kv_heads} heads, {n} devices) {mask:?}: {e}");
                }
            }
        }
    }
}

/// Ulysses refuses more devices than query heads, with an error that says so.
#[test]
fn ulysses_refuses_more_devices_than_heads() {
    use dcp_core::mask::MaskSpec;
    use dcp_core::spec::{BatchSpec, ModelShape, Topology};
    let b = BatchSpec::uniform(&[100], MaskSpec::Causal, ModelShape::default(), 16);
    let e = make_plan(
        "ulysses",
        &b,
        &Topology::new(2, 8),
        &PlannerOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("16 devices with only 8 query heads"), "{e}");
    let e = make_plan(
        "usp:3",
        &b,
        &Topology::new(1, 6),
        &PlannerOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("allowed here: 1, 2, 6"), "{e}");
}

/// A long sequence with an attention sink over many devices: the sink block's home receives a
/// dKV partial from nearly every device, so its final receives arrive in rounds (tags past
/// the stage count) that reuse one set of rows. Plans must still validate and match.
#[test]
fn dcp_sink_partials_in_rounds_match_dense_attention() {
    use dcp_core::dcp::{plan_dcp, DcpOptions};
    use dcp_core::mask::MaskSpec;
    use dcp_core::plan::Instr;
    use dcp_core::spec::{BatchSpec, ModelShape, Topology};
    let model = ModelShape {
        heads: 2,
        kv_heads: 1,
        head_dim: 8,
        ..ModelShape::default()
    };
    let mut rounds = 0;
    for (seed, len) in [(1u64, 1000u32), (2, 1500), (3, 777)] {
        let batch = BatchSpec::uniform(
            &[len, 40, 24],
            MaskSpec::Lambda {
                sink: 8,
                window: 24,
            },
            model,
            16,
        );
        let topo = Topology::parse("4x4").unwrap();
        let opts = DcpOptions {
            fallback_static: false,
            seed,
            ..DcpOptions::default()
        };
        let plan = plan_dcp(&batch, &topo, &opts).unwrap();
        let last_stage = plan
            .devices
            .iter()
            .flat_map(|d| &d.backward.instrs)
            .filter_map(|i| match i {
                Instr::AttnBwd { stage, .. } => Some(*stage),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        rounds += plan
            .devices
            .iter()
            .flat_map(|d| &d.backward.instrs)
            .filter(|i| matches!(i, Instr::Comm { tag, .. } if *tag > last_stage + 1))
            .count();
        check_plan(&plan, seed).unwrap_or_else(|e| panic!("sink case {seed}: {e}"));
    }
    assert!(rounds > 0, "no plan took its final partials in rounds");
}
