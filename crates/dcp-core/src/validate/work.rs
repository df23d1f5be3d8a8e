//! Attention works. A work reads query rows and KV rows (inputs, named by global layout rows,
//! [`super::gspace`]) with GQA-consistent heads; its row-range segments are in row order, its
//! ranges in order and inside the concatenated keys; every attended pair joins a query and a key
//! of one sequence, inside that sequence's mask; its outputs become partial results whose
//! coverage is the work's pairs ([`WorkPairs`]).
//!
//! A work may hold several sequences (a ring step's work: all local query rows against all held
//! KV rows, block-diagonal row ranges). It is checked whole: its operands are cut into *pieces*
//! (rows of one sequence, from the layout), each row-range segment meets the query pieces it
//! covers, each range the KV pieces it reaches, and every non-empty (query piece, KV piece)
//! trapezoid is checked for its sequence and its mask and summed. One read per operand, one
//! write or accumulation per output and one coverage leaf per query run, however many sequences
//! the work holds.
//!
//! The forward and backward programs of a ring plan hold the same works (same operands' contents,
//! same row ranges): the pairs of a checked work are kept by content ([`super::DevCache::pairs_memo`]) and a
//! work of equal content reuses them, checks included, since they depend on nothing else.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::OnceLock;

use super::gspace::Piece;
use super::pairs::{
    constant_order_runs, count_inside_mask, mask_seg, rect_inside_mask, trap_sum, Arena, Cov,
    Hasher, PairSum, PtrHash, Side, Trap, Traps, WorkPairs,
};
use super::state::{continues, refine, Few, Few1, Part, RowList, Rows, Slots, Val};
use super::{Ctx, Item, Local};
use crate::error::{PlanError, PlanErrorKind};
use crate::mask::{CompiledMask, Lin};
use crate::plan::FillValue;
use crate::plan::{BwdWork, FwdWork, Instr, IoTensor, Region, RowRanges};

#[cfg(debug_assertions)]
thread_local! {
    /// Works whose pairs the fast path made on this thread, each checked against the general
    /// path (debug builds only; tests read it to see that the fast path is taken).
    pub(super) static FAST_PAIRS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Works that took the previous device's trapezoids ([`Local::same_as_prev`]) on this
    /// thread, each checked against the general path (debug builds only).
    pub(super) static SHARED_PAIRS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Works whose rectangles [`span_sums`] summed whole spans at a time on this thread (debug
    /// builds only).
    pub(super) static SPAN_SUMS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// `p`'s trapezoids with the query heads of `ops` (a work of the same query rows, KV rows and
/// row ranges): what [`Local::pairs`] makes for it.
fn with_heads<'a>(p: &'a WorkPairs<'a>, ops: &Operands) -> WorkPairs<'a> {
    let (qs, ks) = p.one_head_sums();
    work_pairs_sums(Hasher::shared(), ops, Traps::of(p), &qs, &ks)
}

/// The [`WorkPairs`] of trapezoids `traps` over `ops`' query heads and the global rows of its
/// query and KV runs, given the trapezoids' sums (one head) per query run (`qs`) and per KV run
/// (`ks`).
fn work_pairs_sums<'a>(
    h: &Hasher,
    ops: &Operands,
    traps: Traps<'a>,
    qs: &[PairSum],
    ks: &[PairSum],
) -> WorkPairs<'a> {
    let rows_of = |&(r0, r1, g): &(u32, u32, u64)| (g as i64, g as i64 + (r1 - r0) as i64);
    if let (Few::One(q), [Few::One(k)], Few::One((c0, c1, h0)), [s]) =
        (&ops.q_runs, &ops.kv_runs[..], &ops.q_cols, qs)
    {
        let heads = (*h0, h0 + (c1 - c0));
        return WorkPairs::one_run_sum(h, heads, traps, rows_of(q), rows_of(k), *s);
    }
    let qheads = ops
        .q_cols
        .iter()
        .map(|&(c0, c1, h)| (h, h + (c1 - c0)))
        .collect();
    let q = ops.q_runs.iter().map(rows_of);
    let k = ops.kv_runs.iter().flat_map(|rs| rs.iter().map(rows_of));
    WorkPairs::with_sums(h, qheads, traps, q, k, Some((qs, ks)))
}

/// The [`WorkPairs`] of `traps` over `ops`' query heads and the global rows of its query and
/// KV runs.
#[inline]
fn work_pairs<'a>(h: &Hasher, ops: &Operands, traps: Vec<Trap>) -> WorkPairs<'a> {
    work_pairs_of(h, ops, Traps::Own(traps))
}

/// [`work_pairs`] of owned or shared trapezoids.
#[inline]
fn work_pairs_of<'a>(h: &Hasher, ops: &Operands, traps: Traps<'a>) -> WorkPairs<'a> {
    let rows_of = |&(r0, r1, g): &(u32, u32, u64)| (g as i64, g as i64 + (r1 - r0) as i64);
    if let (Few::One(q), [Few::One(k)], Few::One((c0, c1, h0))) =
        (&ops.q_runs, &ops.kv_runs[..], &ops.q_cols)
    {
        let p = WorkPairs::one_run(h, (*h0, h0 + (c1 - c0)), traps, rows_of(q), rows_of(k));
        #[cfg(debug_assertions)]
        assert!(
            p.same_as(&general_work_pairs(h, ops, Traps::Own(p.traps().to_vec()))),
            "one run's pairs differ from the general constructor's"
        );
        return p;
    }
    general_work_pairs(h, ops, traps)
}

/// [`work_pairs`] by [`WorkPairs::new_from`], for any runs.
fn general_work_pairs<'a>(h: &Hasher, ops: &Operands, traps: Traps<'a>) -> WorkPairs<'a> {
    let qheads = ops
        .q_cols
        .iter()
        .map(|&(c0, c1, h)| (h, h + (c1 - c0)))
        .collect();
    let rows_of = |&(r0, r1, g): &(u32, u32, u64)| (g as i64, g as i64 + (r1 - r0) as i64);
    let q = ops.q_runs.iter().map(rows_of);
    let k = ops.kv_runs.iter().flat_map(|rs| rs.iter().map(rows_of));
    WorkPairs::new_from(h, qheads, traps, q, k)
}

/// Runs of an operand's rows holding consecutive global rows: `(r0, r1, first global row)`.
pub(super) type Runs = Few<(u32, u32, u64)>;

/// Columns as runs of consecutive heads: `(c0, c1, first head)`. A column never read holds
/// `u32::MAX` and stays a run of its own (checked add: `MAX + 1` must not wrap onto head 0).
fn head_runs(heads: &[u32]) -> Few<(u32, u32, u32)> {
    let mut out: Few<(u32, u32, u32)> = Few::Zero;
    for (j, &h) in heads.iter().enumerate() {
        match out.last_mut() {
            Some(r) if r.2.checked_add(r.1 - r.0) == Some(h) => r.1 += 1,
            _ => out.push((j as u32, j as u32 + 1, h)),
        }
    }
    out
}

/// Whether `(hq + j) / g == hk + j / g` for every `j < heads` (query head `hq + j` reads KV
/// head `hk + j / g`, its group's), without a division per head: with `hq = a·g + r`
/// (`r < g`), `j = 0` needs `a = hk`, and then `⌊(r + j) / g⌋ = ⌊j / g⌋` for all `j < heads`
/// holds exactly when `r = 0` or the first `j` where they differ, `g − r`, is not below
/// `heads`.
fn gqa_consistent(hq: u32, hk: u32, heads: u32, g: u32) -> bool {
    let r = hq % g;
    heads == 0 || (hq / g == hk && (r == 0 || g - r >= heads))
}

fn push_run(runs: &mut Runs, r0: u32, r1: u32, g: u64, join: bool) {
    match runs.last_mut() {
        Some(l) if join && l.1 == r0 && l.2 + (l.1 - l.0) as u64 == g => l.1 = r1,
        _ => runs.push((r0, r1, g)),
    }
}

/// The identity rows `runs × cols` of tensor `t` (for comparing and accumulating).
fn ident_rows(t: IoTensor, runs: &Runs, cols: &[(u32, u32, u32)]) -> RowList {
    part_rows(runs, cols, |g, head| Val::In { t, g, head })
}

/// Rows `runs × cols` holding `val(g, head)` at each rectangle's top-left (`g` of its run, `head`
/// of its column run). One run and one column run (a ring step's operands) make one rectangle
/// directly, without the general collection's iterator plumbing.
#[inline]
fn part_rows(runs: &Runs, cols: &[(u32, u32, u32)], val: impl Fn(u64, u32) -> Val) -> RowList {
    if let (Few::One((r0, r1, g)), [(c0, c1, head)]) = (runs, cols) {
        return Few1::One(Rows {
            r0: *r0,
            r1: *r1,
            cols: Few1::One((*c0, *c1, val(*g, *head))),
        });
    }
    runs.iter()
        .map(|&(r0, r1, g)| Rows {
            r0,
            r1,
            cols: cols
                .iter()
                .map(|&(c0, c1, head)| (c0, c1, val(g, head)))
                .collect(),
        })
        .collect()
}

/// Whether `rows` hold exactly input `t` laid out as `runs × cols` (the common case of a
/// backward work's O, LSE and dO), checked without building the expected rows and refining: the
/// row bands and the runs are walked together, and on each piece where one band meets one run
/// the band's column runs must be `cols` with the run's global rows and the columns' heads (the
/// values are affine in a rectangle, so its top-left cell decides). A band may hold several
/// runs (rows of consecutive devices, coalesced) and a run several bands.
fn holds_input(rows: &[Rows], t: IoTensor, runs: &Runs, cols: &[(u32, u32, u32)]) -> bool {
    let (mut i, mut j) = (0, 0);
    let mut a = match (rows.first(), runs.first()) {
        (Some(rw), Some(run)) if rw.r0 == run.0 => rw.r0,
        _ => return false,
    };
    while let (Some(rw), Some(&(r0, r1, g))) = (rows.get(i), runs.get(j)) {
        if !(rw.r0 <= a && a < rw.r1 && r0 <= a && a < r1) || rw.cols.len() != cols.len() {
            return false;
        }
        let want_g = g + (a - r0) as u64;
        let ok = rw
            .cols
            .iter()
            .zip(cols)
            .all(|(&(c0, c1, ref v), &(d0, d1, head))| {
                (c0, c1) == (d0, d1)
                    && matches!(*v, Val::In { t: vt, g: vg, head: h }
                        if vt == t && vg + (a - rw.r0) as u64 == want_g && h == head)
            });
        if !ok {
            return false;
        }
        let b = rw.r1.min(r1);
        i += usize::from(b == rw.r1);
        j += usize::from(b == r1);
        a = b;
    }
    i == rows.len() && j == runs.len()
}

/// `(g, head)` of `v`, the value of non-empty region `r` when it holds one rectangle
/// ([`super::state::Buf::read_one`]), when that is input `t`.
fn one_input(v: Val, t: IoTensor, r: &Region) -> Option<(u64, u32)> {
    match v {
        Val::In { t: vt, g, head } if vt == t && r.len > 0 && r.heads > 0 => Some((g, head)),
        _ => None,
    }
}

/// Two overlapping regions of a list (indices in the list, smaller first), by a sweep over
/// regions sorted by buffer and first token: each is compared only with those starting before
/// it ends.
fn first_overlap(regions: Vec<Region>) -> Option<(usize, usize)> {
    let mut order: Vec<usize> = (0..regions.len()).collect();
    order.sort_by_key(|&i| (regions[i].buf, regions[i].tok, i));
    for (k, &i) in order.iter().enumerate() {
        let a = &regions[i];
        for &j in &order[k + 1..] {
            let b = &regions[j];
            if b.buf != a.buf || b.tok >= a.tok + a.len {
                break;
            }
            if a.overlaps(b) {
                return Some((i.min(j), i.max(j)));
            }
        }
    }
    None
}

/// One coverage leaf per query run of a work: its pairs for those query rows.
fn q_leaves<'a>(covs: &mut Arena<'_, 'a>, pairs: &'a WorkPairs<'a>, runs: &Runs) -> Few<Cov> {
    if runs.len() == 1 {
        return Few::One(covs.leaf(pairs, Side::Q(0)));
    }
    (0..runs.len())
        .map(|i| covs.leaf(pairs, Side::Q(i as u32)))
        .collect()
}

/// What a work reads: query rows and heads, KV runs and heads.
struct Operands {
    q_runs: Runs,
    /// Per KV region: runs in concatenated key positions.
    kv_runs: Few<Runs>,
    /// The heads as column runs ([`head_runs`]).
    q_cols: Few<(u32, u32, u32)>,
    kv_cols: Few<(u32, u32, u32)>,
    keys: u32,
    /// The device whose whole run of rows the query operand is, and the KV operand's (one
    /// region), when known from reading them ([`Local::operands_one_rect`]; `None`: not
    /// known, looked up where needed).
    whole: (Option<usize>, Option<usize>),
}

/// What a checked work's pairs depend on: its operands' contents and its row ranges.
pub(super) struct MemoEntry<'a> {
    q_runs: Runs,
    /// The query heads as column runs (the same information as per-column heads: the runs tile
    /// the columns).
    q_cols: Few<(u32, u32, u32)>,
    kv_runs: Few<Runs>,
    keys: u32,
    rows: &'a RowRanges,
    pairs: &'a WorkPairs<'a>,
}

