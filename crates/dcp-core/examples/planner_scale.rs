//! Planner scaling benchmark: planning time and bytes moved against tokens × devices.
//!
//! Usage: `cargo run --release -p dcp-core --example planner_scale -- [--sizes 131072:4x8,...]
//! [--datasets longalign,ldc] [--masks causal,lambda] [--count 5] [--planners dcp]`
//! Each size plans `count` batches of the dataset (`--lengths fixed`: the dataset's lengths, more
//! sequences per batch; `scaled`: lengths × tokens / 131 072), on one thread, and prints one JSON line per plan and a
//! markdown table (median / max planning ms, bytes moved fwd+bwd) per configuration.

use std::time::Instant;

use dcp_core::datasets::{make_batches, Dataset, DEFAULT_BUDGET};
use dcp_core::mask::MaskSpec;
use dcp_core::planners::{make_plan, PlannerOptions};
use dcp_core::spec::{BatchSpec, ModelShape, Topology};
use dcp_core::stats::plan_stats;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

/// CPU time of this thread, ms (Linux schedstat; 0 elsewhere): planning times on a shared machine
/// are reported as CPU time, wall time alongside.
fn thread_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e6)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes = arg(
        &args,
        "--sizes",
        "131072:4x8,262144:8x8,524288:16x8,1048576:32x8",
    );
    let datasets = arg(&args, "--datasets", "longalign,ldc");
    let masks = arg(&args, "--masks", "causal,lambda");
    let planners = arg(&args, "--planners", "dcp");
    let count: usize = arg(&args, "--count", "5").parse().expect("--count");
    // `fixed`: the dataset's own lengths, more sequences per batch as tokens grow (like
    // `dcp plan --budget`); `scaled`: lengths × tokens / 131 072 (the same number of sequences).
    let lengths = arg(&args, "--lengths", "fixed");
    let opts = PlannerOptions::default();
    let model = ModelShape::default();
    println!("| dataset | mask | tokens | topology | planner | plans | plan CPU ms median | max | GB moved (mean) | winners |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for size in sizes.split(',') {
        let (tok, topo_s) = size.split_once(':').expect("--sizes TOKENS:NxG,...");
        let tokens: u64 = tok.parse().expect("tokens");
        let topo = Topology::parse(topo_s).expect("topology");
        let scale = match lengths.as_str() {
            "fixed" => 1.0,
            "scaled" => tokens as f64 / DEFAULT_BUDGET as f64,
            o => panic!("--lengths must be fixed or scaled (got {o})"),
        };
        for ds in datasets.split(',') {
            let dset = Dataset::parse(ds).expect("dataset");
            let lens = make_batches(dset, scale, count, tokens, 0);
            for m in masks.split(',') {
                let mask = MaskSpec::parse(m).expect("mask");
                for p in planners.split(',') {
                    let mut ms = Vec::new();
                    let mut gb = 0.0;
                    let mut winners: Vec<String> = Vec::new();
                    for (bi, l) in lens.iter().enumerate() {
                        let b = BatchSpec::uniform(l, mask.clone(), model, 1024);
                        let (t0, c0) = (Instant::now(), thread_cpu_ms());
                        let plan = make_plan(p, &b, &topo, &opts).expect("plan");
                        let wall = t0.elapsed().as_secs_f64() * 1e3;
                        let dt = thread_cpu_ms() - c0;
                        let s = plan_stats(&plan);
                        let bytes = s.fwd_bytes_intra
                            + s.fwd_bytes_inter
                            + s.bwd_bytes_intra
                            + s.bwd_bytes_inter;
                        println!(
                            "{}",
                            serde_json::json!({"dataset": ds, "mask": m, "tokens": s.tokens,
                                "topology": topo_s, "devices": topo.n_devices(), "planner": p,
                                "plan": plan.label(), "batch": bi, "seqs": l.len(),
                                "plan_cpu_ms": dt, "plan_wall_ms": wall, "bytes": bytes})
                        );
                        ms.push(dt);
                        gb += bytes as f64 / 1e9;
                        winners.push(plan.label());
                    }
                    ms.sort_by(|a, b| a.total_cmp(b));
                    winners.sort();
                    winners.dedup();
                    println!(
                        "| {ds} | {m} | {tokens} | {topo_s} | {p} | {} | {:.1} | {:.1} | {:.2} | {} |",
                        ms.len(),
                        ms[ms.len() / 2],
                        ms[ms.len() - 1],
                        gb / ms.len() as f64,
                        winners.join(" ")
                    );
                }
            }
        }
    }
}
