//! Flags shared by the subcommands that take batches (`plan`, `simulate`, `compare`,
//! `bench-gpu`): where the batches come from, the mask, the model shape, the topology.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use dcp_core::cost::CostModel;
use dcp_core::datasets::{make_batches, parse_batch_file, Dataset, DEFAULT_BUDGET};
use dcp_core::mask::MaskSpec;
use dcp_core::planners::PlannerOptions;
use dcp_core::spec::{BatchSpec, DType, ModelShape, Topology};
use dcp_sim::{Hardware, Profile};

/// The model shape flags, shared by every command that takes a model (`plan`, `simulate`,
/// `compare`, `bench-gpu`, `kernel-bench`).
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Query heads (a multiple of --kv-heads).
    #[arg(long, default_value_t = 8)]
    pub heads: u32,
    /// KV heads (grouped-query attention: each serves heads / kv-heads query heads).
    #[arg(long, default_value_t = 2)]
    pub kv_heads: u32,
    /// Head dimension D (elements per head and token).
    #[arg(long, default_value_t = 128)]
    pub head_dim: u32,
    /// Element type: bf16, f16, f32.
    #[arg(long, default_value = "bf16")]
    pub dtype: String,
}

impl ModelArgs {
    /// The model shape, validated.
    pub fn shape(&self) -> Result<ModelShape> {
        let dtype = match self.dtype.as_str() {
            "bf16" => DType::Bf16,
            "f16" | "fp16" => DType::F16,
            "f32" | "fp32" => DType::F32,
            o => bail!("unknown dtype `{o}`: allowed are bf16, f16, f32"),
        };
        let m = ModelShape {
            heads: self.heads,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim,
            dtype,
        };
        m.validate()?;
        Ok(m)
    }
}

#[derive(Args, Debug, Clone)]
pub struct BatchArgs {
    /// Batch file: JSON {"batches": [[len, ...], ...]}.
    #[arg(long, conflicts_with = "dataset")]
    pub batches: Option<PathBuf>,
    /// Built-in synthetic dataset: longalign or ldc.
    #[arg(long, default_value = "longalign")]
    pub dataset: String,
    /// Length scale (multiplies every length; a positive number).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true, value_parser = positive_f64)]
    pub scale: f64,
    /// Number of batches to generate (at least 1).
    #[arg(long, default_value_t = 5, value_parser = positive_usize)]
    pub count: usize,
    /// Seed of the dataset generator.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Token budget per batch.
    #[arg(long, default_value_t = DEFAULT_BUDGET)]
    pub budget: u64,
    /// Mask: `causal`, `full`, `sliding-window:W`, `lambda[:S:W]`, `shared-question[:FRAC:N]`,
    /// `causal-blockwise[:B:K]`, `prefix-lm:P`.
    #[arg(long, default_value = "causal")]
    pub mask: String,
    #[command(flatten)]
    pub model: ModelArgs,
    /// KV heads per head block (default: all KV heads).
    #[arg(long)]
    pub head_block: Option<u32>,
    /// Topology NODESxGPUS, e.g. 4x8.
    #[arg(long, default_value = "4x8")]
    pub topology: String,
    /// Inter-node bandwidth of one NIC, GB/s.
    #[arg(long, value_parser = positive_f64)]
    pub inter_gbps: Option<f64>,
    /// Memory per device available to attention buffers, GiB (plans that need more fail).
    #[arg(long, default_value_t = 80.0, value_parser = positive_f64)]
    pub device_memory_gib: f64,
    /// NICs per node shared by its GPUs (0 = one NIC per GPU; for `simulate`, overrides the
    /// profile's value).
    #[arg(long)]
    pub nics_per_node: Option<u32>,
    /// Intra-node bandwidth per GPU, GB/s.
    #[arg(long, value_parser = positive_f64)]
    pub intra_gbps: Option<f64>,
    /// Calibrated profile (`dcp calibrate` JSON) for the dcp planner's cost model: its fitted
    /// kernel model and send/recv curve weigh dcp's candidates, its link rates set the
    /// topology's intra-node bandwidth and latency (explicit --intra-gbps wins).
    #[arg(long)]
    pub planner_profile: Option<PathBuf>,
    /// Cost model JSON for the dcp planner (fields of dcp_core::cost::CostModel; missing fields
    /// take defaults), e.g. the `<profile>.cost.json` that `dcp calibrate` writes, or hand-made.
    /// Not with --planner-profile. In `simulate`, the plans chosen under it are timed on
    /// --profile's hardware.
    #[arg(long)]
    pub cost_model: Option<PathBuf>,
    /// dcp's own plans fetch remote KV blocks again in the backward instead of reading them from
    /// the forward's saved slots (for A/B runs of `DcpOptions::save_kv`).
    #[arg(long)]
    pub no_saved_kv: bool,
    /// Largest batch accepted, in tokens (a guard against batches whose plans would not fit in
    /// memory or time; raise it deliberately).
    #[arg(long, default_value_t = MAX_BATCH_TOKENS, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_batch_tokens: u64,
}