impl MemoEntry<'_> {
    /// Whether a work with these operands and row ranges has this entry's pairs (compared in
    /// full: the pairs depend on nothing else).
    fn holds(&self, ops: &Operands, rows: &RowRanges) -> bool {
        self.q_runs == ops.q_runs
            && self.q_cols == ops.q_cols
            && self.kv_runs == ops.kv_runs
            && *self.rows == *rows
    }

    /// Whether a work with these operands and row ranges has this entry's trapezoids: the same
    /// query rows, KV rows, keys and row ranges, query heads aside. A work's trapezoids, and
    /// whether [`Local::check_rows`] and [`Local::pairs`] accept it, depend on nothing else
    /// (the heads enter only [`WorkPairs::new_from`]'s head sums; their GQA mapping is checked with
    /// the operands).
    fn same_traps(&self, ops: &Operands, rows: &RowRanges) -> bool {
        self.q_runs == ops.q_runs
            && self.keys == ops.keys
            && self.kv_runs == ops.kv_runs
            && (std::ptr::eq(self.rows, rows) || *self.rows == *rows)
    }
}

/// What [`Local::work_one`] did with a work it took (`None`: one it did not, nothing
/// changed).
#[allow(
    clippy::large_enum_variant,
    reason = "returned once per work and read by its tag; boxing the operands of a usp work \
              would cost an allocation each"
)]
enum WorkOne {
    /// Checked and applied.
    Done,
    /// Operands over several runs (a usp head group's), read and checked with every region:
    /// [`Local::work_with`] goes on from them.
    Runs(Operands),
}

/// One device's checked works' pairs, in the order they were checked. A backward program
/// mostly repeats its forward program's works in the same order, so a lookup first tries the
/// entry after the last one found (no fingerprint, no hashing); only when that one differs
/// are all entries indexed by [`fingerprint`] (once, then kept up to date) and looked up there.
/// Every hit is an entry of equal content ([`MemoEntry::holds`]), so which entry is tried
/// first changes the cost only.
pub(super) struct PairsMemo<'a> {
    entries: Vec<MemoEntry<'a>>,
    /// The entry to try first.
    next: usize,
    /// Entry indices by fingerprint, once a lookup has missed its positional guess.
    index: Option<HashMap<u64, Few<usize>, BuildHasherDefault<PtrHash>>>,
}

impl Default for PairsMemo<'_> {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl<'a> PairsMemo<'a> {
    pub fn with_capacity(n: usize) -> Self {
        PairsMemo {
            entries: Vec::with_capacity(n),
            next: 0,
            index: None,
        }
    }

    /// The pairs of a checked work with these operands and rows, if any.
    fn get(&mut self, ops: &Operands, rows: &RowRanges) -> Option<&'a WorkPairs<'a>> {
        if let Some(e) = self.entries.get(self.next) {
            if e.holds(ops, rows) {
                self.next += 1;
                return Some(e.pairs);
            }
        }
        let entries = &self.entries;
        let index = self.index.get_or_insert_with(|| {
            let mut m: HashMap<u64, Few<usize>, _> =
                HashMap::with_capacity_and_hasher(entries.len(), Default::default());
            for (i, e) in entries.iter().enumerate() {
                m.entry(e.fingerprint()).or_default().push(i);
            }
            m
        });
        let i = *index
            .get(&fingerprint(ops, rows))?
            .iter()
            .find(|&&i| entries[i].holds(ops, rows))?;
        self.next = i + 1;
        Some(entries[i].pairs)
    }

    /// Prefetches, in three stages a device's turn apart (`stage` 0, 1, 2), what the next
    /// lookup compares first: the entry tried first, then its row ranges' header and its pairs'
    /// run sums, then the row segments ([`super::Validator::prefetch_ahead`]).
    pub(super) fn prefetch_next(&self, stage: usize) {
        let Some(e) = self.entries.get(self.next) else {
            return;
        };
        match stage {
            0 => crate::prefetch::prefetch_bytes(e, std::mem::size_of::<MemoEntry>()),
            1 => {
                crate::prefetch::prefetch_bytes(e.rows, std::mem::size_of::<RowRanges>());
                // What a hit's coverage leaf reads ([`super::pairs::Arena::leaf`]).
                crate::prefetch::prefetch_bytes(e.pairs, std::mem::size_of::<WorkPairs>());
            }
            _ => super::prefetch_segs(&e.rows.segs),
        }
    }

    /// Prefetches where the next entry goes (a forward work's push; stage 1 of
    /// [`super::Validator::prefetch_ahead`]).
    pub(super) fn prefetch_push(&self) {
        let at = self.entries.as_ptr().wrapping_add(self.entries.len());
        crate::prefetch::prefetch_bytes(at, std::mem::size_of::<MemoEntry>());
    }

    /// The entries, in the order checked.
    pub(super) fn entries(&self) -> &[MemoEntry<'a>] {
        &self.entries
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Drops the entries from the `n`-th on (debug cross-checks redo a work).
    #[cfg(debug_assertions)]
    fn truncate(&mut self, n: usize) {
        if n < self.entries.len() {
            self.entries.truncate(n);
            self.index = None;
            self.next = self.next.min(n);
        }
    }

    fn push(&mut self, e: MemoEntry<'a>) {
        if let Some(index) = &mut self.index {
            index
                .entry(e.fingerprint())
                .or_default()
                .push(self.entries.len());
        }
        self.entries.push(e);
    }
}

/// A cheap fingerprint of a work's operands and row ranges (entries are compared in full).
fn fingerprint(ops: &Operands, rows: &RowRanges) -> u64 {
    fingerprint_of(&ops.q_runs, &ops.kv_runs, rows)
}

impl MemoEntry<'_> {
    fn fingerprint(&self) -> u64 {
        fingerprint_of(&self.q_runs, &self.kv_runs, self.rows)
    }
}

fn fingerprint_of(q_runs: &Runs, kv_runs: &Few<Runs>, rows: &RowRanges) -> u64 {
    let mut f = 0xcbf2_9ce4_8422_2325u64;
    let mut mix = |x: u64| f = (f ^ x).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29);
    for &(r0, r1, g) in q_runs {
        mix(g ^ ((r0 as u64) << 40) ^ ((r1 as u64) << 20));
    }
    for rs in kv_runs {
        mix(rs.len() as u64);
        for &(r0, r1, g) in rs {
            mix(g ^ ((r0 as u64) << 40) ^ ((r1 as u64) << 20));
        }
    }
    mix(rows.segs.len() as u64);
    if let (Some(a), Some(b)) = (rows.segs.first(), rows.segs.last()) {
        for seg in [a, b] {
            mix(((seg.row0 as u64) << 32) | seg.rows as u64);
            for r in seg.ranges.iter() {
                mix(r.start.c as u64 ^ (r.end.c as u64).rotate_left(32));
            }
        }
    }
    f
}

