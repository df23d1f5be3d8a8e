//! Scratch (val14): a plan's program shape per device (instruction kinds, comm ops).
use dcp_core::datasets::{make_batches, Dataset};
use dcp_core::mask::MaskSpec;
use dcp_core::plan::Instr;
use dcp_core::planners::{make_plan, PlannerOptions};
use dcp_core::spec::{BatchSpec, ModelShape, Topology};
fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let topo = Topology::parse(&a[0]).unwrap();
    let budget: u64 = a[1].parse().unwrap();
    let planner = &a[2];
    let devs: Vec<usize> = if a[3] == "all" { (0..topo.n_devices() as usize).collect() } else { vec![a[3].parse().unwrap()] };
    let batches = make_batches(Dataset::parse("longalign").unwrap(), 1.0, 1, budget, 0);
    let batch = BatchSpec::uniform(&batches[0], MaskSpec::parse("causal").unwrap(), ModelShape::default(), 1024);
    let plan = make_plan(planner, &batch, &topo, &PlannerOptions::default()).unwrap();
    for name in ["fwd", "bwd"] {
        let mut counts = std::collections::BTreeMap::new();
        let mut ops = 0; let mut works = 0; let mut segs = 0;
        let p = if name == "fwd" { &plan.devices[devs[0]].forward } else { &plan.devices[devs[0]].backward };
        let mut n = 0;
        for &dev in &devs { let q = if name == "fwd" { &plan.devices[dev].forward } else { &plan.devices[dev].backward }; n += q.instrs.len();
        for i in &q.instrs {
            *counts.entry(i.name()).or_insert(0) += 1;
            match i { Instr::Comm { ops: o, .. } => ops += o.len(),
              Instr::Attn { works: w, .. } => { works += w.len(); segs += w.iter().map(|w| w.rows.segs.len()).sum::<usize>() }
              Instr::AttnBwd { works: w, .. } => { works += w.len(); segs += w.iter().map(|w| w.rows.segs.len()).sum::<usize>() }
              _ => {} }
        } }
        println!("{name}: {n} instrs {counts:?} comm ops {ops} works {works} segs {segs} buffers {}", p.buffers.len());
        let seq: Vec<&str> = p.instrs.iter().take(14).map(|i| i.name()).collect();
        println!("  first: {seq:?}");
        for i in p.instrs.iter().take(12) { if let Instr::Comm{tag,ops} = i { println!("  comm tag {tag}: {:?}", ops.iter().map(|o| (o.dir, o.peer, o.region.buf, o.region.len)).collect::<Vec<_>>()); break; } }
    }
}
