//! `dcp gpu-report`: turns the JSON lines of the 4-GPU attention matrix (`bench/gpu/x4_matrix.sh`:
//! `bench-gpu` records plus `meta` and `launch` records) into a markdown report with speed-up
//! plots: dcp over the best static plan, per data set, length scale and mask, forward and
//! backward, like the paper's figures.
//!
//! Protocol (the one `dcp compare` uses on the simulator): per cell (data set, scale, mask) the
//! mean time over the cell's batches that every variant ran; the best static plan is the static
//! planner (ring, zigzag, ulysses, usp) with the lowest mean; dcp takes its best block size; forward
//! and backward are chosen separately. Batches are identified through the batch file's labels.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use dcp_core::planners::dcp::local_is_balanced;
use dcp_sim::plot::{write_figure, Panel};
use serde_json::Value;

#[derive(Args, Debug)]
pub struct GpuReportArgs {
    /// JSON lines written by bench/gpu/x4_matrix.sh (bench-gpu, meta and launch records); give
    /// several (comma-separated or repeated) to join runs made with the same PER_CELL. Files
    /// whose name ends in `.gz` are gunzipped (recorded runs under bench/results/ are gzipped).
    #[arg(long, required = true, value_delimiter = ',')]
    pub input: Vec<PathBuf>,
    /// The batch file the matrix ran (with `labels`: data set, scale, index per batch).
    #[arg(long, default_value = "bench/gpu/x4_batches.json")]
    pub batches: PathBuf,
    /// Markdown report to write; plots go next to it (`<stem>-speedup-<dataset>.png/.svg`).
    #[arg(long, default_value = "bench/results/gpu-4x.md")]
    pub out: PathBuf,
    /// `dcp simulate --json` lines of the same batch file (one file per mask, comma-separated
    /// or repeated; `.gz` as for --input): adds the simulated-against-measured section.
    #[arg(long, value_delimiter = ',')]
    pub sim: Vec<PathBuf>,
}

/// Static context-parallel planners: the baselines dcp is compared with (the simulator's list).
pub use dcp_sim::bench::STATIC;
/// Columns of the time tables, in order (dcp last).
const COLUMNS: &[&str] = &["ring", "zigzag", "ulysses", "usp", "local"];

/// One timed plan run.
#[derive(Debug, Clone)]
struct Run {
    cell: Cell,
    batch: usize,
    planner: String,
    block: u32,
    fwd: f64,
    bwd: f64,
    check: Option<bool>,
    /// The candidate a `dcp` plan returned (`None`: its own placement).
    candidate: Option<String>,
    /// The plan's compute imbalance (max / mean device FLOPs), where recorded.
    imbalance: Option<f64>,
    /// For `local` runs whose record gives the world size: the token imbalance of whole
    /// sequences per device (what dcp checks before offering `local`).
    local_tokens: Option<f64>,
}

/// (data set order, data set, scale, mask order, mask).
type Cell = (usize, String, OrdF64, usize, String);

#[derive(Debug, Clone, Copy, PartialEq)]
struct OrdF64(f64);
impl Eq for OrdF64 {}
impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for OrdF64 {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}

/// Per batch: (fwd ms, bwd ms).
type Times = BTreeMap<usize, (f64, f64)>;

/// What one cell yields: mean times per variant and the speed-ups.
#[derive(Debug, Clone)]
struct CellResult {
    batches: usize,
    /// (planner, fwd ms, bwd ms) for static planners and local.
    means: BTreeMap<String, (f64, f64)>,
    /// dcp's best block size and mean time, forward and backward.
    dcp_fwd: Option<(u32, f64)>,
    dcp_bwd: Option<(u32, f64)>,
    best_static_fwd: Option<(String, f64)>,
    best_static_bwd: Option<(String, f64)>,
}

impl CellResult {
    fn speedup(&self) -> (f64, f64) {
        let s = |b: &Option<(String, f64)>, d: &Option<(u32, f64)>| match (b, d) {
            (Some((_, b)), Some((_, d))) if *d > 0.0 => b / d,
            _ => f64::NAN,
        };
        (
            s(&self.best_static_fwd, &self.dcp_fwd),
            s(&self.best_static_bwd, &self.dcp_bwd),
        )
    }
}

struct Parsed {
    runs: Vec<Run>,
    meta: Vec<Value>,
    launches: Vec<Value>,
    datasets: Vec<String>,
    masks: Vec<String>,
}