impl<'a> Local<'_, 'a> {
    /// The works of instruction `idx` of `dev`, from the plan (they live as long as it does).
    fn works_of(&self, dev: u32, idx: usize) -> &'a Instr {
        &self.prog(dev).instrs[idx]
    }

    pub(super) fn attn(&mut self, dev: u32, idx: usize) -> Result<(), PlanError> {
        let Instr::Attn { works, .. } = self.works_of(dev, idx) else {
            unreachable!("called for Attn")
        };
        for (wi, w) in works.iter().enumerate() {
            self.work(
                dev,
                idx,
                wi,
                &w.q,
                &w.kv,
                &w.rows,
                None,
                Some((&w.o, &w.lse)),
            )?;
        }
        // Works of one launch must not write each other's outputs (one work: nothing to
        // compare).
        if works.len() < 2 {
            return Ok(());
        }
        for out in [|w: &FwdWork| w.o, |w: &FwdWork| w.lse] {
            if let Some((a, b)) = first_overlap(works.iter().map(out).collect()) {
                return Err(self.err(dev, idx, PlanErrorKind::OverlappingOutputs { a, b }));
            }
        }
        Ok(())
    }

    pub(super) fn attn_bwd(&mut self, dev: u32, idx: usize) -> Result<(), PlanError> {
        if !self.backward {
            return Err(self.err(dev, idx, PlanErrorKind::BackwardInForward));
        }
        let Instr::AttnBwd { works, .. } = self.works_of(dev, idx) else {
            unreachable!("called for AttnBwd")
        };
        for (wi, w) in works.iter().enumerate() {
            self.work(dev, idx, wi, &w.q, &w.kv, &w.rows, Some(w), None)?;
        }
        Ok(())
    }

    /// Reads and checks a work's query and KV operands (`None`: no query rows).
    fn operands(
        &self,
        dev: u32,
        idx: usize,
        wi: usize,
        q: &Region,
        kv: &[Region],
    ) -> Result<Option<Operands>, PlanError> {
        let g = self.plan.batch.model.group();
        let qi = Item::Work(wi, "query", None);
        if let Some(ops) = self.operands_one_rect(q, kv) {
            return Ok(Some(ops));
        }
        let rows = self.read_set(dev, idx, q, qi)?;
        let mut q_runs = Runs::Zero;
        let mut q_head = Slots::new(q.heads as usize, u32::MAX);
        let at = (dev, idx);
        self.input_runs(at, &rows, IoTensor::Q, qi, 0, &mut q_runs, &mut q_head)?;
        if q_runs.is_empty() {
            return Ok(None);
        }
        let nk = kv[0].heads;
        let mut kv_head = Slots::new(nk as usize, u32::MAX);
        let mut kv_runs = Few::Zero;
        let mut keys = 0u32;
        for (ri, r) in kv.iter().enumerate() {
            let item = Item::Work(wi, "KV", Some(ri));
            let rows = self.read_set(dev, idx, r, item)?;
            let mut runs = Runs::Zero;
            self.input_runs(at, &rows, IoTensor::Kv, item, keys, &mut runs, &mut kv_head)?;
            keys += r.len;
            kv_runs.push(runs);
        }
        if keys > 0 {
            for (j, &qh) in q_head.iter().enumerate() {
                let kh = kv_head[j / g as usize];
                if qh / g != kh {
                    return Err(self.err(
                        dev,
                        idx,
                        PlanErrorKind::GqaMismatch {
                            work: wi,
                            q_head: qh,
                            kv_head: kh,
                            want: qh / g,
                        },
                    ));
                }
            }
        }
        Ok(Some(Operands {
            q_cols: head_runs(&q_head),
            kv_cols: head_runs(&kv_head),
            q_runs,
            kv_runs,
            keys,
            whole: (None, None),
        }))
    }

    /// Reads rows holding input `t`: one token per row across heads (runs of global rows
    /// appended to `runs`, rows shifted by `row0`) and one head per column across rows (`heads`,
    /// `u32::MAX` = not yet seen).
    #[allow(clippy::too_many_arguments)]
    fn input_runs(
        &self,
        (dev, idx): (u32, usize),
        rows: &[Rows],
        t: IoTensor,
        item: Item,
        row0: u32,
        runs: &mut Runs,
        heads: &mut [u32],
    ) -> Result<(), PlanError> {
        let wrong = |v: &Val, expected: &str| {
            self.err(
                dev,
                idx,
                PlanErrorKind::WrongContent {
                    item: item.to_string(),
                    found: v.describe(&self.cx.gmap),
                    expected: expected.into(),
                },
            )
        };
        for rw in rows {
            let mut g0 = None;
            for (c0, c1, v) in &rw.cols {
                let Val::In { t: vt, g, head } = *v else {
                    return Err(wrong(v, &format!("{t:?}")));
                };
                if vt != t {
                    return Err(wrong(v, &format!("{t:?}")));
                }
                if *g0.get_or_insert(g) != g {
                    return Err(wrong(v, "one token per row across heads"));
                }
                for j in *c0..*c1 {
                    let h = head + (j - c0);
                    let slot = &mut heads[j as usize];
                    if *slot == u32::MAX {
                        *slot = h;
                    } else if *slot != h {
                        return Err(wrong(v, "one head per column across rows"));
                    }
                }
            }
            if let Some(g) = g0 {
                self.push_runs(runs, row0 + rw.r0, row0 + rw.r1, g);
            }
        }
        Ok(())
    }

    /// Appends rows `[r, end)` holding global rows from `g` on to `runs`. Runs end at device
    /// boundaries: a coverage leaf per run then lies inside one device's output cells (a head
    /// group's receive buffer holds several devices' rows back to back).
    fn push_runs(&self, runs: &mut Runs, mut r: u32, end: u32, mut g: u64) {
        while r < end {
            let (b0, b1) = self.cx.gmap.device_bounds(g);
            let n = ((b1 - g).min((end - r) as u64)) as u32;
            // Not across a device boundary (`g` is one when it is a device's base).
            let join = g > b0;
            push_run(runs, r, r + n, g, join);
            r += n;
            g += n as u64;
        }
    }

    /// [`Local::operands`] when the query region holds one rectangle of input Q and every
    /// KV region one rectangle of input KV, all with the same KV heads (a ring step's work):
    /// the same result without per-column slots. `None`: not that shape (or something the
    /// general path reports), so the general path decides.
    fn operands_one_rect(&self, q: &Region, kv: &[Region]) -> Option<Operands> {
        let bufs = &self.st.bufs;
        let (gq, hq) = one_input(bufs[q.buf as usize].read_one(q)?, IoTensor::Q, q)?;
        let (q_runs, q_dev) = self.runs_from(0, q.len, gq);
        let mut kv_runs = Few::Zero;
        let mut keys = 0u32;
        let mut hk = None;
        let mut k_dev = None;
        for r in kv {
            let (g, h) = one_input(bufs[r.buf as usize].read_one(r)?, IoTensor::Kv, r)?;
            if *hk.get_or_insert(h) != h {
                return None;
            }
            let (runs, d) = self.runs_from(keys, r.len, g);
            k_dev = if keys == 0 { d } else { None };
            keys += r.len;
            kv_runs.push(runs);
        }
        let hk = hk?;
        // GQA: query head `hq + j` reads KV head `hk + j / g`, which must be its group's.
        if !gqa_consistent(hq, hk, q.heads, self.plan.batch.model.group()) {
            return None;
        }
        Some(Operands {
            q_cols: Few::One((0, q.heads, hq)),
            kv_cols: Few::One((0, kv[0].heads, hk)),
            q_runs,
            kv_runs,
            keys,
            whole: (q_dev, k_dev),
        })
    }

    /// [`Local::operands_one_rect`] of a query region holding one rectangle of input Q and one KV
    /// region `k` one rectangle of input KV, each inside one device's rows (a ring step's work):
    /// the same operands, the devices found directly. `None` for anything else.
    #[inline]
    fn operands_one_device(&self, q: &Region, k: &Region) -> Option<Operands> {
        let bufs = &self.st.bufs;
        let (
            Some(Val::In {
                t: IoTensor::Q,
                g: gq,
                head: hq,
            }),
            Some(Val::In {
                t: IoTensor::Kv,
                g: gk,
                head: hk,
            }),
        ) = (
            bufs[q.buf as usize].read_one(q),
            bufs[k.buf as usize].read_one(k),
        )
        else {
            return None;
        };
        if q.len == 0 || q.heads == 0 || k.len == 0 || k.heads == 0 {
            return None;
        }
        if !gqa_consistent(hq, hk, q.heads, self.plan.batch.model.group()) {
            return None;
        }
        let gmap = &self.cx.gmap;
        let total = gmap.base(self.plan.devices.len() as u32);
        // The device holding rows `[g, g + n)`, and whether they are all its rows.
        let device = |g: u64, n: u32, hint: usize| {
            if g + n as u64 > total {
                return None;
            }
            let d = gmap.device_at(g, hint);
            let (b0, b1) = (gmap.base(d as u32), gmap.base(d as u32 + 1));
            (g + n as u64 <= b1).then_some((d, g == b0 && g + n as u64 == b1))
        };
        let (dq, q_whole) = device(gq, q.len, self.dev as usize)?;
        let (dk, k_whole) = device(gk, k.len, dq)?;
        let ops = Operands {
            q_runs: Few::One((0, q.len, gq)),
            kv_runs: Few::One(Few::One((0, k.len, gk))),
            q_cols: Few::One((0, q.heads, hq)),
            kv_cols: Few::One((0, k.heads, hk)),
            keys: k.len,
            whole: (q_whole.then_some(dq), k_whole.then_some(dk)),
        };
        // Debug builds: the operands the general reading makes.
        #[cfg(debug_assertions)]
        {
            let general = self
                .operands_one_rect(q, std::slice::from_ref(k))
                .expect("one-device operands read unlike operands_one_rect");
            assert!(
                general.q_runs == ops.q_runs
                    && general.kv_runs == ops.kv_runs
                    && general.q_cols == ops.q_cols
                    && general.kv_cols == ops.kv_cols
                    && general.keys == ops.keys
                    && general.whole == ops.whole,
                "one-device operands differ from operands_one_rect's"
            );
        }
        Some(ops)
    }

    /// [`Local::push_runs`] into empty runs for `len > 0` rows from `r0` holding global rows
    /// from `g` on; with the device whose whole run they are, if they are one. Rows inside one
    /// device's (its own, found without a search, or another's, found by one) are one run.
    fn runs_from(&self, r0: u32, len: u32, g: u64) -> (Runs, Option<usize>) {
        let out = self.runs_from_unchecked(r0, len, g);
        // Debug builds: the runs `push_runs` cuts, and the device `Ctx::whole_run` finds.
        #[cfg(debug_assertions)]
        {
            let mut general = Runs::Zero;
            self.push_runs(&mut general, r0, r0 + len, g);
            assert_eq!(out.0, general, "rows cut into runs unlike push_runs");
            let whole = (r0 == 0).then(|| self.cx.gmap.device_run(g, len)).flatten();
            assert_eq!(out.1, whole, "a whole device run found unlike device_run");
        }
        out
    }

    fn runs_from_unchecked(&self, r0: u32, len: u32, g: u64) -> (Runs, Option<usize>) {
        let gmap = &self.cx.gmap;
        let base = |d: usize| gmap.base(d as u32);
        let mut runs = Runs::Zero;
        if g + len as u64 > base(self.plan.devices.len()) {
            // Rows beyond every device's (never read from an input): as `push_runs` cuts them.
            self.push_runs(&mut runs, r0, r0 + len, g);
            return (runs, None);
        }
        let first = gmap.device_at(g, self.dev as usize);
        let (b0, b1) = (base(first), base(first + 1));
        if g + len as u64 <= b1 {
            // Inside one device's rows: one run.
            let whole = r0 == 0 && g == b0 && g + len as u64 == b1;
            return (Few::One((r0, r0 + len, g)), whole.then_some(first));
        }
        // `push_runs`' cut, the devices after the first found by stepping on (all rows are
        // below the last device's end).
        let (mut d, mut r, mut at, end) = (first, r0, g, r0 + len);
        while r < end {
            while base(d + 1) <= at {
                d += 1;
            }
            let n = ((base(d + 1) - at).min((end - r) as u64)) as u32;
            push_run(&mut runs, r, r + n, at, at > base(d));
            r += n;
            at += n as u64;
        }
        (runs, None)
    }

    /// Row-range segments in row order without overlap; ranges in order and inside the
    /// concatenated keys, checked once per run of rows on which no two range ends cross (the
    /// checks then hold on every row of the run or none).
    pub(super) fn check_rows(
        &self,
        dev: u32,
        idx: usize,
        wi: usize,
        rows: &RowRanges,
        keys: u32,
    ) -> Result<(), PlanError> {
        let mut lines: Vec<Lin> = Vec::new();
        let mut bad = None;
        // Segments in row order without overlap: what `RowRanges::row` (the executors' reading)
        // assumes, and what makes the segments' pairs exactly the rows' pairs.
        let mut next = 0u64;
        for seg in &rows.segs {
            if (seg.row0 as u64) < next {
                bad = Some((seg.row0, seg.row0.saturating_add(seg.rows)));
                break;
            }
            next = seg.row0 as u64 + seg.rows as u64;
        }
        let segs = if bad.is_some() {
            &[][..]
        } else {
            &rows.segs[..]
        };
        let check = |seg: &crate::plan::RangeSeg, ra: i64| {
            let mut prev_end = 0i64;
            let mut first = true;
            for lr in &seg.ranges {
                let (s, e) = (lr.start.at(ra), lr.end.at(ra));
                if s >= e {
                    continue;
                }
                let (s, e) = (s.max(0), e.max(0));
                if e > keys as i64 || (!first && s < prev_end) {
                    return false;
                }
                first = false;
                prev_end = e;
            }
            true
        };
        for seg in segs {
            let (a, b) = (seg.row0 as i64, seg.row0 as i64 + seg.rows as i64);
            if seg
                .ranges
                .iter()
                .all(|r| r.start.slope == 0 && r.end.slope == 0)
            {
                // Constant ranges: one row stands for all.
                if !check(seg, a) {
                    bad = Some((a as u32, b as u32));
                    break;
                }
                continue;
            }
            // One range (a diagonal work's segment): nothing to order, and its end, a line,
            // is at most the keys on every row when it is at both end rows; else the runs
            // below decide (and name the rows).
            let one_inside = match &seg.ranges[..] {
                [lr] => b > a && lr.end.at(a).max(lr.end.at(b - 1)) <= keys as i64,
                _ => false,
            };
            if one_inside {
                // Debug builds (every test run): the runs below accept it too.
                #[cfg(debug_assertions)]
                {
                    let lines = [seg.ranges[0].start, seg.ranges[0].end];
                    let lines = [lines[0], lines[1], Lin::c(0), Lin::c(keys as i64)];
                    constant_order_runs(a, b, &lines, |ra, _| assert!(check(seg, ra)));
                }
                continue;
            }
            // The ranges' ends and the keys' bounds, on the stack when they fit.
            let mut stack = [Lin::c(0); 8];
            let ends = seg.ranges.iter().flat_map(|r| [r.start, r.end]);
            let bounds = [Lin::c(0), Lin::c(keys as i64)];
            let lines: &[Lin] = if 2 * seg.ranges.len() + 2 <= stack.len() {
                let n = 2 * seg.ranges.len() + 2;
                for (x, l) in stack.iter_mut().zip(ends.chain(bounds)) {
                    *x = l;
                }
                &stack[..n]
            } else {
                lines.clear();
                lines.extend(ends.chain(bounds));
                &lines
            };
            constant_order_runs(a, b, lines, |ra, rb| {
                if bad.is_none() && !check(seg, ra) {
                    bad = Some((ra as u32, rb as u32));
                }
            });
            if bad.is_some() {
                break;
            }
        }
        match bad {
            Some(rows) => Err(self.err(
                dev,
                idx,
                PlanErrorKind::RowRanges {
                    work: wi,
                    rows,
                    keys,
                },
            )),
            None => Ok(()),
        }
    }

    /// The work's pairs as trapezoids in (query token, key token), one per (row-range segment,
    /// query piece, range, KV piece) that holds pairs; each checked to pair one sequence and to
    /// lie inside its mask ([`pairs_traps`]). `rows` passed [`Local::check_rows`].
    #[allow(clippy::too_many_arguments)]
    fn pairs(
        &self,
        dev: u32,
        idx: usize,
        wi: usize,
        ops: &Operands,
        qp: &[(Piece, u32)],
        kp: &[(Piece, u32)],
        rows: &RowRanges,
    ) -> Result<WorkPairs<'a>, PlanError> {
        match pairs_traps(self.cx, qp, kp, rows, ops.keys) {
            Ok(traps) => Ok(work_pairs(Hasher::shared(), ops, traps)),
            Err(PairFault::Mixed(a, b)) => Err(self.mixed(dev, idx, wi, a, b)),
            Err(PairFault::Outside(seq, tokens, n)) => {
                Err(self.outside(dev, idx, wi, seq, tokens, n))
            }
        }
    }

    /// [`Local::check_rows`] followed by [`Local::pairs`] for a work whose ranges are all
    /// constant (every step of a ring plan but the diagonal one), by [`rect_sums`]: the per-run
    /// sums of the same trapezoids without making them (they are made on first use, which a
    /// valid plan's whole reads never need: [`LazyTraps`]). `None` when the general path must
    /// decide: a range that is not constant, rows that [`Local::check_rows`] refuses, a
    /// rectangle across sequences or with pairs outside the mask (the general path reports the
    /// first error in its own order).
    #[inline(never)]
    fn pairs_rect(
        &self,
        ops: &Operands,
        qp: &[(Piece, u32)],
        kp: &[(Piece, u32)],
        rows: &'a RowRanges,
    ) -> Option<WorkPairs<'a>> {
        let lazy = || Traps::Lazy(LazyTraps::of(self.cx, ops, rows));
        let h = Hasher::shared();
        if let (Few::One(_), [Few::One(_)]) = (&ops.q_runs, &ops.kv_runs[..]) {
            // One query run and one KV run (a ring step's work).
            let (mut qs, mut ks) = ([PairSum::default()], [PairSum::default()]);
            if !rect_sums(self.cx, qp, kp, rows, ops.keys, &mut qs, &mut ks) {
                return None;
            }
            return Some(work_pairs_sums(h, ops, lazy(), &qs, &ks));
        }
        let nk: usize = ops.kv_runs.iter().map(|r| r.len()).sum();
        let mut qs = vec![PairSum::default(); ops.q_runs.len()];
        let mut ks = vec![PairSum::default(); nk];
        if !rect_sums(self.cx, qp, kp, rows, ops.keys, &mut qs, &mut ks) {
            return None;
        }
        Some(work_pairs_sums(h, ops, lazy(), &qs, &ks))
    }

    #[allow(clippy::too_many_arguments)]
    #[cold]
    #[inline(never)]
    fn outside(
        &self,
        dev: u32,
        idx: usize,
        wi: usize,
        seq: u32,
        tokens: (u32, u32),
        outside: u64,
    ) -> PlanError {
        let kind = PlanErrorKind::KeyOutsideMask {
            work: wi,
            seq,
            tokens,
            outside,
        };
        self.err(dev, idx, kind)
    }

    #[cold]
    #[inline(never)]
    fn mixed(&self, dev: u32, idx: usize, wi: usize, a: u32, b: u32) -> PlanError {
        self.err(dev, idx, PlanErrorKind::MixedSequences { work: wi, a, b })
    }

    /// The pairs of a work with these operands and row ranges, checked; in a backward program,
    /// from the memo when a work of the same content was checked before (a forward program's
    /// works are checked without a lookup: in every plan measured they all differ, and a
    /// repeated one is only checked again). With whether the work is to be recorded in the memo
    /// (checked here, not found there): [`Local::work`] records it when done with its
    /// operands, moving them into the entry.
    fn checked_pairs(
        &self,
        dev: u32,
        idx: usize,
        wi: usize,
        ops: &Operands,
        rows: &'a RowRanges,
    ) -> Result<(&'a WorkPairs<'a>, bool), PlanError> {
        if self.backward {
            if let Some(p) = self.cache.pairs_memo.borrow_mut().get(ops, rows) {
                return Ok((p, false));
            }
        }
        let cx: &'a Ctx = self.cx;
        // The previous device's work of the same position (its memo entries are its works in
        // the order checked): equal but for the query heads (a usp head group's devices), its
        // trapezoids are this work's; only the head sums are made again.
        if cx.fast {
            if let Some(p) = self.same_as_prev(dev, idx, wi, ops, rows) {
                return Ok((p, true));
            }
        }
        // One run from row 0 (a ring step's operands): its cached pieces as they are, tagged
        // 0; otherwise cut into the scratch vectors with each run's index.
        // A device's whole run: its pieces in the context, borrowed (no reference count).
        let one = |runs: &[(u32, u32, u64)]| match runs {
            [(0, r1, g)] if *r1 > 0 => Some((*g, *r1)),
            _ => None,
        };
        let q_run = one(&ops.q_runs);
        let k_run = match &ops.kv_runs[..] {
            [rs] => one(rs),
            _ => None,
        };
        // The device of a whole run as reading the operands found it, else looked up.
        let ctx_run = |run: Option<(u64, u32)>, dev: Option<usize>| {
            let found = match (run, dev) {
                (Some(_), Some(d)) => Some(&cx.whole_runs[d][..]),
                _ => run.and_then(|(g, n)| cx.whole_run(g, n)),
            };
            debug_assert_eq!(found, run.and_then(|(g, n)| cx.whole_run(g, n)));
            found
        };
        let q_ctx = ctx_run(q_run, ops.whole.0);
        let k_ctx = ctx_run(k_run, ops.whole.1);
        let cached = |run: Option<(u64, u32)>, ctx: Option<&[(Piece, u32)]>| match (run, ctx) {
            (Some((g, n)), None) => Some(self.cache.run_pieces_of(cx, g, n)),
            _ => None,
        };
        let (q_arc, k_arc) = (cached(q_run, q_ctx), cached(k_run, k_ctx));
        let q_one = q_ctx.or(q_arc.as_deref().map(|v| &v[..]));
        let k_one = k_ctx.or(k_arc.as_deref().map(|v| &v[..]));
        let mut scratch = self.cache.pieces.borrow_mut();
        let (qs, ks) = &mut *scratch;
        if q_one.is_none() {
            qs.clear();
            for (i, &(r0, r1, g)) in ops.q_runs.iter().enumerate() {
                self.cache.pieces(self.cx, r0, r1, g, i as u32, qs);
            }
        }
        if k_one.is_none() {
            ks.clear();
            for (j, &(r0, r1, g)) in ops.kv_runs.iter().flat_map(|rs| rs.iter()).enumerate() {
                self.cache.pieces(self.cx, r0, r1, g, j as u32, ks);
            }
        }
        let qp: &[(Piece, u32)] = q_one.unwrap_or(&qs[..]);
        let kp: &[(Piece, u32)] = k_one.unwrap_or(&ks[..]);
        // Query and keys with no sequence in common: nothing the work attends can be right.
        if let (Some(q), Some(k)) = (qp.first(), kp.first()) {
            if !qp.iter().any(|p| kp.iter().any(|k| k.0.seq == p.0.seq)) {
                return Err(self.mixed(dev, idx, wi, q.0.seq, k.0.seq));
            }
        }
        // Constant ranges (a ring step's rectangles): checked and summed by the fast path; on
        // anything it does not take, the general order of checks decides (and names the error).
        let fast = if cx.fast {
            self.pairs_rect(ops, qp, kp, rows)
        } else {
            None
        };
        let pairs = match fast {
            Some(p) => {
                // Debug builds (every test run) prove the shortcut on each work it takes: the
                // general path must accept the work and make the same pairs.
                #[cfg(debug_assertions)]
                {
                    self.check_rows(dev, idx, wi, rows, ops.keys)
                        .expect("the fast path accepted rows the general path refuses");
                    let general = self
                        .pairs(dev, idx, wi, ops, qp, kp, rows)
                        .expect("the fast path accepted pairs the general path refuses");
                    assert!(general.same_as(&p), "the fast path's pairs differ");
                    FAST_PAIRS.set(FAST_PAIRS.get() + 1);
                }
                self.works.push_ref(p)
            }
            None if cx.fast
                && ops.q_runs.len() == 1
                && ops.kv_runs.iter().map(|r| r.len()).sum::<usize>() == 1 =>
            {
                // One query run and one KV run (a ring step's diagonal or windowed work): the
                // general order of checks, the trapezoids summed as they are made (made again
                // on first use: a valid plan reads the work's coverage whole).
                self.check_rows(dev, idx, wi, rows, ops.keys)?;
                let mut sum = PairSum::default();
                match walk_traps(cx, qp, kp, rows, ops.keys, &mut |t: Trap| {
                    sum = sum.add(t.full)
                }) {
                    Ok(()) => {}
                    Err(PairFault::Mixed(a, b)) => return Err(self.mixed(dev, idx, wi, a, b)),
                    Err(PairFault::Outside(seq, tokens, n)) => {
                        return Err(self.outside(dev, idx, wi, seq, tokens, n))
                    }
                }
                let lazy = Traps::Lazy(LazyTraps::of(self.cx, ops, rows));
                let p = work_pairs_sums(Hasher::shared(), ops, lazy, &[sum], &[sum]);
                // Debug builds: the pairs the general path makes.
                #[cfg(debug_assertions)]
                {
                    let general = self
                        .pairs(dev, idx, wi, ops, qp, kp, rows)
                        .expect("the summed walk accepted pairs the general path refuses");
                    assert!(general.same_as(&p), "the summed walk's pairs differ");
                }
                self.works.push_ref(p)
            }
            None => {
                self.check_rows(dev, idx, wi, rows, ops.keys)?;
                self.works
                    .push_ref(self.pairs(dev, idx, wi, ops, qp, kp, rows)?)
            }
        };
        Ok((pairs, true))
    }

    /// [`Local::checked_pairs`]'s reuse of the previous device's work at the same position
    /// (when devices run one after the other): `Some` when its query rows, KV rows, keys and row
    /// ranges equal this work's ([`MemoEntry::same_traps`]), which the checks of rows and pairs
    /// accepted there, so they accept them here and make the same trapezoids; the pairs are
    /// then its trapezoids with this work's query heads. The work is recorded as a checked
    /// one.
    fn same_as_prev(
        &self,
        dev: u32,
        idx: usize,
        wi: usize,
        ops: &Operands,
        rows: &'a RowRanges,
    ) -> Option<&'a WorkPairs<'a>> {
        // The previous device's, else (devices run ahead) the next device's.
        let at = self.cache.pairs_memo.borrow().len();
        let (hits, misses) = (&self.cache.near_hits, &self.cache.near_misses);
        let e = [self.prev, self.next].into_iter().find_map(|near| {
            let e = near?.get(at)?;
            if e.same_traps(ops, rows) {
                hits.set(hits.get() + 1);
                Some(e)
            } else {
                misses.set(misses.get().saturating_add(1));
                None
            }
        })?;
        let p = self.works.push_ref(with_heads(e.pairs, ops));
        #[cfg(debug_assertions)]
        {
            // The general path must accept the work and make the same pairs.
            let (qs, ks) = self.cut_pieces(ops);
            self.check_rows(dev, idx, wi, rows, ops.keys)
                .expect("a reused work's rows refused by the general path");
            let general = self
                .pairs(dev, idx, wi, ops, &qs, &ks, rows)
                .expect("a reused work's pairs refused by the general path");
            assert!(general.same_as(p), "a reused work's pairs differ");
            SHARED_PAIRS.set(SHARED_PAIRS.get() + 1);
        }
        #[cfg(not(debug_assertions))]
        let _ = (dev, idx, wi);
        Some(p)
    }

    /// A work's query and KV pieces, each tagged with its run's index (debug cross-checks).
    #[cfg(debug_assertions)]
    fn cut_pieces(&self, ops: &Operands) -> super::Pieces {
        let (mut qs, mut ks) = (Vec::new(), Vec::new());
        for (i, &(r0, r1, g)) in ops.q_runs.iter().enumerate() {
            self.cache.pieces(self.cx, r0, r1, g, i as u32, &mut qs);
        }
        for (j, &(r0, r1, g)) in ops.kv_runs.iter().flat_map(|rs| rs.iter()).enumerate() {
            self.cache.pieces(self.cx, r0, r1, g, j as u32, &mut ks);
        }
        (qs, ks)
    }

    /// [`Local::work`] of a work whose query region holds one rectangle of input Q over one run
    /// of global rows and one head run, and whose one KV region one rectangle of input KV (a ring
    /// step's work), when it passes every check: every region in bounds with its width and
    /// shape, none in flight, the operands' heads GQA-consistent, its pairs checked
    /// ([`Local::checked_pairs`]); a backward work's O, LSE and dO holding its query rows' inputs
    /// and its dQ and dKV zero or partial results of their rows. Checks first, then the same
    /// coverage nodes, writes and memo entry as the general path, in its order. Operands over
    /// several runs go back to [`Local::work`] for [`Local::work_with`]. `None` with nothing
    /// changed for anything else: the general path decides and names the error.
    #[allow(clippy::too_many_arguments)]
    fn work_one(
        &mut self,
        dev: u32,
        idx: usize,
        wi: usize,
        q: &Region,
        kv: &[Region],
        rows: &'a RowRanges,
        bwd: Option<&BwdWork>,
        outs: Option<(&Region, &Region)>,
    ) -> Option<WorkOne> {
        let model = self.plan.batch.model;
        let (g, d) = (model.group(), model.head_dim);
        let [k] = kv else {
            return None;
        };
        {
            let st = &*self.st;
            let (busy_r, busy_w) = (st.recv_bufs, st.recv_bufs | st.send_bufs);
            let fits = |r: &Region, w: u32, busy: u64| {
                busy & super::buf_bit(r.buf) == 0
                    && st
                        .bufs
                        .get(r.buf as usize)
                        .is_some_and(|b| b.width == w && b.fits(r))
            };
            let like = |r: &Region, of: &Region| r.len == of.len && r.heads == of.heads;
            if !fits(q, d, busy_r)
                || !fits(k, 2 * d, busy_r)
                || q.heads != k.heads * g
                || rows.n_rows() > q.len
            {
                return None;
            }
            let outs_ok = match (bwd, outs) {
                (None, Some((o, lse))) => {
                    fits(o, d, busy_w) && fits(lse, 1, busy_w) && like(o, q) && like(lse, q)
                }
                (Some(w), None) => {
                    fits(&w.o, d, busy_r)
                        && fits(&w.lse, 1, busy_r)
                        && fits(&w.do_, d, busy_r)
                        && fits(&w.dq, d, busy_w)
                        && [&w.o, &w.lse, &w.do_, &w.dq].iter().all(|r| like(r, q))
                        && matches!(&w.dkv[..], [dr] if fits(dr, 2 * d, busy_w) && like(dr, k))
                }
                _ => false,
            };
            if !outs_ok {
                return None;
            }
        }
        // The operands stay where they were made and are read through a reference: moving
        // them (224 bytes) right after they were written cost a stalled copy per work (the
        // copy's wide loads wait for the narrower stores that made them).
        let mut made = self.operands_one_device(q, k);
        if made.is_none() {
            made = self.operands_one_rect(q, kv);
        }
        let ops = made.as_ref()?;
        let (
            Few::One((0, _, gq)),
            Few::One((0, _, hq)),
            Few::One(Few::One((0, _, gk))),
            Few::One((0, _, hk)),
        ) = (&ops.q_runs, &ops.q_cols, &ops.kv_runs, &ops.kv_cols)
        else {
            // Operands over several runs (a usp head group's): every check before them
            // passed here, so the general path would pass them too; the rest is its own.
            return Some(WorkOne::Runs(made.expect("operands read above")));
        };
        let (gq, hq, gk, hk) = (*gq, *hq, *gk, *hk);
        #[cfg(debug_assertions)]
        let before = (
            self.outputs_of(bwd, outs),
            self.cache.pairs_memo.borrow().len(),
        );
        let Ok((pairs, record)) = self.checked_pairs(dev, idx, wi, ops, rows) else {
            return None;
        };
        match bwd {
            None => {
                let (o, lse) = outs.expect("forward outputs");
                let cov = self.covs.leaf(pairs, Side::Q(0));
                for (r, p) in [(o, Part::O), (lse, Part::Lse)] {
                    let v = Val::Part {
                        p,
                        g: gq,
                        head: hq,
                        cov,
                    };
                    self.st.bufs[r.buf as usize].write_one(r, v);
                }
            }
            Some(w) => {
                let bufs = &self.st.bufs;
                let holds = |r: &Region, t: IoTensor| {
                    let want = Val::In { t, g: gq, head: hq };
                    bufs[r.buf as usize]
                        .read_one(r)
                        .is_some_and(|v| continues(&v, 0, 0, &want))
                };
                if !(holds(&w.o, IoTensor::O)
                    && holds(&w.lse, IoTensor::Lse)
                    && holds(&w.do_, IoTensor::DO))
                {
                    return None;
                }
                // What an accumulator holds: zero, or a partial result of its rows (and its
                // coverage).
                let acc =
                    |r: &Region, p: Part, id: (u64, u32)| match bufs[r.buf as usize].read_one(r) {
                        Some(Val::Fill(FillValue::Zero)) => Some(None),
                        Some(Val::Part {
                            p: vp,
                            g,
                            head,
                            cov,
                        }) if vp == p && (g, head) == id => Some(Some(cov)),
                        _ => None,
                    };
                let dkv = &w.dkv[0];
                let (Some(hq_acc), Some(hk_acc)) = (
                    acc(&w.dq, Part::DQ, (gq, hq)),
                    acc(dkv, Part::DKv, (gk, hk)),
                ) else {
                    return None;
                };
                for (r, p, side, id, had) in [
                    (&w.dq, Part::DQ, Side::Q(0), (gq, hq), hq_acc),
                    (dkv, Part::DKv, Side::K(0), (gk, hk), hk_acc),
                ] {
                    let leaf = self.covs.leaf(pairs, side);
                    let cov = match had {
                        None => leaf,
                        Some(c) => self.covs.join(c, leaf),
                    };
                    let v = Val::Part {
                        p,
                        g: id.0,
                        head: id.1,
                        cov,
                    };
                    self.st.bufs[r.buf as usize].write_one(r, v);
                }
            }
        }
        if record {
            let ops = made.expect("operands read above");
            self.cache.pairs_memo.borrow_mut().push(MemoEntry {
                q_runs: ops.q_runs,
                q_cols: ops.q_cols,
                kv_runs: ops.kv_runs,
                keys: ops.keys,
                rows,
                pairs,
            });
        }
        // Debug builds (every test run): the general path, from the same state, accepts the
        // work and writes the same values.
        #[cfg(debug_assertions)]
        self.check_work_one(dev, idx, wi, q, kv, rows, bwd, outs, before);
        Some(WorkOne::Done)
    }

    /// The output buffers a work writes (regions, and their states), for debug cross-checks.
    #[cfg(debug_assertions)]
    fn outputs_of(
        &self,
        bwd: Option<&BwdWork>,
        outs: Option<(&Region, &Region)>,
    ) -> Vec<(Region, super::state::Buf)> {
        let regions = match (bwd, outs) {
            (Some(w), _) => vec![w.dq, w.dkv[0]],
            (None, Some((o, lse))) => vec![*o, *lse],
            (None, None) => Vec::new(),
        };
        regions
            .into_iter()
            .map(|r| (r, self.st.bufs[r.buf as usize].clone()))
            .collect()
    }

    /// [`Local::work_one`]'s debug cross-check: the work again by the general path from the
    /// state before it (its output buffers and the pairs memo), which must accept it and write
    /// values equal to the fast path's (coverages by content: the general path makes its own
    /// nodes and, for a forward work, its own pairs). The general path's state is kept.
    #[cfg(debug_assertions)]
    #[allow(clippy::too_many_arguments)]
    fn check_work_one(
        &mut self,
        dev: u32,
        idx: usize,
        wi: usize,
        q: &Region,
        kv: &[Region],
        rows: &'a RowRanges,
        bwd: Option<&BwdWork>,
        outs: Option<(&Region, &Region)>,
        (bufs, memo_len): (Vec<(Region, super::state::Buf)>, usize),
    ) {
        let fast: Vec<super::state::Buf> = bufs
            .iter()
            .map(|(r, _)| self.st.bufs[r.buf as usize].clone())
            .collect();
        for (r, b) in bufs.iter() {
            self.st.bufs[r.buf as usize] = b.clone();
        }
        self.cache.pairs_memo.borrow_mut().truncate(memo_len);
        self.work_general(dev, idx, wi, q, kv, rows, bwd, outs)
            .expect("the general path refuses a work work_one accepted");
        let covs = &self.covs;
        for ((r, _), f) in bufs.iter().zip(&fast) {
            assert!(
                self.st.bufs[r.buf as usize].same_as(f, |a, b| covs.same_content(a, b)),
                "work_one's writes differ from the general path's"
            );
        }
    }

    /// Checks one work and applies it: a forward work writes fresh partial (O, LSE); a backward
    /// work reads the final O, LSE and dO of its rows and accumulates into dQ and dKV.
    #[allow(clippy::too_many_arguments)]
    fn work(
        &mut self,
        dev: u32,
        idx: usize,
        wi: usize,
        q: &Region,
        kv: &[Region],
        rows: &'a RowRanges,
        bwd: Option<&BwdWork>,
        outs: Option<(&Region, &Region)>,
    ) -> Result<(), PlanError> {
        // What `work_one` did comes back as a small value: a `Result` with its error is
        // 128 bytes, and copying one (written just before) per work stalled on store
        // forwarding.
        if self.cx.fast {
            match self.work_one(dev, idx, wi, q, kv, rows, bwd, outs) {
                Some(WorkOne::Done) => return Ok(()),
                Some(WorkOne::Runs(ops)) => {
                    return self.work_with(dev, idx, wi, q, kv, rows, bwd, outs, ops)
                }
                None => {}
            }
        }
        self.work_general(dev, idx, wi, q, kv, rows, bwd, outs)
    }

    /// [`Local::work`] by the general path: regions checked one by one, operands read into
    /// runs, outputs written and accumulated as row lists.
    #[allow(clippy::too_many_arguments)]
    fn work_general(
        &mut self,
        dev: u32,
        idx: usize,
        wi: usize,
        q: &Region,
        kv: &[Region],
        rows: &'a RowRanges,
        bwd: Option<&BwdWork>,
        outs: Option<(&Region, &Region)>,
    ) -> Result<(), PlanError> {
        let model = self.plan.batch.model;
        let (g, d) = (model.group(), model.head_dim);
        let qi = Item::Work(wi, "query", None);
        if self.check_region(dev, idx, q, qi)? != d {
            return Err(self.shape_err(dev, idx, qi, format!("width {d} (the head dim)")));
        }
        self.check_read(dev, idx, q, qi)?;
        if kv.is_empty() {
            return Err(self.shape_err(dev, idx, qi, "at least one KV region"));
        }
        let nk = kv[0].heads;
        if q.heads != nk * g {
            return Err(self.shape_err(
                dev,
                idx,
                qi,
                format!(
                    "{} query heads need {} KV heads (group {g}), the KV regions have {nk}",
                    q.heads,
                    q.heads / g
                ),
            ));
        }
        for (ri, r) in kv.iter().enumerate() {
            let item = Item::Work(wi, "KV", Some(ri));
            if self.check_region(dev, idx, r, item)? != 2 * d || r.heads != nk {
                return Err(self.shape_err(dev, idx, item, format!("width 2·{d} and {nk} heads")));
            }
            self.check_read(dev, idx, r, item)?;
        }
        if rows.n_rows() > q.len {
            return Err(self.shape_err(
                dev,
                idx,
                qi,
                format!("at least the {} rows of the row ranges", rows.n_rows()),
            ));
        }
        let Some(ops) = self.operands(dev, idx, wi, q, kv)? else {
            return Ok(());
        };
        self.work_with(dev, idx, wi, q, kv, rows, bwd, outs, ops)
    }

    /// The rest of [`Local::work`] once the operands are read: the pairs, the outputs.
    #[allow(clippy::too_many_arguments)]
    fn work_with(
        &mut self,
        dev: u32,
        idx: usize,
        wi: usize,
        q: &Region,
        kv: &[Region],
        rows: &'a RowRanges,
        bwd: Option<&BwdWork>,
        outs: Option<(&Region, &Region)>,
        ops: Operands,
    ) -> Result<(), PlanError> {
        let d = self.plan.batch.model.head_dim;
        let (pairs, record) = self.checked_pairs(dev, idx, wi, &ops, rows)?;
        let q_cols = &ops.q_cols;
        match bwd {
            None => {
                let (o, lse) = outs.expect("forward outputs");
                // One leaf per query run: each output block reads whole leaves.
                let covs = q_leaves(&mut self.covs, pairs, &ops.q_runs);
                for (r, w, what) in [(o, d, "O"), (lse, 1, "LSE")] {
                    let item = Item::Work(wi, what, None);
                    if self.check_region(dev, idx, r, item)? != w
                        || r.len != q.len
                        || r.heads != q.heads
                    {
                        return Err(self.shape_err(
                            dev,
                            idx,
                            item,
                            format!("the query region's shape with width {w}"),
                        ));
                    }
                    self.check_write(dev, idx, r, item)?;
                }
                for (r, p) in [(o, Part::O), (lse, Part::Lse)] {
                    // One run from row 0 over all rows and one head run over all heads (a ring
                    // step's output): one value over the whole region.
                    if let (&Few::One(cov), Few::One((0, r1, g)), Few::One((0, c1, head))) =
                        (&covs, &ops.q_runs, q_cols)
                    {
                        if (*r1, *c1) == (r.len, r.heads) {
                            let v = Val::Part {
                                p,
                                g: *g,
                                head: *head,
                                cov,
                            };
                            self.st.bufs[r.buf as usize].write_one(r, v);
                            continue;
                        }
                    }
                    // Several runs over the bands they cut the region into before (a usp
                    // output rewritten by its next work): values in place, no row list.
                    let (runs, buf) = (&ops.q_runs, &self.st.bufs[r.buf as usize]);
                    if runs.len() > 1 && (covs.len() == runs.len() || covs.len() == 1) {
                        let same = |_: usize, cols: &[(u32, u32, Val)]| {
                            cols.len() == q_cols.len()
                                && cols
                                    .iter()
                                    .zip(q_cols)
                                    .all(|(a, b)| (a.0, a.1) == (b.0, b.1))
                        };
                        let rows = |k: usize| (runs[k].0, runs[k].1);
                        if let Some(i) = buf.bands_of(r, runs.len(), rows, same) {
                            let val = |k: usize, j: usize| Val::Part {
                                p,
                                g: runs[k].2,
                                head: q_cols[j].2,
                                cov: covs[k.min(covs.len() - 1)],
                            };
                            self.st.bufs[r.buf as usize].set_bands(r, i, runs.len(), val);
                            continue;
                        }
                    }
                    let rows: RowList = if let Few::One(cov) = covs {
                        part_rows(&ops.q_runs, q_cols, |g, head| Val::Part { p, g, head, cov })
                    } else {
                        ops.q_runs
                            .iter()
                            .zip(&covs)
                            .map(|(&(r0, r1, g), cov)| Rows {
                                r0,
                                r1,
                                cols: q_cols
                                    .iter()
                                    .map(|&(c0, c1, head)| {
                                        let v = Val::Part {
                                            p,
                                            g,
                                            head,
                                            cov: *cov,
                                        };
                                        (c0, c1, v)
                                    })
                                    .collect(),
                            })
                            .collect()
                    };
                    self.write(dev, r, rows);
                }
            }
            Some(w) => {
                for (r, t_in, width, what) in [
                    (&w.o, IoTensor::O, d, "O"),
                    (&w.lse, IoTensor::Lse, 1, "LSE"),
                    (&w.do_, IoTensor::DO, d, "dO"),
                ] {
                    let item = Item::Work(wi, what, None);
                    if self.check_region(dev, idx, r, item)? != width
                        || r.len != q.len
                        || r.heads != q.heads
                    {
                        return Err(self.shape_err(dev, idx, item, "the query region's shape"));
                    }
                    self.check_read(dev, idx, r, item)?;
                    // One rectangle against one query run and one head run (a ring step's
                    // work): one comparison, the walk below checks the same.
                    let one = self.st.bufs[r.buf as usize].read_one(r);
                    if let (Some(v), [(0, r1, g)], [(0, c1, head)]) =
                        (one, &ops.q_runs[..], &q_cols[..])
                    {
                        let want = Val::In {
                            t: t_in,
                            g: *g,
                            head: *head,
                        };
                        if (*r1, *c1) == (r.len, r.heads) && continues(&v, 0, 0, &want) {
                            continue;
                        }
                    }
                    let have = self.read_set(dev, idx, r, item)?;
                    if holds_input(&have, t_in, &ops.q_runs, q_cols) {
                        continue;
                    }
                    let want = ident_rows(t_in, &ops.q_runs, q_cols);
                    for cell in refine(&[&have, &want]).iter() {
                        let ok = matches!(cell.val(0), Val::In { t, .. } if *t == t_in)
                            && cell.val(0).ident() == cell.val(1).ident();
                        if !ok {
                            let map = &self.cx.gmap;
                            return Err(self.err(
                                dev,
                                idx,
                                PlanErrorKind::WrongContent {
                                    item: format!(
                                        "{item} rows {}..{} heads {}..{}",
                                        cell.r0, cell.r1, cell.c0, cell.c1
                                    ),
                                    found: cell.val(0).describe(map),
                                    expected: cell.val(1).describe(map),
                                },
                            ));
                        }
                    }
                }
                let item = Item::Work(wi, "dQ", None);
                if self.check_region(dev, idx, &w.dq, item)? != d
                    || w.dq.len != q.len
                    || w.dq.heads != q.heads
                {
                    return Err(self.shape_err(dev, idx, item, "the query region's shape"));
                }
                self.check_write(dev, idx, &w.dq, item)?;
                let want = ident_rows(IoTensor::DQ, &ops.q_runs, q_cols);
                let covs = q_leaves(&mut self.covs, pairs, &ops.q_runs);
                self.accumulate(dev, idx, item, &w.dq, &want, Part::DQ, &covs)?;
                if w.dkv.len() != kv.len() {
                    return Err(self.shape_err(
                        dev,
                        idx,
                        Item::Work(wi, "dKV", None),
                        format!("one dKV region per KV region ({})", kv.len()),
                    ));
                }
                let kv_cols = &ops.kv_cols;
                // Index of the region's first KV run among all regions' runs.
                let mut krun0 = 0usize;
                for (ri, (kr, dr)) in kv.iter().zip(&w.dkv).enumerate() {
                    let item = Item::Work(wi, "dKV", Some(ri));
                    if self.check_region(dev, idx, dr, item)? != 2 * d
                        || dr.len != kr.len
                        || dr.heads != kr.heads
                    {
                        return Err(self.shape_err(dev, idx, item, "its KV region's shape"));
                    }
                    self.check_write(dev, idx, dr, item)?;
                    let start: u32 = kv[..ri].iter().map(|r| r.len).sum();
                    let runs: Runs = match &ops.kv_runs[ri] {
                        Few::One((c0, c1, g)) => Few::One((c0 - start, c1 - start, *g)),
                        rs => rs
                            .iter()
                            .map(|&(c0, c1, g)| (c0 - start, c1 - start, g))
                            .collect(),
                    };
                    let want = ident_rows(IoTensor::DKv, &runs, kv_cols);
                    // One leaf per KV run: each dKV block reads whole leaves.
                    let leaf = |covs: &mut Arena<'_, 'a>, j: usize| {
                        covs.leaf(pairs, Side::K((krun0 + j) as u32))
                    };
                    let covs: Few<Cov> = if runs.len() == 1 {
                        Few::One(leaf(&mut self.covs, 0))
                    } else {
                        (0..runs.len()).map(|j| leaf(&mut self.covs, j)).collect()
                    };
                    krun0 += runs.len();
                    self.accumulate(dev, idx, item, dr, &want, Part::DKv, &covs)?;
                }
            }
        }
        if record {
            // The checked work in the memo, its operands moved in (done with them here).
            self.cache.pairs_memo.borrow_mut().push(MemoEntry {
                q_runs: ops.q_runs,
                q_cols: ops.q_cols,
                kv_runs: ops.kv_runs,
                keys: ops.keys,
                rows,
                pairs,
            });
        }
        Ok(())
    }
}

