//! The planner's cost model and a fast plan-time predictor.
//!
//! Attention time = attended FLOPs at a calibrated rate plus a per-launch and per-work overhead;
//! element-wise instructions (fill, copy, merge, sum) move bytes at memory bandwidth; a transfer
//! costs α + bytes/β with α, β per link class (intra/inter node). Parameters load from JSON with
//! defaults (an H100-like card). The predictor runs a plan through the shared interpreter with a
//! clock per stream (compute and communication per device), honouring the plan's ordering and
//! waits; a group's transfers start when both ends have launched it and serialize per device
//! direction. The full cluster simulator (link sharing, traces) lives in `dcp-sim`; this one is
//! small enough to run inside the planner on every candidate plan.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::flops::{attn_fwd_flops, BWD_FLOP_FACTOR};
use crate::plan::{Dir, Instr, Plan, Region};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CostModel {
    /// Forward attention rate on attended FLOPs, TFLOP/s.
    pub attn_fwd_tflops: f64,
    /// Backward attention rate (on [`BWD_FLOP_FACTOR`] × forward FLOPs), TFLOP/s.
    pub attn_bwd_tflops: f64,
    /// Fixed cost of one kernel launch, µs.
    pub launch_us: f64,
    /// Extra cost per work in an attention launch, µs.
    pub per_work_us: f64,
    /// Memory bandwidth for element-wise instructions, GB/s.
    pub mem_gbps: f64,
}

impl Default for CostModel {
    /// H100 numbers from DESIGN.md/KERNELS.md (FA2-class kernels).
    fn default() -> Self {
        CostModel {
            attn_fwd_tflops: 350.0,
            attn_bwd_tflops: 324.0,
            launch_us: 8.0,
            per_work_us: 0.5,
            mem_gbps: 2500.0,
        }
    }
}

impl CostModel {
    pub fn from_json(s: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(s)
    }
    /// Seconds for `flops` of forward attention in `works` works.
    pub fn attn_fwd_s(&self, flops: f64, works: usize) -> f64 {
        flops / (self.attn_fwd_tflops * 1e12)
            + (self.launch_us + self.per_work_us * works as f64) * 1e-6
    }
    pub fn attn_bwd_s(&self, fwd_flops: f64, works: usize) -> f64 {
        BWD_FLOP_FACTOR * fwd_flops / (self.attn_bwd_tflops * 1e12)
            + (self.launch_us + 2.0 * self.per_work_us * works as f64) * 1e-6
    }
    pub fn mem_s(&self, bytes: f64) -> f64 {
        bytes / (self.mem_gbps * 1e9) + self.launch_us * 1e-6
    }
}

/// Predicted forward and backward times of a plan, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prediction {
    pub fwd_ms: f64,
    pub bwd_ms: f64,
}

struct Clock<'a> {
    plan: &'a Plan,
    backward: bool,
    cost: &'a CostModel,
    compute: Vec<f64>,
    comm: Vec<f64>,
    done: Vec<Vec<(u32, f64)>>,
    /// Per device in the current group: (launch time, bytes out per class, bytes in per class).
    pending: Vec<Option<GroupAcc>>,
    /// Latest launch among the devices of the group being completed.
    group_latest: Option<f64>,
    /// Inter-node bytes (out, in) per node in the group being completed.
    node_inter: Option<Vec<(f64, f64)>>,
}

#[derive(Clone, Copy, Default)]
struct GroupAcc {
    start: f64,
    out_intra: f64,
    out_inter: f64,
    in_intra: f64,
    in_inter: f64,
    inter: bool,
}

impl Clock<'_> {
    fn bytes(&self, dev: u32, r: &Region) -> f64 {
        let p = if self.backward {
            &self.plan.devices[dev as usize].backward
        } else {
            &self.plan.devices[dev as usize].forward
        };
        let b = &p.buffers[r.buf as usize];
        (r.len as u64 * r.heads as u64 * b.width as u64 * b.dtype.size()) as f64
    }
    fn group_start(&mut self, dev: u32) -> f64 {
        let d = dev as usize;
        if self.pending[d].is_none() {
            self.pending[d] = Some(GroupAcc {
                start: self.compute[d].max(self.comm[d]),
                ..Default::default()
            });
        }
        self.pending[d].unwrap().start
    }
}

