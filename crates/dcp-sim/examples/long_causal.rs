//! The long-causal-document study (docs/STUDY_LONG_CAUSAL.md): one causal sequence, planned by
//! dcp's own blockwise placement (`dcp-only`), `zigzag`, `ulysses`, `usp` and `dcp` (with its
//! candidates), each simulated on a cluster of a built-in profile; prints one markdown row per
//! (profile, topology, length, planner, block size) and draws the figure.
//!
//! `cargo run --release -p dcp-sim --example long_causal -- OUT_STEM [PROFILE:TOPO ...]`
//! (default cells: h100 at 1x4, 1x8, 2x8, 4x8, 8x8 and a100-1nic at 2x8, 4x8).

use std::collections::BTreeMap;
use std::path::Path;

use dcp_core::cost::predict;
use dcp_core::mask::MaskSpec;
use dcp_core::plan::{Dir, Instr, Plan, Program};
use dcp_core::planners::{make_plan, PlannerOptions};
use dcp_core::spec::{BatchSpec, ModelShape};
use dcp_sim::plot::{write_figure, Panel};
use dcp_sim::{simulate, Cluster, Hardware, Profile, SimOptions};
use rayon::prelude::*;

const LENGTHS: [u32; 4] = [32768, 131072, 524288, 1048576];
const BLOCKS: [u32; 3] = [2048, 8192, 32768];
/// Largest number of token blocks per sequence planned by `dcp-only` (the placement of a
/// 1M-token causal sequence in 1024-token blocks has ~0.5 M tiles per head block: too slow on a
/// laptop and not where the answer changes).
const MAX_BLOCKS: u32 = 256;
const PLANNERS: [&str; 5] = ["dcp-only", "zigzag", "ulysses", "usp", "dcp"];

/// Bytes sent by each device in one pass: (intra-node, inter-node).
fn sent(plan: &Plan, prog: impl Fn(usize) -> usize) -> Vec<(u64, u64)> {
    let topo = plan.topology;
    plan.devices
        .iter()
        .enumerate()
        .map(|(d, dp)| {
            let p: &Program = if prog(d) == 0 {
                &dp.forward
            } else {
                &dp.backward
            };
            let mut acc = (0u64, 0u64);
            for ins in &p.instrs {
                let Instr::Comm { ops, .. } = ins else {
                    continue;
                };
                for op in ops.iter().filter(|o| o.dir == Dir::Send) {
                    let b = &p.buffers[op.region.buf as usize];
                    let n = op.region.len as u64
                        * op.region.heads as u64
                        * b.width as u64
                        * b.dtype.size();
                    if topo.same_node(d as u32, op.peer) {
                        acc.0 += n;
                    } else {
                        acc.1 += n;
                    }
                }
            }
            acc
        })
        .collect()
}

/// Forward + backward bytes on the slowest link class: the busiest node's NICs (inter-node bytes
/// out of one node) with several nodes, else the busiest GPU's NVLink port.
fn slowest_link_bytes(plan: &Plan) -> (u64, u64) {
    let topo = plan.topology;
    let per: Vec<(u64, u64)> = sent(plan, |_| 0)
        .into_iter()
        .zip(sent(plan, |_| 1))
        .map(|(f, b)| (f.0 + b.0, f.1 + b.1))
        .collect();
    let intra = per.iter().map(|x| x.0).max().unwrap_or(0);
    let mut node = vec![0u64; topo.nodes as usize];
    for (d, x) in per.iter().enumerate() {
        node[topo.node_of(d as u32) as usize] += x.1;
    }
    (intra, node.into_iter().max().unwrap_or(0))
}

