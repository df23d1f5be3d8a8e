//! Validator benchmark (issue 12): validation time against planning time of the same plan, for
//! `dcp` and `zigzag` plans of longalign batches (the same batches `dcp plan` makes with its
//! defaults: seed 0, scale 1, causal, block 1024, 8 heads / 2 KV heads / dim 128).
//!
//! Usage: `cargo run --release -p dcp-core --example validator_bench -- [--budgets 131072,400000]
//! [--count 2] [--topology 4x8] [--repeats 3]`. Prints a markdown table, one row per plan
//! (validation: the median of the repeats).

use std::time::Instant;

use dcp_core::datasets::{make_batches, Dataset};
use dcp_core::mask::MaskSpec;
use dcp_core::planners::{make_plan, PlannerOptions};
use dcp_core::spec::{BatchSpec, ModelShape, Topology};
use dcp_core::validate;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let budgets: Vec<u64> = arg(&args, "--budgets", "131072,400000,1000000")
        .split(',')
        .map(|s| s.parse().expect("--budgets: comma-separated token counts"))
        .collect();
    let count: usize = arg(&args, "--count", "2").parse().expect("--count");
    let repeats: usize = arg(&args, "--repeats", "3").parse().expect("--repeats");
    let topo = Topology::parse(&arg(&args, "--topology", "4x8")).expect("--topology NxG");
    let model = ModelShape::default();
    println!(
        "| planner | budget | batch | tokens | seqs | instrs | plan ms | validate ms | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &budget in &budgets {
        let batches = make_batches(Dataset::LongAlign, 1.0, count, budget, 0);
        for planner in ["dcp", "zigzag"] {
            for (bi, lens) in batches.iter().enumerate() {
                let batch = BatchSpec::uniform(lens, MaskSpec::Causal, model, 1024);
                let t0 = Instant::now();
                let plan = make_plan(planner, &batch, &topo, &PlannerOptions::default())
                    .expect("the planner plans the batch");
                let plan_ms = t0.elapsed().as_secs_f64() * 1e3;
                let mut ms: Vec<f64> = (0..repeats.max(1))
                    .map(|_| {
                        let t = Instant::now();
                        validate(&plan).expect("planner output is valid");
                        t.elapsed().as_secs_f64() * 1e3
                    })
                    .collect();
                ms.sort_by(|a, b| a.total_cmp(b));
                let v = ms[ms.len() / 2];
                let instrs: usize = plan
                    .devices
                    .iter()
                    .map(|d| d.forward.instrs.len() + d.backward.instrs.len())
                    .sum();
                println!(
                    "| {planner} | {budget} | {bi} | {} | {} | {instrs} | {plan_ms:.1} | {v:.1} | {:.2} |",
                    batch.total_tokens(),
                    lens.len(),
                    v / plan_ms
                );
            }
        }
    }
}
