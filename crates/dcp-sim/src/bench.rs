//! The paper's attention microbenchmark on the simulator (`dcp compare`): batches of two data
//! sets at several length scales, four masks, several topologies; every planner's plan of every
//! batch is simulated; per configuration the mean forward and backward times are compared.
//!
//! Planners whose plans do not depend on the block size (`ring`, `zigzag`, `local`) run once per
//! batch; every other planner (`dcp`) runs at each block size, is reported at each, and as the
//! best block size per configuration (the paper's "min over sweeps", forward and backward chosen
//! separately). Speed-up = best static (min of `ring`, `zigzag`) ÷ candidate.

use std::collections::BTreeMap;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use dcp_core::datasets::{make_batches, Dataset};
use dcp_core::mask::MaskSpec;
use dcp_core::planners::{make_plan, PlannerOptions, PLANNERS};
use dcp_core::spec::{BatchSpec, ModelShape};
use dcp_core::stats::plan_stats;

use crate::cluster::Cluster;
use crate::cost::Hardware;
use crate::engine::{simulate, PassSummary, SimOptions};
use crate::profile::Profile;

/// Planners whose plans ignore the block size.
pub const BLOCK_SIZE_FREE: &[&str] = &["ring", "zigzag", "local", "ulysses", "usp"];
/// The static context-parallel baselines.
pub const STATIC: &[&str] = &["ring", "zigzag", "ulysses", "usp"];

#[derive(Debug, Clone)]
pub struct CompareConfig {
    pub datasets: Vec<String>,
    pub scales: Vec<f64>,
    pub masks: Vec<String>,
    pub topologies: Vec<String>,
    pub planners: Vec<String>,
    pub block_sizes: Vec<u32>,
    pub count: usize,
    pub seed: u64,
    pub budget: u64,
    pub model: ModelShape,
    pub profile: Profile,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("planner {0} not available (this build has: {1})")]
    NoPlanner(String, String),
    #[error("{0}")]
    Spec(String),
}

/// One simulated plan.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub dataset: String,
    pub scale: f64,
    pub mask: String,
    pub topology: String,
    pub batch: usize,
    pub n_seqs: usize,
    pub tokens: u64,
    pub planner: String,
    /// What the planner returned (`dcp` may fall back to `zigzag`).
    pub plan_kind: String,
    pub block_size: u32,
    pub fwd_ms: f64,
    pub bwd_ms: f64,
    pub plan_ms: f64,
    pub sim_ms: f64,
    pub fwd_bytes_inter: u64,
    pub bwd_bytes_inter: u64,
    pub fwd_bytes_intra: u64,
    pub bwd_bytes_intra: u64,
    pub fwd: PassSummary,
    pub bwd: PassSummary,
    pub error: Option<String>,
}

/// Configuration key: topology, dataset, scale, mask.
pub type Key = (String, String, String, String);

fn scale_str(s: f64) -> String {
    format!("{s}")
}

impl Row {
    pub fn key(&self) -> Key {
        (
            self.topology.clone(),
            self.dataset.clone(),
            scale_str(self.scale),
            self.mask.clone(),
        )
    }
    /// `dcp-2048` for swept planners, the name otherwise.
    pub fn variant(&self) -> String {
        if BLOCK_SIZE_FREE.contains(&self.planner.as_str()) {
            self.planner.clone()
        } else {
            format!("{}-{}", self.planner, self.block_size)
        }
    }
}

struct Job {
    topo: usize,
    ds: usize,
    scale: usize,
    mask: usize,
    batch: usize,
    planner: usize,
    block: u32,
}

/// Checks the configuration against what this build offers.
pub fn check(cfg: &CompareConfig) -> Result<(), BenchError> {
    for p in &cfg.planners {
        if !dcp_core::planners::is_planner(p) {
            return Err(BenchError::NoPlanner(p.clone(), PLANNERS.join(", ")));
        }
    }
    for d in &cfg.datasets {
        Dataset::parse(d).map_err(|e| BenchError::Spec(e.to_string()))?;
    }
    for m in &cfg.masks {
        MaskSpec::parse(m).map_err(|e| BenchError::Spec(e.to_string()))?;
    }
    for t in &cfg.topologies {
        Cluster::parse(t, &cfg.profile).map_err(|e| BenchError::Spec(e.to_string()))?;
    }
    if let Some(x) = cfg.scales.iter().find(|x| !(**x > 0.0 && x.is_finite())) {
        return Err(BenchError::Spec(format!(
            "scales must be positive numbers (got {x})"
        )));
    }
    if cfg.block_sizes.is_empty() || cfg.block_sizes.contains(&0) {
        return Err(BenchError::Spec("block sizes must be positive".into()));
    }
    Ok(())
}

