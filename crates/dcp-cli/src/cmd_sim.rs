//! `dcp simulate` (time of plans on a cluster model, with breakdowns and traces) and
//! `dcp compare` (the paper's microbenchmark on the simulator: tables, plots, report).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use dcp_core::planners::{make_plan, PlannerOptions, PLANNERS};
use dcp_core::stats::plan_stats;
use dcp_sim::bench::{self, CompareConfig, BLOCK_SIZE_FREE};
use dcp_sim::plot::{write_figure, Panel};
use dcp_sim::trace::chrome_trace;
use dcp_sim::{Cluster, Hardware, Profile, SimOptions};
use rayon::prelude::*;
use serde_json::json;

use crate::common::{out_dir, planner_list, progress, BatchArgs};

#[derive(Args, Debug)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub batch: BatchArgs,
    /// Planners, comma-separated (default: every planner of this build).
    #[arg(long)]
    pub planners: Option<String>,
    /// Block sizes, comma-separated (planners that ignore the block size run once).
    #[arg(long, default_value = "2048")]
    pub block_sizes: String,
    /// Hardware profile: h100, a100, a100-1nic, or a JSON file (e.g. from `dcp calibrate`).
    #[arg(long, default_value = "h100")]
    pub profile: String,
    /// Write JSON lines (one per batch × planner × block size) to FILE (`-` = stdout; the table
    /// then goes to stderr).
    #[arg(long)]
    pub json: Option<String>,
    /// Write a Chrome/Perfetto trace of one batch to FILE.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Batch to trace.
    #[arg(long, default_value_t = 0)]
    pub trace_batch: usize,
    /// Planner to trace (default: the first of --planners).
    #[arg(long)]
    pub trace_planner: Option<String>,
    /// Block size to trace (default: the first of --block-sizes).
    #[arg(long)]
    pub trace_block_size: Option<u32>,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Data sets, comma-separated.
    #[arg(long, default_value = "longalign,ldc")]
    pub datasets: String,
    /// Length scales, comma-separated.
    #[arg(long, default_value = "0.5,1,2,4", allow_negative_numbers = true)]
    pub scales: String,
    /// Masks, comma-separated.
    #[arg(long, default_value = "causal,lambda,shared-question,causal-blockwise")]
    pub masks: String,
    #[arg(long, default_value = "ring,zigzag,dcp",
          help = crate::common::planner_help("Planners, comma-separated"))]
    pub planners: String,
    /// Block sizes swept for block-size-dependent planners (dcp).
    #[arg(long, default_value = "1024,2048,4096")]
    pub block_sizes: String,
    /// Topologies, comma-separated (NODESxGPUS, N, AxBxC or JSON files).
    #[arg(long, default_value = "4x8,4x4")]
    pub topologies: String,
    /// Batches per configuration.
    #[arg(long, default_value_t = 3, value_parser = crate::common::positive_usize)]
    pub count: usize,
    /// Seed of the dataset generator.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Token budget per batch.
    #[arg(long, default_value_t = dcp_core::datasets::DEFAULT_BUDGET)]
    pub budget: u64,
    /// Hardware profile: h100, a100, a100-1nic, or a JSON file.
    #[arg(long, default_value = "h100")]
    pub profile: String,
    /// NICs per node (overrides the profile; 0 = one per GPU).
    #[arg(long)]
    pub nics_per_node: Option<u32>,
    #[command(flatten)]
    pub model: crate::common::ModelArgs,
    /// Output directory (rows.jsonl, summary.json, report.md, figures); default: a fresh
    /// `dcp-out/compare-<UTC date>-<time>` (pass --out bench/results/... to record a run).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Skip the figures.
    #[arg(long)]
    pub no_plots: bool,
}

fn list<T: std::str::FromStr>(s: &str, what: &str) -> Result<Vec<T>> {
    s.split(',')
        .map(|x| x.trim())
        .filter(|x| !x.is_empty())
        .map(|x| {
            x.parse::<T>()
                .map_err(|_| anyhow::anyhow!("bad {what} `{x}` in `{s}`"))
        })
        .collect()
}

fn load_profile(spec: &str, nics: Option<u32>) -> Result<Profile> {
    let (mut p, notes) = Profile::load(spec)?;
    for n in notes {
        eprintln!("note: {n}");
    }
    if let Some(n) = nics {
        p.nics_per_node = n;
    }
    eprintln!("{}", p.describe());
    Ok(p)
}

