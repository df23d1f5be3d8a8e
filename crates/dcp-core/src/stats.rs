//! Plan metrics: bytes moved (intra/inter node, forward/backward), attended FLOPs per device,
//! resident memory per device, stages. Derived from the plan alone.

use serde::Serialize;

use crate::flops::attn_fwd_flops;
use crate::plan::{Dir, Instr, Plan, Program};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlanStats {
    pub n_devices: u32,
    pub tokens: u64,
    pub fwd_bytes_intra: u64,
    pub fwd_bytes_inter: u64,
    pub bwd_bytes_intra: u64,
    pub bwd_bytes_inter: u64,
    /// Forward attended FLOPs per device.
    pub device_flops: Vec<f64>,
    /// Resident bytes per device (the larger of the forward and backward programs' buffers).
    pub device_bytes: Vec<u64>,
    pub compute_imbalance: f64,
    pub memory_imbalance: f64,
    pub n_stages: u32,
    pub n_stages_bwd: u32,
}

fn sent_bytes(plan: &Plan, dev: usize, p: &Program) -> (u64, u64) {
    let (mut intra, mut inter) = (0, 0);
    for i in &p.instrs {
        if let Instr::Comm { ops, .. } = i {
            for op in ops.iter().filter(|o| o.dir == Dir::Send) {
                let b = &p.buffers[op.region.buf as usize];
                let bytes =
                    op.region.len as u64 * op.region.heads as u64 * b.width as u64 * b.dtype.size();
                if plan.topology.same_node(dev as u32, op.peer) {
                    intra += bytes;
                } else {
                    inter += bytes;
                }
            }
        }
    }
    (intra, inter)
}

fn stages(p: &Program) -> u32 {
    p.instrs
        .iter()
        .filter_map(|i| match i {
            Instr::Attn { stage, .. } | Instr::AttnBwd { stage, .. } => Some(stage + 1),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

fn imbalance(v: &[f64]) -> f64 {
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    if mean == 0.0 {
        1.0
    } else {
        v.iter().cloned().fold(0.0, f64::max) / mean
    }
}

pub fn plan_stats(plan: &Plan) -> PlanStats {
    let hd = plan.batch.model.head_dim;
    let mut s = PlanStats {
        n_devices: plan.n_devices(),
        tokens: plan.batch.total_tokens(),
        fwd_bytes_intra: 0,
        fwd_bytes_inter: 0,
        bwd_bytes_intra: 0,
        bwd_bytes_inter: 0,
        device_flops: Vec::new(),
        device_bytes: Vec::new(),
        compute_imbalance: 1.0,
        memory_imbalance: 1.0,
        n_stages: 0,
        n_stages_bwd: 0,
    };
    for (di, dp) in plan.devices.iter().enumerate() {
        let (a, b) = sent_bytes(plan, di, &dp.forward);
        s.fwd_bytes_intra += a;
        s.fwd_bytes_inter += b;
        let (a, b) = sent_bytes(plan, di, &dp.backward);
        s.bwd_bytes_intra += a;
        s.bwd_bytes_inter += b;
        let flops: f64 = dp
            .forward
            .instrs
            .iter()
            .filter_map(|i| match i {
                Instr::Attn { works, .. } => Some(
                    works
                        .iter()
                        .map(|w| attn_fwd_flops(w.q.heads as f64 * w.rows.attended() as f64, hd))
                        .sum::<f64>(),
                ),
                _ => None,
            })
            .sum();
        s.device_flops.push(flops);
        s.device_bytes
            .push(dp.forward.bytes().max(dp.backward.bytes()));
        s.n_stages = s.n_stages.max(stages(&dp.forward));
        s.n_stages_bwd = s.n_stages_bwd.max(stages(&dp.backward));
    }
    s.compute_imbalance = imbalance(&s.device_flops);
    let mem: Vec<f64> = s.device_bytes.iter().map(|&b| b as f64).collect();
    s.memory_imbalance = imbalance(&mem);
    s
}
