//! Tests of the executor (`exec.rs`) that need no device: lowering, work lists, launch
//! shapes and the `DCP_CUDA_*` switches as the executor applies them.

use super::*;

#[test]
fn forward_stages_fit_the_shared_memory_and_bad_values_are_named() {
    // The default layout, as the kernel's F90_* put it: 2 Q buffers and 2 K/V stages.
    let d128 =
        (2 * 128 + 2 * 2 * 128) * 128 * 2 + 1024 + 2 * (128 * 16 + 16) + 2 * (160 + 128 * 8) + 72;
    assert_eq!(sm90_fwd_smem(128, 2, 2), d128);
    assert!(d128 <= SM90_SMEM_MAX);
    assert_eq!(fwd_stages_with(None, 128).unwrap(), (2, 2));
    assert_eq!(fwd_stages_with(Some(" "), 64).unwrap(), (4, 4));
    assert!(sm90_fwd_smem(64, 4, 4) <= SM90_SMEM_MAX);
    assert_eq!(fwd_stages_with(Some("4"), 64).unwrap(), (4, 4));
    assert_eq!(fwd_stages_with(Some("3:2"), 64).unwrap(), (3, 2));
    // A third stage does not fit at D 128.
    let e = fwd_stages_with(Some("3"), 128).unwrap_err().to_string();
    assert!(
        e.contains("DCP_CUDA_FWD_STAGES=3") && e.contains("head dim 128"),
        "{e}"
    );
    for bad in ["1", "2:1", "x", "4:", ":3", "-2"] {
        let e = fwd_stages_with(Some(bad), 64).unwrap_err().to_string();
        assert!(e.contains(&format!("DCP_CUDA_FWD_STAGES={bad}")), "{e}");
    }
}

