//! `dcp bench-gpu`, `dcp calibrate`, `dcp launch`: plans on real GPUs through the CUDA executor
//! (crate `dcp-cuda`), one process per GPU.
//!
//! `launch` starts N local ranks of this same binary with torchrun-style variables (RANK,
//! WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), prefixes their output with the rank, and
//! fails as soon as one rank fails (the others get `--grace-s` to exit on their own, then are
//! killed). Every GPU command bounds each blocking step by `--timeout-s` (crate `dcp-cuda`,
//! module `watchdog`), so a frozen or dead rank never hangs the others, with or without
//! `launch`. `bench-gpu` and `calibrate` read those
//! variables (a process without them is rank 0 of 1); rank 0 prints the table and JSON.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use dcp_core::check::{corpus_dir, random_case};
use dcp_core::mask::MaskSpec;
use dcp_core::plan::IoTensor;
use dcp_core::planners::{make_plan, make_validated_plan, PlannerOptions};
use dcp_core::spec::{BatchSpec, DType, ModelShape, Topology};
use dcp_core::stats::plan_stats;
use dcp_core::validate::ValidatedPlan;
use dcp_cuda::fault::Fault;
use dcp_cuda::runner::{
    cpu_reference_of, median, ErrReport, GlobalInputs, GlobalOutputs, PlanRun, Rank, RankOptions,
    RawOutputs, RawTensor,
};
use dcp_cuda::watchdog::{exit_if_stalled, exit_stalled, OnExpiry};
use dcp_cuda::CudaError;
use rayon::prelude::*;
use serde_json::json;

use crate::common::{planner_list, progress, BatchArgs};
use dcp_core::flops::BWD_FLOP_FACTOR;

#[derive(Args, Debug)]
pub struct BenchGpuArgs {
    #[command(flatten)]
    pub batch: BatchArgs,
    #[arg(long, default_value = "ring,zigzag,local,dcp",
          help = crate::common::planner_help("Planners to run, comma separated; NAME@B1+B2 runs NAME at those block sizes instead of --block-sizes (e.g. dcp@1024+2048+4096)"))]
    pub planners: String,
    /// Token block sizes, comma separated (for planners without @).
    #[arg(long, default_value = "1024")]
    pub block_sizes: String,
    /// Masks to run in turn, comma separated (default: --mask); each batch's inputs and
    /// reference are made once per mask and shared by every planner and block size.
    #[arg(long)]
    pub masks: Option<String>,
    /// Threads of this rank's host work (inputs, plans, output checks); 0: the machine's cores
    /// divided by the ranks (WORLD_SIZE).
    #[arg(long, default_value_t = 0)]
    pub host_threads: usize,
    /// Time the host side alone, without a GPU: inputs, plans, gathers of each plan's rows and
    /// checks of reference-exact outputs, as bench-gpu does them; prints where the time goes.
    #[arg(long)]
    pub host_only: bool,
    /// World size to plan for with --host-only.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub host_world: u32,
    /// Nodes the --host-only world is spread over (a divisor of --host-world).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub host_nodes: u32,
    /// Untimed runs of each pass before timing.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Timed runs of each pass (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = crate::common::positive_usize)]
    pub repeats: usize,
    /// Check outputs: against the CPU f64 dense reference when the batch has at most
    /// --cpu-check-tokens tokens, else against the single-GPU `local` plan run by this executor.
    #[arg(long)]
    pub check: bool,
    /// Largest batch (tokens) checked against the CPU dense reference with --check.
    #[arg(long, default_value_t = 3000)]
    pub cpu_check_tokens: u64,
    /// Instead of dataset batches: N random small cases (every mask kind, GQA ratios, odd
    /// lengths, head dims 64/128, bf16 and every third case f16), every planner, checked
    /// against the CPU reference.
    #[arg(long)]
    pub selftest: Option<usize>,
    /// Check every case of a corpus folder (e.g. testdata/) the same way, before the random
    /// cases (head dims set to 64 and 128 alternately, the kernels' sizes).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Append JSON lines here (rank 0).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Time every executor operation (kernel launch, copy, NCCL group, wait) of each plan's last
    /// forward and backward run with CUDA events, and append one JSON line per plan to
    /// `DIR/ops_rank<R>.jsonl` (each rank its own file): instruction, op, start and end in ms from
    /// the program's start. The events add a few µs per op to the times of that run.
    #[arg(long, value_name = "DIR")]
    pub op_times: Option<PathBuf>,
    /// Seed of the input tensors.
    #[arg(long, default_value_t = 1)]
    pub data_seed: u64,
    /// Deadline in seconds of every blocking step (rendezvous, communicator creation,
    /// barriers, NCCL groups, GPU waits, copies); a peer silent for half of it (at most 60 s)
    /// is failed. On expiry the communicator is aborted and the rank exits with status 3,
    /// naming the step and the peers it waited for. Must exceed the longest single forward or
    /// backward run (docs/CUDA.md, "When a rank fails").
    #[arg(long, default_value_t = 300.0)]
    pub timeout_s: f64,
}

#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// Where to write the JSON profile (rank 0).
    #[arg(long, default_value = "gpu_profile.json")]
    pub out: PathBuf,
    /// Deadline in seconds of every blocking step (see `bench-gpu --timeout-s`).
    #[arg(long, default_value_t = 300.0)]
    pub timeout_s: f64,
    /// Sequence lengths for the attention curve: causal and full at each, and at the longest
    /// (from 4096 tokens) also causal-blockwise 256:2 and lambda 64:4096, whose many short
    /// tasks and split long ones let the simulator's fit tell per-CTA from per-launch costs.
    #[arg(long, default_value = "2048,8192,32768")]
    pub lens: String,
}

#[derive(Args, Debug)]
pub struct LaunchArgs {
    /// Number of local ranks (one per GPU).
    #[arg(short = 'n', long, default_value_t = 1)]
    pub nprocs: u32,
    /// Rendezvous port (default: a free one; required with --nnodes above 1, the same on
    /// every node).
    #[arg(long)]
    pub port: Option<u16>,
    /// Nodes of the job: run `dcp launch` once per node with the same -n, --nnodes, --port and
    /// --master-addr and that node's --node-rank. Ranks are numbered node by node, and plans
    /// are made for NNODES x NPROCS GPUs (inter-node links dearer).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub nnodes: u32,
    /// This node's index, 0..NNODES (node 0 hosts rank 0 and the rendezvous).
    #[arg(long, default_value_t = 0)]
    pub node_rank: u32,
    /// Address of node 0, where rank 0 listens for the rendezvous (default 127.0.0.1; required
    /// with --nnodes above 1).
    #[arg(long)]
    pub master_addr: Option<String>,
    /// After one rank fails, seconds the others get to exit on their own (and say why)
    /// before they are killed.
    #[arg(long, default_value_t = 5.0)]
    pub grace_s: f64,
    /// The dcp subcommand and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub args: Vec<String>,
}

fn csv<T: std::str::FromStr>(s: &str, what: &str) -> Result<Vec<T>> {
    s.split(',')
        .filter(|x| !x.trim().is_empty())
        .map(|x| {
            x.trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("bad {what} `{x}`"))
        })
        .collect()
}

struct Row {
    name: String,
    planner: String,
    bs: u32,
    fwd_ms: f64,
    bwd_ms: f64,
    fwd_tflops: f64,
    bwd_tflops: f64,
    mib: f64,
    check: String,
}