/// Number of simulations `run` will do.
pub fn n_jobs(cfg: &CompareConfig) -> usize {
    let per_batch: usize = cfg
        .planners
        .iter()
        .map(|p| {
            if BLOCK_SIZE_FREE.contains(&p.as_str()) {
                1
            } else {
                cfg.block_sizes.len()
            }
        })
        .sum();
    cfg.topologies.len()
        * cfg.datasets.len()
        * cfg.scales.len()
        * cfg.masks.len()
        * cfg.count
        * per_batch
}

/// Plans and simulates everything; `tick` is called after each simulation (from any thread).
pub fn run(cfg: &CompareConfig, tick: &(dyn Fn() + Sync)) -> Result<Vec<Row>, BenchError> {
    check(cfg)?;
    let batches: Vec<Vec<Vec<Vec<u32>>>> = cfg
        .datasets
        .iter()
        .map(|d| {
            let ds = Dataset::parse(d).expect("checked");
            cfg.scales
                .iter()
                .map(|&s| make_batches(ds, s, cfg.count, cfg.budget, cfg.seed))
                .collect()
        })
        .collect();
    let masks: Vec<MaskSpec> = cfg
        .masks
        .iter()
        .map(|m| MaskSpec::parse(m).expect("checked"))
        .collect();
    let hw = Hardware::new(cfg.profile.clone());
    let clusters: Vec<Cluster> = cfg
        .topologies
        .iter()
        .map(|t| Cluster::parse(t, &cfg.profile).expect("checked"))
        .collect();
    let mut jobs = Vec::new();
    for topo in 0..clusters.len() {
        for (ds, per_scale) in batches.iter().enumerate() {
            for (scale, bs) in per_scale.iter().enumerate() {
                for mask in 0..masks.len() {
                    for batch in 0..bs.len() {
                        for (planner, p) in cfg.planners.iter().enumerate() {
                            let blocks: &[u32] = if BLOCK_SIZE_FREE.contains(&p.as_str()) {
                                &cfg.block_sizes[..1]
                            } else {
                                &cfg.block_sizes
                            };
                            for &block in blocks {
                                jobs.push(Job {
                                    topo,
                                    ds,
                                    scale,
                                    mask,
                                    batch,
                                    planner,
                                    block,
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    // Expensive jobs first so the pool drains evenly.
    jobs.sort_by_key(|j| std::cmp::Reverse(cfg.scales.len() - j.scale));
    let opts = PlannerOptions::default();
    let rows: Vec<Row> = jobs
        .par_iter()
        .map(|j| {
            let lens = &batches[j.ds][j.scale][j.batch];
            let cluster = &clusters[j.topo];
            let topo = cluster.core_topology();
            let name = &cfg.planners[j.planner];
            let batch = BatchSpec::uniform(lens, masks[j.mask].clone(), cfg.model, j.block);
            let mut row = Row {
                dataset: cfg.datasets[j.ds].clone(),
                scale: cfg.scales[j.scale],
                mask: cfg.masks[j.mask].clone(),
                topology: cfg.topologies[j.topo].clone(),
                batch: j.batch,
                n_seqs: lens.len(),
                tokens: lens.iter().map(|&l| l as u64).sum(),
                planner: name.clone(),
                plan_kind: String::new(),
                block_size: j.block,
                fwd_ms: f64::NAN,
                bwd_ms: f64::NAN,
                plan_ms: 0.0,
                sim_ms: 0.0,
                fwd_bytes_inter: 0,
                bwd_bytes_inter: 0,
                fwd_bytes_intra: 0,
                bwd_bytes_intra: 0,
                fwd: PassSummary::default(),
                bwd: PassSummary::default(),
                error: None,
            };
            let t0 = Instant::now();
            match make_plan(name, &batch, &topo, &opts) {
                Err(e) => row.error = Some(format!("planning: {e}")),
                Ok(plan) => {
                    row.plan_ms = t0.elapsed().as_secs_f64() * 1e3;
                    row.plan_kind = plan.label();
                    let st = plan_stats(&plan);
                    row.fwd_bytes_inter = st.fwd_bytes_inter;
                    row.bwd_bytes_inter = st.bwd_bytes_inter;
                    row.fwd_bytes_intra = st.fwd_bytes_intra;
                    row.bwd_bytes_intra = st.bwd_bytes_intra;
                    let t1 = Instant::now();
                    match simulate(&plan, cluster, &hw, &SimOptions::default()) {
                        Err(e) => row.error = Some(format!("simulation: {e}")),
                        Ok(r) => {
                            row.fwd = r.forward.summary();
                            row.bwd = r.backward.summary();
                            row.fwd_ms = row.fwd.ms;
                            row.bwd_ms = row.bwd.ms;
                        }
                    }
                    row.sim_ms = t1.elapsed().as_secs_f64() * 1e3;
                }
            }
            tick();
            row
        })
        .collect();
    let mut rows = rows;
    rows.sort_by(|a, b| {
        (a.key(), a.batch, a.variant())
            .partial_cmp(&(b.key(), b.batch, b.variant()))
            .expect("keys compare")
    });
    Ok(rows)
}

/// Mean times of one variant in one configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Mean {
    pub fwd_ms: f64,
    pub bwd_ms: f64,
    /// Block size chosen for the forward / backward (swept planners' best-of entries).
    pub fwd_block: Option<u32>,
    pub bwd_block: Option<u32>,
    pub batches: usize,
    pub errors: usize,
    /// Mean bytes crossing nodes per batch, forward and backward (MB).
    pub fwd_inter_mb: f64,
    pub bwd_inter_mb: f64,
}

/// Per configuration, per variant (`ring`, `dcp-1024`, …, and `dcp` = best block size).
pub type Summary = BTreeMap<Key, BTreeMap<String, Mean>>;

pub fn summarize(rows: &[Row]) -> Summary {
    let mut acc: BTreeMap<Key, BTreeMap<String, Vec<&Row>>> = BTreeMap::new();
    for r in rows {
        acc.entry(r.key())
            .or_default()
            .entry(r.variant())
            .or_default()
            .push(r);
    }
    let mut out = Summary::new();
    for (key, variants) in acc {
        let mut m = BTreeMap::new();
        for (v, rs) in &variants {
            let ok: Vec<&&Row> = rs.iter().filter(|r| r.error.is_none()).collect();
            let errors = rs.len() - ok.len();
            let mean = |f: fn(&Row) -> f64| {
                if ok.is_empty() || errors > 0 {
                    f64::NAN
                } else {
                    ok.iter().map(|r| f(r)).sum::<f64>() / ok.len() as f64
                }
            };
            m.insert(
                v.clone(),
                Mean {
                    fwd_ms: mean(|r| r.fwd_ms),
                    bwd_ms: mean(|r| r.bwd_ms),
                    fwd_block: None,
                    bwd_block: None,
                    batches: rs.len(),
                    errors,
                    fwd_inter_mb: mean(|r| r.fwd_bytes_inter as f64 / 1e6),
                    bwd_inter_mb: mean(|r| r.bwd_bytes_inter as f64 / 1e6),
                },
            );
        }
        // Best block size of swept planners.
        let swept: BTreeMap<String, Vec<(u32, Mean)>> = variants
            .iter()
            .filter(|(_, rs)| !BLOCK_SIZE_FREE.contains(&rs[0].planner.as_str()))
            .fold(BTreeMap::new(), |mut acc, (v, rs)| {
                acc.entry(rs[0].planner.clone())
                    .or_default()
                    .push((rs[0].block_size, m[v].clone()));
                acc
            });
        for (planner, per_block) in swept {
            let best = |f: fn(&Mean) -> f64| {
                per_block
                    .iter()
                    .filter(|(_, x)| f(x).is_finite())
                    .min_by(|a, b| f(&a.1).total_cmp(&f(&b.1)))
                    .map(|(b, x)| (*b, f(x)))
            };
            let (fb, fwd) = best(|x| x.fwd_ms).map_or((None, f64::NAN), |(b, t)| (Some(b), t));
            let (bb, bwd) = best(|x| x.bwd_ms).map_or((None, f64::NAN), |(b, t)| (Some(b), t));
            let at = |b: Option<u32>, f: fn(&Mean) -> f64| {
                per_block
                    .iter()
                    .find(|(x, _)| Some(*x) == b)
                    .map_or(f64::NAN, |(_, m)| f(m))
            };
            m.insert(
                planner,
                Mean {
                    fwd_ms: fwd,
                    bwd_ms: bwd,
                    fwd_block: fb,
                    bwd_block: bb,
                    batches: per_block[0].1.batches,
                    errors: per_block.iter().map(|x| x.1.errors).sum(),
                    fwd_inter_mb: at(fb, |m| m.fwd_inter_mb),
                    bwd_inter_mb: at(bb, |m| m.bwd_inter_mb),
                },
            );
        }
        out.insert(key, m);
    }
    out
}

/// Best static time (min of the static planners run: ring, zigzag, ulysses, usp) of a configuration, forward and backward.
pub fn best_static(m: &BTreeMap<String, Mean>) -> Option<(f64, f64)> {
    let st: Vec<&Mean> = STATIC.iter().filter_map(|s| m.get(*s)).collect();
    if st.is_empty() {
        return None;
    }
    let f = st.iter().map(|x| x.fwd_ms).fold(f64::INFINITY, f64::min);
    let b = st.iter().map(|x| x.bwd_ms).fold(f64::INFINITY, f64::min);
    Some((f, b))
}

/// Planners compared against the static baselines: every requested non-static planner.
pub fn candidates(cfg: &CompareConfig) -> Vec<String> {
    cfg.planners
        .iter()
        .filter(|p| !STATIC.contains(&p.as_str()))
        .cloned()
        .collect()
}

/// Speed-up (best static ÷ candidate), forward and backward.
pub fn speedup(m: &BTreeMap<String, Mean>, cand: &str) -> Option<(f64, f64)> {
    let (f, b) = best_static(m)?;
    let c = m.get(cand)?;
    Some((f / c.fwd_ms, b / c.bwd_ms))
}

/// The paper's Fig. 12 (AE re-run, A100s, 4×8): causal mask, ring / zigzag / DCP ms per batch,
/// scales 0.5, 1, 2, 4 — used to put our ratios next to theirs.
/// Ring, zigzag and DCP ms at scales 0.5, 1, 2, 4.
pub type PaperTimes = [(f64, f64, f64); 4];

pub const PAPER_CAUSAL: &[(&str, &str, PaperTimes)] = &[
    (
        "ldc",
        "fwd",
        [
            (28.3, 37.1, 8.0),
            (52.4, 32.0, 7.0),
            (26.9, 29.4, 8.4),
            (26.8, 28.8, 8.9),
        ],
    ),
    (
        "ldc",
        "bwd",
        [
            (80.8, 81.2, 16.0),
            (78.5, 79.8, 13.6),
            (76.9, 76.3, 15.6),
            (75.1, 76.2, 18.1),
        ],
    ),
    (
        "longalign",
        "fwd",
        [
            (27.4, 30.0, 7.9),
            (26.9, 28.8, 9.4),
            (27.0, 28.0, 10.9),
            (26.6, 27.1, 13.3),
        ],
    ),
    (
        "longalign",
        "bwd",
        [
            (77.7, 79.1, 15.4),
            (75.0, 75.7, 19.0),
            (74.7, 75.8, 20.4),
            (73.3, 73.5, 27.6),
        ],
    ),
];

/// Paper speed-up of DCP over min(ring, zigzag) for `dataset`, pass, scale (0.5/1/2/4).
pub fn paper_speedup(dataset: &str, pass: &str, scale: f64) -> Option<f64> {
    let idx = [0.5, 1.0, 2.0, 4.0].iter().position(|&s| s == scale)?;
    PAPER_CAUSAL
        .iter()
        .find(|(d, p, _)| *d == dataset && *p == pass)
        .map(|(_, _, v)| {
            let (r, z, d) = v[idx];
            r.min(z) / d
        })
}

/// `x` with `decimals` decimals, or `–` where no run of the cell planned (a planner that
/// refused every batch).
fn fmt_finite(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{x:.decimals$}")
    } else {
        "–".into()
    }
}

fn fmt_ms(x: f64) -> String {
    fmt_finite(x, 2)
}

fn fmt_x(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}×")
    } else {
        "–".into()
    }
}

/// A markdown table's header: the columns `lead` (e.g. `"| dataset | mask |"`, `n_lead` of
/// them), then one per item of `cols`, and the separator line.
fn md_header<T: std::fmt::Display>(lead: &str, n_lead: usize, cols: &[T]) -> String {
    let mut out = String::from(lead);
    for c in cols {
        out += &format!(" {c} |");
    }
    out += "\n|";
    out += &"---|".repeat(n_lead + cols.len());
    out += "\n";
    out
}

/// Markdown tables: speed-ups per candidate and topology, then mean times of every variant.
pub fn markdown_tables(cfg: &CompareConfig, s: &Summary) -> String {
    let mut out = String::new();
    let scales: Vec<String> = cfg.scales.iter().map(|&x| scale_str(x)).collect();
    for topo in &cfg.topologies {
        for cand in candidates(cfg) {
            out += &format!(
                "\n### {topo}: best static (min of ring, zigzag, ulysses, usp run) ÷ {cand}, forward / backward\n\n"
            );
            let cols: Vec<String> = scales.iter().map(|sc| format!("×{sc}")).collect();
            out += &md_header("| dataset | mask |", 2, &cols);
            for ds in &cfg.datasets {
                for mask in &cfg.masks {
                    out += &format!("| {ds} | {mask} |");
                    for sc in &scales {
                        let key = (topo.clone(), ds.clone(), sc.clone(), mask.clone());
                        let cell = s
                            .get(&key)
                            .and_then(|m| speedup(m, &cand))
                            .map(|(f, b)| format!("{} / {}", fmt_x(f), fmt_x(b)))
                            .unwrap_or_else(|| "–".into());
                        out += &format!(" {cell} |");
                    }
                    out += "\n";
                }
            }
        }
        out += &format!("\n### {topo}: mean ms per batch, forward / backward\n\n");
        let variants: Vec<String> = s
            .iter()
            .filter(|(k, _)| &k.0 == topo)
            .flat_map(|(_, m)| m.keys().cloned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        out += &md_header("| dataset | scale | mask |", 3, &variants);
        for ds in &cfg.datasets {
            for sc in &scales {
                for mask in &cfg.masks {
                    let key = (topo.clone(), ds.clone(), sc.clone(), mask.clone());
                    let Some(m) = s.get(&key) else { continue };
                    out += &format!("| {ds} | {sc} | {mask} |");
                    for v in &variants {
                        let cell = m
                            .get(v)
                            .map(|x| {
                                let mut c = format!("{} / {}", fmt_ms(x.fwd_ms), fmt_ms(x.bwd_ms));
                                if let (Some(fb), Some(bb)) = (x.fwd_block, x.bwd_block) {
                                    c += &format!(" (B {fb}/{bb})");
                                }
                                if x.errors > 0 {
                                    c += &format!(" [{} failed]", x.errors);
                                }
                                c
                            })
                            .unwrap_or_else(|| "–".into());
                        out += &format!(" {cell} |");
                    }
                    out += "\n";
                }
            }
        }
        out += &format!(
            "\n### {topo}: mean inter-node MB per batch, forward / backward (best block size for swept planners)\n\n"
        );
        out += &md_header("| dataset | scale | mask |", 3, &cfg.planners);
        for ds in &cfg.datasets {
            for sc in &scales {
                for mask in &cfg.masks {
                    let key = (topo.clone(), ds.clone(), sc.clone(), mask.clone());
                    let Some(m) = s.get(&key) else { continue };
                    out += &format!("| {ds} | {sc} | {mask} |");
                    for p in &cfg.planners {
                        let cell = m
                            .get(p)
                            .map(|x| {
                                format!(
                                    "{} / {}",
                                    fmt_finite(x.fwd_inter_mb, 0),
                                    fmt_finite(x.bwd_inter_mb, 0)
                                )
                            })
                            .unwrap_or_else(|| "–".into());
                        out += &format!(" {cell} |");
                    }
                    out += "\n";
                }
            }
        }
    }
    out
}

/// Our causal speed-ups next to the paper's (DCP vs min(ring, zigzag), Fig. 12 AE data).
pub fn paper_table(cfg: &CompareConfig, s: &Summary, cand: &str) -> String {
    let mut out = String::from(
        "| topology | dataset | pass | scale | ours | paper (A100, 4×8, ring/zigzag ÷ DCP) |\n|---|---|---|---|---|---|\n",
    );
    let Some(causal) = cfg.masks.iter().find(|m| m.as_str() == "causal") else {
        return String::new();
    };
    for topo in &cfg.topologies {
        for ds in &cfg.datasets {
            for (pi, pass) in ["fwd", "bwd"].iter().enumerate() {
                for &sc in &cfg.scales {
                    let key = (topo.clone(), ds.clone(), scale_str(sc), causal.clone());
                    let ours = s
                        .get(&key)
                        .and_then(|m| speedup(m, cand))
                        .map(|(f, b)| if pi == 0 { f } else { b })
                        .unwrap_or(f64::NAN);
                    let paper = paper_speedup(ds, pass, sc).unwrap_or(f64::NAN);
                    out += &format!(
                        "| {topo} | {ds} | {pass} | {sc} | {} | {} |\n",
                        fmt_x(ours),
                        fmt_x(paper)
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One 32K-budget longalign batch at scale 0.5, block size 4096, on `topology`.
    fn tiny(topology: &str, masks: &[&str], planners: &[&str]) -> CompareConfig {
        let strs = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
        CompareConfig {
            datasets: vec!["longalign".into()],
            scales: vec![0.5],
            masks: strs(masks),
            topologies: vec![topology.into()],
            planners: strs(planners),
            block_sizes: vec![4096],
            count: 1,
            seed: 0,
            budget: 32768,
            model: ModelShape::default(),
            profile: Profile::h100(),
        }
    }

    #[test]
    fn tiny_sweep() {
        let cfg = tiny("2x2", &["causal", "lambda"], &["ring", "zigzag", "local"]);
        assert_eq!(n_jobs(&cfg), 6);
        let rows = run(&cfg, &|| {}).unwrap();
        assert_eq!(rows.len(), 6);
        assert!(rows.iter().all(|r| r.error.is_none() && r.fwd_ms > 0.0));
        let s = summarize(&rows);
        let m = s.values().next().unwrap();
        assert!(speedup(m, "local").is_some());
        let md = markdown_tables(&cfg, &s);
        assert!(md.contains("| longalign | causal |"), "{md}");
        let bad = CompareConfig {
            planners: vec!["nope".into()],
            ..cfg
        };
        assert!(matches!(check(&bad), Err(BenchError::NoPlanner(..))));
        assert!((paper_speedup("ldc", "fwd", 1.0).unwrap() - 32.0 / 7.0).abs() < 1e-9);
    }

    #[test]
    fn a_planner_that_refuses_every_batch_shows_dashes_and_is_no_baseline() {
        // Ulysses cannot split 8 query heads over 16 devices: every run of it fails.
        let cfg = tiny("1x16", &["causal"], &["ring", "ulysses", "local"]);
        let rows = run(&cfg, &|| {}).unwrap();
        assert!(rows
            .iter()
            .all(|r| (r.planner == "ulysses") == r.error.is_some()));
        let s = summarize(&rows);
        let m = s.values().next().unwrap();
        let (f, b) = best_static(m).unwrap();
        assert_eq!((f, b), (m["ring"].fwd_ms, m["ring"].bwd_ms));
        let md = markdown_tables(&cfg, &s);
        assert!(!md.contains("NaN"), "{md}");
        assert!(md.contains("– / – [1 failed]"), "{md}");
        let mb = md
            .split("inter-node MB")
            .nth(1)
            .expect("an inter-node table");
        assert!(mb.contains("| – / – |"), "{mb}");
    }
}
