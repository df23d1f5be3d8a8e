//! The planner's cost model and a fast plan-time predictor.
//!
//! Attention time = attended FLOPs at a calibrated rate plus a per-launch and per-work overhead;
//! element-wise instructions (fill, copy, merge, sum) move bytes at memory bandwidth; a transfer
//! costs α + bytes/β with α, β per link class (intra/inter node). Parameters load from JSON with
//! defaults (this project's kernels on a Hopper card). The predictor runs a plan through the
//! shared interpreter with a clock per stream (compute and communication per device), honouring
//! the plan's ordering and waits; a group's transfers start when both ends have launched it and
//! serialize per device direction. The full cluster simulator (link sharing, traces) lives in
//! `dcp-sim`; this one is small enough to run inside the planner on every candidate plan.

pub mod kernel;

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use kernel::{KernelFit, KernelScratch, LaunchCost};

use crate::flops::{attn_fwd_flops, BWD_FLOP_FACTOR};
use crate::plan::{Dir, Instr, Plan, Region};
use crate::spec::Topology;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Fitted kernel model of a calibrated GPU (`dcp calibrate` profile, through
    /// `dcp_sim::Hardware::planner_cost`): when set, the attention instructions of built plans
    /// cost the CTA makespan of their works ([`KernelFit::attn_us`], what the simulator
    /// charges) instead of their FLOPs at the flat rates above, which remain for plan-free
    /// estimates (stage counts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernels: Option<KernelFit>,
    /// Measured NCCL send/recv time between two GPUs of a node by message size (ascending
    /// bytes): when not empty, intra-node groups of built plans cost this curve instead of
    /// α + bytes/β of the topology ([`CostModel::group_s`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub intra_curve: Vec<CurvePoint>,
    /// Where the numbers come from (a profile's name); `None`: the built-in defaults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One point of a measured transfer curve: `bytes` took `us`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub bytes: f64,
    pub us: f64,
}

/// Time (µs) of `bytes` on a measured curve (ascending bytes, not empty): linear between
/// points, the first point's time below, the last point's rate above.
pub fn curve_us(c: &[CurvePoint], bytes: f64) -> f64 {
    let first = c[0];
    if bytes <= first.bytes {
        return first.us;
    }
    for w in c.windows(2) {
        if bytes <= w[1].bytes {
            let f = (bytes - w[0].bytes) / (w[1].bytes - w[0].bytes);
            return w[0].us + f * (w[1].us - w[0].us);
        }
    }
    let last = c[c.len() - 1];
    last.us + (bytes - last.bytes) / (last.bytes / last.us)
}

