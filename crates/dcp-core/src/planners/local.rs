//! The `local` planner: whole sequences bin-packed onto devices (longest first, onto the device
//! with the least attended work that still has memory); no communication at all.

use crate::builder::{work_rows, ProgramBuilder, ScratchKind};
use crate::error::PlanningError;
use crate::mask::CompiledMask;
use crate::plan::{
    BwdWork, DevicePlan, FillValue, FwdWork, Instr, IoTensor, Plan, TokenSpan, PLAN_FORMAT_VERSION,
};
use crate::spec::{BatchSpec, DType, Topology};

/// Resident bytes per token of the attention tensors a device holds for its own tokens
/// (Q, KV, O, LSE, dO, dQ, dKV).
pub fn bytes_per_token(batch: &BatchSpec) -> u64 {
    let m = batch.model;
    4 * m.q_bytes_per_token() + 2 * m.kv_bytes_per_token() + 4 * m.heads as u64
}

/// Which sequences each device gets: longest (most attended pairs) first, onto the device with
/// the least attended work that still has memory; fails when a sequence or the batch does not
/// fit the per-device token budget (default: from the topology's device memory).
pub fn assign_local(
    batch: &BatchSpec,
    topo: &Topology,
    budget_tokens: Option<u64>,
) -> Result<Vec<Vec<usize>>, PlanningError> {
    let n = topo.n_devices();
    let budget = budget_tokens.unwrap_or(topo.device_memory_bytes / bytes_per_token(batch));
    let cost: Vec<u64> = batch
        .seqs
        .iter()
        .map(|s| s.mask.compile(s.len).count_all() + s.len as u64)
        .collect();
    let mut order: Vec<usize> = (0..batch.seqs.len()).collect();
    order.sort_by(|&a, &b| cost[b].cmp(&cost[a]).then(a.cmp(&b)));
    let mut load = vec![0u64; n as usize];
    let mut used = vec![0u64; n as usize];
    let mut assign: Vec<Vec<usize>> = vec![Vec::new(); n as usize];
    for &s in &order {
        let len = batch.seqs[s].len as u64;
        if len > budget {
            return Err(PlanningError::SequenceTooLarge {
                seq: s,
                tokens: len,
                budget,
            });
        }
        let best = (0..n as usize)
            .filter(|&d| used[d] + len <= budget)
            .min_by_key(|&d| (load[d], d));
        let Some(d) = best else {
            return Err(PlanningError::BatchTooLarge {
                tokens: batch.total_tokens(),
                devices: n,
                budget,
            });
        };
        load[d] += cost[s];
        used[d] += len;
        assign[d].push(s);
    }
    for a in &mut assign {
        a.sort_unstable();
    }
    Ok(assign)
}

/// The `local` planner: the sequences of [`assign_local`] on each device, no communication.
pub fn plan_local(
    batch: &BatchSpec,
    topo: &Topology,
    budget_tokens: Option<u64>,
) -> Result<Plan, PlanningError> {
    batch.validate()?;
    let n = topo.n_devices();
    let model = batch.model;
    let masks: Vec<CompiledMask> = batch.seqs.iter().map(|s| s.mask.compile(s.len)).collect();
    let assign = assign_local(batch, topo, budget_tokens)?;
    let mut devices = Vec::new();
    for i in 0..n {
        let seqs = &assign[i as usize];
        let t_i: u32 = seqs.iter().map(|&s| batch.seqs[s].len).sum();
        let mut f = ProgramBuilder::new();
        let q = f.io(IoTensor::Q, &model, t_i);
        let kv = f.io(IoTensor::Kv, &model, t_i);
        let o = f.io(IoTensor::O, &model, t_i);
        let lse = f.io(IoTensor::Lse, &model, t_i);
        let mut b = ProgramBuilder::new();
        let bq = b.io(IoTensor::Q, &model, t_i);
        let bkv = b.io(IoTensor::Kv, &model, t_i);
        let bo = b.io(IoTensor::O, &model, t_i);
        let blse = b.io(IoTensor::Lse, &model, t_i);
        let bdo = b.io(IoTensor::DO, &model, t_i);
        let bdq = b.io(IoTensor::DQ, &model, t_i);
        let bdkv = b.io(IoTensor::DKv, &model, t_i);
        // Gradients accumulate in fp32 whatever the caller's dtype; one converting copy at the end.
        let dq_acc = b.scratch("dq_acc", &model, ScratchKind::Q, t_i, DType::F32);
        let dkv_acc = b.scratch("dkv_acc", &model, ScratchKind::Kv, t_i, DType::F32);
        let mut fw = Vec::new();
        let mut bw = Vec::new();
        let mut layout = Vec::new();
        let mut row = 0u32;
        b.push(Instr::Fill {
            dst: b.rows(dq_acc, 0, t_i),
            value: FillValue::Zero,
        });
        b.push(Instr::Fill {
            dst: b.rows(dkv_acc, 0, t_i),
            value: FillValue::Zero,
        });
        for &s in seqs {
            let len = batch.seqs[s].len;
            layout.push(TokenSpan {
                seq: s as u32,
                start: 0,
                len,
            });
            let (rows, att) = work_rows(&masks[s], &[(0, len)], &[(0, len)]);
            if att == 0 {
                // A work writes all its rows (O = 0, LSE = −∞ where a row has no key); a
                // sequence that attends nothing has no work, so its rows get the merge identity
                // here (a fill of every row cost 15 % of the forward of 1000 short documents).
                f.push(Instr::Fill {
                    dst: f.rows(o, row, len),
                    value: FillValue::Zero,
                });
                f.push(Instr::Fill {
                    dst: f.rows(lse, row, len),
                    value: FillValue::NegInf,
                });
            } else {
                fw.push(FwdWork {
                    q: f.rows(q, row, len),
                    kv: vec![f.rows(kv, row, len)],
                    o: f.rows(o, row, len),
                    lse: f.rows(lse, row, len),
                    rows: rows.clone(),
                });
                bw.push(BwdWork {
                    q: b.rows(bq, row, len),
                    kv: vec![b.rows(bkv, row, len)],
                    o: b.rows(bo, row, len),
                    lse: b.rows(blse, row, len),
                    do_: b.rows(bdo, row, len),
                    dq: b.rows(dq_acc, row, len),
                    dkv: vec![b.rows(dkv_acc, row, len)],
                    rows,
                });
            }
            row += len;
        }
        if !fw.is_empty() {
            f.push(Instr::Attn {
                stage: 0,
                works: fw,
            });
            b.push(Instr::AttnBwd {
                stage: 0,
                works: bw,
            });
        }
        if t_i > 0 {
            b.push(Instr::Copy {
                src: b.rows(dq_acc, 0, t_i),
                dst: b.rows(bdq, 0, t_i),
            });
            b.push(Instr::Copy {
                src: b.rows(dkv_acc, 0, t_i),
                dst: b.rows(bdkv, 0, t_i),
            });
        }
        devices.push(DevicePlan {
            device: i,
            node: topo.node_of(i),
            layout,
            forward: f.finish(),
            backward: b.finish(),
        });
    }
    Ok(Plan {
        version: PLAN_FORMAT_VERSION,
        planner: "local".into(),
        candidate: None,
        batch: batch.clone(),
        topology: *topo,
        devices,
    })
}
