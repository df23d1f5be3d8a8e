//! The validator: symbolic execution of all devices' programs together, on intervals.
//!
//! Every buffer is a set of rectangles (row range × head range, `state.rs`) holding a symbolic
//! value: which input it holds (Q/KV/dO/O/LSE of a token and head on), or which partial result
//! (O/LSE/dQ/dKV of a token and head on) together with its *coverage*: the works whose attended
//! pairs are folded into it (`pairs.rs`). Tokens are named by their layout row over all devices
//! (`gspace.rs`), so that a device's input, a ring buffer or a partial output over many sequences
//! is one rectangle. A plan is accepted when
//! * every send is matched, groups are ordered ([`crate::interp`]), and buffer bounds hold;
//! * nothing is read before it is written, nor while a transfer into it is in flight, and nothing
//!   is written while a transfer reads or writes it;
//! * every work reads Q and KV inputs with consistent GQA head mapping, every pair it attends
//!   joins a query and a key of one sequence, and every key a row attends lies inside that row's
//!   mask (`work.rs`); a work may hold several sequences (a ring step's), and is checked whole;
//! * at the end each output cell on its owner holds its own token's partial result with exactly
//!   the mask's pairs: equal count and polynomial hash, so no pair is missed or computed twice
//!   (`outputs.rs`; one comparison per tensor over all cells, since they hold disjoint parts of
//!   one pair multiset).
//!
//! Costs scale with the number of rectangles, works and mask segments, not with tokens × heads;
//! the forward and backward programs' equal works are checked once (by content, exactly).
//! [`ValidatedPlan`] is the only way to hand a plan to an executor that demands a checked one.

mod ahead;
mod flow;
mod gspace;
mod instrs;
mod layout;
mod outputs;
mod pairs;
mod saved;
mod state;
mod work;

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use rayon::prelude::*;

use crate::error::{PlanError, PlanErrorKind};
use crate::interp::{drive, program, program_name};
use crate::mask::CompiledMask;
use crate::plan::{Instr, Plan, Program, Region, RowRanges};
use crate::prefetch::prefetch_bytes;

use gspace::{GMap, Piece};
use pairs::PtrHash;
use state::{Buf, RowList};

/// A plan that passed [`validate`]; the only way to make one is [`ValidatedPlan::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedPlan(Plan);

impl ValidatedPlan {
    /// Validates `plan`; returns it wrapped when it is complete and safe.
    pub fn new(plan: Plan) -> Result<Self, PlanError> {
        validate(&plan)?;
        Ok(ValidatedPlan(plan))
    }
    pub fn plan(&self) -> &Plan {
        &self.0
    }
    pub fn into_inner(self) -> Plan {
        self.0
    }
}

impl std::ops::Deref for ValidatedPlan {
    type Target = Plan;
    fn deref(&self) -> &Plan {
        &self.0
    }
}

impl AsRef<Plan> for ValidatedPlan {
    fn as_ref(&self) -> &Plan {
        &self.0
    }
}

/// Validates both programs of every device; `Ok` means the plan is complete and safe.
/// Devices run on rayon's threads when there are several and the plan is large enough to
/// gain ([`Threads::Auto`]); the result is the same either way.
pub fn validate(plan: &Plan) -> Result<(), PlanError> {
    validate_with(plan, Threads::Auto)
}

/// How [`validate_with`] runs devices. Every choice gives the same result (the same error for
/// a broken plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// One device after the other, on the calling thread.
    Sequential,
    /// Per local phase (the instructions between two communication groups), all devices in
    /// parallel on rayon's current pool (even of one thread), then the group's transfers in
    /// order: the error is the first failing device's, as in the sequential order.
    Phases,
    /// Every device as far as its received data allows, on rayon's current pool, with no
    /// barrier per group (`flow.rs`): it decides only that a plan is valid; a plan it refuses
    /// is validated again sequentially, which names the error.
    Flow,
    /// Every device as far as its received data allows, one after the other on the calling
    /// thread, with no barrier per group (`ahead.rs`): a device's instructions run back to
    /// back as the planner wrote them, its data kept in cache. It decides only that a plan is
    /// valid: a plan it refuses is validated again sequentially, which names the error.
    Ahead,
    /// [`Threads::Ahead`] on rayon's current pool: the devices cut into one block of
    /// consecutive devices per thread, each block run ahead on its own thread, sends between
    /// blocks through locked inboxes (`validate/ahead.rs`). It decides only that a plan is
    /// valid: a plan it refuses is validated again sequentially, which names the error.
    AheadPar,
    /// When the caller is not itself one of rayon's worker threads: [`Threads::AheadPar`] for
    /// plans of at least [`AHEAD_PAR_MIN_DEVICES`] devices when rayon's pool has at least
    /// [`AHEAD_PAR_MIN_THREADS`] threads (blocks of at least [`AHEAD_PAR_MIN_BLOCK`] devices);
    /// else [`Threads::Phases`] when the pool has several threads, the plan several devices
    /// and its local phases average at least [`PHASES_MIN_PHASE_INSTRS`] instructions (over
    /// all devices); else [`Threads::Ahead`] for plans of at least [`AHEAD_MIN_DEVICES`]
    /// devices, sequential for smaller ones (`auto_threads`, [`one_thread_choice`]).
    /// [`Threads::Flow`] is never chosen by itself: on a 16-core host run-ahead in blocks beat
    /// it on every plan measured (`bench/results/validator-s22/`).
    Auto,
}

/// Under [`Threads::Auto`], plans whose local phases hold fewer instructions on average (over
/// all devices) validate sequentially: handing a phase to rayon's threads and joining them
/// costs several microseconds, more than a short phase (131K-token plans on 4x8 have phases of
/// 80–100 instructions for ring, zigzag and usp, ≈ 15 µs of work, and 340 for dcp, and lost on
/// two threads; 1M-token plans on 32x8 have 640–1 650 and gained 1.25–1.7× on two threads).
pub const PHASES_MIN_PHASE_INSTRS: usize = 512;

/// Local phases' average size in instructions (all devices, both programs): instructions over
/// phases, a program's phases being one more than its devices' most communication groups.
fn phase_instrs(plan: &Plan) -> usize {
    let mut instrs = 0;
    let mut phases = 0;
    for backward in [false, true] {
        let mut groups = 0;
        for d in 0..plan.devices.len() {
            let p = program(plan, d, backward);
            instrs += p.instrs.len();
            let comms = p
                .instrs
                .iter()
                .filter(|i| matches!(i, crate::plan::Instr::Comm { .. }))
                .count();
            groups = groups.max(comms);
        }
        phases += groups + 1;
    }
    instrs / phases
}