fn parse(input: &str, batch_file: &str) -> Result<Parsed> {
    let bf: Value = serde_json::from_str(batch_file).context("parsing the batch file")?;
    let lens = bf["batches"]
        .as_array()
        .context("batch file: no `batches` array")?;
    let labels = bf["labels"]
        .as_array()
        .context("batch file: no `labels` array (make it with the x4_batches example)")?;
    if labels.len() != lens.len() {
        bail!(
            "batch file: {} labels for {} batches",
            labels.len(),
            lens.len()
        );
    }
    let mut datasets: Vec<String> = Vec::new();
    for l in labels {
        let d = l["dataset"].as_str().context("label without `dataset`")?;
        if !datasets.iter().any(|x| x == d) {
            datasets.push(d.to_string());
        }
    }
    let mut masks: Vec<String> = Vec::new();
    let (mut runs, mut meta, mut launches) = (Vec::new(), Vec::new(), Vec::new());
    for (ln, line) in input.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value =
            serde_json::from_str(line).with_context(|| format!("input line {}", ln + 1))?;
        match v["kind"].as_str() {
            Some("meta") => meta.push(v),
            Some("launch") => launches.push(v),
            Some("bench") => {
                let at = || format!("input line {}", ln + 1);
                let bi = v["batch"].as_u64().with_context(at)? as usize;
                let Some(label) = labels.get(bi) else {
                    bail!("{}: batch {bi} is not in the batch file", at());
                };
                if v["lens"] != lens[bi] {
                    bail!(
                        "{}: the lengths of batch {bi} differ from the batch file's",
                        at()
                    );
                }
                let mask = v["mask"].as_str().with_context(at)?.to_string();
                if !masks.contains(&mask) {
                    masks.push(mask.clone());
                }
                let local_tokens = local_token_imbalance_of(&v, &mask);
                let ds = label["dataset"].as_str().unwrap_or_default().to_string();
                let cell = (
                    datasets.iter().position(|d| *d == ds).unwrap_or(0),
                    ds,
                    OrdF64(label["scale"].as_f64().with_context(at)?),
                    masks.iter().position(|m| *m == mask).unwrap_or(0),
                    mask,
                );
                runs.push(Run {
                    cell,
                    batch: bi,
                    planner: v["planner"].as_str().with_context(at)?.to_string(),
                    block: v["block_size"].as_u64().with_context(at)? as u32,
                    fwd: v["fwd_ms"].as_f64().with_context(at)?,
                    bwd: v["bwd_ms"].as_f64().with_context(at)?,
                    check: v["check"]["pass"].as_bool(),
                    candidate: v["candidate"].as_str().map(String::from),
                    imbalance: v["compute_imbalance"].as_f64(),
                    local_tokens,
                });
            }
            _ => {}
        }
    }
    if runs.is_empty() {
        bail!("no bench records in the input");
    }
    Ok(Parsed {
        runs,
        meta,
        launches,
        datasets,
        masks,
    })
}

/// The token imbalance of the `local` plan of a `local` bench record (its lengths, mask, block
/// size and world size), None for other records or when a field is missing.
fn local_token_imbalance_of(v: &serde_json::Value, mask: &str) -> Option<f64> {
    if v["planner"].as_str()? != "local" {
        return None;
    }
    let world = v["world"].as_u64()? as u32;
    let lens: Vec<u32> = v["lens"]
        .as_array()?
        .iter()
        .map(|x| x.as_u64().map(|l| l as u32))
        .collect::<Option<_>>()?;
    let block = v["block_size"].as_u64()? as u32;
    let mask = dcp_core::mask::MaskSpec::parse(mask).ok()?;
    let batch = dcp_core::spec::BatchSpec::uniform(&lens, mask, Default::default(), block);
    let imb = dcp_core::planners::dcp::local_token_imbalance(
        &batch,
        &dcp_core::spec::Topology::new(1, world.max(1)),
    );
    imb.is_finite().then_some(imb)
}

/// Variant name of a run: static planners and local by name, dcp (and dcp's own placement,
/// `dcp-only`) by block size.
fn variant(r: &Run) -> String {
    if r.planner == "dcp" || r.planner == DCP_ONLY {
        format!("{}-{}", r.planner, r.block)
    } else {
        r.planner.clone()
    }
}

/// The planner name of dcp's own placement (no candidate fallback).
const DCP_ONLY: &str = dcp_core::planners::DCP_ONLY;

/// Within this of the fastest measured candidate, dcp's choice counts as the fastest.
const CHOICE_TOLERANCE: f64 = 0.03;
/// dcp may be at most this much slower than the best static plan.
const STATIC_TOLERANCE: f64 = 0.05;

