//! Per-instruction kernel times of one plan of a built-in dataset batch (diagnostics).
//! `cargo run --release -p dcp-sim --example plan_costs -- DATASET MASK PLANNER BATCH NDEV PROFILE`

use dcp_core::datasets::{make_batches, Dataset, DEFAULT_BUDGET};
use dcp_core::mask::MaskSpec;
use dcp_core::plan::Instr;
use dcp_core::planners::{make_plan, PlannerOptions};
use dcp_core::spec::{BatchSpec, ModelShape, Topology};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let ds = Dataset::parse(&a[1]).unwrap();
    let mask = MaskSpec::parse(&a[2]).unwrap();
    let bi: usize = a[4].parse().unwrap();
    let ndev: u32 = a[5].parse().unwrap();
    let (prof, _) = dcp_sim::Profile::load(&a[6]).unwrap();
    let hw = dcp_sim::Hardware::new(prof);
    let lens = make_batches(ds, 1.0, bi + 1, DEFAULT_BUDGET, 0);
    let batch = BatchSpec::uniform(&lens[bi], mask, ModelShape::default(), 1024);
    let topo = Topology::parse(&format!("1x{ndev}")).unwrap();
    let plan = make_plan(&a[3], &batch, &topo, &PlannerOptions::default()).unwrap();
    for (d, dp) in plan.devices.iter().enumerate() {
        for (bwd, prog) in [(false, &dp.forward), (true, &dp.backward)] {
            let c = dcp_sim::cost::program_cost(prog, 128, &hw, bwd);
            let mut tot = 0.0;
            for (i, ins) in prog.instrs.iter().enumerate() {
                tot += c.dur_us[i];
                let extra = match ins {
                    Instr::Attn { works, .. } => format!(
                        "works {} rows {} attended {}",
                        works.len(),
                        works.iter().map(|w| w.q.len).sum::<u32>(),
                        works.iter().map(|w| w.rows.attended()).sum::<u64>()
                    ),
                    Instr::AttnBwd { works, .. } => format!(
                        "works {} rows {} attended {}",
                        works.len(),
                        works.iter().map(|w| w.q.len).sum::<u32>(),
                        works.iter().map(|w| w.rows.attended()).sum::<u64>()
                    ),
                    Instr::Comm { ops, .. } => format!("ops {}", ops.len()),
                    _ => String::new(),
                };
                println!(
                    "dev {d} {} {i:3} {:8} {:9.1} us  {extra}",
                    if bwd { "bwd" } else { "fwd" },
                    ins.name(),
                    c.dur_us[i]
                );
            }
            println!(
                "dev {d} {} total {:.1} us",
                if bwd { "bwd" } else { "fwd" },
                tot
            );
        }
    }
}