/// What [`Threads::Auto`] runs, when the caller is not on one of rayon's worker threads:
/// [`Threads::AheadPar`] for a plan of `many_devices` ([`AHEAD_PAR_MIN_DEVICES`]) when rayon's
/// pool has at least [`AHEAD_PAR_MIN_THREADS`] threads, else [`Threads::Phases`] for a plan
/// `worth_phases` (several devices, long local phases) when the pool has several threads; else
/// [`Threads::Sequential`]. On a worker thread the caller already runs in parallel (e.g. `dcp
/// demo` plans and validates its plans in a `par_iter`), and a nested join lets that thread
/// steal an unrelated job of the outer loop while it waits: a 1 ms validation then took 13 ms,
/// the time of a planning job it ran meanwhile. The two rayon queries are closures so that a
/// small plan never starts the pool.
fn auto_threads(
    worth_phases: bool,
    many_devices: bool,
    on_worker: impl FnOnce() -> bool,
    pool_threads: impl FnOnce() -> usize,
) -> Threads {
    if !(worth_phases || many_devices) || on_worker() {
        return Threads::Sequential;
    }
    match pool_threads() {
        n if many_devices && n >= AHEAD_PAR_MIN_THREADS => Threads::AheadPar,
        n if worth_phases && n > 1 => Threads::Phases,
        _ => Threads::Sequential,
    }
}

/// The devices from which [`Threads::Auto`] runs them ahead in blocks on rayon's threads
/// ([`Threads::AheadPar`]) when the pool has at least [`AHEAD_PAR_MIN_THREADS`] threads, with
/// blocks of at least [`AHEAD_PAR_MIN_BLOCK`] devices. Measured on a 16-core Xeon (validation ÷
/// planning at 131K tokens, `bench/results/validator-s22/`): on 64 to 256 devices ring
/// 0.67–0.88, zigzag 0.47–0.75, usp 0.28–0.45 with 8 or 16 threads, against 1.1–1.6 run ahead on
/// one thread; at 1M on 256 devices 0.09–0.16 against 0.51–0.60 (and Phases' 0.17–0.62). On 32
/// devices (validations of 1–5 ms) the threads cost more than they share out: ring 1.2–1.9.
pub const AHEAD_PAR_MIN_DEVICES: usize = 64;
/// The threads rayon's pool needs before [`Threads::Auto`] takes [`Threads::AheadPar`]: on two
/// (a 2-core machine, `bench/results/validator.md`, val16's `Ahead2`) the locked inboxes and
/// shared arenas cost about what the second thread gives.
pub const AHEAD_PAR_MIN_THREADS: usize = 4;
/// The fewest devices per block (per thread) when [`Threads::Auto`] runs ahead in blocks.
pub const AHEAD_PAR_MIN_BLOCK: usize = 8;

/// The devices from which [`Threads::Auto`] runs them ahead rather than in phases when it runs
/// them on one thread. In phases, all devices' data pass through the cache between two turns
/// of one device; the more devices, the less of it stays. Measured (validation ÷ planning,
/// `bench/results/validator.md`, val13 and val14): on 16 devices running ahead costs more than
/// it gains (131K tokens: ring 0.84 → 1.04, zigzag 0.83 → 1.01); on 32, since val14's cheaper
/// inboxes, it gains for ring and zigzag at every size (131K ring 1.06 → 1.02, zigzag 1.25 →
/// 1.01; 1M ring 0.68 → 0.59, zigzag 0.70 → 0.58) and costs usp 0–10 % (1M 0.63 → 0.69, still
/// below planning); from 64 on it gains for ring, zigzag and usp (256 at 400K: ring 1.08 →
/// 0.94 in val13, 0.95 → 0.88 in val14).
pub const AHEAD_MIN_DEVICES: usize = 32;

/// What [`Threads::Auto`] runs when it runs `plan`'s devices on one thread (rayon's pool has
/// one thread, the caller is one of its workers, or the plan's phases are short):
/// [`Threads::Ahead`] from [`AHEAD_MIN_DEVICES`] devices on, else [`Threads::Sequential`].
/// Benchmarks that time validation on one thread run this, as [`validate`] would there.
pub fn one_thread_choice(plan: &Plan) -> Threads {
    if plan.devices.len() >= AHEAD_MIN_DEVICES {
        Threads::Ahead
    } else {
        Threads::Sequential
    }
}

/// What [`Threads::Auto`] runs for `plan` when [`validate`] is called from this thread (not
/// one of rayon's workers): [`Threads::AheadPar`] for many devices on a pool of
/// [`AHEAD_PAR_MIN_THREADS`] or more, [`Threads::Phases`] for long phases on a pool of two or
/// more, else [`one_thread_choice`]. Benchmarks call it to say which order they timed.
pub fn auto_choice(plan: &Plan) -> Threads {
    // rayon last: asking it for its thread count starts its global pool, and a process with a
    // second thread pays glibc's malloc locking everywhere (single-threaded planning after it:
    // up to 1.6x slower), which a small plan must not cause.
    match auto_threads(
        plan.devices.len() > 1 && phase_instrs(plan) >= PHASES_MIN_PHASE_INSTRS,
        plan.devices.len() >= AHEAD_PAR_MIN_DEVICES,
        || rayon::current_thread_index().is_some(),
        rayon::current_num_threads,
    ) {
        Threads::Sequential => one_thread_choice(plan),
        t => t,
    }
}

/// Instructions of both programs of all devices.
fn plan_instrs(plan: &Plan) -> usize {
    (plan.devices.iter())
        .map(|d| d.forward.instrs.len() + d.backward.instrs.len())
        .sum()
}

/// [`validate`] with a choice of threads.
pub fn validate_with(plan: &Plan, threads: Threads) -> Result<(), PlanError> {
    validate_paths(plan, threads, Paths::Fast)
}

/// Which code paths the validator takes. Both decide every plan alike (the same error for a
/// broken one): [`Paths::Fast`] takes exact shortcuts for common shapes (a ring step's
/// constant-range works), [`Paths::General`] never does. For tests that compare them.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paths {
    Fast,
    General,
}