/// Per mask: is dcp's chosen candidate the measured fastest of its candidates (within 3 %),
/// and how much slower than the best static plan can it be. Times are forward + backward
/// (what the planner minimizes). Candidates of a (mask, batch, block): every static planner
/// and `local` (block-size free, at whatever block they ran; only where its compute imbalance
/// lets dcp offer it) and `dcp-only` at that block; batches without a `dcp-only` run are judged
/// against the static candidates alone.
fn choice_section(p: &Parsed) -> String {
    // (mask, batch) -> variant -> fwd + bwd.
    let mut t: BTreeMap<(String, usize), BTreeMap<String, f64>> = BTreeMap::new();
    let mut picks: BTreeMap<(String, usize, u32), String> = BTreeMap::new();
    let defaults = dcp_core::planners::dcp::DcpOptions::default();
    let (eps, mem_eps) = (defaults.comp_epsilon, defaults.mem_epsilon);
    for r in &p.runs {
        // `local` is a candidate of dcp only where it balances compute within the planner's
        // tolerance (`local_is_balanced`) and tokens within its home-data tolerance: an
        // unbalanced one is shown in the tables but not counted as a choice dcp missed.
        if r.planner == "local"
            && (r.imbalance.is_some_and(|i| !local_is_balanced(i, eps))
                || r.local_tokens.is_some_and(|t| t > 1.0 + mem_eps))
        {
            continue;
        }
        let key = (r.cell.4.clone(), r.batch);
        t.entry(key).or_default().insert(variant(r), r.fwd + r.bwd);
        if r.planner == "dcp" {
            picks.insert(
                (r.cell.4.clone(), r.batch, r.block),
                r.candidate
                    .clone()
                    .unwrap_or_else(|| "own placement".into()),
            );
        }
    }
    let mut md = String::from("## Does dcp pick what the GPUs measure?\n\n");
    let _ = writeln!(
        md,
        "Per batch and block size, forward + backward: dcp's plan against the measured fastest of its candidates \
         (ring, zigzag, ulysses, usp, local where it balances compute within the planner's tolerance (≤ 1.10), and its own placement `dcp-only` where it ran), a hit when within {:.0} %; \
         and dcp against the best static plan (ring, zigzag, ulysses, usp), which it should never trail by more than {:.0} %.\n",
        CHOICE_TOLERANCE * 100.0,
        STATIC_TOLERANCE * 100.0
    );
    md += "| mask | dcp runs | own placement measured | picks the fastest (±3 %) | worst pick vs fastest | dcp vs best static: worst | > 5 % slower | dcp's picks |\n|---|---|---|---|---|---|---|---|\n";
    let mut misses = Vec::new();
    for m in &p.masks {
        let (mut n, mut with_own, mut hits, mut worst_pick, mut worst_static, mut slow) =
            (0, 0, 0, 1.0f64, 0.0f64, 0);
        let mut hist: BTreeMap<String, usize> = BTreeMap::new();
        for ((mask, bi), vars) in t.iter().filter(|((mm, _), _)| mm == m) {
            let statics: Vec<f64> = STATIC
                .iter()
                .chain(["local"].iter())
                .filter_map(|s| vars.get(*s).copied())
                .collect();
            let best_static = STATIC
                .iter()
                .filter_map(|s| vars.get(*s).copied())
                .fold(f64::INFINITY, f64::min);
            for (v, &d) in vars
                .iter()
                .filter(|(v, _)| v.starts_with("dcp-") && !v.starts_with("dcp-only"))
            {
                let Ok(bs) = v["dcp-".len()..].parse::<u32>() else {
                    continue;
                };
                n += 1;
                let own = vars.get(&format!("{DCP_ONLY}-{bs}")).copied();
                with_own += usize::from(own.is_some());
                let fastest = statics
                    .iter()
                    .copied()
                    .chain(own)
                    .chain([d])
                    .fold(f64::INFINITY, f64::min);
                let ratio = d / fastest;
                worst_pick = worst_pick.max(ratio);
                if ratio <= 1.0 + CHOICE_TOLERANCE {
                    hits += 1;
                } else {
                    misses.push(format!(
                        "{mask} batch {bi} block {bs}: dcp picked {} at {d:.2} ms, the fastest candidate took {fastest:.2} ms ({:+.1} %)",
                        picks.get(&(mask.clone(), *bi, bs)).map_or("?", |s| s.as_str()),
                        (ratio - 1.0) * 100.0
                    ));
                }
                if best_static.is_finite() {
                    let r = d / best_static;
                    worst_static = worst_static.max(r);
                    slow += usize::from(r > 1.0 + STATIC_TOLERANCE);
                }
                if let Some(pk) = picks.get(&(mask.clone(), *bi, bs)) {
                    *hist.entry(pk.clone()).or_default() += 1;
                }
            }
        }
        if n == 0 {
            continue;
        }
        let picks: Vec<String> = hist.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(
            md,
            "| {m} | {n} | {with_own} | {hits} ({:.0} %) | {:+.1} % | {:.3}× | {slow} | {} |",
            100.0 * hits as f64 / n as f64,
            (worst_pick - 1.0) * 100.0,
            worst_static,
            picks.join(", ")
        );
    }
    if !misses.is_empty() {
        let _ = writeln!(md, "\nMisses ({}):\n", misses.len());
        for x in misses.iter().take(30) {
            let _ = writeln!(md, "* {x}");
        }
        if misses.len() > 30 {
            let _ = writeln!(md, "* … and {} more", misses.len() - 30);
        }
    }
    md.push('\n');
    md
}

/// One simulated row: (mask, batch, planner, block) -> (fwd, bwd).
type SimRows = BTreeMap<(String, usize, String, u32), (f64, f64)>;

fn parse_sim(text: &str) -> Result<SimRows> {
    let mut out = SimRows::new();
    for (ln, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value =
            serde_json::from_str(line).with_context(|| format!("simulation line {}", ln + 1))?;
        let at = || format!("simulation line {}", ln + 1);
        out.insert(
            (
                v["mask"].as_str().with_context(at)?.to_string(),
                v["batch"].as_u64().with_context(at)? as usize,
                v["planner"].as_str().with_context(at)?.to_string(),
                v["block_size"].as_u64().with_context(at)? as u32,
            ),
            (
                v["fwd_ms"].as_f64().with_context(at)?,
                v["bwd_ms"].as_f64().with_context(at)?,
            ),
        );
    }
    Ok(out)
}