pub fn simulate_cmd(a: SimulateArgs) -> Result<()> {
    let profile = load_profile(&a.profile, a.batch.nics_per_node)?;
    let mut cluster = Cluster::parse(&a.batch.topology, &profile)?;
    if let Some(b) = a.batch.intra_gbps {
        cluster.set_intra_gbps(b);
    }
    if let Some(b) = a.batch.inter_gbps {
        cluster.set_inter_gbps_per_gpu(b);
    }
    eprintln!("cluster {}", cluster.describe());
    let topo = cluster.core_topology();
    let planners: Vec<String> = match &a.planners {
        Some(s) => planner_list(s)?,
        None => PLANNERS.iter().map(|s| s.to_string()).collect(),
    };
    let blocks: Vec<u32> = list(&a.block_sizes, "block size")?;
    if blocks.is_empty() || blocks.contains(&0) {
        bail!("--block-sizes needs positive sizes");
    }
    let lens = a.batch.lengths()?;
    let mut jobs = Vec::new();
    for bi in 0..lens.len() {
        for p in &planners {
            let bs: &[u32] = if BLOCK_SIZE_FREE.contains(&p.as_str()) {
                &blocks[..1]
            } else {
                &blocks
            };
            for &b in bs {
                jobs.push((bi, p.clone(), b));
            }
        }
    }
    let trace_planner = a.trace_planner.clone().unwrap_or(planners[0].clone());
    let trace_block = a.trace_block_size.unwrap_or(blocks[0]);
    if a.trace.is_some() && a.trace_batch >= lens.len() {
        bail!(
            "--trace-batch {} but only {} batches",
            a.trace_batch,
            lens.len()
        );
    }
    let hw = Hardware::new(profile.clone());
    let pb = progress(
        jobs.len() as u64,
        "simulate",
        &format!(
            "simulating {} plans (batch × planner × block size): planning and the event simulation of both passes",
            jobs.len()
        ),
    );
    let opts = a.batch.planner_options(PlannerOptions::default())?;
    if let Some(p) = &a.batch.planner_profile {
        eprintln!(
            "dcp weighs its candidates with the cost model of {}",
            p.display()
        );
    }
    if let Some(p) = &a.batch.cost_model {
        eprintln!(
            "dcp weighs its candidates with the cost model {}",
            p.display()
        );
    }
    let results: Vec<Result<(serde_json::Value, Option<serde_json::Value>)>> = jobs
        .par_iter()
        .map(|(bi, p, b)| {
            let batch = a.batch.batch(&lens[*bi], *b)?;
            let t0 = Instant::now();
            let plan = make_plan(p, &batch, &topo, &opts)
                .with_context(|| format!("planning batch {bi} with {p}"))?;
            let plan_ms = t0.elapsed().as_secs_f64() * 1e3;
            let want_trace = a.trace.is_some()
                && *bi == a.trace_batch
                && *p == trace_planner
                && (BLOCK_SIZE_FREE.contains(&p.as_str()) || *b == trace_block);
            let t1 = Instant::now();
            let r = dcp_sim::simulate(&plan, &cluster, &hw, &SimOptions { trace: want_trace })
                .with_context(|| format!("simulating batch {bi} planned by {p}"))?;
            let sim_ms = t1.elapsed().as_secs_f64() * 1e3;
            let st = plan_stats(&plan);
            let (f, bw) = (r.forward.summary(), r.backward.summary());
            let row = json!({
                "batch": bi, "source": a.batch.source_name(), "planner": p, "plan_kind": plan.label(),
                "block_size": b, "mask": a.batch.mask, "topology": a.batch.topology,
                "n_devices": cluster.n_devices(), "n_seqs": lens[*bi].len(), "tokens": st.tokens,
                "fwd_ms": f.ms, "bwd_ms": bw.ms, "fwd": f, "bwd": bw,
                "fwd_bytes_intra": st.fwd_bytes_intra, "fwd_bytes_inter": st.fwd_bytes_inter,
                "bwd_bytes_intra": st.bwd_bytes_intra, "bwd_bytes_inter": st.bwd_bytes_inter,
                "plan_ms": plan_ms, "sim_ms": sim_ms,
                "profile": profile.name, "calibrated": profile.calibrated,
            });
            let trace = want_trace.then(|| {
                chrome_trace(
                    &r,
                    &format!("{} batch {bi}, {p}, block {b}", a.batch.source_name()),
                )
            });
            pb.inc(1);
            Ok((row, trace))
        })
        .collect();
    pb.finish_and_clear();
    let mut rows = Vec::new();
    for r in results {
        let (row, trace) = r?;
        if let (Some(t), Some(path)) = (trace, &a.trace) {
            std::fs::write(path, serde_json::to_string(&t)?)
                .with_context(|| format!("writing trace {}", path.display()))?;
            eprintln!("trace written to {}", path.display());
        }
        rows.push(row);
    }
    let to_stdout = a.json.as_deref() == Some("-");
    if let Some(j) = &a.json {
        let mut text = String::new();
        for r in &rows {
            text += &serde_json::to_string(r)?;
            text.push('\n');
        }
        if to_stdout {
            print!("{text}");
        } else {
            std::fs::write(j, text).with_context(|| format!("writing {j}"))?;
        }
    }
    let table = sim_table(&rows, &profile);
    if to_stdout {
        eprint!("{table}");
    } else {
        print!("{table}");
    }
    Ok(())
}

