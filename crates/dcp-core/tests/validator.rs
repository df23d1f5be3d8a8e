//! The validator rejects broken plans with a message pointing at the instruction, and the static
//! planners move exactly the textbook byte counts.

use dcp_core::baselines::{plan_local, plan_ring};
use dcp_core::mask::MaskSpec;
use dcp_core::plan::{Dir, Instr, Plan};
use dcp_core::spec::{BatchSpec, DType, ModelShape, Topology};
use dcp_core::stats::plan_stats;
use dcp_core::validate;

fn small() -> (BatchSpec, Topology) {
    let model = ModelShape {
        heads: 4,
        kv_heads: 2,
        head_dim: 4,
        dtype: DType::Bf16,
    };
    (
        BatchSpec::uniform(&[37, 20, 5], MaskSpec::Causal, model, 8),
        Topology::new(1, 3),
    )
}

fn ring() -> Plan {
    let (b, t) = small();
    let p = plan_ring(&b, &t, true).unwrap();
    validate(&p).unwrap();
    p
}

fn err_of(p: &Plan) -> String {
    validate(p)
        .expect_err("the broken plan must be rejected")
        .to_string()
}

fn find(p: &Plan, dev: usize, pred: impl Fn(&Instr) -> bool) -> usize {
    p.devices[dev]
        .forward
        .instrs
        .iter()
        .position(pred)
        .expect("instruction present")
}

#[test]
fn dropping_a_work_misses_pairs() {
    let mut p = ring();
    let i = find(
        &p,
        1,
        |x| matches!(x, Instr::Attn { works, .. } if !works.is_empty()),
    );
    if let Instr::Attn { works, .. } = &mut p.devices[1].forward.instrs[i] {
        works.pop();
    }
    let e = err_of(&p);
    assert!(
        e.contains("attended pairs") || e.contains("never written") || e.contains("reads a region"),
        "{e}"
    );
}

#[test]
fn duplicating_a_work_is_caught() {
    let mut p = ring();
    let i = find(&p, 0, |x| matches!(x, Instr::Attn { .. }));
    let merge = find(&p, 0, |x| matches!(x, Instr::Merge { .. }));
    let dup = p.devices[0].forward.instrs[merge].clone();
    p.devices[0].forward.instrs.insert(merge + 1, dup);
    let _ = i;
    let e = err_of(&p);
    assert!(
        e.contains("device 0") && e.contains("attended pairs"),
        "{e}"
    );
}

#[test]
fn removing_a_wait_is_a_race() {
    let mut p = ring();
    let i = find(&p, 2, |x| matches!(x, Instr::Wait { .. }));
    p.devices[2].forward.instrs.remove(i);
    let e = err_of(&p);
    assert!(
        e.contains("device 2") && (e.contains("still receiving") || e.contains("never waited")),
        "{e}"
    );
}

#[test]
fn unmatched_send_is_caught() {
    let mut p = ring();
    let i = find(&p, 0, |x| matches!(x, Instr::Comm { .. }));
    if let Instr::Comm { ops, .. } = &mut p.devices[0].forward.instrs[i] {
        ops.retain(|o| o.dir == Dir::Recv);
    }
    let e = err_of(&p);
    assert!(e.contains("comm tag 0") && e.contains("receive"), "{e}");
}

#[test]
fn size_mismatch_is_caught() {
    let mut p = ring();
    let i = find(&p, 0, |x| matches!(x, Instr::Comm { .. }));
    if let Instr::Comm { ops, .. } = &mut p.devices[0].forward.instrs[i] {
        for o in ops.iter_mut().filter(|o| o.dir == Dir::Send) {
            o.region.len -= 1;
        }
    }
    let e = err_of(&p);
    assert!(e.contains("does not match its receive"), "{e}");
}

#[test]
fn decreasing_tags_are_caught() {
    let mut p = ring();
    for d in &mut p.devices {
        for ins in &mut d.forward.instrs {
            match ins {
                Instr::Comm { tag, .. } | Instr::Wait { tag } => *tag = 100 - *tag,
                _ => {}
            }
        }
    }
    assert!(err_of(&p).contains("does not increase"));
}

#[test]
fn out_of_bounds_region_is_caught() {
    let mut p = ring();
    let i = find(&p, 1, |x| matches!(x, Instr::Copy { .. }));
    if let Instr::Copy { dst, .. } = &mut p.devices[1].forward.instrs[i] {
        dst.tok += 1;
    }
    let e = err_of(&p);
    assert!(
        e.contains("out of bounds") && e.contains(&format!("instruction {i}")),
        "{e}"
    );
}

