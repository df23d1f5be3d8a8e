//! `dcp bench-gpu`, `dcp calibrate`, `dcp launch` (owned by the CUDA executor work; being built).

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args, Debug)]
pub struct BenchGpuArgs {}

#[derive(Args, Debug)]
pub struct CalibrateArgs {}

#[derive(Args, Debug)]
pub struct LaunchArgs {}

pub fn bench_gpu(_: BenchGpuArgs) -> Result<()> {
    bail!("`dcp bench-gpu` is not built yet")
}

pub fn calibrate(_: CalibrateArgs) -> Result<()> {
    bail!("`dcp calibrate` is not built yet")
}

pub fn launch(_: LaunchArgs) -> Result<()> {
    bail!("`dcp launch` is not built yet")
}
