//! Flags shared by the subcommands that take batches (`plan`, `simulate`, `compare`,
//! `bench-gpu`): where the batches come from, the mask, the model shape, the topology.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use dcp_core::datasets::{make_batches, parse_batch_file, Dataset, DEFAULT_BUDGET};
use dcp_core::mask::MaskSpec;
use dcp_core::spec::{BatchSpec, DType, ModelShape, Topology};

#[derive(Args, Debug, Clone)]
pub struct BatchArgs {
    /// Batch file: JSON {"batches": [[len, ...], ...]}.
    #[arg(long, conflicts_with = "dataset")]
    pub batches: Option<PathBuf>,
    /// Built-in synthetic dataset: longalign or ldc.
    #[arg(long, default_value = "longalign")]
    pub dataset: String,
    /// Length scale (multiplies every length).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Number of batches to generate.
    #[arg(long, default_value_t = 5)]
    pub count: usize,
    /// Seed of the dataset generator.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Token budget per batch.
    #[arg(long, default_value_t = DEFAULT_BUDGET)]
    pub budget: u64,
    /// Mask: causal, full, sliding-window:W, lambda[:S:W], shared-question[:FRAC:N],
    /// causal-blockwise[:B:K], prefix-lm:P.
    #[arg(long, default_value = "causal")]
    pub mask: String,
    /// Query heads.
    #[arg(long, default_value_t = 8)]
    pub heads: u32,
    /// KV heads.
    #[arg(long, default_value_t = 2)]
    pub kv_heads: u32,
    #[arg(long, default_value_t = 128)]
    pub head_dim: u32,
    /// Element type: bf16, f16, f32.
    #[arg(long, default_value = "bf16")]
    pub dtype: String,
    /// KV heads per head block (default: all KV heads).
    #[arg(long)]
    pub head_block: Option<u32>,
    /// Topology NODESxGPUS, e.g. 4x8.
    #[arg(long, default_value = "4x8")]
    pub topology: String,
    /// Inter-node bandwidth of one NIC, GB/s.
    #[arg(long)]
    pub inter_gbps: Option<f64>,
    /// Memory per device available to attention buffers, GiB (plans that need more fail).
    #[arg(long, default_value_t = 80.0)]
    pub device_memory_gib: f64,
    /// NICs per node shared by its GPUs (0 = one NIC per GPU).
    #[arg(long)]
    pub nics_per_node: Option<u32>,
    /// Intra-node bandwidth per GPU, GB/s.
    #[arg(long)]
    pub intra_gbps: Option<f64>,
}

impl BatchArgs {
    pub fn lengths(&self) -> Result<Vec<Vec<u32>>> {
        if let Some(p) = &self.batches {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading batch file {}", p.display()))?;
            return Ok(parse_batch_file(&text)?);
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
        if let Some(b) = self.intra_gbps {
            t.intra_gbps = b;
        }
        Ok(t)
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

/// A progress bar on stderr (hidden when not a terminal).
pub fn progress(len: u64, msg: &str) -> indicatif::ProgressBar {
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
