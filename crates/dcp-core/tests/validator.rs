//! The validator rejects every kind of broken plan with a typed error pointing at the device and
//! instruction (one mutation test per check), and the static planners move exactly the textbook
//! byte counts.

use dcp_core::baselines::{plan_local, plan_ring};
use dcp_core::error::LayoutFault;
use dcp_core::mask::Lin;
use dcp_core::mask::MaskSpec;
use dcp_core::plan::{BufferRole, Dir, FillValue, Instr, IoTensor, Plan, Region};
use dcp_core::planners::{HEAD_PARALLEL, PLANNERS};
use dcp_core::spec::{BatchSpec, DType, ModelShape, Topology};
use dcp_core::stats::plan_stats;
use dcp_core::validate::{validate_paths, validate_with, Paths, Threads};
use dcp_core::{PlanError, PlanErrorKind, ValidatedPlan};

/// Validates `p` sequentially and in parallel (by phases, by flow and run ahead in blocks,
/// rayon pools of 1 and 4 threads), run ahead device by device (`Threads::Ahead`), and sequentially with the fast
/// paths off (`Paths::General`): every mutation test goes through all of them, and all must give
/// the same result, the same error included.
fn validate(p: &Plan) -> Result<(), PlanError> {
    let seq = validate_with(p, Threads::Sequential);
    assert_eq!(
        validate_paths(p, Threads::Sequential, Paths::General),
        seq,
        "the general paths differ from the fast ones"
    );
    for n in [1, 4] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .expect("a thread pool");
        for t in [Threads::Phases, Threads::Flow, Threads::AheadPar] {
            let par = pool.install(|| validate_with(p, t));
            assert_eq!(par, seq, "{t:?} validation on {n} threads differs");
        }
    }
    assert_eq!(
        validate_with(p, Threads::Ahead),
        seq,
        "run-ahead validation differs"
    );
    assert_eq!(
        dcp_core::validate(p),
        seq,
        "validate (Threads::Auto) differs"
    );
    seq
}

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

fn err_of(p: &Plan) -> PlanError {
    validate(p).expect_err("the broken plan must be rejected")
}

fn find(p: &Plan, dev: usize, pred: impl Fn(&Instr) -> bool) -> usize {
    p.devices[dev]
        .forward
        .instrs
        .iter()
        .position(pred)
        .expect("instruction present")
}

/// The first (device, instruction) of the forward programs satisfying `pred`.
fn find_any(p: &Plan, pred: impl Fn(&Instr) -> bool) -> (usize, usize) {
    p.devices
        .iter()
        .enumerate()
        .find_map(|(d, dp)| dp.forward.instrs.iter().position(&pred).map(|i| (d, i)))
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
        matches!(
            e.kind,
            PlanErrorKind::PairsMissing { .. } | PlanErrorKind::ReadBeforeWrite { .. }
        ),
        "{e}"
    );
}

#[test]
fn duplicating_a_merge_is_caught() {
    let mut p = ring();
    let merge = find(&p, 0, |x| matches!(x, Instr::Merge { .. }));
    let dup = p.devices[0].forward.instrs[merge].clone();
    p.devices[0].forward.instrs.insert(merge + 1, dup);
    let e = err_of(&p);
    assert_eq!(e.site.device, 0);
    let PlanErrorKind::PairsDuplicated { count, .. } = e.kind else {
        panic!("{e}")
    };
    assert!(count.got > count.want, "{e}");
}

#[test]
fn same_count_but_wrong_pairs_is_caught() {
    // A full-mask work whose KV reads its first token twice and its last never: the pair count
    // is right, the pairs are not.
    // One sequence, so the ring's step work reads one sequence's keys.
    let (mut b, t) = small();
    b.seqs.truncate(1);
    for s in &mut b.seqs {
        s.mask = MaskSpec::Full;
    }
    let mut p = plan_ring(&b, &t, false).unwrap();
    validate(&p).unwrap();
    let (d, i) = find_any(
        &p,
        |x| matches!(x, Instr::Attn { works, .. } if works.iter().any(|w| w.kv.len() == 1 && w.kv[0].len >= 2)),
    );
    if let Instr::Attn { works, .. } = &mut p.devices[d].forward.instrs[i] {
        let w = works
            .iter_mut()
            .find(|w| w.kv.len() == 1 && w.kv[0].len >= 2)
            .unwrap();
        let r = w.kv[0];
        w.kv = vec![
            Region {
                len: r.len - 1,
                ..r
            },
            Region { len: 1, ..r },
        ];
    }
    let e = err_of(&p);
    let PlanErrorKind::PairsDuplicated { count, .. } = e.kind else {
        panic!("{e}")
    };
    assert_eq!(count.got, count.want, "{e}");
}

#[test]
fn removing_a_wait_is_a_race() {
    let mut p = ring();
    let i = find(&p, 2, |x| matches!(x, Instr::Wait { .. }));
    p.devices[2].forward.instrs.remove(i);
    let e = err_of(&p);
    assert_eq!(e.site.device, 2, "{e}");
    assert!(
        matches!(
            e.kind,
            PlanErrorKind::InFlightHazard { write: false, .. } | PlanErrorKind::NeverWaited { .. }
        ),
        "{e}"
    );
}

/// Inserts `Fill` of the first `dir` region of the first comm group right after it.
fn fill_in_flight(dir: Dir) -> PlanError {
    let mut p = ring();
    let (d, i) = find_any(
        &p,
        |x| matches!(x, Instr::Comm { ops, .. } if ops.iter().any(|o| o.dir == dir)),
    );
    let Instr::Comm { ops, .. } = &p.devices[d].forward.instrs[i] else {
        unreachable!()
    };
    let dst = ops.iter().find(|o| o.dir == dir).unwrap().region;
    p.devices[d].forward.instrs.insert(
        i + 1,
        Instr::Fill {
            dst,
            value: FillValue::Zero,
        },
    );
    let e = err_of(&p);
    assert_eq!(
        (e.site.device, e.site.instr),
        (d as u32, Some(i + 1)),
        "{e}"
    );
    e
}

#[test]
fn writing_a_region_in_flight_is_a_race() {
    let e = fill_in_flight(Dir::Recv);
    assert!(
        matches!(e.kind, PlanErrorKind::InFlightHazard { write: true, .. }),
        "{e}"
    );
    let e = fill_in_flight(Dir::Send);
    assert!(
        matches!(e.kind, PlanErrorKind::InFlightHazard { write: true, .. }),
        "{e}"
    );
}

#[test]
fn waiting_for_a_group_not_in_flight_is_caught() {
    let mut p = ring();
    p.devices[1]
        .forward
        .instrs
        .insert(0, Instr::Wait { tag: 12345 });
    let e = err_of(&p);
    assert!(
        matches!(e.kind, PlanErrorKind::WaitNotInFlight { tag: 12345 }),
        "{e}"
    );
    assert_eq!((e.site.device, e.site.instr), (1, Some(0)));
}

