//! Planner benchmark (issue 4's goals): planning time and plan quality of `dcp` against the
//! reference planner's recorded numbers and against zigzag, on the reference's own batches.
//!
//! Usage: `cargo run --release -p dcp-core --example planner_bench -- [REF_JSONL] [--quick]`
//! (default REF_JSONL: bench/refplan/reference_results.jsonl). Prints a markdown table and one
//! JSON line per configuration to stdout.

mod common;

use std::time::Instant;

use dcp_core::cost::{predict, CostModel};
use dcp_core::dcp::{plan_dcp, DcpOptions};
use dcp_core::mask::MaskSpec;
use dcp_core::planners::{make_plan, PlannerOptions};
use dcp_core::spec::{BatchSpec, ModelShape, Topology};
use dcp_core::stats::plan_stats;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let path = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| "bench/refplan/reference_results.jsonl".into());
    let recs = common::records(&path);
    let model = ModelShape::default();
    let cost = CostModel::default();
    println!("| dataset | topo | B | mask | n | plan ms median (max) | dcp fwd MB | ref fwd MB | dcp bwd MB | ref bwd MB | dcp comp imb | ref comp imb | dcp mem imb (resident) | home-token imb | > zigzag bytes | pred ≤ static |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for ds in ["longalign", "ldc"] {
        for topo_s in ["4x8", "8x2"] {
            for bs in [1024u32, 2048] {
                for mask in ["causal", "lambda", "shared_question", "causal_blockwise"] {
                    let sel: Vec<&serde_json::Value> = recs
                        .iter()
                        .filter(|r| {
                            r["dataset"] == ds
                                && r["mask"] == mask
                                && r["block_size"] == bs
                                && format!("{}x{}", r["n_nodes"], r["n_devices_per_node"]) == topo_s
                        })
                        .collect();
                    if sel.is_empty() || (quick && (bs != 1024 || topo_s != "4x8")) {
                        continue;
                    }
                    let topo = Topology::parse(topo_s).unwrap();
                    let m = MaskSpec::parse(&mask.replace('_', "-")).unwrap();
                    let (mut ms, mut fwd, mut bwd, mut rf, mut rb, mut ci, mut rci, mut mi, mut hi) =
                        (vec![], 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
                    let (mut over_zz, mut not_best) = (0, 0);
                    for r in &sel {
                        let lens = common::seqlens(r);
                        let batch = BatchSpec::uniform(&lens, m.clone(), model, bs);
                        let opts = DcpOptions::default();
                        let t0 = Instant::now();
                        let plan = plan_dcp(&batch, &topo, &opts).expect("dcp plans");
                        ms.push(t0.elapsed().as_secs_f64() * 1e3);
                        let s = plan_stats(&plan);
                        let f = (s.fwd_bytes_intra + s.fwd_bytes_inter) as f64 / 1e6;
                        let b = (s.bwd_bytes_intra + s.bwd_bytes_inter) as f64 / 1e6;
                        fwd += f;
                        bwd += b;
                        rf += r["fw_bytes_total"].as_f64().unwrap() / 1e6;
                        rb += r["bw_bytes_total"].as_f64().unwrap() / 1e6;
                        ci += s.compute_imbalance;
                        rci += r["comp_imbalance"].as_f64().unwrap_or(f64::NAN);
                        mi += s.memory_imbalance;
                        let homes: Vec<f64> = plan
                            .devices
                            .iter()
                            .map(|d| d.local_tokens() as f64)
                            .collect();
                        hi += homes.iter().cloned().fold(0.0, f64::max)
                            / (homes.iter().sum::<f64>() / homes.len() as f64);
                        let pd = predict(&plan, &cost);
                        for st in ["ring", "zigzag"] {
                            let sp =
                                make_plan(st, &batch, &topo, &PlannerOptions::default()).unwrap();
                            let ss = plan_stats(&sp);
                            if st == "zigzag"
                                && f + b
                                    > (ss.fwd_bytes_intra
                                        + ss.fwd_bytes_inter
                                        + ss.bwd_bytes_intra
                                        + ss.bwd_bytes_inter)
                                        as f64
                                        / 1e6
                            {
                                over_zz += 1;
                            }
                            let p = predict(&sp, &cost);
                            if pd.fwd_ms + pd.bwd_ms > p.fwd_ms + p.bwd_ms + 1e-9 {
                                not_best += 1;
                            }
                        }
                    }
                    let n = sel.len() as f64;
                    let mx = ms.iter().cloned().fold(0.0, f64::max);
                    let med = median(&mut ms);
                    println!(
                        "| {ds} | {topo_s} | {bs} | {mask} | {} | {med:.1} ({mx:.1}) | {:.0} | {:.0} | {:.0} | {:.0} | {:.3} | {:.2} | {:.3} | {:.3} | {over_zz} | {} |",
                        sel.len(), fwd / n, rf / n, bwd / n, rb / n, ci / n, rci / n, mi / n, hi / n, if not_best == 0 { "yes" } else { "NO" }
                    );
                    eprintln!(
                        "{}",
                        serde_json::json!({"dataset": ds, "topology": topo_s, "block_size": bs, "mask": mask, "n": sel.len(), "plan_ms_median": med, "plan_ms_max": mx,
                            "dcp_fwd_mb": fwd / n, "ref_fwd_mb": rf / n, "dcp_bwd_mb": bwd / n, "ref_bwd_mb": rb / n, "dcp_comp_imb": ci / n, "ref_comp_imb": rci / n,
                            "dcp_mem_imb": mi / n, "dcp_home_imb": hi / n, "batches_over_zigzag_bytes": over_zz, "batches_pred_slower_than_static": not_best})
                    );
                }
            }
        }
    }
}