/// Runs one plan: an optional check (the first run, from poisoned outputs, counts as a
/// warm-up run), then timings (median over repeats of the max over ranks).
fn run_plan(
    rank: &mut Rank,
    plan: &ValidatedPlan,
    warmup: usize,
    repeats: usize,
    inputs: &GlobalInputs,
    reference: Option<&GlobalOutputs>,
    buf: &mut Vec<u8>,
) -> Result<(f64, f64, Option<ErrReport>, Option<OpTimes>)> {
    let dev = rank.info.rank as usize;
    let run = PlanRun::new(rank, plan, dev)?;
    run.load_inputs_with(rank, inputs, buf)?;
    let check = match reference {
        None => None,
        Some(r) => {
            run.fwd.poison(&rank.gpu)?;
            run.bwd.poison(&rank.gpu)?;
            rank.barrier()?;
            run.run_fwd(rank)?;
            run.feed_backward(rank)?;
            rank.barrier()?;
            run.run_bwd(rank)?;
            let out = run.raw_outputs(rank)?;
            let mut e = r.compare_raw(&plan.batch, &run.tokens, &out);
            rank.allreduce(&mut e.v, false)?;
            Some(e.report())
        }
    };
    let warmup = warmup.saturating_sub(usize::from(check.is_some()));
    let mut f = Vec::new();
    let mut b = Vec::new();
    for i in 0..warmup + repeats {
        rank.barrier()?;
        let t = run.run_fwd(rank)? as f64;
        if i >= warmup {
            f.push(t);
        }
    }
    run.feed_backward(rank)?;
    for i in 0..warmup + repeats {
        rank.barrier()?;
        let t = run.run_bwd(rank)? as f64;
        if i >= warmup {
            b.push(t);
        }
    }
    rank.allreduce(&mut f, true)?;
    rank.allreduce(&mut b, true)?;
    let ops = match (run.fwd.op_times()?, run.bwd.op_times()?) {
        (Some(fwd), Some(bwd)) => Some(OpTimes { fwd, bwd }),
        _ => None,
    };
    Ok((median(&f), median(&b), check, ops))
}

/// Per-op times of a plan's last forward and backward runs on this rank (`--op-times`).
struct OpTimes {
    fwd: Vec<dcp_cuda::exec::OpTime>,
    bwd: Vec<dcp_cuda::exec::OpTime>,
}

/// Reference outputs of a large batch (into `into`, reusing its memory): the plan `local` (one
/// device) on this GPU alone. Made once per batch and mask: the inputs depend only on the global
/// token index, not on the planner or the block size. (Small batches use the CPU f64 reference.)
fn reference(
    rank: &mut Rank,
    batch: &BatchSpec,
    inputs: &GlobalInputs,
    local: &ValidatedPlan,
    into: &mut GlobalOutputs,
    buf: &mut Vec<u8>,
) -> Result<()> {
    let run = PlanRun::new(rank, local, 0)?;
    run.load_inputs_with(rank, inputs, buf)?;
    run.fwd.enqueue(&rank.gpu, &run.kernels, None)?;
    run.fwd.finish(&rank.gpu, None, " (reference)")?;
    run.feed_backward(rank)?;
    run.bwd.enqueue(&rank.gpu, &run.kernels, None)?;
    run.bwd.finish(&rank.gpu, None, " (reference)")?;
    into.scatter_raw_into(batch, &run.tokens, &run.raw_outputs(rank)?);
    Ok(())
}

fn fmt_check(c: &Option<ErrReport>) -> String {
    match c {
        None => "-".into(),
        Some(e) => format!(
            "{} {:.1e}/{:.1e}/{:.1e}/{:.1e}{}",
            if e.pass { "ok" } else { "FAIL" },
            e.o,
            e.lse,
            e.dq,
            e.dkv,
            if e.bad > 0.0 {
                format!(" bad={}", e.bad)
            } else {
                String::new()
            }
        ),
    }
}

/// What one `bench-gpu` process holds while it runs: its rank, the rows it prints (rank 0) and
/// the JSON lines file.
struct Bench<'r> {
    rank: &'r mut Rank,
    world: u32,
    topo: Topology,
    is0: bool,
    planners: Vec<String>,
    json_out: Option<std::fs::File>,
    rows: Vec<Row>,
    failures: usize,
}

impl Bench<'_> {
    /// Prints one JSON record on stdout (above the progress bar, if any) and appends it to the
    /// `--json` file.
    fn record(
        &mut self,
        rec: &serde_json::Value,
        pb: Option<&indicatif::ProgressBar>,
    ) -> Result<()> {
        match pb {
            Some(pb) => pb.suspend(|| println!("{rec}")),
            None => println!("{rec}"),
        }
        if let Some(o) = self.json_out.as_mut() {
            writeln!(o, "{rec}")?;
        }
        Ok(())
    }
}

/// Options of a CLI rank: `--timeout-s` for every blocking step, the process exits (status
/// [`EXIT_STALLED`](dcp_cuda::watchdog::EXIT_STALLED)) with one line naming the rank, the step
/// and the peers when a step or a peer fails; the fault to inject comes from `DCP_FAULT`.
fn rank_options(timeout_s: f64) -> Result<RankOptions> {
    if !(timeout_s.is_finite() && timeout_s > 0.0) {
        bail!("--timeout-s must be a positive number of seconds, got {timeout_s}");
    }
    Ok(RankOptions {
        timeout: Duration::try_from_secs_f64(timeout_s)
            .map_err(|e| anyhow::anyhow!("--timeout-s {timeout_s}: {e}"))?,
        on_expiry: OnExpiry::ExitProcess,
        fault: Fault::from_env()?,
    })
}

/// Runs a GPU command: a stalled step or failed peer exits at once with its one line (after
/// the communicator was aborted); a clean finish says goodbye to the peers.
fn with_rank(timeout_s: f64, body: impl FnOnce(&mut Rank) -> Result<()>) -> Result<()> {
    let mut rank = Rank::init(rank_options(timeout_s)?).inspect_err(exit_if_stalled)?;
    let r = body(&mut rank);
    if let Err(e) = &r {
        // Any error after a recorded failure (e.g. a call that failed because the watchdog
        // aborted the communicator) is reported as that failure.
        if let Some(f) = rank.watchdog.failure() {
            exit_stalled(&f);
        }
        if let Some(c) = e.downcast_ref::<CudaError>() {
            exit_if_stalled(c);
        }
    }
    r?;
    rank.close().inspect_err(exit_if_stalled)?;
    Ok(())
}

pub fn bench_gpu(a: BenchGpuArgs) -> Result<()> {
    // Arguments are checked before the GPU and NCCL start.
    let specs = planner_runs(&a.planners, &a.block_sizes)?;
    if let Some(d) = &a.op_times {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        // Read when programs are prepared; set before any thread exists.
        std::env::set_var("DCP_CUDA_OP_TIMES", "1");
    }
    host_pool(a.host_threads)?;
    if a.host_only {
        return host_only(&a, &specs);
    }
    planner_options(&a)?;
    let timeout_s = a.timeout_s;
    with_rank(timeout_s, |rank| bench_gpu_on(rank, a, specs))
}

/// Planner options of a benchmark run (dcp's cost model from `--planner-profile` when given).
fn planner_options(a: &BenchGpuArgs) -> Result<PlannerOptions> {
    a.batch.planner_options(PlannerOptions::default())
}