#[test]
fn keys_outside_the_mask_are_caught() {
    let (mut b, t) = small();
    b.seqs[0].mask = MaskSpec::Full;
    let mut p = plan_ring(&b, &t, false).unwrap();
    // Pretend the batch is causal: the full-mask works now read keys the mask hides.
    p.batch.seqs[0].mask = MaskSpec::Causal;
    assert!(err_of(&p).contains("outside its mask"));
}

#[test]
fn layout_must_cover_every_token_once() {
    let mut p = ring();
    p.devices[0].layout[0].len -= 1;
    let e = err_of(&p);
    assert!(e.contains("layout"), "{e}");
}

#[test]
fn ring_bytes_match_textbook_formula() {
    let model = ModelShape::default();
    for n in [1u32, 2, 3, 8] {
        for zigzag in [false, true] {
            let lens = [1000u32, 333, 7, 4096];
            let b = BatchSpec::uniform(&lens, MaskSpec::Causal, model, 128);
            let p = plan_ring(&b, &Topology::new(1, n), zigzag).unwrap();
            let s = plan_stats(&p);
            let t: u64 = lens.iter().map(|&x| x as u64).sum();
            let kv_row = 2 * model.kv_heads as u64 * model.head_dim as u64;
            let nn = n as u64;
            assert_eq!(
                s.fwd_bytes_intra + s.fwd_bytes_inter,
                (nn - 1) * t * kv_row * 2,
                "n={n}"
            );
            let bwd = (nn - 1) * t * kv_row * 2 + if n > 1 { nn * t * kv_row * 4 } else { 0 };
            assert_eq!(s.bwd_bytes_intra + s.bwd_bytes_inter, bwd, "n={n}");
        }
    }
    // Across nodes: with equal chunks, one link in g of the ring crosses nodes.
    let b = BatchSpec::uniform(&[8000], MaskSpec::Causal, model, 128);
    let s = plan_stats(&plan_ring(&b, &Topology::new(2, 4), false).unwrap());
    assert_eq!(s.fwd_bytes_inter * 3, s.fwd_bytes_intra);
    assert_eq!(
        plan_stats(&plan_local(&b, &Topology::new(2, 4), None).unwrap()).fwd_bytes_intra,
        0
    );
}

#[test]
fn local_refuses_what_does_not_fit() {
    let (b, t) = small();
    let e = plan_local(&b, &t, Some(30)).unwrap_err();
    assert!(e.to_string().contains("sequence 0 (37 tokens)"), "{e}");
}

#[test]
fn serialization_roundtrips_and_is_deterministic() {
    let p = ring();
    let json = p.to_json();
    assert_eq!(Plan::from_json(&json).unwrap(), p);
    let bin = p.to_bytes();
    assert_eq!(Plan::from_bytes(&bin).unwrap(), p);
    assert!(bin.len() < json.len());
    assert_eq!(ring().to_bytes(), bin);
    let mut bad = bin.clone();
    bad[4] = 99;
    assert!(Plan::from_bytes(&bad)
        .unwrap_err()
        .to_string()
        .contains("version 99"));
}

#[test]
fn dcp_plans_are_byte_identical_across_runs_and_threads() {
    use dcp_core::dcp::{plan_dcp, DcpOptions};
    let model = ModelShape::default();
    let b = BatchSpec::uniform(&[9000, 3000, 700, 1], MaskSpec::lambda(), model, 512);
    let topo = Topology::new(2, 4);
    let first = plan_dcp(&b, &topo, &DcpOptions::default())
        .unwrap()
        .to_bytes();
    // Plans made concurrently on other threads must be identical too.
    let others: Vec<Vec<u8>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    plan_dcp(&b, &topo, &DcpOptions::default())
                        .unwrap()
                        .to_bytes()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for o in others {
        assert_eq!(o, first);
    }
    validate(&Plan::from_bytes(&first).unwrap()).unwrap();
}

#[test]
fn memory_cap_is_enforced_with_a_clear_error() {
    use dcp_core::planners::{make_plan, PlannerOptions};
    let (b, mut t) = small();
    for p in ["ring", "zigzag", "dcp"] {
        assert!(make_plan(p, &b, &t, &PlannerOptions::default()).is_ok());
    }
    t.device_memory_bytes = 1000;
    for p in ["ring", "zigzag", "dcp", "local"] {
        let Err(e) = make_plan(p, &b, &t, &PlannerOptions::default()) else {
            panic!("{p}: a plan over the cap was accepted")
        };
        let e = e.to_string();
        assert!(
            e.contains("memory cap is 1000 bytes") || e.contains("budget"),
            "{p}: {e}"
        );
    }
}
