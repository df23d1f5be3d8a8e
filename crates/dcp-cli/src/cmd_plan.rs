//! `dcp plan`, `dcp check` and `dcp demo`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use dcp_core::check::{check_plan, corpus_dir, random_case};
use dcp_core::datasets::{make_batches, Dataset, DEFAULT_BUDGET};
use dcp_core::planners::{make_plan, PlannerOptions, HEAD_PARALLEL, PLANNERS, ULYSSES_PP};
use dcp_core::stats::plan_stats;
use dcp_core::validate;
use dcp_core::PlanningError;
use rayon::prelude::*;
use serde_json::json;

use crate::common::{check_planner, nonneg_f64, planner_list, positive_usize, progress, BatchArgs};

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub batch: BatchArgs,
    #[arg(long, default_value = "dcp", help = crate::common::planner_help("Planner"))]
    pub planner: String,
    /// Tokens per block: the unit the dcp planner places and schedules.
    #[arg(long, default_value_t = 1024)]
    pub block_size: u32,
    /// Output: json (JSON lines) or table.
    #[arg(long, default_value = "json")]
    pub format: String,
    /// Skip the validator (for timing very large plans).
    #[arg(long)]
    pub no_validate: bool,
    /// Write each plan to DIR/batchN.json (or .bin with --binary).
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// With --save: write the binary form (DCPP header + postcard) instead of JSON.
    #[arg(long)]
    pub binary: bool,
    /// Write the dcp placement hypergraph of each batch to DIR/batchN.hgr (hMETIS with the
    /// two-weight extension) and its capacities/topology to DIR/batchN.json; no planning.
    #[arg(long)]
    pub dump_hgr: Option<PathBuf>,
    /// Per-device token budget for the local planner.
    #[arg(long)]
    pub budget_tokens: Option<u64>,
    #[command(flatten)]
    pub dcp: DcpArgs,
}

/// Options of the `dcp` planner.
#[derive(Args, Debug, Clone)]
pub struct DcpArgs {
    /// Allowed compute imbalance of the placement (max/mean − 1).
    #[arg(long, default_value_t = 0.08, allow_negative_numbers = true, value_parser = nonneg_f64)]
    pub comp_epsilon: f64,
    /// Allowed imbalance of home data (the tokens each device holds) per device, max/mean − 1; also
    /// bounds the `local` candidate's token imbalance. Training wants it tight (Python's
    /// `token_epsilon`; examples/train.py uses 0.03): the layers outside attention run on each
    /// device's tokens.
    #[arg(long, default_value_t = 0.15, allow_negative_numbers = true, value_parser = nonneg_f64)]
    pub mem_epsilon: f64,
    /// Cost of an inter-node byte relative to an intra-node byte (default: intra bandwidth over
    /// each GPU's share of the node's NICs).
    #[arg(long)]
    pub inter_node_factor: Option<u64>,
    /// Number of stages (default: chosen by the cost model).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub stages: Option<u32>,
    /// Seed of the partitioner.
    #[arg(long, default_value_t = 0)]
    pub plan_seed: u64,
    /// Partitioner effort: fast, default, quality.
    #[arg(long, default_value = "fast")]
    pub effort: String,
    /// Never return the zigzag plan, even when the cost model predicts it faster.
    #[arg(long)]
    pub no_static_fallback: bool,
}

impl DcpArgs {
    pub fn options(&self) -> Result<dcp_core::dcp::DcpOptions> {
        let preset = match self.effort.as_str() {
            "fast" => hypergraph::Preset::Fast,
            "default" => hypergraph::Preset::Default,
            "quality" => hypergraph::Preset::Quality,
            o => bail!("--effort must be fast, default or quality (got {o})"),
        };
        if !(self.comp_epsilon >= 0.0 && self.mem_epsilon >= 0.0) {
            bail!("epsilons must be non-negative");
        }
        Ok(dcp_core::dcp::DcpOptions {
            comp_epsilon: self.comp_epsilon,
            mem_epsilon: self.mem_epsilon,
            inter_node_factor: self.inter_node_factor.map(|f| f.max(1)),
            seed: self.plan_seed,
            stages: self.stages,
            // (--cost-model and --planner-profile: `BatchArgs::planner_options`.)
            preset,
            fallback_static: !self.no_static_fallback,
            ..Default::default()
        })
    }
}

