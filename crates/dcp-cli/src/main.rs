//! The `dcp` command: plan, check, demo, partition, simulate, compare, bench-gpu.

mod cmd_dryrun;
mod cmd_gpu;
mod cmd_partition;
mod cmd_plan;
mod cmd_report;
mod cmd_sim;
mod common;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "dcp",
    version,
    about = "Dynamic context parallelism: plan, check, simulate and run blockwise attention over GPUs"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Plan batches with a planner and print one JSON object per batch.
    Plan(cmd_plan::PlanArgs),
    /// Differential soak test: random batches through every planner, validator and CPU executor.
    Check(cmd_plan::CheckArgs),
    /// The main job on a built-in workload: plan longalign batches with every planner, validate,
    /// run a small case on the CPU executor, print a comparison table.
    Demo(cmd_plan::DemoArgs),
    /// The paper's CPU dry-run study: bytes, planning time, sparsity and inter-node weight
    /// sweeps of the dcp placement against ring/zigzag, with plots and a report.
    Dryrun(cmd_dryrun::DryrunArgs),
    /// Partition an hMETIS hypergraph and print km1, cut, loads, imbalance and time as JSON.
    Partition(cmd_partition::PartitionArgs),
    /// Simulate plan execution on a cluster model (time per batch with a breakdown).
    Simulate(cmd_sim::SimulateArgs),
    /// The paper's microbenchmark on the simulator: DCP vs static CP, tables, plots, report.
    Compare(cmd_sim::CompareArgs),
    /// Run plans on real GPUs (one process per GPU) and time them.
    BenchGpu(cmd_gpu::BenchGpuArgs),
    /// Time the attention kernels alone (local plan, one GPU) on fixed shapes: dense causal 32K
    /// and 128K, a packed batch of 120 short documents, a lambda batch, 1000 tiny documents.
    KernelBench(cmd_gpu::KernelBenchArgs),
    /// Measure kernel and link rates on the GPUs at hand and write a simulator profile.
    Calibrate(cmd_gpu::CalibrateArgs),
    /// Markdown report with speed-up plots from the 4-GPU matrix's JSON (bench/gpu/x4_matrix.sh).
    GpuReport(cmd_report::GpuReportArgs),
    /// Start N local ranks of a dcp subcommand with torchrun-style environment variables (one node of several with --nnodes).
    Launch(cmd_gpu::LaunchArgs),
}

/// Errors go to stderr as one line (`error: context: cause: ...`) and the exit status is 1.
fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Plan(a) => cmd_plan::plan(a),
        Cmd::Check(a) => cmd_plan::check(a),
        Cmd::Demo(a) => cmd_plan::demo(a),
        Cmd::Dryrun(a) => cmd_dryrun::dryrun(a),
        Cmd::Partition(a) => cmd_partition::partition(a),
        Cmd::Simulate(a) => cmd_sim::simulate(a),
        Cmd::Compare(a) => cmd_sim::compare(a),
        Cmd::BenchGpu(a) => cmd_gpu::bench_gpu(a),
        Cmd::KernelBench(a) => cmd_gpu::kernel_bench(a),
        Cmd::Calibrate(a) => cmd_gpu::calibrate(a),
        Cmd::Launch(a) => cmd_gpu::launch(a),
        Cmd::GpuReport(a) => cmd_report::gpu_report(a),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Clap's own consistency checks (unique argument names, valid defaults, ...) over every
    /// subcommand: a duplicated flag from a flattened group fails here, not in a user's debug run.
    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }

    /// Every option and positional argument of every subcommand has help text.
    #[test]
    fn every_argument_has_help() {
        let cmd = super::Cli::command();
        let mut missing = Vec::new();
        for sub in cmd.get_subcommands() {
            for arg in sub.get_arguments() {
                if arg.get_help().is_none() && arg.get_id() != "help" && arg.get_id() != "version" {
                    missing.push(format!("{} --{}", sub.get_name(), arg.get_id()));
                }
            }
        }
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }
}
