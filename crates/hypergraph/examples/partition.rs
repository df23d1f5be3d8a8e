//! Partition an hMETIS file and print the JSON report (used by bench/hypergraph/compare.py
//! so the benchmark does not depend on the dcp CLI).
//!
//! `partition FILE.hgr K EPS SEED [--dims D] [--preset fast|default|quality] [--parts]`
//!
//! Besides the report's wall-clock `ms`, prints `cpu_ms`: the CPU time of the partitioning
//! call on this thread (what a loaded, shared machine does not inflate as much).

use std::path::PathBuf;

use std::time::Instant;

use hypergraph::{hmetis, partition, PartitionConfig, PartitionReport, Preset};

#[path = "common/cpu_time.rs"]
mod cpu_time;
use cpu_time::cpu_ms;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        eprintln!("usage: partition FILE.hgr K EPS SEED [--dims D] [--preset P] [--parts]");
        std::process::exit(2);
    }
    let path = PathBuf::from(&args[0]);
    let k: u32 = args[1].parse().expect("K");
    let eps: f64 = args[2].parse().expect("EPS");
    let seed: u64 = args[3].parse().expect("SEED");
    let mut dims = None;
    let mut preset = Preset::Default;
    let mut with_parts = false;
    let mut i = 4;
    while i < args.len() {
        match args[i].as_str() {
            "--dims" => {
                dims = Some(args[i + 1].parse().expect("D"));
                i += 1;
            }
            "--preset" => {
                preset = match args[i + 1].as_str() {
                    "fast" => Preset::Fast,
                    "quality" => Preset::Quality,
                    _ => Preset::Default,
                };
                i += 1;
            }
            "--parts" => with_parts = true,
            a => {
                eprintln!("unknown argument {a}");
                std::process::exit(2);
            }
        }
        i += 1;
    }
    let hg = match hmetis::read_hgr_file(&path, dims) {
        Ok(hg) => hg,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let cfg = PartitionConfig::new(k, eps)
        .with_seed(seed)
        .with_preset(preset);
    let (t, c) = (Instant::now(), cpu_ms());
    let p = match partition(&hg, &cfg) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let (ms, cpu) = (t.elapsed().as_secs_f64() * 1e3, cpu_ms() - c);
    let report = PartitionReport::new(&hg, (k, eps, seed), p, ms, with_parts);
    let mut v = serde_json::to_value(&report).unwrap();
    v["cpu_ms"] = serde_json::json!(cpu);
    println!("{v}");
}