fn sim_table(rows: &[serde_json::Value], profile: &Profile) -> String {
    let mut s = format!("# {}\n", profile.describe());
    s += &format!(
        "{:>5} {:>8} {:>6} {:>9} {:>9} | {:>22} {:>22} {:>22} {:>7} | {:>22} {:>22} {:>22} {:>7}\n",
        "batch",
        "planner",
        "block",
        "fwd ms",
        "bwd ms",
        "fwd compute max/mean",
        "fwd exp.comm max/mean",
        "fwd peer-wait max/mean",
        "f.imb",
        "bwd compute max/mean",
        "bwd exp.comm max/mean",
        "bwd peer-wait max/mean",
        "b.imb"
    );
    let mm = |v: &serde_json::Value| {
        format!(
            "{:.2}/{:.2}",
            v["max"].as_f64().unwrap_or(f64::NAN),
            v["mean"].as_f64().unwrap_or(f64::NAN)
        )
    };
    for r in rows {
        let planner = match r["plan_kind"].as_str() {
            Some(k) if Some(k) != r["planner"].as_str() => {
                format!("{}→{}", r["planner"].as_str().unwrap_or(""), k)
            }
            _ => r["planner"].as_str().unwrap_or("").to_string(),
        };
        s += &format!(
            "{:>5} {:>8} {:>6} {:>9.3} {:>9.3} | {:>22} {:>22} {:>22} {:>7.3} | {:>22} {:>22} {:>22} {:>7.3}\n",
            r["batch"],
            planner,
            r["block_size"],
            r["fwd_ms"].as_f64().unwrap_or(f64::NAN),
            r["bwd_ms"].as_f64().unwrap_or(f64::NAN),
            mm(&r["fwd"]["compute_ms"]),
            mm(&r["fwd"]["exposed_comm_ms"]),
            mm(&r["fwd"]["peer_wait_ms"]),
            r["fwd"]["compute_imbalance"].as_f64().unwrap_or(f64::NAN),
            mm(&r["bwd"]["compute_ms"]),
            mm(&r["bwd"]["exposed_comm_ms"]),
            mm(&r["bwd"]["peer_wait_ms"]),
            r["bwd"]["compute_imbalance"].as_f64().unwrap_or(f64::NAN),
        );
    }
    s
}

/// Entry point of `dcp simulate`.
pub fn simulate(a: SimulateArgs) -> Result<()> {
    simulate_cmd(a)
}

fn sh(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("{cpu}, {cores} cores ({})", std::env::consts::OS)
}

