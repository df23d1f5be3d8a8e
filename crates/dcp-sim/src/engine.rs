//! The discrete-event engine: replays every device's program of one pass (forward or backward)
//! on the cluster model and reports when each device finished and where its time went.
//!
//! Per device there is a compute stream and a communication stream, exactly as in the IR
//! (`dcp_core::plan`): compute instructions run in list order; a `Comm` group becomes ready when
//! every earlier compute instruction has finished and starts when, in addition, the device's
//! previous group has completed; `Wait{tag}` holds later compute until that group completes.
//! Within a group the sends from one device to one peer form one flow (their bytes add up, one
//! latency). A flow starts when both its sender's and its receiver's groups have started, spends
//! the latency of the highest network level it crosses, then moves its bytes at the rate it
//! gets: max-min fair share (progressive filling) of every link on its path, recomputed whenever
//! a flow enters or leaves. A device's group completes when all flows it sends or receives do.
//!
//! Breakdown of a device's blocked time at a `Wait`: the part while the awaited group had started
//! but some peer had not yet joined it is *peer wait*; the rest is *exposed communication*.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};

use serde::Serialize;

use dcp_core::interp::program;
use dcp_core::plan::{Dir, Instr, Plan};

use crate::cluster::{Cluster, Links};
use crate::cost::{op_kind, program_cost, Hardware, OpKind, ProgramCost};

#[derive(Debug, Clone, Default)]
pub struct SimOptions {
    /// Record spans for a trace (costs memory; off for sweeps).
    pub trace: bool,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum SimError {
    #[error("plan has {plan} devices but the cluster has {cluster}")]
    DeviceCount { plan: u32, cluster: u32 },
    #[error("device {device}, {pass} instruction {instr}: {msg}")]
    Bad {
        device: u32,
        pass: &'static str,
        instr: usize,
        msg: String,
    },
    #[error("{pass} pass deadlocks: {msg}")]
    Deadlock { pass: &'static str, msg: String },
}

/// Which stream a span belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Compute,
    Comm,
    Wait,
}

#[derive(Debug, Clone, Serialize)]
pub struct Span {
    pub device: u32,
    pub stream: Stream,
    pub name: String,
    pub start_us: f64,
    pub dur_us: f64,
    pub detail: String,
}

/// Where one device's time went in one pass (µs, bytes).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DeviceBreakdown {
    /// When the device's last compute instruction and last group had both finished.
    pub finish_us: f64,
    /// Busy time of the compute stream.
    pub compute_us: f64,
    pub attn_us: f64,
    pub elementwise_us: f64,
    /// Compute blocked at a `Wait` while transfers were in flight (communication not hidden).
    pub exposed_comm_us: f64,
    /// Compute blocked at a `Wait` while a peer had not yet joined the group.
    pub peer_wait_us: f64,
    /// Time the communication stream had a group in progress.
    pub comm_busy_us: f64,
    /// Idle after finishing until the slowest device finished.
    pub tail_idle_us: f64,
    pub bytes_sent_intra: u64,
    pub bytes_sent_inter: u64,
    /// Forward-equivalent attended FLOPs (backward counts [`dcp_core::flops::BWD_FLOP_FACTOR`]×).
    pub flops: f64,
}

/// One pass of a plan on the cluster.
#[derive(Debug, Clone, Serialize)]
pub struct PassResult {
    /// Time until every device finished, µs.
    pub makespan_us: f64,
    pub devices: Vec<DeviceBreakdown>,
    #[serde(skip)]
    pub spans: Vec<Span>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct MaxMean {
    pub max: f64,
    pub mean: f64,
}

impl MaxMean {
    pub fn of(v: impl Iterator<Item = f64>) -> MaxMean {
        let (mut max, mut sum, mut n) = (0.0f64, 0.0, 0usize);
        for x in v {
            max = max.max(x);
            sum += x;
            n += 1;
        }
        MaxMean {
            max,
            mean: if n == 0 { 0.0 } else { sum / n as f64 },
        }
    }
}

/// Per-pass summary over devices (milliseconds).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct PassSummary {
    pub ms: f64,
    pub compute_ms: MaxMean,
    pub exposed_comm_ms: MaxMean,
    pub peer_wait_ms: MaxMean,
    pub tail_idle_ms: MaxMean,
    /// Max over mean of compute time (1 = perfectly balanced).
    pub compute_imbalance: f64,
}

