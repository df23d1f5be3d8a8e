//! Validator benchmark (issue 12): validation time against planning time of the same plan, for
//! `dcp` and `zigzag` plans of longalign batches (the same batches `dcp plan` makes with its
//! defaults: seed 0, scale 1, causal, block 1024, 8 heads / 2 KV heads / dim 128).
//!
//! Usage: `cargo run --release -p dcp-core --example validator_bench -- [--budgets 131072,400000]
//! [--count 2] [--topology 4x8] [--repeats 3] [--plan-repeats R] [--interleave] [--planners dcp,zigzag] [--dataset longalign|ldc]
//! [--mask causal|lambda|...] [--threads 1] [--mode auto|sequential|phases|flow] [--relayout | --relayout2]`
//! (the mask as `MaskSpec::parse`
//! reads it). Prints a markdown table, one row per plan;
//! a planner that cannot plan a batch gets a row saying why. Planning and validation are each
//! run `--repeats` times and the median is reported (the first planning of a batch also pays for
//! cold caches and fresh pages; the medians compare warm to warm), wall and thread CPU time; CPU
//! ratio = validate / plan CPU time. Planners are single-threaded, so thread CPU time is their
//! whole cost. Validation runs in a rayon pool of `--threads` threads with `Threads::Auto`
//! (sequential on one thread, and then no pool is made) or the `--mode` given; its CPU time is
//! the whole process's (all threads), its wall time the elapsed time.

mod common;
use common::arg;

use std::time::Instant;

use dcp_core::datasets::{make_batches, Dataset};
use dcp_core::mask::MaskSpec;
use dcp_core::plan::Instr;
use dcp_core::planners::{make_plan, PlannerOptions};
use dcp_core::spec::{BatchSpec, ModelShape, Topology};
use dcp_core::validate::{
    auto_choice, one_thread_choice, validate_with, Threads, AHEAD_MIN_DEVICES,
};