/// The topology plans are made for: `nodes` nodes of `per_node` GPUs (the ranks' torchrun
/// `LOCAL_WORLD_SIZE`; one node without it), its links from `--planner-profile` when given.
fn bench_topology(a: &BenchGpuArgs, nodes: u32, per_node: u32) -> Result<Topology> {
    let mut t = Topology::new(nodes, per_node);
    if let Some((_, p)) = a.batch.planner_profile()? {
        crate::common::apply_profile_links(&mut t, &p);
    }
    Ok(t)
}

fn bench_gpu_on(rank: &mut Rank, a: BenchGpuArgs, specs: Vec<PlannerRun>) -> Result<()> {
    let planners: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let world = rank.info.world;
    let topo = bench_topology(&a, rank.info.nodes(), rank.info.local_world)?;
    let is0 = rank.info.rank == 0;
    let json_out = match (&a.json, is0) {
        (Some(p), true) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening {}", p.display()))?,
        ),
        _ => None,
    };
    if is0 {
        eprintln!(
            "bench-gpu: {} ({}), world {world} planned as {}x{} (nodes x GPUs), arch {}",
            rank.gpu.name,
            rank.gpu.ordinal,
            rank.info.nodes(),
            rank.info.local_world,
            rank.gpu.arch()
        );
    }
    let mut b = Bench {
        rank,
        world,
        topo,
        is0,
        planners,
        json_out,
        rows: Vec::new(),
        failures: 0,
    };
    match (a.selftest, &a.corpus) {
        (None, None) => bench_batches(&a, &mut b, &specs)?,
        (n, _) => selftest(&a, &mut b, n.unwrap_or(0))?,
    }
    let Bench {
        is0,
        rows,
        failures,
        ..
    } = b;
    if is0 {
        println!(
            "\n{:<34} {:<8} {:>6} {:>9} {:>9} {:>8} {:>8} {:>9}  check o/lse/dq/dkv",
            "batch", "planner", "block", "fwd ms", "bwd ms", "fwd TF", "bwd TF", "MiB sent"
        );
        for r in &rows {
            println!(
                "{:<34} {:<8} {:>6} {:>9.3} {:>9.3} {:>8.1} {:>8.1} {:>9.1}  {}",
                r.name.chars().take(34).collect::<String>(),
                r.planner,
                r.bs,
                r.fwd_ms,
                r.bwd_ms,
                r.fwd_tflops,
                r.bwd_tflops,
                r.mib,
                r.check
            );
        }
    }
    if failures > 0 {
        bail!(
            "{failures} check(s) failed (relative error above {} or NaN/-inf mismatches)",
            dcp_cuda::runner::TOLERANCE
        );
    }
    Ok(())
}

/// `--selftest N`: random small cases through every planner, checked against the CPU reference.
fn selftest(a: &BenchGpuArgs, bench: &mut Bench, n: usize) -> Result<()> {
    let (world, is0, planners, topo) = (bench.world, bench.is0, bench.planners.clone(), bench.topo);
    // The corpus cases first (at the kernels' head dims), then the random ones.
    let mut cases: Vec<(String, BatchSpec)> = Vec::new();
    if let Some(dir) = &a.corpus {
        for (i, (name, mut batch, _)) in corpus_dir(dir)?.into_iter().enumerate() {
            batch.model.head_dim = if i % 2 == 0 { 64 } else { 128 };
            cases.push((name, batch));
        }
    }
    for case in 0..n as u64 {
        let (mut batch, _) = random_case(1000 + case, 300);
        let kvh = batch.model.kv_heads;
        batch.model = ModelShape {
            heads: batch.model.heads,
            kv_heads: kvh,
            head_dim: if case % 2 == 0 { 64 } else { 128 },
            // Every third case in f16 (the kernels take both 16-bit types); with the
            // alternating head dims that covers f16 at 64 and 128.
            dtype: if case % 3 == 2 {
                DType::F16
            } else {
                DType::Bf16
            },
        };
        batch.head_block = if case % 3 == 0 { 1 } else { kvh };
        cases.push((format!("case{case}"), batch));
    }
    for (case, (name, batch)) in cases.iter().enumerate() {
        let case = case as u64;
        let masks: Vec<&str> = batch.seqs.iter().map(|s| s.mask.name()).collect();
        let inputs = GlobalInputs::new(batch, a.data_seed + case);
        let r = GlobalOutputs::from_f64(&cpu_reference_of(batch, &inputs));
        for p in &planners {
            let plan = match make_validated_plan(p, batch, &topo, &PlannerOptions::default()) {
                Ok(pl) => pl,
                Err(e) => {
                    if is0 {
                        eprintln!("case {name}: planner {p}: {e}");
                    }
                    continue;
                }
            };
            let (f, b, c, _) =
                run_plan(bench.rank, &plan, 0, 1, &inputs, Some(&r), &mut Vec::new())?;
            let c = c.expect("checked");
            let kernels = bench.rank.kernels(&batch.model)?.family();
            if !c.pass {
                bench.failures += 1;
            }
            if is0 {
                let rec = json!({"kind": "selftest", "case": case, "name": name, "planner": p, "world": world,
                    "lens": batch.lens(), "masks": masks, "heads": batch.model.heads,
                    "kv_heads": batch.model.kv_heads, "head_dim": batch.model.head_dim,
                    "dtype": format!("{:?}", batch.model.dtype), "block_size": batch.block_size,
                    "kernels": kernels, "fwd_ms": f, "bwd_ms": b, "check": c});
                bench.record(&rec, None)?;
                bench.rows.push(Row {
                    name: format!(
                        "{name} h{}/{} d{} {:?}",
                        batch.model.heads,
                        batch.model.kv_heads,
                        batch.model.head_dim,
                        batch.lens()
                    ),
                    planner: p.clone(),
                    bs: batch.block_size,
                    fwd_ms: f,
                    bwd_ms: b,
                    fwd_tflops: 0.0,
                    bwd_tflops: 0.0,
                    mib: 0.0,
                    check: fmt_check(&Some(c)),
                });
            }
        }
    }
    Ok(())
}

/// A planner and the block sizes it runs at (`NAME` or `NAME@B1+B2` of `--planners`).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannerRun {
    pub name: String,
    pub blocks: Vec<u32>,
}

/// Parses `--planners` (each name checked; `@B1+B2` block sizes, else `default_blocks`).
pub fn planner_runs(planners: &str, default_blocks: &str) -> Result<Vec<PlannerRun>> {
    let default_blocks: Vec<u32> = csv(default_blocks, "block size")?;
    if default_blocks.is_empty() || default_blocks.contains(&0) {
        bail!("--block-sizes needs positive block sizes (got `{default_blocks:?}`)");
    }
    let mut names = String::new();
    let mut blocks = Vec::new();
    for item in planners.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let (name, bs) = match item.split_once('@') {
            None => (item, default_blocks.clone()),
            Some((n, b)) => {
                let bs: Vec<u32> = b
                    .split('+')
                    .map(|x| {
                        x.trim()
                            .parse::<u32>()
                            .ok()
                            .filter(|&v| v > 0)
                            .ok_or_else(|| anyhow::anyhow!("`{item}`: bad block size `{x}` (expected NAME@B1+B2, e.g. dcp@1024+2048)"))
                    })
                    .collect::<Result<_>>()?;
                (n, bs)
            }
        };
        if !names.is_empty() {
            names.push(',');
        }
        names.push_str(name);
        blocks.push(bs);
    }
    let names = planner_list(&names)?;
    Ok(names
        .into_iter()
        .zip(blocks)
        .map(|(name, blocks)| PlannerRun { name, blocks })
        .collect())
}