/// Why [`pairs_traps`] refused a work: a trapezoid pairing two sequences (query's, key's), or
/// one with pairs outside its sequence's mask (sequence, query tokens, pairs outside).
enum PairFault {
    Mixed(u32, u32),
    Outside(u32, (u32, u32), u64),
}

/// The pairs of a work over query pieces `qp` and KV pieces `kp` (each tagged with its run)
/// with row ranges `rows` (which passed [`Local::check_rows`] for `keys` keys) as trapezoids in
/// (query token, key token), one per (row-range segment, query piece, range, KV piece) that
/// holds pairs; each checked to pair one sequence and to lie inside its mask.
fn pairs_traps(
    cx: &Ctx,
    qp: &[(Piece, u32)],
    kp: &[(Piece, u32)],
    rows: &RowRanges,
    keys: u32,
) -> Result<Vec<Trap>, PairFault> {
    let mut traps = Vec::with_capacity(qp.len() * 2);
    walk_traps(cx, qp, kp, rows, keys, &mut |t| traps.push(t))?;
    Ok(traps)
}

/// [`pairs_traps`]' walk, each trapezoid handed to `sink` in order.
#[inline]
fn walk_traps(
    cx: &Ctx,
    qp: &[(Piece, u32)],
    kp: &[(Piece, u32)],
    rows: &RowRanges,
    keys: u32,
    sink: &mut impl FnMut(Trap),
) -> Result<(), PairFault> {
    let h = Hasher::shared();
    let keys = keys as i64;
    let mut qi = 0usize;
    let mut hint = 0usize;
    for seg in &rows.segs {
        let (s0, s1) = (seg.row0, seg.row0 + seg.rows);
        while qi < qp.len() && qp[qi].0.r1 <= s0 {
            qi += 1;
        }
        for (p, qrun) in qp[qi..].iter().take_while(|p| p.0.r0 < s1) {
            let (ra, rb) = (s0.max(p.r0), s1.min(p.r1));
            // Row r holds query token q = p.tok + r − p.r0: a line c + s·r becomes, in q,
            // (c + s·shift) + s·q.
            let shift = p.r0 as i64 - p.tok as i64;
            let (q0, q1) = (p.tok + (ra - p.r0), p.tok + (rb - p.r0));
            let (seq, off) = (p.seq, cx.seq_off[p.seq as usize]);
            let mask = &cx.masks[seq as usize];
            // A whole span's rows: its mask data from the context.
            let (mfirst, common) = if p.whole && (ra, rb) == (p.r0, p.r1) {
                let sp = &cx.span[p.span as usize];
                (sp.mfirst, sp.common)
            } else {
                let mfirst = mask_seg(mask, q0 as i64);
                (mfirst, common_keys(mask, mfirst, q0, q1))
            };
            #[cfg(debug_assertions)]
            {
                let mf = mask_seg(mask, q0 as i64);
                assert_eq!((mfirst, common), (mf, common_keys(mask, mf, q0, q1)));
            }
            let mut xs = None;
            for lr in seg.ranges.iter() {
                // Concatenated positions this range can reach over the rows.
                let (first, last) = (ra as i64, rb as i64 - 1);
                let lo = lr.start.at(first).min(lr.start.at(last)).max(0);
                let hi = lr.end.at(first).max(lr.end.at(last)).min(keys);
                if lo >= hi {
                    continue;
                }
                let from = first_kv_piece(kp, lo, hint);
                hint = from;
                for (k, krun) in &kp[from..] {
                    if k.r0 as i64 >= hi {
                        break;
                    }
                    // Key token = position − k.r0 + k.tok.
                    let to_k = k.tok as i64 - k.r0 as i64;
                    let at_q = |l: Lin| Lin {
                        c: l.c + l.slope * shift + to_k,
                        slope: l.slope,
                    };
                    let (kt0, kt1) = (k.tok as i64, k.tok as i64 + (k.r1 - k.r0) as i64);
                    let (lo, hi) = ([at_q(lr.start), Lin::c(kt0)], [at_q(lr.end), Lin::c(kt1)]);
                    let rect = lr.start.slope == 0 && lr.end.slope == 0;
                    let (a, b) = (lo[0].c.max(kt0), hi[0].c.min(kt1));
                    if rect && a >= b {
                        continue;
                    }
                    if rect && k.seq != seq {
                        return Err(PairFault::Mixed(seq, k.seq));
                    }
                    // Sloped bounds that bind nowhere on the query rows (lines: their ends
                    // decide) leave the whole KV piece: a rectangle too (a zigzag diagonal
                    // step's high query span against its sequence's low KV span).
                    let whole_piece = !rect && {
                        let (x, y) = (q0 as i64, q1 as i64 - 1);
                        lo[0].at(x) <= kt0
                            && lo[0].at(y) <= kt0
                            && hi[0].at(x) >= kt1
                            && hi[0].at(y) >= kt1
                    };
                    let (a, b) = if whole_piece { (kt0, kt1) } else { (a, b) };
                    // Rectangles inside the mask by the quick test need no count.
                    let mut counted = false;
                    let full = if rect || whole_piece {
                        // Σ x^q · Σ y^k, whole spans' sums from the context.
                        let xs = *xs.get_or_insert_with(|| {
                            if p.whole && (ra, rb) == (p.r0, p.r1) {
                                cx.span[p.span as usize].xs
                            } else {
                                h.xs(off + q0 as u64, off + q1 as u64)
                            }
                        });
                        let ys = if k.whole && (a, b) == (kt0, kt1) {
                            cx.span[k.span as usize].ys
                        } else {
                            h.ys(off + a as u64, off + b as u64)
                        };
                        let qs = (q0 as i64, q1 as i64);
                        counted = match common {
                            Some((cl, cu)) => cl <= a && b <= cu,
                            None => rect_inside_mask(mask, mfirst, qs, (a, b)),
                        };
                        Hasher::rect(xs, ys, (q1 - q0) as u64, (b - a) as u64)
                    } else {
                        trap_sum(h, q0 as i64, q1 as i64, &lo, &hi, off, false)
                    };
                    if full.count == 0 {
                        continue;
                    }
                    if k.seq != seq {
                        return Err(PairFault::Mixed(seq, k.seq));
                    }
                    // Debug builds: a sloped range's whole piece (of the query's sequence) sums
                    // as its trapezoid does.
                    debug_assert!(
                        !whole_piece
                            || full == trap_sum(h, q0 as i64, q1 as i64, &lo, &hi, off, false),
                        "a whole piece's rectangle sum differs from its trapezoid's"
                    );
                    let tr = Trap {
                        q0,
                        q1,
                        lo,
                        hi,
                        qrun: *qrun,
                        krun: *krun,
                        off,
                        gq: p.g0 as i64 - p.tok as i64,
                        gk: k.g0 as i64 - k.tok as i64,
                        full,
                    };
                    if !counted {
                        let inside = count_inside_mask(h, mask, &tr);
                        if inside != full.count {
                            return Err(PairFault::Outside(seq, (q0, q1), full.count - inside));
                        }
                    }
                    sink(tr);
                }
            }
        }
    }
    Ok(())
}

