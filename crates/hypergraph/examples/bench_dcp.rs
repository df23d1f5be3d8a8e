//! Partition DCP planner dumps (`dcp plan ... --dump-hgr DIR`) with the planner's exact
//! configuration (2-D capacities from `batchN.json`, node topology) and print one JSON
//! line per (instance, preset): objective, km1, compute imbalance, feasibility, ms.
//!
//! `bench_dcp [--presets fast,default,quality] [--reps R] [--seed S] DIR...`
//!
//! With `--fold1d OUTDIR` it instead writes every instance folded to one weight dimension
//! (tile = compute weight, token block = 1) plus `NAME.eps` (the compute capacity as an
//! epsilon over `ceil(total / k)`), for the Mt-KaHyPar comparison in
//! `bench/hypergraph/dcp_compare.py`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hypergraph::{hmetis, partition, HypergraphBuilder, PartitionConfig, Preset, Topology};

fn load_cfg(json: &Path) -> (PartitionConfig, serde_json::Value) {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).expect("read json")).expect("json");
    let k = v["k"].as_u64().unwrap() as u32;
    let caps: Vec<Vec<u64>> = v["capacities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect()
        })
        .collect();
    let mut cfg = PartitionConfig::new(k, 0.0).with_seed(v["seed"].as_u64().unwrap_or(0));
    cfg.capacities = Some(caps);
    if let Some(nodes) = v["node_of_part"].as_array() {
        let node_of_part: Vec<u32> = nodes.iter().map(|x| x.as_u64().unwrap() as u32).collect();
        let f = v["inter_node_factor"].as_u64().unwrap_or(1);
        let distinct = {
            let mut s = node_of_part.clone();
            s.sort_unstable();
            s.dedup();
            s.len()
        };
        if distinct > 1 {
            cfg.topology = Some(Topology {
                node_of_part,
                inter_node_factor: f,
            });
        }
    }
    (cfg, v)
}

fn instances(dirs: &[PathBuf]) -> Vec<(String, PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for d in dirs {
        let mut names: Vec<(u32, PathBuf)> = std::fs::read_dir(d)
            .expect("read dir")
            .filter_map(|e| {
                let p = e.ok()?.path();
                let stem = p.file_stem()?.to_str()?.to_string();
                if p.extension()? != "hgr" {
                    return None;
                }
                Some((stem.trim_start_matches("batch").parse().ok()?, p.clone()))
            })
            .collect();
        names.sort();
        let dn = d.file_name().unwrap().to_string_lossy().to_string();
        for (i, p) in names {
            out.push((format!("{dn}/b{i}"), p.clone(), p.with_extension("json")));
        }
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut presets = vec![Preset::Fast, Preset::Default, Preset::Quality];
    let mut reps = 1usize;
    let mut seed: Option<u64> = None;
    let mut fold: Option<PathBuf> = None;
    let mut dirs = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--presets" => {
                presets = args[i + 1]
                    .split(',')
                    .map(|s| match s {
                        "fast" => Preset::Fast,
                        "quality" => Preset::Quality,
                        _ => Preset::Default,
                    })
                    .collect();
                i += 1;
            }
            "--reps" => {
                reps = args[i + 1].parse().unwrap();
                i += 1;
            }
            "--seed" => {
                seed = Some(args[i + 1].parse().unwrap());
                i += 1;
            }
            "--fold1d" => {
                fold = Some(PathBuf::from(&args[i + 1]));
                i += 1;
            }
            d => dirs.push(PathBuf::from(d)),
        }
        i += 1;
    }
    for (name, hgr, json) in instances(&dirs) {
        let hg = hmetis::read_hgr_file(&hgr, None).expect("read hgr");
        let (mut cfg, raw) = load_cfg(&json);
        if let Some(s) = seed {
            cfg.seed = s;
        }
        if let Some(out) = &fold {
            std::fs::create_dir_all(out).unwrap();
            // Mt-KaHyPar weights are 32-bit: divide net weights by their gcd and scale
            // vertex weights so the total stays below 2^29 (same file for both tools).
            let gcd = |mut a: u64, mut b: u64| {
                while b != 0 {
                    (a, b) = (b, a % b);
                }
                a
            };
            let g = (0..hg.num_nets() as u32).fold(0, |g, e| gcd(g, hg.net_weight(e)));
            let scale = hg.total_weight()[0].div_ceil(1 << 29).max(1);
            let mut b = HypergraphBuilder::new(1);
            for v in 0..hg.num_vertices() as u32 {
                let w = hg.vertex_weight(v)[0];
                b.add_vertex(&[((w + scale / 2) / scale).max(1)]);
            }
            for e in 0..hg.num_nets() as u32 {
                b.add_net(hg.net_weight(e) / g.max(1), hg.pins(e));
            }
            let f = b.build().unwrap();
            let fname = name.replace('/', "_");
            hmetis::write_hgr_file(&f, &out.join(format!("{fname}.hgr"))).unwrap();
            let base = f.total_weight()[0].div_ceil(cfg.k as u64);
            let cap0 = raw["capacities"][0][0].as_u64().unwrap() / scale;
            let eps = (cap0 as f64 / base as f64 - 1.0).max(0.0);
            std::fs::write(
                out.join(format!("{fname}.eps")),
                format!("{} {eps:.6}\n", cfg.k),
            )
            .unwrap();
            continue;
        }
        for &p in &presets {
            cfg.preset = p;
            let mut best_ms = f64::INFINITY;
            let mut res = None;
            for _ in 0..reps {
                let t = Instant::now();
                let r = partition(&hg, &cfg);
                best_ms = best_ms.min(t.elapsed().as_secs_f64() * 1e3);
                res = Some(r);
            }
            let line = match res.unwrap() {
                Ok(r) => {
                    let caps = cfg.capacities.as_ref().unwrap();
                    let feasible = r
                        .loads
                        .iter()
                        .zip(caps)
                        .all(|(l, c)| l.iter().zip(c).all(|(a, b)| a <= b));
                    serde_json::json!({
                        "instance": name, "preset": format!("{p:?}"), "cost": r.cost,
                        "km1": r.km1, "imb": r.imbalance, "feasible": feasible, "ms": best_ms,
                        "n": hg.num_vertices(), "m": hg.num_nets(), "k": cfg.k,
                        "parts_hash": format!("{:016x}", r.parts.iter().fold(
                            0xcbf2_9ce4_8422_2325u64,
                            |h, &p| (h ^ u64::from(p)).wrapping_mul(0x100_0000_01b3),
                        )),
                    })
                }
                Err(e) => serde_json::json!({
                    "instance": name, "preset": format!("{p:?}"), "error": e.to_string(),
                }),
            };
            println!("{line}");
        }
    }
}
