//! Scratch (val14 measurement build): where a validation's time goes, by sampling the category
//! the validator is in (`validate::prof::CUR`) from a 5 kHz CLOCK_MONOTONIC timer signal.
use dcp_core::datasets::{make_batches, Dataset};
use dcp_core::mask::MaskSpec;
use dcp_core::planners::{make_plan, PlannerOptions};
use dcp_core::spec::{BatchSpec, ModelShape, Topology};
use dcp_core::validate::{prof, validate_with, Threads};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

static HIST: [AtomicU64; 32] = [const { AtomicU64::new(0) }; 32];
static ON: AtomicBool = AtomicBool::new(false);

extern "C" fn on_tick(_: libc::c_int) {
    if ON.load(Ordering::Relaxed) {
        let k = prof::CUR.load(Ordering::Relaxed) as usize;
        HIST[k.min(31)].fetch_add(1, Ordering::Relaxed);
    }
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let topo = Topology::parse(&a[0]).unwrap();
    let budget: u64 = a[1].parse().unwrap();
    let planner = &a[2];
    let runs: usize = a[3].parse().unwrap();
    let mode = if a.get(4).map(String::as_str) == Some("seq") { Threads::Sequential } else { Threads::Ahead };
    let batches = make_batches(Dataset::parse("longalign").unwrap(), 1.0, 1, budget, 0);
    let batch = BatchSpec::uniform(&batches[0], MaskSpec::parse("causal").unwrap(), ModelShape::default(), 1024);
    unsafe {
        libc::signal(libc::SIGALRM, on_tick as *const () as libc::sighandler_t);
        let mut sev: libc::sigevent = std::mem::zeroed();
        sev.sigev_notify = libc::SIGEV_SIGNAL;
        sev.sigev_signo = libc::SIGALRM;
        let mut tid: libc::timer_t = std::mem::zeroed();
        assert_eq!(libc::timer_create(libc::CLOCK_MONOTONIC, &mut sev, &mut tid), 0);
        let its = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 200_000 },
            it_value: libc::timespec { tv_sec: 0, tv_nsec: 200_000 },
        };
        assert_eq!(libc::timer_settime(tid, 0, &its, std::ptr::null_mut()), 0);
    }
    let (mut plan_ms, mut val_ms) = (vec![], vec![]);
    for i in 0..runs + 1 {
        let t = Instant::now();
        let plan = make_plan(planner, &batch, &topo, &PlannerOptions::default()).unwrap();
        plan_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        ON.store(i > 0, Ordering::Relaxed);
        validate_with(&plan, mode).unwrap();
        ON.store(false, Ordering::Relaxed);
        val_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    plan_ms.sort_by(f64::total_cmp);
    val_ms.sort_by(f64::total_cmp);
    let vmed = val_ms[val_ms.len() / 2];
    let total: u64 = HIST.iter().map(|h| h.load(Ordering::Relaxed)).sum();
    println!("{} {budget} {planner} {mode:?}: plan median {:.2} ms, validate median {:.2} ms (wall, with the timer), {total} samples over {runs} validations",
        a[0], plan_ms[plan_ms.len() / 2], vmed);
    println!("| category | share | ≈ ms of the median |");
    println!("|---|---|---|");
    for k in 0..32 {
        let n = HIST[k].load(Ordering::Relaxed);
        if n == 0 { continue; }
        let f = n as f64 / total as f64;
        println!("| {} | {:.1} % | {:.2} |", prof::NAMES[k], 100.0 * f, f * vmed);
    }
}
