//! The backbone: every planner's plans pass the validator and the CPU reference executor agrees
//! with dense masked attention (forward O, LSE; backward dQ, dK, dV) on random batches.

use dcp_core::cpu::{compare, dense_reference, execute, Tensors};
use dcp_core::mask::MaskSpec;
use dcp_core::plan::Plan;
use dcp_core::spec::{BatchSpec, DType, ModelShape, Sequence, Topology};
use dcp_core::{baselines, validate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_mask(rng: &mut ChaCha8Rng, len: u32) -> MaskSpec {
    match rng.random_range(0..8) {
        0 => MaskSpec::Causal,
        1 => MaskSpec::Full,
        2 => MaskSpec::SlidingWindow {
            window: rng.random_range(1..40),
        },
        3 => MaskSpec::Lambda {
            sink: rng.random_range(0..8),
            window: rng.random_range(1..40),
        },
        4 => MaskSpec::SharedQuestion {
            question_frac: rng.random_range(0.0..0.6),
            answers: rng.random_range(1..5),
        },
        5 => MaskSpec::CausalBlockwise {
            block: rng.random_range(1..16),
            local: rng.random_range(0..3),
        },
        6 => MaskSpec::PrefixLm {
            prefix: rng.random_range(0..len + 3),
        },
        _ => {
            let rows = (0..len)
                .map(|_| {
                    (0..rng.random_range(0..3))
                        .map(|_| {
                            let a = rng.random_range(0..=len);
                            let b = rng.random_range(a..=len);
                            (a, b)
                        })
                        .collect()
                })
                .collect();
            MaskSpec::Ranges { rows }
        }
    }
}

fn random_case(seed: u64) -> (BatchSpec, Topology) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let kv_heads = rng.random_range(1..=2u32);
    let group = [1u32, 2, 4][rng.random_range(0..3)];
    let model = ModelShape {
        heads: kv_heads * group,
        kv_heads,
        head_dim: [2u32, 4, 8][rng.random_range(0..3)],
        dtype: DType::Bf16,
    };
    let n_seqs = rng.random_range(1..4);
    let seqs = (0..n_seqs)
        .map(|_| {
            let len = if rng.random_bool(0.15) {
                1
            } else {
                rng.random_range(1..120)
            };
            Sequence {
                len,
                mask: random_mask(&mut rng, len),
            }
        })
        .collect();
    let nodes = rng.random_range(1..=3);
    let gpus = rng.random_range(1..=3);
    let block_size = [1u32, 7, 16, 32][rng.random_range(0..4)];
    let head_block = if rng.random_bool(0.5) { 1 } else { kv_heads };
    (
        BatchSpec {
            seqs,
            model,
            block_size,
            head_block,
        },
        Topology::new(nodes, gpus),
    )
}

fn check(plan: &Plan, seed: u64) {
    validate(plan).unwrap_or_else(|e| panic!("{} plan (case {seed}) rejected: {e}", plan.planner));
    let x = Tensors::random(&plan.batch, seed);
    let want = dense_reference(&plan.batch, &x);
    let got = execute(plan, &x).unwrap_or_else(|e| panic!("{}: {e}", plan.planner));
    let err = compare(&got, &want);
    assert!(
        err.max() < 1e-9,
        "{} plan (case {seed}): max error {err:?}",
        plan.planner
    );
}

#[test]
fn baselines_match_dense_attention() {
    for seed in 0..60u64 {
        let (batch, topo) = random_case(seed);
        check(&baselines::plan_ring(&batch, &topo, false).unwrap(), seed);
        check(&baselines::plan_ring(&batch, &topo, true).unwrap(), seed);
        check(&baselines::plan_local(&batch, &topo, None).unwrap(), seed);
    }
}
