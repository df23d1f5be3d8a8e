//! val14 measurement build only (needs the `validate::KNOB` hook): one plan, validations with
//! knob A and knob B alternated in one process (same binary, same layout, the same load on
//! both), CPU time per validation; prints the medians and the median of per-pair ratios B / A.
use dcp_core::datasets::{make_batches, Dataset};
use dcp_core::mask::MaskSpec;
use dcp_core::planners::{make_plan, PlannerOptions};
use dcp_core::spec::{BatchSpec, ModelShape, Topology};
use dcp_core::validate::{validate_with, Threads, KNOB};
use std::sync::atomic::Ordering;

fn cpu_ms() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let topo = Topology::parse(&a[0]).unwrap();
    let budget: u64 = a[1].parse().unwrap();
    let planner = &a[2];
    let pairs: usize = a[3].parse().unwrap();
    let ka: u32 = u32::from_str_radix(&a[4], 2).unwrap();
    let kb: u32 = u32::from_str_radix(&a[5], 2).unwrap();
    let mode = match a.get(6).map(String::as_str) { Some("seq") => Threads::Sequential, _ => Threads::Ahead };
    let batches = make_batches(Dataset::parse("longalign").unwrap(), 1.0, 1, budget, 0);
    let batch = BatchSpec::uniform(&batches[0], MaskSpec::parse("causal").unwrap(), ModelShape::default(), 1024);
    let plan = make_plan(planner, &batch, &topo, &PlannerOptions::default()).unwrap();
    let t = cpu_ms();
    let _ = make_plan(planner, &batch, &topo, &PlannerOptions::default()).unwrap();
    let plan_ms = cpu_ms() - t;
    let run = |k: u32| {
        KNOB.store(k, Ordering::Relaxed);
        let t = cpu_ms();
        validate_with(&plan, mode).unwrap();
        cpu_ms() - t
    };
    run(ka);
    run(kb);
    let (mut va, mut vb, mut r) = (vec![], vec![], vec![]);
    for i in 0..pairs {
        let (x, y) = if i % 2 == 0 { let x = run(ka); (x, run(kb)) } else { let y = run(kb); (run(ka), y) };
        va.push(x); vb.push(y); r.push(y / x);
    }
    let med = |mut v: Vec<f64>| { v.sort_by(f64::total_cmp); v[v.len() / 2] };
    let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("{} {budget} {planner} {mode:?} knobs {:b} vs {:b}: plan {:.2} ms, A {:.3} ms, B {:.3} ms, B/A median of {pairs} pairs {:.3} (load {})",
        a[0], ka, kb, plan_ms, med(va), med(vb), med(r), l.split(' ').next().unwrap_or("?"));
}