/// [`validate_with`] with a choice of [`Paths`] (for tests).
#[doc(hidden)]
pub fn validate_paths(plan: &Plan, threads: Threads, paths: Paths) -> Result<(), PlanError> {
    plan.batch
        .validate()
        .map_err(|e| PlanError::new(0, "plan", None, e.into()))?;
    if plan.devices.is_empty() {
        return Err(PlanError::new(0, "plan", None, PlanErrorKind::NoDevices));
    }
    layout::check_layout(plan)?;
    let (threads, auto) = match threads {
        // (After the cheap checks: asking rayon starts its pool.) One thread: many devices run
        // ahead ([`Threads::Ahead`]; the sequential order then only names the error of a plan
        // that path refuses).
        Threads::Auto => (auto_choice(plan), true),
        t => (t, false),
    };
    let mut cx = Ctx::new(plan);
    cx.fast = paths == Paths::Fast;
    if threads == Threads::Flow && validate_flow(&cx) {
        return Ok(());
    }
    if threads == Threads::Ahead && validate_ahead(&cx) {
        return Ok(());
    }
    // Blocks of at least AHEAD_PAR_MIN_BLOCK devices when Auto chose it; every thread of the
    // pool when asked for.
    let block = if auto { AHEAD_PAR_MIN_BLOCK } else { 1 };
    if threads == Threads::AheadPar && validate_ahead_par(&cx, block) {
        return Ok(());
    }
    // Sequentially or by phases; after a flow or run-ahead run that refused the plan,
    // sequentially, to name its error.
    let phases = threads == Threads::Phases;
    both_programs(&cx, phases, |v, backward| {
        drive(plan, backward, v).map(|()| true)
    })?;
    Ok(())
}

/// Runs the forward, then the backward program through `run` on fresh validators that share
/// the devices' caches and work arenas (`concurrent`: devices may run on several threads),
/// the backward's saved buffers starting from the forward's final state; each program ends
/// with [`Validator::finish`]. `Ok(false)` as soon as `run` refuses a program.
fn both_programs(
    cx: &Ctx,
    concurrent: bool,
    mut run: impl FnMut(&mut Validator<'_>, bool) -> Result<bool, PlanError>,
) -> Result<bool, PlanError> {
    let plan = cx.plan;
    let mut caches: Vec<DevCache> = (0..plan.devices.len())
        .map(|d| DevCache::new(plan, d))
        .collect();
    let works: Vec<pairs::WorkArena> = (0..plan.devices.len())
        .map(|_| Default::default())
        .collect();
    // The forward's final buffer states: the backward's saved buffers start from them.
    let mut fwd_end = None;
    for backward in [false, true] {
        let mut v = Validator::new(
            cx,
            &works,
            backward,
            concurrent,
            concurrent,
            caches,
            fwd_end.as_ref(),
        )?;
        if !run(&mut v, backward)? {
            return Ok(false);
        }
        v.finish()?;
        caches = v.caches;
        fwd_end = Some(v.devs.into_iter().map(|d| d.bufs).collect());
    }
    Ok(true)
}

/// Validates both programs with devices running concurrently on rayon's current number of
/// threads ([`flow`]); `true` when the plan is valid, `false` when something was refused (the
/// sequential validator then finds the error it meets first).
fn validate_flow(cx: &Ctx) -> bool {
    let threads = rayon::current_num_threads();
    both_programs(cx, true, |v, backward| {
        Ok(flow::Skeleton::of(cx.plan, backward).is_some_and(|sk| v.run_flow(&sk, threads)))
    })
    .unwrap_or(false)
}

/// Validates both programs with devices run ahead one after the other ([`ahead`]); `true`
/// when the plan is valid, `false` when something was refused (the sequential validator then
/// finds the error it meets first).
fn validate_ahead(cx: &Ctx) -> bool {
    both_programs(cx, false, |v, _| Ok(v.run_ahead())).unwrap_or(false)
}

/// [`validate_ahead`] with the devices in blocks on rayon's current number of threads, blocks
/// of at least `block` devices ([`Threads::AheadPar`]).
fn validate_ahead_par(cx: &Ctx, block: usize) -> bool {
    let threads = rayon::current_num_threads().min((cx.plan.devices.len() / block).max(1));
    both_programs(cx, true, |v, _| Ok(v.run_ahead_par(threads))).unwrap_or(false)
}

/// Pieces of runs of global rows by `(first row, length)`.
type RunPieces = HashMap<(u64, u32), Arc<Vec<(Piece, u32)>>, BuildHasherDefault<PtrHash>>;

/// What is derived once from the batch and the layout, read by every device's validation.
struct Ctx<'a> {
    plan: &'a Plan,
    seq_off: Vec<u64>,
    masks: Vec<CompiledMask>,
    gmap: GMap,
    /// The pieces of each device's whole run of global rows (a ring plan's Q and its KV
    /// buffers as they travel), cut once for all devices ([`Ctx::whole_run`]).
    whole_runs: Vec<Vec<(Piece, u32)>>,
    /// Whether the exact shortcuts for common shapes are taken ([`Paths`]).
    fast: bool,
    /// Per layout span, its sums and mask data ([`work::SpanInfo`]): a ring work's pieces are
    /// whole spans, met again every step.
    span: Vec<work::SpanInfo>,
    /// Whether the sequential validator prefetches ([`PREFETCH_MIN_INSTRS`]).
    prefetch: bool,
}

impl<'a> Ctx<'a> {
    /// The pieces of rows `[0, len)` holding global rows from `g` on, each tagged 0, when they
    /// are a device's whole run (`len > 0`).
    fn whole_run(&self, g: u64, len: u32) -> Option<&[(Piece, u32)]> {
        let d = self.gmap.device_run(g, len)?;
        Some(&self.whole_runs[d])
    }

    fn new(plan: &'a Plan) -> Self {
        let gmap = GMap::new(plan);
        let whole_runs = (0..plan.devices.len())
            .map(|d| {
                let (g, end) = (gmap.base(d as u32), gmap.base(d as u32 + 1));
                let mut v = Vec::new();
                gmap.pieces(0, (end - g) as u32, g, &mut |p| v.push((p, 0)));
                v
            })
            .collect();
        let masks: Vec<CompiledMask> = plan
            .batch
            .seqs
            .iter()
            .map(|s| s.mask.compile(s.len))
            .collect();
        let seq_off = plan.batch.seq_offsets();
        let span = work::span_infos(&gmap, &masks, &seq_off);
        let instrs = plan_instrs(plan);
        Ctx {
            // Debug builds prefetch for every plan, so that the tests run the hints' code.
            prefetch: cfg!(debug_assertions) || instrs >= PREFETCH_MIN_INSTRS,
            plan,
            seq_off,
            masks,
            gmap,
            whole_runs,
            fast: true,
            span,
        }
    }
}

/// One device's caches and scratch space, kept from its forward program's validation to its
/// backward's (each device's are its own, so devices run in parallel without sharing them).
#[derive(Default)]
struct DevCache<'a> {
    /// Checked works' pairs by content ([`work::PairsMemo`]): the forward and backward
    /// programs of a device mostly hold the same works.
    pairs_memo: RefCell<work::PairsMemo<'a>>,
    /// The pieces of runs of global rows `[g, g + len)` by `(g, len)`, from row 0 on: a ring
    /// plan's works read the same device-long runs again and again.
    run_pieces: RefCell<RunPieces>,
    /// A work's query and KV pieces, kept between works (no allocation per work).
    pieces: RefCell<Pieces>,
    /// Sums of coverage nodes during one [`pairs::Arena::sum`].
    memo: pairs::Memo,
    /// Works that took a neighbour's trapezoids, and neighbours' works compared in vain
    /// ([`Local::same_as_prev`]): when devices run ahead, a device whose neighbours' works
    /// never matched stops comparing (a ring's never do, and there a neighbour's entries are
    /// long out of cache, one miss per work).
    near_hits: std::cell::Cell<u32>,
    near_misses: std::cell::Cell<u32>,
}

