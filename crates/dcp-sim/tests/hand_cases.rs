//! The simulator on cases whose time is known in closed form: plans built by hand with the IR.

use dcp_core::builder::ProgramBuilder;
use dcp_core::mask::MaskSpec;
use dcp_core::plan::{
    BufferRole, DevicePlan, Dir, FillValue, Instr, P2p, Plan, Program, Region, PLAN_FORMAT_VERSION,
};
use dcp_core::planners::{make_plan, PlannerOptions};
use dcp_core::spec::{BatchSpec, DType, ModelShape, Topology};
use dcp_sim::cluster::{Cluster, Level};
use dcp_sim::{simulate, simulate_pass, Hardware, Profile, SimError, SimOptions};

/// 1 GB/s links (1000 bytes/µs), 10 µs latency, memory at 1000 GB/s, no launch cost.
fn profile() -> Profile {
    Profile {
        name: "test".into(),
        launch_us: 0.0,
        per_work_us: 0.0,
        mem_gbps: 1000.0,
        intra_gbps: 1.0,
        intra_latency_us: 10.0,
        inter_gbps: 1.0,
        inter_latency_us: 20.0,
        nics_per_node: 0,
        ..Profile::h100()
    }
}

const TOK_BYTES: u64 = 1000; // bf16, one head of width 500

/// A program builder with one 1000-token scratch buffer of 1000 bytes per token.
struct Dev {
    b: ProgramBuilder,
    buf: u32,
}

impl Dev {
    fn new() -> Dev {
        let mut b = ProgramBuilder::new();
        let buf = b.buffer("x", BufferRole::Scratch, DType::Bf16, 1000, 1, 500);
        Dev { b, buf }
    }
    fn region(&self, tokens: u32) -> Region {
        self.b.rows(self.buf, 0, tokens)
    }
    fn comm(&mut self, tag: u32, ops: &[(Dir, u32, u32)]) {
        let ops = ops
            .iter()
            .map(|&(dir, peer, tokens)| P2p {
                dir,
                peer,
                region: self.region(tokens),
            })
            .collect();
        self.b.push(Instr::Comm { tag, ops });
    }
    fn wait(&mut self, tag: u32) {
        self.b.push(Instr::Wait { tag });
    }
    /// A fill of `tokens` rows: tokens·1000 bytes at 1e6 bytes/µs = tokens/1000 µs.
    fn fill(&mut self, tokens: u32) {
        let dst = self.region(tokens);
        self.b.push(Instr::Fill {
            dst,
            value: FillValue::Zero,
        });
    }
}

fn plan_of(devs: Vec<Dev>, topo: Topology) -> Plan {
    let batch = BatchSpec::uniform(&[16], MaskSpec::Causal, ModelShape::default(), 16);
    Plan {
        version: PLAN_FORMAT_VERSION,
        planner: "hand".into(),
        candidate: None,
        batch,
        topology: topo,
        devices: devs
            .into_iter()
            .enumerate()
            .map(|(i, d)| DevicePlan {
                device: i as u32,
                node: topo.node_of(i as u32),
                layout: Vec::new(),
                forward: d.b.finish(),
                backward: Program::default(),
            })
            .collect(),
    }
}

fn fwd_ms_of(devs: Vec<Dev>, nodes: u32, gpus: u32, prof: &Profile) -> (f64, dcp_sim::PassResult) {
    let topo = Topology::new(nodes, gpus);
    let plan = plan_of(devs, topo);
    let cluster = Cluster::from_sizes(&[gpus, nodes], prof);
    let r = simulate_pass(
        &plan,
        false,
        &cluster,
        &Hardware::new(prof.clone()),
        &SimOptions { trace: true },
    )
    .unwrap();
    (r.makespan_us, r)
}

