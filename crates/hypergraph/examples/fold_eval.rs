//! Partition the folded 1-D DCP instances written by `bench_dcp --fold1d DIR` in one process
//! and compare km1 / time against a reference run of `bench/hypergraph/dcp_compare.py --out`
//! (its Mt-KaHyPar km1 and ms per instance).
//!
//! `fold_eval --ref RUN.json [--preset fast|default|quality] [--seed S] [--reps R] FOLD_DIR`
//!
//! Prints per-group and overall geo-means of km1 / Mt-KaHyPar and ms / Mt-KaHyPar ms. Times
//! of the reference run come from another process and time: use this for quick A/B work on
//! km1 and for relative times between variants run back to back, and `dcp_compare.py` for
//! the recorded time ratios.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hypergraph::{hmetis, partition, PartitionConfig, Preset};

#[path = "common/cpu_time.rs"]
mod cpu_time;
use cpu_time::cpu_ms;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut preset = Preset::Default;
    let mut seeds = vec![0u64];
    let mut reps = 1usize;
    let mut refp = None;
    let mut dir = None;
    let mut verbose = false;
    let mut kover: Option<u32> = None;
    let mut epsover: Option<f64> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--preset" => {
                preset = match args[i + 1].as_str() {
                    "fast" => Preset::Fast,
                    "quality" => Preset::Quality,
                    _ => Preset::Default,
                };
                i += 1;
            }
            "--seed" | "--seeds" => {
                seeds = args[i + 1].split(',').map(|x| x.parse().unwrap()).collect();
                i += 1;
            }
            "--reps" => {
                reps = args[i + 1].parse().unwrap();
                i += 1;
            }
            "--ref" => {
                refp = Some(PathBuf::from(&args[i + 1]));
                i += 1;
            }
            "-v" => verbose = true,
            "--eps" => {
                epsover = Some(args[i + 1].parse().unwrap());
                i += 1;
            }
            "--k" => {
                kover = Some(args[i + 1].parse().unwrap());
                i += 1;
            }
            d => dir = Some(PathBuf::from(d)),
        }
        i += 1;
    }
    let refs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(refp.expect("--ref")).unwrap()).unwrap();
    let mut mtk: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for r in refs.as_array().unwrap() {
        mtk.insert(
            r["instance"].as_str().unwrap().to_string(),
            (
                r["mtk"]["km1"].as_f64().unwrap(),
                r["mtk"]["ms"].as_f64().unwrap(),
            ),
        );
    }
    let dir = dir.expect("FOLD_DIR");
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    // group -> (sum log km1 ratio, sum log time ratio, count, sum ms)
    let mut groups: BTreeMap<String, (f64, f64, usize, f64)> = BTreeMap::new();
    for (name, &(mk, mms)) in &mtk {
        let hgr = dir.join(format!("{name}.hgr"));
        let eps_line = std::fs::read_to_string(dir.join(format!("{name}.eps"))).unwrap();
        let mut it = eps_line.split_whitespace();
        let k: u32 = it.next().unwrap().parse().unwrap();
        let k = kover.unwrap_or(k);
        let eps: f64 = it.next().unwrap().parse().unwrap();
        let eps = epsover.unwrap_or(eps);
        let hg = hmetis::read_hgr_file(&hgr, Some(1)).unwrap();
        let mut best = 0.0;
        let mut lk = 0.0;
        for &seed in &seeds {
            let cfg = PartitionConfig::new(k, eps)
                .with_seed(seed)
                .with_preset(preset);
            let mut b = f64::INFINITY;
            for _ in 0..reps {
                let t = cpu_ms();
                let p = partition(&hg, &cfg).expect("partition");
                b = b.min(cpu_ms() - t);
                lk += (p.km1.max(1) as f64).ln() / (reps * seeds.len()) as f64;
                hash = p.parts.iter().fold(hash, |h, &x| {
                    (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
                });
            }
            best += b / seeds.len() as f64;
        }
        let km1 = lk.exp();
        if mk == 0.0 {
            if km1 > 1.0 {
                println!("{name}: km1 {km1} where the reference has 0");
            }
            continue;
        }
        let lr = (km1 / mk).ln();
        let lt = (best / mms).ln();
        if verbose {
            println!("{name:40} {:.3} {best:7.1}ms", km1 / mk);
        }
        let g = name.rsplit_once("_b").unwrap().0.to_string();
        for key in [g, "ALL".to_string()] {
            let e = groups.entry(key).or_default();
            e.0 += lr;
            e.1 += lt;
            e.2 += 1;
            e.3 += best;
        }
    }
    println!("parts hash {hash:016x}");
    for (g, (lr, lt, c, ms)) in &groups {
        let c = *c as f64;
        println!(
            "{g:34} km1x {:.3} timex {:.2} ({:.1} ms mean)",
            (lr / c).exp(),
            (lt / c).exp(),
            ms / c
        );
    }
}