/// Simulated against measured, row by row (mask, batch, planner, block; block-size-free
/// planners match at any block): mean |error| and the share within ±15 %, per mask and per
/// planner, forward and backward pooled, and the worst rows.
/// One matched row: (mask, planner, forward relative error, backward relative error, label).
type SimErr = (String, String, f64, f64, String);

fn sim_section(p: &Parsed, sim: &SimRows) -> String {
    let mut errs: Vec<SimErr> = Vec::new();
    for r in &p.runs {
        let free = dcp_sim::bench::BLOCK_SIZE_FREE.contains(&r.planner.as_str());
        let s = sim
            .get(&(r.cell.4.clone(), r.batch, r.planner.clone(), r.block))
            .or_else(|| {
                free.then(|| {
                    sim.iter()
                        .find(|(k, _)| k.0 == r.cell.4 && k.1 == r.batch && k.2 == r.planner)
                        .map(|(_, v)| v)
                })
                .flatten()
            });
        let Some(&(sf, sb)) = s else { continue };
        errs.push((
            r.cell.4.clone(),
            r.planner.clone(),
            sf / r.fwd - 1.0,
            sb / r.bwd - 1.0,
            format!(
                "{} ×{} {} batch {} {} block {}: fwd {:.2} ms measured, {:.2} simulated; bwd {:.2} / {:.2}",
                r.cell.1, r.cell.2 .0, r.cell.4, r.batch, r.planner, r.block, r.fwd, sf, r.bwd, sb
            ),
        ));
    }
    let mut md = String::from("## Simulator against the measured matrix\n\n");
    if errs.is_empty() {
        md += "No simulated row matched a measured one.\n\n";
        return md;
    }
    let stat = |v: &[&SimErr]| {
        let e: Vec<f64> = v.iter().flat_map(|x| [x.2.abs(), x.3.abs()]).collect();
        let mean = e.iter().sum::<f64>() / e.len().max(1) as f64;
        let within = e.iter().filter(|x| **x <= 0.15).count() as f64 / e.len().max(1) as f64;
        let bias = v.iter().flat_map(|x| [x.2, x.3]).sum::<f64>() / e.len().max(1) as f64;
        (v.len(), mean, within, bias)
    };
    let all: Vec<_> = errs.iter().collect();
    let (n, mean, within, bias) = stat(&all);
    let _ = writeln!(
        md,
        "`dcp simulate` with the calibrated profile on the same batches and plans (dcp planned with the same cost model), \
         {n} rows matched (forward and backward pooled): **mean |error| {:.1} %, {:.0} % within ±15 %** (mean signed error {:+.1} %; goal: ≤ 10 %, ≥ 90 %).\n",
        mean * 100.0,
        within * 100.0,
        bias * 100.0
    );
    md += "| group | rows | mean \\|error\\| | within ±15 % | mean signed error |\n|---|---|---|---|---|\n";
    let mut groups: Vec<(String, Vec<&SimErr>)> = Vec::new();
    for m in &p.masks {
        groups.push((
            format!("mask {m}"),
            errs.iter().filter(|e| &e.0 == m).collect(),
        ));
    }
    let mut planners: Vec<&String> = errs.iter().map(|e| &e.1).collect();
    planners.sort();
    planners.dedup();
    for pl in planners {
        groups.push((
            format!("planner {pl}"),
            errs.iter().filter(|e| &e.1 == pl).collect(),
        ));
    }
    for (g, v) in &groups {
        if v.is_empty() {
            continue;
        }
        let (n, mean, within, bias) = stat(v);
        let _ = writeln!(
            md,
            "| {g} | {n} | {:.1} % | {:.0} % | {:+.1} % |",
            mean * 100.0,
            within * 100.0,
            bias * 100.0
        );
    }
    let mut worst: Vec<_> = errs.iter().collect();
    worst.sort_by(|a, b| {
        b.2.abs()
            .max(b.3.abs())
            .total_cmp(&a.2.abs().max(a.3.abs()))
    });
    md += "\nWorst rows:\n\n";
    for e in worst.iter().take(10) {
        let _ = writeln!(
            md,
            "* {} ({:+.0} % / {:+.0} %)",
            e.4,
            e.2 * 100.0,
            e.3 * 100.0
        );
    }
    md.push('\n');
    md
}