/// Default of `--max-batch-tokens`: 2^24 = 16,777,216 tokens per batch (128 times the paper's
/// 131072-token budget).
pub const MAX_BATCH_TOKENS: u64 = 1 << 24;

/// Clap value parser: a positive finite number.
pub fn positive_f64(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        Ok(_) => Err(format!("must be a positive finite number (got {s})")),
        Err(_) => Err(format!("not a number: `{s}` (expected a positive number)")),
    }
}

/// Clap value parser: a non-negative finite number.
pub fn nonneg_f64(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v >= 0.0 && v.is_finite() => Ok(v),
        Ok(_) => Err(format!("must be a finite number ≥ 0 (got {s})")),
        Err(_) => Err(format!("not a number: `{s}` (expected a number ≥ 0)")),
    }
}

/// Clap value parser: an integer ≥ 1.
pub fn positive_usize(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(v) if v >= 1 => Ok(v),
        Ok(_) => Err("must be at least 1 (got 0)".into()),
        Err(_) => Err(format!(
            "not a whole number: `{s}` (expected an integer ≥ 1)"
        )),
    }
}

/// Help text of a planner option: `what`, then every accepted name from
/// [`dcp_core::planners::allowed_planners`] (so a new planner needs no CLI edit).
pub fn planner_help(what: &str) -> String {
    format!(
        "{what}. Allowed: {}",
        dcp_core::planners::allowed_planners()
    )
}

/// Checks one planner name at the CLI edge.
pub fn check_planner(name: &str) -> Result<()> {
    if dcp_core::planners::is_planner(name) {
        Ok(())
    } else {
        bail!(
            "unknown planner `{name}`: allowed are {}",
            dcp_core::planners::allowed_planners()
        )
    }
}

/// A comma-separated planner list, each checked.
pub fn planner_list(s: &str) -> Result<Vec<String>> {
    let v: Vec<String> = s
        .split(',')
        .map(|x| x.trim())
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect();
    if v.is_empty() {
        bail!(
            "the planner list `{s}` is empty: allowed are {}",
            dcp_core::planners::allowed_planners()
        );
    }
    for p in &v {
        check_planner(p)?;
    }
    Ok(v)
}

impl BatchArgs {
    /// The batches' lengths, from the batch file or the dataset, each batch checked against
    /// `--max-batch-tokens`.
    pub fn lengths(&self) -> Result<Vec<Vec<u32>>> {
        let b = self.lengths_unchecked()?;
        check_batch_sizes(&b, &self.source_name(), self.max_batch_tokens)?;
        Ok(b)
    }

    fn lengths_unchecked(&self) -> Result<Vec<Vec<u32>>> {
        if let Some(p) = &self.batches {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading batch file {}", p.display()))?;
            return parse_batch_file(&text).with_context(|| format!("{}", p.display()));
        }
        if !(self.scale > 0.0 && self.scale.is_finite()) {
            bail!("--scale must be a positive number (got {})", self.scale);
        }
        let ds = Dataset::parse(&self.dataset)?;
        let b = make_batches(ds, self.scale, self.count, self.budget, self.seed);
        if b.len() < self.count {
            bail!(
                "could only form {} of {} batches from {} at scale {}",
                b.len(),
                self.count,
                ds.name(),
                self.scale
            );
        }
        Ok(b)
    }

    pub fn source_name(&self) -> String {
        match &self.batches {
            Some(p) => p.display().to_string(),
            None => format!("{}x{}", self.dataset, self.scale),
        }
    }

    pub fn model(&self) -> Result<ModelShape> {
        self.model.shape()
    }

    pub fn topology(&self) -> Result<Topology> {
        let mut t = Topology::parse(&self.topology)?;
        if let Some(b) = self.inter_gbps {
            t.inter_gbps = b;
        }
        if self.device_memory_gib.is_nan() || self.device_memory_gib <= 0.0 {
            bail!("--device-memory-gib must be positive");
        }
        t.device_memory_bytes = (self.device_memory_gib * (1u64 << 30) as f64) as u64;
        if let Some(n) = self.nics_per_node {
            t.nics_per_node = n;
        }
        if let Some((_, p)) = self.planner_profile()? {
            apply_profile_links(&mut t, &p);
        }
        if let Some(b) = self.intra_gbps {
            t.intra_gbps = b;
        }
        Ok(t)
    }

    /// `--planner-profile`: the planner's cost model derived from the profile, and the profile.
    pub fn planner_profile(&self) -> Result<Option<(CostModel, Profile)>> {
        let Some(path) = &self.planner_profile else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --planner-profile {}", path.display()))?;
        let (p, _notes) = Profile::from_json(&text)
            .with_context(|| format!("--planner-profile {}", path.display()))?;
        Ok(Some((Hardware::new(p.clone()).planner_cost(), p)))
    }

