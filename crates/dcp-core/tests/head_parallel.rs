//! Byte counts of the head-parallel planners against the textbook formulas: Ulysses moves
//! (N−1)/N of every tensor in each all-to-all; with replicated KV heads it moves what
//! `dcp_core::ulysses` documents; USP adds the zigzag ring of the head share's KV (and fp32 dKV)
//! across its R ring groups. Lengths are multiples of 2N, so every device holds T/N tokens.

use dcp_core::check::{check_plan, random_case};
use dcp_core::mask::MaskSpec;
use dcp_core::plan::{Dir, Instr, Plan, Program};
use dcp_core::planners::{make_plan, PlannerOptions};
use dcp_core::spec::{BatchSpec, ModelShape, Topology};

/// Bytes each device sends in a program.
fn sent(plan: &Plan, backward: bool) -> Vec<u64> {
    plan.devices
        .iter()
        .map(|d| {
            let p: &Program = if backward { &d.backward } else { &d.forward };
            p.instrs
                .iter()
                .filter_map(|i| match i {
                    Instr::Comm { ops, .. } => Some(ops),
                    _ => None,
                })
                .flatten()
                .filter(|o| o.dir == Dir::Send)
                .map(|o| {
                    let b = &p.buffers[o.region.buf as usize];
                    o.region.len as u64 * o.region.heads as u64 * b.width as u64 * b.dtype.size()
                })
                .sum()
        })
        .collect()
}

fn model(heads: u32, kv_heads: u32) -> ModelShape {
    ModelShape {
        heads,
        kv_heads,
        head_dim: 8,
        ..ModelShape::default()
    }
}

fn plan(name: &str, m: ModelShape, n: u32, mask: MaskSpec) -> (Plan, u64) {
    let lens = [96 * n, 2 * n, 30 * n];
    let b = BatchSpec::uniform(&lens, mask, m, 64);
    let p = make_plan(name, &b, &Topology::new(1, n), &PlannerOptions::default()).unwrap();
    let t = lens.iter().sum::<u32>() as u64 / n as u64;
    for d in &p.devices {
        assert_eq!(d.local_tokens() as u64, t);
    }
    (p, t)
}

/// Per-token row bytes: (Q-like, KV-like, LSE) in the model dtype (LSE fp32).
fn rows(m: &ModelShape) -> (u64, u64, u64) {
    (
        m.q_bytes_per_token(),
        m.kv_bytes_per_token(),
        4 * m.heads as u64,
    )
}

#[test]
fn ulysses_moves_n_minus_one_over_n_of_every_tensor() {
    for (heads, kv, n) in [(8, 4, 4), (8, 4, 2), (6, 3, 3), (4, 4, 4)] {
        let m = model(heads, kv);
        let (q, k, l) = rows(&m);
        for mask in [MaskSpec::Causal, MaskSpec::lambda()] {
            let (p, t) = plan("ulysses", m, n, mask);
            let a2a = |row: u64| (n as u64 - 1) * t * row / n as u64;
            // Forward: Q, KV in; O, LSE out.
            let fwd = a2a(q) + a2a(k) + a2a(q) + a2a(l);
            // Backward: dO in (Q, KV, O, LSE stay head-split from the forward); dQ, dKV out
            // (16-bit).
            let bwd = 2 * a2a(q) + a2a(k);
            assert!(
                sent(&p, false).iter().all(|&b| b == fwd),
                "{heads}/{kv} on {n}"
            );
            assert!(
                sent(&p, true).iter().all(|&b| b == bwd),
                "{heads}/{kv} on {n}"
            );
        }
    }
}

#[test]
fn ulysses_with_replicated_kv_heads_moves_the_documented_bytes() {
    for (heads, kv, n) in [(8u32, 2u32, 4u32), (8, 2, 8), (4, 1, 4), (12, 3, 6)] {
        let m = model(heads, kv);
        let (q, _, l) = rows(&m);
        let (p, t) = plan("ulysses", m, n, MaskSpec::Causal);
        let (kv_u, n_u) = (kv as u64, n as u64);
        let qf = |row: u64| (kv_u - 1) * t * row / kv_u;
        // One KV head (2·D elements) of every own token to each of the N−1 peers.
        let kv_rep = (n_u - 1) * t * 2 * m.head_dim as u64 * 2;
        let fwd = 2 * qf(q) + qf(l) + kv_rep;
        // Backward: dO in, dQ out, fp32 dKV partials out.
        let bwd = 2 * qf(q) + 2 * kv_rep;
        assert!(
            sent(&p, false).iter().all(|&b| b == fwd),
            "{heads}/{kv} on {n}"
        );
        assert!(
            sent(&p, true).iter().all(|&b| b == bwd),
            "{heads}/{kv} on {n}"
        );
        // The replication cost against an unreplicated (N−1)/N all-to-all of KV: N/Hkv times.
        let unrep = (n_u - 1) * t * m.kv_bytes_per_token() / n_u;
        assert_eq!(kv_rep * kv_u, unrep * n_u);
    }
}