pub fn compare(a: CompareArgs) -> Result<()> {
    let planners: Vec<String> = planner_list(&a.planners)?;
    let profile = load_profile(&a.profile, a.nics_per_node)?;
    let model = a.model.shape()?;
    let cfg = CompareConfig {
        datasets: list(&a.datasets, "dataset")?,
        scales: list(&a.scales, "scale")?,
        masks: list(&a.masks, "mask")?,
        topologies: list(&a.topologies, "topology")?,
        planners,
        block_sizes: list(&a.block_sizes, "block size")?,
        count: a.count,
        seed: a.seed,
        budget: a.budget,
        model,
        profile: profile.clone(),
    };
    bench::check(&cfg)?;
    let out = out_dir(a.out.as_deref(), "compare");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let n = bench::n_jobs(&cfg);
    let pb = progress(
        n as u64,
        "compare",
        &format!(
            "{n} simulations: {} topologies × {} data sets × {} scales × {} masks × {} batches × planner variants, on {} threads; each plans a batch (the dcp planner dominates) and simulates both passes",
            cfg.topologies.len(),
            cfg.datasets.len(),
            cfg.scales.len(),
            cfg.masks.len(),
            cfg.count,
            rayon::current_num_threads()
        ),
    );
    let t0 = Instant::now();
    let rows = bench::run(&cfg, &|| pb.inc(1))?;
    pb.finish_and_clear();
    let wall = t0.elapsed().as_secs_f64();
    let failed: Vec<&bench::Row> = rows.iter().filter(|r| r.error.is_some()).collect();
    for r in failed.iter().take(5) {
        eprintln!(
            "failed: {} {}x{} {} batch {} {} B{}: {}",
            r.topology,
            r.dataset,
            r.scale,
            r.mask,
            r.batch,
            r.planner,
            r.block_size,
            r.error.as_deref().unwrap_or("")
        );
    }
    let mut f = std::fs::File::create(out.join("rows.jsonl"))?;
    for r in &rows {
        writeln!(f, "{}", serde_json::to_string(r)?)?;
    }
    let summary = bench::summarize(&rows);
    let summary_json: Vec<serde_json::Value> = summary
        .iter()
        .map(|(k, m)| {
            json!({"topology": k.0, "dataset": k.1, "scale": k.2, "mask": k.3, "variants": m})
        })
        .collect();
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&summary_json)?,
    )?;
    let tables = bench::markdown_tables(&cfg, &summary);
    let figures = if a.no_plots {
        Vec::new()
    } else {
        figures(&cfg, &summary, &out)?
    };

    // Report.
    let date = sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_else(|| "unknown date".into());
    let command: Vec<String> = std::env::args().collect();
    let sims = rows.len().max(1) as f64;
    let plan_ms = rows.iter().map(|r| r.plan_ms).sum::<f64>() / sims;
    let sim_ms = rows.iter().map(|r| r.sim_ms).sum::<f64>() / sims;
    let mut md = String::new();
    md += "# Simulated attention microbenchmark: DCP vs static context parallelism\n\n";
    md += &format!("* Date: {date}\n* Machine: {}\n", machine());
    md += &format!("* Command: `{}`\n", command.join(" "));
    let rev = sh("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = sh("git", &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|s| !s.is_empty());
    md += &format!(
        "* Source: commit {rev}{}\n",
        if dirty {
            " (with uncommitted changes)"
        } else {
            ""
        }
    );
    md += &format!("* Hardware model: {}\n", profile.describe());
    for t in &cfg.topologies {
        md += &format!(
            "* Topology `{t}`: {}\n",
            Cluster::parse(t, &profile)?.describe()
        );
    }
    md += &format!(
        "* Model: {} query heads, {} KV heads, head dim {}, {:?}. Batches: ≤ {} tokens, {} per configuration (seed {}), the paper's batching rule.\n",
        model.heads, model.kv_heads, model.head_dim, model.dtype, cfg.budget, cfg.count, cfg.seed
    );
    md += &format!(
        "* {} simulations in {:.1} s wall ({} threads); mean planning {:.0} ms, mean simulation (both passes) {:.1} ms per plan; {} failed.\n",
        rows.len(),
        wall,
        rayon::current_num_threads(),
        plan_ms,
        sim_ms,
        failed.len()
    );
    md += "\nTimes are simulated (see docs/SIMULATOR.md for the model). Speed-up = mean time of the best static planner (min of those run among ring, zigzag, ulysses and usp) ÷ mean time of the candidate; for `dcp` the best of its block sizes per configuration, forward and backward chosen separately (the paper's protocol). Per-block-size results are in the times tables.\n";
    if !profile.calibrated {
        md += "\n**The profile is the uncalibrated default**: absolute milliseconds are estimates; read the ratios.\n";
    }
    if cfg.planners.iter().any(|p| p == "dcp") {
        md += "\n## Causal speed-ups next to the paper's\n\nThe paper's numbers (Fig. 12, AE re-run on A100s with 100 Gb/s per node) are DCP against min(ring, zigzag) from ring-flash-attn; its headline compares against stronger baselines (LoongTrain, TransformerEngine), which this project does not simulate.\n\n";
        md += &bench::paper_table(&cfg, &summary, "dcp");
    }
    md += "\n## Speed-ups and times\n";
    md += &tables;
    if !figures.is_empty() {
        md += "\n## Figures\n\n";
        for f in &figures {
            md += &format!("![{f}]({f}.png) ([svg]({f}.svg))\n\n");
        }
    }
    md += "\nRaw rows: `rows.jsonl` (one per batch × planner × block size, with breakdowns); means: `summary.json`.\n";
    std::fs::write(out.join("report.md"), &md)?;
    println!("{tables}");
    eprintln!(
        "{} simulations in {wall:.1} s (planning {:.1} s, simulation {:.1} s, summed over threads); report, tables and figures in {}",
        rows.len(),
        plan_ms * sims / 1e3,
        sim_ms * sims / 1e3,
        out.display()
    );
    if !failed.is_empty() {
        eprintln!("{} simulations failed (see rows.jsonl)", failed.len());
    }
    Ok(())
}