/// The forward pass of `plan` on `cluster` with profile `p`, default options.
fn forward_pass(
    plan: &Plan,
    cluster: &Cluster,
    p: &Profile,
) -> Result<dcp_sim::PassResult, SimError> {
    simulate_pass(
        plan,
        false,
        cluster,
        &Hardware::new(p.clone()),
        &SimOptions::default(),
    )
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

#[test]
fn one_transfer() {
    let p = profile();
    let mut a = Dev::new();
    let mut b = Dev::new();
    a.comm(0, &[(Dir::Send, 1, 100)]);
    a.wait(0);
    b.comm(0, &[(Dir::Recv, 0, 100)]);
    b.wait(0);
    let (t, r) = fwd_ms_of(vec![a, b], 1, 2, &p);
    // 10 µs latency + 100 000 bytes at 1000 bytes/µs.
    assert!(close(t, 110.0), "{t}");
    assert!(close(r.devices[0].exposed_comm_us, 110.0));
    assert_eq!(r.devices[0].bytes_sent_intra, 100 * TOK_BYTES);
    // Across nodes: inter latency.
    let mut a = Dev::new();
    let mut b = Dev::new();
    a.comm(0, &[(Dir::Send, 1, 100)]);
    b.comm(0, &[(Dir::Recv, 0, 100)]);
    let (t, r) = fwd_ms_of(vec![a, b], 2, 1, &p);
    assert!(close(t, 120.0), "{t}");
    assert_eq!(r.devices[0].bytes_sent_inter, 100 * TOK_BYTES);
}

#[test]
fn shared_link_is_split_fairly() {
    let p = profile();
    // Devices 0 and 1 both send 100 tokens into device 2's NVLink in-port: each gets half.
    let mut d0 = Dev::new();
    let mut d1 = Dev::new();
    let mut d2 = Dev::new();
    d0.comm(0, &[(Dir::Send, 2, 100)]);
    d1.comm(0, &[(Dir::Send, 2, 100)]);
    d2.comm(0, &[(Dir::Recv, 0, 100), (Dir::Recv, 1, 100)]);
    let (t, r) = fwd_ms_of(vec![d0, d1, d2], 1, 3, &p);
    assert!(close(t, 210.0), "{t}");
    assert!(close(r.devices[0].finish_us, 210.0));
    // Unequal sizes: the short flow ends at 10 + 2·100, then the long one runs at full rate.
    let mut d0 = Dev::new();
    let mut d1 = Dev::new();
    let mut d2 = Dev::new();
    d0.comm(0, &[(Dir::Send, 2, 100)]);
    d1.comm(0, &[(Dir::Send, 2, 200)]);
    d2.comm(0, &[(Dir::Recv, 0, 100), (Dir::Recv, 1, 200)]);
    let (t, r) = fwd_ms_of(vec![d0, d1, d2], 1, 3, &p);
    assert!(close(r.devices[0].finish_us, 210.0));
    assert!(close(t, 310.0), "{t}");
    // Max-min, not proportional: 0→2 and 1→2 share 2's in-port, 1→3 only 1's out-port with 1→2;
    // every flow gets 1/2 of a link.
    let mut d = (0..4).map(|_| Dev::new()).collect::<Vec<_>>();
    d[0].comm(0, &[(Dir::Send, 2, 100)]);
    d[1].comm(0, &[(Dir::Send, 2, 100), (Dir::Send, 3, 100)]);
    d[2].comm(0, &[(Dir::Recv, 0, 100), (Dir::Recv, 1, 100)]);
    d[3].comm(0, &[(Dir::Recv, 1, 100)]);
    let (t, _) = fwd_ms_of(d, 1, 4, &p);
    assert!(close(t, 210.0), "{t}");
}

#[test]
fn one_nic_per_node_is_shared() {
    // 2 nodes × 2 GPUs; 0→2 and 1→3 both leave node 0: through its one NIC, then with one NIC
    // per GPU (no sharing).
    for (nics_per_node, want) in [(1, 220.0), (0, 120.0)] {
        let mut p = profile();
        p.nics_per_node = nics_per_node;
        let mut d = (0..4).map(|_| Dev::new()).collect::<Vec<_>>();
        d[0].comm(0, &[(Dir::Send, 2, 100)]);
        d[1].comm(0, &[(Dir::Send, 3, 100)]);
        d[2].comm(0, &[(Dir::Recv, 0, 100)]);
        d[3].comm(0, &[(Dir::Recv, 1, 100)]);
        let (t, _) = fwd_ms_of(d, 2, 2, &p);
        assert!(close(t, want), "{nics_per_node} NICs per node: {t}");
    }
}

#[test]
fn compute_overlaps_communication() {
    let p = profile();
    for (fill_tokens, want) in [(1000u32, 110.0f64), (1000 * 300, 300.0)] {
        // Fill cost: fill_tokens / 1000 µs; the buffer must hold the rows.
        let mut a = Dev {
            b: ProgramBuilder::new(),
            buf: 0,
        };
        a.buf =
            a.b.buffer("x", BufferRole::Scratch, DType::Bf16, fill_tokens, 1, 500);
        let mut b = Dev::new();
        a.comm(0, &[(Dir::Send, 1, 100)]);
        a.fill(fill_tokens);
        a.wait(0);
        b.comm(0, &[(Dir::Recv, 0, 100)]);
        b.wait(0);
        let (t, r) = fwd_ms_of(vec![a, b], 1, 2, &p);
        assert!(
            close(t, want.max(fill_tokens as f64 / 1000.0)),
            "{t} vs {want}"
        );
        let d0 = &r.devices[0];
        assert!(close(d0.compute_us, fill_tokens as f64 / 1000.0));
        assert!(close(d0.exposed_comm_us, (110.0 - d0.compute_us).max(0.0)));
    }
}

/// N devices, N steps: step s < N−1 sends `tok` tokens to the next device while computing
/// `c` µs, then waits. Closed form: (N−1)·max(c, α + bytes/bw) + c.
fn ring(n: u32, tok: u32, fill_tokens: u32, nodes: u32) -> f64 {
    let p = profile();
    let mut devs = Vec::new();
    for i in 0..n {
        let mut d = Dev {
            b: ProgramBuilder::new(),
            buf: 0,
        };
        d.buf = d.b.buffer(
            "x",
            BufferRole::Scratch,
            DType::Bf16,
            fill_tokens.max(tok),
            1,
            500,
        );
        for s in 0..n {
            if s + 1 < n {
                d.comm(
                    s,
                    &[
                        (Dir::Send, (i + 1) % n, tok),
                        (Dir::Recv, (i + n - 1) % n, tok),
                    ],
                );
            }
            d.fill(fill_tokens);
            if s + 1 < n {
                d.wait(s);
            }
        }
        devs.push(d);
    }
    fwd_ms_of(devs, nodes, n / nodes, &p).0
}

#[test]
fn ring_matches_closed_form() {
    // Communication-bound: α + 100 µs > 50 µs of compute.
    let t = ring(8, 100, 50_000, 1);
    assert!(close(t, 7.0 * 110.0 + 50.0), "{t}");
    // Compute-bound.
    let t = ring(8, 100, 500_000, 1);
    assert!(close(t, 8.0 * 500.0), "{t}");
    // Two nodes (one NIC per GPU): the two node-crossing steps pay the inter latency each step,
    // and every step waits for the slowest pair.
    let t = ring(8, 100, 50_000, 2);
    assert!(close(t, 7.0 * 120.0 + 50.0), "{t}");
}

#[test]
fn mismatched_groups_are_errors() {
    let p = profile();
    let mut a = Dev::new();
    let mut b = Dev::new();
    a.comm(0, &[(Dir::Send, 1, 100)]);
    b.comm(0, &[(Dir::Recv, 0, 50)]);
    let topo = Topology::new(1, 2);
    let plan = plan_of(vec![a, b], topo);
    let c = Cluster::from_sizes(&[2, 1], &p);
    let e = forward_pass(&plan, &c, &p).unwrap_err();
    assert!(matches!(e, SimError::Bad { .. }), "{e}");
    let c4 = Cluster::from_sizes(&[4], &p);
    assert!(matches!(
        forward_pass(&plan, &c4, &p),
        Err(SimError::DeviceCount { .. })
    ));
}

#[test]
fn planner_plans_simulate() {
    let p = Profile::h100();
    let topo = Topology::new(2, 4);
    let cluster = Cluster::from_topology(&topo, &p);
    let batch = BatchSpec::uniform(
        &[9000, 3000, 700, 20000],
        MaskSpec::Causal,
        ModelShape::default(),
        1024,
    );
    let mut times = Vec::new();
    for name in ["ring", "zigzag", "local"] {
        let plan = make_plan(name, &batch, &topo, &PlannerOptions::default()).unwrap();
        let r = simulate(
            &plan,
            &cluster,
            &Hardware::new(p.clone()),
            &SimOptions::default(),
        )
        .unwrap();
        let (f, b) = (r.forward.summary(), r.backward.summary());
        assert!(f.ms > 0.0 && b.ms > f.ms, "{name}: {f:?} {b:?}");
        // No device can beat its own compute; totals add up.
        for d in &r.forward.devices {
            assert!(d.finish_us <= r.forward.makespan_us + 1e-9);
            assert!(d.compute_us <= d.finish_us + 1e-9);
        }
        let flops: f64 = r.forward.devices.iter().map(|d| d.flops).sum();
        let want: f64 = batch
            .seqs
            .iter()
            .map(|s| s.len as f64 * (s.len as f64 + 1.0) / 2.0 * 4.0 * 128.0 * 8.0)
            .sum();
        assert!(
            (flops / want - 1.0).abs() < 1e-9,
            "{name}: {flops} vs {want}"
        );
        times.push(f.ms);
    }
    // Zigzag balances causal work better than ring.
    assert!(times[1] < times[0], "{times:?}");
    // The local plan never communicates.
    let plan = make_plan("local", &batch, &topo, &PlannerOptions::default()).unwrap();
    let r = forward_pass(&plan, &cluster, &p).unwrap();
    assert!(r
        .devices
        .iter()
        .all(|d| d.bytes_sent_intra + d.bytes_sent_inter == 0));
}

#[test]
fn three_level_cluster() {
    let p = profile();
    let c = Cluster {
        levels: vec![
            Level {
                size: 2,
                gbps: 1.0,
                latency_us: 10.0,
                ports: 0,
            },
            Level {
                size: 2,
                gbps: 1.0,
                latency_us: 20.0,
                ports: 2,
            },
            Level {
                size: 2,
                gbps: 0.5,
                latency_us: 30.0,
                ports: 1,
            },
        ],
    };
    // 0 → 4 crosses the top level: its single 0.5 GB/s uplink is the bottleneck.
    let mut d = (0..8).map(|_| Dev::new()).collect::<Vec<_>>();
    d[0].comm(0, &[(Dir::Send, 4, 100)]);
    d[4].comm(0, &[(Dir::Recv, 0, 100)]);
    let plan = plan_of(d, Topology::new(4, 2));
    let r = forward_pass(&plan, &c, &p).unwrap();
    assert!(close(r.makespan_us, 30.0 + 200.0), "{}", r.makespan_us);
}

#[test]
fn trace_has_both_passes_and_all_devices() {
    let p = Profile::h100();
    let topo = Topology::new(1, 2);
    let cluster = Cluster::from_topology(&topo, &p);
    let batch = BatchSpec::uniform(&[3000, 500], MaskSpec::Causal, ModelShape::default(), 1024);
    let plan = make_plan("zigzag", &batch, &topo, &PlannerOptions::default()).unwrap();
    let r = simulate(
        &plan,
        &cluster,
        &Hardware::new(p.clone()),
        &SimOptions { trace: true },
    )
    .unwrap();
    let t = dcp_sim::trace::chrome_trace(&r, "t");
    let ev = t["traceEvents"].as_array().unwrap();
    for pass in ["forward", "backward"] {
        for dev in 0..2u64 {
            for tid in [0u64, 1] {
                assert!(
                    ev.iter().any(|e| e["ph"] == "X"
                        && e["pid"] == dev
                        && e["tid"] == tid
                        && e["args"]["pass"] == pass),
                    "{pass} device {dev} track {tid}"
                );
            }
        }
    }
    // Spans never overlap on a device's compute track.
    let mut spans: Vec<(f64, f64)> = ev
        .iter()
        .filter(|e| e["ph"] == "X" && e["pid"] == 0u64 && e["tid"] == 0u64)
        .map(|e| (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap()))
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    for w in spans.windows(2) {
        assert!(w[0].0 + w[0].1 <= w[1].0 + 1e-6, "{w:?}");
    }
}

/// A head subset of several tokens is sent through a packed copy and received through an
/// unpacked one (what the executor does); both run on the compute stream: the pack before the
/// group starts, the unpack after its wait. One head of a two-head buffer: 100 tokens × 500
/// bytes = 50 000 bytes, read and written at 1e6 bytes/µs = 0.1 µs each, 5 µs launch each.
#[test]
fn strided_regions_pay_their_staging_copies() {
    let p = Profile {
        launch_us: 5.0,
        ..profile()
    };
    let dev = |dir: Dir, peer: u32, heads: u32| {
        let mut b = ProgramBuilder::new();
        let buf = b.buffer("x", BufferRole::Scratch, DType::Bf16, 1000, 2, 250);
        let region = Region {
            buf,
            tok: 0,
            len: 100,
            head: 0,
            heads,
        };
        b.push(Instr::Comm {
            tag: 0,
            ops: vec![P2p { dir, peer, region }],
        });
        b.push(Instr::Wait { tag: 0 });
        Dev { b, buf }
    };
    // Both heads: contiguous, no copies. 10 µs latency + 100 000 bytes at 1000 bytes/µs.
    let (t, _) = fwd_ms_of(vec![dev(Dir::Send, 1, 2), dev(Dir::Recv, 0, 2)], 1, 2, &p);
    assert!(close(t, 110.0), "{t}");
    // One head: 50 000 bytes; the sender packs first (5.1 µs), the receiver unpacks after.
    let (t, r) = fwd_ms_of(vec![dev(Dir::Send, 1, 1), dev(Dir::Recv, 0, 1)], 1, 2, &p);
    let want = 5.1 + 10.0 + 50.0 + 5.1;
    assert!(close(t, want), "{t} vs {want}");
    assert!(close(r.devices[0].elementwise_us, 5.1));
    assert!(close(r.devices[1].elementwise_us, 5.1));
}