impl Default for CostModel {
    /// This project's Hopper kernels (`dcp-cuda`, sm_90a): 650 / 540 TFLOP/s, what they sustain
    /// on long causal attention on an H200 under its 700 W cap (bench/results/
    /// kernels-2026-11-30-s31, call 7). Until session 32 the default was PyTorch flash's H100
    /// rates (350 / 324, DESIGN.md); with them `dcp` returned `ulysses` on 4 of 64 batches at
    /// 1x2 where these rates return `local` or dcp's placement, which measured 6-8 % faster on
    /// 2x H200; 29 batches whose pick they keep measured the same
    /// (bench/results/planner-rates-s32/).
    /// Other hardware: `dcp calibrate` and `--cost-model` / `--planner-profile`.
    fn default() -> Self {
        CostModel {
            attn_fwd_tflops: 650.0,
            attn_bwd_tflops: 540.0,
            launch_us: 8.0,
            per_work_us: 0.5,
            mem_gbps: 2500.0,
            kernels: None,
            intra_curve: Vec::new(),
            source: None,
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

    /// Whether built plans are costed with measured models (a fitted kernel model or a
    /// transfer curve) that the plan-free candidate formulas cannot reproduce.
    pub fn is_fitted(&self) -> bool {
        self.kernels.is_some() || !self.intra_curve.is_empty()
    }

    /// Where the numbers come from, for records: the profile's name or `default`.
    pub fn source_name(&self) -> &str {
        self.source.as_deref().unwrap_or("default")
    }

    /// Forward and backward attended-FLOP rates (TFLOP/s) no launch exceeds: the flat rates,
    /// or with a fitted kernel model its peak ([`KernelFit::peak_tflops`]). Lower bounds of plan
    /// times use these.
    pub fn peak_tflops(&self) -> (f64, f64) {
        match &self.kernels {
            Some(k) => k.peak_tflops(),
            None => (self.attn_fwd_tflops, self.attn_bwd_tflops),
        }
    }

    /// Seconds of one communication group on a device, from the moment its last peer launched
    /// it: `intra_bytes` inside the node (its larger direction), `inter_s` the time of its
    /// inter-node bytes, `inter` whether any of its transfers crosses nodes. Without a curve:
    /// α (inter-node α if any transfer crosses) plus the slower of intra and inter; with one,
    /// the curve's time of the intra-node bytes (which includes α), against α + `inter_s`.
    pub fn group_s(&self, topo: &Topology, intra_bytes: f64, inter: bool, inter_s: f64) -> f64 {
        let lat = if inter {
            topo.inter_latency_us
        } else {
            topo.intra_latency_us
        } * 1e-6;
        if self.intra_curve.is_empty() {
            return lat + (intra_bytes / (topo.intra_gbps * 1e9)).max(inter_s);
        }
        let c = curve_us(&self.intra_curve, intra_bytes) * 1e-6;
        if inter {
            c.max(lat + inter_s)
        } else {
            c
        }
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
    /// Per device: (tag, seconds of unpack copies after that group's Wait).
    unpacks: Vec<Vec<(u32, f64)>>,
    /// Per device in the current group: (launch time, bytes out per class, bytes in per class).
    pending: Vec<Option<GroupAcc>>,
    /// Latest launch among the devices of the group being completed.
    group_latest: Option<f64>,
    /// Inter-node bytes (out, in) per node in the group being completed.
    node_inter: Option<Vec<(f64, f64)>>,
    /// Buffers of the fitted kernel model.
    scratch: KernelScratch,
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
    fn prog(&self, dev: u32) -> &crate::plan::Program {
        let dp = &self.plan.devices[dev as usize];
        if self.backward {
            &dp.backward
        } else {
            &dp.forward
        }
    }
    /// The staging copies of device `dev`'s group `tag` (see [`crate::plan::BufferDecl::staged_bytes`]):
    /// packs of its non-contiguous sends run on its compute stream before the group starts;
    /// unpacks of its non-contiguous receives after the group's `Wait`. One copy launch each,
    /// reading and writing the bytes.
    fn staging(&mut self, dev: u32, tag: u32, ops: &[crate::plan::P2p]) {
        let (mut pack, mut unpack) = (0.0, 0.0);
        let prog = self.prog(dev);
        for op in ops {
            let b = prog.buffers[op.region.buf as usize].staged_bytes(&op.region) as f64;
            if b > 0.0 {
                let t = self.cost.mem_s(2.0 * b);
                match op.dir {
                    Dir::Send => pack += t,
                    Dir::Recv => unpack += t,
                }
            }
        }
        let d = dev as usize;
        self.compute[d] += pack;
        if unpack > 0.0 {
            self.unpacks[d].push((tag, unpack));
        }
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
        if let Some(fit) = &self.cost.kernels {
            let dp = &self.plan.devices[d];
            let prog = if self.backward {
                &dp.backward
            } else {
                &dp.forward
            };
            let lc = LaunchCost {
                launch_us: self.cost.launch_us,
                per_work_us: self.cost.per_work_us,
                mem_gbps: self.cost.mem_gbps,
            };
            if let Some(us) = fit.attn_us(prog, instr, hd, &lc, &mut self.scratch) {
                self.compute[d] += us * 1e-6;
                return;
            }
        }
        let t = match instr {
            Instr::Wait { tag } => {
                if let Some(&(_, at)) = self.done[d].iter().find(|x| x.0 == *tag) {
                    self.compute[d] = self.compute[d].max(at);
                }
                self.unpacks[d]
                    .iter()
                    .find(|x| x.0 == *tag)
                    .map_or(0.0, |x| x.1)
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
        let inter = (g.out_inter.max(g.in_inter) / (topo.inter_gbps * 1e9))
            .max(node.0.max(node.1) / (topo.node_inter_gbps() * 1e9));
        let end = latest
            + self
                .cost
                .group_s(&topo, g.out_intra.max(g.in_intra), g.inter, inter);
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
        // Packs first: every device's group starts after its own staging copies.
        for &d in &devs {
            let Instr::Comm { ops, .. } = &progs[d].instrs[pc[d]] else {
                unreachable!("devices stop at Comm instructions")
            };
            c.staging(d as u32, tag, ops);
        }
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
            unpacks: vec![Vec::new(); n],
            pending: vec![None; n],
            group_latest: None,
            node_inter: None,
            scratch: KernelScratch::default(),
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