/// Compared works of neighbours that never matched after which a device running ahead stops
/// comparing ([`DevCache::near_misses`]).
const NEAR_GIVE_UP: u32 = 16;

impl DevCache<'_> {
    /// Caches for device `dev`, the pairs memo sized for its forward works (about one entry
    /// per work).
    fn new(plan: &Plan, dev: usize) -> Self {
        let works = plan.devices[dev]
            .forward
            .instrs
            .iter()
            .map(|i| match i {
                crate::plan::Instr::Attn { works, .. } => works.len(),
                _ => 0,
            })
            .sum();
        DevCache {
            pairs_memo: RefCell::new(work::PairsMemo::with_capacity(works)),
            ..Default::default()
        }
    }

    /// The pieces of rows `[0, len)` holding global rows from `g` on (see [`GMap::pieces`]),
    /// each tagged 0; cut once per `(g, len)` ([`DevCache::run_pieces`]; a device's whole run
    /// is [`Ctx::whole_run`]).
    fn run_pieces_of(&self, cx: &Ctx, g: u64, len: u32) -> Arc<Vec<(Piece, u32)>> {
        let gmap = &cx.gmap;
        self.run_pieces
            .borrow_mut()
            .entry((g, len))
            .or_insert_with(|| {
                let mut v = Vec::new();
                gmap.pieces(0, len, g, &mut |p| v.push((p, 0)));
                Arc::new(v)
            })
            .clone()
    }

    /// Appends the pieces of rows `[r0, r1)` holding global rows from `g` on, each with `tag`.
    fn pieces(&self, cx: &Ctx, r0: u32, r1: u32, g: u64, tag: u32, out: &mut Vec<(Piece, u32)>) {
        let cached;
        let ps = match cx.whole_run(g, r1 - r0) {
            Some(ps) => ps,
            None => {
                cached = self.run_pieces_of(cx, g, r1 - r0);
                &cached[..]
            }
        };
        out.extend(ps.iter().map(|(p, _)| {
            let p = Piece {
                r0: p.r0 + r0,
                r1: p.r1 + r0,
                ..*p
            };
            (p, tag)
        }));
    }
}

/// A work's query pieces and KV pieces, each with the index of its run (KV runs of all regions
/// in order).
type Pieces = (Vec<(Piece, u32)>, Vec<(Piece, u32)>);

/// A region of a group in flight on a device: the group's tag, and whether the device sends
/// it (or receives into it).
#[derive(Debug, Clone, Copy)]
struct InFlight {
    tag: u32,
    send: bool,
    r: Region,
}

struct DevState {
    bufs: Vec<Buf>,
    /// Tags of the groups in flight, oldest first.
    pending: Vec<u32>,
    /// Their regions, group after group, each group's in the order exchanged; the last `open`
    /// are those of the group being exchanged now (tagged when it ends).
    inflight: Vec<InFlight>,
    open: usize,
    /// Buffers the pending groups receive into (`recv_bufs`) and send from (`send_bufs`), one
    /// bit per buffer ([`buf_bit`]): a region of a buffer in neither set meets no pending
    /// transfer, which skips the region-by-region test for most reads and writes.
    recv_bufs: u64,
    send_bufs: u64,
    /// The index of the comm instruction the device stopped at (its local instructions run
    /// up to one: [`Local::run`]), for the errors of the group it is in.
    comm_at: usize,
}

/// All devices' validation of one program; local instructions run per device ([`Local`]),
/// in parallel when `parallel`.
struct Validator<'a> {
    cx: &'a Ctx<'a>,
    plan: &'a Plan,
    backward: bool,
    parallel: bool,
    devs: Vec<DevState>,
    /// Each device's coverage nodes.
    covs: pairs::Covs<'a>,
    /// Each device's checked works' pairs (both programs').
    works: &'a [pairs::WorkArena<'a>],
    caches: Vec<DevCache<'a>>,
}

/// One device's validation during a local phase: its state, its coverage arena and its caches,
/// and read access to what every device shares.
struct Local<'v, 'a> {
    cx: &'a Ctx<'a>,
    plan: &'a Plan,
    backward: bool,
    dev: u32,
    st: &'v mut DevState,
    covs: pairs::Arena<'v, 'a>,
    cache: &'v mut DevCache<'a>,
    /// This device's checked works' pairs, where they stay for the whole validation.
    works: &'a pairs::WorkArena<'a>,
    /// The previous device's checked works in the order checked (its pairs memo's entries),
    /// when devices run one after the other (its works of this phase are checked already): a
    /// work equal to its work of the same position but for the query heads (the devices of a
    /// head group in usp) takes its trapezoids ([`Local::checked_pairs`]). `None` while devices
    /// run concurrently.
    prev: Option<&'v [work::MemoEntry<'a>]>,
    /// The next device's checked works likewise, when devices run ahead one after the other
    /// ([`Threads::Ahead`]): a device may have run further than the one before it, and the
    /// one before it then takes the trapezoids of the one after it. `None` otherwise (devices
    /// in phases: the next device has not reached this work yet).
    next: Option<&'v [work::MemoEntry<'a>]>,
}

impl<'v, 'a> Local<'v, 'a> {
    /// The view of the device whose cache is `caches[i]` (its state `st`, its arena `covs`,
    /// its works), with the checked works of its neighbours in `caches` (the previous and the
    /// next device) where `near` asks for them.
    #[allow(clippy::too_many_arguments)] // (the parts of a view, each borrowed on its own)
    fn near(
        cx: &'a Ctx<'a>,
        backward: bool,
        covs: pairs::Arena<'v, 'a>,
        st: &'v mut DevState,
        caches: &'v mut [DevCache<'a>],
        i: usize,
        works: &'a pairs::WorkArena<'a>,
        (with_prev, with_next): (bool, bool),
    ) -> Self {
        let (before, from) = caches.split_at_mut(i);
        let (cache, after) = from.split_first_mut().expect("device in range");
        // Running ahead: a device whose neighbours' works never matched compares no more.
        let given_up =
            with_next && cache.near_hits.get() == 0 && cache.near_misses.get() >= NEAR_GIVE_UP;
        let (with_prev, with_next) = (with_prev && !given_up, with_next && !given_up);
        Local {
            cx,
            plan: cx.plan,
            backward,
            dev: covs.dev,
            st,
            covs,
            cache,
            works,
            prev: if with_prev {
                before.last_mut().map(|c| c.pairs_memo.get_mut().entries())
            } else {
                None
            },
            next: if with_next {
                after.first_mut().map(|c| c.pairs_memo.get_mut().entries())
            } else {
                None
            },
        }
    }

    /// Device `dev`'s view while devices run concurrently: its coverage nodes go into the
    /// shared per-device arenas `all`.
    fn shared(
        cx: &'a Ctx<'a>,
        backward: bool,
        dev: u32,
        st: &'v mut DevState,
        all: &'v [pairs::NodeArena<'a>],
        cache: &'v mut DevCache<'a>,
        works: &'a pairs::WorkArena<'a>,
    ) -> Self {
        Local {
            cx,
            plan: cx.plan,
            backward,
            dev,
            st,
            covs: pairs::Arena {
                nodes: pairs::Nodes::Shared(all),
                dev,
            },
            cache,
            works,
            prev: None,
            next: None,
        }
    }
}