/// Sizes rayon's global pool: `threads`, or (0) the machine's cores shared by the local ranks.
fn host_pool(threads: usize) -> Result<usize> {
    let n = if threads > 0 {
        threads
    } else {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let ranks: usize = std::env::var("WORLD_SIZE")
            .ok()
            .and_then(|w| w.parse().ok())
            .filter(|&w: &usize| w > 0)
            .unwrap_or(1);
        (cores / ranks).max(1)
    };
    // A pool built earlier in this process (tests) is kept.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
    Ok(rayon::current_num_threads())
}

/// One plan of a group, made ahead of its run.
struct Planned {
    planner: String,
    bs: u32,
    plan: ValidatedPlan,
    plan_s: f64,
    flops: f64,
    fwd_bytes: u64,
    bwd_bytes: u64,
    imbalance: f64,
}

/// One (mask, batch) of the benchmark, made on the host while the GPUs run the previous one:
/// its inputs (global token order, shared by every plan), the plans of every planner and block
/// size, and the single-device plan of the reference.
struct Group {
    mask: String,
    bi: usize,
    lens: Vec<u32>,
    batch: BatchSpec,
    inputs: GlobalInputs,
    reference_plan: Option<ValidatedPlan>,
    plans: Vec<Planned>,
    /// Seconds making the inputs and the plans (wall, on the rank's threads).
    inputs_s: f64,
    plans_s: f64,
}

fn prepare_group(
    a: &BenchGpuArgs,
    specs: &[PlannerRun],
    topo: &Topology,
    opts: &PlannerOptions,
    mask: &str,
    bi: usize,
    lens: &[u32],
) -> Result<Group> {
    let mut ba = a.batch.clone();
    ba.mask = mask.to_string();
    let first_bs = specs
        .iter()
        .flat_map(|s| s.blocks.first())
        .next()
        .copied()
        .unwrap_or(1024);
    let batch = ba.batch(lens, first_bs)?;
    let t0 = Instant::now();
    let inputs = GlobalInputs::new(&batch, a.data_seed);
    let inputs_s = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let runs: Vec<(&str, u32)> = specs
        .iter()
        .flat_map(|s| s.blocks.iter().map(move |&b| (s.name.as_str(), b)))
        .collect();
    let plans: Vec<Planned> = runs
        .par_iter()
        .map(|&(p, bs)| -> Result<Planned> {
            let batch = ba.batch(lens, bs)?;
            let t = Instant::now();
            let plan = make_plan(p, &batch, topo, opts)
                .with_context(|| format!("planner {p}, block {bs}, mask {mask}, batch {bi}"))?;
            let plan_s = t.elapsed().as_secs_f64();
            let plan = ValidatedPlan::new(plan).with_context(|| {
                format!("validating planner {p}, block {bs}, mask {mask}, batch {bi}")
            })?;
            let st = plan_stats(&plan);
            Ok(Planned {
                planner: p.to_string(),
                bs,
                flops: st.device_flops.iter().sum(),
                fwd_bytes: st.fwd_bytes_intra + st.fwd_bytes_inter,
                bwd_bytes: st.bwd_bytes_intra + st.bwd_bytes_inter,
                imbalance: st.compute_imbalance,
                plan,
                plan_s,
            })
        })
        .collect::<Result<_>>()?;
    let reference_plan = if a.check && batch.total_tokens() > a.cpu_check_tokens {
        Some(make_validated_plan(
            "local",
            &batch,
            &Topology::new(1, 1),
            &PlannerOptions::default(),
        )?)
    } else {
        None
    };
    Ok(Group {
        mask: mask.to_string(),
        bi,
        lens: lens.to_vec(),
        batch,
        inputs,
        reference_plan,
        plans,
        inputs_s,
        plans_s: t0.elapsed().as_secs_f64(),
    })
}

/// The masks of a run: `--masks`, else `--mask`.
fn mask_list(a: &BenchGpuArgs) -> Vec<String> {
    match &a.masks {
        Some(m) => m
            .split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect(),
        None => vec![a.batch.mask.clone()],
    }
}

/// Runs `each` on every (mask, batch) group in order, each group prepared on a helper thread
/// while the previous one runs.
fn for_each_group(
    a: &BenchGpuArgs,
    specs: &[PlannerRun],
    topo: &Topology,
    opts: &PlannerOptions,
    mut each: impl FnMut(Group) -> Result<()>,
) -> Result<()> {
    let masks = mask_list(a);
    for m in &masks {
        MaskSpec::parse(m).with_context(|| format!("mask `{m}`"))?;
    }
    let lens = a.batch.lengths()?;
    let groups: Vec<(&str, usize, &[u32])> = masks
        .iter()
        .flat_map(|m| {
            lens.iter()
                .enumerate()
                .map(move |(bi, l)| (m.as_str(), bi, l.as_slice()))
        })
        .collect();
    let prep = |g: (&str, usize, &[u32])| prepare_group(a, specs, topo, opts, g.0, g.1, g.2);
    std::thread::scope(|sc| -> Result<()> {
        let mut next = groups.first().map(|&g| sc.spawn(move || prep(g)));
        for gi in 0..groups.len() {
            let h = next.take().expect("a group is being prepared");
            let g = h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))?;
            next = groups.get(gi + 1).map(|&g| sc.spawn(move || prep(g)));
            each(g)?;
        }
        Ok(())
    })
}

/// Number of plan runs of a benchmark.
fn n_runs(a: &BenchGpuArgs, specs: &[PlannerRun]) -> Result<u64> {
    let per: usize = specs.iter().map(|s| s.blocks.len()).sum();
    Ok((mask_list(a).len() * a.batch.lengths()?.len() * per) as u64)
}

