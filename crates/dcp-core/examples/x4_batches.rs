//! Writes the batch file of the 4-GPU attention matrix (`bench/gpu/x4_batches.json`): the first
//! COUNT batches of `longalign` and `ldc` at length scales 0.5, 1, 2, 4 (seed 0, 131072-token
//! budget, the MISSION.md forming rule), with a `labels` entry per batch (data set, scale, index
//! inside its cell) that `dcp gpu-report` reads. `dcp bench-gpu --batches` ignores the labels.
//!
//! `cargo run --release -p dcp-core --example x4_batches > bench/gpu/x4_batches.json`
//! (`tests/bench_inputs.rs` fails when the committed file differs from this output.)

use dcp_core::datasets::{make_batches, Dataset, DEFAULT_BUDGET};

pub const DATASETS: [(&str, Dataset); 2] =
    [("longalign", Dataset::LongAlign), ("ldc", Dataset::Ldc)];
pub const SCALES: [f64; 4] = [0.5, 1.0, 2.0, 4.0];
pub const COUNT: usize = 5;

/// The batch file's text (one batch per line, so diffs stay readable).
pub fn batch_file() -> String {
    let mut batches = Vec::new();
    let mut labels = Vec::new();
    for (name, ds) in DATASETS {
        for scale in SCALES {
            for (i, b) in make_batches(ds, scale, COUNT, DEFAULT_BUDGET, 0)
                .into_iter()
                .enumerate()
            {
                batches.push(serde_json::to_string(&b).expect("lengths serialize"));
                labels.push(format!(
                    r#"{{"dataset": "{name}", "scale": {scale}, "index": {i}}}"#
                ));
            }
        }
    }
    format!(
        "{{\"batches\": [\n  {}\n],\n\"labels\": [\n  {}\n]}}\n",
        batches.join(",\n  "),
        labels.join(",\n  ")
    )
}

#[allow(dead_code)]
fn main() {
    print!("{}", batch_file());
}