/// CPU time of this thread in ms (`clock_gettime`): unlike wall time, not inflated when other
/// processes share the cores. (`/proc/thread-self/schedstat`, read here before, is all zeros on
/// kernels without schedstats, such as the VM these numbers are measured on.)
fn thread_cpu_ms() -> Option<f64> {
    cpu_ms(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time of all this process's threads in ms (`clock_gettime`).
fn process_cpu_ms() -> Option<f64> {
    cpu_ms(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn cpu_ms(clock: libc::clockid_t) -> Option<f64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let budgets: Vec<u64> = arg(&args, "--budgets", "131072,400000,1000000")
        .split(',')
        .map(|s| s.parse().expect("--budgets: comma-separated token counts"))
        .collect();
    let count: usize = arg(&args, "--count", "2").parse().expect("--count");
    let repeats: usize = arg(&args, "--repeats", "3").parse().expect("--repeats");
    // Planning runs (default: as many as validations); 1 for profiling validation alone.
    let plan_repeats: usize = arg(&args, "--plan-repeats", &repeats.to_string())
        .parse()
        .expect("--plan-repeats");
    // Plan and validate in turn, as a training loop does (each planning follows the previous
    // validation, each validation its planning), instead of all plannings first.
    let interleave = args.iter().any(|a| a == "--interleave");
    // Validate a fresh deep copy of each plan (made untimed): its heap objects then lie device
    // by device, in the order validation reads them, whatever order the planner built them in.
    let relayout = args.iter().any(|a| a == "--relayout");
    // Like --relayout, but every device's forward program first, then every backward one (the
    // order in which validation reads them).
    let relayout2 = args.iter().any(|a| a == "--relayout2");
    // Hardware counters of this thread around each planning and validation (one thread only).
    let hw = args.iter().any(|a| a == "--counters").then(|| {
        let (c, refused) = common::counters::Counters::open();
        for r in &refused {
            eprintln!("--counters: not counted: {r}");
        }
        c
    });
    let mut hw_rows: Vec<String> = Vec::new();
    let planners: Vec<String> = arg(&args, "--planners", "dcp,zigzag")
        .split(',')
        .map(String::from)
        .collect();
    let topo = Topology::parse(&arg(&args, "--topology", "4x8")).expect("--topology NxG");
    let dataset = Dataset::parse(&arg(&args, "--dataset", "longalign")).expect("--dataset");
    let mask = MaskSpec::parse(&arg(&args, "--mask", "causal")).expect("--mask");
    let threads: usize = arg(&args, "--threads", "1").parse().expect("--threads");
    let mode = match arg(&args, "--mode", "auto").as_str() {
        "auto" => Threads::Auto,
        "sequential" => Threads::Sequential,
        "phases" => Threads::Phases,
        "flow" => Threads::Flow,
        "ahead" => Threads::Ahead,
        "aheadpar" => Threads::AheadPar,
        m => panic!("--mode {m}: one of auto, sequential, phases, flow, ahead, aheadpar"),
    };
    if hw.is_some() && threads > 1 {
        panic!("--counters counts this thread only: use it with --threads 1");
    }
    // One thread and no parallel mode asked: no pool at all. A process that has started a
    // thread pays for locked malloc/free (glibc skips the locks while a process has one
    // thread), which slowed allocation-heavy planning here by up to 1.6×.
    // Otherwise rayon's global pool with that many threads, and validation called from this
    // (main) thread, as `dcp` calls it: `Auto` then decides as it does there (a local pool's
    // `install` would run it on a worker, where `Auto` never takes phases).
    let pool = threads > 1 || matches!(mode, Threads::Phases | Threads::Flow | Threads::AheadPar);
    if pool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .expect("rayon's global pool, built once");
    }
    let model = ModelShape::default();
    let order = match (pool, mode) {
        (false, Threads::Auto) => {
            format!(
                "Auto on one thread: Ahead from {AHEAD_MIN_DEVICES} devices on, else Sequential"
            )
        }
        _ => format!("{mode:?}"),
    };
    println!(
        "dataset {}, mask {}, topology {}, validation on {threads} thread(s), {order}",
        dataset.name(),
        mask.name(),
        arg(&args, "--topology", "4x8")
    );
    println!();
    println!(
        "| planner | budget | batch | tokens | seqs | instrs | works | plan KB | plan ms | plan CPU ms | validate ms | validate CPU ms | CPU ratio | wall ratio | order |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &budget in &budgets {
        let batches = make_batches(dataset, 1.0, count, budget, 0);
        for planner in planners.iter().map(String::as_str) {
            for (bi, lens) in batches.iter().enumerate() {
                let batch = BatchSpec::uniform(lens, mask.clone(), model, 1024);
                let median = |mut v: Vec<f64>| {
                    v.sort_by(|a, b| a.total_cmp(b));
                    v[v.len() / 2]
                };
                let zero = common::counters::Sample::zero();
                let (hw_plan, hw_val) = (std::cell::Cell::new(zero), std::cell::Cell::new(zero));
                let add = |acc: &std::cell::Cell<common::counters::Sample>,
                           d: common::counters::Sample| {
                    let mut a = acc.get();
                    a.add(d);
                    acc.set(a);
                };
                let sample = || hw.as_ref().map(|c| c.sample());
                let validate_once = |plan: &dcp_core::plan::Plan| {
                    let copy = if relayout2 {
                        // The programs copied first, all forwards then all backwards; the rest
                        // of the copy's (its own programs replaced) after them.
                        let fwd: Vec<_> = plan.devices.iter().map(|d| d.forward.clone()).collect();
                        let bwd: Vec<_> = plan.devices.iter().map(|d| d.backward.clone()).collect();
                        let mut p = plan.clone();
                        for ((d, f), b) in p.devices.iter_mut().zip(fwd).zip(bwd) {
                            (d.forward, d.backward) = (f, b);
                        }
                        Some(p)
                    } else {
                        relayout.then(|| plan.clone())
                    };
                    let plan = copy.as_ref().unwrap_or(plan);
                    let h0 = sample();
                    let (t, c) = (Instant::now(), process_cpu_ms());
                    match pool {
                        true => validate_with(plan, mode),
                        // One thread: `auto` runs what `validate` runs on one thread (run
                        // ahead from AHEAD_MIN_DEVICES on), the others the order asked.
                        false if mode == Threads::Auto => {
                            validate_with(plan, one_thread_choice(plan))
                        }
                        false => validate_with(plan, mode),
                    }
                    .expect("planner output is valid");
                    let c = process_cpu_ms().zip(c).map(|(b, a)| b - a);
                    if let (Some(a), Some(b)) = (h0, sample()) {
                        add(&hw_val, b.since(&a));
                    }
                    (t.elapsed().as_secs_f64() * 1e3, c.unwrap_or(f64::NAN))
                };
                let (mut plan, mut plan_ms, mut plan_cpu) = (None, Vec::new(), Vec::new());
                let (mut ms, mut cpu) = (Vec::new(), Vec::new());
                let plan_runs = if interleave { repeats } else { plan_repeats };
                for _ in 0..plan_runs.max(1) {
                    // The previous plan is dropped outside the timed part.
                    drop(plan.take());
                    let h0 = sample();
                    let (t0, c0) = (Instant::now(), thread_cpu_ms());
                    match make_plan(planner, &batch, &topo, &PlannerOptions::default()) {
                        Ok(p) => plan = Some(p),
                        Err(e) => {
                            // A planner that cannot plan this batch on this topology (ulysses
                            // with more devices than heads): say so in the table and go on.
                            println!("| {planner} | {budget} | {bi} | – | – | – | – | – | – | – | – | – | not planned: {e} |");
                            break;
                        }
                    }
                    plan_ms.push(t0.elapsed().as_secs_f64() * 1e3);
                    if let (Some(a), Some(b)) = (h0, sample()) {
                        add(&hw_plan, b.since(&a));
                    }
                    plan_cpu.push(thread_cpu_ms().zip(c0).map_or(f64::NAN, |(b, a)| b - a));
                    if let (true, Some(p)) = (interleave, &plan) {
                        let (m, c) = validate_once(p);
                        ms.push(m);
                        cpu.push(c);
                    }
                }
                let Some(plan) = plan else { continue };
                let (plan_ms, plan_cpu) = (median(plan_ms), median(plan_cpu));
                if !interleave {
                    (ms, cpu) = (0..repeats.max(1)).map(|_| validate_once(&plan)).unzip();
                }
                let (v, c) = (median(ms), median(cpu));
                let instrs: usize = plan
                    .devices
                    .iter()
                    .map(|d| d.forward.instrs.len() + d.backward.instrs.len())
                    .sum();
                let works: usize = plan
                    .devices
                    .iter()
                    .flat_map(|d| d.forward.instrs.iter().chain(&d.backward.instrs))
                    .map(|i| match i {
                        Instr::Attn { works, .. } => works.len(),
                        Instr::AttnBwd { works, .. } => works.len(),
                        _ => 0,
                    })
                    .sum();
                let kb = plan.to_bytes().len() / 1024;
                // The order validation ran (Auto: what `validate` chose from this thread).
                let ran = match (pool, mode) {
                    (true, Threads::Auto) => auto_choice(&plan),
                    (false, Threads::Auto) => one_thread_choice(&plan),
                    (_, m) => m,
                };
                println!(
                    "| {planner} | {budget} | {bi} | {} | {} | {instrs} | {works} | {kb} | {plan_ms:.3} | {plan_cpu:.3} | {v:.3} | {c:.3} | {:.2} | {:.2} | {ran:?} |",
                    batch.total_tokens(),
                    lens.len(),
                    c / plan_cpu,
                    v / plan_ms
                );
                if hw.is_some() {
                    // Per plan instruction, summed over all runs of each half.
                    let per = |s: common::counters::Sample, runs: usize| {
                        let k = (instrs * runs.max(1)) as f64;
                        s.0.map(|v| v.map_or("–".to_string(), |v| format!("{:.2}", v as f64 / k)))
                    };
                    let (p, v) = (per(hw_plan.get(), plan_runs), per(hw_val.get(), repeats));
                    for (half, x) in [("plan", p), ("validate", v)] {
                        hw_rows.push(format!(
                            "| {planner} | {budget} | {bi} | {half} | {} |",
                            x.join(" | ")
                        ));
                    }
                }
            }
        }
    }
    if !hw_rows.is_empty() {
        println!();
        println!(
            "Hardware counters per plan instruction (this thread, user space; all runs of each half):"
        );
        println!();
        println!(
            "| planner | budget | batch | half | {} |",
            common::counters::Counters::names().join(" | ")
        );
        println!("|---|---|---|---|{}", "---|".repeat(common::counters::N));
        for r in hw_rows {
            println!("{r}");
        }
    }
}