fn summarize(runs: &[Run]) -> BTreeMap<Cell, CellResult> {
    let mut cells: BTreeMap<Cell, BTreeMap<String, Times>> = BTreeMap::new();
    for r in runs {
        cells
            .entry(r.cell.clone())
            .or_default()
            .entry(variant(r))
            .or_default()
            .insert(r.batch, (r.fwd, r.bwd));
    }
    let mut out = BTreeMap::new();
    for (cell, vars) in cells {
        // Batches every variant of the cell ran.
        let mut common: Vec<usize> = vars.values().next().unwrap().keys().copied().collect();
        common.retain(|b| vars.values().all(|v| v.contains_key(b)));
        let mean = |v: &Times| {
            let n = common.len().max(1) as f64;
            let f = common.iter().map(|b| v[b].0).sum::<f64>() / n;
            let b = common.iter().map(|b| v[b].1).sum::<f64>() / n;
            (f, b)
        };
        let means: BTreeMap<String, (f64, f64)> = vars
            .iter()
            .filter(|(k, _)| !k.starts_with("dcp-"))
            .map(|(k, v)| (k.clone(), mean(v)))
            .collect();
        let dcp: Vec<(u32, (f64, f64))> = vars
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("dcp-")?.parse().ok()?, mean(v))))
            .collect();
        let best = |it: Vec<(f64, u32)>| {
            it.into_iter()
                .filter(|x| x.0.is_finite())
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
        };
        let dcp_fwd = best(dcp.iter().map(|(b, t)| (t.0, *b)).collect()).map(|(t, b)| (b, t));
        let dcp_bwd = best(dcp.iter().map(|(b, t)| (t.1, *b)).collect()).map(|(t, b)| (b, t));
        let best_static = |f: fn(&(f64, f64)) -> f64| {
            STATIC
                .iter()
                .filter_map(|s| means.get(*s).map(|m| (s.to_string(), f(m))))
                .filter(|x| x.1.is_finite())
                .min_by(|a, b| a.1.total_cmp(&b.1))
        };
        out.insert(
            cell,
            CellResult {
                batches: common.len(),
                best_static_fwd: best_static(|m| m.0),
                best_static_bwd: best_static(|m| m.1),
                means,
                dcp_fwd,
                dcp_bwd,
            },
        );
    }
    out
}

fn geomean(v: &[f64]) -> f64 {
    let ok: Vec<f64> = v
        .iter()
        .copied()
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    if ok.is_empty() {
        return f64::NAN;
    }
    (ok.iter().map(|x| x.ln()).sum::<f64>() / ok.len() as f64).exp()
}

fn fmt_ms(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}")
    } else {
        "–".into()
    }
}

/// Builds the report text and the plot panels (one figure per data set: forward, backward).
fn render(
    p: &Parsed,
    plot_names: &[String],
    sim: Option<&SimRows>,
) -> (String, Vec<(String, Vec<Panel>)>) {
    let res = summarize(&p.runs);
    let mut md = String::new();
    md += "# Attention on 4 GPUs: dcp against static context parallelism\n\n";
    for m in &p.meta {
        let _ = writeln!(
            md,
            "Run {} on {} (warmup {}, repeats {}; times are the median of the repeats of the max over ranks).",
            m["date"].as_str().unwrap_or("?"),
            m["gpus"].as_str().unwrap_or("?"),
            m["warmup"],
            m["repeats"]
        );
    }
    let wall: f64 = p.launches.iter().filter_map(|l| l["wall_s"].as_f64()).sum();
    let _ = writeln!(
        md,
        "\nCommand: `bash bench/gpu/x4_matrix.sh` ({} launches, {:.0} s wall in all). Report: `dcp gpu-report`. \
         Per cell (data set, scale, mask): mean over the batches every variant ran; best static = the \
         static planner ({}) with the lowest mean; dcp = its best block size; forward and backward \
         chosen separately.\n",
        p.launches.len(),
        wall,
        STATIC.join(", ")
    );
    if !p.launches.is_empty() {
        md += "| launch | mask | status | wall s |\n|---|---|---|---|\n";
        for l in &p.launches {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.1} |",
                l["name"].as_str().unwrap_or("?"),
                l["mask"].as_str().unwrap_or("?"),
                l["status"],
                l["wall_s"].as_f64().unwrap_or(f64::NAN)
            );
        }
        md += "\n";
    }
    // Checks.
    let failed: Vec<&Run> = p.runs.iter().filter(|r| r.check != Some(true)).collect();
    md += "## Checks\n\n";
    if failed.is_empty() {
        let _ = writeln!(
            md,
            "All {} plan runs passed their output check.\n",
            p.runs.len()
        );
    } else {
        let _ = writeln!(
            md,
            "**{} of {} plan runs failed or lacked their output check:**\n",
            failed.len(),
            p.runs.len()
        );
        for r in failed {
            let _ = writeln!(
                md,
                "* {} ×{} {} batch {} {} block {}: {}",
                r.cell.1,
                r.cell.2 .0,
                r.cell.4,
                r.batch,
                r.planner,
                r.block,
                if r.check == Some(false) {
                    "FAILED"
                } else {
                    "not checked"
                }
            );
        }
        md += "\n";
    }
    // Speed-up summary.
    md += "## Speed-up of dcp over the best static plan\n\n| mask | fwd geomean | fwd min–max | bwd geomean | bwd min–max |\n|---|---|---|---|---|\n";
    for (mi, m) in p.masks.iter().enumerate() {
        let sp: Vec<(f64, f64)> = res
            .iter()
            .filter(|(c, _)| c.3 == mi)
            .map(|(_, r)| r.speedup())
            .collect();
        let range = |v: Vec<f64>| {
            let ok: Vec<f64> = v.into_iter().filter(|x| x.is_finite()).collect();
            let lo = ok.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = ok.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (geomean(&ok), lo, hi)
        };
        let (fg, fl, fh) = range(sp.iter().map(|x| x.0).collect());
        let (bg, bl, bh) = range(sp.iter().map(|x| x.1).collect());
        let _ = writeln!(
            md,
            "| {m} | {fg:.2}× | {fl:.2}–{fh:.2} | {bg:.2}× | {bl:.2}–{bh:.2} |"
        );
    }
    md += "\n";
    for name in plot_names {
        let _ = writeln!(md, "![{name}]({name}.png)\n");
    }
    md += &choice_section(p);
    if let Some(sim) = sim {
        md += &sim_section(p, sim);
    }
    // Time tables.
    for (pass, title) in [(0, "Forward"), (1, "Backward")] {
        let _ = writeln!(md, "## {title} times (ms)\n");
        md += "| data set | scale | mask | batches |";
        for c in COLUMNS {
            let _ = write!(md, " {c} |");
        }
        md += " dcp (block) | best static | speed-up |\n|---|---|---|---|";
        md += &"---|".repeat(COLUMNS.len() + 3);
        md += "\n";
        for (c, r) in &res {
            let _ = write!(md, "| {} | {} | {} | {} |", c.1, c.2 .0, c.4, r.batches);
            for col in COLUMNS {
                let t = r
                    .means
                    .get(*col)
                    .map_or(f64::NAN, |m| if pass == 0 { m.0 } else { m.1 });
                let _ = write!(md, " {} |", fmt_ms(t));
            }
            let (d, b) = if pass == 0 {
                (&r.dcp_fwd, &r.best_static_fwd)
            } else {
                (&r.dcp_bwd, &r.best_static_bwd)
            };
            let sp = if pass == 0 {
                r.speedup().0
            } else {
                r.speedup().1
            };
            let _ = writeln!(
                md,
                " {} | {} | {:.2}× |",
                d.map_or("–".into(), |(bs, t)| format!("{} ({bs})", fmt_ms(t))),
                b.as_ref()
                    .map_or("–".into(), |(n, t)| format!("{} ({n})", fmt_ms(*t))),
                sp
            );
        }
        md += "\n";
    }
    // Plots: per data set, groups = scales, series = masks.
    let mut figs = Vec::new();
    for (di, ds) in p.datasets.iter().enumerate() {
        let mut scales: Vec<OrdF64> = res.keys().filter(|c| c.0 == di).map(|c| c.2).collect();
        scales.sort();
        scales.dedup();
        if scales.is_empty() {
            continue;
        }
        let panel = |pass: usize| Panel {
            title: format!(
                "{ds}: dcp over best static, {}",
                if pass == 0 { "forward" } else { "backward" }
            ),
            y_label: "speed-up (×)".into(),
            groups: scales.iter().map(|s| format!("×{}", s.0)).collect(),
            series: p
                .masks
                .iter()
                .enumerate()
                .map(|(mi, m)| {
                    let v = scales
                        .iter()
                        .map(|s| {
                            res.iter()
                                .find(|(c, _)| c.0 == di && c.2 == *s && c.3 == mi)
                                .map_or(f64::NAN, |(_, r)| {
                                    let sp = r.speedup();
                                    if pass == 0 {
                                        sp.0
                                    } else {
                                        sp.1
                                    }
                                })
                        })
                        .collect();
                    (m.clone(), v)
                })
                .collect(),
            reference: Some(1.0),
        };
        figs.push((ds.clone(), vec![panel(0), panel(1)]));
    }
    (md, figs)
}

