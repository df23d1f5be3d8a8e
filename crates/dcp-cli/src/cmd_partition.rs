//! `dcp partition FILE.hgr`: our partitioner on any hMETIS instance, one JSON object out.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args, Debug)]
pub struct PartitionArgs {
    /// hMETIS file (fmt 1/10/11; a 4th header field D gives D weights per vertex).
    pub file: PathBuf,
    #[arg(long)]
    pub parts: u32,
    #[arg(long, default_value_t = 0.03)]
    pub epsilon: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of vertex weight dimensions in the file.
    #[arg(long)]
    pub weights_dims: Option<usize>,
    /// Effort: fast, default, quality.
    #[arg(long, default_value = "default")]
    pub preset: String,
}

pub fn partition(a: PartitionArgs) -> Result<()> {
    let preset = match a.preset.as_str() {
        "fast" => hypergraph::Preset::Fast,
        "default" => hypergraph::Preset::Default,
        "quality" => hypergraph::Preset::Quality,
        o => bail!("--preset must be fast, default or quality (got {o})"),
    };
    let r = hypergraph::partition_file_with(
        &a.file,
        a.parts,
        a.epsilon,
        a.seed,
        a.weights_dims,
        preset,
        false,
    )?;
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}