pub fn plan(a: PlanArgs) -> Result<()> {
    if a.format != "json" && a.format != "table" {
        bail!("--format must be json or table (got {})", a.format);
    }
    check_planner(&a.planner)?;
    let topo = a.batch.topology()?;
    let lens = a.batch.lengths()?;
    let opts = a.batch.planner_options(PlannerOptions {
        budget_tokens: a.budget_tokens,
        dcp: a.dcp.options()?,
        ..Default::default()
    })?;
    if let Some(dir) = &a.save {
        std::fs::create_dir_all(dir)?;
    }
    let mut rows = Vec::new();
    if let Some(dir) = &a.dump_hgr {
        std::fs::create_dir_all(dir)?;
        for (bi, l) in lens.iter().enumerate() {
            let mut batch = a.batch.batch(l, a.block_size)?;
            let mut table = dcp_core::blocks::BlockTable::build(&batch)?;
            // The problem at the head block the planner places at (KV head groups on dense rows).
            let hb = dcp_core::dcp::placed_head_block(&batch, &table, topo.n_devices(), &opts.dcp);
            if hb != batch.head_block {
                batch.head_block = hb;
                table = dcp_core::blocks::BlockTable::build(&batch)?;
            }
            let (hg, cfg) = dcp_core::dcp::placement_problem(&table, &batch, &topo, &opts.dcp)?;
            hypergraph::hmetis::write_hgr_file(&hg, &dir.join(format!("batch{bi}.hgr")))?;
            let meta = json!({"k": cfg.k, "capacities": cfg.capacities, "seed": cfg.seed,
                "node_of_part": cfg.topology.as_ref().map(|t| t.node_of_part.clone()),
                "inter_node_factor": cfg.topology.as_ref().map(|t| t.inter_node_factor),
                "data_vertices": table.blocks.len(), "tiles": table.tiles.len(),
                "head_block": batch.head_block});
            std::fs::write(dir.join(format!("batch{bi}.json")), meta.to_string())?;
        }
        eprintln!(
            "wrote {} hypergraph(s) (batchN.hgr + batchN.json capacities) to {}",
            lens.len(),
            dir.display()
        );
        return Ok(());
    }
    for (bi, l) in lens.iter().enumerate() {
        let batch = a.batch.batch(l, a.block_size)?;
        let t0 = Instant::now();
        let plan = make_plan(&a.planner, &batch, &topo, &opts)?;
        let plan_ms = t0.elapsed().as_secs_f64() * 1e3;
        let (valid, validate_ms, error) = if a.no_validate {
            (serde_json::Value::Null, 0.0, None)
        } else {
            let t1 = Instant::now();
            let r = validate(&plan);
            (
                json!(r.is_ok()),
                t1.elapsed().as_secs_f64() * 1e3,
                r.err().map(|e| e.to_string()),
            )
        };
        let s = plan_stats(&plan);
        let row = json!({
            "batch": bi, "source": a.batch.source_name(), "planner": a.planner, "plan": plan.label(), "mask": a.batch.mask,
            "block_size": a.block_size, "topology": a.batch.topology, "n_devices": s.n_devices, "n_seqs": l.len(),
            "tokens": s.tokens, "plan_ms": plan_ms,
            "fwd_bytes_intra": s.fwd_bytes_intra, "fwd_bytes_inter": s.fwd_bytes_inter,
            "bwd_bytes_intra": s.bwd_bytes_intra, "bwd_bytes_inter": s.bwd_bytes_inter,
            "compute_imbalance": s.compute_imbalance, "memory_imbalance": s.memory_imbalance,
            "n_stages": s.n_stages, "n_stages_bwd": s.n_stages_bwd, "valid": valid, "validate_ms": validate_ms,
            "error": error,
        });
        if let Some(dir) = &a.save {
            if a.binary {
                std::fs::write(dir.join(format!("batch{bi}.bin")), plan.to_bytes())?;
            } else {
                std::fs::write(dir.join(format!("batch{bi}.json")), plan.to_json())?;
            }
        }
        if a.format == "json" {
            println!("{row}");
        }
        rows.push(row);
    }
    if a.format == "table" {
        print_table(&rows);
    }
    Ok(())
}

