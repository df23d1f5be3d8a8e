//! `dcp partition FILE.hgr`: our partitioner on any hMETIS instance, one JSON object out.
//!
//! When the balance constraint cannot be met, the error says which weight dimension is at fault,
//! why (typically vertices too heavy to spread within the allowed imbalance, as in the data
//! blocks of a `dcp plan --dump-hgr` instance), and which epsilon for that dimension works.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use hypergraph::{Hypergraph, PartitionConfig, Preset};
use serde_json::json;

#[derive(Args, Debug)]
pub struct PartitionArgs {
    /// hMETIS file (fmt 1/10/11; a 4th header field D gives D weights per vertex).
    pub file: PathBuf,
    /// Number of parts k (at least 1).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub parts: u32,
    /// Allowed imbalance per weight dimension (max part load ≤ (1 + ε)·⌈total / k⌉): one value
    /// for every dimension or one per dimension, comma-separated (e.g. 0.08,0.15).
    #[arg(long, default_value = "0.03")]
    pub epsilon: String,
    /// Explicit per-part capacities instead of --epsilon: a JSON file with
    /// {"capacities": [[dim0, dim1, ...] per part]}, e.g. the batchN.json that
    /// `dcp plan --dump-hgr` writes next to batchN.hgr (the planner's own limits).
    #[arg(long, conflicts_with = "epsilon")]
    pub capacities: Option<PathBuf>,
    /// Seed of the partitioner (results are a pure function of file, options and seed).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of vertex weight dimensions in the file.
    #[arg(long)]
    pub weights_dims: Option<usize>,
    /// Effort: fast, default, quality.
    #[arg(long, default_value = "default")]
    pub preset: String,
}

fn parse_epsilons(s: &str) -> Result<Vec<f64>> {
    let v: Vec<f64> = s
        .split(',')
        .map(|x| crate::common::nonneg_f64(x).map_err(|e| anyhow::anyhow!("--epsilon `{s}`: {e}")))
        .collect::<Result<_>>()?;
    Ok(v)
}

fn read_capacities(path: &Path) -> Result<Vec<Vec<u64>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading capacities file {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("capacities file {}", path.display()))?;
    serde_json::from_value(v["capacities"].clone()).with_context(|| {
        format!(
            "capacities file {}: expected {{\"capacities\": [[u64, ...], ...]}}",
            path.display()
        )
    })
}

pub fn partition(a: PartitionArgs) -> Result<()> {
    let preset = match a.preset.as_str() {
        "fast" => Preset::Fast,
        "default" => Preset::Default,
        "quality" => Preset::Quality,
        o => bail!("--preset must be fast, default or quality (got {o})"),
    };
    let name = a.file.display().to_string();
    // The partitioner's errors carry their cause in the message already: no cause chain.
    let hg = hypergraph::hmetis::read_hgr_file(&a.file, a.weights_dims)
        .map_err(|e| anyhow::anyhow!("reading hypergraph {name}: {e}"))?;
    let epsilon = parse_epsilons(&a.epsilon)?;
    let mut cfg = PartitionConfig::new(a.parts, 0.0)
        .with_seed(a.seed)
        .with_preset(preset);
    cfg.epsilon = epsilon.clone();
    if let Some(c) = &a.capacities {
        cfg.capacities = Some(read_capacities(c)?);
    }
    let t = Instant::now();
    let p = match hypergraph::partition(&hg, &cfg) {
        Ok(p) => p,
        Err(hypergraph::Error::Infeasible { dim, part, reason }) if a.capacities.is_none() => {
            bail!(
                "{name}: {}",
                explain_infeasible(&hg, &cfg, dim, part, &reason)
            )
        }
        Err(e) => bail!("partitioning {name}: {e}"),
    };
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let row = json!({
        "vertices": hg.num_vertices(), "nets": hg.num_nets(), "pins": hg.num_pins(),
        "k": a.parts, "epsilon": if epsilon.len() == 1 { json!(epsilon[0]) } else { json!(epsilon) }, "capacities": a.capacities.as_ref().map(|c| c.display().to_string()),
        "seed": a.seed, "km1": p.km1, "cut": p.cut, "loads": p.loads, "imbalance": p.imbalance, "ms": ms,
    });
    println!("{row}");
    Ok(())
}

/// Why dimension `dim` cannot be balanced under `cfg.epsilon`, and the smallest epsilon for it
/// (from a ladder of values, the other dimensions unchanged) with which the partitioner succeeds.
fn explain_infeasible(
    hg: &Hypergraph,
    cfg: &PartitionConfig,
    dim: usize,
    part: Option<u32>,
    reason: &str,
) -> String {
    let dims = hg.dims();
    let eps_of = |d: usize| {
        if cfg.epsilon.len() == 1 {
            cfg.epsilon[0]
        } else {
            cfg.epsilon[d]
        }
    };
    let mean = hg.total_weight()[dim].div_ceil(cfg.k as u64).max(1);
    let weights: Vec<u64> = (0..hg.num_vertices() as u32)
        .map(|v| hg.vertex_weight(v)[dim])
        .collect();
    let heaviest = weights.iter().copied().max().unwrap_or(0);
    let n_heaviest = weights.iter().filter(|&&w| w == heaviest).count() as u64;
    let ratio = heaviest as f64 / mean as f64;
    let at = part.map(|p| format!(" (part {p})")).unwrap_or_default();
    let mut msg = format!(
        "the balance constraint of weight dimension {dim} is infeasible at epsilon {}{at}: {reason}; its heaviest vertex weighs {heaviest}, {:.0} % of the mean part load {mean}, so whole vertices cannot be spread within {:.0} %",
        eps_of(dim),
        ratio * 100.0,
        eps_of(dim) * 100.0,
    );
    // Counting bound: the n_heaviest vertices of weight `heaviest` put ⌈n/k⌉ of them in some
    // part, so the capacity must be at least ⌈n/k⌉·heaviest.
    let per_part = n_heaviest.div_ceil(cfg.k as u64);
    let eps_min = (per_part * heaviest) as f64 / mean as f64 - 1.0;
    if eps_min > eps_of(dim) {
        msg += &format!(
            "; {n_heaviest} vertices weigh {heaviest}, so some part holds {per_part} of them and epsilon for dimension {dim} must be at least {eps_min:.3}"
        );
    }
    // Values to try: just above the bound, then a ladder.
    let mut ladder = vec![((eps_min + 0.005) * 100.0).ceil() / 100.0];
    ladder.extend([
        0.05, 0.08, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0,
    ]);
    ladder.retain(|&e| e > eps_of(dim));
    ladder.sort_by(f64::total_cmp);
    ladder.dedup();
    let found = ladder.iter().find(|&&e| {
        let mut c = cfg.clone();
        c.epsilon = (0..dims)
            .map(|d| if d == dim { e } else { eps_of(d) })
            .collect();
        hypergraph::partition(hg, &c).is_ok()
    });
    let eps_list = |e: f64| {
        (0..dims)
            .map(|d| format!("{}", if d == dim { e } else { eps_of(d) }))
            .collect::<Vec<_>>()
            .join(",")
    };
    match found {
        Some(&e) => msg += &format!(
            "; --epsilon {} partitions it (epsilon {e} for dimension {dim}, the smallest of the values tried)",
            eps_list(e)
        ),
        None => msg += &format!(
            "; no epsilon up to {} for dimension {dim} partitions it",
            ladder.last().copied().unwrap_or(eps_of(dim))
        ),
    }
    msg + "; for an instance from `dcp plan --dump-hgr`, --capacities batchN.json uses the planner's own limits"
}