impl PassResult {
    pub fn summary(&self) -> PassSummary {
        let ms =
            |f: fn(&DeviceBreakdown) -> f64| MaxMean::of(self.devices.iter().map(|d| f(d) / 1e3));
        let compute = ms(|d| d.compute_us);
        PassSummary {
            ms: self.makespan_us / 1e3,
            compute_ms: compute,
            exposed_comm_ms: ms(|d| d.exposed_comm_us),
            peer_wait_ms: ms(|d| d.peer_wait_us),
            tail_idle_ms: ms(|d| d.tail_idle_us),
            compute_imbalance: if compute.mean > 0.0 {
                compute.max / compute.mean
            } else {
                1.0
            },
        }
    }
}

/// Forward and backward results of one plan.
#[derive(Debug, Clone, Serialize)]
pub struct SimResult {
    pub forward: PassResult,
    pub backward: PassResult,
}

/// Simulates both passes of `plan`.
pub fn simulate(
    plan: &Plan,
    cluster: &Cluster,
    hw: &Hardware,
    opts: &SimOptions,
) -> Result<SimResult, SimError> {
    Ok(SimResult {
        forward: simulate_pass(plan, false, cluster, hw, opts)?,
        backward: simulate_pass(plan, true, cluster, hw, opts)?,
    })
}

#[derive(Clone, Copy, PartialEq)]
struct Time(f64);
impl Eq for Time {}
impl PartialOrd for Time {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Time {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    ComputeDone(u32),
    LatencyDone(u32),
}

struct Group {
    dev: u32,
    instr: usize,
    tag: u32,
    flows: Vec<u32>,
    pending: u32,
    ready: Option<f64>,
    started: Option<f64>,
    done: Option<f64>,
    last_join: f64,
    bytes: u64,
}

struct Flow {
    groups: [usize; 2],
    bytes: f64,
    latency: f64,
    links: (u32, u32),
    remaining: f64,
    rate: f64,
}

struct Dev {
    pc: usize,
    busy: bool,
    /// The `Comm` / `Wait` at `pc` has run its staging copies (packs before the group,
    /// unpacks after it): the next visit moves past it.
    staged: bool,
    blocked_on: Option<usize>,
    blocked_since: f64,
    groups: Vec<usize>,
    next_group: usize,
    /// Group id of each Comm / Wait instruction.
    instr_group: Vec<usize>,
    compute_end: Option<f64>,
    bd: DeviceBreakdown,
}

struct Sim<'a> {
    instrs: Vec<&'a [Instr]>,
    cost: Vec<ProgramCost>,
    devs: Vec<Dev>,
    groups: Vec<Group>,
    flows: Vec<Flow>,
    flow_links: Vec<u32>,
    cap: Vec<f64>,
    heap: BinaryHeap<std::cmp::Reverse<(Time, u64, Ev)>>,
    seq: u64,
    active: Vec<u32>,
    last_update: f64,
    dirty: bool,
    trace: bool,
    spans: Vec<Span>,
    // Scratch for rate computation.
    link_users: Vec<Vec<u32>>,
    rem: Vec<f64>,
    cnt: Vec<u32>,
    touched: Vec<u32>,
}