fn mb(v: &serde_json::Value) -> f64 {
    v.as_u64().unwrap_or(0) as f64 / 1e6
}

pub fn print_table(rows: &[serde_json::Value]) {
    println!(
        "{:>5} {:>10} {:>7} {:>9} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>6} {:>5}",
        "batch",
        "plan",
        "tokens",
        "plan_ms",
        "fwd MB in",
        "fwd MB x",
        "bwd MB in",
        "bwd MB x",
        "comp_imb",
        "mem_imb",
        "stages",
        "valid"
    );
    for r in rows {
        println!(
            "{:>5} {:>10} {:>7} {:>9.2} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>8.3} {:>8.3} {:>6} {:>5}",
            r["batch"],
            r["plan"].as_str().unwrap_or(""),
            r["tokens"],
            r["plan_ms"].as_f64().unwrap_or(0.0),
            mb(&r["fwd_bytes_intra"]),
            mb(&r["fwd_bytes_inter"]),
            mb(&r["bwd_bytes_intra"]),
            mb(&r["bwd_bytes_inter"]),
            r["compute_imbalance"].as_f64().unwrap_or(0.0),
            r["memory_imbalance"].as_f64().unwrap_or(0.0),
            r["n_stages"],
            r["valid"],
        );
    }
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Number of random cases (0 only with --corpus: the corpus alone).
    #[arg(long, default_value_t = 200)]
    pub cases: u64,
    /// Seed of the first case (case i uses seed + i).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Longest sequence in a case.
    #[arg(long, default_value_t = 700)]
    pub max_len: u32,
    /// Planners to check (comma separated; default all, the head-parallel `ulysses` and `usp`
    /// included, which skip the cases whose heads they cannot split).
    #[arg(long)]
    pub planners: Option<String>,
    /// Also run every case of a corpus folder (e.g. testdata/), before the random cases.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Threads for the random cases (0: one per core). Each case is independent and seeded, so
    /// the counts do not depend on it; failures print as they are found.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

pub fn check(a: CheckArgs) -> Result<()> {
    if a.cases == 0 && a.corpus.is_none() {
        bail!("--cases 0 checks nothing: give at least 1 case, or --corpus DIR to check a corpus alone");
    }
    let planners: Vec<String> = match &a.planners {
        Some(s) => planner_list(s)?,
        None => PLANNERS
            .iter()
            .chain(HEAD_PARALLEL)
            .chain([&ULYSSES_PP])
            .map(|s| s.to_string())
            .collect(),
    };
    let opts = PlannerOptions::default();
    // The head-parallel planners refuse shapes they cannot split (more devices than heads, ...):
    // such a typed refusal is a skip, counted per planner; any other error fails the case.
    let head_parallel = |p: &str| {
        HEAD_PARALLEL
            .iter()
            .any(|h| p == *h || p.starts_with("usp:"))
            || p == ULYSSES_PP
    };
    let mut skipped = vec![0u64; planners.len()];
    let corpus = match &a.corpus {
        Some(dir) => corpus_dir(dir)?,
        None => Vec::new(),
    };
    let mut corpus_failed = 0u64;
    for (i, (name, batch, topo)) in corpus.iter().enumerate() {
        for (pi, p) in planners.iter().enumerate() {
            let r = match make_plan(p, batch, topo, &opts) {
                Err(PlanningError::Unsupported { .. }) if head_parallel(p) => {
                    skipped[pi] += 1;
                    continue;
                }
                r => r
                    .map_err(|e| e.to_string())
                    .and_then(|plan| check_plan(&plan, i as u64)),
            };
            if let Err(e) = r {
                corpus_failed += 1;
                eprintln!("corpus case {name}, planner {p}: {e}");
            }
        }
    }
    if !corpus.is_empty() {
        println!(
            "corpus: {} cases × {} planners, {corpus_failed} failed",
            corpus.len(),
            planners.len()
        );
    }
    // The random cases on a pool of their own (`--threads`): per case, whether it passed and
    // which planners skipped it.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build()?;
    let pb = progress(
        a.cases,
        "check",
        &format!(
            "checking {} random cases × {} planners on {} threads: plan, validate, run forward and backward on the CPU reference executor and compare with dense attention (the executor dominates)",
            a.cases,
            planners.len(),
            pool.current_num_threads()
        ),
    );
    let results: Vec<(bool, Vec<bool>)> = pool.install(|| {
        (0..a.cases)
            .into_par_iter()
            .map(|c| {
                let seed = a.seed.wrapping_add(c);
                let (batch, topo) = random_case(seed, a.max_len);
                let mut ok = true;
                let mut skips = vec![false; planners.len()];
                for (pi, p) in planners.iter().enumerate() {
                    let r = match make_plan(p, &batch, &topo, &opts) {
                        Err(PlanningError::Unsupported { .. }) if head_parallel(p) => {
                            skips[pi] = true;
                            continue;
                        }
                        r => r
                            .map_err(|e| e.to_string())
                            .and_then(|plan| check_plan(&plan, seed)),
                    };
                    if let Err(e) = r {
                        ok = false;
                        pb.suspend(|| eprintln!("case seed {seed}, planner {p}: {e}"));
                    }
                }
                pb.inc(1);
                (ok, skips)
            })
            .collect()
    });
    pb.finish_and_clear();
    let passed = results.iter().filter(|(ok, _)| *ok).count() as u64;
    let failed = a.cases - passed;
    for (_, skips) in &results {
        for (k, &s) in skipped.iter_mut().zip(skips) {
            *k += s as u64;
        }
    }
    let skips: Vec<String> = planners
        .iter()
        .zip(&skipped)
        .filter(|(_, &k)| k > 0)
        .map(|(p, k)| format!("{p} {k}"))
        .collect();
    if skips.is_empty() {
        println!("{passed} passed, {failed} failed");
    } else {
        println!(
            "{passed} passed, {failed} failed (cases skipped by planners that cannot split their heads: {})",
            skips.join(", ")
        );
    }
    if failed + corpus_failed > 0 {
        bail!("{failed} random case(s) and {corpus_failed} corpus plan(s) failed");
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Number of longalign batches (at least 1).
    #[arg(long, default_value_t = 3, value_parser = positive_usize)]
    pub count: usize,
    /// Topology NODESxGPUS, e.g. 4x8.
    #[arg(long, default_value = "4x8")]
    pub topology: String,
    /// Tokens per block (dcp's placement unit).
    #[arg(long, default_value_t = 1024)]
    pub block_size: u32,
}

/// The planners `dcp demo` compares: [`PLANNERS`] and the head-parallel baselines, dcp last.
const DEMO_PLANNERS: [&str; 6] = ["ring", "zigzag", "local", "ulysses", "usp", "dcp"];

/// One planned batch of `dcp demo`, or the planner's refusal of its shape.
struct DemoRow {
    mask: &'static str,
    batch: usize,
    planner: &'static str,
    seqs: usize,
    plan_ms: f64,
    outcome: std::result::Result<DemoPlan, String>,
}

struct DemoPlan {
    stats: dcp_core::stats::PlanStats,
    valid: bool,
    pred: dcp_core::cost::Prediction,
    validate_ms: f64,
}

impl DemoPlan {
    fn bytes(&self) -> f64 {
        let s = &self.stats;
        (s.fwd_bytes_intra + s.fwd_bytes_inter + s.bwd_bytes_intra + s.bwd_bytes_inter) as f64
    }
}

pub fn demo(a: DemoArgs) -> Result<()> {
    let topo = dcp_core::spec::Topology::parse(&a.topology)?;
    let model = dcp_core::spec::ModelShape::default();
    let lens = make_batches(Dataset::LongAlign, 1.0, a.count, DEFAULT_BUDGET, 0);
    println!("dcp demo: {} longalign batches (131072-token budget), {} topology, 8 query / 2 KV heads, D 128, bf16, block {}", lens.len(), a.topology, a.block_size);
    let masks = ["causal", "lambda"];
    let jobs: Vec<(&str, usize, &str)> = masks
        .iter()
        .flat_map(|&m| {
            (0..lens.len()).flat_map(move |bi| DEMO_PLANNERS.iter().map(move |&p| (m, bi, p)))
        })
        .collect();
    let pb = progress(
        jobs.len() as u64,
        "plan+check",
        &format!(
            "planning and validating {} plans ({} masks × {} batches × {} planners) on {} threads (per-plan times in the plan_ms and validate_ms columns)",
            jobs.len(),
            masks.len(),
            lens.len(),
            DEMO_PLANNERS.len(),
            rayon::current_num_threads()
        ),
    );
    let t_all = Instant::now();
    let rows: Vec<DemoRow> = jobs
        .par_iter()
        .map(|&(mask, bi, p)| -> Result<_> {
            let l = &lens[bi];
            let batch = dcp_core::spec::BatchSpec::uniform(
                l,
                dcp_core::mask::MaskSpec::parse(mask)?,
                model,
                a.block_size,
            );
            let t0 = Instant::now();
            let planned = make_plan(p, &batch, &topo, &PlannerOptions::default());
            let plan_ms = t0.elapsed().as_secs_f64() * 1e3;
            let outcome = match planned {
                // A head-parallel baseline that cannot split this shape (Ulysses on more
                // devices than query heads) is shown as refused, with its reason.
                Err(e @ PlanningError::Unsupported { .. }) if HEAD_PARALLEL.contains(&p) => {
                    Err(e.to_string())
                }
                Err(e) => return Err(e.into()),
                Ok(plan) => {
                    let t1 = Instant::now();
                    let valid = validate(&plan).is_ok();
                    let validate_ms = t1.elapsed().as_secs_f64() * 1e3;
                    Ok(DemoPlan {
                        stats: plan_stats(&plan),
                        valid,
                        pred: dcp_core::cost::predict(&plan, &dcp_core::cost::CostModel::default()),
                        validate_ms,
                    })
                }
            };
            pb.inc(1);
            Ok(DemoRow {
                mask,
                batch: bi,
                planner: p,
                seqs: l.len(),
                plan_ms,
                outcome,
            })
        })
        .collect::<Result<_>>()?;
    pb.finish_and_clear();
    let plan_s: f64 = rows.iter().map(|r| r.plan_ms).sum::<f64>() / 1e3;
    let validate_s: f64 = rows
        .iter()
        .filter_map(|r| r.outcome.as_ref().ok())
        .map(|d| d.validate_ms)
        .sum::<f64>()
        / 1e3;
    eprintln!(
        "{} plans in {:.1} s wall: planning {plan_s:.1} s, validation {validate_s:.1} s (summed over threads)",
        rows.len(),
        t_all.elapsed().as_secs_f64()
    );
    println!(
        "\n{:<8} {:>5} {:>8} {:>5} {:>9} {:>11} {:>12} {:>12} {:>9} {:>8} {:>6} {:>17}",
        "mask",
        "batch",
        "planner",
        "seqs",
        "plan_ms",
        "validate_ms",
        "fwd+bwd GB",
        "inter GB",
        "comp_imb",
        "mem_imb",
        "valid",
        "pred fwd/bwd ms"
    );
    let mut refusals: Vec<(&str, &str)> = Vec::new();
    for r in &rows {
        let (mask, bi, p, n, ms) = (r.mask, r.batch, r.planner, r.seqs, r.plan_ms);
        match &r.outcome {
            Ok(d) => {
                let s = &d.stats;
                let inter = (s.fwd_bytes_inter + s.bwd_bytes_inter) as f64 / 1e9;
                println!(
                    "{mask:<8} {bi:>5} {p:>8} {n:>5} {ms:>9.2} {:>11.1} {:>12.3} {inter:>12.3} {:>9.3} {:>8.3} {:>6} {:>8.2}/{:<8.2}",
                    d.validate_ms,
                    d.bytes() / 1e9,
                    s.compute_imbalance,
                    s.memory_imbalance,
                    d.valid,
                    d.pred.fwd_ms,
                    d.pred.bwd_ms
                );
            }
            Err(why) => {
                println!(
                    "{mask:<8} {bi:>5} {p:>8} {n:>5} {:>9} refused (see below)",
                    "-"
                );
                if !refusals.iter().any(|(q, _)| *q == p) {
                    refusals.push((p, why));
                }
            }
        }
    }
    for (p, why) in &refusals {
        println!("{p} refused this shape: {why}");
    }
    // One line per mask: dcp against the best static planner that planned every batch, by the
    // cost model.
    for mask in masks {
        let sum = |p: &str| -> Option<(f64, f64)> {
            rows.iter()
                .filter(|r| r.mask == mask && r.planner == p)
                .map(|r| r.outcome.as_ref().ok())
                .try_fold((0.0, 0.0), |acc, d| {
                    d.map(|d| (acc.0 + d.pred.fwd_ms + d.pred.bwd_ms, acc.1 + d.bytes()))
                })
        };
        let Some((dt, db)) = sum("dcp") else {
            bail!("dcp did not plan every {mask} batch");
        };
        // The static baselines (`local` is no context parallelism at all).
        let best = dcp_sim::bench::STATIC
            .iter()
            .filter_map(|&p| sum(p).map(|(t, b)| (p, t, b)))
            .min_by(|x, y| x.1.total_cmp(&y.1));
        let Some((best_p, best_t, best_b)) = best else {
            bail!("no static planner planned every {mask} batch");
        };
        println!(
            "{mask}: dcp is predicted {:.2}x faster than the best static planner ({best_p}) and moves {:.1}x fewer bytes (fwd+bwd, default cost model: this project's Hopper kernels, {} topology)",
            best_t / dt,
            best_b / db.max(1.0),
            a.topology
        );
    }
    // A small case end to end through the CPU reference executor.
    let small = dcp_core::spec::BatchSpec::uniform(
        &[300, 127, 61, 1],
        dcp_core::mask::MaskSpec::Causal,
        dcp_core::spec::ModelShape {
            heads: 4,
            kv_heads: 2,
            head_dim: 16,
            dtype: dcp_core::spec::DType::Bf16,
        },
        32,
    );
    let topo_small = dcp_core::spec::Topology::new(2, 2);
    println!("\nCPU reference executor, lengths [300, 127, 61, 1], causal, 2x2 devices, block 32:");
    for p in DEMO_PLANNERS {
        let plan = make_plan(p, &small, &topo_small, &PlannerOptions::default())?;
        match check_plan(&plan, 7) {
            Ok(err) => println!(
                "  {p:>8}: valid, max |error| vs dense attention (O, LSE, dQ, dK, dV) = {err:.2e}"
            ),
            Err(e) => bail!("{p}: {e}"),
        }
    }
    Ok(())
}