/// [`Local::check_rows`] and [`pairs_traps`] of a work whose ranges are all constant, summed:
/// adds each query run's trapezoids (one head) to `qs[run]` and each KV run's to `ks[run]`,
/// without making them. The same loops over segments, query pieces, ranges and KV pieces, with
/// a rectangle's arithmetic only. `false` when the general path must decide: a range that is
/// not constant (checked for all segments first, so a diagonal step's work pays no half pass),
/// rows [`Local::check_rows`] refuses, a rectangle across sequences or with pairs outside the
/// mask.
fn rect_sums(
    cx: &Ctx,
    qp: &[(Piece, u32)],
    kp: &[(Piece, u32)],
    rows: &RowRanges,
    keys: u32,
    qs: &mut [PairSum],
    ks: &mut [PairSum],
) -> bool {
    // Whole spans at a time (a ring, zigzag or usp step's work), its checks of the rows
    // included; else the loops below decide.
    let one = qs.len() == 1 && ks.len() == 1;
    let spans = if one {
        span_sums(cx, qp, kp, rows, keys).map(|sum| (qs[0], ks[0]) = (sum, sum))
    } else {
        span_sums_runs(cx, qp, kp, rows, keys, qs, ks)
    };
    if spans.is_some() {
        #[cfg(debug_assertions)]
        SPAN_SUMS.set(SPAN_SUMS.get() + 1);
        return true;
    }
    // Nothing decided there: the loop below sums from zero.
    qs.fill(PairSum::default());
    ks.fill(PairSum::default());
    // `check_rows`: segments in row order without overlap; constant ranges in order, inside
    // the keys (empty ones skipped, ends below 0 taken as 0).
    let keys = keys as i64;
    let mut next = 0u64;
    for seg in &rows.segs {
        if (seg.row0 as u64) < next {
            return false;
        }
        next = seg.row0 as u64 + seg.rows as u64;
        let (mut prev_end, mut first) = (0i64, true);
        for lr in seg.ranges.iter() {
            if lr.start.slope != 0 || lr.end.slope != 0 {
                return false;
            }
            let (s, e) = (lr.start.c, lr.end.c);
            if s >= e {
                continue;
            }
            let (s, e) = (s.max(0), e.max(0));
            if e > keys || (!first && s < prev_end) {
                return false;
            }
            first = false;
            prev_end = e;
        }
    }
    if next > u32::MAX as u64 {
        return false;
    }
    let h = Hasher::shared();
    let mut total = PairSum::default();
    let (mut qi, mut hint) = (0usize, 0usize);
    for seg in &rows.segs {
        let ranges: &[crate::mask::LinRange] = &seg.ranges;
        let (s0, s1) = (seg.row0, seg.row0 + seg.rows);
        while qi < qp.len() && qp[qi].0.r1 <= s0 {
            qi += 1;
        }
        for (p, qrun) in &qp[qi..] {
            if p.r0 >= s1 {
                break;
            }
            let (ra, rb) = (s0.max(p.r0), s1.min(p.r1));
            let (q0, q1) = (p.tok + (ra - p.r0), p.tok + (rb - p.r0));
            let seq = p.seq;
            let sp = &cx.span[p.span as usize];
            let off = sp.off;
            // A whole span's rows (a ring step's query piece): its sums and mask data from the
            // context.
            let whole = p.whole && (ra, rb) == (p.r0, p.r1);
            let (mfirst, common, xs) = if whole {
                (sp.mfirst, sp.common, sp.xs)
            } else {
                let mask = &cx.masks[seq as usize];
                let mfirst = mask_seg(mask, q0 as i64);
                let xs = h.xs(off + q0 as u64, off + q1 as u64);
                (mfirst, common_keys(mask, mfirst, q0, q1), xs)
            };
            #[cfg(debug_assertions)]
            {
                let mask = &cx.masks[seq as usize];
                let mf = mask_seg(mask, q0 as i64);
                assert_eq!((mfirst, common), (mf, common_keys(mask, mf, q0, q1)));
                assert_eq!(xs, h.xs(off + q0 as u64, off + q1 as u64));
            }
            let nq = (q1 - q0) as u64;
            let mut sum = PairSum::default();
            for lr in ranges {
                // Key positions `[lo, hi)`: inside the keys by the pass above, when not empty.
                let (s, e) = (lr.start.c.max(0), lr.end.c);
                if s >= e {
                    continue;
                }
                let (lo, hi) = (s as u32, e as u32);
                let from = first_kv_piece(kp, lo as i64, hint);
                hint = from;
                for (k, krun) in &kp[from..] {
                    if k.r0 >= hi {
                        break;
                    }
                    // The positions of this piece in the range, and their key tokens `[a, b)`.
                    let (pa, pb) = (lo.max(k.r0), hi.min(k.r1));
                    if pa >= pb {
                        continue;
                    }
                    if k.seq != seq {
                        return false;
                    }
                    let (a, b) = (k.tok + (pa - k.r0), k.tok + (pb - k.r0));
                    let ys = if k.whole && (pa, pb) == (k.r0, k.r1) {
                        cx.span[k.span as usize].ys
                    } else {
                        h.ys(off + a as u64, off + b as u64)
                    };
                    let full = Hasher::rect(xs, ys, nq, (pb - pa) as u64);
                    let counted = match common {
                        Some((cl, cu)) => cl <= a as i64 && b as i64 <= cu,
                        None => {
                            let mask = &cx.masks[seq as usize];
                            let (qq, kk) = ((q0 as i64, q1 as i64), (a as i64, b as i64));
                            rect_inside_mask(mask, mfirst, qq, kk)
                        }
                    };
                    // Not placed inside by the quick tests: counted exactly, as the general
                    // path does; pairs outside are its error to name.
                    if !counted && !counted_inside(cx, seq, (q0, q1), (a, b), full) {
                        return false;
                    }
                    sum = sum.add(full);
                    if !one {
                        let kr = &mut ks[*krun as usize];
                        *kr = kr.add(full);
                    }
                }
            }
            if one {
                total = total.add(sum);
            } else {
                let qr = &mut qs[*qrun as usize];
                *qr = qr.add(sum);
            }
        }
    }
    if one {
        qs[0] = total;
        ks[0] = total;
    }
    true
}