    /// Planner options with the cost model of `--planner-profile` or `--cost-model` (if given)
    /// for `dcp`; both at once is an error.
    pub fn planner_options(&self, mut opts: PlannerOptions) -> Result<PlannerOptions> {
        if self.planner_profile.is_some() && self.cost_model.is_some() {
            bail!("give --planner-profile or --cost-model, not both");
        }
        if let Some((c, _)) = self.planner_profile()? {
            opts.dcp.cost = c;
        }
        if let Some(p) = &self.cost_model {
            opts.dcp.cost = load_cost_model(p)?;
        }
        if self.no_saved_kv {
            opts.dcp.save_kv = false;
        }
        Ok(opts)
    }

    pub fn mask(&self) -> Result<MaskSpec> {
        Ok(MaskSpec::parse(&self.mask)?)
    }

    /// The batch spec for one list of lengths.
    pub fn batch(&self, lens: &[u32], block_size: u32) -> Result<BatchSpec> {
        let model = self.model()?;
        let mut b = BatchSpec::uniform(lens, self.mask()?, model, block_size);
        b.head_block = self.head_block.unwrap_or(model.kv_heads);
        b.validate()?;
        Ok(b)
    }
}

/// The dcp planner's cost model from a JSON file (fields of [`CostModel`]; missing fields take
/// defaults), for `--cost-model`. Errors name the file.
pub fn load_cost_model(path: &std::path::Path) -> Result<CostModel> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading cost model {}", path.display()))?;
    CostModel::from_json(&text).map_err(|e| anyhow::anyhow!("cost model {}: {e}", path.display()))
}

/// Sets the topology's intra-node bandwidth and latency from a calibrated profile.
pub fn apply_profile_links(t: &mut Topology, p: &Profile) {
    t.intra_gbps = p.intra_gbps;
    t.intra_latency_us = p.intra_latency_us;
}

/// Refuses a batch over `limit` tokens, naming the batch, its longest sequence and the limit.
pub fn check_batch_sizes(batches: &[Vec<u32>], source: &str, limit: u64) -> Result<()> {
    for (bi, b) in batches.iter().enumerate() {
        let total: u64 = b.iter().map(|&l| l as u64).sum();
        if total > limit {
            let (si, longest) = b
                .iter()
                .enumerate()
                .max_by_key(|&(i, &l)| (l, std::cmp::Reverse(i)))
                .map(|(i, &l)| (i, l))
                .unwrap_or((0, 0));
            bail!(
                "{source}: batch {bi} has {total} tokens (longest: sequence {si}, {longest} tokens), over the limit of {limit} tokens per batch; split it or raise --max-batch-tokens"
            );
        }
    }
    Ok(())
}

/// A progress bar on stderr (hidden when not a terminal), after a line on stderr that says what
/// the command is about to do and what takes the time (printed whether or not stderr is a
/// terminal, so logs show it too).
pub fn progress(len: u64, msg: &str, what: &str) -> indicatif::ProgressBar {
    eprintln!("{what}");
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>12} [{bar:40}] {pos}/{len} {elapsed_precise}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb.set_message(msg.to_string());
    pb
}

/// The output folder of a report command: `--out` when given, else a fresh
/// `dcp-out/<command>-<UTC date>-<time>` (never the committed `bench/results/`).
pub fn out_dir(out: Option<&std::path::Path>, command: &str) -> PathBuf {
    if let Some(o) = out {
        return o.to_path_buf();
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let base = PathBuf::from("dcp-out").join(format!("{command}-{}", utc_stamp(secs)));
    let mut p = base.clone();
    let mut n = 2;
    while p.exists() {
        p = PathBuf::from(format!("{}-{n}", base.display()));
        n += 1;
    }
    p
}

/// `YYYYMMDD-HHMMSS` (UTC) of a Unix time, without a date library (days to civil date after
/// H. Hinnant's algorithm).
pub fn utc_stamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        // 2026-11-28 05:31:38 UTC
        assert_eq!(utc_stamp(1_795_843_898), "20261128-053138");
        // a leap day
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
    }

    #[test]
    fn value_parsers() {
        assert!(positive_f64("-1").is_err());
        assert!(positive_f64("nan").is_err());
        assert!(positive_f64("inf").is_err());
        assert_eq!(positive_f64("0.5"), Ok(0.5));
        assert!(positive_usize("0").is_err());
        assert!(nonneg_f64("-0.1").is_err());
        assert!(check_planner("dcp-only").is_ok());
        let e = check_planner("foo").unwrap_err().to_string();
        assert!(
            e.contains("`foo`") && e.contains("ring, zigzag, local, dcp"),
            "{e}"
        );
    }

    #[test]
    fn batch_guard_names_batch_and_limit() {
        let e = check_batch_sizes(&[vec![5, 5], vec![3, 40]], "f.json", 20)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("batch 1") && e.contains("sequence 1") && e.contains("20"),
            "{e}"
        );
        assert!(check_batch_sizes(&[vec![10, 10]], "f.json", 20).is_ok());
    }
}
