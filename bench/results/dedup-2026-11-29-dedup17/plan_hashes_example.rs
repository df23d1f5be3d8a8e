// Throwaway example (dedup17; was crates/dcp-core/examples/zz_d17_dump.rs, not committed there):
// a hash of every planner's serialized plans, to compare plans before and after a refactor.
// Built once at ba34937 + the test commits (`git stash` of the src changes) and once with them:
// both printed plan_hashes.txt.
use dcp_core::datasets::{make_batches, Dataset};
use dcp_core::mask::MaskSpec;
use dcp_core::planners::{make_plan, PlannerOptions, PLANNERS};
use dcp_core::spec::{BatchSpec, ModelShape, Topology};
use std::hash::{Hash, Hasher};
fn main() {
    for topo in ["2x4", "4x8", "16x8"] {
        let t = Topology::parse(topo).unwrap();
        for &budget in &[16384u64, 131072] {
            let batches = make_batches(Dataset::parse("longalign").unwrap(), 1.0, 2, budget, 0);
            for &name in PLANNERS {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                let mut n = 0;
                for lens in &batches {
                    let b = BatchSpec::uniform(lens, MaskSpec::Causal, ModelShape::default(), 1024);
                    if let Ok(p) = make_plan(name, &b, &t, &PlannerOptions::default()) {
                        serde_json::to_string(&p).unwrap().hash(&mut h);
                        n += 1;
                    }
                }
                println!("{topo} {budget} {name} {n} {:016x}", h.finish());
            }
        }
    }
}