#[test]
fn unmatched_send_is_caught() {
    let mut p = ring();
    let i = find(&p, 0, |x| matches!(x, Instr::Comm { .. }));
    if let Instr::Comm { ops, .. } = &mut p.devices[0].forward.instrs[i] {
        ops.retain(|o| o.dir == Dir::Recv);
    }
    let e = err_of(&p);
    assert!(
        matches!(
            e.kind,
            PlanErrorKind::UnmatchedSend {
                tag: 0,
                sends: 0,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn bad_peer_and_missing_peer_group_are_caught() {
    let mut p = ring();
    let i = find(&p, 0, |x| matches!(x, Instr::Comm { .. }));
    if let Instr::Comm { ops, .. } = &mut p.devices[0].forward.instrs[i] {
        ops[0].peer = 0;
    }
    assert!(matches!(
        err_of(&p).kind,
        PlanErrorKind::BadPeer { peer: 0, .. }
    ));
    let mut p = ring();
    // Device 1's first group moves to a tag nobody else uses.
    let i = find(&p, 1, |x| matches!(x, Instr::Comm { .. }));
    if let Instr::Comm { tag, .. } = &mut p.devices[1].forward.instrs[i] {
        *tag = 1_000_000;
    }
    let e = err_of(&p);
    assert!(
        matches!(e.kind, PlanErrorKind::PeerNotInGroup { peer: 1, .. }),
        "{e}"
    );
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
    assert!(matches!(e.kind, PlanErrorKind::SizeMismatch { .. }), "{e}");
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
    let e = err_of(&p);
    assert!(matches!(e.kind, PlanErrorKind::TagOrder { .. }), "{e}");
}

#[test]
fn out_of_bounds_region_is_caught() {
    let mut p = ring();
    let i = find(&p, 1, |x| matches!(x, Instr::Copy { .. }));
    if let Instr::Copy { dst, .. } = &mut p.devices[1].forward.instrs[i] {
        dst.tok += 1;
    }
    let e = err_of(&p);
    assert!(matches!(e.kind, PlanErrorKind::OutOfBounds { .. }), "{e}");
    assert_eq!((e.site.device, e.site.instr), (1, Some(i)));
}

#[test]
fn copy_between_shapes_is_caught() {
    let mut p = ring();
    let i = find(&p, 1, |x| matches!(x, Instr::Copy { .. }));
    if let Instr::Copy { dst, .. } = &mut p.devices[1].forward.instrs[i] {
        dst.len -= 1;
    }
    let e = err_of(&p);
    assert!(matches!(e.kind, PlanErrorKind::Shape { .. }), "{e}");
}

#[test]
fn reading_a_never_written_region_is_caught() {
    let mut p = ring();
    let (d, i) = find_any(
        &p,
        |x| matches!(x, Instr::Attn { works, .. } if !works.is_empty()),
    );
    let prog = &mut p.devices[d].forward;
    // A fresh scratch buffer shaped like the KV one, never written.
    let Instr::Attn { works, .. } = &prog.instrs[i] else {
        unreachable!()
    };
    let kv = works[0].kv[0];
    let mut decl = prog.buffers[kv.buf as usize].clone();
    decl.role = BufferRole::Scratch;
    decl.name = "never written".into();
    prog.buffers.push(decl);
    let fresh = prog.buffers.len() as u32 - 1;
    if let Instr::Attn { works, .. } = &mut prog.instrs[i] {
        works[0].kv[0].buf = fresh;
    }
    let e = err_of(&p);
    assert!(
        matches!(e.kind, PlanErrorKind::ReadBeforeWrite { .. }),
        "{e}"
    );
    assert_eq!((e.site.device, e.site.instr), (d as u32, Some(i)));
}

#[test]
fn accumulating_without_a_zero_fill_is_caught() {
    let mut p = ring();
    // Drop the backward program's first fill (the dQ/dKV accumulators start unset).
    let prog = &mut p.devices[0].backward;
    let i = prog
        .instrs
        .iter()
        .position(|x| {
            matches!(
                x,
                Instr::Fill {
                    value: FillValue::Zero,
                    ..
                }
            )
        })
        .expect("a zero fill");
    prog.instrs.remove(i);
    let e = err_of(&p);
    assert!(
        matches!(
            e.kind,
            PlanErrorKind::WrongContent { .. } | PlanErrorKind::ReadBeforeWrite { .. }
        ),
        "{e}"
    );
    assert_eq!(e.site.program, "backward");
}

#[test]
fn keys_outside_the_mask_are_caught() {
    let (mut b, t) = small();
    b.seqs[0].mask = MaskSpec::Full;
    let mut p = plan_ring(&b, &t, false).unwrap();
    // Pretend the batch is causal: the full-mask works now read keys the mask hides.
    p.batch.seqs[0].mask = MaskSpec::Causal;
    let e = err_of(&p);
    let PlanErrorKind::KeyOutsideMask { seq, outside, .. } = e.kind else {
        panic!("{e}")
    };
    assert_eq!(seq, 0);
    assert!(outside > 0);
}

#[test]
fn row_ranges_beyond_the_keys_are_caught() {
    let mut p = ring();
    let (d, i) = find_any(
        &p,
        |x| matches!(x, Instr::Attn { works, .. } if !works.is_empty()),
    );
    if let Instr::Attn { works, .. } = &mut p.devices[d].forward.instrs[i] {
        let keys: u32 = works[0].kv.iter().map(|r| r.len).sum();
        let seg = &mut works[0].rows.segs[0];
        seg.ranges[0].end = Lin::c(keys as i64 + 1);
    }
    let e = err_of(&p);
    assert!(matches!(e.kind, PlanErrorKind::RowRanges { .. }), "{e}");
}

#[test]
fn a_sloped_range_beyond_the_keys_on_its_last_row_only_is_caught() {
    // A diagonal work's segment of one sloped range: `check_rows` accepts it from the range's
    // end at the segment's first and last rows. An end one past the keys on the last row only
    // must still be refused, naming rows that end with the segment.
    let mut p = ring();
    let one_sloped = |s: &dcp_core::plan::RangeSeg| {
        s.rows >= 2 && s.ranges.len() == 1 && s.ranges[0].end.slope == 1
    };
    let (d, i) = find_any(
        &p,
        |x| matches!(x, Instr::Attn { works, .. } if works.iter().any(|w| w.rows.segs.iter().any(one_sloped))),
    );
    let mut seg_end = 0u32;
    if let Instr::Attn { works, .. } = &mut p.devices[d].forward.instrs[i] {
        let w = works
            .iter_mut()
            .find(|w| w.rows.segs.iter().any(one_sloped))
            .unwrap();
        let keys: u32 = w.kv.iter().map(|r| r.len).sum();
        let seg = w.rows.segs.iter_mut().find(|s| one_sloped(s)).unwrap();
        let last = (seg.row0 + seg.rows - 1) as i64;
        seg.ranges[0].start = Lin::c(0);
        seg.ranges[0].end = Lin {
            c: keys as i64 + 1 - last,
            slope: 1,
        };
        seg_end = seg.row0 + seg.rows;
    }
    let e = err_of(&p);
    assert_eq!((e.site.device, e.site.instr), (d as u32, Some(i)), "{e}");
    let PlanErrorKind::RowRanges { rows, .. } = e.kind else {
        panic!("{e}")
    };
    assert_eq!(rows.1, seg_end, "{e}");
}

#[test]
fn overlapping_row_range_segments_are_caught() {
    // Executors read a row from the first segment that holds it; a later segment reaching back
    // over the same rows would add pairs no executor computes.
    let mut p = ring();
    let (d, i) = find_any(
        &p,
        |x| matches!(x, Instr::Attn { works, .. } if works.iter().any(|w| w.rows.segs.len() >= 2)),
    );
    if let Instr::Attn { works, .. } = &mut p.devices[d].forward.instrs[i] {
        let w = works.iter_mut().find(|w| w.rows.segs.len() >= 2).unwrap();
        w.rows.segs[1].row0 -= 1;
        w.rows.segs[1].rows += 1;
    }
    let e = err_of(&p);
    assert!(matches!(e.kind, PlanErrorKind::RowRanges { .. }), "{e}");
}

#[test]
fn query_and_kv_of_two_sequences_are_caught() {
    // Local plans hold whole sequences; point a work's KV at another sequence on its device.
    let (b, _) = small();
    let mut p = plan_local(&b, &Topology::new(1, 1), None).unwrap();
    validate(&p).unwrap();
    let dp = &p.devices[0];
    let kv_buf = dp.forward.io(IoTensor::Kv).unwrap();
    let (i, wi) = dp
        .forward
        .instrs
        .iter()
        .enumerate()
        .find_map(|(i, x)| match x {
            Instr::Attn { works, .. } => works
                .iter()
                .position(|w| w.kv[0].buf == kv_buf)
                .map(|wi| (i, wi)),
            _ => None,
        })
        .expect("a work reading the KV input");
    // Rows of the KV input holding the layout's last span (another sequence than row 0's).
    let last = dp.layout.last().unwrap();
    let row = dp.local_tokens() - last.len;
    if let Instr::Attn { works, .. } = &mut p.devices[0].forward.instrs[i] {
        let w = &mut works[wi];
        let own = w.kv[0];
        let other = if own.tok >= row { 0 } else { row };
        w.kv[0] = Region {
            tok: other,
            len: 1,
            ..own
        };
        w.kv.truncate(1);
    }
    let e = err_of(&p);
    assert!(
        matches!(e.kind, PlanErrorKind::MixedSequences { .. }),
        "{e}"
    );
}

#[test]
fn gqa_head_mapping_is_checked() {
    use dcp_core::dcp::{plan_dcp, DcpOptions};
    let (mut b, t) = small();
    b.head_block = 1;
    let opts = DcpOptions {
        fallback_static: false,
        ..DcpOptions::default()
    };
    let mut p = plan_dcp(&b, &t, &opts).unwrap();
    validate(&p).unwrap();
    let (d, i) = find_any(
        &p,
        |x| matches!(x, Instr::Attn { works, .. } if works.iter().any(|w| w.kv[0].heads == 1)),
    );
    if let Instr::Attn { works, .. } = &mut p.devices[d].forward.instrs[i] {
        let w = works.iter_mut().find(|w| w.kv[0].heads == 1).unwrap();
        // Read the other KV head for every KV region.
        for r in &mut w.kv {
            r.head = 1 - r.head;
        }
    }
    let e = err_of(&p);
    assert!(matches!(e.kind, PlanErrorKind::GqaMismatch { .. }), "{e}");
}

#[test]
fn overlapping_outputs_of_one_launch_are_caught() {
    let mut p = ring();
    let (d, i) = find_any(
        &p,
        |x| matches!(x, Instr::Attn { works, .. } if !works.is_empty()),
    );
    if let Instr::Attn { works, .. } = &mut p.devices[d].forward.instrs[i] {
        // A ring step is one work: a second one of the same rows writes the same outputs.
        if works.len() < 2 {
            works.push(works[0].clone());
        }
        works[1].o = Region {
            len: works[1].o.len.min(works[0].o.len),
            ..works[0].o
        };
        works[1].q.len = works[1].o.len;
        works[1].lse.len = works[1].o.len;
    }
    let e = err_of(&p);
    assert!(
        matches!(
            e.kind,
            PlanErrorKind::OverlappingOutputs { .. } | PlanErrorKind::Shape { .. }
        ),
        "{e}"
    );
}

#[test]
fn backward_attention_in_the_forward_program_is_caught() {
    let mut p = ring();
    let bwd = p.devices[0]
        .backward
        .instrs
        .iter()
        .find(|x| matches!(x, Instr::AttnBwd { .. }))
        .unwrap()
        .clone();
    p.devices[0].forward.instrs.insert(0, bwd);
    let e = err_of(&p);
    assert!(matches!(e.kind, PlanErrorKind::BackwardInForward), "{e}");
}

#[test]
fn mismatched_merge_inputs_are_caught() {
    let mut p = ring();
    let (d, i) = find_any(
        &p,
        |x| matches!(x, Instr::Merge { inputs, .. } if inputs.len() >= 2),
    );
    if let Instr::Merge { inputs, .. } = &mut p.devices[d].forward.instrs[i] {
        // Pair the first partial O with the second partial's LSE.
        let l1 = inputs[1].1;
        inputs[0].1 = l1;
    }
    let e = err_of(&p);
    assert!(
        matches!(
            e.kind,
            PlanErrorKind::WrongContent { .. } | PlanErrorKind::Combine { .. }
        ),
        "{e}"
    );
}

#[test]
fn io_buffers_and_device_numbers_are_checked() {
    let mut p = ring();
    let q = p.devices[1].forward.io(IoTensor::Q).unwrap();
    p.devices[1].forward.buffers[q as usize].tokens += 1;
    assert!(matches!(
        err_of(&p).kind,
        PlanErrorKind::IoBufferShape {
            tensor: IoTensor::Q,
            ..
        }
    ));
    let mut p = ring();
    p.devices[2].device = 7;
    assert!(matches!(
        err_of(&p).kind,
        PlanErrorKind::DeviceIndex { entry: 2, says: 7 }
    ));
}

#[test]
fn layout_must_cover_every_token_once() {
    let mut p = ring();
    p.devices[0].layout[0].len -= 1;
    let e = err_of(&p);
    assert!(matches!(e.kind, PlanErrorKind::Layout { .. }), "{e}");
    let mut p = ring();
    let s = p.devices[0].layout[0];
    p.devices[1].layout.push(s);
    assert!(matches!(
        err_of(&p).kind,
        PlanErrorKind::Layout {
            fault: LayoutFault::HeldTwice,
            ..
        }
    ));
}

#[test]
fn validated_plans_come_only_from_the_validator() {
    let p = ring();
    let v = ValidatedPlan::new(p.clone()).unwrap();
    assert_eq!(v.plan(), &p);
    assert_eq!(v.devices.len(), 3);
    assert_eq!(v.into_inner(), p);
    let mut bad = ring();
    bad.devices[0].layout[0].len -= 1;
    assert!(ValidatedPlan::new(bad).is_err());
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

/// A zigzag step work (all query rows of a device, all its held KV rows, three sequences) and
/// the first row of its last sequence's piece.
fn multi_sequence_step(p: &Plan) -> (usize, usize, u32) {
    let (d, i) = find_any(
        p,
        |x| matches!(x, Instr::Attn { works, .. } if works.len() == 1 && works[0].rows.segs.len() >= 2),
    );
    let layout = &p.devices[d].layout;
    let seqs: std::collections::BTreeSet<u32> = layout.iter().map(|s| s.seq).collect();
    assert!(
        seqs.len() >= 2,
        "the step work's query rows hold several sequences"
    );
    let last = layout.last().unwrap();
    let first_row = p.devices[d].local_tokens()
        - layout
            .iter()
            .filter(|s| s.seq == last.seq)
            .map(|s| s.len)
            .sum::<u32>();
    (d, i, first_row)
}

/// Points the first segment of the last sequence's rows (from `row`) of forward instruction `i`
/// on device `d`, work 0, at key 0 of the held KV: the first sequence's.
fn attend_first_key(p: &mut Plan, d: usize, i: usize, row: u32) {
    if let Instr::Attn { works, .. } = &mut p.devices[d].forward.instrs[i] {
        let seg = works[0]
            .rows
            .segs
            .iter_mut()
            .find(|s| s.row0 >= row)
            .expect("a segment of the last sequence's rows");
        seg.ranges = vec![dcp_core::mask::LinRange::new(Lin::c(0), Lin::c(1))].into();
    }
}

/// A device and backward instruction of `p` that is one step work of at least `segs` segments.
fn bwd_step_work(p: &Plan, segs: usize) -> (usize, usize) {
    p.devices
        .iter()
        .enumerate()
        .find_map(|(d, dp)| {
            dp.backward
                .instrs
                .iter()
                .position(|x| matches!(x, Instr::AttnBwd { works, .. } if works.len() == 1 && works[0].rows.segs.len() >= segs))
                .map(|i| (d, i))
        })
        .unwrap_or_else(|| panic!("a backward step work of {segs} segments"))
}

/// `e` is at instruction `i` of device `d`: a work pairing rows with keys of another sequence
/// (refused as such, or as keys outside the mask).
fn assert_foreign_keys(e: &PlanError, d: usize, i: usize) {
    assert_eq!((e.site.device, e.site.instr), (d as u32, Some(i)), "{e}");
    assert!(
        matches!(
            e.kind,
            PlanErrorKind::MixedSequences { .. } | PlanErrorKind::KeyOutsideMask { .. }
        ),
        "{e}"
    );
}

#[test]
fn a_step_work_attending_another_sequence_is_caught() {
    let mut p = ring();
    let (d, i, row) = multi_sequence_step(&p);
    attend_first_key(&mut p, d, i, row);
    assert_foreign_keys(&err_of(&p), d, i);
}

#[test]
fn a_step_work_dropping_one_sequence_misses_pairs() {
    let mut p = ring();
    let (d, i, row) = multi_sequence_step(&p);
    if let Instr::Attn { works, .. } = &mut p.devices[d].forward.instrs[i] {
        works[0].rows.segs.retain(|s| s.row0 < row);
    }
    let e = err_of(&p);
    assert!(matches!(e.kind, PlanErrorKind::PairsMissing { .. }), "{e}");
}

#[test]
fn a_step_work_over_several_sequences_validates_backward_too() {
    // Every device's backward steps are works over all its sequences; removing one dKV hop's
    // accumulation (its segments) misses pairs of that sequence's keys.
    let mut p = ring();
    let (d, i) = bwd_step_work(&p, 2);
    if let Instr::AttnBwd { works, .. } = &mut p.devices[d].backward.instrs[i] {
        works[0].rows.segs.pop();
    }
    let e = err_of(&p);
    assert!(matches!(e.kind, PlanErrorKind::PairsMissing { .. }), "{e}");
}

#[test]
fn a_step_work_with_overlapping_ranges_in_one_row_is_caught() {
    // Two ranges of one row over the same keys would compute those pairs twice.
    let mut p = ring();
    let (d, i, _) = multi_sequence_step(&p);
    if let Instr::Attn { works, .. } = &mut p.devices[d].forward.instrs[i] {
        let seg = works[0]
            .rows
            .segs
            .iter_mut()
            .find(|s| !s.ranges.is_empty())
            .expect("a segment attending keys");
        let r = seg.ranges[0];
        seg.ranges = vec![r, r].into();
    }
    let e = err_of(&p);
    assert_eq!((e.site.device, e.site.instr), (d as u32, Some(i)), "{e}");
    assert!(matches!(e.kind, PlanErrorKind::RowRanges { .. }), "{e}");
}

#[test]
fn a_step_work_pairing_two_sequences_is_named() {
    // The last sequence's rows attend key 0, the first sequence's: the pair crosses sequences.
    let mut p = ring();
    let (d, i, row) = multi_sequence_step(&p);
    let first = p.devices[d].layout[0].seq;
    let last = p.devices[d].layout.last().unwrap().seq;
    attend_first_key(&mut p, d, i, row);
    let e = err_of(&p);
    assert_eq!((e.site.device, e.site.instr), (d as u32, Some(i)), "{e}");
    let PlanErrorKind::MixedSequences { a, b, .. } = e.kind else {
        panic!("{e}")
    };
    assert_eq!((a, b), (last, first), "{e}");
}

#[test]
fn a_backward_work_differing_from_its_forward_twin_is_checked_on_its_own() {
    // Forward and backward step works hold equal operands and row ranges, and the backward
    // reuses the forward's checked pairs; one changed segment in the middle (the fingerprint
    // sees only the first and last) must not slip through.
    let (b, t) = small();
    let mut p = plan_ring(&b, &t, true).unwrap();
    validate(&p).unwrap();
    let (d, i) = bwd_step_work(&p, 3);
    if let Instr::AttnBwd { works, .. } = &mut p.devices[d].backward.instrs[i] {
        let keys: u32 = works[0].kv.iter().map(|r| r.len).sum();
        let mid = works[0].rows.segs.len() / 2;
        // Every key of the held KV: more than the causal mask allows, or another sequence's.
        works[0].rows.segs[mid].ranges = vec![dcp_core::mask::LinRange::new(
            Lin::c(0),
            Lin::c(keys as i64),
        )]
        .into();
    }
    let e = err_of(&p);
    assert_eq!(e.site.program, "backward", "{e}");
    assert_foreign_keys(&e, d, i);
}

#[test]
fn a_pair_mismatch_is_named_on_its_device_and_sequence() {
    // Outputs are compared once per tensor over all devices; a mismatch is then located: the
    // device, and the sequence of the first layout span whose pairs differ.
    let mut p = ring();
    let last = p.devices.len() - 1;
    let (i, seq) = {
        let dp = &p.devices[last];
        let i = dp
            .forward
            .instrs
            .iter()
            .position(|x| matches!(x, Instr::Attn { works, .. } if !works.is_empty()))
            .unwrap();
        (i, dp.layout[0].seq)
    };
    if let Instr::Attn { works, .. } = &mut p.devices[last].forward.instrs[i] {
        // The first segment holds the first layout span's rows.
        works[0].rows.segs.remove(0);
    }
    let e = err_of(&p);
    assert_eq!(e.site.device, last as u32, "{e}");
    let PlanErrorKind::PairsMissing { seq: s, count, .. } = e.kind else {
        panic!("{e}")
    };
    assert_eq!(s, seq, "{e}");
    assert!(count.got < count.want, "{e}");
}

#[test]
fn an_output_holding_other_rows_is_caught() {
    // The final copy moves the partial outputs one row up: every output row holds its
    // neighbour's result, and the last row nothing.
    let mut p = ring();
    let dev = 1;
    let i = p.devices[dev]
        .forward
        .instrs
        .iter()
        .rposition(|x| matches!(x, Instr::Copy { .. }))
        .expect("the final copies");
    if let Instr::Copy { src, dst } = &mut p.devices[dev].forward.instrs[i] {
        src.tok += 1;
        src.len -= 1;
        dst.len -= 1;
    }
    let e = err_of(&p);
    assert_eq!(e.site.device, dev as u32, "{e}");
    let PlanErrorKind::WrongOutput { rows, .. } = e.kind else {
        panic!("{e}")
    };
    assert_eq!(rows.0, 0, "{e}");
}

#[test]
fn a_work_reading_the_same_query_rows_twice_credits_each_copy_with_its_own_pairs() {
    // One device, one full-mask sequence. The query rows are copied twice into a scratch buffer;
    // one work reads both copies, the first attending the first half of the keys and the second
    // the rest; only the first copy's output reaches O. Every pair was computed once, but O
    // holds only half of them: the first copy's coverage must not include the second's pairs
    // though both copies are the same tokens.
    let model = ModelShape {
        heads: 4,
        kv_heads: 2,
        head_dim: 4,
        dtype: DType::Bf16,
    };
    let b = BatchSpec::uniform(&[8], MaskSpec::Full, model, 8);
    let mut p = plan_local(&b, &Topology::new(1, 1), None).unwrap();
    validate(&p).unwrap();
    let prog = &mut p.devices[0].forward;
    let q = prog.io(IoTensor::Q).unwrap();
    let kv = prog.io(IoTensor::Kv).unwrap();
    let (o, lse) = (
        prog.io(IoTensor::O).unwrap(),
        prog.io(IoTensor::Lse).unwrap(),
    );
    let scratch = |prog: &mut dcp_core::plan::Program, of: u32, name: &str| {
        let mut d = prog.buffers[of as usize].clone();
        d.role = BufferRole::Scratch;
        d.name = name.into();
        d.tokens *= 2;
        prog.buffers.push(d);
        prog.buffers.len() as u32 - 1
    };
    let (qq, oo, ll) = (
        scratch(prog, q, "q twice"),
        scratch(prog, o, "o twice"),
        scratch(prog, lse, "lse twice"),
    );
    let rows = |buf: u32, tok: u32, len: u32, heads: u32| Region {
        buf,
        tok,
        len,
        head: 0,
        heads,
    };
    let h = model.heads;
    let half = |k0: i64, k1: i64| dcp_core::plan::RangeSeg {
        row0: 0,
        rows: 8,
        ranges: vec![dcp_core::mask::LinRange::new(Lin::c(k0), Lin::c(k1))].into(),
    };
    let mut second = half(4, 8);
    second.row0 = 8;
    let work = dcp_core::plan::FwdWork {
        q: rows(qq, 0, 16, h),
        kv: vec![rows(kv, 0, 8, model.kv_heads)],
        o: rows(oo, 0, 16, h),
        lse: rows(ll, 0, 16, h),
        rows: dcp_core::plan::RowRanges {
            segs: vec![half(0, 4), second],
        },
    };
    prog.instrs = vec![
        Instr::Copy {
            src: rows(q, 0, 8, h),
            dst: rows(qq, 0, 8, h),
        },
        Instr::Copy {
            src: rows(q, 0, 8, h),
            dst: rows(qq, 8, 8, h),
        },
        Instr::Attn {
            stage: 0,
            works: vec![work],
        },
        Instr::Copy {
            src: rows(oo, 0, 8, h),
            dst: rows(o, 0, 8, h),
        },
        Instr::Copy {
            src: rows(ll, 0, 8, h),
            dst: rows(lse, 0, 8, h),
        },
    ];
    let e = err_of(&p);
    let PlanErrorKind::PairsMissing { count, .. } = e.kind else {
        panic!("{e}")
    };
    assert_eq!(2 * count.got, count.want, "{e}");
}

/// The forward (device, instruction) of a ring plan's first Attn with one work, and that work's
/// operands (the one-rectangle fast path of the validator takes it).
fn ring_step_attn(p: &Plan) -> (usize, usize) {
    find_any(
        p,
        |x| matches!(x, Instr::Attn { works, .. } if works.len() == 1),
    )
}

#[test]
fn a_ring_step_reading_the_kv_head_of_another_group_is_caught() {
    // One-rectangle operands: query heads 0..2 (group 0 of 2) against KV head 1.
    let mut p = ring();
    let (d, i) = ring_step_attn(&p);
    if let Instr::Attn { works, .. } = &mut p.devices[d].forward.instrs[i] {
        let w = &mut works[0];
        w.q.heads = 2;
        for r in &mut w.kv {
            (r.head, r.heads) = (1, 1);
        }
    }
    let e = err_of(&p);
    assert!(matches!(e.kind, PlanErrorKind::GqaMismatch { .. }), "{e}");
    assert_eq!((e.site.device, e.site.instr), (d as u32, Some(i)));
}

/// The forward (device, instruction) of a ring plan's first merge, and its program.
fn ring_merge(p: &Plan) -> (usize, usize) {
    find_any(
        p,
        |x| matches!(x, Instr::Merge { inputs, .. } if inputs.len() == 2),
    )
}

#[test]
fn a_one_rectangle_merge_of_a_never_written_partial_is_caught() {
    let mut p = ring();
    let (d, i) = ring_merge(&p);
    let prog = &mut p.devices[d].forward;
    let Instr::Merge { inputs, .. } = &prog.instrs[i] else {
        unreachable!()
    };
    let o = inputs[1].0;
    let mut decl = prog.buffers[o.buf as usize].clone();
    decl.role = BufferRole::Scratch;
    decl.name = "never written".into();
    prog.buffers.push(decl);
    let fresh = prog.buffers.len() as u32 - 1;
    if let Instr::Merge { inputs, .. } = &mut prog.instrs[i] {
        inputs[1].0.buf = fresh;
    }
    let e = err_of(&p);
    assert!(
        matches!(e.kind, PlanErrorKind::ReadBeforeWrite { .. }),
        "{e}"
    );
    assert_eq!((e.site.device, e.site.instr), (d as u32, Some(i)));
}

#[test]
fn a_one_rectangle_merge_of_an_input_tensor_is_caught() {
    // The second partial O replaced by the query input (same width, one rectangle).
    let mut p = ring();
    let (d, i) = ring_merge(&p);
    let prog = &mut p.devices[d].forward;
    let q = prog.io(IoTensor::Q).expect("a Q buffer");
    if let Instr::Merge { inputs, .. } = &mut prog.instrs[i] {
        inputs[1].0.buf = q;
    }
    let e = err_of(&p);
    assert!(matches!(e.kind, PlanErrorKind::WrongContent { .. }), "{e}");
    assert_eq!((e.site.device, e.site.instr), (d as u32, Some(i)));
}

#[test]
fn a_one_rectangle_accumulation_into_an_input_is_caught() {
    // A backward ring step accumulating dQ into the O input (same width, one rectangle).
    let mut p = ring();
    let prog = &mut p.devices[1].backward;
    let o = prog.io(IoTensor::O).expect("an O buffer");
    let i = prog
        .instrs
        .iter()
        .position(|x| matches!(x, Instr::AttnBwd { works, .. } if works.len() == 1))
        .expect("a backward step");
    if let Instr::AttnBwd { works, .. } = &mut prog.instrs[i] {
        works[0].dq.buf = o;
    }
    let e = err_of(&p);
    assert!(matches!(e.kind, PlanErrorKind::WrongContent { .. }), "{e}");
    assert_eq!((e.site.device, e.site.instr), (1, Some(i)));
    assert_eq!(e.site.program, "backward");
}

#[test]
fn a_head_parallel_backward_work_reading_do_as_o_is_caught() {
    // usp: a backward work's query rows are several devices' rows (one run each), its O one
    // coalesced band; reading dO in place of O must still be rejected.
    use dcp_core::planners::{make_plan, PlannerOptions};
    let model = ModelShape {
        heads: 8,
        kv_heads: 2,
        head_dim: 4,
        dtype: DType::Bf16,
    };
    let b = BatchSpec::uniform(&[67, 1, 8, 29], MaskSpec::Causal, model, 16);
    let mut p = make_plan("usp", &b, &Topology::new(1, 4), &PlannerOptions::default()).unwrap();
    validate(&p).unwrap();
    let (d, i) =
        p.devices
            .iter()
            .enumerate()
            .find_map(|(d, dp)| {
                let i =
                    dp.backward.instrs.iter().position(
                        |x| matches!(x, Instr::AttnBwd { works, .. } if !works.is_empty()),
                    )?;
                Some((d, i))
            })
            .expect("a backward work");
    if let Instr::AttnBwd { works, .. } = &mut p.devices[d].backward.instrs[i] {
        works[0].o = works[0].do_;
    }
    let e = err_of(&p);
    assert!(matches!(e.kind, PlanErrorKind::WrongContent { .. }), "{e}");
    assert_eq!((e.site.device, e.site.instr), (d as u32, Some(i)));
    assert_eq!(e.site.program, "backward");
}

#[test]
fn a_backward_ring_step_reading_do_as_o_is_caught() {
    // One rectangle of the wrong input against the work's one query run.
    let mut p = ring();
    let prog = &mut p.devices[2].backward;
    let i = prog
        .instrs
        .iter()
        .position(|x| matches!(x, Instr::AttnBwd { works, .. } if works.len() == 1))
        .expect("a backward step");
    if let Instr::AttnBwd { works, .. } = &mut prog.instrs[i] {
        works[0].o = works[0].do_;
    }
    let e = err_of(&p);
    assert!(matches!(e.kind, PlanErrorKind::WrongContent { .. }), "{e}");
    assert_eq!((e.site.device, e.site.instr), (2, Some(i)));
    assert_eq!(e.site.program, "backward");
}

#[test]
fn several_failing_devices_report_the_first_in_device_order() {
    // The same local phase breaks on devices 2 (a shape error) and 1 (out of bounds): the
    // sequential validator stops at device 1, and the parallel one, which runs both, must report
    // device 1's error too (`validate` above compares the two).
    let mut p = ring();
    let i1 = find(&p, 1, |x| matches!(x, Instr::Copy { .. }));
    let i2 = find(&p, 2, |x| matches!(x, Instr::Copy { .. }));
    let comm_before = |p: &Plan, d: usize, i: usize| {
        p.devices[d].forward.instrs[..i]
            .iter()
            .filter(|x| matches!(x, Instr::Comm { .. }))
            .count()
    };
    assert_eq!(
        comm_before(&p, 1, i1),
        comm_before(&p, 2, i2),
        "one local phase"
    );
    if let Instr::Copy { dst, .. } = &mut p.devices[2].forward.instrs[i2] {
        dst.len -= 1;
    }
    if let Instr::Copy { dst, .. } = &mut p.devices[1].forward.instrs[i1] {
        dst.tok += 1;
    }
    let e = err_of(&p);
    assert!(matches!(e.kind, PlanErrorKind::OutOfBounds { .. }), "{e}");
    assert_eq!((e.site.device, e.site.instr), (1, Some(i1)));
    // Device 2's error alone is the shape error.
    if let Instr::Copy { dst, .. } = &mut p.devices[1].forward.instrs[i1] {
        dst.tok -= 1;
    }
    let e = err_of(&p);
    assert!(matches!(e.kind, PlanErrorKind::Shape { .. }), "{e}");
    assert_eq!((e.site.device, e.site.instr), (2, Some(i2)));
}

/// Every region an instruction names, mutably.
fn regions_mut(i: &mut Instr) -> Vec<&mut Region> {
    match i {
        Instr::Fill { dst, .. } => vec![dst],
        Instr::Copy { src, dst } => vec![src, dst],
        Instr::Comm { ops, .. } => ops.iter_mut().map(|o| &mut o.region).collect(),
        Instr::Wait { .. } => vec![],
        Instr::Attn { works, .. } => works
            .iter_mut()
            .flat_map(|w| {
                let mut v = vec![&mut w.q, &mut w.o, &mut w.lse];
                v.extend(w.kv.iter_mut());
                v
            })
            .collect(),
        Instr::AttnBwd { works, .. } => works
            .iter_mut()
            .flat_map(|w| {
                let mut v = vec![&mut w.q, &mut w.o, &mut w.lse, &mut w.do_, &mut w.dq];
                v.extend(w.kv.iter_mut());
                v.extend(w.dkv.iter_mut());
                v
            })
            .collect(),
        Instr::Merge { o, lse, inputs } => {
            let mut v = vec![o, lse];
            for (a, b) in inputs.iter_mut() {
                v.push(a);
                v.push(b);
            }
            v
        }
        Instr::Sum { dst, inputs } => {
            let mut v = vec![dst];
            v.extend(inputs.iter_mut());
            v
        }
    }
}

/// `plan` broken at random (an instruction dropped, swapped with the next or repeated, a region
/// moved, shortened or pointed at another buffer); `None` when the drawn program is too short.
fn mutate_instrs(rng: &mut rand_chacha::ChaCha8Rng, plan: &Plan) -> Option<Plan> {
    use rand::Rng;
    let mut p = plan.clone();
    let d = rng.random_range(0..p.devices.len());
    let prog = if rng.random_bool(0.5) {
        &mut p.devices[d].forward
    } else {
        &mut p.devices[d].backward
    };
    let n = prog.instrs.len();
    if n < 2 {
        return None;
    }
    let i = rng.random_range(0..n - 1);
    match rng.random_range(0..6) {
        0 => {
            prog.instrs.remove(i);
        }
        1 => prog.instrs.swap(i, i + 1),
        2 => {
            let x = prog.instrs[i].clone();
            prog.instrs.insert(i, x);
        }
        k => {
            let nb = prog.buffers.len() as u32;
            let mut rs = regions_mut(&mut prog.instrs[i]);
            if rs.is_empty() {
                return None;
            }
            let j = rng.random_range(0..rs.len());
            let r = &mut rs[j];
            match k {
                3 => r.tok += 1,
                4 => r.len = r.len.saturating_sub(1),
                _ => r.buf = (r.buf + 1) % nb,
            }
        }
    }
    Some(p)
}

/// `plan` with one work's row ranges broken at random (a range's start or end moved, made a
/// slope, swapped with its neighbour, repeated, emptied, sent below row 0 or beyond the keys; a
/// segment moved or resized); `None` when the drawn program has no work with row ranges.
fn mutate_rows(rng: &mut rand_chacha::ChaCha8Rng, plan: &Plan) -> Option<Plan> {
    use dcp_core::mask::LinRange;
    use rand::Rng;
    let mut p = plan.clone();
    let d = rng.random_range(0..p.devices.len());
    let backward = rng.random_bool(0.3);
    let prog = if backward {
        &mut p.devices[d].backward
    } else {
        &mut p.devices[d].forward
    };
    let mut works: Vec<&mut dcp_core::plan::RowRanges> = prog
        .instrs
        .iter_mut()
        .flat_map(|i| match i {
            Instr::Attn { works, .. } => works.iter_mut().map(|w| &mut w.rows).collect::<Vec<_>>(),
            Instr::AttnBwd { works, .. } => {
                works.iter_mut().map(|w| &mut w.rows).collect::<Vec<_>>()
            }
            _ => Vec::new(),
        })
        .filter(|rows| !rows.segs.is_empty())
        .collect();
    if works.is_empty() {
        return None;
    }
    let w = rng.random_range(0..works.len());
    let rows = &mut *works[w];
    let si = rng.random_range(0..rows.segs.len());
    let seg = &mut rows.segs[si];
    let delta = [-3i64, -1, 1, 3][rng.random_range(0..4)];
    let n = seg.ranges.len();
    let ri = if n > 0 { rng.random_range(0..n) } else { 0 };
    match rng.random_range(0..9) {
        0 if n > 0 => seg.ranges[ri].start.c += delta,
        1 if n > 0 => seg.ranges[ri].end.c += delta,
        2 if n > 0 => {
            let r = &mut seg.ranges[ri];
            r.start = Lin {
                c: r.start.c - seg.row0 as i64,
                slope: 1,
            };
        }
        3 if n > 1 => seg.ranges.swap(ri, (ri + 1) % n),
        4 if n > 0 => {
            let r = seg.ranges[ri];
            seg.ranges.push(r);
        }
        5 if n > 0 => {
            let r = seg.ranges[ri];
            seg.ranges.push(LinRange::new(r.end, r.end));
        }
        6 if n > 0 => seg.ranges[ri].start.c = -5,
        7 if n > 0 => seg.ranges[ri].end.c += 1000,
        _ => {
            if rng.random_bool(0.5) {
                seg.row0 = (seg.row0 as i64 + delta).max(0) as u32;
            } else {
                seg.rows = (seg.rows as i64 + delta).max(0) as u32;
            }
        }
    }
    Some(p)
}

/// Random plans of `planners` for the random cases `cases` (at most 120 tokens), each broken
/// `per_plan` times (the `k`-th time by `mutate(rng, plan, k)`, skipped when that gives `None`)
/// and validated by [`validate`], which compares every path. Returns (plans made, mutations
/// checked, of them refused).
fn mutation_sweep(
    rng_seed: u64,
    cases: std::ops::Range<u64>,
    planners: &[&str],
    per_plan: usize,
    mutate: impl Fn(&mut rand_chacha::ChaCha8Rng, &Plan, usize) -> Option<Plan>,
) -> (usize, usize, usize) {
    use dcp_core::check::random_case;
    use dcp_core::planners::{make_plan, PlannerOptions};
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(rng_seed);
    let (mut planned, mut checked, mut refused) = (0, 0, 0);
    for seed in cases {
        let (batch, topo) = random_case(seed, 120);
        for &name in planners {
            let Ok(plan) = make_plan(name, &batch, &topo, &PlannerOptions::default()) else {
                continue;
            };
            planned += 1;
            for k in 0..per_plan {
                let Some(p) = mutate(&mut rng, &plan, k) else {
                    continue;
                };
                refused += validate(&p).is_err() as usize;
                checked += 1;
            }
        }
    }
    (planned, checked, refused)
}

#[test]
fn random_mutations_get_the_same_result_on_every_path() {
    // Random plans of every planner, each broken at random (an instruction dropped, swapped
    // with the next or repeated, a region moved, shortened or pointed at another buffer):
    // sequential, per-phase and flow validation must agree, so the concurrent paths never
    // accept a plan the sequential order refuses, and refuse with the same error.
    // (`validate` compares Sequential, Phases and Flow on 1 and 4 threads.)
    let (_, checked, refused) = mutation_sweep(12, 0..12, PLANNERS, 6, |rng, plan, _| {
        mutate_instrs(rng, plan)
    });
    assert!(
        checked > 100 && refused > checked / 2,
        "{checked} plans, {refused} refused"
    );
}

#[test]
fn random_row_range_mutations_get_the_same_result_on_both_paths() {
    // Random plans of every planner, one work's row ranges broken at random (a range's start or
    // end moved, made a slope, swapped with its neighbour, repeated, emptied, sent below row 0
    // or beyond the keys; a segment moved or resized): the fast paths (constant-range works
    // checked as rectangles) and the general paths must agree, error included; `validate` also
    // compares the parallel paths. In debug builds every work the fast path accepts is checked
    // against the general path's pairs as well.
    let (_, checked, refused) = mutation_sweep(5, 100..124, PLANNERS, 8, |rng, plan, _| {
        mutate_rows(rng, plan)
    });
    assert!(
        checked > 400 && refused > checked / 3 && refused < checked,
        "{checked} plans, {refused} refused"
    );
}

#[test]
fn random_mutations_of_head_parallel_plans_get_the_same_result_on_every_path() {
    // The head-parallel planners (Ulysses and usp: operands and accumulators over several
    // devices' rows, saved buffers) through both random mutations above: the fast paths (works
    // and merges over several row bands) and the general ones must agree, error included.
    let (planned, checked, refused) =
        mutation_sweep(7, 300..340, HEAD_PARALLEL, 8, |rng, plan, k| {
            if k % 2 == 0 {
                mutate_instrs(rng, plan)
            } else {
                mutate_rows(rng, plan)
            }
        });
    assert!(
        planned >= 10 && checked > 60 && refused > checked / 3 && refused < checked,
        "{planned} plans, {checked} mutations, {refused} refused"
    );
}

/// A Ulysses plan of the small case on 2 devices: its backward starts from the forward's
/// head-split Q, KV, O and LSE (saved buffers).
fn ulysses() -> Plan {
    let (b, _) = small();
    let p = dcp_core::planners::ulysses::plan_ulysses(&b, &Topology::new(1, 2)).unwrap();
    validate(&p).unwrap();
    p
}

/// Index of the backward buffer of device `dev` named `name`, and the forward buffer it saves.
fn saved_buf(p: &Plan, dev: usize, name: &str) -> (usize, u32) {
    let bufs = &p.devices[dev].backward.buffers;
    let i = bufs.iter().position(|b| b.name == name).expect("buffer");
    let BufferRole::Saved { forward } = bufs[i].role else {
        panic!("`{name}` is not saved from the forward")
    };
    (i, forward)
}

#[test]
fn ulysses_backward_exchanges_only_do_and_gradients() {
    let p = ulysses();
    for d in &p.devices {
        for t in [IoTensor::Q, IoTensor::Kv, IoTensor::O, IoTensor::Lse] {
            assert!(d.backward.io(t).is_none(), "backward declares {t:?}");
        }
        let saved = d
            .backward
            .buffers
            .iter()
            .filter(|b| matches!(b.role, BufferRole::Saved { .. }))
            .count();
        assert_eq!(saved, 4, "q, kv, o and lse heads");
    }
    // And the CPU executor agrees with dense attention on it.
    let x = dcp_core::cpu::Tensors::random(&p.batch, 7);
    let got = dcp_core::cpu::execute(&p, &x).unwrap();
    let want = dcp_core::cpu::dense_reference(&p.batch, &x);
    let err = dcp_core::cpu::compare(&got, &want);
    assert!(err.max() < 1e-9, "{err:?}");
}

#[test]
fn saved_buffers_in_the_forward_are_caught() {
    let mut p = ulysses();
    let prog = &mut p.devices[1].forward;
    prog.buffers[0].role = BufferRole::Saved { forward: 0 };
    let e = err_of(&p);
    assert!(
        matches!(e.kind, PlanErrorKind::SavedInForward { buf: 0, .. }),
        "{e}"
    );
}

#[test]
fn saved_buffers_must_name_a_forward_buffer_of_their_shape() {
    for (forward, problem) in [(10_000u32, "declares only"), (0, "has shape")] {
        let mut p = ulysses();
        let (i, _) = saved_buf(&p, 0, "kv_heads");
        p.devices[0].backward.buffers[i].role = BufferRole::Saved { forward };
        let e = err_of(&p);
        assert!(
            matches!(&e.kind, PlanErrorKind::SavedBuffer { problem: m, .. } if m.contains(problem)),
            "{e}"
        );
    }
}

#[test]
fn a_saved_buffer_holding_other_data_is_caught() {
    // O saved from the forward's head-split Q (same shape): the backward work's O operand holds
    // Q, not the final O.
    let mut p = ulysses();
    let (o, _) = saved_buf(&p, 1, "o_heads");
    let (_, q_fwd) = saved_buf(&p, 1, "q_heads");
    p.devices[1].backward.buffers[o].role = BufferRole::Saved { forward: q_fwd };
    let e = err_of(&p);
    assert!(matches!(e.kind, PlanErrorKind::WrongContent { .. }), "{e}");
    assert_eq!(e.site.device, 1);
}

#[test]
fn a_saved_partial_output_that_is_not_final_is_caught() {
    // The forward fills its head-split O with zeros after sending it: the caller's O is final,
    // but the saved buffer holds fills, which the backward must not take for O.
    let mut p = ulysses();
    let (_, o_fwd) = saved_buf(&p, 0, "o_heads");
    let prog = &mut p.devices[0].forward;
    let b = &prog.buffers[o_fwd as usize];
    let all = Region {
        buf: o_fwd,
        tok: 0,
        len: b.tokens,
        head: 0,
        heads: b.heads,
    };
    prog.instrs.push(Instr::Fill {
        dst: all,
        value: FillValue::Zero,
    });
    let e = err_of(&p);
    assert!(matches!(e.kind, PlanErrorKind::WrongContent { .. }), "{e}");
    assert_eq!((e.site.device, e.site.program), (0, "backward"));
}

#[test]
fn writing_a_saved_buffer_in_the_backward_is_caught() {
    let mut p = ulysses();
    let (q, _) = saved_buf(&p, 0, "q_heads");
    let prog = &mut p.devices[0].backward;
    let b = &prog.buffers[q];
    let dst = Region {
        buf: q as u32,
        tok: 0,
        len: b.tokens.min(1),
        head: 0,
        heads: 1,
    };
    prog.instrs.push(Instr::Fill {
        dst,
        value: FillValue::Zero,
    });
    let at = prog.instrs.len() - 1;
    let e = err_of(&p);
    assert!(matches!(e.kind, PlanErrorKind::WriteToSaved { .. }), "{e}");
    assert_eq!((e.site.device, e.site.instr), (0, Some(at)));
}

/// A backward merge of a saved forward partial result that never became the forward's output
/// (a second copy of a work's output, kept in scratch buffers) is refused as wrong content, on
/// every path. Its coverage named the forward's nodes, gone when the backward runs: the
/// sequential validator panicked (index out of bounds), the concurrent ones panicked inside
/// rayon's threads ("an arena item made before it is read"), and `Flow` hung.
#[test]
fn a_backward_merge_of_a_saved_forward_partial_is_caught() {
    let mut p = ulysses();
    let dev = 0;
    let fwd = &mut p.devices[dev].forward;
    let ai = fwd
        .instrs
        .iter()
        .position(|i| matches!(i, Instr::Attn { .. }))
        .unwrap();
    let Instr::Attn { stage, works } = fwd.instrs[ai].clone() else {
        unreachable!()
    };
    let w = works[0].clone();
    let (ob, lb) = (w.o.buf as usize, w.lse.buf as usize);
    let mut o2 = fwd.buffers[ob].clone();
    o2.name = "o2".into();
    o2.role = BufferRole::Scratch;
    let mut l2 = fwd.buffers[lb].clone();
    l2.name = "l2".into();
    l2.role = BufferRole::Scratch;
    let (o2i, l2i) = (fwd.buffers.len() as u32, fwd.buffers.len() as u32 + 1);
    fwd.buffers.push(o2.clone());
    fwd.buffers.push(l2.clone());
    let mut w2 = w.clone();
    w2.o.buf = o2i;
    w2.lse.buf = l2i;
    fwd.instrs.insert(
        ai + 1,
        Instr::Attn {
            stage,
            works: vec![w2.clone()],
        },
    );
    validate(&p).expect("the forward's extra work is harmless");
    let bwd = &mut p.devices[dev].backward;
    let n = bwd.buffers.len() as u32;
    let mut so = o2.clone();
    so.role = BufferRole::Saved { forward: o2i };
    let mut sl = l2.clone();
    sl.role = BufferRole::Saved { forward: l2i };
    let mut mo = o2.clone();
    mo.name = "mo".into();
    let mut ml = l2.clone();
    ml.name = "ml".into();
    bwd.buffers.extend([so, sl, mo, ml]);
    let reg = |b: u32, r: &Region| Region { buf: b, ..*r };
    bwd.instrs.insert(
        0,
        Instr::Copy {
            src: reg(n, &w2.o),
            dst: reg(n + 2, &w2.o),
        },
    );
    bwd.instrs.insert(
        1,
        Instr::Copy {
            src: reg(n + 1, &w2.lse),
            dst: reg(n + 3, &w2.lse),
        },
    );
    bwd.instrs.insert(
        2,
        Instr::Merge {
            o: reg(n + 2, &w2.o),
            lse: reg(n + 3, &w2.lse),
            inputs: vec![
                (reg(n, &w2.o), reg(n + 1, &w2.lse)),
                (reg(n + 2, &w2.o), reg(n + 3, &w2.lse)),
            ],
        },
    );
    for t in [
        Threads::Sequential,
        Threads::Phases,
        Threads::Flow,
        Threads::Ahead,
        Threads::AheadPar,
    ] {
        let e = validate_with(&p, t).expect_err("merging stale partials must be refused");
        assert!(
            matches!(&e.kind, PlanErrorKind::WrongContent { found, .. }
                if found.contains("left by the forward")),
            "{t:?}: {e}"
        );
        assert_eq!(
            (e.site.device, e.site.program, e.site.instr),
            (0, "backward", Some(2)),
            "{t:?}"
        );
    }
    let e = validate_paths(&p, Threads::Sequential, Paths::General).unwrap_err();
    assert!(matches!(e.kind, PlanErrorKind::WrongContent { .. }), "{e}");
}

/// Sends to a device whose program is empty (so it finishes at once), while the others wait
/// for its sends: every order refuses the plan alike, and run-ahead in blocks (one device per
/// worker on a pool of 4) does not wait forever for the finished device to take its mail (it
/// did, before a finished worker's mail flag stopped counting: the race is timing-dependent,
/// hence the repeats).
#[test]
fn sends_to_a_finished_device_do_not_hang_run_ahead_in_blocks() {
    let mut p = ring();
    p.devices[2].forward.instrs.clear();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for _ in 0..50 {
            tx.send(validate(&p)).expect("the test waits");
        }
    });
    for _ in 0..50 {
        let r = rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("validation finished (run-ahead in blocks must not wait forever)");
        assert!(r.is_err(), "the broken plan must be rejected");
    }
}