struct Row {
    cell: String,
    len: u32,
    planner: &'static str,
    block: u32,
    kind: String,
    pred_ms: (f64, f64),
    sim_ms: (f64, f64),
    nvlink_mb: f64,
    nic_mb: f64,
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let stem = a.get(1).cloned().unwrap_or("long_causal".into());
    let cells: Vec<String> = if a.len() > 2 {
        a[2..].to_vec()
    } else {
        [
            "h100:1x4",
            "h100:1x8",
            "h100:2x8",
            "h100:4x8",
            "h100:8x8",
            "a100-1nic:2x8",
            "a100-1nic:4x8",
        ]
        .map(String::from)
        .to_vec()
    };
    let mut jobs = Vec::new();
    for cell in &cells {
        for &len in &LENGTHS {
            for planner in PLANNERS {
                let blocks: &[u32] = if planner.starts_with("dcp") {
                    &BLOCKS
                } else {
                    &BLOCKS[..1]
                };
                for &block in blocks {
                    if planner.starts_with("dcp") && len / block > MAX_BLOCKS {
                        continue;
                    }
                    if block * 4 > len {
                        continue;
                    }
                    jobs.push((cell.clone(), len, planner, block));
                }
            }
        }
    }
    // Expensive jobs first.
    jobs.sort_by_key(|j| std::cmp::Reverse((j.1 / j.3, j.1)));
    let rows: Vec<Row> = jobs
        .par_iter()
        .filter_map(|(cell, len, planner, block)| {
            let (prof, spec) = cell.split_once(':').expect("PROFILE:TOPO");
            let (profile, _) = Profile::load(prof).expect("profile");
            let cluster = Cluster::parse(spec, &profile).expect("topology");
            let hw = Hardware::new(profile);
            let topo = cluster.core_topology();
            let batch =
                BatchSpec::uniform(&[*len], MaskSpec::Causal, ModelShape::default(), *block);
            let plan = match make_plan(planner, &batch, &topo, &PlannerOptions::default()) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("{cell} {len} {planner}: {e}");
                    return None;
                }
            };
            let p = predict(&plan, &PlannerOptions::default().dcp.cost);
            let s = simulate(&plan, &cluster, &hw, &SimOptions::default()).expect("simulate");
            let (nv, nic) = slowest_link_bytes(&plan);
            eprintln!("done {cell} {len} {planner} {block}");
            Some(Row {
                cell: cell.clone(),
                len: *len,
                planner,
                block: *block,
                kind: plan.label(),
                pred_ms: (p.fwd_ms, p.bwd_ms),
                sim_ms: (s.forward.makespan_us / 1e3, s.backward.makespan_us / 1e3),
                nvlink_mb: nv as f64 / 1e6,
                nic_mb: nic as f64 / 1e6,
            })
        })
        .collect();
    let mut rows = rows;
    rows.sort_by(|x, y| {
        (
            cells.iter().position(|c| *c == x.cell),
            x.len,
            x.planner,
            x.block,
        )
            .cmp(&(
                cells.iter().position(|c| *c == y.cell),
                y.len,
                y.planner,
                y.block,
            ))
    });
    println!("| cell | tokens | planner | block | plan | pred fwd | pred bwd | sim fwd | sim bwd | sim total / zigzag | NVLink MB (max GPU) | NIC MB (max node) |");
    println!("|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    let zig: BTreeMap<(String, u32), f64> = rows
        .iter()
        .filter(|r| r.planner == "zigzag")
        .map(|r| ((r.cell.clone(), r.len), r.sim_ms.0 + r.sim_ms.1))
        .collect();
    for r in &rows {
        let z = zig
            .get(&(r.cell.clone(), r.len))
            .copied()
            .unwrap_or(f64::NAN);
        println!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.3} | {:.0} | {:.0} |",
            r.cell,
            r.len,
            r.planner,
            r.block,
            r.kind,
            r.pred_ms.0,
            r.pred_ms.1,
            r.sim_ms.0,
            r.sim_ms.1,
            (r.sim_ms.0 + r.sim_ms.1) / z,
            r.nvlink_mb,
            r.nic_mb
        );
    }
    // Figure: per cell, simulated fwd+bwd time relative to zigzag (best block size per planner).
    let panels: Vec<Panel> = cells
        .iter()
        .map(|cell| {
            let groups: Vec<String> = LENGTHS.iter().map(|l| format!("{}K", l / 1024)).collect();
            let series = ["dcp-only", "ulysses", "usp", "dcp"]
                .iter()
                .map(|&pl| {
                    let v = LENGTHS
                        .iter()
                        .map(|&len| {
                            let z = zig.get(&(cell.clone(), len)).copied().unwrap_or(f64::NAN);
                            rows.iter()
                                .filter(|r| r.cell == *cell && r.len == len && r.planner == pl)
                                .map(|r| (r.sim_ms.0 + r.sim_ms.1) / z)
                                .fold(f64::NAN, f64::min)
                        })
                        .collect();
                    (pl.to_string(), v)
                })
                .collect();
            Panel {
                title: cell.clone(),
                y_label: "sim time / zigzag".into(),
                groups,
                series,
                reference: Some(1.0),
            }
        })
        .collect();
    write_figure(
        Path::new(&stem),
        "One causal document: simulated fwd+bwd time relative to zigzag (lower is better)",
        &panels,
        4,
    )
    .expect("figure");
}