/// The dataset or batch-file batches: timings per mask × batch × planner × block size.
fn bench_batches(a: &BenchGpuArgs, bench: &mut Bench, specs: &[PlannerRun]) -> Result<()> {
    let (world, is0, topo) = (bench.world, bench.is0, bench.topo);
    let opts = planner_options(a)?;
    let n = n_runs(a, specs)?;
    let pb = if is0 {
        progress(
            n,
            "bench-gpu",
            &format!(
                "timing {n} plans (mask × batch × planner × block size) on {world} GPU(s), {} host threads per rank: each is uploaded, {}run {} + {} times per pass",
                rayon::current_num_threads(),
                if a.check { "checked on its first run (against a reference made once per batch and mask), " } else { "" },
                a.warmup,
                a.repeats,
            ),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    let t_all = Instant::now();
    let mut waited_s = 0.0;
    let mut last = Instant::now();
    let mut op_out = match &a.op_times {
        Some(d) => {
            let p = d.join(format!("ops_rank{}.jsonl", bench.rank.info.rank));
            Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&p)
                    .with_context(|| format!("opening {}", p.display()))?,
            )
        }
        None => None,
    };
    // Host buffers reused across plans and groups (fresh large buffers cost a page fault per
    // 4 KiB on first touch).
    let mut buf = Vec::new();
    let mut refbuf = GlobalOutputs::default();
    for_each_group(a, specs, &topo, &opts, |g| {
        // Time the GPU loop waited for the host to prepare this group.
        waited_s += last.elapsed().as_secs_f64();
        let small_ref;
        let reference = match (&g.reference_plan, a.check) {
            (_, false) => None,
            (Some(local), true) => {
                reference(
                    bench.rank,
                    &g.batch,
                    &g.inputs,
                    local,
                    &mut refbuf,
                    &mut buf,
                )?;
                Some(&refbuf)
            }
            (None, true) => {
                small_ref = GlobalOutputs::from_f64(&cpu_reference_of(&g.batch, &g.inputs));
                Some(&small_ref)
            }
        };
        for pl in &g.plans {
            let t0 = Instant::now();
            let (f, b, c, ops) = run_plan(
                bench.rank, &pl.plan, a.warmup, a.repeats, &g.inputs, reference, &mut buf,
            )?;
            let run_s = t0.elapsed().as_secs_f64();
            if let (Some(o), Some(w)) = (ops, op_out.as_mut()) {
                let rec = json!({"batch": g.bi, "mask": g.mask, "planner": pl.planner,
                    "block_size": pl.bs, "candidate": pl.plan.candidate.map(|k| k.name()),
                    "rank": bench.rank.info.rank, "fwd_ms": f, "bwd_ms": b,
                    "fwd": o.fwd, "bwd": o.bwd});
                writeln!(w, "{rec}")?;
            }
            if let Some(c) = &c {
                if !c.pass {
                    bench.failures += 1;
                }
            }
            let kernels = bench.rank.kernels(&g.batch.model)?.family();
            let ftf = pl.flops / world as f64 / (f * 1e-3) / 1e12;
            let btf = BWD_FLOP_FACTOR * pl.flops / world as f64 / (b * 1e-3) / 1e12;
            if is0 {
                let pred = dcp_core::cost::predict(&pl.plan, &opts.dcp.cost);
                let rec = json!({"kind": "bench", "batch": g.bi, "source": a.batch.source_name(),
                    "mask": g.mask, "planner": pl.planner, "block_size": pl.bs, "world": world,
                    "device": bench.rank.gpu.name, "kernels": kernels, "tokens": g.batch.total_tokens(), "n_seqs": g.lens.len(), "lens": g.lens,
                    "fwd_ms": f, "bwd_ms": b, "fwd_tflops_per_gpu": ftf, "bwd_tflops_per_gpu": btf,
                    "attended_fwd_flops": pl.flops, "fwd_bytes": pl.fwd_bytes, "bwd_bytes": pl.bwd_bytes,
                    "compute_imbalance": pl.imbalance, "plan_s": pl.plan_s,
                    "candidate": pl.plan.candidate.map(|k| k.name()),
                    "pred_fwd_ms": pred.fwd_ms, "pred_bwd_ms": pred.bwd_ms,
                    "cost_model": opts.dcp.cost.source_name(),
                    "run_s": run_s, "check": c});
                bench.record(&rec, Some(&pb))?;
                bench.rows.push(Row {
                    name: format!("{}#{} {}", a.batch.source_name(), g.bi, g.mask),
                    planner: pl.planner.clone(),
                    bs: pl.bs,
                    fwd_ms: f,
                    bwd_ms: b,
                    fwd_tflops: ftf,
                    bwd_tflops: btf,
                    mib: (pl.fwd_bytes + pl.bwd_bytes) as f64 / (1 << 20) as f64,
                    check: fmt_check(&c),
                });
            }
            pb.inc(1);
        }
        last = Instant::now();
        Ok(())
    })?;
    pb.finish_and_clear();
    if is0 {
        eprintln!(
            "bench-gpu: {n} plan runs in {:.1} s wall; {:.1} s of it waiting for the host to prepare groups",
            t_all.elapsed().as_secs_f64(),
            waited_s
        );
    }
    Ok(())
}

/// CPU seconds this process has used (user + system, every thread).
fn process_cpu_s() -> f64 {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `rusage` into the valid, writable struct we pass.
    let r = unsafe { libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr()) };
    if r != 0 {
        return f64::NAN;
    }
    // SAFETY: getrusage returned 0, so it filled the struct (zeroed before in any case).
    let u = unsafe { u.assume_init() };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// `--host-only`: the host side of [`bench_batches`] without a GPU, one phase after the other,
/// in CPU seconds of this process (wall time is meaningless on a shared machine; CPU seconds
/// divided by a rank's threads estimate the wall time on an idle one). Per (mask, batch): the
/// inputs and plans (made ahead on a helper thread in a real run), the reference's scatter
/// from a single-device run; per plan, device 0's share: gathering its input rows (what is
/// uploaded) and checking its outputs (the real run downloads them; here a stand-in of the
/// same size, made outside the measured phases).
fn host_only(a: &BenchGpuArgs, specs: &[PlannerRun]) -> Result<()> {
    if !a.host_world.is_multiple_of(a.host_nodes) {
        bail!(
            "--host-world {} is not a multiple of --host-nodes {}",
            a.host_world,
            a.host_nodes
        );
    }
    let topo = bench_topology(a, a.host_nodes, a.host_world / a.host_nodes)?;
    let opts = planner_options(a)?;
    let n = n_runs(a, specs)?;
    let threads = rayon::current_num_threads();
    eprintln!(
        "bench-gpu --host-only: {n} plan runs planned for {} devices ({}x{}), {threads} host threads; device 0's host work in CPU seconds",
        a.host_world,
        a.host_nodes,
        a.host_world / a.host_nodes,
    );
    let masks = mask_list(a);
    let lens = a.batch.lengths()?;
    let t_all = Instant::now();
    let mut cpu = [0.0f64; 5]; // inputs, plans, reference, gathers, checks
    let (mut groups, mut runs) = (0usize, 0usize);
    let mut buf = Vec::new();
    let mut refbuf = GlobalOutputs::default();
    for m in &masks {
        for (bi, l) in lens.iter().enumerate() {
            let c0 = process_cpu_s();
            let g = prepare_group(a, specs, &topo, &opts, m, bi, l)?;
            let c1 = process_cpu_s();
            // Split the preparation's CPU time by the wall-time shares of its two parts.
            let w = (g.inputs_s / (g.inputs_s + g.plans_s).max(1e-12)).clamp(0.0, 1.0);
            cpu[0] += (c1 - c0) * w;
            cpu[1] += (c1 - c0) * (1.0 - w);
            groups += 1;
            // Stand-ins for downloads (values do not matter for timing), made unmeasured.
            let all: Vec<u64> = (0..g.batch.total_tokens()).collect();
            let dt = g.batch.model.dtype;
            let stand_in = |seed: u64, t: IoTensor, rows: &[u64]| {
                RawTensor::encode(dt, &dcp_cuda::runner::make_input(&g.batch, seed, t, rows))
            };
            let lse = |rows: usize| {
                RawTensor::encode(DType::F32, &vec![0.5; rows * g.batch.model.heads as usize])
            };
            let small_ref;
            let reference = match (&g.reference_plan, a.check) {
                (_, false) => None,
                (Some(local), true) => {
                    let toks = dcp_cuda::runner::local_tokens(local, 0);
                    let fake = RawOutputs {
                        o: stand_in(9, IoTensor::Q, &all),
                        lse: lse(all.len()),
                        dq: stand_in(10, IoTensor::DO, &all),
                        dkv: stand_in(11, IoTensor::Kv, &all),
                    };
                    let c = process_cpu_s();
                    refbuf.scatter_raw_into(&g.batch, &toks, &fake);
                    cpu[2] += process_cpu_s() - c;
                    Some(&refbuf)
                }
                (None, true) => {
                    let c = process_cpu_s();
                    small_ref = GlobalOutputs::from_f64(&cpu_reference_of(&g.batch, &g.inputs));
                    cpu[2] += process_cpu_s() - c;
                    Some(&small_ref)
                }
            };
            for pl in &g.plans {
                runs += 1;
                let toks = dcp_cuda::runner::local_tokens(&pl.plan, 0);
                let c = process_cpu_s();
                for tt in [IoTensor::Q, IoTensor::Kv, IoTensor::DO] {
                    g.inputs.gather_into(tt, &toks, &mut buf);
                    std::hint::black_box(&buf);
                }
                cpu[3] += process_cpu_s() - c;
                if let Some(r) = reference {
                    // This device's rows of the reference, as a download would return them.
                    let local = r.gather(&g.batch, &toks);
                    let out = RawOutputs {
                        o: RawTensor::encode(dt, &local.o),
                        lse: RawTensor::encode(DType::F32, &local.lse),
                        dq: RawTensor::encode(dt, &local.dq),
                        dkv: RawTensor::encode(dt, &local.dkv),
                    };
                    let c = process_cpu_s();
                    let e = r.compare_raw(&g.batch, &toks, &out).report();
                    cpu[4] += process_cpu_s() - c;
                    if !e.pass {
                        bail!(
                            "host-only check of {} block {} failed: {e:?}",
                            pl.planner,
                            pl.bs
                        );
                    }
                }
            }
        }
    }
    let wall = t_all.elapsed().as_secs_f64();
    let total: f64 = cpu.iter().sum();
    let rec = json!({"kind": "host", "groups": groups, "plan_runs": runs, "threads": threads,
        "world": a.host_world, "wall_s": wall, "cpu_s": {"inputs": cpu[0], "plans": cpu[1],
        "reference": cpu[2], "gathers": cpu[3], "checks": cpu[4], "total": total}});
    println!("{rec}");
    if let Some(p) = &a.json {
        let mut o = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .with_context(|| format!("opening {}", p.display()))?;
        writeln!(o, "{rec}")?;
    }
    println!(
        "\nhost work of one rank, CPU seconds, {groups} (mask, batch) groups, {runs} plan runs:\n  per group: inputs {:.3}, plans {:.3}, reference scatter {:.3}\n  per plan run: input gathers {:.4}, output checks {:.4}\n  total {total:.1} CPU s ({:.1} s on 16 threads at perfect scaling); wall here {wall:.1} s",
        cpu[0] / groups.max(1) as f64,
        cpu[1] / groups.max(1) as f64,
        cpu[2] / groups.max(1) as f64,
        cpu[3] / runs.max(1) as f64,
        cpu[4] / runs.max(1) as f64,
        total / 16.0,
    );
    Ok(())
}