/// `DCP_CUDA_FWD_MT`: unset or empty keeps the default, 1 and 2 are taken, anything else is
/// an error that names the variable and the value (it was silently ignored).
#[test]
fn tile_masks_and_op_times_are_parsed_or_refused() {
    assert_eq!(TileMasks::sm90_with(true, None).unwrap(), TileMasks::Fwd);
    assert_eq!(
        TileMasks::sm90_with(false, Some("1")).unwrap(),
        TileMasks::Bwd
    );
    assert_eq!(
        TileMasks::sm90_with(true, Some("0")).unwrap(),
        TileMasks::Off
    );
    assert_eq!(
        TileMasks::sm90_with(true, Some("all")).unwrap(),
        TileMasks::FwdAll
    );
    assert_eq!(
        TileMasks::sm90_with(false, Some(" all ")).unwrap(),
        TileMasks::BwdAll
    );
    let e = TileMasks::sm90_with(true, Some("off"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("DCP_CUDA_TILE_MASKS=off"), "{e}");
    assert!(e.contains("expected 0, 1 or all"), "{e}");
    assert!(!op_timing_with(None).unwrap() && !op_timing_with(Some("0")).unwrap());
    assert!(op_timing_with(Some("1")).unwrap());
    let e = op_timing_with(Some("yes")).unwrap_err().to_string();
    assert!(e.contains("DCP_CUDA_OP_TIMES=yes"), "{e}");
}

#[test]
fn fwd_mt_is_parsed_or_refused() {
    let d = TileConfig::default().fwd_mt;
    assert_eq!(TileConfig::with_fwd_mt(None).unwrap().fwd_mt, d);
    assert_eq!(TileConfig::with_fwd_mt(Some(" ")).unwrap().fwd_mt, d);
    assert_eq!(TileConfig::with_fwd_mt(Some("1")).unwrap().fwd_mt, 1);
    assert_eq!(TileConfig::with_fwd_mt(Some("2")).unwrap().fwd_mt, 2);
    for bad in ["0", "3", "two"] {
        let e = TileConfig::with_fwd_mt(Some(bad)).unwrap_err().to_string();
        assert!(e.contains("DCP_CUDA_FWD_MT") && e.contains(bad), "{e}");
    }
}

/// Two works through `WorkLists`: each work's rows land in the shared CSR at its own
/// offset (ranges re-based), tiles and tasks are recorded, `finish` sorts the tasks longest
/// first and lays the six arrays out in the arena in argument order.
fn task(work: u32, row0: u32, tiles_off: u32, tiles_n: u32) -> TaskDesc {
    TaskDesc {
        work,
        row0,
        head: 0,
        tiles_off,
        tiles_n,
        pad: 0,
    }
}

/// Forward split-K: a launch of few long tasks is cut (pieces cover every task's tiles
/// exactly once, in order, each piece on its own shadow work), one that fills the GPU is
/// not, and the scratch cap bounds the pieces.
#[test]
fn forward_split_cuts_only_launches_of_few_long_tasks() {
    let mut wl = WorkLists::default();
    for w in 0..3u32 {
        wl.works.push(WorkDesc {
            n_rows: 256,
            q_heads: 1,
            o: 1000 + w as u64,
            ..Default::default()
        });
        // Two row tiles per work: 700 and 300 tiles (work 2: 40 and 5).
        let (a, b) = if w == 2 { (40, 5) } else { (700, 300) };
        wl.tasks.push(task(w, 0, 10_000 * w, a));
        wl.tasks.push(task(w, 128, 10_000 * w + a, b));
    }
    let before = wl.tasks.clone();
    let total: u64 = before.iter().map(|t| t.tiles_n as u64).sum();
    // 132 SMs: chunk = max(ceil(2045 / 528), 16) = 16 tiles; works 0 and 1 are long in
    // both row tiles, work 2 only in its first.
    let splits = wl.fwd_split(132, &[1, 1, 1], u64::MAX, 128);
    let np: Vec<u32> = splits.iter().map(|s| s.pieces).collect();
    assert_eq!(np, [FWD_SPLIT_MAX, FWD_SPLIT_MAX, 3]);
    assert_eq!((splits[0].r0, splits[0].r1), (0, 256));
    assert_eq!((splits[2].r0, splits[2].r1), (0, 128));
    wl.apply_fwd_split(&splits, 2, |w, p, wd| WorkDesc {
        o: 10 * wd.o + p as u64,
        dd_off: w as u32,
        ..wd
    });
    assert_eq!(wl.works.len(), 3 + 2 * FWD_SPLIT_MAX as usize + 3);
    // Work 2's second row tile (5 tiles) stays whole on work 2.
    assert_eq!(wl.tasks.len(), 2 * 2 * FWD_SPLIT_MAX as usize + 3 + 1);
    assert!(wl.tasks.contains(&task(2, 128, 20_040, 5)));
    for t0 in &before[..5] {
        let parts: Vec<&TaskDesc> = wl
            .tasks
            .iter()
            .filter(|t| {
                t.work >= 3 && wl.works[t.work as usize].dd_off == t0.work && t.row0 == t0.row0
            })
            .collect();
        assert_eq!(parts.len() as u32, np[t0.work as usize]);
        let mut at = t0.tiles_off;
        for (p, t) in parts.iter().enumerate() {
            assert_eq!(t.tiles_off, at, "piece {p} of {t0:?}");
            at += t.tiles_n;
            let sw = &wl.works[t.work as usize];
            assert_eq!(sw.o, 10 * (1000 + t0.work as u64) + p as u64);
            assert_eq!(sw.n_rows, if t0.work == 2 { 128 } else { 256 });
        }
        assert_eq!(at, t0.tiles_off + t0.tiles_n);
    }
    assert_eq!(
        wl.tasks.iter().map(|t| t.tiles_n as u64).sum::<u64>(),
        total
    );

    // 1000 tasks of 50 tiles on 132 SMs: chunk = max(ceil(50000 / 528), 16) = 95: no cut.
    let mut full = WorkLists::default();
    full.works.push(WorkDesc {
        n_rows: 128_000,
        ..Default::default()
    });
    full.tasks = (0..1000).map(|i| task(0, 128 * i, 50 * i, 50)).collect();
    assert_eq!(full.fwd_split(132, &[1], u64::MAX, 128), [FwdSplit::NONE]);

    // One 8K full-mask work: 512 tasks of 64 tiles; chunk = ceil(32768 / 528) = 63 would
    // cut each in 2, but 4 waves of 64 take as long as 8 of 32: no cut.
    let mut one = WorkLists::default();
    one.works.push(WorkDesc {
        n_rows: 8192,
        ..Default::default()
    });
    one.tasks = (0..512)
        .map(|i| task(0, 128 * (i % 64), 64 * i, 64))
        .collect();
    assert_eq!(one.fwd_split(132, &[1], u64::MAX, 128), [FwdSplit::NONE]);

    // Scratch for 5 pieces of work 0 only: work 0 (longest) gets them, the others none.
    let mut capped = WorkLists::default();
    for w in 0..2u32 {
        capped.works.push(WorkDesc {
            n_rows: 100,
            ..Default::default()
        });
        capped.tasks.push(task(w, 0, 0, 400 - 100 * w));
    }
    let s = capped.fwd_split(132, &[10, 10], 5000, 128);
    assert_eq!(
        s[0],
        FwdSplit {
            pieces: 5,
            r0: 0,
            r1: 100
        }
    );
    assert_eq!(s[1], FwdSplit::NONE);
}

/// L2 windows: works taken longest task first, cut where the next would overflow the
/// budget; a work over the budget sits alone; the works of the last tail share of the tiles
/// share one window.
#[test]
fn l2_windows_group_works_longest_first_within_the_budget() {
    let works = vec![WorkDesc::default(); 5];
    let t = |work: u32, n: u32| TaskDesc {
        work,
        tiles_n: n,
        ..Default::default()
    };
    let tasks = [t(0, 2), t(1, 5), t(2, 5), t(3, 1), t(0, 1), t(4, 3)];
    let bytes = |w: &WorkDesc| if w.n_rows == 1 { 100 } else { 10 };
    let ids = [0, 1, 2, 3, 4];
    // Longest first: 1, 2 (5 tiles), 4 (3), 0 (2 + 1), 3 (1); 17 tiles in all.
    assert_eq!(
        l2_windows(&works, &ids, &tasks, 25, 0, bytes),
        [1, 0, 0, 2, 1]
    );
    assert_eq!(l2_windows(&works, &ids, &tasks, 1000, 0, bytes), [0; 5]);
    let mut big = works.clone();
    big[4].n_rows = 1;
    assert_eq!(
        l2_windows(&big, &ids, &tasks, 25, 0, bytes),
        [2, 0, 0, 2, 1]
    );
    // One work per window; a tail of 30 % (5 tiles) takes works 3 and 0 (1 + 3 tiles).
    assert_eq!(
        l2_windows(&works, &ids, &tasks, 1, 0, bytes),
        [3, 0, 1, 4, 2]
    );
    assert_eq!(
        l2_windows(&works, &ids, &tasks, 1, 30, bytes),
        [3, 0, 1, 3, 2]
    );
    // A tail of everything: one window.
    assert_eq!(l2_windows(&works, &ids, &tasks, 1, 100, bytes), [0; 5]);
    // Units (per work: 1, 0, 2, 3, 0): unit 0 = works 1 and 4 (longest 5, 20 bytes), then
    // unit 2 (5), unit 1 (2), unit 3 (1), 10 bytes each; the answer is per unit.
    let units = [1, 0, 2, 3, 0];
    assert_eq!(
        l2_windows(&works, &units, &tasks, 25, 0, bytes),
        [0, 1, 1, 2]
    );
}

/// KV units: works whose KV segments overlap in memory share a unit, through chains of
/// overlaps too; disjoint ones do not.
#[test]
fn kv_units_join_works_reading_overlapping_kv() {
    let seg = |k: u64, len: u32| KvSeg {
        k,
        len,
        stride: 256, // 512 bytes per row
        ..Default::default()
    };
    // w0 [0, 5120), w1 [4096, 9216): overlap. w2 [10240, 10752). w3 reads [20480, 21504)
    // and [10240, 10752) (w2's). w4 [30720, ...) alone, w5 [9216, 9728) touches w1's end.
    let segs = [
        seg(0, 10),
        seg(4096, 10),
        seg(10240, 1),
        seg(20480, 2),
        seg(10240, 1),
        seg(30720, 4),
        seg(9216, 1),
    ];
    let w = |first: u32, count: u32| WorkDesc {
        kv_first: first,
        kv_count: count,
        ..Default::default()
    };
    let works = [w(0, 1), w(1, 1), w(2, 1), w(3, 2), w(5, 1), w(6, 1)];
    assert_eq!(kv_units(&works, &segs), [0, 0, 1, 1, 2, 3]);
    assert_eq!(kv_units(&[], &segs), Vec::<u32>::new());
}

/// The windowed order: window by window, longest first inside, stable among equals; no
/// budget, one work, one window or a kept order leave the tasks alone (and `finish` sorts
/// them).
#[test]
fn order_for_l2_runs_windows_in_turn() {
    // Three causal documents of 3 kv tiles: per work, lists of 3, 2 and 1 q tiles.
    let docs = |n: u32| {
        let mut wl = WorkLists::default();
        for w in 0..n {
            wl.works.push(WorkDesc {
                n_rows: 384,
                q_heads: 1,
                ..Default::default()
            });
            for (kt, len) in [3u32, 2, 1].into_iter().enumerate() {
                wl.tasks.push(TaskDesc {
                    work: w,
                    row0: kt as u32,
                    tiles_n: len,
                    ..Default::default()
                });
            }
        }
        wl
    };
    let key = |wl: &WorkLists| -> Vec<(u32, u32)> {
        wl.tasks.iter().map(|t| (t.work, t.tiles_n)).collect()
    };
    let rows = |w: &WorkDesc| w.n_rows as u64;
    // Works 0 and 1 in the first window, 2 in the second.
    let two_windows = [
        (0, 3),
        (1, 3),
        (0, 2),
        (1, 2),
        (0, 1),
        (1, 1),
        (2, 3),
        (2, 2),
        (2, 1),
    ];
    let mut wl = docs(3);
    wl.order_for_l2((2 * 384, 0), 1, false, rows);
    assert!(wl.keep_order);
    assert_eq!(key(&wl), two_windows);
    // One work per window, the last half of the tiles (works 2 and 3) as the tail.
    let mut wl = docs(4);
    wl.order_for_l2((1, 50), 1, false, rows);
    let w = |w: u32| [(w, 3), (w, 2), (w, 1)];
    let tail = [(2, 3), (3, 3), (2, 2), (3, 2), (2, 1), (3, 1)];
    assert_eq!(key(&wl), [&w(0)[..], &w(1), &tail].concat());
    // By KV: with works 0 and 1 reading the same KV, 2 units (0+1, 2) in 2 windows of
    // 2 * 384 bytes; with all three on it, one unit and no reordering.
    let shared = |n_shared: u32| {
        let mut wl = docs(3);
        wl.segs = vec![
            KvSeg {
                k: 0,
                len: 384,
                stride: 256,
                ..Default::default()
            },
            KvSeg {
                k: 1 << 30,
                len: 384,
                stride: 256,
                ..Default::default()
            },
        ];
        for (i, w) in wl.works.iter_mut().enumerate() {
            (w.kv_first, w.kv_count) = (u32::from(i as u32 >= n_shared), 1);
        }
        wl.order_for_l2((2 * 384, 0), 1, true, rows);
        wl
    };
    assert_eq!(key(&shared(2)), two_windows);
    let all = shared(3);
    assert!(!all.keep_order && key(&all) == key(&docs(3)));
    // With 3 works of tasks, a grid of 36 CTAs or more keeps longest first.
    for ctas in [35, 36] {
        let mut wl = docs(3);
        wl.order_for_l2((2 * 384, 0), ctas, false, rows);
        assert_eq!(wl.keep_order, ctas == 35, "{ctas} CTAs");
    }
    for budget in [(0, 0), (3 * 384, 0), (1, 100)] {
        let mut wl = docs(3);
        wl.order_for_l2(budget, 1, false, rows);
        assert!(!wl.keep_order && key(&wl) == key(&docs(3)), "{budget:?}");
    }
    let mut one = docs(1);
    one.order_for_l2((1, 0), 1, false, rows);
    assert!(!one.keep_order);
    let mut kept = docs(3);
    kept.keep_order = true;
    kept.order_for_l2((1, 0), 1, false, rows);
    assert_eq!(key(&kept), key(&docs(3)));
}

#[test]
fn l2_budget_names_bad_values() {
    assert_eq!(l2_budget_with("X", None, 7).unwrap(), 7);
    assert_eq!(l2_budget_with("X", Some(" "), 7).unwrap(), 7);
    assert_eq!(l2_budget_with("X", Some("0"), 7).unwrap(), 0);
    assert_eq!(l2_budget_with("X", Some("25"), 7).unwrap(), 25 << 20);
    let e = l2_budget_with("DCP_CUDA_BWD_L2_MB", Some("big"), 7)
        .unwrap_err()
        .to_string();
    assert!(e.contains("DCP_CUDA_BWD_L2_MB=big"), "{e}");
    let tail = |v| l2_tail_with("DCP_CUDA_FWD_L2_TAIL", v, 10);
    assert_eq!(tail(None).unwrap(), 10);
    assert_eq!(tail(Some(" 0")).unwrap(), 0);
    assert_eq!(tail(Some("100")).unwrap(), 100);
    for bad in ["101", "x", "-1"] {
        let e = tail(Some(bad)).unwrap_err().to_string();
        assert!(e.contains(&format!("DCP_CUDA_FWD_L2_TAIL={bad}")), "{e}");
    }
}

/// The list-scheduling estimate behind the split gate.
#[test]
fn lpt_makespan_is_list_scheduling_longest_first() {
    // 3 CTAs (+1 per task): 8 | 6 | 5, then 3 joins the 5 (9), 2 the 6 (9).
    assert_eq!(lpt_makespan(vec![2, 7, 3, 5, 4], 3), 9);
    assert_eq!(lpt_makespan(vec![10; 8], 4), 22);
    assert_eq!(lpt_makespan(vec![], 4), 0);
    assert_eq!(lpt_makespan(vec![3], 0), 4);
}

/// Forward split-K of a work whose long rows are few (causal-blockwise: the last block
/// attends every key): only those rows are cut, their shadow works start at them (Q moved,
/// CSR offset), their tasks' rows are re-based, and the scratch is sized for them alone.
#[test]
fn forward_split_cuts_only_the_long_rows_of_a_work() {
    let mut wl = WorkLists::default();
    wl.works.push(WorkDesc {
        q: 1 << 20,
        q_stride: 8 * 128,
        n_rows: 32_768,
        q_heads: 8,
        row_off: 7,
        ..Default::default()
    });
    // 256 row tiles of 8 tiles, the last two of 256 tiles (8 heads each).
    for r in 0..256u32 {
        let n = if r >= 254 { 256 } else { 8 };
        for h in 0..8 {
            wl.tasks.push(TaskDesc {
                head: h,
                ..task(0, 128 * r, 1000 * r, n)
            });
        }
    }
    // Whole-work pieces would need 32768 rows x 8 heads x 129 x 4 B = 135 MB each; the two
    // long row tiles need 1 MB.
    let row_bytes = 8 * 129 * 4;
    let splits = wl.fwd_split(132, &[row_bytes], 128 << 20, 128);
    // chunk = max(ceil((254·8 + 2·256)·8 / 528), 16) = 39: 256 tiles -> 7 pieces.
    assert_eq!(
        splits[0],
        FwdSplit {
            pieces: 7,
            r0: 32_512,
            r1: 32_768
        }
    );
    wl.apply_fwd_split(&splits, 2, |_, p, wd| WorkDesc { o: p as u64, ..wd });
    let sw = wl.works[1];
    assert_eq!(sw.n_rows, 256);
    assert_eq!(sw.row_off, 7 + 32_512);
    assert_eq!(sw.q, (1 << 20) + 32_512 * 8 * 128 * 2);
    let (short, long): (Vec<&TaskDesc>, Vec<&TaskDesc>) =
        wl.tasks.iter().partition(|t| t.work == 0);
    assert_eq!(short.len(), 254 * 8);
    assert!(short.iter().all(|t| t.tiles_n == 8 && t.row0 < 32_512));
    assert_eq!(long.len(), 2 * 8 * 7);
    assert!(long.iter().all(|t| t.row0 == 0 || t.row0 == 128));
    assert_eq!(long.iter().map(|t| t.tiles_n).sum::<u32>(), 2 * 8 * 256);
}

/// `FWD_ONE`: only tasks of exactly two full tiles of a single TMA-loaded KV region are
/// flagged for the one step (not partial tiles, cp.async K/V, two KV regions or three
/// tiles), with the value the kernel reads; the switch parses 0 / 1 and names itself.
#[test]
fn forward_one_step_flags_only_two_full_tiles_of_a_tma_region() {
    // (rows, keys per row as ranges, work flags, kv regions) -> whether its tasks are flagged.
    type Rows = Vec<Vec<(u32, u32)>>;
    let full = |n: u32| (0..256).map(|_| vec![(0, n)]).collect::<Rows>();
    let causal: Rows = (0..256).map(|i| vec![(0, i + 1)]).collect();
    let cases: [(Rows, u32, u32, u32, bool); 5] = [
        (full(256), 256, TMA_KV, 1, true),
        (causal, 256, TMA_KV, 1, false),    // partial tiles
        (full(256), 256, 0, 1, false),      // K/V not by TMA
        (full(256), 256, TMA_KV, 2, false), // two KV regions
        (full(384), 384, TMA_KV, 1, false), // three tiles
    ];
    let mut wl = WorkLists {
        mask_mode: TileMasks::Fwd,
        ..Default::default()
    };
    for (wdx, (rows, n_keys, flags, kv_count, _)) in cases.iter().enumerate() {
        wl.works.push(WorkDesc {
            n_rows: 256,
            n_keys: *n_keys,
            q_heads: 2,
            flags: *flags,
            kv_count: *kv_count,
            ..Default::default()
        });
        let (csr, _) = wl.push_rows(&RowRanges::from_rows(rows), 256);
        for r0 in (0..256).step_by(SM90_BR as usize) {
            let (off, len) = wl.classify_into_tiles(&csr, r0, r0 + SM90_BR, *n_keys, SM90_BC);
            for h in 0..2 {
                wl.tasks.push(TaskDesc {
                    head: h,
                    ..task(wdx as u32, r0, off, len)
                });
            }
        }
    }
    assert_eq!(wl.count_fwd_one(), 4);
    assert_eq!(wl.mark_fwd_one(), 4, "work 0: 2 q tiles x 2 heads");
    for t in &wl.tasks {
        let want = cases[t.work as usize].4;
        assert_eq!(t.pad == FWD_ONE_TASK, want, "task {t:?}");
        assert!(t.pad == 0 || t.pad == FWD_ONE_TASK, "task {t:?}");
    }
    // The kernel reads the same flag.
    let def = format!("#define FWD_ONE_TASK {FWD_ONE_TASK}u");
    assert!(crate::nvrtc::ATTN_FWD_SM90.contains(&def), "{def}");
    assert!(fwd_short_one_with(None, 128).unwrap());
    assert!(fwd_short_one_with(Some("1"), 128).unwrap());
    assert!(!fwd_short_one_with(Some("0"), 128).unwrap());
    assert!(fwd_short_one_with(None, 64).unwrap() && !fwd_short_one_with(None, 96).unwrap());
    assert!(!fwd_short_one_with(Some("0"), 64).unwrap());
    assert!(!fwd_short_one_with(Some("0"), 96).unwrap());
    let e = fwd_short_one_with(Some("1"), 96).unwrap_err().to_string();
    assert!(
        e.contains("DCP_CUDA_FWD_SHORT_ONE") && e.contains("96"),
        "{e}"
    );
    let e = fwd_short_one_with(Some("two"), 128)
        .unwrap_err()
        .to_string();
    assert!(e.contains("DCP_CUDA_FWD_SHORT_ONE"), "{e}");
    // Which short-task launches take the FWD_ONE kernel.
    assert_eq!(fwd_short_one_min_with(None).unwrap(), 50);
    assert_eq!(fwd_short_one_min_with(Some(" 0")).unwrap(), 0);
    assert_eq!(fwd_short_one_min_with(Some("100")).unwrap(), 100);
    for bad in ["101", "-1", "half", "0.5"] {
        let e = fwd_short_one_min_with(Some(bad)).unwrap_err().to_string();
        assert!(
            e.contains("DCP_CUDA_FWD_SHORT_ONE_MIN") && e.contains(bad),
            "{e}"
        );
    }
    assert!(one_share(4, 8, 50) && !one_share(3, 8, 50));
    assert!(one_share(0, 8, 0) && !one_share(0, 8, 1) && !one_share(0, 0, 50));
    assert!(one_share(8, 8, 100) && !one_share(7, 8, 100));
}

/// Forward half tiles (`DCP_CUDA_FWD_HALF`): on causal-blockwise (256-token blocks, 2 local)
/// over 4096 tokens, each task's slice holds its half tiles first — the window's first tile
/// (rows 64-127 see its upper 64 keys only) and the diagonal (rows 0-63 its lower keys) —
/// then the others, both in key order; `pad` counts them; the mask indices move with their
/// tiles; the split last block's pieces are ordered each within its own slice. A full-mask
/// work and the switch off keep key order and a count of 0.
#[test]
fn forward_half_tiles_first_with_their_count() {
    let n = 4096u32;
    let blockwise: Vec<Vec<(u32, u32)>> = (0..n)
        .map(|i| {
            if i < 256 || i >= n - 256 {
                vec![(0, i + 1)]
            } else {
                vec![(0, 256), (256.max(i.saturating_sub(512)), i + 1)]
            }
        })
        .collect();
    let full: Vec<Vec<(u32, u32)>> = (0..n).map(|_| vec![(0, n)]).collect();
    let build_bits = |rows: &[Vec<(u32, u32)>], half_mode: bool, half_bits: bool| {
        let mut wl = WorkLists {
            mask_mode: TileMasks::Fwd,
            half_mode,
            half_bits,
            ..Default::default()
        };
        wl.works.push(WorkDesc {
            n_rows: n,
            q_heads: 2,
            ..Default::default()
        });
        let (csr, _) = wl.push_rows(&RowRanges::from_rows(rows), n);
        let mut qtiles = Vec::new();
        for r0 in (0..n).step_by(SM90_BR as usize) {
            let (off, len) = wl.classify_into_tiles(&csr, r0, r0 + SM90_BR, n, SM90_BC);
            qtiles.push((r0, r0 + SM90_BR, off, len));
            for h in 0..2 {
                wl.tasks.push(TaskDesc {
                    head: h,
                    ..task(0, r0, off, len)
                });
            }
        }
        wl.fill_fwd_masks(&csr, &qtiles, n);
        wl.mark_fwd_half(&csr, &qtiles, n);
        let key_order = (wl.tiles.clone(), wl.tmask.clone());
        // 132 SMs: chunk = 16 tiles; the last block's q tiles (31 and 32 tiles) are split
        // in 2 pieces each.
        let splits = wl.fwd_split(132, &[1], u64::MAX, SM90_BR);
        wl.apply_fwd_split(&splits, 2, |_, _, wd| wd);
        wl.order_fwd_half();
        (wl, csr, key_order)
    };
    let build = |rows: &[Vec<(u32, u32)>], half_mode: bool| build_bits(rows, half_mode, false);

    let (wl, csr, (key_tiles, key_masks)) = build(&blockwise, true);
    assert!(
        wl.tasks.iter().any(|t| t.work > 0),
        "the last block is split"
    );
    let mut scratch = (Vec::new(), Vec::new());
    for t in &wl.tasks {
        let r = t.tiles_off as usize..(t.tiles_off + t.tiles_n) as usize;
        let (row0, np) = if t.work == 0 {
            (t.row0, 1)
        } else {
            (t.row0 + (n - 256), wl.works.len() - 1)
        };
        let qt = row0 / SM90_BR;
        // Half tiles: the window's first tile (tile qt - 4, from q tile 6 on, where the
        // window starts past the first block) and the diagonal.
        let want_half: Vec<u32> = (0..n / SM90_BC)
            .filter(|&kt| kt == qt || (kt + 4 == qt && qt >= 6 && row0 < n - 256))
            .collect();
        let (half, rest) = wl.tiles[r.clone()].split_at(t.pad as usize);
        assert!(half.iter().all(|&w| w & PARTIAL != 0), "task {t:?}");
        assert!(half.windows(2).all(|w| w[0] < w[1]) && rest.windows(2).all(|w| w[0] < w[1]));
        for &w in half {
            assert!(
                want_half.contains(&(w & !PARTIAL)),
                "task {t:?}: tile {w:#x}"
            );
        }
        for &w in rest {
            assert!(
                !want_half.contains(&(w & !PARTIAL)),
                "task {t:?}: tile {w:#x}"
            );
        }
        if np == 1 {
            assert_eq!(t.pad as usize, want_half.len(), "task {t:?}");
            // The slice holds the tiles of key order, permuted.
            let mut sorted = wl.tiles[r.clone()].to_vec();
            sorted.sort_by_key(|w| w & !PARTIAL);
            assert_eq!(sorted, key_tiles[r.clone()]);
        }
        // Each tile's mask index still names its mask.
        for i in r {
            let w = wl.tiles[i];
            if w & PARTIAL == 0 {
                assert_eq!(wl.tmask[i], tilemask::NO_MASK);
                continue;
            }
            let m = wl.tmask[i] as usize * tilemask::FWD_MASK_WORDS;
            scratch.1.clear();
            tilemask::push(
                tilemask::Layout::Fwd,
                &csr,
                row0,
                row0 + SM90_BR,
                w & !PARTIAL,
                n,
                &mut scratch.0,
                &mut scratch.1,
            );
            assert_eq!(wl.masks[m..m + tilemask::FWD_MASK_WORDS], scratch.1[..]);
        }
    }
    // The split pieces of the last block's q tiles: the diagonal in the last piece, its
    // slice's only half tile; every other piece none.
    let pieces: Vec<&TaskDesc> = wl.tasks.iter().filter(|t| t.work > 0).collect();
    assert_eq!(
        pieces.iter().map(|t| t.pad).sum::<u32>(),
        2 * 2,
        "2 q tiles x 2 heads"
    );
    let mut all_masks = key_masks.clone();
    all_masks.sort_unstable();
    let mut now = wl.tmask.clone();
    now.sort_unstable();
    assert_eq!(all_masks, now);
    let middle = wl
        .tasks
        .iter()
        .filter(|t| t.work == 0 && t.row0 >= 6 * SM90_BR)
        .count();
    assert!(
        middle > 0
            && wl
                .tasks
                .iter()
                .filter(|t| t.work == 0 && t.row0 >= 6 * SM90_BR)
                .all(|t| t.pad == 2)
    );

    for (rows, mode) in [(&full, true), (&blockwise, false)] {
        let (wl, _, (key_tiles, key_masks)) = build(rows, mode);
        assert!(wl.tasks.iter().all(|t| t.pad == 0));
        assert_eq!((wl.tiles, wl.tmask), (key_tiles, key_masks));
    }
    // DCP_CUDA_FWD_HALFBITS: the same lists, each half tile's word with its warpgroups'
    // halves in bits 27-30 (as tilemask::fwd_half_bits has them), no other word changed.
    let (plain, ..) = build(&blockwise, true);
    let (wb, csr, _) = build_bits(&blockwise, true, true);
    assert_eq!(
        (&plain.tasks, &plain.tmask),
        (&wb.tasks, &wb.tmask),
        "the bits change no task or mask"
    );
    let mut with_bits = 0;
    for t in &wb.tasks {
        let row0 = if t.work == 0 {
            t.row0
        } else {
            t.row0 + (n - 256)
        };
        for k in 0..t.tiles_n as usize {
            let i = t.tiles_off as usize + k;
            let (w, p) = (wb.tiles[i], plain.tiles[i]);
            if k < t.pad as usize {
                let b = tilemask::fwd_half_bits(&csr, row0, row0 + SM90_BR, p & !PARTIAL, n);
                assert!((0..2).any(|cw| (b >> (2 * cw)) & 3 != 3));
                assert_eq!(w, p | b << 27, "task {t:?} tile {k}");
                with_bits += 1;
            } else {
                assert_eq!(w, p, "task {t:?} tile {k}");
            }
        }
    }
    assert!(with_bits > 0);
    assert!(fwd_halfbits_with(None, 128).unwrap() && fwd_halfbits_with(Some(""), 128).unwrap());
    assert!(!fwd_halfbits_with(None, 64).unwrap() && !fwd_halfbits_with(Some("0"), 128).unwrap());
    assert!(fwd_halfbits_with(Some(" 1"), 64).unwrap());
    assert!(fwd_halfbits_with(Some("2"), 128).is_err());
    assert!(fwd_half_with(Some("1"), 64).unwrap() && fwd_half_with(Some("1"), 128).unwrap());
    assert!(!fwd_half_with(Some(" 0"), 128).unwrap() && !fwd_half_with(Some("0"), 64).unwrap());
    // Unset: on at D 128 and (since session 40, limited by DCP_CUDA_FWD_HALF_MAX) at D 64, off
    // at other head dims.
    assert!(fwd_half_with(None, 128).unwrap() && fwd_half_with(Some(""), 128).unwrap());
    assert!(fwd_half_with(None, 64).unwrap() && !fwd_half_with(None, 96).unwrap());
    let e = fwd_half_with(Some("on"), 128).unwrap_err().to_string();
    assert!(e.contains("DCP_CUDA_FWD_HALF=on"), "{e}");
    assert_eq!(bwd_half_with(None).unwrap(), 0.0);
    assert_eq!(bwd_half_with(Some("")).unwrap(), 0.0);
    assert_eq!(bwd_half_with(Some(" 0")).unwrap(), 0.0);
    assert_eq!(bwd_half_with(Some("12.5")).unwrap(), 0.125);
    for bad in ["on", "-1", "101"] {
        let e = bwd_half_with(Some(bad)).unwrap_err().to_string();
        assert!(e.contains(&format!("DCP_CUDA_BWD_HALF={bad}")), "{e}");
    }
    assert_eq!(fwd_short_with(None, 128).unwrap(), 3);
    assert_eq!(fwd_short_with(Some(""), 64).unwrap(), 3);
    assert_eq!(fwd_short_with(None, 96).unwrap(), 0);
    assert_eq!(fwd_short_with(Some(" 0"), 128).unwrap(), 0);
    assert_eq!(fwd_short_with(Some("5"), 64).unwrap(), 5);
    let e = fwd_short_with(Some("on"), 128).unwrap_err().to_string();
    assert!(e.contains("DCP_CUDA_FWD_SHORT=on"), "{e}");
    assert_eq!(fwd_half_short_with(None).unwrap(), 5);
    assert_eq!(fwd_half_short_with(Some(" 0")).unwrap(), 0);
    assert_eq!(fwd_half_short_with(Some("1000000")).unwrap(), 1_000_000);
    let e = fwd_half_short_with(Some("yes")).unwrap_err().to_string();
    assert!(e.contains("DCP_CUDA_FWD_HALF_SHORT=yes"), "{e}");
    assert_eq!(fwd_short_pp_with(None).unwrap(), None);
    assert_eq!(fwd_short_pp_with(Some(" 0")).unwrap(), None);
    assert_eq!(fwd_short_pp_with(Some("2")).unwrap(), Some((2, None)));
    assert_eq!(fwd_short_pp_with(Some("2:2")).unwrap(), Some((2, Some(2))));
    for bad in ["on", "2:4", "0:3", "2:", ":3", "-1"] {
        let e = fwd_short_pp_with(Some(bad)).unwrap_err().to_string();
        assert!(e.contains(&format!("DCP_CUDA_FWD_SHORT_PP={bad}")), "{e}");
    }
    assert_eq!(fwd_short_rel_with(None).unwrap(), 3);
    assert_eq!(fwd_short_rel_with(Some(" 2")).unwrap(), 2);
    assert_eq!(fwd_short_rel_with(Some("1")).unwrap(), 1);
    let e = fwd_short_rel_with(Some("0")).unwrap_err().to_string();
    assert!(e.contains("DCP_CUDA_FWD_SHORT_LATEREL=0"), "{e}");
    assert!(fwd_short_omap_with(None).unwrap() && fwd_short_omap_with(Some("1")).unwrap());
    assert!(!fwd_short_omap_with(Some(" 0")).unwrap());
    let e = fwd_short_omap_with(Some("no")).unwrap_err().to_string();
    assert!(e.contains("DCP_CUDA_FWD_SHORT_OMAP=no"), "{e}");
    let t = |n: u32| TaskDesc {
        tiles_n: n,
        ..Default::default()
    };
    // works1000's tasks (2 tiles) are short; a mean above the bound, or no task, is not.
    assert!(short_tasks(&[t(2), t(2)], 3));
    assert!(short_tasks(&[t(1), t(5)], 3));
    assert!(!short_tasks(&[t(2), t(5)], 3));
    assert!(!short_tasks(&[t(2)], 0));
    assert!(!short_tasks(&[], 3));
}

/// Forward tile masks: a work with many partial tiles gets one per partial tile (and none
/// for full tiles), one long causal sequence (0.8 % partial tiles) none; the mma kernels'
/// lists carry no mask indices at all.
#[test]
fn forward_tile_masks_where_they_pay() {
    let classify_all = |wl: &mut WorkLists, rows: &RowRanges, n: u32| {
        let (csr, _) = wl.push_rows(rows, n);
        let mut qtiles = Vec::new();
        let mut r0 = 0;
        while r0 < n {
            let r1 = (r0 + SM90_BR).min(n);
            let (off, len) = wl.classify_into_tiles(&csr, r0, r1, n, SM90_BC);
            qtiles.push((r0, r1, off, len));
            r0 = r1;
        }
        wl.fill_fwd_masks(&csr, &qtiles, n);
    };
    // A 512-token sliding window over 4096 tokens: about 2 of 5 tiles a row are partial.
    let window: Vec<Vec<(u32, u32)>> = (0..4096u32)
        .map(|r| vec![(r.saturating_sub(512), r + 1)])
        .collect();
    let causal: Vec<Vec<(u32, u32)>> = (0..32768u32).map(|r| vec![(0, r + 1)]).collect();
    for (rows, want_masks) in [(window, true), (causal, false)] {
        let n = rows.len() as u32;
        let mut wl = WorkLists {
            mask_mode: TileMasks::Fwd,
            ..Default::default()
        };
        classify_all(&mut wl, &RowRanges::from_rows(&rows), n);
        assert_eq!(wl.tmask.len(), wl.tiles.len());
        // Every partial tile names a mask equal to its own (tiles of equal masks share
        // one), masks are distinct and each is named by some tile.
        let (csr, _) = WorkLists::default().push_rows(&RowRanges::from_rows(&rows), n);
        let words = tilemask::FWD_MASK_WORDS;
        let n_masks = wl.masks.len() / words;
        let (mut partial, mut named) = (0, vec![false; n_masks]);
        let mut scratch = (Vec::new(), Vec::new());
        let mut ti = 0;
        for r0 in (0..n).step_by(SM90_BR as usize) {
            let end = ti
                + wl.classify(&csr, r0, (r0 + SM90_BR).min(n), n, SM90_BC)
                    .len();
            for i in ti..end {
                let (t, m) = (wl.tiles[i], wl.tmask[i]);
                if t & PARTIAL == 0 || !want_masks {
                    assert_eq!(m, tilemask::NO_MASK);
                    continue;
                }
                partial += 1;
                named[m as usize] = true;
                scratch.1.clear();
                let r1 = (r0 + SM90_BR).min(n);
                let kt = t & !PARTIAL;
                tilemask::push(
                    tilemask::Layout::Fwd,
                    &csr,
                    r0,
                    r1,
                    kt,
                    n,
                    &mut scratch.0,
                    &mut scratch.1,
                );
                assert_eq!(
                    wl.masks[m as usize * words..(m as usize + 1) * words],
                    scratch.1[..]
                );
                assert_eq!(
                    wl.mask_seen.fwd_half_bits(m),
                    tilemask::fwd_half_bits(&csr, r0, r1, kt, n),
                    "half bits from the mask, q tile {r0}, key tile {kt}"
                );
            }
            ti = end;
        }
        assert!(named.iter().all(|&x| x), "every mask is used");
        let distinct: std::collections::HashSet<&[u32]> = wl.masks.chunks(words).collect();
        assert_eq!(distinct.len(), n_masks, "masks are distinct");
        assert_eq!(n_masks > 0, want_masks);
        // The window's diagonal and window-start tiles repeat: few shapes for many tiles.
        assert!(
            !want_masks || n_masks * 4 < partial,
            "{n_masks} masks for {partial} tiles"
        );
        let mut mma = WorkLists::default();
        classify_all(&mut mma, &RowRanges::from_rows(&rows), n);
        assert!(mma.tmask.is_empty() && mma.masks.is_empty());
    }
}

#[test]
fn work_lists_share_one_csr_and_sort_tasks() {
    let a = RowRanges::from_rows(&[vec![(0, 3)], vec![(0, 70)], vec![(64, 130)]]);
    let b = RowRanges::from_rows(&[vec![(5, 9), (20, 30)], vec![]]);
    let mut wl = WorkLists::default();
    let (csr_a, off_a) = wl.push_rows(&a, 3);
    let (csr_b, off_b) = wl.push_rows(&b, 2);
    assert_eq!((off_a, off_b), (0, 4));
    assert_eq!(wl.row_ptr, [0, 1, 2, 3, 3, 5, 5]);
    assert_eq!(wl.ranges, [[0, 3], [0, 70], [64, 130], [5, 9], [20, 30]]);
    // Work a, rows 0..3, 64-key tiles of 130 keys: tiles 0 (partial), 1 (partial), 2 (partial).
    let (t_off, t_n) = wl.classify_into_tiles(&csr_a, 0, 3, 130, 64);
    assert_eq!((t_off, t_n), (0, 3));
    assert_eq!(wl.tiles, [PARTIAL, 1 | PARTIAL, 2 | PARTIAL]);
    // Work b: one partial tile; row 1 attends nothing.
    assert_eq!(wl.classify(&csr_b, 0, 2, 30, 64), [PARTIAL]);
    for (n, work) in [(1u32, 0u32), (3, 1), (2, 0)] {
        wl.tasks.push(TaskDesc {
            work,
            row0: 0,
            head: 0,
            tiles_off: 0,
            tiles_n: n,
            pad: 0,
        });
    }
    wl.works.push(WorkDesc::default());
    let mut arena = Arena::default();
    let mut stats = ProgramStats::default();
    let (grid, args) = wl.finish(&mut arena, &mut stats);
    assert_eq!((grid, stats.attn_tasks, args.len()), (3, 3, 6));
    let offs: Vec<usize> = args
        .iter()
        .map(|a| match a {
            Arg::Arena(o) => *o,
            other => panic!("{other:?} is not an arena offset"),
        })
        .collect();
    assert!(offs.windows(2).all(|w| w[0] < w[1]), "{offs:?}");
    let tasks: &[u8] = &arena.bytes[offs[2]..offs[2] + 3 * std::mem::size_of::<TaskDesc>()];
    let n_of = |i: usize| {
        let t = i * std::mem::size_of::<TaskDesc>() + 16; // tiles_n: fifth u32
        u32::from_le_bytes(tasks[t..t + 4].try_into().unwrap())
    };
    assert_eq!([n_of(0), n_of(1), n_of(2)], [3, 2, 1]);
}

#[test]
fn lowering_refuses_regions_outside_their_buffers() {
    use dcp_core::spec::DType;
    let decl = BufferDecl {
        name: "q".into(),
        role: BufferRole::Scratch,
        dtype: DType::Bf16,
        tokens: 10,
        heads: 2,
        width: 16,
    };
    let r = |buf, tok, len, head, heads| Region {
        buf,
        tok,
        len,
        head,
        heads,
    };
    let prog = |dst: Region| Program {
        buffers: vec![decl.clone()],
        instrs: vec![
            Instr::Wait { tag: 0 },
            Instr::Fill {
                dst,
                value: FillValue::Zero,
            },
        ],
    };
    assert!(check_regions(&prog(r(0, 0, 10, 0, 2))).is_ok());
    for (bad, why) in [
        (r(0, 5, 6, 0, 2), "10 tokens"),
        (r(0, 0, 10, 1, 2), "2 heads"),
        (r(1, 0, 1, 0, 1), "1 buffers declared"),
        (r(0, u32::MAX, 2, 0, 1), "10 tokens"),
    ] {
        match check_regions(&prog(bad)) {
            Err(CudaError::RegionOutOfBounds {
                instr,
                kind,
                why: w,
                ..
            }) => {
                assert_eq!((instr, kind), (1, "fill"));
                assert!(w.contains(why), "{w}");
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

#[test]
fn copy_batches_join_only_adjacent_independent_copies() {
    // fp32 rows of 8 heads x 128 (4 KiB) at `ptr`, `len` rows.
    let rd = |ptr: u64, len: u32, dtype: u32| RegionDesc {
        ptr,
        stride: 1024,
        dtype,
        len,
        heads: 8,
        width: 128,
        pad: 0,
    };
    let cp = |s: RegionDesc, d: RegionDesc, grid: u32| {
        Op::Launch(Launch {
            k: K::Copy,
            grid,
            block: 256,
            smem: 0,
            args: vec![Arg::Region(s), Arg::Region(d)],
        })
    };
    assert_eq!(desc_span(&rd(4096, 2, 2)), (4096, 4096 + 8192));
    assert_eq!(desc_span(&rd(4096, 2, 0)), (4096, 4096 + 4096));
    let (a, b) = (1u64 << 20, 1u64 << 30);
    let ops = vec![
        // dK/dV rows and the dQ conversion: independent, one launch.
        cp(rd(a, 4, 2), rd(b, 4, 0), 16),
        cp(rd(a + 65536, 64, 2), rd(b + 65536, 64, 0), 256),
        // reads what the run wrote: a new run
        cp(rd(b, 4, 0), rd(a + (1 << 24), 4, 0), 8),
        Op::Memcpy {
            dst: 0,
            src: 0,
            bytes: 0,
        },
        // alone between other ops: unchanged
        cp(rd(a, 1, 2), rd(b, 1, 2), 4),
    ];
    let instr: Vec<(u32, &'static str)> = (0..ops.len() as u32).map(|i| (i, "x")).collect();
    let mut arena = Arena::default();
    let (out, ins) = batch_copies(ops, instr, &mut arena);
    assert_eq!(out.len(), 4);
    assert_eq!(ins, vec![(0, "x"), (2, "x"), (3, "x"), (4, "x")]);
    match &out[0] {
        Op::Launch(l) => {
            assert_eq!((l.k, l.grid), (K::CopyMulti, 256));
            assert!(matches!(l.args.as_slice(), [Arg::Arena(0), Arg::U32(2)]));
        }
        _ => panic!("expected the batched launch"),
    }
    assert_eq!(arena.bytes.len(), 4 * std::mem::size_of::<RegionDesc>());
    assert!(matches!(&out[1], Op::Launch(l) if l.k == K::Copy && l.grid == 8));
    assert!(matches!(&out[2], Op::Memcpy { .. }));
    assert!(matches!(&out[3], Op::Launch(l) if l.k == K::Copy && l.grid == 4));
    // A copy into what an earlier one of the run reads splits the run as well.
    let ops = vec![
        cp(rd(a, 4, 2), rd(b, 4, 0), 16),
        cp(rd(b + (1 << 24), 4, 0), rd(a, 1, 2), 16),
    ];
    let (out, _) = batch_copies(ops, vec![(0, "x"); 2], &mut arena);
    assert!(out
        .iter()
        .all(|o| matches!(o, Op::Launch(l) if l.k == K::Copy)));
}

#[test]
fn merge_batches_keep_rows_back_to_back_and_dependent_merges_apart() {
    let reg = |buf, tok, len| Region {
        buf,
        tok,
        len,
        head: 0,
        heads: 4,
    };
    let rd = |len| RegionDesc {
        len,
        heads: 4,
        width: 8,
        ..Default::default()
    };
    let mut b = MergeBatch::default();
    b.add(rd(10), rd(10), &[rd(10), rd(10), rd(10), rd(10)]);
    b.add(rd(0), rd(0), &[rd(0), rd(0)]); // empty: skipped
    b.add(rd(5), rd(5), &[rd(5), rd(5)]);
    assert_eq!(b.merges.len(), 2);
    assert_eq!(
        (b.merges[0].row0, b.merges[0].first, b.merges[0].n),
        (0, 0, 2)
    );
    assert_eq!(
        (b.merges[1].row0, b.merges[1].first, b.merges[1].n),
        (40, 4, 1)
    );
    assert_eq!(b.rows, 60);
    // Pending: block 0 of O (buffer 0) and LSE (buffer 1) from partials in buffers 2, 3.
    b.writes.extend([reg(0, 0, 10), reg(1, 0, 10)]);
    b.reads.extend([reg(2, 0, 10), reg(3, 0, 10)]);
    let other = (reg(2, 10, 10), reg(3, 10, 10));
    assert!(
        !b.depends(&reg(0, 10, 10), &reg(1, 10, 10), &[other]),
        "next block: independent"
    );
    assert!(
        b.depends(
            &reg(0, 20, 5),
            &reg(1, 20, 5),
            &[(reg(0, 5, 2), reg(1, 5, 2))]
        ),
        "reads a pending output"
    );
    assert!(
        b.depends(&reg(0, 5, 1), &reg(1, 30, 1), &[other]),
        "writes a pending output"
    );
    assert!(
        b.depends(&reg(2, 5, 1), &reg(1, 30, 1), &[other]),
        "overwrites a pending input"
    );
    let mut arena = Arena::default();
    let l = b.launch(&mut arena, 100).unwrap();
    assert_eq!(l.k, K::Merge);
    assert!(MergeBatch::default().launch(&mut arena, 100).is_none());
}

#[test]
fn persistent_grid_caps_at_the_sms_and_takes_the_override() {
    assert_eq!(persistent_grid(2048, 132, None).unwrap(), 132);
    assert_eq!(persistent_grid(40, 132, None).unwrap(), 40);
    assert_eq!(
        persistent_grid(0, 132, None).unwrap(),
        1,
        "a launch with no task"
    );
    assert_eq!(persistent_grid(2048, 132, Some("0")).unwrap(), 2048);
    assert_eq!(persistent_grid(2048, 132, Some(" 64 ")).unwrap(), 64);
    let e = persistent_grid(10, 132, Some("many"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("DCP_CUDA_FWD_CTAS=many"), "{e}");
}

#[test]
fn persistent_bwd_grid_names_its_override() {
    assert_eq!(persistent_bwd_grid(4000, 132, None).unwrap(), 132);
    assert_eq!(persistent_bwd_grid(4000, 132, Some("0")).unwrap(), 4000);
    assert_eq!(persistent_bwd_grid(0, 132, None).unwrap(), 1);
    let e = persistent_bwd_grid(10, 132, Some("x"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("DCP_CUDA_BWD_CTAS=x"), "{e}");
}

#[test]
fn sm90_bwd_smem_fits_the_sm90_limit() {
    // D 128: one 64-row q tile per step; D 64: two (128-row Q, dO and dS stages). The
    // per-task info slots are 160 bytes each (2 x 128 overran by the WorkDesc's last 8).
    assert_eq!(sm90_bwd_smem(128), 202_208);
    assert_eq!(sm90_bwd_smem(64), 206_304);
    // The chain kernel computing D (`BWD_CHAIN_DD`) adds O's 64 x 128 16-bit rows.
    assert!(sm90_bwd_smem(128) + SM90_BWD_O_STAGE <= 232_448);
    // The plain D 128 build's staging (session 17).
    assert!(sm90_bwd_smem(128) + SM90_BWD_SCRATCH <= 232_448);
    for d in [64, 128] {
        assert!(sm90_bwd_smem(d) <= 232_448, "d {d}");
    }
}

#[test]
fn chain_variant_defs_take_only_the_named_switches() {
    assert!(chain_variant_defs(None).unwrap().is_empty());
    assert!(chain_variant_defs(Some(" ")).unwrap().is_empty());
    assert_eq!(
        chain_variant_defs(Some(" BWD_CHAIN_ST16=0,")).unwrap(),
        vec![("BWD_CHAIN_ST16".to_string(), "0".to_string())]
    );
    assert!(chain_variant_defs(Some("BWD_CHAIN_ST16=2")).is_err());
    assert!(chain_variant_defs(Some("HEAD_DIM=64")).is_err());
    assert!(chain_variant_defs(Some("BWD_CHAIN_L2=1")).is_err());
    assert!(chain_variant_defs(Some("BWD_CHAIN_ST16")).is_err());
    assert!(fwd_short_variant_defs(None).unwrap().is_empty());
    assert_eq!(
        fwd_short_variant_defs(Some("FWD_FASTDESC=1, FWD_SPLIT=2")).unwrap(),
        vec![
            ("FWD_FASTDESC".to_string(), "1".to_string()),
            ("FWD_SPLIT".to_string(), "2".to_string())
        ]
    );
    for bad in ["FWD_ONE=1", "FWD_LATEREL=1", "FWD_LAZY=3", "FWD_LAZY"] {
        let e = fwd_short_variant_defs(Some(bad)).unwrap_err();
        assert!(
            e.contains("DCP_CUDA_FWD_SHORT_DEFS") && e.contains(bad),
            "{e}"
        );
    }
}

#[test]
fn fwd_half_max_parses_a_limit_and_counts_half_tiles_per_q_tile() {
    assert_eq!(fwd_half_max_with(None, 128).unwrap(), f64::INFINITY);
    assert_eq!(fwd_half_max_with(Some(" "), 64).unwrap(), 2.5);
    assert_eq!(fwd_half_max_with(None, 96).unwrap(), f64::INFINITY);
    assert_eq!(fwd_half_max_with(Some("1.5"), 64).unwrap(), 1.5);
    for bad in ["-1", "two", "nan"] {
        let e = fwd_half_max_with(Some(bad), 128).unwrap_err().to_string();
        assert!(
            e.contains("DCP_CUDA_FWD_HALF_MAX") && e.contains(bad),
            "{e}"
        );
    }
    // Two q tiles, three half tiles: 1.5 per q tile.
    let half = [true, false, true, false, true];
    assert!(half_tiles_ok(&half, 2, 1.5));
    assert!(!half_tiles_ok(&half, 2, 1.4));
    assert!(half_tiles_ok(&half, 2, f64::INFINITY));
    assert!(half_tiles_ok(&[], 0, 0.0));
    assert!(!half_tiles_ok(&[true], 1, 0.0));
}

#[test]
fn copy_batch_is_on_unless_set_to_0() {
    assert!(copy_batch_with(None).unwrap());
    assert!(copy_batch_with(Some(" ")).unwrap());
    assert!(copy_batch_with(Some("1")).unwrap());
    assert!(!copy_batch_with(Some(" 0")).unwrap());
    let e = copy_batch_with(Some("yes")).unwrap_err().to_string();
    assert!(e.contains("DCP_CUDA_COPY_BATCH=yes"), "{e}");
}

#[test]
fn dd_ctas_override_parses_ctas_per_sm() {
    assert_eq!(dd_ctas_override(None).unwrap(), None);
    assert_eq!(dd_ctas_override(Some(" ")).unwrap(), None);
    assert_eq!(dd_ctas_override(Some("16")).unwrap(), Some(16));
    assert_eq!(dd_ctas_override(Some("3")).unwrap(), Some(3));
    assert!(dd_ctas_override(Some("0")).is_err());
    assert!(dd_ctas_override(Some("x")).is_err());
    assert!(dd_ctas_override(Some("65")).is_err());
}

#[test]
fn dd_flat_switch_defaults_on() {
    assert!(dd_flat_with(None).unwrap());
    assert!(dd_flat_with(Some("1")).unwrap());
    assert!(!dd_flat_with(Some("0")).unwrap());
    let e = dd_flat_with(Some("yes")).unwrap_err().to_string();
    assert!(e.contains("DCP_CUDA_BWD_DD_FLAT"), "{e}");
}

#[test]
fn dd_tile_pairs_follow_the_kernels_lanes_per_pair() {
    // dcp_bwd_dd: L = the smallest power of two with L * 8 >= head_dim (32 at most, 32 when
    // head_dim is not a multiple of 8), 4 passes of 256 / L pairs.
    assert_eq!(dd_tile_pairs(128), 64);
    assert_eq!(dd_tile_pairs(64), 128);
    assert_eq!(dd_tile_pairs(96), 64);
    assert_eq!(dd_tile_pairs(8), 1024);
    assert_eq!(dd_tile_pairs(256), 32);
    assert_eq!(dd_tile_pairs(512), 32);
    assert_eq!(dd_tile_pairs(100), 32);
}

#[test]
fn bwd_smem_override_only_grows_and_is_capped() {
    assert_eq!(bwd_smem_override(201_888, None).unwrap(), 201_888);
    assert_eq!(
        bwd_smem_override(201_888, Some(" 232448 ")).unwrap(),
        232_448
    );
    assert_eq!(bwd_smem_override(201_888, Some("1000")).unwrap(), 201_888);
    for bad in ["232449", "lots"] {
        let e = bwd_smem_override(1, Some(bad)).unwrap_err().to_string();
        assert!(e.contains(&format!("DCP_CUDA_BWD_SMEM={bad}")), "{e}");
    }
}

#[test]
fn family_choice_parses_and_rejects_unknown() {
    assert_eq!(FamilyChoice::parse("auto").unwrap(), FamilyChoice::Auto);
    assert_eq!(FamilyChoice::parse("").unwrap(), FamilyChoice::Auto);
    assert_eq!(FamilyChoice::parse("mma").unwrap(), FamilyChoice::Mma);
    assert_eq!(FamilyChoice::parse(" sm90 ").unwrap(), FamilyChoice::Sm90);
    let e = FamilyChoice::parse("wgmma").unwrap_err().to_string();
    assert!(e.contains("wgmma") && e.contains("sm90"), "{e}");
}

#[test]
fn family_follows_device_and_head_dim() {
    use KernelFamily::*;
    for d in [64, 128] {
        for def in [false, true] {
            let c = |ch| choose_family(ch, (9, 0), d, def).unwrap();
            assert_eq!(c(FamilyChoice::Sm90), Sm90Wgmma);
            assert_eq!(c(FamilyChoice::Mma), MmaSync);
            assert_eq!(c(FamilyChoice::Auto) == Sm90Wgmma, def);
        }
    }
    // Other architectures and head dims: auto falls back, an explicit sm90 is an error.
    for (cc, d) in [((8, 0), 128), ((9, 0), 96), ((9, 0), 256), ((10, 0), 128)] {
        assert_eq!(
            choose_family(FamilyChoice::Auto, cc, d, true).unwrap(),
            MmaSync
        );
        let e = choose_family(FamilyChoice::Sm90, cc, d, true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("head dim"), "{e}");
    }
}

/// `DCP_CUDA_PARTIAL_FIRST`: unset is the backward only; the forms are taken, others refused
/// with the variable named.
#[test]
fn partial_first_is_parsed_or_refused() {
    use crate::knobs::partial_first_with;
    assert_eq!(partial_first_with(None).unwrap(), (false, true));
    assert_eq!(partial_first_with(Some(" ")).unwrap(), (false, true));
    assert_eq!(partial_first_with(Some("bwd")).unwrap(), (false, true));
    assert_eq!(partial_first_with(Some("0")).unwrap(), (false, false));
    assert_eq!(partial_first_with(Some("1")).unwrap(), (true, true));
    assert_eq!(partial_first_with(Some("fwd")).unwrap(), (true, false));
    for bad in ["2", "both", "yes"] {
        let e = partial_first_with(Some(bad)).unwrap_err().to_string();
        assert!(e.contains(&format!("DCP_CUDA_PARTIAL_FIRST={bad}")), "{e}");
    }
}

/// Tasks are claimed longest first; with `partial_first`, among equal lengths those with more
/// partial tiles first (the rest keep their order); `keep_order` leaves them as built.
#[test]
fn tasks_sort_longest_then_most_partial_first() {
    // Tiles: task 0 (2 full), task 1 (2, one partial), task 2 (3 full), task 3 (2, both
    // partial), task 4 (2 full).
    let tiles = vec![
        0,
        1,
        2,
        PARTIAL | 3,
        4,
        5,
        6,
        PARTIAL | 7,
        PARTIAL | 8,
        9,
        10,
    ];
    let tasks = vec![
        task(0, 0, 0, 2),
        task(1, 0, 2, 2),
        task(2, 0, 4, 3),
        task(3, 0, 7, 2),
        task(4, 0, 9, 2),
    ];
    let order = |partial_first: bool, keep_order: bool| {
        let mut wl = WorkLists {
            tiles: tiles.clone(),
            tasks: tasks.clone(),
            partial_first,
            keep_order,
            ..Default::default()
        };
        wl.sort_tasks();
        wl.tasks.iter().map(|t| t.work).collect::<Vec<_>>()
    };
    assert_eq!(order(false, false), vec![2, 0, 1, 3, 4]);
    assert_eq!(order(true, false), vec![2, 3, 1, 0, 4]);
    assert_eq!(order(true, true), vec![0, 1, 2, 3, 4]);
}

/// `DCP_CUDA_TILE_MASKS=all` (session 37): a work below [`worth_masks`]'s threshold (one causal
/// sequence of 8 192 tokens: 64 partial of 2 080 forward tiles) gets no masks by default and one
/// for every partial tile under `all`; full tiles never get one; equal masks share an index.
#[test]
fn tile_masks_all_masks_every_partial_tile() {
    let n = 8192u32;
    let causal: Vec<Vec<(u32, u32)>> = (0..n).map(|i| vec![(0, i + 1)]).collect();
    let build = |mode: TileMasks| {
        let mut wl = WorkLists {
            mask_mode: mode,
            ..Default::default()
        };
        wl.works.push(WorkDesc {
            n_rows: n,
            q_heads: 1,
            ..Default::default()
        });
        let (csr, _) = wl.push_rows(&RowRanges::from_rows(&causal), n);
        let mut qtiles = Vec::new();
        for r0 in (0..n).step_by(SM90_BR as usize) {
            let (off, len) = wl.classify_into_tiles(&csr, r0, r0 + SM90_BR, n, SM90_BC);
            qtiles.push((r0, r0 + SM90_BR, off, len));
        }
        wl.fill_fwd_masks(&csr, &qtiles, n);
        wl
    };
    let partial = |wl: &WorkLists| wl.tiles.iter().filter(|&&t| t & PARTIAL != 0).count();
    let below = build(TileMasks::Fwd);
    let p = partial(&below);
    assert!(
        p > 0 && !worth_masks(p, below.tiles.len()),
        "{p} of {}",
        below.tiles.len()
    );
    assert!(below.tmask.iter().all(|&m| m == tilemask::NO_MASK));
    let all = build(TileMasks::FwdAll);
    assert_eq!(all.tiles, below.tiles);
    for (&t, &m) in all.tiles.iter().zip(&all.tmask) {
        assert_eq!(
            t & PARTIAL != 0,
            m != tilemask::NO_MASK,
            "tile {t:#x} mask {m}"
        );
    }
    // Every diagonal tile of a causal sequence has the same element mask: one block in all.
    assert_eq!(all.masks.len(), tilemask::FWD_MASK_WORDS);
    assert!(TileMasks::BwdAll.wanted(1, 1_000_000) && !TileMasks::Bwd.wanted(1, 1_000_000));
    assert!(!TileMasks::BwdAll.wanted(0, 10));
    assert_eq!(TileMasks::Off.layout(), None);
}

/// A D 64 launch that does not chain (cluster) never takes a dQ copy over: the main kernel has no
/// D 64 dQ conversion, so the copy must stay whatever `DCP_CUDA_BWD_CONVERT` asks; its dK/dV
/// converts only where D 64 rows are owned. D 128 keeps the switch's choice, chains add dQ.
#[test]
fn launch_conversions_never_give_a_d64_unchained_launch_its_dq() {
    let all = ConvertMode {
        dq: true,
        dkv: true,
    };
    let none = ConvertMode {
        dq: false,
        dkv: false,
    };
    for own_d64 in [false, true] {
        let c = launch_conversions(all, 64, false, own_d64);
        assert!(!c.dq, "own_d64 {own_d64}");
        assert_eq!(c.dkv, own_d64);
        let c = launch_conversions(all, 64, true, own_d64);
        assert!(c.dq && c.dkv, "own_d64 {own_d64}");
        let c = launch_conversions(none, 64, true, own_d64);
        assert!(c.dq && !c.dkv, "own_d64 {own_d64}");
    }
    let c = launch_conversions(none, 128, false, true);
    assert!(!c.dq && !c.dkv);
    let c = launch_conversions(none, 128, true, false);
    assert!(c.dq && !c.dkv);
    let c = launch_conversions(all, 128, false, false);
    assert!(c.dq && c.dkv);
    let c = launch_conversions(all, 96, true, true);
    assert!(!c.dq && !c.dkv);
}
