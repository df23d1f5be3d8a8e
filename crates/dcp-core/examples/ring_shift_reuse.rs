//! How often a ring-style plan's work equals the previous device's work at the same instruction
//! up to a token shift (issue 12 §1: could one ring step of all devices be validated as a unit?).
//!
//! A work's pairs are fixed by its row ranges and by the sequence layout of its query and KV
//! rows. Equal row ranges on neighbouring devices are necessary for the checked pairs to be the
//! same up to a shift of global rows; this counts them (forward works, same instruction and work
//! index on device d and d − 1), and how many also have equal regions.
//!
//! Usage: `cargo run --release -p dcp-core --example ring_shift_reuse -- [--budget 131072]
//! [--topology 4x8] [--planners zigzag,ring,usp,dcp] [--dataset longalign]`.

mod common;
use common::arg;

use dcp_core::datasets::{make_batches, Dataset};
use dcp_core::mask::MaskSpec;
use dcp_core::plan::Instr;
use dcp_core::planners::{make_plan, PlannerOptions};
use dcp_core::spec::{BatchSpec, ModelShape, Topology};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let budget: u64 = arg(&args, "--budget", "131072").parse().expect("--budget");
    let topo = Topology::parse(&arg(&args, "--topology", "4x8")).expect("--topology NxG");
    let dataset = Dataset::parse(&arg(&args, "--dataset", "longalign")).expect("--dataset");
    let mask = MaskSpec::parse(&arg(&args, "--mask", "causal")).expect("--mask");
    let batches = make_batches(dataset, 1.0, 1, budget, 0);
    let batch = BatchSpec::uniform(&batches[0], mask, ModelShape::default(), 1024);
    println!(
        "| planner | forward works | rows equal to device d−1's | rows and regions equal | \
         constant-range works | distinct row ranges |"
    );
    println!("|---|---|---|---|---|---|");
    for planner in arg(&args, "--planners", "zigzag,ring,usp,dcp").split(',') {
        let plan = make_plan(planner, &batch, &topo, &PlannerOptions::default()).expect(planner);
        let works = |d: usize| -> Vec<(usize, usize, &dcp_core::plan::FwdWork)> {
            let mut v = Vec::new();
            for (i, ins) in plan.devices[d].forward.instrs.iter().enumerate() {
                if let Instr::Attn { works, .. } = ins {
                    for (j, w) in works.iter().enumerate() {
                        v.push((i, j, w));
                    }
                }
            }
            v
        };
        let (mut total, mut rows_eq, mut all_eq, mut constant) = (0, 0, 0, 0);
        let mut distinct = std::collections::HashSet::new();
        for d in 0..plan.devices.len() {
            let prev = if d > 0 { works(d - 1) } else { Vec::new() };
            for (i, j, w) in works(d) {
                total += 1;
                let flat = w.rows.segs.iter().all(|s| {
                    s.ranges
                        .iter()
                        .all(|r| r.start.slope == 0 && r.end.slope == 0)
                });
                constant += flat as usize;
                distinct.insert(format!("{:?}", w.rows));
                if let Some((_, _, p)) = prev.iter().find(|(pi, pj, _)| (*pi, *pj) == (i, j)) {
                    if p.rows == w.rows {
                        rows_eq += 1;
                        if p.q == w.q && p.kv == w.kv && p.o == w.o && p.lse == w.lse {
                            all_eq += 1;
                        }
                    }
                }
            }
        }
        println!(
            "| {planner} | {total} | {rows_eq} | {all_eq} | {constant} | {} |",
            distinct.len()
        );
    }
}
