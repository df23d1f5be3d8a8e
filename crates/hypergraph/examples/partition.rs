//! Partition an hMETIS file and print the JSON report (used by bench/hypergraph/compare.py
//! so the benchmark does not depend on the dcp CLI).
//!
//! `partition FILE.hgr K EPS SEED [--dims D] [--preset fast|default|quality] [--parts]`

use std::path::PathBuf;

use hypergraph::{partition_file_with, Preset};

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
    match partition_file_with(&path, k, eps, seed, dims, preset, with_parts) {
        Ok(r) => println!("{}", serde_json::to_string(&r).unwrap()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
