//! Built-in synthetic length distributions (stand-ins for the paper's data sets), the paper's
//! batching rule, and the batch-file format.
//!
//! * `longalign`: lognormal, median 14000, σ 0.55, clipped to [8192, 65536].
//! * `ldc`: 60 % lognormal(median 2000, σ 1.0) + 40 % lognormal(median 24000, σ 0.9), clipped to
//!   [64, 131072].
//!
//! Batching (the paper's): draw lengths (× scale, rounded), drop any longer than the budget,
//! append greedily until the next would overflow, keep a batch only if it holds ≥ 75 % of the
//! budget. Seeded (ChaCha8) and deterministic on every machine.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};
use serde::Deserialize;

use crate::error::SpecError;

pub const DEFAULT_BUDGET: u64 = 131_072;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataset {
    LongAlign,
    Ldc,
}

impl Dataset {
    pub fn parse(s: &str) -> Result<Self, SpecError> {
        match s.to_ascii_lowercase().as_str() {
            "longalign" => Ok(Dataset::LongAlign),
            "ldc" => Ok(Dataset::Ldc),
            _ => Err(SpecError::Invalid(format!(
                "unknown dataset `{s}`: allowed are longalign, ldc"
            ))),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Dataset::LongAlign => "longalign",
            Dataset::Ldc => "ldc",
        }
    }

    fn draw(self, rng: &mut ChaCha8Rng) -> f64 {
        let ln =
            |median: f64, sigma: f64| LogNormal::new(median.ln(), sigma).expect("valid parameters");
        match self {
            Dataset::LongAlign => ln(14000.0, 0.55).sample(rng).clamp(8192.0, 65536.0),
            Dataset::Ldc => {
                let v = if rng.random_bool(0.6) {
                    ln(2000.0, 1.0).sample(rng)
                } else {
                    ln(24000.0, 0.9).sample(rng)
                };
                v.clamp(64.0, 131072.0)
            }
        }
    }
}

/// Forms `count` batches of sequence lengths from `dataset` at `scale`.
pub fn make_batches(
    dataset: Dataset,
    scale: f64,
    count: usize,
    budget: u64,
    seed: u64,
) -> Vec<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0000 ^ ((scale * 1000.0) as u64) << 32);
    let mut out = Vec::new();
    let mut cur: Vec<u32> = Vec::new();
    let mut total = 0u64;
    let mut draws = 0usize;
    while out.len() < count && draws < count * 100_000 + 1000 {
        draws += 1;
        let len = (dataset.draw(&mut rng) * scale).round().max(1.0) as u64;
        if len > budget {
            continue;
        }
        if total + len > budget {
            if total * 4 >= budget * 3 {
                out.push(std::mem::take(&mut cur));
            } else {
                cur.clear();
            }
            total = 0;
        }
        cur.push(len as u32);
        total += len;
    }
    out
}

#[derive(Deserialize)]
struct BatchFile {
    batches: Vec<Vec<u32>>,
}

/// Parses a batch file: JSON `{"batches": [[len, ...], ...]}`; other keys are ignored.
pub fn parse_batch_file(text: &str) -> Result<Vec<Vec<u32>>, SpecError> {
    let f: BatchFile = serde_json::from_str(text).map_err(|e| {
        SpecError::Invalid(format!(
            "batch file: {e} (expected {{\"batches\": [[len, ...], ...]}})"
        ))
    })?;
    for (bi, b) in f.batches.iter().enumerate() {
        if b.is_empty() {
            return Err(SpecError::Invalid(format!(
                "batch file: batch {bi} is empty"
            )));
        }
        if let Some(si) = b.iter().position(|&l| l == 0) {
            return Err(SpecError::Invalid(format!(
                "batch file: batch {bi}, sequence {si} has length 0"
            )));
        }
    }
    Ok(f.batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_follow_the_rule() {
        for ds in [Dataset::LongAlign, Dataset::Ldc] {
            for scale in [0.5, 1.0, 4.0] {
                let b = make_batches(ds, scale, 5, DEFAULT_BUDGET, 1);
                assert_eq!(b.len(), 5);
                for batch in &b {
                    let t: u64 = batch.iter().map(|&x| x as u64).sum();
                    assert!(t <= DEFAULT_BUDGET && t * 4 >= DEFAULT_BUDGET * 3, "{t}");
                }
                assert_eq!(b, make_batches(ds, scale, 5, DEFAULT_BUDGET, 1));
            }
        }
        let la = make_batches(Dataset::LongAlign, 1.0, 20, DEFAULT_BUDGET, 0);
        assert!(la.iter().flatten().all(|&l| (8192..=65536).contains(&l)));
    }

    #[test]
    fn batch_file() {
        assert_eq!(
            parse_batch_file(r#"{"batches": [[3, 4]], "note": 1}"#).unwrap(),
            vec![vec![3, 4]]
        );
        assert!(parse_batch_file(r#"{"batches": [[3, 0]]}"#).is_err());
        assert!(parse_batch_file(r#"[1]"#).is_err());
    }
}