/// [`rect_sums`]' sum for a work of one query run and one KV run whose every row-range segment
/// is whole query pieces of one sequence, and every non-empty range whole KV pieces of that
/// sequence, each inside the keys all the pieces' queries attend (a ring or zigzag step's work;
/// a zigzag segment may hold both of a sequence's query spans): per segment the sum of its
/// spans' Σx^q times the sum of its KV spans' Σy^k, and the count the lengths' product; no
/// clipping, no test per rectangle. The ranges passed [`rect_sums`]' checks. `None` for
/// anything else (nothing decided: [`rect_sums`]' general loop takes the work).
fn span_sums(
    cx: &Ctx,
    qp: &[(Piece, u32)],
    kp: &[(Piece, u32)],
    rows: &RowRanges,
    keys: u32,
) -> Option<PairSum> {
    let mut sum = PairSum::default();
    // Σ y^k over the segment's keys (its pairs' hash is Σx^q times it) and their count.
    let (mut ys, mut nk) = (0u64, 0u64);
    span_walk::<false>(cx, qp, kp, rows, keys, |ev| match ev {
        SpanEvent::Rect { ys: y, nk: n, .. } => {
            ys = super::pairs::addm(ys, y);
            nk += n;
        }
        SpanEvent::SegmentEnd { xs, nq } => {
            sum = sum.add(Hasher::rect(xs, ys, nq, nk));
            (ys, nk) = (0, 0);
        }
    })?;
    Some(sum)
}

