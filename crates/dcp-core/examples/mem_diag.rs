//! Resident memory and bytes of the `dcp` planner on the reference planner's 4x8 B1024 causal
//! and lambda batches: mean / max resident memory imbalance, compute imbalance, bytes against
//! the reference; with `-v`, per batch, every backward buffer of the fullest device against the
//! mean device (MB), to see where the excess is.
//!
//! Usage: `cargo run --release -p dcp-core --example mem_diag -- REF_JSONL [-v]
//! [--comp-eps X] [--stages S] [--no-fallback] [--preset fast|default|quality]
//! [--per-batch] [--only DATASET:MASK] [--inter FACTOR] [--seed S]` (REF_JSONL:
//! `/work/shared/research/refplan_results.jsonl` or `bench/refplan/reference_results.jsonl`).
mod common;

use std::collections::BTreeMap;

use dcp_core::dcp::{plan_dcp, DcpOptions};
use dcp_core::mask::MaskSpec;
use dcp_core::spec::{BatchSpec, ModelShape, Topology};
use dcp_core::stats::plan_stats;

/// CPU time of this thread, ms (Linux schedstat; 0 elsewhere).
fn thread_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e6)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .iter()
        .find(|a| a.ends_with(".jsonl"))
        .expect("usage: mem_diag REF_JSONL [-v] [--comp-eps X] [--stages S] [--no-fallback]");
    let verbose = args.iter().any(|a| a == "-v");
    let per_batch = args.iter().any(|a| a == "--per-batch");
    let value = |flag: &str| {
        args.iter().position(|a| a == flag).map(|i| {
            args.get(i + 1)
                .unwrap_or_else(|| panic!("{flag} needs a value"))
        })
    };
    let opts = DcpOptions {
        stages: value("--stages").map(|v| v.parse().expect("--stages: an integer")),
        comp_epsilon: value("--comp-eps")
            .map_or(0.08, |v| v.parse().expect("--comp-eps: a number")),
        seed: value("--seed").map_or(0, |v| v.parse().expect("--seed: an integer")),
        inter_node_factor: value("--inter").map(|v| v.parse().expect("--inter: an integer")),
        fallback_static: !args.iter().any(|a| a == "--no-fallback"),
        preset: match value("--preset").map(String::as_str) {
            None | Some("fast") => hypergraph::Preset::Fast,
            Some("default") => hypergraph::Preset::Default,
            Some("quality") => hypergraph::Preset::Quality,
            Some(p) => panic!("--preset: fast, default or quality (got {p})"),
        },
        ..DcpOptions::default()
    };
    let only = value("--only").cloned();
    let recs = common::records(path);
    let topo = Topology::parse("4x8").unwrap();
    for ds in ["longalign", "ldc"] {
        for mask in ["causal", "lambda"] {
            if only.as_ref().is_some_and(|o| *o != format!("{ds}:{mask}")) {
                continue;
            }
            let mut wo = [0.0f64; 3];
            let (mut inter, mut rinter) = (0.0f64, 0.0f64);
            let (mut sm, mut mx, mut sc, mut cx, mut by, mut rb, mut cnt) =
                (0.0, 0.0f64, 0.0, 0.0f64, 0.0, 0.0, 0.0);
            for r in recs.iter().filter(|r| {
                r["dataset"] == ds
                    && r["mask"] == mask
                    && r["block_size"] == 1024
                    && r["n_nodes"] == 4
                    && r["n_devices_per_node"] == 8
            }) {
                let lens = common::seqlens(r);
                let m = MaskSpec::parse(mask).unwrap();
                let batch = BatchSpec::uniform(&lens, m, ModelShape::default(), 1024);
                let c0 = thread_cpu_ms();
                let plan = plan_dcp(&batch, &topo, &opts).unwrap();
                let ms = thread_cpu_ms() - c0;
                let s = plan_stats(&plan);
                if per_batch {
                    let b = (s.fwd_bytes_intra
                        + s.fwd_bytes_inter
                        + s.bwd_bytes_intra
                        + s.bwd_bytes_inter) as f64;
                    let rbb = r["fw_bytes_total"].as_f64().unwrap()
                        + r["bw_bytes_total"].as_f64().unwrap();
                    println!(
                        "  {ds} {mask} batch {} bytes/ref {:.3} ({:.0} / {:.0} MB, inter {:.0} / {:.0}) comp {:.3} (ref {:.2}) mem {:.3} {:.1} CPU ms cand {:?}",
                        r["batch_idx"],
                        b / rbb,
                        b / 1e6,
                        rbb / 1e6,
                        (s.fwd_bytes_inter + s.bwd_bytes_inter) as f64 / 1e6,
                        (r["fw_bytes_inter"].as_f64().unwrap_or(f64::NAN)
                            + r["bw_bytes_inter"].as_f64().unwrap_or(f64::NAN))
                            / 1e6,
                        s.compute_imbalance,
                        r["comp_imbalance"].as_f64().unwrap_or(f64::NAN),
                        s.memory_imbalance,
                        ms,
                        plan.candidate
                    );
                }
                sm += s.memory_imbalance;
                mx = mx.max(s.memory_imbalance);
                sc += s.compute_imbalance;
                cx = cx.max(s.compute_imbalance);
                by +=
                    (s.fwd_bytes_intra + s.fwd_bytes_inter + s.bwd_bytes_intra + s.bwd_bytes_inter)
                        as f64;
                rb += r["fw_bytes_total"].as_f64().unwrap() + r["bw_bytes_total"].as_f64().unwrap();
                inter += (s.fwd_bytes_inter + s.bwd_bytes_inter) as f64;
                rinter += r["fw_bytes_inter"].as_f64().unwrap_or(f64::NAN)
                    + r["bw_bytes_inter"].as_f64().unwrap_or(f64::NAN);
                cnt += 1.0;
                for (i, pat) in ["_recv", "part", "remote"].iter().enumerate() {
                    let v: Vec<f64> = plan
                        .devices
                        .iter()
                        .map(|dp| {
                            dp.backward
                                .buffers
                                .iter()
                                .filter(|b| !b.name.contains(pat))
                                .map(|b| b.bytes() as f64)
                                .sum::<f64>()
                        })
                        .collect();
                    let mean = v.iter().sum::<f64>() / v.len() as f64;
                    wo[i] += v.iter().cloned().fold(0.0, f64::max) / mean;
                }
                if verbose {
                    let hot = (0..s.device_bytes.len())
                        .max_by_key(|&d| s.device_bytes[d])
                        .unwrap();
                    let mut mean: BTreeMap<String, f64> = BTreeMap::new();
                    let n = plan.devices.len() as f64;
                    for dp in &plan.devices {
                        for b in &dp.backward.buffers {
                            *mean.entry(b.name.clone()).or_default() += b.bytes() as f64 / n / 1e6;
                        }
                    }
                    let line: Vec<String> = plan.devices[hot]
                        .backward
                        .buffers
                        .iter()
                        .map(|b| {
                            format!(
                                "{}={:.0}/{:.0}",
                                b.name,
                                b.bytes() as f64 / 1e6,
                                mean[&b.name]
                            )
                        })
                        .collect();
                    println!(
                        "{ds} {mask} imb {:.3} S {} cand {:?} hot {hot} comp {:.3}: {}",
                        s.memory_imbalance,
                        s.n_stages,
                        plan.candidate,
                        s.compute_imbalance,
                        line.join(" ")
                    );
                }
            }
            println!(
                "{ds:9} {mask:7} n {cnt} mem imb mean {:.3} max {:.3} | comp mean {:.3} max {:.3} | bytes/ref {:.3}",
                sm / cnt,
                mx,
                sc / cnt,
                cx,
                by / rb
            );
            println!(
                "   inter-node bytes / ref {:.3} (inter share: dcp {:.2}, ref {:.2})",
                inter / rinter,
                inter / by,
                rinter / rb
            );
            println!(
                "   without recv {:.3} without parts {:.3} without remote-inputs {:.3}",
                wo[0] / cnt,
                wo[1] / cnt,
                wo[2] / cnt
            );
        }
    }
}
