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
use dcp_core::planners::{make_plan, make_validated_plan, PlannerOptions};
use dcp_core::spec::{BatchSpec, DType, ModelShape, Topology};
use dcp_core::stats::plan_stats;
use dcp_core::validate::ValidatedPlan;
use dcp_cuda::fault::Fault;
use dcp_cuda::runner::{
    compare_global, cpu_reference, median, to_global, ErrReport, ErrSums, PlanRun, Rank,
    RankOptions,
};
use dcp_cuda::watchdog::{exit_if_stalled, exit_stalled, OnExpiry};
use dcp_cuda::CudaError;
use serde_json::json;

use crate::common::{planner_list, progress, BatchArgs};
use dcp_core::flops::BWD_FLOP_FACTOR;

#[derive(Args, Debug)]
pub struct BenchGpuArgs {
    #[command(flatten)]
    pub batch: BatchArgs,
    #[arg(long, default_value = "ring,zigzag,local,dcp",
          help = crate::common::planner_help("Planners to run, comma separated"))]
    pub planners: String,
    /// Token block sizes, comma separated.
    #[arg(long, default_value = "1024")]
    pub block_sizes: String,
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
    /// Sequence lengths for the attention curve.
    #[arg(long, default_value = "2048,8192,32768")]
    pub lens: String,
}

#[derive(Args, Debug)]
pub struct LaunchArgs {
    /// Number of local ranks (one per GPU).
    #[arg(short = 'n', long, default_value_t = 1)]
    pub nprocs: u32,
    /// Rendezvous port (default: a free one).
    #[arg(long)]
    pub port: Option<u16>,
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

/// Runs one plan: timings (median over repeats of the max over ranks) and an optional check.
fn run_plan(
    rank: &mut Rank,
    plan: &ValidatedPlan,
    warmup: usize,
    repeats: usize,
    seed: u64,
    reference: Option<&dcp_core::cpu::Outputs>,
) -> Result<(f64, f64, Option<ErrReport>)> {
    let dev = rank.info.rank as usize;
    let run = PlanRun::new(rank, plan, dev)?;
    run.load_inputs(rank, &plan.batch, seed)?;
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
            let out = run.outputs(rank)?;
            let mut e: ErrSums =
                compare_global(&plan.batch, &run.tokens, &out, &r.o, &r.lse, &r.dq, &r.dkv);
            rank.allreduce(&mut e.v, false)?;
            Some(e.report())
        }
    };
    Ok((median(&f), median(&b), check))
}

/// Reference outputs of a batch: CPU f64 when small, else the `local` plan on this GPU alone.
fn reference(
    rank: &mut Rank,
    batch: &BatchSpec,
    seed: u64,
    cpu_max: u64,
) -> Result<dcp_core::cpu::Outputs> {
    if batch.total_tokens() <= cpu_max {
        return Ok(cpu_reference(batch, seed));
    }
    let plan = make_validated_plan(
        "local",
        batch,
        &Topology::new(1, 1),
        &PlannerOptions::default(),
    )?;
    let run = PlanRun::new(rank, &plan, 0)?;
    run.load_inputs(rank, batch, seed)?;
    run.fwd.enqueue(&rank.gpu, &run.kernels, None)?;
    run.fwd.finish(&rank.gpu, None, " (reference)")?;
    run.feed_backward(rank)?;
    run.bwd.enqueue(&rank.gpu, &run.kernels, None)?;
    run.bwd.finish(&rank.gpu, None, " (reference)")?;
    let out = run.outputs(rank)?;
    Ok(to_global(batch, &run.tokens, &out))
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
    let planners: Vec<String> = planner_list(&a.planners)?;
    let timeout_s = a.timeout_s;
    with_rank(timeout_s, |rank| bench_gpu_on(rank, a, planners))
}