/// Writes the report and its figures; returns the report text.
fn report(input: &str, batch_file: &str, out: &Path, sim: Option<&str>) -> Result<String> {
    let p = parse(input, batch_file)?;
    let sim = sim.map(parse_sim).transpose()?;
    let stem = out
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("gpu-4x")
        .to_string();
    let names: Vec<String> = p
        .datasets
        .iter()
        .map(|d| format!("{stem}-speedup-{d}"))
        .collect();
    let (md, figs) = render(&p, &names, sim.as_ref());
    let dir = out.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (ds, panels) in &figs {
        let fig = dir.join(format!("{stem}-speedup-{ds}"));
        write_figure(
            &fig,
            &format!("{ds}: dcp over the best static plan"),
            panels,
            2,
        )
        .map_err(|e| anyhow::anyhow!("plot {}: {e}", fig.display()))?;
    }
    std::fs::write(out, &md).with_context(|| format!("writing {}", out.display()))?;
    Ok(md)
}

/// The text of a record, gunzipped where its name ends in `.gz` (bench/compact_records.py gzips
/// the JSON lines under bench/results/).
fn read_record(p: &Path) -> Result<String> {
    let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    if p.extension().is_some_and(|e| e == "gz") {
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::MultiGzDecoder::new(&bytes[..]),
            &mut text,
        )
        .with_context(|| format!("gunzipping {}", p.display()))?;
        return Ok(text);
    }
    String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", p.display()))
}