/// The operand an error is about.
#[derive(Debug, Clone, Copy)]
enum Item {
    Fill,
    CopySrc,
    CopyDst,
    Send {
        to: u32,
    },
    Recv {
        from: u32,
    },
    /// Work `0`, operand `1` (`q`, `KV 2`, `O`, ...), region index `2` for KV/dKV.
    Work(usize, &'static str, Option<usize>),
    MergeOut,
    MergeIn(usize),
    SumOut,
    SumIn(usize),
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Item::Fill => write!(f, "fill"),
            Item::CopySrc => write!(f, "copy source"),
            Item::CopyDst => write!(f, "copy destination"),
            Item::Send { to } => write!(f, "send to device {to}"),
            Item::Recv { from } => write!(f, "receive from device {from}"),
            Item::Work(w, what, None) => write!(f, "work {w} {what}"),
            Item::Work(w, what, Some(i)) => write!(f, "work {w} {what} {i}"),
            Item::MergeOut => write!(f, "merge output"),
            Item::MergeIn(i) => write!(f, "merge input {i}"),
            Item::SumOut => write!(f, "sum output"),
            Item::SumIn(i) => write!(f, "sum input {i}"),
        }
    }
}

/// The bit of buffer `buf` in [`DevState::recv_bufs`] and [`DevState::send_bufs`]; buffers from
/// 63 on share the last bit (a superset: the test stays exact, only slower).
#[inline]
fn buf_bit(buf: u32) -> u64 {
    1u64 << buf.min(63)
}

impl DevState {
    /// Recomputes the pending groups' buffer bits (after a group is added or waited for).
    fn update_busy(&mut self) {
        let (mut recv, mut send) = (0u64, 0u64);
        for e in &self.inflight[..self.inflight.len() - self.open] {
            if e.send {
                send |= buf_bit(e.r.buf);
            } else {
                recv |= buf_bit(e.r.buf);
            }
        }
        (self.recv_bufs, self.send_bufs) = (recv, send);
    }

    /// A region of the group being exchanged.
    #[inline]
    fn exchange(&mut self, send: bool, r: Region) {
        self.inflight.push(InFlight { tag: 0, send, r });
        self.open += 1;
    }
}

fn show(r: &Region) -> String {
    format!(
        "buffer {}[tokens {}..{}, heads {}..{}]",
        r.buf,
        r.tok,
        r.tok + r.len,
        r.head,
        r.head + r.heads
    )
}

impl<'a> Validator<'a> {
    /// Device `dev`'s view ([`Local`]), without the previous device's works.
    fn at(&mut self, dev: u32) -> Local<'_, 'a> {
        self.local(dev, false)
    }

    /// Device `dev`'s view with the previous device's checked works ([`Local::prev`]), for its
    /// local instructions when devices run one after the other.
    fn at_after_prev(&mut self, dev: u32) -> Local<'_, 'a> {
        self.local(dev, true)
    }

    /// Device `dev`'s view with the previous and the next devices' checked works
    /// ([`Local::prev`], [`Local::next`]), when devices run ahead one after the other.
    fn at_between(&mut self, dev: u32) -> Local<'_, 'a> {
        self.local_near(dev, true, true)
    }

    fn local(&mut self, dev: u32, with_prev: bool) -> Local<'_, 'a> {
        self.local_near(dev, with_prev, false)
    }

    fn local_near(&mut self, dev: u32, with_prev: bool, with_next: bool) -> Local<'_, 'a> {
        let d = dev as usize;
        let covs = self.covs.arena(dev);
        Local::near(
            self.cx,
            self.backward,
            covs,
            &mut self.devs[d],
            &mut self.caches,
            d,
            &self.works[d],
            (with_prev, with_next),
        )
    }

    /// `f` on every device's view and its `xs` entry, devices in order; with `parallel`, on
    /// rayon's threads. The error is the first failing device's (in device order), as a
    /// sequential run reports it: `f` touches only its device's state, arena and caches (and
    /// reads what all share), so devices do not affect each other.
    fn for_devices<X: Send, T: Send>(
        &mut self,
        xs: &mut [X],
        f: impl Fn(&mut Local<'_, 'a>, &mut X) -> Result<T, PlanError> + Sync,
    ) -> Result<Vec<T>, PlanError> {
        if !self.parallel {
            return (0..xs.len())
                .map(|d| f(&mut self.at_after_prev(d as u32), &mut xs[d]))
                .collect();
        }
        let (cx, backward, works) = (self.cx, self.backward, self.works);
        let all = self.covs.shared();
        let res: Vec<Result<T, PlanError>> = self
            .devs
            .par_iter_mut()
            .zip(self.caches.par_iter_mut())
            .zip(xs.par_iter_mut())
            .enumerate()
            .map(|(d, ((st, cache), x))| {
                let dev = d as u32;
                let mut l = Local::shared(cx, backward, dev, st, all, cache, &works[d]);
                f(&mut l, x)
            })
            .collect();
        res.into_iter().collect()
    }

    /// Every device's local instructions up to its next communication instruction (or its
    /// end), each device's in order ([`Validator::for_devices`]).
    fn run_locals(&mut self, progs: &[&Program], pc: &mut [usize]) -> Result<(), PlanError> {
        if !self.parallel {
            // One device after the other; a device at its next group (or its end) already has
            // nothing to run here, and needs no view.
            if self.cx.prefetch {
                for d in 0..pc.len() {
                    self.prefetch_ahead(progs, pc, d);
                    self.run_device(progs[d], d, &mut pc[d])?;
                }
            } else {
                for (d, pc) in pc.iter_mut().enumerate() {
                    self.run_device(progs[d], d, pc)?;
                }
            }
            return Ok(());
        }
        self.for_devices(pc, |l, pc| l.run(progs[l.dev as usize], pc))
            .map(|_| ())
    }
}

