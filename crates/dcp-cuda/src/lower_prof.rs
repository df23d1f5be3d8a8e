//! Host time of the forward lowering's work-list phases on a saved plan, without a GPU:
//! `DCP_LOWER_PROF_PLAN=plan.json cargo test --release -p dcp-cuda --lib lower_prof -- --ignored
//! --nocapture` (the plan from `dcp plan ... --save DIR`). A measuring aid, run by hand.

use super::*;
use std::time::Instant;

#[test]
#[ignore = "a measuring aid: needs DCP_LOWER_PROF_PLAN"]
fn forward_lowering_phases() {
    let path = std::env::var("DCP_LOWER_PROF_PLAN").expect("DCP_LOWER_PROF_PLAN=plan.json");
    let plan = dcp_core::plan::Plan::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let reps: usize = std::env::var("DCP_LOWER_PROF_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let (br, bc) = (128u32, 128u32);
    let mut t = [0f64; 7];
    let names = [
        "fuse",
        "rows+classify",
        "masks",
        "half",
        "split",
        "apply",
        "order",
    ];
    let mut tasks = 0usize;
    let mut sum = 0xcbf2_9ce4_8422_2325u64;
    let mut masks = 0usize;
    let mut tiles = 0usize;
    for _ in 0..reps {
        for dev in &plan.devices {
            for ins in &dev.forward.instrs {
                let Instr::Attn { works, .. } = ins else {
                    continue;
                };
                let mut c = Instant::now();
                let mut lap = |i: usize, c: &mut Instant| {
                    let n = Instant::now();
                    t[i] += (n - *c).as_secs_f64();
                    *c = n;
                };
                let (works, _) = crate::fuse::fuse_fwd(works);
                lap(0, &mut c);
                let mut wl = WorkLists {
                    mask_mode: TileMasks::Fwd,
                    half_mode: true,
                    half_bits: true,
                    ..Default::default()
                };
                let mut per_work = Vec::new();
                for w in works.iter() {
                    let n_rows = w.q.len;
                    let n_keys: u32 = w.kv.iter().map(|k| k.len).sum();
                    let (csr, row_off) = wl.push_rows(&w.rows, n_rows);
                    let wdx = wl.works.len() as u32;
                    wl.works.push(WorkDesc {
                        n_rows,
                        n_keys,
                        q_heads: w.q.heads,
                        row_off,
                        ..Default::default()
                    });
                    let qtiles = wl.push_fwd_tasks(&csr, wdx, n_rows, n_keys, w.q.heads, br, bc);
                    per_work.push((csr, qtiles, n_keys));
                }
                lap(1, &mut c);
                for (csr, qtiles, n_keys) in &per_work {
                    wl.fill_fwd_masks(csr, qtiles, *n_keys);
                }
                lap(2, &mut c);
                for (csr, qtiles, n_keys) in &per_work {
                    wl.mark_fwd_half(csr, qtiles, *n_keys);
                }
                lap(3, &mut c);
                let row_bytes: Vec<u64> = wl
                    .works
                    .iter()
                    .map(|w| w.q_heads as u64 * 129 * 4)
                    .collect();
                let splits = wl.fwd_split(132, &row_bytes, FWD_SPLIT_SCRATCH, br);
                lap(4, &mut c);
                wl.apply_fwd_split(&splits, 2, |_, _, wd| wd);
                lap(5, &mut c);
                wl.order_fwd_half();
                lap(6, &mut c);
                tasks += wl.tasks.len();
                // A checksum of what the kernel reads, to compare builds of the lowering.
                let words = wl.tiles.iter().chain(&wl.tmask).copied().chain(
                    wl.tasks
                        .iter()
                        .flat_map(|t| [t.work, t.row0, t.head, t.tiles_off, t.tiles_n, t.pad]),
                );
                for x in words {
                    sum = (sum ^ x as u64).wrapping_mul(0x100_0000_01b3);
                }
                masks += wl.masks.len() / tilemask::FWD_MASK_WORDS;
                let distinct: std::collections::HashSet<&[u32]> =
                    wl.masks.chunks(tilemask::FWD_MASK_WORDS).collect();
                assert_eq!(distinct.len() * tilemask::FWD_MASK_WORDS, wl.masks.len());
                tiles += wl.tiles.len();
            }
        }
    }
    let total: f64 = t.iter().sum();
    let parts: Vec<String> = names
        .iter()
        .zip(t)
        .map(|(n, s)| format!("{n} {:.2}", s * 1e3 / reps as f64))
        .collect();
    println!(
        "{path}: forward lowering {:.2} ms per plan ({} tasks, {} tile entries, {} masks, \
         checksum {sum:016x}) = {}",
        total * 1e3 / reps as f64,
        tasks / reps,
        tiles / reps,
        masks / reps,
        parts.join(", ")
    );
    assert!(tasks > 0, "the plan has no forward attention");
}