/// Speed-up and time figures per topology; returns the figure stems written.
fn figures(cfg: &CompareConfig, s: &bench::Summary, out: &std::path::Path) -> Result<Vec<String>> {
    let mut written = Vec::new();
    let scales: Vec<String> = cfg.scales.iter().map(|x| format!("{x}")).collect();
    for (ti, topo) in cfg.topologies.iter().enumerate() {
        let key = |ds: &str, sc: &str, mask: &str| {
            (
                topo.clone(),
                ds.to_string(),
                sc.to_string(),
                mask.to_string(),
            )
        };
        for cand in bench::candidates(cfg) {
            let mut panels = Vec::new();
            for ds in &cfg.datasets {
                for (pi, pass) in ["forward", "backward"].iter().enumerate() {
                    let series = scales
                        .iter()
                        .map(|sc| {
                            let v = cfg
                                .masks
                                .iter()
                                .map(|m| {
                                    s.get(&key(ds, sc, m))
                                        .and_then(|x| bench::speedup(x, &cand))
                                        .map(|(f, b)| if pi == 0 { f } else { b })
                                        .unwrap_or(f64::NAN)
                                })
                                .collect();
                            (format!("scale {sc}"), v)
                        })
                        .collect();
                    panels.push(Panel {
                        title: format!("{ds}, {pass}"),
                        y_label: format!("best static ÷ {cand}"),
                        groups: cfg.masks.clone(),
                        series,
                        reference: Some(1.0),
                    });
                }
            }
            let stem = format!("speedup_{cand}_{}", sanitize(topo, ti));
            write_figure(
                &out.join(&stem),
                &format!("{topo}: speed-up of {cand} over the best static CP (simulated)"),
                &panels,
                2,
            )
            .map_err(|e| anyhow::anyhow!("plotting {stem}: {e}"))?;
            written.push(stem);
        }
        // Mean times of every planner (best block size for swept ones), one figure per mask.
        let variants: Vec<String> = cfg.planners.clone();
        for mask in &cfg.masks {
            let mut panels = Vec::new();
            for ds in &cfg.datasets {
                for (pi, pass) in ["forward", "backward"].iter().enumerate() {
                    let series = variants
                        .iter()
                        .map(|v| {
                            let vals = scales
                                .iter()
                                .map(|sc| {
                                    s.get(&key(ds, sc, mask))
                                        .and_then(|m| m.get(v))
                                        .map(|x| if pi == 0 { x.fwd_ms } else { x.bwd_ms })
                                        .unwrap_or(f64::NAN)
                                })
                                .collect();
                            (v.clone(), vals)
                        })
                        .collect();
                    panels.push(Panel {
                        title: format!("{ds}, {pass}"),
                        y_label: "ms per batch".into(),
                        groups: scales.iter().map(|x| format!("scale {x}")).collect(),
                        series,
                        reference: None,
                    });
                }
            }
            let stem = format!("times_{}_{}", sanitize(topo, ti), sanitize(mask, 0));
            write_figure(
                &out.join(&stem),
                &format!("{topo}, {mask} mask: simulated attention time per batch"),
                &panels,
                2,
            )
            .map_err(|e| anyhow::anyhow!("plotting {stem}: {e}"))?;
            written.push(stem);
        }
    }
    Ok(written)
}

fn sanitize(s: &str, i: usize) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.len() > 40 {
        format!("t{i}")
    } else {
        t
    }
}