/// Devices ahead whose data [`Validator::prefetch_ahead`] fetches: one stage per device's turn.
const PREFETCH_STAGES: usize = 3;

/// The plan size (instructions of both programs of all devices) from which the sequential
/// validator prefetches ([`Validator::prefetch_ahead`]). Smaller plans stay in cache from
/// planning to validation, and there the prefetching was only its own cost (+3 to +4.5 % at
/// 131K tokens on 32 devices, 9 K instructions); 1M tokens on 256 devices is 490–590 K.
const PREFETCH_MIN_INSTRS: usize = 1 << 16;

impl Validator<'_> {
    /// Device `d`'s turn in a sequential phase ([`Validator::run_locals`]).
    #[inline(always)]
    fn run_device(&mut self, prog: &Program, d: usize, pc: &mut usize) -> Result<(), PlanError> {
        match prog.instrs.get(*pc) {
            None => {}
            Some(Instr::Comm { .. }) => self.devs[d].comm_at = *pc,
            Some(_) => self.at_after_prev(d as u32).run(prog, pc)?,
        }
        Ok(())
    }

    /// Before device `d`'s turn in a sequential phase: prefetches what the next devices' turns
    /// read first, a stage per device ahead (each stage's loads hit what the stage before, a
    /// device's turn earlier, fetched): 3 ahead their next instructions and memo entry (a
    /// forward: the cell of the work arena's next slot), 2 ahead their first attention works
    /// and the entry's row header and pairs (a forward: that slot and where the next memo
    /// entry goes), 1 ahead those works' row segments and KV regions and the entry's segments. A device's turn is one work or a few
    /// (≈ 1.5 µs at 1M tokens on 256 devices): the plan (53 MB for ring there) and the state
    /// do not stay in cache from one turn of a device to its next, and each of these reads was
    /// a miss (a fifth of the validation). Hints only: nothing is read for the validation here.
    fn prefetch_ahead(&self, progs: &[&Program], pc: &[usize], d: usize) {
        for ahead in 1..=PREFETCH_STAGES {
            let e = d + ahead;
            let (Some(prog), Some(&at)) = (progs.get(e), pc.get(e)) else {
                break;
            };
            let stage = PREFETCH_STAGES - ahead;
            if self.backward {
                self.caches[e].pairs_memo.borrow().prefetch_next(stage);
            } else if stage < 2 {
                // Where the next forward work's pairs and memo entry go.
                self.works[e].prefetch_next(stage);
                if stage == 1 {
                    self.caches[e].pairs_memo.borrow().prefetch_push();
                }
            }
            let next = prog.instrs.get(at..).unwrap_or(&[]);
            if stage == 0 {
                let n = next.len().min(3);
                prefetch_bytes(next.as_ptr(), n * std::mem::size_of::<Instr>());
                continue;
            }
            // The next attention instruction in three (a device waits at its communication,
            // if any, when its turn comes: a ring step is a communication, then one work).
            for ins in next.iter().take(3) {
                match ins {
                    Instr::Attn { works, .. } => {
                        prefetch_works(works, stage, |w| (&w.rows, &w.kv[..], &[][..]));
                        break;
                    }
                    Instr::AttnBwd { works, .. } => {
                        prefetch_works(works, stage, |w| (&w.rows, &w.kv[..], &w.dkv[..]));
                        break;
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Stage 1 of [`Validator::prefetch_ahead`] for an attention instruction's first works: the
/// works; stage 2: their rows' segments and KV (and dKV) regions.
fn prefetch_works<W>(
    works: &[W],
    stage: usize,
    parts: impl Fn(&W) -> (&RowRanges, &[Region], &[Region]),
) {
    let works = &works[..works.len().min(2)];
    if stage == 1 {
        prefetch_bytes(works.as_ptr(), std::mem::size_of_val(works));
        return;
    }
    for w in works {
        let (rows, kv, dkv) = parts(w);
        prefetch_segs(&rows.segs);
        prefetch_bytes(kv.as_ptr(), std::mem::size_of_val(kv));
        prefetch_bytes(dkv.as_ptr(), std::mem::size_of_val(dkv));
    }
}

/// Prefetches a work's row segments, up to 96 (a ring or zigzag work's are 69 at 1M tokens,
/// 3.3 KB; a diagonal work's up to 276).
fn prefetch_segs(segs: &[crate::plan::RangeSeg]) {
    let segs = &segs[..segs.len().min(96)];
    prefetch_bytes(segs.as_ptr(), std::mem::size_of_val(segs));
}

impl<'v, 'a> Local<'v, 'a> {
    /// Runs this device's local instructions from `*pc` up to its next communication
    /// instruction or its end.
    fn run(&mut self, prog: &Program, pc: &mut usize) -> Result<(), PlanError> {
        while let Some(ins) = prog.instrs.get(*pc) {
            if matches!(ins, crate::plan::Instr::Comm { .. }) {
                self.st.comm_at = *pc;
                break;
            }
            self.local(self.dev, *pc, ins)?;
            *pc += 1;
        }
        Ok(())
    }

    fn prog(&self, dev: u32) -> &'a Program {
        debug_assert_eq!(dev, self.dev, "a device's view used for another device");
        program(self.plan, dev as usize, self.backward)
    }

    #[cold]
    #[inline(never)]
    fn err(&self, dev: u32, idx: usize, kind: PlanErrorKind) -> PlanError {
        PlanError::new(dev, program_name(self.backward), Some(idx), kind)
    }

    #[cold]
    #[inline(never)]
    fn err_end(&self, dev: u32, kind: PlanErrorKind) -> PlanError {
        PlanError::new(dev, program_name(self.backward), None, kind)
    }

    /// Bounds of `r`; returns the buffer's width.
    #[inline]
    fn check_region(&self, dev: u32, idx: usize, r: &Region, item: Item) -> Result<u32, PlanError> {
        match self.prog(dev).buffers.get(r.buf as usize) {
            Some(b)
                if r.tok as u64 + r.len as u64 <= b.tokens as u64
                    && r.head as u64 + r.heads as u64 <= b.heads as u64 =>
            {
                Ok(b.width)
            }
            _ => Err(self.region_err(dev, idx, r, item)),
        }
    }

    /// The error of a region [`Local::check_region`] refuses (kept out of its inlined
    /// path).
    #[cold]
    #[inline(never)]
    fn region_err(&self, dev: u32, idx: usize, r: &Region, item: Item) -> PlanError {
        let Some(b) = self.prog(dev).buffers.get(r.buf as usize) else {
            return self.err(
                dev,
                idx,
                PlanErrorKind::UndeclaredBuffer {
                    item: item.to_string(),
                    buf: r.buf,
                },
            );
        };
        self.err(
            dev,
            idx,
            PlanErrorKind::OutOfBounds {
                item: item.to_string(),
                region: show(r),
                name: b.name.clone(),
                tokens: b.tokens,
                heads: b.heads,
            },
        )
    }

    #[cold]
    #[inline(never)]
    fn shape_err(&self, dev: u32, idx: usize, item: Item, need: impl Into<String>) -> PlanError {
        self.err(
            dev,
            idx,
            PlanErrorKind::Shape {
                item: item.to_string(),
                need: need.into(),
            },
        )
    }

    /// A compute instruction may read `r` only when no in-flight transfer writes it.
    fn check_read(&self, dev: u32, idx: usize, r: &Region, item: Item) -> Result<(), PlanError> {
        self.hazard(dev, idx, r, item, false)
    }

    /// ... and write it only when no in-flight transfer reads or writes it.
    fn check_write(&self, dev: u32, idx: usize, r: &Region, item: Item) -> Result<(), PlanError> {
        self.hazard(dev, idx, r, item, true)
    }

    #[inline]
    fn hazard(
        &self,
        dev: u32,
        idx: usize,
        r: &Region,
        item: Item,
        write: bool,
    ) -> Result<(), PlanError> {
        let st = &*self.st;
        let busy = st.recv_bufs | if write { st.send_bufs } else { 0 };
        if busy & buf_bit(r.buf) == 0 {
            return Ok(());
        }
        // The first group (oldest first) holding an overlapping region: its regions are
        // together, in group order.
        for e in &st.inflight {
            if (write || !e.send) && e.r.overlaps(r) {
                return Err(self.hazard_err(dev, idx, r, item, e.tag, write));
            }
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn hazard_err(
        &self,
        dev: u32,
        idx: usize,
        r: &Region,
        item: Item,
        tag: u32,
        write: bool,
    ) -> PlanError {
        self.err(
            dev,
            idx,
            PlanErrorKind::InFlightHazard {
                item: item.to_string(),
                region: show(r),
                tag,
                write,
            },
        )
    }

    /// The contents of `r`; every cell must have been written.
    fn read_set(&self, dev: u32, idx: usize, r: &Region, item: Item) -> Result<RowList, PlanError> {
        let rows = self.st.bufs[r.buf as usize].read(r);
        for rw in &rows {
            for (c0, c1, v) in &rw.cols {
                if v.is_unset() {
                    return Err(self.read_before_write(dev, idx, r, rw.r0, rw.r1, *c0, *c1, item));
                }
            }
        }
        Ok(rows)
    }

    #[allow(clippy::too_many_arguments)]
    #[cold]
    #[inline(never)]
    fn read_before_write(
        &self,
        dev: u32,
        idx: usize,
        r: &Region,
        r0: u32,
        r1: u32,
        c0: u32,
        c1: u32,
        item: Item,
    ) -> PlanError {
        let sub = Region {
            buf: r.buf,
            tok: r.tok + r0,
            len: r1 - r0,
            head: r.head + c0,
            heads: c1 - c0,
        };
        self.err(
            dev,
            idx,
            PlanErrorKind::ReadBeforeWrite {
                item: item.to_string(),
                region: show(&sub),
            },
        )
    }

    fn write(&mut self, _dev: u32, r: &Region, rows: RowList) {
        self.st.bufs[r.buf as usize].write(r, rows);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn auto_runs_phases_only_outside_rayon_workers_for_long_phases() {
        use super::{auto_threads, Threads};
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let auto = |worth, many| {
            auto_threads(
                worth,
                many,
                || rayon::current_thread_index().is_some(),
                || pool.current_num_threads(),
            )
        };
        assert_eq!(auto(true, false), Threads::Phases);
        assert_eq!(auto(false, false), Threads::Sequential);
        // Two threads: not enough to run ahead in blocks; phases when long.
        assert_eq!(auto(true, true), Threads::Phases);
        assert_eq!(auto(false, true), Threads::Sequential);
        // Inside a worker of a pool (an outer parallel loop): never nested.
        assert_eq!(pool.install(|| auto(true, true)), Threads::Sequential);
        // A one-thread pool gains nothing; a small plan never asks rayon anything.
        assert_eq!(
            auto_threads(true, true, || false, || 1),
            Threads::Sequential
        );
        assert_eq!(
            auto_threads(false, false, || panic!("asked"), || panic!("asked")),
            Threads::Sequential
        );
        // Many devices on a pool of AHEAD_PAR_MIN_THREADS or more: run ahead in blocks, also
        // where phases are long; few devices keep phases.
        let n = super::AHEAD_PAR_MIN_THREADS;
        assert_eq!(auto_threads(true, true, || false, || n), Threads::AheadPar);
        assert_eq!(auto_threads(false, true, || false, || n), Threads::AheadPar);
        assert_eq!(auto_threads(true, false, || false, || n), Threads::Phases);
        assert_eq!(
            auto_threads(false, true, || false, || n - 1),
            Threads::Sequential
        );
    }

    use super::*;
    use crate::mask::MaskSpec;
    use crate::planners::{make_plan, PlannerOptions, PLANNERS};

    #[test]
    fn one_thread_runs_ahead_from_ahead_min_devices_on() {
        let (batch, topo) = small_case();
        let mut plan = make_plan("ring", &batch, &topo, &PlannerOptions::default()).expect("ring");
        assert_eq!(one_thread_choice(&plan), Threads::Sequential);
        let d = plan.devices[0].clone();
        plan.devices.resize(AHEAD_MIN_DEVICES - 1, d.clone());
        assert_eq!(one_thread_choice(&plan), Threads::Sequential);
        plan.devices.push(d);
        assert_eq!(one_thread_choice(&plan), Threads::Ahead);
    }
    use crate::spec::{BatchSpec, DType, ModelShape, Topology};

    /// Four causal sequences (37, 200, 5 and 64 tokens, GQA 4:2) on 2×2 devices.
    fn small_case() -> (BatchSpec, Topology) {
        let model = ModelShape {
            heads: 4,
            kv_heads: 2,
            head_dim: 4,
            dtype: DType::Bf16,
        };
        (
            BatchSpec::uniform(&[37, 200, 5, 64], MaskSpec::Causal, model, 8),
            Topology::new(2, 2),
        )
    }

    /// The plans of [`small_case`] by every planner that plans it, with its name; at least 4.
    fn small_plans() -> Vec<(&'static str, Plan)> {
        let (batch, topo) = small_case();
        let plans: Vec<_> = PLANNERS
            .iter()
            .filter_map(|&name| {
                let plan = make_plan(name, &batch, &topo, &PlannerOptions::default()).ok()?;
                Some((name, plan))
            })
            .collect();
        assert!(plans.len() >= 4, "planners that planned: {}", plans.len());
        plans
    }

    /// The fast pair path is taken on ring-style plans (and, in debug builds, each work it
    /// takes is checked against the general path, `work::checked_pairs`); both paths accept them.
    #[cfg(debug_assertions)]
    #[test]
    fn the_fast_pair_path_is_taken_on_ring_plans() {
        let (batch, topo) = small_case();
        for name in ["ring", "zigzag", "usp"] {
            let plan = make_plan(name, &batch, &topo, &PlannerOptions::default()).expect(name);
            let (before, spans) = (work::FAST_PAIRS.get(), work::SPAN_SUMS.get());
            assert_eq!(validate_with(&plan, Threads::Sequential), Ok(()), "{name}");
            let taken = work::FAST_PAIRS.get() - before;
            assert!(taken > 0, "{name}: no work took the fast path");
            if name != "usp" {
                let spans = work::SPAN_SUMS.get() - spans;
                assert!(spans > 0, "{name}: no work summed whole spans");
            }
            assert_eq!(
                validate_paths(&plan, Threads::Sequential, Paths::General),
                Ok(()),
                "{name}"
            );
        }
    }

    /// A usp plan whose head groups hold two runs each sums its steps' works by whole spans
    /// over several runs (`work::span_sums_runs`, whose KV piece hints a debug assertion checks
    /// against a search), and the general path accepts the plan too.
    #[cfg(debug_assertions)]
    #[test]
    fn usp_works_of_two_runs_sum_whole_spans() {
        let model = ModelShape {
            heads: 4,
            kv_heads: 2,
            head_dim: 4,
            dtype: DType::Bf16,
        };
        let batch = BatchSpec::uniform(
            &[300, 41, 128, 77, 260, 64, 19, 150],
            MaskSpec::Causal,
            model,
            8,
        );
        let topo = Topology::new(2, 4);
        let plan = make_plan("usp", &batch, &topo, &PlannerOptions::default()).expect("usp");
        let spans = work::SPAN_SUMS.get();
        assert_eq!(validate_with(&plan, Threads::Sequential), Ok(()));
        let taken = work::SPAN_SUMS.get() - spans;
        assert!(taken > 0, "no usp work summed whole spans");
        assert_eq!(
            validate_paths(&plan, Threads::Sequential, Paths::General),
            Ok(())
        );
    }

    /// A usp plan's head-group devices check equal works but for their heads: each takes the
    /// previous device's trapezoids (and, in debug builds, each reuse is checked against the
    /// general path, `work::Local::same_as_prev`); both paths accept the plan. Ring plans'
    /// neighbours share no works.
    #[cfg(debug_assertions)]
    #[test]
    fn usp_devices_reuse_the_previous_devices_pairs() {
        let (batch, topo) = small_case();
        for (name, reuses) in [("usp", true), ("ring", false), ("zigzag", false)] {
            let plan = make_plan(name, &batch, &topo, &PlannerOptions::default()).expect(name);
            let before = work::SHARED_PAIRS.get();
            assert_eq!(validate_with(&plan, Threads::Sequential), Ok(()), "{name}");
            let taken = work::SHARED_PAIRS.get() - before;
            assert_eq!(taken > 0, reuses, "{name}: {taken} reused works");
            assert_eq!(
                validate_paths(&plan, Threads::Sequential, Paths::General),
                Ok(()),
                "{name}"
            );
        }
    }

    /// The concurrent path accepts valid plans by itself (not by falling back to the sequential
    /// validator), on one thread and on several, and refuses a broken one.
    #[test]
    fn the_concurrent_path_accepts_valid_plans_itself() {
        for (name, plan) in small_plans() {
            for n in [1, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .expect("a thread pool");
                let cx = Ctx::new(&plan);
                assert!(pool.install(|| validate_flow(&cx)), "{name} on {n} threads");
            }
            // Dropping a device's last forward instruction (its final wait or merge) breaks it.
            let mut bad = plan.clone();
            bad.devices[1].forward.instrs.pop();
            assert!(validate_with(&bad, Threads::Sequential).is_err(), "{name}");
            assert!(
                !validate_flow(&Ctx::new(&bad)),
                "{name}: broken plan accepted"
            );
        }
    }

    /// The run-ahead path accepts valid plans by itself (not by falling back to the sequential
    /// validator) and refuses broken ones by itself, communication faults included: a receive
    /// with no send, a send with no receive, a tag that does not rise, a peer that does not
    /// exist, a pair of unequal sizes.
    #[test]
    fn the_run_ahead_path_accepts_valid_plans_itself() {
        use crate::plan::Dir;
        for (name, plan) in small_plans() {
            assert!(validate_ahead(&Ctx::new(&plan)), "{name}");
            let refused = |bad: &Plan, what: &str| {
                assert!(
                    validate_with(bad, Threads::Sequential).is_err(),
                    "{name}: {what}"
                );
                assert!(!validate_ahead(&Ctx::new(bad)), "{name}: {what} accepted");
            };
            let mut bad = plan.clone();
            bad.devices[1].forward.instrs.pop();
            refused(&bad, "a dropped last instruction");
            // The first comm instruction with ops of some device, in either program.
            let first_comm = |p: &Plan| {
                (0..p.devices.len()).find_map(|d| {
                    p.devices[d]
                        .forward
                        .instrs
                        .iter()
                        .position(|i| matches!(i, Instr::Comm { ops, .. } if !ops.is_empty()))
                        .map(|i| (d, i))
                })
            };
            let Some((d, i)) = first_comm(&plan) else {
                continue;
            };
            let edit = |f: &dyn Fn(&mut u32, &mut Vec<crate::plan::P2p>)| {
                let mut bad = plan.clone();
                if let Instr::Comm { tag, ops } = &mut bad.devices[d].forward.instrs[i] {
                    f(tag, ops);
                }
                bad
            };
            refused(
                &edit(&|_, ops| {
                    ops.remove(0);
                }),
                "an op dropped",
            );
            refused(
                &edit(&|_, ops| {
                    let op = ops[0];
                    ops.push(op)
                }),
                "an op repeated",
            );
            refused(
                &edit(&|_, ops| ops[0].peer = d as u32),
                "an op to the device itself",
            );
            refused(&edit(&|_, ops| ops[0].peer = 99), "an op to no device");
            refused(&edit(&|t, _| *t += 1_000_000), "a tag no peer has");
            refused(
                &edit(&|_, ops| {
                    ops[0].dir = match ops[0].dir {
                        Dir::Send => Dir::Recv,
                        Dir::Recv => Dir::Send,
                    }
                }),
                "an op's direction flipped",
            );
            refused(
                &edit(&|_, ops| {
                    let r = &mut ops[0].region;
                    if r.len > 1 {
                        r.len -= 1
                    } else {
                        r.len += 1
                    }
                }),
                "an op one token short or long",
            );
        }
    }
}
