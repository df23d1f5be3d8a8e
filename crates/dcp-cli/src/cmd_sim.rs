//! `dcp simulate` and `dcp compare` (owned by the simulator work; being built).

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args, Debug)]
pub struct SimulateArgs {}

#[derive(Args, Debug)]
pub struct CompareArgs {}

pub fn simulate(_: SimulateArgs) -> Result<()> {
    bail!("`dcp simulate` is not built yet")
}

pub fn compare(_: CompareArgs) -> Result<()> {
    bail!("`dcp compare` is not built yet")
}