/// Simulates the forward (`backward = false`) or backward program of every device.
pub fn simulate_pass(
    plan: &Plan,
    backward: bool,
    cluster: &Cluster,
    hw: &Hardware,
    opts: &SimOptions,
) -> Result<PassResult, SimError> {
    let profile = hw.profile();
    let pass = if backward { "backward" } else { "forward" };
    let n = plan.devices.len();
    if n as u32 != cluster.n_devices() {
        return Err(SimError::DeviceCount {
            plan: n as u32,
            cluster: cluster.n_devices(),
        });
    }
    let links = Links::new(cluster);
    let progs: Vec<_> = (0..n).map(|d| program(plan, d, backward)).collect();
    let head_dim = plan.batch.model.head_dim;
    let cost: Vec<ProgramCost> = progs
        .iter()
        .map(|p| program_cost(p, head_dim, hw, backward))
        .collect();

    // Groups and the Comm/Wait → group map.
    let mut groups: Vec<Group> = Vec::new();
    let mut devs: Vec<Dev> = Vec::with_capacity(n);
    for (d, p) in progs.iter().enumerate() {
        let bad = |instr: usize, msg: String| SimError::Bad {
            device: d as u32,
            pass,
            instr,
            msg,
        };
        let mut instr_group = vec![usize::MAX; p.instrs.len()];
        let mut tags: Vec<(u32, usize)> = Vec::new();
        let mut dg = Vec::new();
        for (i, ins) in p.instrs.iter().enumerate() {
            if let Instr::Comm { tag, ops } = ins {
                if let Some(&(prev, _)) = tags.last() {
                    if *tag <= prev {
                        return Err(bad(i, format!("comm tag {tag} does not increase")));
                    }
                }
                for op in ops {
                    if op.region.buf as usize >= p.buffers.len() {
                        return Err(bad(i, "comm names an undeclared buffer".into()));
                    }
                    if op.peer as usize >= n || op.peer as usize == d {
                        return Err(bad(i, format!("bad peer {}", op.peer)));
                    }
                }
                let gid = groups.len();
                groups.push(Group {
                    dev: d as u32,
                    instr: i,
                    tag: *tag,
                    flows: Vec::new(),
                    pending: 0,
                    ready: None,
                    started: None,
                    done: None,
                    last_join: 0.0,
                    bytes: 0,
                });
                tags.push((*tag, gid));
                dg.push(gid);
                instr_group[i] = gid;
            }
        }
        for (i, ins) in p.instrs.iter().enumerate() {
            if let Instr::Wait { tag } = ins {
                // The awaited group must come earlier in the list.
                match tags.binary_search_by_key(tag, |x| x.0) {
                    Ok(k) if groups[tags[k].1].instr < i => instr_group[i] = tags[k].1,
                    _ => {
                        return Err(bad(
                            i,
                            format!("wait for tag {tag}, which no earlier comm group has"),
                        ))
                    }
                }
            }
        }
        devs.push(Dev {
            pc: 0,
            busy: false,
            staged: false,
            blocked_on: None,
            blocked_since: 0.0,
            groups: dg,
            next_group: 0,
            instr_group,
            compute_end: None,
            bd: DeviceBreakdown::default(),
        });
    }

    // Flows: sends per (sender group, peer), matched against the peer's receives.
    let region_bytes = |d: usize, r: &dcp_core::plan::Region| {
        let b = &progs[d].buffers[r.buf as usize];
        r.len as u64 * r.heads as u64 * b.width as u64 * b.dtype.size()
    };
    let mut sends: BTreeMap<(u32, u32, u32), u64> = BTreeMap::new();
    let mut recvs: BTreeMap<(u32, u32, u32), u64> = BTreeMap::new();
    for g in &groups {
        let d = g.dev as usize;
        if let Instr::Comm { ops, .. } = &progs[d].instrs[g.instr] {
            for op in ops {
                let b = region_bytes(d, &op.region);
                match op.dir {
                    Dir::Send => *sends.entry((g.tag, g.dev, op.peer)).or_default() += b,
                    Dir::Recv => *recvs.entry((g.tag, op.peer, g.dev)).or_default() += b,
                }
            }
        }
    }
    let group_of = |devs: &[Dev], groups: &[Group], d: u32, tag: u32| {
        devs[d as usize]
            .groups
            .binary_search_by_key(&tag, |&g| groups[g].tag)
            .ok()
            .map(|k| devs[d as usize].groups[k])
    };
    for (key, &bytes) in &recvs {
        if sends.get(key) != Some(&bytes) {
            let (tag, from, to) = *key;
            let gid = group_of(&devs, &groups, to, tag).expect("receiver group exists");
            return Err(SimError::Bad {
                device: to,
                pass,
                instr: groups[gid].instr,
                msg: format!(
                    "comm tag {tag}: receives {bytes} bytes from device {from}, which sends {} in that group",
                    sends.get(key).copied().unwrap_or(0)
                ),
            });
        }
    }
    let mut flows = Vec::new();
    let mut flow_links = Vec::new();
    let mut path = Vec::new();
    for (&(tag, from, to), &bytes) in &sends {
        let gs = group_of(&devs, &groups, from, tag).expect("sender group exists");
        let Some(gr) = group_of(&devs, &groups, to, tag) else {
            return Err(SimError::Bad {
                device: from,
                pass,
                instr: groups[gs].instr,
                msg: format!("comm tag {tag}: sends to device {to}, which has no group {tag}"),
            });
        };
        if recvs.get(&(tag, from, to)) != Some(&bytes) {
            return Err(SimError::Bad {
                device: from,
                pass,
                instr: groups[gs].instr,
                msg: format!(
                    "comm tag {tag}: sends {bytes} bytes to device {to}, which receives {}",
                    recvs.get(&(tag, from, to)).copied().unwrap_or(0)
                ),
            });
        }
        let mut latency = links.path(cluster, from, to, &mut path);
        if cluster.common_level(from, to) == 0 && !profile.p2p_curve.is_empty() {
            // Measured send/recv time of this size, less the bandwidth phase the flow will
            // spend on its links: small and medium messages pay what was measured.
            let bw = cluster.levels[0].gbps * 1e3;
            latency = (profile.p2p_us(bytes as f64) - bytes as f64 / bw).max(latency);
        }
        let start = flow_links.len() as u32;
        flow_links.extend_from_slice(&path);
        let fid = flows.len() as u32;
        flows.push(Flow {
            groups: [gs, gr],
            bytes: bytes as f64,
            latency,
            links: (start, path.len() as u32),
            remaining: bytes as f64,
            rate: 0.0,
        });
        for g in [gs, gr] {
            groups[g].flows.push(fid);
            groups[g].pending += 1;
        }
        groups[gs].bytes += bytes;
        let bd = &mut devs[from as usize].bd;
        if cluster.common_level(from, to) == 0 {
            bd.bytes_sent_intra += bytes;
        } else {
            bd.bytes_sent_inter += bytes;
        }
    }

    let n_links = links.cap.len();
    let mut sim = Sim {
        instrs: progs.iter().map(|p| p.instrs.as_slice()).collect(),
        cost,
        devs,
        groups,
        flows,
        flow_links,
        cap: links.cap,
        heap: BinaryHeap::new(),
        seq: 0,
        active: Vec::new(),
        last_update: 0.0,
        dirty: false,
        trace: opts.trace,
        spans: Vec::new(),
        link_users: vec![Vec::new(); n_links],
        rem: vec![0.0; n_links],
        cnt: vec![0; n_links],
        touched: Vec::new(),
    };
    sim.run();
    sim.finish(pass)
}