impl Clock<'_> {
    fn local(&mut self, dev: u32, instr: &Instr) {
        let d = dev as usize;
        let hd = self.plan.batch.model.head_dim;
        let t = match instr {
            Instr::Wait { tag } => {
                if let Some(&(_, at)) = self.done[d].iter().find(|x| x.0 == *tag) {
                    self.compute[d] = self.compute[d].max(at);
                }
                0.0
            }
            Instr::Comm { .. } => 0.0,
            Instr::Fill { dst, .. } => self.cost.mem_s(self.bytes(dev, dst)),
            Instr::Copy { src, dst } => {
                self.cost.mem_s(self.bytes(dev, src) + self.bytes(dev, dst))
            }
            Instr::Merge { o, inputs, .. } => self
                .cost
                .mem_s(self.bytes(dev, o) * (inputs.len() as f64 + 1.0)),
            Instr::Sum { dst, inputs } => self
                .cost
                .mem_s(self.bytes(dev, dst) * (inputs.len() as f64 + 1.0)),
            Instr::Attn { works, .. } => {
                let f: f64 = works
                    .iter()
                    .map(|w| attn_fwd_flops(w.q.heads as f64 * w.rows.attended() as f64, hd))
                    .sum();
                self.cost.attn_fwd_s(f, works.len())
            }
            Instr::AttnBwd { works, .. } => {
                let f: f64 = works
                    .iter()
                    .map(|w| attn_fwd_flops(w.q.heads as f64 * w.rows.attended() as f64, hd))
                    .sum();
                self.cost.attn_bwd_s(f, works.len())
            }
        };
        self.compute[d] += t;
    }

    fn transfer(&mut self, from: u32, src: &Region, to: u32) {
        let bytes = self.bytes(from, src);
        let inter = !self.plan.topology.same_node(from, to);
        self.group_start(from);
        self.group_start(to);
        let a = self.pending[from as usize].as_mut().unwrap();
        if inter {
            a.out_inter += bytes;
            a.inter = true;
        } else {
            a.out_intra += bytes;
        }
        let b = self.pending[to as usize].as_mut().unwrap();
        if inter {
            b.in_inter += bytes;
            b.inter = true;
        } else {
            b.in_intra += bytes;
        }
    }

    fn group_done(&mut self, dev: u32, tag: u32) {
        let d = dev as usize;
        // Groups are coupled: a device's group finishes no earlier than its peers launch theirs.
        // Approximate with the latest launch among the group's devices; the node's NICs are
        // shared by all its GPUs, so inter-node bytes are also limited per node.
        let start = self.group_start(dev);
        let topo = self.plan.topology;
        if self.group_latest.is_none() {
            self.group_latest = Some(
                self.pending
                    .iter()
                    .flatten()
                    .map(|g| g.start)
                    .fold(start, f64::max),
            );
            let mut v = vec![(0.0, 0.0); topo.nodes as usize];
            for (i, g) in self.pending.iter().enumerate() {
                if let Some(g) = g {
                    let x = &mut v[topo.node_of(i as u32) as usize];
                    x.0 += g.out_inter;
                    x.1 += g.in_inter;
                }
            }
            self.node_inter = Some(v);
        }
        let latest = self.group_latest.unwrap();
        let node = self.node_inter.as_ref().unwrap()[topo.node_of(dev) as usize];
        let g = self.pending[d].take().unwrap();
        if self.pending.iter().all(|p| p.is_none()) {
            self.group_latest = None;
            self.node_inter = None;
        }
        let intra = g.out_intra.max(g.in_intra) / (topo.intra_gbps * 1e9);
        let inter = (g.out_inter.max(g.in_inter) / (topo.inter_gbps * 1e9))
            .max(node.0.max(node.1) / (topo.node_inter_gbps() * 1e9));
        let lat = if g.inter {
            topo.inter_latency_us
        } else {
            topo.intra_latency_us
        } * 1e-6;
        let end = latest + lat + intra.max(inter);
        self.comm[d] = end;
        self.done[d].push((tag, end));
    }
}

/// Runs every device's program on the clock: local instructions in order, then the group with
/// the lowest tag among the devices stopped at a `Comm` (what [`crate::interp::drive`] does,
/// without its checks and in the same order of clock events: linear in the plan's size, where the checked driver pairs every device
/// with every other in each group).
fn run_clock(plan: &Plan, backward: bool, c: &mut Clock) -> bool {
    let n = plan.devices.len();
    let progs: Vec<&crate::plan::Program> = plan
        .devices
        .iter()
        .map(|d| if backward { &d.backward } else { &d.forward })
        .collect();
    let mut pc = vec![0usize; n];
    // Devices stopped at a Comm, by tag.
    let mut at: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    let run = |d: usize, pc: &mut [usize], c: &mut Clock, at: &mut BTreeMap<u32, Vec<usize>>| {
        while let Some(ins) = progs[d].instrs.get(pc[d]) {
            if let Instr::Comm { tag, .. } = ins {
                at.entry(*tag).or_default().push(d);
                return;
            }
            c.local(d as u32, ins);
            pc[d] += 1;
        }
    };
    for d in 0..n {
        run(d, &mut pc, c, &mut at);
    }
    while let Some((tag, mut devs)) = at.pop_first() {
        devs.sort_unstable();
        for &d in &devs {
            let Instr::Comm { ops, .. } = &progs[d].instrs[pc[d]] else {
                unreachable!("devices stop at Comm instructions")
            };
            for op in ops.iter().filter(|o| o.dir == Dir::Send) {
                if op.peer as usize >= n {
                    return false;
                }
                c.transfer(d as u32, &op.region, op.peer);
            }
        }
        for &d in &devs {
            c.group_done(d as u32, tag);
            pc[d] += 1;
        }
        for &d in &devs {
            run(d, &mut pc, c, &mut at);
        }
    }
    true
}

/// Predicts forward and backward times of `plan` under `cost` and the plan's topology.
pub fn predict(plan: &Plan, cost: &CostModel) -> Prediction {
    let mut out = [0.0f64; 2];
    for (i, backward) in [false, true].into_iter().enumerate() {
        let n = plan.devices.len();
        let mut c = Clock {
            plan,
            backward,
            cost,
            compute: vec![0.0; n],
            comm: vec![0.0; n],
            done: vec![Vec::new(); n],
            pending: vec![None; n],
            group_latest: None,
            node_inter: None,
        };
        // Plans given to the predictor are valid (planners emit them, or the validator passed
        // them); a malformed group only means an invalid plan.
        if !run_clock(plan, backward, &mut c) {
            out[i] = f64::INFINITY;
            continue;
        }
        let end = c
            .compute
            .iter()
            .zip(&c.comm)
            .map(|(a, b)| a.max(*b))
            .fold(0.0, f64::max);
        out[i] = end * 1e3;
    }
    Prediction {
        fwd_ms: out[0],
        bwd_ms: out[1],
    }
}
