//! Random differential cases (shared by the test suite and `dcp check`): odd lengths, length 1,
//! 1–9 devices over 1–3 nodes, every mask kind, GQA ratios 1/2/4, small head dims; each plan must
//! pass the validator and the CPU executor must agree with dense attention to 1e-9.
//!
//! Also the named regression corpus (`testdata/*.json`, read by [`corpus_case`] and
//! [`corpus_dir`]): small batches kept for their edge cases, run by the tests, `dcp check
//! --corpus` and `dcp bench-gpu --selftest N --corpus`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use std::path::Path;

use serde::Deserialize;

use crate::cpu::{compare, dense_reference, execute, Tensors};
use crate::error::SpecError;
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

/// A corpus case file: `{"description", "topology": "NxG", "block_size", "model": {"heads",
/// "kv_heads", "head_dim"}, "head_block"?, "seqs": [{"len", "mask"}]}`, where a mask is its CLI
/// form (`"lambda:4:16"`) or a `MaskSpec` in JSON (`{"ranges": {"rows": [...]}}`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CorpusCase {
    description: String,
    topology: String,
    block_size: u32,
    model: CorpusModel,
    head_block: Option<u32>,
    seqs: Vec<CorpusSeq>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CorpusModel {
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CorpusSeq {
    len: u32,
    mask: CorpusMask,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CorpusMask {
    Cli(String),
    Spec(MaskSpec),
}

/// Parses and validates one corpus case (bf16): its description, batch and topology.
pub fn corpus_case(text: &str) -> Result<(String, BatchSpec, Topology), SpecError> {
    let c: CorpusCase =
        serde_json::from_str(text).map_err(|e| SpecError::Invalid(format!("corpus case: {e}")))?;
    if c.description.trim().is_empty() {
        return Err(SpecError::Invalid(
            "corpus case: the description is empty".into(),
        ));
    }
    let seqs = c
        .seqs
        .into_iter()
        .map(|s| {
            Ok(Sequence {
                len: s.len,
                mask: match s.mask {
                    CorpusMask::Cli(m) => MaskSpec::parse(&m)?,
                    CorpusMask::Spec(m) => m,
                },
            })
        })
        .collect::<Result<_, SpecError>>()?;
    let batch = BatchSpec {
        seqs,
        model: ModelShape {
            heads: c.model.heads,
            kv_heads: c.model.kv_heads,
            head_dim: c.model.head_dim,
            dtype: DType::Bf16,
        },
        block_size: c.block_size,
        head_block: c.head_block.unwrap_or(c.model.kv_heads),
    };
    batch.validate()?;
    Ok((c.description, batch, Topology::parse(&c.topology)?))
}

/// Every `*.json` case of a corpus folder, by file name, each as (name, batch, topology).
pub fn corpus_dir(dir: &Path) -> Result<Vec<(String, BatchSpec, Topology)>, SpecError> {
    let io = |e: std::io::Error| SpecError::Invalid(format!("corpus {}: {e}", dir.display()));
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    files.retain(|p| p.extension().is_some_and(|x| x == "json"));
    files.sort();
    if files.is_empty() {
        return Err(SpecError::Invalid(format!(
            "corpus {}: no *.json case files",
            dir.display()
        )));
    }
    files
        .iter()
        .map(|f| {
            let name = f
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(f).map_err(io)?;
            let (_, batch, topo) = corpus_case(&text)
                .map_err(|e| SpecError::Invalid(format!("{}: {e}", f.display())))?;
            Ok((name, batch, topo))
        })
        .collect()
}
