//! Random differential cases (shared by the test suite and `dcp check`): odd lengths, length 1,
//! 1–9 devices over 1–3 nodes, every mask kind, GQA ratios 1/2/4, small head dims; each plan must
//! pass the validator and the CPU executor must agree with dense attention to 1e-9.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::cpu::{compare, dense_reference, execute, Tensors};
use crate::mask::MaskSpec;
use crate::plan::Plan;
use crate::spec::{BatchSpec, DType, ModelShape, Sequence, Topology};

pub const TOLERANCE: f64 = 1e-9;

fn random_mask(rng: &mut ChaCha8Rng, len: u32) -> MaskSpec {
    match rng.random_range(0..8) {
        0 => MaskSpec::Causal,
        1 => MaskSpec::Full,
        2 => MaskSpec::SlidingWindow {
            window: rng.random_range(1..80),
        },
        3 => MaskSpec::Lambda {
            sink: rng.random_range(0..8),
            window: rng.random_range(1..80),
        },
        4 => MaskSpec::SharedQuestion {
            question_frac: rng.random_range(0.0..0.6),
            answers: rng.random_range(1..5),
        },
        5 => MaskSpec::CausalBlockwise {
            block: rng.random_range(1..40),
            local: rng.random_range(0..3),
        },
        6 => MaskSpec::PrefixLm {
            prefix: rng.random_range(0..len + 3),
        },
        _ => MaskSpec::Ranges {
            rows: (0..len)
                .map(|_| {
                    (0..rng.random_range(0..4))
                        .map(|_| {
                            let a = rng.random_range(0..=len);
                            (a, rng.random_range(a..=len))
                        })
                        .collect()
                })
                .collect(),
        },
    }
}

/// A random batch and topology; `max_len` bounds sequence lengths (≈700 for soak runs).
pub fn random_case(seed: u64, max_len: u32) -> (BatchSpec, Topology) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let kv_heads = rng.random_range(1..=2u32);
    let group = [1u32, 2, 4][rng.random_range(0..3)];
    let model = ModelShape {
        heads: kv_heads * group,
        kv_heads,
        head_dim: [2u32, 4, 8][rng.random_range(0..3)],
        dtype: DType::Bf16,
    };
    let n_seqs = rng.random_range(1..5);
    let seqs = (0..n_seqs)
        .map(|_| {
            let len = if rng.random_bool(0.15) {
                1
            } else {
                rng.random_range(1..max_len.max(2))
            };
            Sequence {
                len,
                mask: random_mask(&mut rng, len),
            }
        })
        .collect();
    let nodes = rng.random_range(1..=3);
    let gpus = rng.random_range(1..=3);
    let block_size = [1u32, 7, 16, 32, 64][rng.random_range(0..5)];
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

/// Validates `plan` and runs it against dense attention on inputs seeded by `seed`.
pub fn check_plan(plan: &Plan, seed: u64) -> Result<f64, String> {
    crate::validate(plan).map_err(|e| format!("validator: {e}"))?;
    let x = Tensors::random(&plan.batch, seed);
    let want = dense_reference(&plan.batch, &x);
    let got = execute(plan, &x).map_err(|e| format!("executor: {e}"))?;
    let err = compare(&got, &want);
    if err.max() < TOLERANCE {
        Ok(err.max())
    } else {
        Err(format!("max error {err:?} above {TOLERANCE}"))
    }
}