pub fn calibrate(a: CalibrateArgs) -> Result<()> {
    let lens = csv::<u32>(&a.lens, "length")?;
    with_rank(a.timeout_s, |rank| {
        let prof = dcp_cuda::runner::calibrate(rank, &lens)?;
        if rank.info.rank == 0 {
            let text = serde_json::to_string_pretty(&prof)?;
            std::fs::write(&a.out, &text)
                .with_context(|| format!("writing {}", a.out.display()))?;
            println!("{text}");
            // The planner's cost model of this profile (`dcp plan --cost-model`, the Python
            // planner's `cost_model`): the same numbers as `--planner-profile`.
            let cost_path = a.out.with_extension("cost.json");
            let (p, _) = dcp_sim::Profile::from_json(&text)?;
            let cost = dcp_sim::Hardware::new(p).planner_cost();
            std::fs::write(&cost_path, serde_json::to_string_pretty(&cost)?)
                .with_context(|| format!("writing {}", cost_path.display()))?;
            eprintln!("wrote {} and {}", a.out.display(), cost_path.display());
        }
        Ok(())
    })
}

fn forward(child: &mut Child, rank: u32) -> Vec<std::thread::JoinHandle<()>> {
    let mut hs = Vec::new();
    if let Some(out) = child.stdout.take() {
        hs.push(std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                println!("[rank {rank}] {line}");
            }
        }));
    }
    if let Some(err) = child.stderr.take() {
        hs.push(std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[rank {rank}] {line}");
            }
        }));
    }
    hs
}

/// The torchrun-style environment of local rank `local` of a launch on rendezvous port `port`.
fn rank_env(a: &LaunchArgs, port: u16, local: u32) -> Vec<(&'static str, String)> {
    let addr = a.master_addr.as_deref().unwrap_or("127.0.0.1");
    vec![
        ("RANK", (a.node_rank * a.nprocs + local).to_string()),
        ("LOCAL_RANK", local.to_string()),
        ("WORLD_SIZE", (a.nnodes * a.nprocs).to_string()),
        ("LOCAL_WORLD_SIZE", a.nprocs.to_string()),
        ("MASTER_ADDR", addr.to_string()),
        ("MASTER_PORT", port.to_string()),
    ]
}

