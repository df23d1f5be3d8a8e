//! Run-ahead validation (`Threads::Ahead`, and in blocks on a thread pool, `Threads::AheadPar`)
//! against the sequential validator on large plans broken at random: all must give the same
//! result, the same error included (the test suite's random mutations use small plans, whose
//! devices' inboxes stay short).
//!
//! Usage: `cargo run --release -p dcp-core --example ahead_soak -- [--budget 131072]
//! [--topology 16x8] [--planners ring,zigzag,usp,dcp] [--cases 40] [--seed 1] [--threads 4]`. Exits with
//! status 1 on the first disagreement.

mod common;
use common::arg;

use dcp_core::datasets::{make_batches, Dataset};
use dcp_core::mask::MaskSpec;
use dcp_core::plan::{Dir, Instr, Plan};
use dcp_core::planners::{make_plan, PlannerOptions};
use dcp_core::spec::{BatchSpec, ModelShape, Topology};
use dcp_core::validate::{validate_with, Threads};
use rand::{Rng, SeedableRng};

/// `plan` broken at random: an instruction dropped, swapped with the next or repeated; or, in a
/// comm instruction, an op dropped or repeated, its peer, direction or length changed, or the
/// tag raised. `None` when the drawn program has nothing to break.
fn mutate(rng: &mut rand_chacha::ChaCha8Rng, plan: &Plan) -> Option<Plan> {
    let mut p = plan.clone();
    let n_dev = p.devices.len() as u32;
    let d = rng.random_range(0..p.devices.len());
    let prog = if rng.random_bool(0.5) {
        &mut p.devices[d].forward
    } else {
        &mut p.devices[d].backward
    };
    let n = prog.instrs.len();
    if n < 2 {
        return None;
    }
    let kind = rng.random_range(0..9);
    if kind < 3 {
        let i = rng.random_range(0..n - 1);
        match kind {
            0 => drop(prog.instrs.remove(i)),
            1 => prog.instrs.swap(i, i + 1),
            _ => {
                let x = prog.instrs[i].clone();
                prog.instrs.insert(i, x);
            }
        }
        return Some(p);
    }
    let comms: Vec<usize> = (0..n)
        .filter(|&i| matches!(&prog.instrs[i], Instr::Comm { ops, .. } if !ops.is_empty()))
        .collect();
    if comms.is_empty() {
        return None;
    }
    let i = comms[rng.random_range(0..comms.len())];
    let Instr::Comm { tag, ops } = &mut prog.instrs[i] else {
        unreachable!()
    };
    let j = rng.random_range(0..ops.len());
    match kind {
        3 => {
            ops.remove(j);
        }
        4 => {
            let op = ops[j];
            ops.insert(j, op);
        }
        5 => ops[j].peer = (ops[j].peer + 1 + rng.random_range(0..n_dev)) % (n_dev + 1),
        6 => {
            ops[j].dir = match ops[j].dir {
                Dir::Send => Dir::Recv,
                Dir::Recv => Dir::Send,
            }
        }
        7 => ops[j].region.len = ops[j].region.len.saturating_sub(1),
        _ => *tag += 1,
    }
    Some(p)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let budget: u64 = arg(&args, "--budget", "131072").parse().expect("--budget");
    let topo_name = arg(&args, "--topology", "16x8");
    let topo = Topology::parse(&topo_name).expect("--topology NxG");
    let cases: usize = arg(&args, "--cases", "40").parse().expect("--cases");
    let seed: u64 = arg(&args, "--seed", "1").parse().expect("--seed");
    let planners = arg(&args, "--planners", "ring,zigzag,usp,dcp");
    // Run-ahead in blocks (`Threads::AheadPar`) on a pool of this many threads.
    let threads: usize = arg(&args, "--threads", "4").parse().expect("--threads");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool");
    let lens = &make_batches(Dataset::parse("longalign").unwrap(), 1.0, 1, budget, 0)[0];
    let batch = BatchSpec::uniform(lens, MaskSpec::Causal, ModelShape::default(), 1024);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for planner in planners.split(',') {
        let plan = match make_plan(planner, &batch, &topo, &PlannerOptions::default()) {
            Ok(p) => p,
            Err(e) => {
                println!("{planner}: not planned ({e})");
                continue;
            }
        };
        let ok = validate_with(&plan, Threads::Ahead);
        assert_eq!(ok, Ok(()), "{planner}: the plan itself");
        let ok = pool.install(|| validate_with(&plan, Threads::AheadPar));
        assert_eq!(
            ok,
            Ok(()),
            "{planner}: the plan itself, run ahead in blocks"
        );
        let (mut refused, mut accepted) = (0, 0);
        for _ in 0..cases {
            let Some(bad) = mutate(&mut rng, &plan) else {
                continue;
            };
            let seq = validate_with(&bad, Threads::Sequential);
            let ahead = validate_with(&bad, Threads::Ahead);
            if seq != ahead {
                println!("{planner}: DISAGREE: sequential {seq:?}, ahead {ahead:?}");
                std::process::exit(1);
            }
            let par = pool.install(|| validate_with(&bad, Threads::AheadPar));
            if seq != par {
                println!("{planner}: DISAGREE: sequential {seq:?}, ahead in blocks {par:?}");
                std::process::exit(1);
            }
            if seq.is_ok() {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
        println!(
            "{planner} on {topo_name}, {budget} tokens: {refused} broken plans refused, \
             {accepted} accepted, all alike"
        );
    }
}