/// [`span_sums`] for a work of several query or KV runs (a usp head group's step): per
/// segment (whole query pieces of one run) and KV piece, the product of their sums, added to
/// the query run's sum and the KV piece's run's. `None` for anything else (nothing decided:
/// [`rect_sums`]' general loop takes the work, from zero).
fn span_sums_runs(
    cx: &Ctx,
    qp: &[(Piece, u32)],
    kp: &[(Piece, u32)],
    rows: &RowRanges,
    keys: u32,
    qs: &mut [PairSum],
    ks: &mut [PairSum],
) -> Option<()> {
    span_walk::<true>(cx, qp, kp, rows, keys, |ev| {
        if let SpanEvent::Rect {
            qrun,
            xs,
            nq,
            krun,
            ys,
            nk,
        } = ev
        {
            let r = Hasher::rect(xs, ys, nq, nk);
            qs[qrun as usize] = qs[qrun as usize].add(r);
            ks[krun as usize] = ks[krun as usize].add(r);
        }
    })
}

/// What [`span_walk`] finds, in order: per row-range segment its rectangles (the segment's
/// query pieces, all of query run `qrun`, with Σx^q = `xs` over `nq` rows, times one whole KV
/// piece of run `krun` with Σy^k = `ys` over `nk` keys), then the segment's end.
enum SpanEvent {
    Rect {
        qrun: u32,
        xs: u64,
        nq: u64,
        krun: u32,
        ys: u64,
        nk: u64,
    },
    SegmentEnd {
        xs: u64,
        nq: u64,
    },
}

/// The walk of [`span_sums`] and [`span_sums_runs`]: every row-range segment of `rows` must be
/// whole query pieces of one sequence and one run, and every non-empty range whole KV pieces
/// of that sequence inside the keys its queries attend; each such (segment, KV piece) goes to
/// `visit`. `None` for anything else (nothing decided).
fn span_walk<const HINTS: bool>(
    cx: &Ctx,
    qp: &[(Piece, u32)],
    kp: &[(Piece, u32)],
    rows: &RowRanges,
    keys: u32,
    mut visit: impl FnMut(SpanEvent),
) -> Option<()> {
    let spans = &cx.span[..];
    let keys = keys as i64;
    let mut next = 0u64;
    let (mut qi, mut j) = (0usize, 0usize);
    // With `HINTS` (several KV runs), per range position in a segment (the last slot shared by
    // the rest): the first KV piece of that range in the previous segment, and the piece after
    // its last. A usp step's segments each attend their sequence's pieces in each of the head
    // group's runs (range i in run i), so the next segment's range i starts at one of them or
    // one piece on (the sequence's other chunk skipped), where a search over all pieces stood
    // before (a ring or zigzag step's one run finds its
    // next range at the next piece or the one after: no hints, which cost zigzag 1.4 %
    // instructions).
    let (mut starts, mut ends) = ([usize::MAX; 4], [usize::MAX; 4]);
    for seg in &rows.segs {
        // `check_rows`: segments in row order without overlap.
        let s0 = seg.row0;
        if (s0 as u64) < next {
            return None;
        }
        let s1 = s0.checked_add(seg.rows)?;
        next = s1 as u64;
        while qp.get(qi)?.0.r1 <= s0 {
            qi += 1;
        }
        // The query pieces tiling the segment: their sums, and the keys all their queries
        // attend.
        let (p, qrun) = &qp[qi];
        if p.r0 != s0 || p.r1 > s1 || s0 == s1 || !p.whole {
            return None;
        }
        let sp = &spans[p.span as usize];
        // The keys all the segment's queries attend, when each piece's are one interval;
        // else (a lambda mask's sink and window) each rectangle is tested on its own.
        let q_first = qi;
        let (mut cl, mut cu) = sp.common.unwrap_or((i64::MAX, i64::MIN));
        let mut xs = sp.xs;
        if p.r1 != s1 {
            // More pieces: those after the first tile the rest.
            let mut at = p.r1;
            while at < s1 {
                qi += 1;
                let (q, run) = qp.get(qi)?;
                debug_assert_eq!(q.r0, at, "a run's pieces tile its rows");
                if q.r1 > s1 || !q.whole || q.seq != p.seq || run != qrun {
                    return None;
                }
                let sq = &spans[q.span as usize];
                let (a, b) = sq.common.unwrap_or((i64::MAX, i64::MIN));
                (cl, cu) = (cl.max(a), cu.min(b));
                xs = super::pairs::addm(xs, sq.xs);
                at = q.r1;
            }
        }
        let nq = (s1 - s0) as u64;
        let (mut prev_end, mut first) = (0i64, true);
        for (ri, lr) in seg.ranges.iter().enumerate() {
            // `check_rows`: constant ranges in order, inside the keys (empty ones skipped,
            // ends below 0 taken as 0).
            if lr.start.slope != 0 || lr.end.slope != 0 {
                return None;
            }
            let (s, e) = (lr.start.c, lr.end.c);
            if s >= e {
                continue;
            }
            let (s, e) = (s.max(0), e.max(0));
            if e > keys || (!first && s < prev_end) {
                return None;
            }
            (first, prev_end) = (false, e);
            if s >= e {
                continue;
            }
            let (lo, hi) = (s as u32, e as u32);
            // The KV piece starting at `lo` (the pieces tile the key positions): the next one
            // on, the one after it, a hint's, or found by search; none when `lo` is inside a
            // piece.
            // The first piece at `lo`, as the search finds it.
            let first_at = |i: usize| {
                kp.get(i).is_some_and(|k| k.0.r0 == lo) && (i == 0 || kp[i - 1].0.r0 < lo)
            };
            let slot = ri.min(starts.len() - 1);
            if kp.get(j).is_none_or(|k| k.0.r0 != lo) {
                j = if first_at(j + 1) {
                    // One piece on (a zigzag step's segment skips its sequence's other chunk).
                    j + 1
                } else if HINTS && first_at(ends[slot]) {
                    ends[slot]
                } else if HINTS && first_at(ends[slot].wrapping_add(1)) {
                    ends[slot].wrapping_add(1)
                } else if HINTS && first_at(starts[slot]) {
                    starts[slot]
                } else {
                    kp.partition_point(|k| k.0.r0 < lo)
                };
                debug_assert_eq!(j, kp.partition_point(|k| k.0.r0 < lo));
                if kp.get(j).is_none_or(|k| k.0.r0 != lo) {
                    return None;
                }
            }
            if HINTS {
                starts[slot] = j;
            }
            // Whole pieces up to `hi` (the last one then ends at `hi`: they tile).
            while let Some((k, krun)) = kp.get(j) {
                if k.r0 >= hi {
                    break;
                }
                if k.r1 > hi || !k.whole || k.seq != p.seq {
                    return None;
                }
                let n = k.r1 - k.r0;
                if ((k.tok as i64) < cl || (k.tok + n) as i64 > cu)
                    && !rects_inside_mask(cx, &qp[q_first..=qi], (k.tok, k.tok + n))
                {
                    return None;
                }
                visit(SpanEvent::Rect {
                    qrun: *qrun,
                    xs,
                    nq,
                    krun: *krun,
                    ys: spans[k.span as usize].ys,
                    nk: n as u64,
                });
                j += 1;
            }
            if HINTS {
                ends[slot] = j;
            }
        }
        visit(SpanEvent::SegmentEnd { xs, nq });
    }
    Some(())
}

/// Whether keys `[a, b)` lie inside the mask of every query of the whole pieces `qs` (of one
/// sequence): [`rect_inside_mask`] per piece, from its span's first mask segment.
#[inline(never)]
fn rects_inside_mask(cx: &Ctx, qs: &[(Piece, u32)], (a, b): (u32, u32)) -> bool {
    qs.iter().all(|(q, _)| {
        let mask = &cx.masks[q.seq as usize];
        let mfirst = cx.span[q.span as usize].mfirst;
        let toks = (q.tok as i64, (q.tok + (q.r1 - q.r0)) as i64);
        rect_inside_mask(mask, mfirst, toks, (a as i64, b as i64))
    })
}

/// Whether every pair of rectangle `[q0, q1) × [a, b)` (tokens of sequence `seq`, its sum
/// `full`) lies inside the sequence's mask, by an exact count (the quick tests did not place
/// it).
#[cold]
#[inline(never)]
fn counted_inside(
    cx: &Ctx,
    seq: u32,
    (q0, q1): (u32, u32),
    (a, b): (u32, u32),
    full: PairSum,
) -> bool {
    let tr = Trap {
        q0,
        q1,
        lo: [Lin::c(a as i64), Lin::c(a as i64)],
        hi: [Lin::c(b as i64), Lin::c(b as i64)],
        qrun: 0,
        krun: 0,
        off: 0,
        gq: 0,
        gk: 0,
        full,
    };
    count_inside_mask(Hasher::shared(), &cx.masks[seq as usize], &tr) == full.count
}

/// The trapezoids of a work checked by [`rect_sums`], made on first use by [`pairs_traps`]
/// from its operands' runs (cut into pieces again) and its row ranges.
pub(super) struct LazyTraps<'a> {
    cx: &'a Ctx<'a>,
    runs: LazyRuns,
    rows: &'a RowRanges,
    keys: u32,
    made: OnceLock<Vec<Trap>>,
}