pub fn gpu_report(a: GpuReportArgs) -> Result<()> {
    let mut input = String::new();
    for p in &a.input {
        input += &read_record(p)?;
        input.push('\n');
    }
    let batches = std::fs::read_to_string(&a.batches)
        .with_context(|| format!("reading {}", a.batches.display()))?;
    let mut sim = String::new();
    for p in &a.sim {
        sim += &read_record(p)?;
        sim.push('\n');
    }
    let md = report(
        &input,
        &batches,
        &a.out,
        (!a.sim.is_empty()).then_some(sim.as_str()),
    )?;
    println!("{md}");
    eprintln!("wrote {}", a.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    //! FIXTURE ONLY: the records below are made up by hand to test the arithmetic and the output
    //! of the report; they are not measurements and are never written under bench/results.
    use super::*;

    const BATCHES: &str = r#"{"batches": [[100, 20], [50, 50, 20], [300]],
        "labels": [{"dataset": "longalign", "scale": 1, "index": 0},
                   {"dataset": "longalign", "scale": 1, "index": 1},
                   {"dataset": "ldc", "scale": 0.5, "index": 0}]}"#;

    fn rec(batch: usize, mask: &str, planner: &str, bs: u32, f: f64, b: f64, pass: bool) -> String {
        let lens = [vec![100, 20], vec![50, 50, 20], vec![300]][batch].clone();
        serde_json::json!({"kind": "bench", "batch": batch, "lens": lens, "mask": mask,
            "planner": planner, "block_size": bs, "fwd_ms": f, "bwd_ms": b,
            "check": {"pass": pass}})
        .to_string()
    }

    fn fixture() -> String {
        let mut v = vec![
            r#"{"kind": "meta", "date": "FIXTURE", "gpus": "4 FIXTURE GPU", "warmup": 1, "repeats": 3}"#.to_string(),
            r#"{"kind": "launch", "name": "a", "mask": "causal", "status": 0, "wall_s": 12.5}"#.to_string(),
        ];
        for b in [0, 1] {
            // Static means over batches 0, 1: ring 10/30, zigzag 8/20, ulysses 6/24, usp 7/22.
            for (p, f, bw) in [
                ("ring", 10.0, 30.0),
                ("zigzag", 8.0, 20.0),
                ("ulysses", 6.0, 24.0),
                ("usp", 7.0, 22.0),
                ("local", 5.0, 15.0),
            ] {
                let d = if b == 0 { -1.0 } else { 1.0 };
                v.push(rec(b, "causal", p, 1024, f + d, bw + d, true));
            }
            // dcp: block 1024 fwd 4 / bwd 12; block 2048 fwd 3 / bwd 16.
            v.push(rec(b, "causal", "dcp", 1024, 4.0, 12.0, true));
            v.push(rec(b, "causal", "dcp", 2048, 3.0, 16.0, b == 0));
        }
        v.push(rec(2, "lambda", "zigzag", 1024, 2.0, 4.0, true));
        v.push(rec(2, "lambda", "dcp", 1024, 1.0, 1.0, true));
        v.join("\n")
    }

    #[test]
    fn speedups_follow_the_protocol() {
        let p = parse(&fixture(), BATCHES).unwrap();
        assert_eq!(p.datasets, ["longalign", "ldc"]);
        assert_eq!(p.masks, ["causal", "lambda"]);
        let res = summarize(&p.runs);
        let (_, causal) = res.iter().find(|(c, _)| c.4 == "causal").unwrap();
        assert_eq!(causal.batches, 2);
        // Best static: ulysses forward (6), zigzag backward (20); dcp: 2048 fwd (3), 1024 bwd (12).
        assert_eq!(causal.best_static_fwd, Some(("ulysses".into(), 6.0)));
        assert_eq!(causal.best_static_bwd, Some(("zigzag".into(), 20.0)));
        assert_eq!(causal.dcp_fwd, Some((2048, 3.0)));
        assert_eq!(causal.dcp_bwd, Some((1024, 12.0)));
        let (f, b) = causal.speedup();
        assert!((f - 2.0).abs() < 1e-12 && (b - 20.0 / 12.0).abs() < 1e-12);
        // Local is shown but never the best static plan (it is one of dcp's candidates).
        assert_eq!(causal.means["local"], (5.0, 15.0));
        let (_, lambda) = res.iter().find(|(c, _)| c.4 == "lambda").unwrap();
        assert_eq!(lambda.speedup(), (2.0, 4.0));
    }

    #[test]
    fn report_lists_failures_and_draws_plots() {
        let dir = std::env::temp_dir().join(format!("dcp-gpu-report-{}", std::process::id()));
        let out = dir.join("gpu-4x.md");
        let md = report(&fixture(), BATCHES, &out, None).unwrap();
        assert!(md.contains("**1 of 16 plan runs failed"), "{md}");
        assert!(
            md.contains("longalign ×1 causal batch 1 dcp block 2048: FAILED"),
            "{md}"
        );
        assert!(
            md.contains("| causal | 2.00× | 2.00–2.00 | 1.67× | 1.67–1.67 |"),
            "{md}"
        );
        assert!(
            md.contains("| 3.00 (2048) | 6.00 (ulysses) | 2.00× |"),
            "{md}"
        );
        assert!(md.contains("![gpu-4x-speedup-ldc](gpu-4x-speedup-ldc.png)"));
        assert!(md.contains("12 s wall in all") || md.contains("13 s wall in all"));
        for ds in ["longalign", "ldc"] {
            let png = dir.join(format!("gpu-4x-speedup-{ds}.png"));
            assert!(std::fs::metadata(&png).unwrap().len() > 1000);
        }
        assert_eq!(std::fs::read_to_string(&out).unwrap(), md);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn records_read_alike_plain_or_gzipped() {
        use std::io::Write as _;
        let dir = std::env::temp_dir().join(format!("dcp-gpu-report-gz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = fixture();
        let plain = dir.join("m.jsonl");
        std::fs::write(&plain, &text).unwrap();
        let gz = dir.join("m.jsonl.gz");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(text.as_bytes()).unwrap();
        std::fs::write(&gz, e.finish().unwrap()).unwrap();
        assert_eq!(read_record(&plain).unwrap(), text);
        assert_eq!(read_record(&gz).unwrap(), text);
        // A .gz that is not gzip, and a missing file: errors naming the file.
        let bad = dir.join("bad.jsonl.gz");
        std::fs::write(&bad, &text).unwrap();
        let err = format!("{:#}", read_record(&bad).unwrap_err());
        assert!(
            err.contains("gunzipping") && err.contains("bad.jsonl.gz"),
            "{err}"
        );
        let err = format!("{:#}", read_record(&dir.join("none.jsonl")).unwrap_err());
        assert!(err.contains("none.jsonl"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn choice_and_simulator_sections() {
        let p = parse(&fixture(), BATCHES).unwrap();
        let md = choice_section(&p);
        // Causal: dcp@1024 (16 ms) is the fastest in both batches; dcp@2048 (19 ms) trails
        // local (18 ms) in batch 0 by 5.6 % and wins batch 1 (local 22 ms).
        assert!(
            md.contains("| causal | 4 | 0 | 3 (75 %) | +5.6 % | 0.731× | 0 |"),
            "{md}"
        );
        assert!(md.contains("causal batch 0 block 2048: dcp picked"), "{md}");
        assert!(md.contains("| lambda | 1 | 0 | 1 (100 %)"), "{md}");
        let sim = r#"{"mask": "causal", "batch": 0, "planner": "zigzag", "block_size": 1024, "fwd_ms": 7.7, "bwd_ms": 19.0}
{"mask": "causal", "batch": 0, "planner": "dcp", "block_size": 1024, "fwd_ms": 4.0, "bwd_ms": 18.0}"#;
        let md = sim_section(&p, &parse_sim(sim).unwrap());
        // Errors +10 %, 0, 0, +50 %: mean 15 %, 3 of 4 within ±15 %.
        assert!(
            md.contains("2 rows matched (forward and backward pooled): **mean |error| 15.0 %, 75 % within ±15 %**"),
            "{md}"
        );
        assert!(
            md.contains("| planner dcp | 1 | 25.0 % | 50 % | +25.0 % |"),
            "{md}"
        );
        assert!(parse_sim("{\"mask\": 1}").is_err());
    }

    /// `local` counts as a candidate dcp missed only where dcp may offer it (compute imbalance
    /// within the planner's tolerance, and tokens within its home-data tolerance).
    #[test]
    fn unbalanced_local_is_no_missed_candidate() {
        let with_local = |imb: f64| {
            let mut local: serde_json::Value =
                serde_json::from_str(&rec(2, "lambda", "local", 1024, 2.0, 6.0, true)).unwrap();
            local["compute_imbalance"] = serde_json::json!(imb);
            [
                rec(2, "lambda", "zigzag", 1024, 5.0, 9.0, true),
                rec(2, "lambda", "dcp", 1024, 3.0, 7.0, true),
                local.to_string(),
            ]
            .join("\n")
        };
        let md = choice_section(&parse(&with_local(1.05), BATCHES).unwrap());
        assert!(md.contains("| lambda | 1 | 0 | 0 (0 %) | +25.0 %"), "{md}");
        let md = choice_section(&parse(&with_local(1.40), BATCHES).unwrap());
        assert!(md.contains("| lambda | 1 | 0 | 1 (100 %) | +0.0 %"), "{md}");
        // Balanced compute but not tokens: batch 2's [50, 50, 20] on 2 GPUs puts 70 tokens on
        // one device (1.17× the mean), outside the 15 % dcp allows; with no world recorded the
        // token rule cannot apply.
        let with_world = |world: Option<u32>| {
            let mut v: Vec<serde_json::Value> = with_local(1.05)
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if let Some(w) = world {
                v.iter_mut().for_each(|x| x["world"] = serde_json::json!(w));
            }
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        };
        let md = choice_section(&parse(&with_world(Some(2)), BATCHES).unwrap());
        assert!(md.contains("| lambda | 1 | 0 | 1 (100 %) | +0.0 %"), "{md}");
        let md = choice_section(&parse(&with_world(None), BATCHES).unwrap());
        assert!(md.contains("| lambda | 1 | 0 | 0 (0 %) | +25.0 %"), "{md}");
    }

    #[test]
    fn mismatched_lengths_are_refused() {
        let bad = fixture().replace(r#""lens":[300]"#, r#""lens":[301]"#);
        let e = parse(&bad, BATCHES).err().unwrap().to_string();
        assert!(e.contains("lengths of batch 2 differ"), "{e}");
        let e = parse("", BATCHES).err().unwrap().to_string();
        assert!(e.contains("no bench records"), "{e}");
    }
}