#[test]
fn usp_adds_a_ring_of_the_head_share_across_groups() {
    // (heads, kv, devices, H): R = devices / H ring groups of H consecutive devices.
    for (heads, kv, n, h) in [
        (8u32, 2u32, 4u32, 2u32),
        (8, 4, 8, 4),
        (8, 4, 8, 2),
        (6, 3, 6, 3),
    ] {
        let m = model(heads, kv);
        let (q, k, l) = rows(&m);
        let name = format!("usp:{h}");
        let (p, t) = plan(&name, m, n, MaskSpec::Causal);
        let (h_u, r_u) = (h as u64, (n / h) as u64);
        let a2a = |row: u64| (h_u - 1) * t * row / h_u;
        // Ring: each step sends the group's tokens (H·t) of this member's KV share (k / H).
        let ring = (r_u - 1) * h_u * t * k / h_u;
        // dKV travels in fp32 and takes one more hop home.
        let dring = r_u * h_u * t * 2 * k / h_u;
        let fwd = 2 * a2a(q) + a2a(k) + a2a(l) + ring;
        let bwd = 2 * a2a(q) + a2a(k) + ring + dring;
        assert!(
            sent(&p, false).iter().all(|&b| b == fwd),
            "{name} {heads}/{kv} on {n}"
        );
        assert!(
            sent(&p, true).iter().all(|&b| b == bwd),
            "{name} {heads}/{kv} on {n}"
        );
        // Every exchange stays inside a head group or a ring: consecutive devices per group.
        for d in &p.devices {
            for i in &d.forward.instrs {
                if let Instr::Comm { ops, .. } = i {
                    for o in ops {
                        let same_group = o.peer / h == d.device / h;
                        let same_ring = o.peer % h == d.device % h;
                        assert!(
                            same_group || same_ring,
                            "{name}: {} -> {}",
                            d.device,
                            o.peer
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn usp_with_one_group_is_ulysses_and_default_avoids_replication() {
    let m = model(8, 2);
    let (u, _) = plan("ulysses", m, 4, MaskSpec::Causal);
    let (g, _) = plan("usp:4", m, 4, MaskSpec::Causal);
    assert_eq!(u.devices, g.devices);
    // Default H: the largest dividing both KV heads (2) and devices (4).
    let (d, _) = plan("usp", m, 4, MaskSpec::Causal);
    let (two, _) = plan("usp:2", m, 4, MaskSpec::Causal);
    assert_eq!(d.devices, two.devices);
    assert_eq!(d.planner, "usp");
    // Deterministic: the same batch gives a byte-identical plan.
    let (again, _) = plan("usp", m, 4, MaskSpec::Causal);
    assert_eq!(d.to_bytes(), again.to_bytes());
}

/// `ulysses-pp` on random batches (every mask kind, GQA 1-4, 1-4 sequences of odd lengths, whole
/// or replicated KV heads per device): the validator accepts it and the CPU executor matches
/// dense attention in both passes; it moves exactly `ulysses`'s bytes.
#[test]
fn ulysses_pp_is_correct_and_moves_ulysses_bytes() {
    let (mut pipelined, mut halves, mut replicated) = (0, 0, 0);
    for seed in 0..100u64 {
        let (mut batch, _) = random_case(seed, 160);
        let kv = [2u32, 4][(seed % 2) as usize];
        let group = batch.model.group();
        batch.model.kv_heads = kv;
        batch.model.heads = kv * group;
        batch.head_block = kv;
        // 2 * kv: replicated KV heads (each of a KV head's members holds a partial dKV).
        let mut n = [1u32, 2, kv, 2 * kv][(seed % 4) as usize];
        if n > batch.model.heads {
            n = kv;
        }
        replicated += usize::from(n > kv);
        let topo = Topology::new(1, n);
        let opts = PlannerOptions::default();
        let p = make_plan("ulysses-pp", &batch, &topo, &opts).unwrap();
        assert_eq!(p.planner, "ulysses-pp");
        check_plan(&p, seed).unwrap_or_else(|e| panic!("seed {seed} on {n}: {e}"));
        let u = make_plan("ulysses", &batch, &topo, &opts).unwrap();
        assert_eq!(sent(&p, false), sent(&u, false), "seed {seed}");
        assert_eq!(sent(&p, true), sent(&u, true), "seed {seed}");
        let groups = |p: &Plan| {
            p.devices[0]
                .forward
                .instrs
                .iter()
                .filter(|i| matches!(i, Instr::Comm { .. }))
                .count()
        };
        if batch.seqs.len() >= 2 {
            assert_eq!(groups(&p), 4, "seed {seed}: two phases in, two out");
            pipelined += 1;
        } else if groups(&p) == 4 {
            // One sequence whose first half attends nothing in its second: split at the middle.
            halves += 1;
        } else {
            assert_eq!(
                p.devices, u.devices,
                "seed {seed}: nothing to overlap is ulysses"
            );
        }
    }
    assert!(pipelined > 20, "{pipelined} pipelined cases");
    assert!(halves > 0, "no lone sequence was split at its middle");
    assert!(
        replicated > 5,
        "{replicated} cases with replicated KV heads"
    );
}

/// A lone sequence: split at its middle chunk boundary when its first half attends nothing in
/// its second (causal), left as `ulysses` when it does (full mask); both correct.
#[test]
fn ulysses_pp_splits_a_lone_causal_sequence_at_its_middle() {
    let m = model(4, 2);
    let topo = Topology::new(1, 2);
    let opts = PlannerOptions::default();
    for (mask, split) in [
        (MaskSpec::Causal, true),
        (MaskSpec::parse("lambda:4:16").unwrap(), true),
        (MaskSpec::Full, false),
        (MaskSpec::parse("prefix-lm:90").unwrap(), false),
    ] {
        let b = BatchSpec::uniform(&[150], mask.clone(), m, 16);
        let p = make_plan("ulysses-pp", &b, &topo, &opts).unwrap();
        check_plan(&p, 3).unwrap_or_else(|e| panic!("{mask:?}: {e}"));
        let u = make_plan("ulysses", &b, &topo, &opts).unwrap();
        let comms = p.devices[0]
            .forward
            .instrs
            .iter()
            .filter(|i| matches!(i, Instr::Comm { .. }))
            .count();
        if split {
            assert_eq!(comms, 4, "{mask:?}");
            assert_eq!(sent(&p, false), sent(&u, false), "{mask:?}");
        } else {
            assert_eq!(p.devices, u.devices, "{mask:?}");
        }
    }
}

/// The overlap `ulysses-pp` exists for: phase 2's input group is issued before phase 1's
/// attention and waited for after it; phase 1's output group is issued before phase 2's
/// attention. With replicated KV heads it is correct too.
#[test]
fn ulysses_pp_issues_each_phase_beside_the_other_phase_attention() {
    let m = model(8, 2);
    let b = BatchSpec::uniform(&[64, 40, 70, 30], MaskSpec::Causal, m, 16);
    let p = make_plan(
        "ulysses-pp",
        &b,
        &Topology::new(1, 2),
        &PlannerOptions::default(),
    )
    .unwrap();
    for pass in [false, true] {
        let prog = if pass {
            &p.devices[1].backward
        } else {
            &p.devices[1].forward
        };
        let pos = |f: &dyn Fn(&Instr) -> bool| prog.instrs.iter().position(f).unwrap();
        let comm = |t: u32| pos(&|i| matches!(i, Instr::Comm { tag, .. } if *tag == t));
        let wait = |t: u32| pos(&|i| matches!(i, Instr::Wait { tag } if *tag == t));
        let attn = |s: u32| {
            pos(
                &|i| matches!(i, Instr::Attn { stage, .. } | Instr::AttnBwd { stage, .. } if *stage == s),
            )
        };
        assert!(
            wait(0) < comm(1) && comm(1) < attn(0) && attn(0) < wait(1),
            "backward {pass}"
        );
        assert!(
            attn(0) < comm(2) && comm(2) < attn(1) && attn(1) < comm(3),
            "backward {pass}"
        );
    }
    // Replicated KV heads (4 devices, 2 KV heads): correct, ulysses's bytes.
    let topo = Topology::new(1, 4);
    let r = make_plan("ulysses-pp", &b, &topo, &PlannerOptions::default()).unwrap();
    check_plan(&r, 5).unwrap();
    let u = make_plan("ulysses", &b, &topo, &PlannerOptions::default()).unwrap();
    assert_eq!(sent(&r, false), sent(&u, false));
    assert_eq!(sent(&r, true), sent(&u, true));
    // More devices than query heads: ulysses's refusal.
    let err = make_plan(
        "ulysses-pp",
        &b,
        &Topology::new(1, 16),
        &PlannerOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("query heads"), "{err}");
}