/// A lazy work's query runs and KV runs: one of each inline (a ring step's work: 32 bytes
/// where the two lists took 128, in every such work a validation writes), else both lists
/// boxed.
enum LazyRuns {
    One(Run, Run),
    Many(Box<ManyRuns>),
}

/// One run of an operand's rows ([`Runs`]).
type Run = (u32, u32, u64);

/// A lazy work's query runs and its KV regions' runs.
type ManyRuns = (Runs, Few<Runs>);

impl Drop for LazyRuns {
    /// A box goes back to this thread's [`RUN_LISTS`], emptied (a usp head group's works make
    /// one each: allocated and freed per work, they cost a few % of its validation).
    fn drop(&mut self) {
        if let LazyRuns::Many(b) = self {
            let mut b = std::mem::take(b);
            *b = Default::default();
            // `try_with`: nothing to keep once the thread is ending.
            let _ = RUN_LISTS.try_with(|pool| {
                let mut pool = pool.borrow_mut();
                if pool.len() < RUN_POOL_MAX {
                    pool.push(b);
                }
            });
        }
    }
}

/// How many emptied boxes of runs a thread keeps ([`RUN_LISTS`]).
const RUN_POOL_MAX: usize = 1 << 16;

thread_local! {
    /// Emptied boxes of dropped lazy works' runs, for the next ones ([`LazyTraps::of`]).
    #[allow(clippy::vec_box, reason = "the boxes' allocations are what is kept for reuse")]
    static RUN_LISTS: std::cell::RefCell<Vec<Box<ManyRuns>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl<'a> LazyTraps<'a> {
    /// The trapezoids of a work of operands `ops` and row ranges `rows`, made on first use.
    fn of(cx: &'a Ctx<'a>, ops: &Operands, rows: &'a RowRanges) -> Self {
        let runs = match (&ops.q_runs, &ops.kv_runs[..]) {
            (Few::One(q), [Few::One(k)]) => LazyRuns::One(*q, *k),
            _ => {
                let mut b = RUN_LISTS.with_borrow_mut(Vec::pop).unwrap_or_default();
                b.0.clone_from(&ops.q_runs);
                b.1.clone_from(&ops.kv_runs);
                LazyRuns::Many(b)
            }
        };
        LazyTraps {
            cx,
            runs,
            rows,
            keys: ops.keys,
            made: OnceLock::new(),
        }
    }

    /// The query runs, and the KV runs of all regions in order.
    fn runs(&self) -> (&[Run], Vec<Run>) {
        match &self.runs {
            LazyRuns::One(q, k) => (std::slice::from_ref(q), vec![*k]),
            LazyRuns::Many(b) => (
                &b.0[..],
                b.1.iter().flat_map(|rs| rs.iter()).copied().collect(),
            ),
        }
    }
}

impl std::fmt::Debug for LazyTraps<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (q, kv) = self.runs();
        f.debug_struct("LazyTraps")
            .field("q_runs", &q)
            .field("kv_runs", &kv)
            .field("made", &self.made.get().is_some())
            .finish()
    }
}

impl LazyTraps<'_> {
    pub(super) fn get(&self) -> &[Trap] {
        self.made.get_or_init(|| {
            let gmap = &self.cx.gmap;
            let (mut qs, mut ks) = (Vec::new(), Vec::new());
            let (q_runs, kv) = self.runs();
            for (i, &(r0, r1, g)) in q_runs.iter().enumerate() {
                gmap.pieces(r0, r1, g, &mut |p| qs.push((p, i as u32)));
            }
            for (j, &(r0, r1, g)) in kv.iter().enumerate() {
                gmap.pieces(r0, r1, g, &mut |p| ks.push((p, j as u32)));
            }
            match pairs_traps(self.cx, &qs, &ks, self.rows, self.keys) {
                Ok(t) => t,
                Err(_) => unreachable!("a checked work's pairs are accepted again"),
            }
        })
    }
}

/// The first KV piece of `kp` ending after position `lo`: when every piece before `hint` (the
/// previous range's) ends by `lo`, the first of the next few from `hint` on that ends after it
/// (ranges mostly go up through the keys: a ring step's next piece, a zigzag step's piece two
/// on), else by search.
#[inline]
fn first_kv_piece(kp: &[(Piece, u32)], lo: i64, hint: usize) -> usize {
    let ends_by = |i: usize| kp[i].0.r1 as i64 <= lo;
    let found = if hint < kp.len() && (hint == 0 || ends_by(hint - 1)) {
        (hint..kp.len().min(hint + 4)).find(|&i| !ends_by(i))
    } else {
        None
    };
    let i = found.unwrap_or_else(|| kp.partition_point(|k| (k.0.r1 as i64) <= lo));
    debug_assert_eq!(i, kp.partition_point(|k| (k.0.r1 as i64) <= lo));
    i
}

/// What the pair paths need of a whole layout span (a ring step's query and KV pieces are
/// whole spans, met again every step): `Σ x^q` over its query tokens and `Σ y^k` over its key
/// tokens (global token offsets), its sequence's global offset, and its query tokens against
/// their sequence's mask: the first mask segment that can hold them ([`mask_seg`]) and the keys
/// all of them attend ([`common_keys`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct SpanInfo {
    pub(super) xs: u64,
    pub(super) ys: u64,
    pub(super) off: u64,
    mfirst: usize,
    common: Option<(i64, i64)>,
}

/// [`SpanInfo`] of every span of `gmap` (sequences' masks `masks`, global offsets `seq_off`).
pub(super) fn span_infos(
    gmap: &super::gspace::GMap,
    masks: &[CompiledMask],
    seq_off: &[u64],
) -> Vec<SpanInfo> {
    let h = Hasher::shared();
    gmap.spans()
        .iter()
        .map(|s| {
            let mask = &masks[s.seq as usize];
            let off = seq_off[s.seq as usize];
            let mfirst = mask_seg(mask, s.tok as i64);
            let common = (s.len > 0)
                .then(|| common_keys(mask, mfirst, s.tok, s.tok + s.len))
                .flatten();
            let (a, b) = (off + s.tok as u64, off + s.tok as u64 + s.len as u64);
            SpanInfo {
                xs: h.xs(a, b),
                ys: h.ys(a, b),
                off,
                mfirst,
                common,
            }
        })
        .collect()
}

/// Keys every query of `[q0, q1)` attends, when one mask segment (`mfirst` = `mask_seg(q0)`)
/// with one range covers them (a causal sequence): [`rect_inside_mask`]'s test, hoisted out of
/// the KV pieces' loop (its lines are extreme at the end rows).
#[inline]
fn common_keys(mask: &CompiledMask, mfirst: usize, q0: u32, q1: u32) -> Option<(i64, i64)> {
    match mask.segs.get(mfirst) {
        Some(ms) if ms.ranges.len() == 1 && ms.rows.0 <= q0 as i64 && q1 as i64 <= ms.rows.1 => {
            let r = &ms.ranges[0];
            let (x, y) = (q0 as i64, q1 as i64 - 1);
            Some((
                r.start.at(x).max(r.start.at(y)),
                r.end.at(x).min(r.end.at(y)),
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod head_run_tests {
    use super::{gqa_consistent, head_runs, holds_input, Runs};

    /// The pairs memo finds an entry of equal content wherever it is (its positional guess
    /// first, then by fingerprint), never one that differs, and returns that entry's pairs.
    #[test]
    fn the_pairs_memo_finds_equal_works_in_any_order() {
        use super::{MemoEntry, Operands, PairsMemo};
        use crate::plan::{RangeSeg, RowRanges};
        use crate::validate::pairs::{Hasher, WorkPairs};
        use crate::validate::state::Few;
        let ops = |g: u64| Operands {
            q_runs: Few::One((0, 4, g)),
            kv_runs: Few::One(Few::One((0, 4, g + 100))),
            q_cols: Few::One((0, 2, 0)),
            kv_cols: Few::One((0, 1, 0)),
            keys: 4,
            whole: (None, None),
        };
        let rows = |n: u32| RowRanges {
            segs: vec![RangeSeg {
                row0: 0,
                rows: n,
                ranges: Default::default(),
            }],
        };
        let h = Hasher::shared();
        let pairs = || {
            let one = std::iter::once((0i64, 4i64));
            &*Box::leak(Box::new(WorkPairs::new(
                h,
                Few::One((0, 2)),
                Vec::new(),
                one.clone(),
                one,
            )))
        };
        let (ra, rb, rc, rd) = (rows(4), rows(3), rows(2), rows(1));
        let works = [(ops(0), &ra), (ops(10), &rb), (ops(20), &rc)];
        let mut memo = PairsMemo::default();
        let mut stored = Vec::new();
        for (o, r) in &works {
            let p = pairs();
            memo.push(MemoEntry {
                q_runs: o.q_runs.clone(),
                q_cols: o.q_cols.clone(),
                kv_runs: o.kv_runs.clone(),
                keys: o.keys,
                rows: r,
                pairs: p,
            });
            stored.push(p);
        }
        // Out of order (by fingerprint), then in order after it (by position), then back.
        for i in [1, 2, 0, 1, 1] {
            let (o, r) = &works[i];
            let got = memo.get(o, r).expect("an equal work");
            assert!(std::ptr::eq(got, stored[i]), "work {i}");
        }
        // Same operands, other rows; other operands, same rows: no entry.
        assert!(memo.get(&ops(0), &rd).is_none());
        assert!(memo.get(&ops(5), &ra).is_none());
        let mut other = ops(0);
        other.q_cols = Few::One((0, 2, 1));
        assert!(memo.get(&other, &ra).is_none());
        // An entry pushed after the index was built is found too.
        let p = pairs();
        memo.push(MemoEntry {
            q_runs: ops(30).q_runs.clone(),
            q_cols: ops(30).q_cols.clone(),
            kv_runs: ops(30).kv_runs.clone(),
            keys: ops(30).keys,
            rows: &rd,
            pairs: p,
        });
        assert!(memo.get(&ops(0), &ra).is_some());
        let got = memo.get(&ops(30), &rd).expect("the new entry");
        assert!(std::ptr::eq(got, p));
    }

    #[test]
    fn the_gqa_closed_form_equals_the_check_per_head() {
        for g in 1..6u32 {
            for hq in 0..24u32 {
                for hk in 0..8u32 {
                    for heads in 0..14u32 {
                        let per_head = !(0..heads).any(|j| (hq + j) / g != hk + j / g);
                        assert_eq!(
                            gqa_consistent(hq, hk, heads, g),
                            per_head,
                            "hq {hq} hk {hk} heads {heads} g {g}"
                        );
                    }
                }
            }
        }
    }
    use crate::plan::IoTensor;
    use crate::validate::state::{refine, Rows, Val};

    /// `holds_input` by refining against the expected rows (the general path's check).
    fn by_refinement(rows: &[Rows], t: IoTensor, runs: &Runs, cols: &[(u32, u32, u32)]) -> bool {
        let want = super::ident_rows(t, runs, cols);
        let inputs: [&[Rows]; 2] = [rows, &want];
        let r = refine(&inputs);
        let ok = r.iter().all(|c| {
            matches!(c.val(0), Val::In { t: vt, .. } if *vt == t)
                && c.val(0).ident() == c.val(1).ident()
        });
        ok
    }

    #[test]
    fn a_band_holding_several_runs_holds_the_input() {
        let o = |g: u64, head: u32| Val::In {
            t: IoTensor::O,
            g,
            head,
        };
        let cols = [(0, 4, 0)];
        // Two runs (two devices' rows) in one coalesced band; and split differently.
        let runs: Runs = [(0, 5, 100), (5, 9, 105)].into_iter().collect();
        let one = [Rows::one(0, 9, 4, o(100, 0))];
        let cut = [Rows::one(0, 2, 4, o(100, 0)), Rows::one(2, 9, 4, o(102, 0))];
        let off = [Rows::one(0, 9, 4, o(101, 0))];
        let head = [Rows::one(0, 9, 4, o(100, 1))];
        let short = [Rows::one(0, 8, 4, o(100, 0))];
        let jump: Runs = [(0, 5, 100), (5, 9, 205)].into_iter().collect();
        for (rows, runs, want) in [
            (&one[..], &runs, true),
            (&cut[..], &runs, true),
            (&off[..], &runs, false),
            (&head[..], &runs, false),
            (&one[..], &jump, false),
        ] {
            assert_eq!(holds_input(rows, IoTensor::O, runs, &cols), want);
            assert_eq!(by_refinement(rows, IoTensor::O, runs, &cols), want);
        }
        assert!(!holds_input(&short, IoTensor::O, &runs, &cols));
        assert!(!holds_input(&one, IoTensor::DO, &runs, &cols));
    }

    #[test]
    fn unread_columns_never_merge_with_head_zero() {
        assert_eq!(&head_runs(&[2, 3, 4])[..], [(0, 3, 2)]);
        assert_eq!(
            &head_runs(&[u32::MAX, 0, 1])[..],
            [(0, 1, u32::MAX), (1, 3, 0)]
        );
        assert_eq!(
            &head_runs(&[u32::MAX, u32::MAX])[..],
            [(0, 1, u32::MAX), (1, 2, u32::MAX)]
        );
    }
}