impl Sim<'_> {
    fn push(&mut self, t: f64, ev: Ev) {
        self.seq += 1;
        self.heap.push(std::cmp::Reverse((Time(t), self.seq, ev)));
    }

    fn run(&mut self) {
        for d in 0..self.devs.len() {
            self.advance_compute(d, 0.0);
        }
        loop {
            if self.dirty {
                self.recompute_rates();
                self.dirty = false;
            }
            let mut t_flow = f64::INFINITY;
            for &f in &self.active {
                let fl = &self.flows[f as usize];
                if fl.rate > 0.0 {
                    t_flow = t_flow.min(self.last_update + fl.remaining / fl.rate);
                }
            }
            let t_heap = self
                .heap
                .peek()
                .map(|e| (e.0).0 .0)
                .unwrap_or(f64::INFINITY);
            let t = t_flow.min(t_heap);
            if !t.is_finite() {
                break;
            }
            // Move bytes up to t.
            let dt = t - self.last_update;
            if dt > 0.0 {
                for &f in &self.active {
                    let fl = &mut self.flows[f as usize];
                    fl.remaining -= fl.rate * dt;
                }
            }
            self.last_update = t;
            // Flows that finish now.
            let mut done = Vec::new();
            self.active.retain(|&f| {
                let fl = &self.flows[f as usize];
                let finished = fl.remaining <= 1e-9 * fl.bytes.max(1.0)
                    || (fl.rate > 0.0 && fl.remaining / fl.rate <= 1e-9);
                if finished {
                    done.push(f);
                }
                !finished
            });
            if !done.is_empty() {
                self.dirty = true;
            }
            for f in done {
                self.flows[f as usize].remaining = 0.0;
                self.flow_done(f, t);
            }
            while let Some(std::cmp::Reverse((Time(te), _, ev))) = self.heap.peek().copied() {
                if te > t {
                    break;
                }
                self.heap.pop();
                match ev {
                    Ev::ComputeDone(d) => {
                        let dev = &mut self.devs[d as usize];
                        dev.busy = false;
                        // A Comm / Wait that ran its staging copies is visited again.
                        if !dev.staged {
                            dev.pc += 1;
                        }
                        self.advance_compute(d as usize, t);
                    }
                    Ev::LatencyDone(f) => self.enter_bandwidth(f, t),
                }
            }
        }
    }

    fn advance_compute(&mut self, d: usize, now: f64) {
        let instrs: &[Instr] = self.instrs[d];
        loop {
            let dev = &mut self.devs[d];
            if dev.busy || dev.blocked_on.is_some() {
                return;
            }
            let pc = dev.pc;
            let Some(ins) = instrs.get(pc) else {
                if dev.compute_end.is_none() {
                    dev.compute_end = Some(now);
                }
                return;
            };
            match ins {
                Instr::Comm { .. } => {
                    if self.stage(d, pc, now) {
                        return;
                    }
                    let dev = &mut self.devs[d];
                    let gid = dev.instr_group[pc];
                    dev.pc += 1;
                    self.groups[gid].ready = Some(now);
                    self.try_start_group(d, now);
                }
                Instr::Wait { .. } => {
                    let gid = dev.instr_group[pc];
                    if self.groups[gid].done.is_some() {
                        if self.stage(d, pc, now) {
                            return;
                        }
                        self.devs[d].pc += 1;
                    } else {
                        dev.blocked_on = Some(gid);
                        dev.blocked_since = now;
                        return;
                    }
                }
                _ => {
                    let dur = self.cost[d].dur_us[pc];
                    dev.busy = true;
                    dev.bd.compute_us += dur;
                    dev.bd.flops += self.cost[d].flops[pc];
                    match op_kind(ins) {
                        Some(OpKind::Attn) => dev.bd.attn_us += dur,
                        _ => dev.bd.elementwise_us += dur,
                    }
                    if self.trace {
                        self.spans.push(Span {
                            device: d as u32,
                            stream: Stream::Compute,
                            name: ins.name().to_string(),
                            start_us: now,
                            dur_us: dur,
                            detail: format!("instr {pc}"),
                        });
                    }
                    self.push(now + dur, Ev::ComputeDone(d as u32));
                    return;
                }
            }
        }
    }

    /// Runs the staging copies of the `Comm` / `Wait` at `pc` on device `d`'s compute stream
    /// (their cost is the instruction's duration): true while they run, false once done (or
    /// when there are none), after which the caller moves past the instruction.
    fn stage(&mut self, d: usize, pc: usize, now: f64) -> bool {
        let dur = self.cost[d].dur_us[pc];
        let dev = &mut self.devs[d];
        if dev.staged || dur <= 0.0 {
            dev.staged = false;
            return false;
        }
        dev.staged = true;
        dev.busy = true;
        dev.bd.compute_us += dur;
        dev.bd.elementwise_us += dur;
        if self.trace {
            self.spans.push(Span {
                device: d as u32,
                stream: Stream::Compute,
                name: "staging".to_string(),
                start_us: now,
                dur_us: dur,
                detail: format!("instr {pc}"),
            });
        }
        self.push(now + dur, Ev::ComputeDone(d as u32));
        true
    }

    fn try_start_group(&mut self, d: usize, now: f64) {
        let dev = &self.devs[d];
        let Some(&gid) = dev.groups.get(dev.next_group) else {
            return;
        };
        let g = &mut self.groups[gid];
        if g.started.is_some() || g.ready.is_none() {
            return;
        }
        g.started = Some(now);
        g.last_join = now;
        if g.flows.is_empty() {
            self.complete_group(gid, now);
            return;
        }
        let flows = std::mem::take(&mut self.groups[gid].flows);
        for &f in &flows {
            let [a, b] = self.flows[f as usize].groups;
            let other = if a == gid { b } else { a };
            if self.groups[other].started.is_some() {
                self.activate(f, now);
            }
        }
        self.groups[gid].flows = flows;
    }

    fn activate(&mut self, f: u32, now: f64) {
        for g in self.flows[f as usize].groups {
            let gr = &mut self.groups[g];
            gr.last_join = gr.last_join.max(now);
        }
        let lat = self.flows[f as usize].latency;
        if lat > 0.0 {
            self.push(now + lat, Ev::LatencyDone(f));
        } else {
            self.enter_bandwidth(f, now);
        }
    }

    fn enter_bandwidth(&mut self, f: u32, now: f64) {
        if self.flows[f as usize].bytes <= 0.0 {
            self.flow_done(f, now);
        } else {
            self.active.push(f);
            self.dirty = true;
        }
    }

    fn flow_done(&mut self, f: u32, now: f64) {
        for g in self.flows[f as usize].groups {
            self.groups[g].pending -= 1;
            if self.groups[g].pending == 0 {
                self.complete_group(g, now);
            }
        }
    }

    fn complete_group(&mut self, gid: usize, now: f64) {
        let g = &mut self.groups[gid];
        g.done = Some(now);
        let d = g.dev as usize;
        let start = g.started.unwrap_or(now);
        let (tag, bytes, last_join) = (g.tag, g.bytes, g.last_join);
        let dev = &mut self.devs[d];
        dev.bd.comm_busy_us += now - start;
        dev.next_group += 1;
        if self.trace {
            self.spans.push(Span {
                device: d as u32,
                stream: Stream::Comm,
                name: format!("comm {tag}"),
                start_us: start,
                dur_us: now - start,
                detail: format!("sends {bytes} bytes; peers joined by {:.1} µs", last_join),
            });
        }
        if dev.blocked_on == Some(gid) {
            let t0 = dev.blocked_since;
            let peer = (last_join.min(now) - start.max(t0)).max(0.0);
            dev.bd.peer_wait_us += peer;
            dev.bd.exposed_comm_us += (now - t0) - peer;
            // The Wait is visited again: it moves on after its unpack copies, if any.
            dev.blocked_on = None;
            if self.trace && now > t0 {
                self.spans.push(Span {
                    device: d as u32,
                    stream: Stream::Wait,
                    name: format!("wait {tag}"),
                    start_us: t0,
                    dur_us: now - t0,
                    detail: format!("peer wait {peer:.1} µs"),
                });
            }
            self.try_start_group(d, now);
            self.advance_compute(d, now);
        } else {
            self.try_start_group(d, now);
        }
    }

    /// Max-min fair rates of the flows in their bandwidth phase (progressive filling).
    fn recompute_rates(&mut self) {
        for &l in &self.touched {
            self.link_users[l as usize].clear();
            self.cnt[l as usize] = 0;
        }
        self.touched.clear();
        for (i, &f) in self.active.iter().enumerate() {
            let (s, len) = self.flows[f as usize].links;
            for &l in &self.flow_links[s as usize..(s + len) as usize] {
                let lu = l as usize;
                if self.cnt[lu] == 0 {
                    self.touched.push(l);
                    self.rem[lu] = self.cap[lu];
                }
                self.cnt[lu] += 1;
                self.link_users[lu].push(i as u32);
            }
            self.flows[f as usize].rate = -1.0;
        }
        loop {
            let mut best: Option<(f64, u32)> = None;
            for &l in &self.touched {
                let c = self.cnt[l as usize];
                if c > 0 {
                    let share = self.rem[l as usize].max(0.0) / c as f64;
                    if best.is_none_or(|(b, _)| share < b) {
                        best = Some((share, l));
                    }
                }
            }
            let Some((share, l)) = best else { break };
            let users = std::mem::take(&mut self.link_users[l as usize]);
            for &i in &users {
                let f = self.active[i as usize] as usize;
                if self.flows[f].rate >= 0.0 {
                    continue;
                }
                self.flows[f].rate = share;
                let (s, len) = self.flows[f].links;
                for &l2 in &self.flow_links[s as usize..(s + len) as usize] {
                    self.rem[l2 as usize] -= share;
                    self.cnt[l2 as usize] -= 1;
                }
            }
            self.link_users[l as usize] = users;
        }
    }

    fn finish(mut self, pass: &'static str) -> Result<PassResult, SimError> {
        let mut stuck = Vec::new();
        for (d, dev) in self.devs.iter().enumerate() {
            if dev.pc < self.instrs[d].len() || dev.next_group < dev.groups.len() {
                let what = match dev.blocked_on {
                    Some(g) => format!(
                        "device {d} waits at instruction {} for comm tag {}",
                        dev.pc, self.groups[g].tag
                    ),
                    None => format!("device {d} stopped at instruction {}", dev.pc),
                };
                let pending = dev
                    .groups
                    .get(dev.next_group)
                    .map(|&g| {
                        let peers: Vec<String> = self.groups[g]
                            .flows
                            .iter()
                            .flat_map(|&f| self.flows[f as usize].groups)
                            .filter(|&o| o != g && self.groups[o].started.is_none())
                            .map(|o| self.groups[o].dev.to_string())
                            .collect();
                        format!(
                            "; its comm tag {} waits for device(s) {}",
                            self.groups[g].tag,
                            peers.join(",")
                        )
                    })
                    .unwrap_or_default();
                stuck.push(what + &pending);
            }
        }
        if !stuck.is_empty() {
            stuck.truncate(4);
            return Err(SimError::Deadlock {
                pass,
                msg: stuck.join("; "),
            });
        }
        for dev in self.devs.iter_mut() {
            let last_comm = dev
                .groups
                .last()
                .and_then(|&g| self.groups[g].done)
                .unwrap_or(0.0);
            dev.bd.finish_us = dev.compute_end.unwrap_or(0.0).max(last_comm);
        }
        let makespan = self.devs.iter().map(|d| d.bd.finish_us).fold(0.0, f64::max);
        let devices: Vec<DeviceBreakdown> = self
            .devs
            .into_iter()
            .map(|d| {
                let mut bd = d.bd;
                bd.tail_idle_us = makespan - bd.finish_us;
                bd
            })
            .collect();
        Ok(PassResult {
            makespan_us: makespan,
            devices,
            spans: std::mem::take(&mut self.spans),
        })
    }
}