fn bench_gpu_on(rank: &mut Rank, a: BenchGpuArgs, planners: Vec<String>) -> Result<()> {
    let world = rank.info.world;
    let topo = Topology::new(1, world);
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
            "bench-gpu: {} ({}), world {world}, arch {}",
            rank.gpu.name,
            rank.gpu.ordinal,
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
        (None, None) => bench_batches(&a, &mut b)?,
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
        let r = cpu_reference(batch, a.data_seed + case);
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
            let (f, b, c) = run_plan(bench.rank, &plan, 0, 1, a.data_seed + case, Some(&r))?;
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

/// The dataset or batch-file batches: timings per batch × block size × planner.
fn bench_batches(a: &BenchGpuArgs, bench: &mut Bench) -> Result<()> {
    let (world, is0, planners, topo) = (bench.world, bench.is0, bench.planners.clone(), bench.topo);
    let lens = a.batch.lengths()?;
    let bss: Vec<u32> = csv(&a.block_sizes, "block size")?;
    let n = (lens.len() * bss.len() * planners.len()) as u64;
    let pb = if is0 {
        progress(
            n,
            "bench-gpu",
            &format!(
                "timing {n} plans (batch × block size × planner) on {world} GPU(s): each is planned, uploaded, then run {} + {} times per pass{}",
                a.warmup,
                a.repeats,
                if a.check { "; --check first computes a reference per batch (the CPU one is slow)" } else { "" }
            ),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    for (bi, l) in lens.iter().enumerate() {
        for &bs in &bss {
            let batch = a.batch.batch(l, bs)?;
            let reference = if a.check {
                Some(reference(
                    bench.rank,
                    &batch,
                    a.data_seed,
                    a.cpu_check_tokens,
                )?)
            } else {
                None
            };
            for p in &planners {
                let t0 = Instant::now();
                let plan = make_plan(p, &batch, &topo, &PlannerOptions::default())?;
                let plan_s = t0.elapsed().as_secs_f64();
                let plan = ValidatedPlan::new(plan)?;
                let st = plan_stats(&plan);
                let flops: f64 = st.device_flops.iter().sum();
                let (f, b, c) = run_plan(
                    bench.rank,
                    &plan,
                    a.warmup,
                    a.repeats,
                    a.data_seed,
                    reference.as_ref(),
                )?;
                if let Some(c) = &c {
                    if !c.pass {
                        bench.failures += 1;
                    }
                }
                let kernels = bench.rank.kernels(&batch.model)?.family();
                let ftf = flops / world as f64 / (f * 1e-3) / 1e12;
                let btf = BWD_FLOP_FACTOR * flops / world as f64 / (b * 1e-3) / 1e12;
                if is0 {
                    let rec = json!({"kind": "bench", "batch": bi, "source": a.batch.source_name(),
                        "mask": a.batch.mask, "planner": p, "block_size": bs, "world": world,
                        "device": bench.rank.gpu.name, "kernels": kernels, "tokens": batch.total_tokens(), "n_seqs": l.len(), "lens": l,
                        "fwd_ms": f, "bwd_ms": b, "fwd_tflops_per_gpu": ftf, "bwd_tflops_per_gpu": btf,
                        "attended_fwd_flops": flops, "fwd_bytes": st.fwd_bytes_intra + st.fwd_bytes_inter,
                        "bwd_bytes": st.bwd_bytes_intra + st.bwd_bytes_inter,
                        "compute_imbalance": st.compute_imbalance, "plan_s": plan_s, "check": c});
                    bench.record(&rec, Some(&pb))?;
                    bench.rows.push(Row {
                        name: format!("{}#{bi} {}", a.batch.source_name(), a.batch.mask),
                        planner: p.clone(),
                        bs,
                        fwd_ms: f,
                        bwd_ms: b,
                        fwd_tflops: ftf,
                        bwd_tflops: btf,
                        mib: (st.fwd_bytes_intra
                            + st.fwd_bytes_inter
                            + st.bwd_bytes_intra
                            + st.bwd_bytes_inter) as f64
                            / (1 << 20) as f64,
                        check: fmt_check(&c),
                    });
                }
                pb.inc(1);
            }
        }
    }
    pb.finish_and_clear();
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

pub fn launch(a: LaunchArgs) -> Result<()> {
    if a.nprocs == 0 {
        bail!("-n must be at least 1");
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
            .env("RANK", r.to_string())
            .env("LOCAL_RANK", r.to_string())
            .env("WORLD_SIZE", a.nprocs.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
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
        let mut child = cmd.spawn().with_context(|| format!("starting rank {r}"))?;
        threads.extend(forward(&mut child, r));
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
        let others: Vec<String> = status
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != r)
            .map(|(i, s)| format!("rank {i}: {}", s.as_deref().unwrap_or("?")))
            .collect();
        bail!("rank {r} failed first ({st}); {}", others.join("; "));
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct KernelBenchArgs {
    /// Shapes, comma separated: causal32k, causal128k, packed (120 documents of 300-12000
    /// tokens, causal), lambda (one 32K sequence, 64 sink + 4096 window).
    #[arg(long, default_value = "causal32k,causal128k,packed,lambda")]
    pub shapes: String,
    /// Query heads.
    #[arg(long, default_value_t = 8)]
    pub heads: u32,
    /// KV heads (GQA: heads must be a multiple).
    #[arg(long, default_value_t = 2)]
    pub kv_heads: u32,
    /// Head dimension (the Hopper kernels take 64 and 128; others run on mma.sync).
    #[arg(long, default_value_t = 128)]
    pub head_dim: u32,
    /// bf16 or f16.
    #[arg(long, default_value = "bf16")]
    pub dtype: String,
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
                "packed" => (packed_lens(), "causal"),
                "lambda" => (vec![32768], "lambda"),
                o => {
                    bail!("unknown shape `{o}`: allowed are causal32k, causal128k, packed, lambda")
                }
            };
            Ok((n, lens, mask.to_string()))
        })
        .collect()
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
    let dtype = match a.dtype.as_str() {
        "bf16" => DType::Bf16,
        "f16" | "fp16" => DType::F16,
        o => bail!("unknown dtype `{o}`: kernel-bench takes bf16 or f16"),
    };
    let model = ModelShape {
        heads: a.heads,
        kv_heads: a.kv_heads,
        head_dim: a.head_dim,
        dtype,
    };
    model.validate()?;
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
        let mut batch = BatchSpec::uniform(lens, MaskSpec::parse(mask)?, model, 1024);
        batch.head_block = model.kv_heads;
        batch.validate()?;
        let plan = make_validated_plan("local", &batch, &topo, &PlannerOptions::default())?;
        let flops: f64 = plan_stats(&plan).device_flops.iter().sum();
        let family = rank.kernels(&batch.model)?.family();
        let (f, b, _) = run_plan(rank, &plan, a.warmup, a.repeats, 1, None)?;
        let (ftf, btf) = (
            flops / (f * 1e-3) / 1e12,
            BWD_FLOP_FACTOR * flops / (b * 1e-3) / 1e12,
        );
        let rec = json!({"kind": "bench", "source": "kernel-bench", "shape": name, "mask": mask,
            "lens": lens, "tokens": batch.total_tokens(), "n_seqs": lens.len(),
            "planner": "local", "world": 1, "device": rank.gpu.name, "kernels": family,
            "heads": batch.model.heads, "kv_heads": batch.model.kv_heads,
            "head_dim": batch.model.head_dim, "dtype": a.dtype,
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
    fn kernel_bench_shapes_are_fixed_and_checked() {
        let l = packed_lens();
        assert_eq!(l.len(), 120);
        assert!(l.iter().all(|&x| (300..=12000).contains(&x)));
        assert_eq!(l, packed_lens(), "deterministic");
        let s = kernel_bench_shapes("causal32k,packed,lambda").unwrap();
        assert_eq!(s[0].1, vec![32768]);
        assert_eq!(s[1].1.len(), 120);
        assert_eq!(s[2].2, "lambda");
        let e = kernel_bench_shapes("causal32k,dense")
            .unwrap_err()
            .to_string();
        assert!(e.contains("dense") && e.contains("causal128k"), "{e}");
    }
}