pub fn launch(a: LaunchArgs) -> Result<()> {
    if a.nprocs == 0 {
        bail!("-n must be at least 1");
    }
    if a.node_rank >= a.nnodes {
        bail!(
            "--node-rank {} must be below --nnodes {}",
            a.node_rank,
            a.nnodes
        );
    }
    if a.nnodes > 1 && (a.port.is_none() || a.master_addr.is_none()) {
        bail!(
            "--nnodes {} needs --port and --master-addr (node 0's address), the same on every node",
            a.nnodes
        );
    }
    if !(a.grace_s.is_finite() && a.grace_s >= 0.0) {
        bail!(
            "--grace-s must be a non-negative number of seconds, got {}",
            a.grace_s
        );
    }
    let port = match a.port {
        Some(p) => p,
        None => std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port(),
    };
    let exe = std::env::current_exe().context("locating the dcp binary")?;
    let mut children: Vec<Child> = Vec::new();
    let mut threads = Vec::new();
    for r in 0..a.nprocs {
        let mut cmd = Command::new(&exe);
        cmd.args(&a.args)
            .envs(rank_env(&a, port, r))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Keep NVLink multicast off in every rank (shared machines).
        for (k, v) in [
            ("NCCL_NVLS_ENABLE", "0"),
            ("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1"),
            ("NVSHMEM_DISABLE_NVLS", "1"),
        ] {
            if std::env::var_os(k).is_none() {
                cmd.env(k, v);
            }
        }
        let global = a.node_rank * a.nprocs + r;
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting rank {global}"))?;
        threads.extend(forward(&mut child, global));
        children.push(child);
    }
    // After the first failure the others get a grace period to notice (their watchdogs see
    // the closed connection or the stalled step), print their own line and exit; then the
    // rest (a frozen rank never exits) are killed.
    let grace = Duration::try_from_secs_f64(a.grace_s)
        .map_err(|e| anyhow::anyhow!("--grace-s {}: {e}", a.grace_s))?;
    let mut failed: Option<(usize, String)> = None;
    let mut status: Vec<Option<String>> = vec![None; children.len()];
    let mut first_fail_at: Option<Instant> = None;
    while status.iter().any(|d| d.is_none()) {
        for (r, c) in children.iter_mut().enumerate() {
            if status[r].is_some() {
                continue;
            }
            if let Some(st) = c.try_wait()? {
                status[r] = Some(st.to_string());
                if !st.success() && failed.is_none() {
                    failed = Some((r, st.to_string()));
                    first_fail_at = Some(Instant::now());
                }
            }
        }
        if first_fail_at.is_some_and(|t| t.elapsed() >= grace) {
            for (r, c) in children.iter_mut().enumerate() {
                if status[r].is_none() {
                    let _ = c.kill();
                    let _ = c.wait();
                    status[r] = Some(format!("killed (still running {grace:?} after)"));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for t in threads {
        let _ = t.join();
    }
    if let Some((r, st)) = failed {
        let first = a.node_rank * a.nprocs;
        let others: Vec<String> = status
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != r)
            .map(|(i, s)| format!("rank {}: {}", first + i as u32, s.as_deref().unwrap_or("?")))
            .collect();
        bail!(
            "rank {} failed first ({st}); {}",
            first + r as u32,
            others.join("; ")
        );
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct KernelBenchArgs {
    /// Shapes, comma separated: causal32k, causal128k, packed (120 documents of 300-12000
    /// tokens, causal), lambda (one 32K sequence, 64 sink + 4096 window), sharedq and blockwise
    /// (one 32K sequence, shared-question 0.2:4 and causal-blockwise 256:2), works1000 (alias
    /// small1000: 1000 documents of 256 tokens, full mask: 1000 works of 256x256), onework (one
    /// 8096-token sequence, full mask: one work of the same FLOPs as works1000, within 0.02 %),
    /// full8k (one 8192-token sequence, full mask: 2.4 % more), blocks256 (full8k as dcp's
    /// own placement at block 256 plans it: 32 works × 32 KV segments over the same Q/KV).
    /// For the sparse masks' ratios at other sizes: blockwise128k, lambda128k, sharedq128k (the
    /// same masks over one 131072-token sequence), and causal8k / causal16k (dense causal with
    /// the attended FLOPs of blockwise / blockwise128k, within 2 %). Any mask over one sequence:
    /// MASK@TOKENS (e.g. causal-blockwise@65536, lambda:64:4096@16384); any mask over COUNT
    /// documents of TOKENS each: MASK@TOKENSxCOUNT (e.g. full@512x500).
    #[arg(long, default_value = "causal32k,causal128k,packed,lambda")]
    pub shapes: String,
    /// Planner of the one-GPU plan: local (one work per sequence) or ring / zigzag (world 1:
    /// one work holding every sequence, block-diagonal rows, plus the ring's merge).
    #[arg(long, default_value = "local")]
    pub planner: String,
    /// The model (the Hopper kernels take head dims 64 and 128, others run on mma.sync; the
    /// kernels take bf16 and f16).
    #[command(flatten)]
    pub model: crate::common::ModelArgs,
    /// Untimed runs per shape before timing.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Timed runs per shape (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Append JSON lines here (kind "bench", with `lens` and `mask`, readable by
    /// bench/gpu/torch_ref.py).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Deadline in seconds of every blocking step (see `bench-gpu --timeout-s`).
    #[arg(long, default_value_t = 300.0)]
    pub timeout_s: f64,
}

/// Lengths of the packed kernel-bench batch: 120 documents, log-uniform in 300..12000 tokens
/// (deterministic).
pub fn packed_lens() -> Vec<u32> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..120)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            (300.0 * (12000.0f64 / 300.0).powf(u)).round() as u32
        })
        .collect()
}

/// The kernel-bench shapes: (name, lengths, mask).
pub fn kernel_bench_shapes(names: &str) -> Result<Vec<(String, Vec<u32>, String)>> {
    csv::<String>(names, "shape")?
        .into_iter()
        .map(|n| {
            let (lens, mask) = match n.as_str() {
                "causal32k" => (vec![32768], "causal"),
                "causal128k" => (vec![131072], "causal"),
                "causal8k" => (vec![8192], "causal"),
                "causal16k" => (vec![16384], "causal"),
                "packed" => (packed_lens(), "causal"),
                "lambda" => (vec![32768], "lambda"),
                "sharedq" => (vec![32768], "shared-question"),
                "blockwise" => (vec![32768], "causal-blockwise"),
                "lambda128k" => (vec![131072], "lambda"),
                "sharedq128k" => (vec![131072], "shared-question"),
                "blockwise128k" => (vec![131072], "causal-blockwise"),
                "works1000" | "small1000" => (vec![256; 1000], "full"),
                "onework" => (vec![8096], "full"),
                "full8k" | "blocks256" => (vec![8192], "full"),
                o if o.contains('@') => {
                    let (mask, size) = o.split_once('@').unwrap_or_default();
                    MaskSpec::parse(mask).with_context(|| format!("shape `{o}`: its mask"))?;
                    let (len, count) = size.split_once('x').unwrap_or((size, "1"));
                    let positive = |v: &str, what: &str| -> Result<u32> {
                        v.parse()
                            .ok()
                            .filter(|&l| l > 0)
                            .with_context(|| format!("shape `{o}`: `{v}` is not a {what}"))
                    };
                    let len = positive(len, "token count")?;
                    let count = positive(count, "document count")?;
                    return Ok((n.clone(), vec![len; count as usize], mask.to_string()));
                }
                o => {
                    bail!(
                        "unknown shape `{o}` (or MASK@TOKENS[xCOUNT], e.g. causal-blockwise@65536, \
                         full@256x1000): \
                         allowed are causal32k, causal128k, causal8k, \
                         causal16k, packed, lambda, sharedq, blockwise, lambda128k, sharedq128k, \
                         blockwise128k, works1000 (small1000), onework, full8k, blocks256"
                    )
                }
            };
            Ok((n, lens, mask.to_string()))
        })
        .collect()
}

/// The plan of a kernel-bench shape: (planner, block size). `blocks256` is full8k planned by
/// dcp's own placement at block 256: 32 works (one per 256-row query block) of 32 KV segments
/// each, all over the same sequence's Q and KV, so 1024 (query block, key block) pairs of
/// 256 × 256 against full8k's one work of the same FLOPs and the same bytes: what many small
/// works cost the kernels themselves (works1000's 1000 separate documents also read 32× the
/// bytes). Other shapes: `--planner` at block 1024.
fn kernel_bench_plan(shape: &str, planner: &str) -> (String, u32) {
    match shape {
        "blocks256" => (dcp_core::planners::DCP_ONLY.to_string(), 256),
        _ => (planner.to_string(), 1024),
    }
}

/// `dcp kernel-bench`: the local plan on one GPU (one attention launch per direction plus the
/// pre-pass and conversions), timed per shape; prints which kernel family ran.
pub fn kernel_bench(a: KernelBenchArgs) -> Result<()> {
    let shapes = kernel_bench_shapes(&a.shapes)?;
    let timeout_s = a.timeout_s;
    with_rank(timeout_s, |rank| kernel_bench_on(rank, a, shapes))
}

fn kernel_bench_on(
    rank: &mut Rank,
    a: KernelBenchArgs,
    shapes: Vec<(String, Vec<u32>, String)>,
) -> Result<()> {
    if rank.info.world != 1 {
        bail!(
            "kernel-bench runs on one GPU (WORLD_SIZE is {})",
            rank.info.world
        );
    }
    let model = a.model.shape()?;
    if model.dtype == DType::F32 {
        bail!("kernel-bench takes --dtype bf16 or f16 (the kernels' element types), not f32");
    }
    let mut json_out = match &a.json {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening {}", p.display()))?,
        ),
        None => None,
    };
    let topo = Topology::new(1, 1);
    let mut rows = Vec::new();
    for (name, lens, mask) in &shapes {
        let (planner, block) = kernel_bench_plan(name, &a.planner);
        let mut batch = BatchSpec::uniform(lens, MaskSpec::parse(mask)?, model, block);
        batch.head_block = model.kv_heads;
        batch.validate()?;
        let plan = make_validated_plan(&planner, &batch, &topo, &PlannerOptions::default())?;
        let flops: f64 = plan_stats(&plan).device_flops.iter().sum();
        let family = rank.kernels(&batch.model)?.family();
        let inputs = GlobalInputs::new(&batch, 1);
        let (f, b, _, _) = run_plan(
            rank,
            &plan,
            a.warmup,
            a.repeats,
            &inputs,
            None,
            &mut Vec::new(),
        )?;
        let (ftf, btf) = (
            flops / (f * 1e-3) / 1e12,
            BWD_FLOP_FACTOR * flops / (b * 1e-3) / 1e12,
        );
        let rec = json!({"kind": "bench", "source": "kernel-bench", "shape": name, "mask": mask,
            "lens": lens, "tokens": batch.total_tokens(), "n_seqs": lens.len(),
            "planner": a.planner, "world": 1, "device": rank.gpu.name, "kernels": family,
            "heads": batch.model.heads, "kv_heads": batch.model.kv_heads,
            "head_dim": batch.model.head_dim, "dtype": a.model.dtype,
            "fwd_ms": f, "bwd_ms": b, "fwd_tflops_per_gpu": ftf, "bwd_tflops_per_gpu": btf,
            "attended_fwd_flops": flops});
        println!("{rec}");
        if let Some(o) = json_out.as_mut() {
            writeln!(o, "{rec}")?;
        }
        rows.push((name.clone(), family, f, b, ftf, btf));
    }
    println!(
        "\n{:<12} {:<34} {:>9} {:>9} {:>7} {:>7}",
        "shape", "kernels", "fwd ms", "bwd ms", "fwd TF", "bwd TF"
    );
    for (n, fam, f, b, ftf, btf) in rows {
        println!("{n:<12} {fam:<34} {f:>9.3} {b:>9.3} {ftf:>7.1} {btf:>7.1}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_numbers_ranks_node_by_node_and_the_ranks_read_it_back() {
        let a = LaunchArgs {
            nprocs: 4,
            port: Some(29555),
            nnodes: 2,
            node_rank: 1,
            master_addr: Some("node0.example".into()),
            grace_s: 5.0,
            args: vec!["bench-gpu".into()],
        };
        for local in 0..4 {
            let env = rank_env(&a, 29555, local);
            let info = dcp_cuda::dist::RankInfo::from_lookup(|k| {
                env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
            })
            .unwrap();
            assert_eq!(
                (info.rank, info.local_rank, info.world, info.local_world),
                (4 + local, local, 8, 4)
            );
            assert_eq!(info.nodes(), 2);
            assert_eq!(
                (info.master_addr.as_str(), info.master_port),
                ("node0.example", 29555)
            );
        }
        // One node: as before, every rank on 127.0.0.1 and planned as one node.
        let one = LaunchArgs {
            nnodes: 1,
            node_rank: 0,
            master_addr: None,
            ..a
        };
        let env = rank_env(&one, 1234, 3);
        let info = dcp_cuda::dist::RankInfo::from_lookup(|k| {
            env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        })
        .unwrap();
        assert_eq!((info.rank, info.world, info.nodes()), (3, 4, 1));
        assert_eq!(info.master_addr, "127.0.0.1");
    }

    #[test]
    fn kernel_bench_shapes_are_fixed_and_checked() {
        let l = packed_lens();
        assert_eq!(l.len(), 120);
        assert!(l.iter().all(|&x| (300..=12000).contains(&x)));
        assert_eq!(l, packed_lens(), "deterministic");
        let s = kernel_bench_shapes("causal32k,packed,lambda").unwrap();
        assert_eq!(s[0].1, vec![32768]);
        assert_eq!(s[1].1.len(), 120);
        assert_eq!(s[2].2, "lambda");
        let s = kernel_bench_shapes("works1000,onework,sharedq,blockwise").unwrap();
        assert_eq!(s[0].1, vec![256; 1000]);
        assert_eq!(s[0].2, "full");
        // One work of the same attended elements as the 1000 works, within 0.02 %.
        let (many, one) = (1000.0 * 256.0 * 256.0, 8096.0f64 * 8096.0);
        assert!((one / many - 1.0).abs() < 2e-4);
        assert_eq!(
            (s[2].2.as_str(), s[3].2.as_str()),
            ("shared-question", "causal-blockwise")
        );
        let s = kernel_bench_shapes("small1000,full8k").unwrap();
        assert_eq!(
            (s[0].1.len(), s[0].1[0], s[0].2.as_str()),
            (1000, 256, "full")
        );
        assert_eq!(
            (s[1].1.as_slice(), s[1].2.as_str()),
            (&[8192u32][..], "full")
        );
        // blocks256: full8k's sequence, planned as 32 works of 32 KV segments of 256 keys.
        let s = kernel_bench_shapes("blocks256").unwrap();
        assert_eq!(
            (s[0].1.as_slice(), s[0].2.as_str()),
            (&[8192u32][..], "full")
        );
        let (planner, block) = kernel_bench_plan("blocks256", "local");
        let mut b = BatchSpec::uniform(&s[0].1, MaskSpec::Full, ModelShape::default(), block);
        b.head_block = b.model.kv_heads;
        let plan = make_validated_plan(
            &planner,
            &b,
            &Topology::new(1, 1),
            &PlannerOptions::default(),
        )
        .unwrap();
        let works: Vec<(usize, usize)> = plan.devices[0]
            .forward
            .instrs
            .iter()
            .filter_map(|i| match i {
                dcp_core::plan::Instr::Attn { works, .. } => {
                    Some((works.len(), works.iter().map(|w| w.kv.len()).sum()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(works, vec![(32, 1024)], "32 works, 1024 KV segments in all");
        assert_eq!(
            kernel_bench_plan("full8k", "local"),
            ("local".to_string(), 1024)
        );
        // causal8k / causal16k: dense causal with (within 2 %) the attended FLOPs of the 32K /
        // 128K causal-blockwise sequences, the same-size dense reference of their ratios.
        let s = kernel_bench_shapes("causal8k,blockwise,causal16k,blockwise128k").unwrap();
        let attended = |(_, lens, mask): &(String, Vec<u32>, String)| {
            MaskSpec::parse(mask).unwrap().compile(lens[0]).count_all() as f64
        };
        for pair in s.chunks(2) {
            let r = attended(&pair[0]) / attended(&pair[1]);
            assert!(
                (0.98..1.02).contains(&r),
                "{} / {}: {r}",
                pair[0].0,
                pair[1].0
            );
        }
        let s = kernel_bench_shapes("lambda128k,sharedq128k").unwrap();
        assert_eq!(
            (s[0].1[0], s[0].2.as_str(), s[1].2.as_str()),
            (131072, "lambda", "shared-question")
        );
        let s = kernel_bench_shapes("causal-blockwise:256:2@65536,causal@100").unwrap();
        assert_eq!(
            (s[0].1.as_slice(), s[0].2.as_str(), s[1].1.as_slice()),
            (&[65536u32][..], "causal-blockwise:256:2", &[100u32][..])
        );
        let s = kernel_bench_shapes("full@512x500,causal@128x1").unwrap();
        assert_eq!(
            (s[0].1.len(), s[0].1[0], s[0].2.as_str()),
            (500, 512, "full")
        );
        assert_eq!(s[1].1, vec![128u32]);
        for bad in [
            "causal@",
            "causal@0",
            "causal@x",
            "nomask@64",
            "full@256x0",
            "full@256x",
            "full@0x4",
        ] {
            let e = kernel_bench_shapes(bad).unwrap_err();
            assert!(format!("{e:#}").contains(bad), "{bad}: {e:#}");
        }
        let e = kernel_bench_shapes("causal32k,dense")
            .unwrap_err()
            .to_string();
        assert!(e.contains("dense") && e.contains("works1000"), "{e}");
    }
}
