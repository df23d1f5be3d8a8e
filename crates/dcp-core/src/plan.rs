//! The Plan: the one contract between planners and executors.
//!
//! A plan holds, per device, a forward and a backward [`Program`]: declared buffers and an
//! instruction list over them. Buffers are 3-D `[tokens][heads][width]` arrays (width = head dim
//! for Q/O/dO/dQ, 2·head dim for KV/dKV with K then V per head, 1 for LSE), so a [`Region`]
//! (token range × head range) addresses any data block or slice of one.
//!
//! Execution model (what every executor implements and the validator proves safe):
//! * Compute instructions ([`Instr::Fill`], [`Instr::Copy`], [`Instr::Attn`], [`Instr::AttnBwd`],
//!   [`Instr::Merge`], [`Instr::Sum`]) run in list order on one compute stream.
//! * [`Instr::Comm`] is one grouped point-to-point exchange on a communication stream. It starts
//!   once every earlier compute instruction has finished, and groups run in list order. Each send
//!   is matched by exactly one receive of equal size on the peer, in the same group `tag`, in the
//!   same order per peer pair; tags increase along every device's list. So NCCL group calls cannot
//!   deadlock.
//! * [`Instr::Wait`] makes later compute wait for a group. Until then, compute must not read the
//!   group's receive regions or write any of its regions.
//!
//! Which tokens of which sequence a device holds as input (and output: the same layout) is
//! [`DevicePlan::layout`]; users lay out their tensors by it and undo it with it.

use serde::{Deserialize, Serialize};

use crate::mask::LinRange;
use crate::spec::{BatchSpec, DType, Topology};

/// Bumped on any incompatible change of the serialized form or of what a plan may hold.
/// Version 3: a work's query rows may hold several sequences (block-diagonal row ranges: the
/// ring planners emit one work per step); the form is that of version 2.
/// Version 4: backward buffers may be [`BufferRole::Saved`] (the forward's final contents), and
/// a backward program need not declare the Q, KV, O and LSE inputs it does not read.
pub const PLAN_FORMAT_VERSION: u32 = 4;

/// The oldest version this build reads: a version-2 plan is a valid version-3 plan.
pub const PLAN_FORMAT_MIN_VERSION: u32 = 2;

/// The tensors a program exchanges with its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IoTensor {
    Q,
    Kv,
    O,
    Lse,
    DO,
    DQ,
    DKv,
}

impl IoTensor {
    pub fn is_input(self, backward: bool) -> bool {
        match self {
            IoTensor::Q | IoTensor::Kv => true,
            IoTensor::O | IoTensor::Lse => backward,
            IoTensor::DO => true,
            IoTensor::DQ | IoTensor::DKv => false,
        }
    }
}

/// What a buffer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BufferRole {
    /// Holds a caller tensor in the device's layout (input or output of the program).
    Io(IoTensor),
    /// Planner-managed scratch (received blocks, partial outputs, accumulators).
    Scratch,
    /// Backward programs only: buffer `forward` of the same device's forward program (same
    /// shape and dtype), whose contents at the end of the forward are this buffer's contents at
    /// the start of the backward — e.g. the head-split Q, KV, O and LSE a Ulysses forward made,
    /// so that the backward does not exchange them again. They are read-only in the backward.
    /// Executors keep those buffers from a call's forward to its backward (or copy them out and
    /// back in); the validator starts the backward from the forward's final state of them.
    Saved { forward: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferDecl {
    pub name: String,
    pub role: BufferRole,
    pub dtype: DType,
    pub tokens: u32,
    pub heads: u32,
    /// Elements per (token, head).
    pub width: u32,
}

impl BufferDecl {
    pub fn elems(&self) -> u64 {
        self.tokens as u64 * self.heads as u64 * self.width as u64
    }
    pub fn bytes(&self) -> u64 {
        self.elems() * self.dtype.size()
    }
    /// Bytes of `r`, a region of this buffer.
    pub fn region_bytes(&self, r: &Region) -> u64 {
        r.len as u64 * r.heads as u64 * self.width as u64 * self.dtype.size()
    }
    /// Whether `r` (a region of this buffer) is one contiguous byte range: a single token, or
    /// every head of its tokens. Executors send other regions through a packed staging copy
    /// (and receive them into one, unpacked after the group); the cost models charge those
    /// copies ([`BufferDecl::staged_bytes`]).
    pub fn is_contiguous(&self, r: &Region) -> bool {
        r.len <= 1 || r.heads == self.heads
    }
    /// Bytes of `r` that go through a staging copy when `r` is sent or received: 0 for a
    /// contiguous region, else the region's bytes.
    pub fn staged_bytes(&self, r: &Region) -> u64 {
        if self.is_contiguous(r) {
            0
        } else {
            self.region_bytes(r)
        }
    }
}

/// A token range × head range of one buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    pub buf: u32,
    pub tok: u32,
    pub len: u32,
    pub head: u32,
    pub heads: u32,
}

impl Region {
    pub fn overlaps(&self, o: &Region) -> bool {
        self.buf == o.buf
            && self.tok < o.tok + o.len
            && o.tok < self.tok + self.len
            && self.head < o.head + o.heads
            && o.head < self.head + self.heads
            && self.len > 0
            && self.heads > 0
            && o.len > 0
            && o.heads > 0
    }
}

/// Per-row key ranges of a work in the kernel's coordinates: rows are the work's query rows
/// (0-based), keys are positions in the concatenation of the work's KV regions. Stored as runs of
/// rows whose ranges move linearly (`c + slope·r`, r = row inside the work).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RowRanges {
    pub segs: Vec<RangeSeg>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeSeg {
    /// Rows `[row0, row0 + rows)`.
    pub row0: u32,
    pub rows: u32,
    pub ranges: SegRanges,
}

/// The key ranges of one [`RangeSeg`]: one stored inline, more on the heap. A ring plan over
/// hundreds of devices holds millions of segments, and one allocation per segment was most of
/// its emission time. One, not two: a segment of 48 bytes keeps a work's few segments in one
/// small allocation, which glibc serves from its fast bins (an 80-byte segment made planners
/// that build millions of per-piece works, like `usp`, spend a quarter of their time in
/// malloc). Reads as a slice (`Deref`); serialized as a plain list, exactly like the `Vec` it
/// replaces.
#[derive(Clone)]
pub enum SegRanges {
    Inline {
        len: u8,
        buf: [LinRange; SegRanges::INLINE],
    },
    Heap(Vec<LinRange>),
}

const EMPTY_RANGE: LinRange = LinRange::new(crate::mask::Lin::c(0), crate::mask::Lin::c(0));

impl SegRanges {
    /// Ranges stored inline.
    pub const INLINE: usize = 1;

    pub const fn new() -> Self {
        SegRanges::Inline {
            len: 0,
            buf: [EMPTY_RANGE; SegRanges::INLINE],
        }
    }

    pub fn push(&mut self, r: LinRange) {
        match self {
            SegRanges::Inline { len, buf } if (*len as usize) < buf.len() => {
                buf[*len as usize] = r;
                *len += 1;
            }
            SegRanges::Inline { buf, .. } => {
                let mut v = Vec::with_capacity(4);
                v.extend_from_slice(buf);
                v.push(r);
                *self = SegRanges::Heap(v);
            }
            SegRanges::Heap(v) => v.push(r),
        }
    }
}

impl Default for SegRanges {
    fn default() -> Self {
        Self::new()
    }
}

impl std::ops::Deref for SegRanges {
    type Target = [LinRange];
    fn deref(&self) -> &[LinRange] {
        match self {
            SegRanges::Inline { len, buf } => &buf[..*len as usize],
            SegRanges::Heap(v) => v,
        }
    }
}

impl std::ops::DerefMut for SegRanges {
    fn deref_mut(&mut self) -> &mut [LinRange] {
        match self {
            SegRanges::Inline { len, buf } => &mut buf[..*len as usize],
            SegRanges::Heap(v) => v,
        }
    }
}

impl PartialEq for SegRanges {
    fn eq(&self, o: &Self) -> bool {
        **self == **o
    }
}

impl Eq for SegRanges {}

impl std::fmt::Debug for SegRanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl FromIterator<LinRange> for SegRanges {
    fn from_iter<I: IntoIterator<Item = LinRange>>(it: I) -> Self {
        let it = it.into_iter();
        if it.size_hint().0 > SegRanges::INLINE {
            // Known to spill: one allocation of the right size.
            return SegRanges::Heap(it.collect());
        }
        let mut s = SegRanges::new();
        for r in it {
            s.push(r);
        }
        s
    }
}

impl From<Vec<LinRange>> for SegRanges {
    fn from(v: Vec<LinRange>) -> Self {
        if v.len() <= SegRanges::INLINE {
            v.into_iter().collect()
        } else {
            SegRanges::Heap(v)
        }
    }
}

impl<'a> IntoIterator for &'a SegRanges {
    type Item = &'a LinRange;
    type IntoIter = std::slice::Iter<'a, LinRange>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Serialize for SegRanges {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for SegRanges {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<LinRange>::deserialize(d).map(SegRanges::from)
    }
}

impl RowRanges {
    /// Compresses explicit per-row ranges (row r = `rows[r]`, sorted, disjoint, non-empty).
    pub fn from_rows(rows: &[Vec<(u32, u32)>]) -> Self {
        let mut segs: Vec<RangeSeg> = Vec::new();
        let mut r = 0usize;
        while r < rows.len() {
            let base = &rows[r];
            let mut n = 1usize;
            let mut slopes: Option<Vec<(i64, i64)>> = None;
            while r + n < rows.len() {
                let next = &rows[r + n];
                if next.len() != base.len() {
                    break;
                }
                let d: Vec<(i64, i64)> = if n == 1 {
                    base.iter()
                        .zip(next)
                        .map(|(a, b)| (b.0 as i64 - a.0 as i64, b.1 as i64 - a.1 as i64))
                        .collect()
                } else {
                    slopes.clone().unwrap()
                };
                let ok = base.iter().zip(next).zip(&d).all(|((a, b), s)| {
                    a.0 as i64 + s.0 * n as i64 == b.0 as i64
                        && a.1 as i64 + s.1 * n as i64 == b.1 as i64
                });
                if !ok {
                    break;
                }
                slopes = Some(d);
                n += 1;
            }
            let slopes = slopes.unwrap_or_else(|| vec![(0, 0); base.len()]);
            let ranges = base
                .iter()
                .zip(&slopes)
                .map(|(&(s, e), &(ds, de))| {
                    // value(row) = c + slope·row with row the index inside the work.
                    LinRange::new(
                        crate::mask::Lin {
                            c: s as i64 - ds * r as i64,
                            slope: ds,
                        },
                        crate::mask::Lin {
                            c: e as i64 - de * r as i64,
                            slope: de,
                        },
                    )
                })
                .collect();
            segs.push(RangeSeg {
                row0: r as u32,
                rows: n as u32,
                ranges,
            });
            r += n;
        }
        RowRanges { segs }
    }

    /// Builds the ranges row by row without keeping the rows (see [`RowRangesBuilder`]).
    pub fn builder() -> RowRangesBuilder {
        RowRangesBuilder::default()
    }

    /// Key ranges of row `r` (empty ranges dropped).
    pub fn row(&self, r: u32, out: &mut Vec<(u32, u32)>) {
        out.clear();
        let idx = self.segs.partition_point(|s| s.row0 + s.rows <= r);
        if let Some(seg) = self.segs.get(idx) {
            if seg.row0 <= r {
                for lr in &seg.ranges {
                    let (s, e) = (lr.start.at(r as i64), lr.end.at(r as i64));
                    if s < e {
                        out.push((s.max(0) as u32, e.max(0) as u32));
                    }
                }
            }
        }
    }

    /// Total attended pairs (per head) over all rows.
    pub fn attended(&self) -> u64 {
        let mut total = 0u64;
        let mut buf = Vec::new();
        for seg in &self.segs {
            // Constant ranges (most segments of a ring step): rows × lengths.
            if seg
                .ranges
                .iter()
                .all(|lr| lr.start.slope == 0 && lr.end.slope == 0)
            {
                let len: i64 = seg
                    .ranges
                    .iter()
                    .map(|lr| (lr.end.c - lr.start.c.max(0)).max(0))
                    .sum();
                total += seg.rows as u64 * len as u64;
                continue;
            }
            // Lengths are linear in the row inside a segment; sum endpoints exactly when no range
            // changes sign, otherwise fall back to per-row sums.
            let linear = seg.ranges.iter().all(|lr| {
                let a = lr.end.at(seg.row0 as i64) - lr.start.at(seg.row0 as i64);
                let b = lr.end.at((seg.row0 + seg.rows - 1) as i64)
                    - lr.start.at((seg.row0 + seg.rows - 1) as i64);
                a >= 0 && b >= 0
            });
            if linear {
                for lr in &seg.ranges {
                    let a = lr.end.at(seg.row0 as i64) - lr.start.at(seg.row0 as i64);
                    let b = lr.end.at((seg.row0 + seg.rows - 1) as i64)
                        - lr.start.at((seg.row0 + seg.rows - 1) as i64);
                    total += ((a + b) as u64 * seg.rows as u64) / 2;
                }
            } else {
                for r in seg.row0..seg.row0 + seg.rows {
                    self.row(r, &mut buf);
                    total += buf.iter().map(|&(s, e)| (e - s) as u64).sum::<u64>();
                }
            }
        }
        total
    }

    pub fn n_rows(&self) -> u32 {
        self.segs.last().map(|s| s.row0 + s.rows).unwrap_or(0)
    }

    /// Appends rows `row0 .. row0 + rows` (at or after the current end; rows in between attend
    /// nothing) attending `ranges`; extends the last segment instead when it ends at `row0` with
    /// the same range functions (then it reads the same on every row).
    pub fn push_seg(&mut self, row0: u32, rows: u32, ranges: SegRanges) {
        if rows == 0 {
            return;
        }
        if let Some(last) = self.segs.last_mut() {
            debug_assert!(
                last.row0 + last.rows <= row0,
                "segments must be pushed in row order"
            );
            if last.row0 + last.rows == row0 && last.ranges == ranges {
                last.rows += rows;
                return;
            }
        }
        self.segs.push(RangeSeg { row0, rows, ranges });
    }

    /// Appends `src`'s segments with its row r moved to `row_off + r` and its key positions
    /// shifted by `key_off`: how a work's ranges read inside a larger work whose query rows
    /// hold the smaller one's from `row_off` on and whose keys hold its keys from `key_off` on.
    /// Exact when `src`'s range ends are non-negative on the rows of their segments (as for
    /// ranges built from explicit rows).
    pub fn push_shifted(&mut self, src: &RowRanges, row_off: u32, key_off: u32) {
        let (dr, dk) = (row_off as i64, key_off as i64);
        let mv = |l: crate::mask::Lin| crate::mask::Lin {
            c: l.c - l.slope * dr + dk,
            slope: l.slope,
        };
        for seg in &src.segs {
            let ranges = seg
                .ranges
                .iter()
                .map(|lr| LinRange::new(mv(lr.start), mv(lr.end)))
                .collect();
            self.push_seg(seg.row0 + row_off, seg.rows, ranges);
        }
    }
}

/// Streaming form of [`RowRanges::from_rows`]: push rows in order, get the same segments.
#[derive(Debug, Default)]
pub struct RowRangesBuilder {
    segs: Vec<RangeSeg>,
    base: Vec<(u32, u32)>,
    slopes: Vec<(i64, i64)>,
    /// Rows in the open segment (0 = none open).
    n: u32,
    row0: u32,
}

impl RowRangesBuilder {
    pub fn push(&mut self, row: &[(u32, u32)]) {
        if self.n > 0 && row.len() == self.base.len() {
            let n = self.n as i64;
            if self.n == 1 {
                self.slopes.clear();
                self.slopes.extend(
                    self.base
                        .iter()
                        .zip(row)
                        .map(|(a, b)| (b.0 as i64 - a.0 as i64, b.1 as i64 - a.1 as i64)),
                );
                self.n += 1;
                return;
            }
            let fits = self
                .base
                .iter()
                .zip(row)
                .zip(&self.slopes)
                .all(|((a, b), sl)| {
                    a.0 as i64 + sl.0 * n == b.0 as i64 && a.1 as i64 + sl.1 * n == b.1 as i64
                });
            if fits {
                self.n += 1;
                return;
            }
        }
        self.close();
        self.base.clear();
        self.base.extend_from_slice(row);
        self.n = 1;
    }

    fn close(&mut self) {
        if self.n == 0 {
            return;
        }
        if self.n == 1 {
            self.slopes.clear();
            self.slopes.resize(self.base.len(), (0, 0));
        }
        let r = self.row0 as i64;
        let ranges = self
            .base
            .iter()
            .zip(&self.slopes)
            .map(|(&(s, e), &(ds, de))| {
                LinRange::new(
                    crate::mask::Lin {
                        c: s as i64 - ds * r,
                        slope: ds,
                    },
                    crate::mask::Lin {
                        c: e as i64 - de * r,
                        slope: de,
                    },
                )
            })
            .collect();
        self.segs.push(RangeSeg {
            row0: self.row0,
            rows: self.n,
            ranges,
        });
        self.row0 += self.n;
        self.n = 0;
    }

    /// Appends `n` rows whose ranges are `first` at the first row and move by `slopes` per row.
    pub fn push_linear(&mut self, n: u32, first: &[(u32, u32)], slopes: &[(i64, i64)]) {
        if n == 0 {
            return;
        }
        if n == 1 {
            self.push(first);
            return;
        }
        self.close();
        self.base.clear();
        self.base.extend_from_slice(first);
        self.slopes.clear();
        self.slopes.extend_from_slice(slopes);
        self.n = n;
        self.close();
    }

    pub fn finish(mut self) -> RowRanges {
        self.close();
        // One exact allocation: a work holds one to three segments and lives as long as its
        // plan, so the default growth's four-segment reservation (192 bytes) would be both
        // wasted and served by malloc's slow path; the growing vector is a short-lived temporary.
        let mut segs = Vec::with_capacity(self.segs.len());
        segs.append(&mut self.segs);
        RowRanges { segs }
    }
}

/// One forward work: a query region against the concatenation of KV regions, writing a fresh
/// partial output (O, LSE). Query head j reads KV head ⌊j / group⌋ of the work's KV regions.
/// A row with no keys yields O = 0, LSE = −∞.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FwdWork {
    pub q: Region,
    pub kv: Vec<Region>,
    pub o: Region,
    pub lse: Region,
    pub rows: RowRanges,
}

/// One backward work: recomputes P from Q, K and the final LSE, and accumulates (+=) into dQ and
/// into the dKV regions (parallel to `kv`). `o` and `do_` feed D = rowsum(dO ∘ O).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BwdWork {
    pub q: Region,
    pub kv: Vec<Region>,
    pub o: Region,
    pub lse: Region,
    pub do_: Region,
    pub dq: Region,
    pub dkv: Vec<Region>,
    pub rows: RowRanges,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FillValue {
    Zero,
    NegInf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Dir {
    Send,
    Recv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct P2p {
    pub dir: Dir,
    pub peer: u32,
    pub region: Region,
}

/// One instruction of a device program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Instr {
    Fill {
        dst: Region,
        value: FillValue,
    },
    Copy {
        src: Region,
        dst: Region,
    },
    /// Grouped point-to-point exchange (one NCCL group).
    Comm {
        tag: u32,
        ops: Vec<P2p>,
    },
    /// Later compute waits for the group `tag` to complete.
    Wait {
        tag: u32,
    },
    /// One launch over all works of a stage.
    Attn {
        stage: u32,
        works: Vec<FwdWork>,
    },
    AttnBwd {
        stage: u32,
        works: Vec<BwdWork>,
    },
    /// Log-sum-exp merge (fp32 arithmetic) of partial (O, LSE) pairs into `(o, lse)`, which may be
    /// one of the inputs (in place). An input with LSE = −∞ contributes nothing.
    Merge {
        o: Region,
        lse: Region,
        inputs: Vec<(Region, Region)>,
    },
    /// `dst = Σ inputs`; `dst` may be one of the inputs.
    Sum {
        dst: Region,
        inputs: Vec<Region>,
    },
}

impl Instr {
    pub fn name(&self) -> &'static str {
        match self {
            Instr::Fill { .. } => "fill",
            Instr::Copy { .. } => "copy",
            Instr::Comm { .. } => "comm",
            Instr::Wait { .. } => "wait",
            Instr::Attn { .. } => "attn",
            Instr::AttnBwd { .. } => "attn-bwd",
            Instr::Merge { .. } => "merge",
            Instr::Sum { .. } => "sum",
        }
    }

    /// Calls `f` on every region this instruction writes (a transfer: its receives).
    pub fn for_each_write(&self, mut f: impl FnMut(&Region)) {
        match self {
            Instr::Fill { dst, .. } | Instr::Copy { dst, .. } | Instr::Sum { dst, .. } => f(dst),
            Instr::Comm { ops, .. } => ops
                .iter()
                .filter(|op| op.dir == Dir::Recv)
                .for_each(|op| f(&op.region)),
            Instr::Wait { .. } => {}
            Instr::Attn { works, .. } => works.iter().for_each(|w| {
                f(&w.o);
                f(&w.lse);
            }),
            Instr::AttnBwd { works, .. } => works.iter().for_each(|w| {
                f(&w.dq);
                w.dkv.iter().for_each(&mut f);
            }),
            Instr::Merge { o, lse, .. } => {
                f(o);
                f(lse);
            }
        }
    }

    /// Calls `f` on every region this instruction reads or writes (executors bounds-check them
    /// while lowering).
    pub fn for_each_region(&self, mut f: impl FnMut(&Region)) {
        match self {
            Instr::Fill { dst, .. } => f(dst),
            Instr::Copy { src, dst } => {
                f(src);
                f(dst);
            }
            Instr::Comm { ops, .. } => ops.iter().for_each(|op| f(&op.region)),
            Instr::Wait { .. } => {}
            Instr::Attn { works, .. } => {
                for w in works {
                    f(&w.q);
                    w.kv.iter().for_each(&mut f);
                    f(&w.o);
                    f(&w.lse);
                }
            }
            Instr::AttnBwd { works, .. } => {
                for w in works {
                    for r in [&w.q, &w.o, &w.lse, &w.do_, &w.dq] {
                        f(r);
                    }
                    w.kv.iter().for_each(&mut f);
                    w.dkv.iter().for_each(&mut f);
                }
            }
            Instr::Merge { o, lse, inputs } => {
                f(o);
                f(lse);
                for (a, b) in inputs {
                    f(a);
                    f(b);
                }
            }
            Instr::Sum { dst, inputs } => {
                f(dst);
                inputs.iter().for_each(&mut f);
            }
        }
    }
}

/// A contiguous run of one sequence's tokens held by a device, in buffer order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSpan {
    pub seq: u32,
    /// First token inside the sequence.
    pub start: u32,
    pub len: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Program {
    pub buffers: Vec<BufferDecl>,
    pub instrs: Vec<Instr>,
}

impl Program {
    /// The buffer holding a caller tensor, if declared.
    pub fn io(&self, t: IoTensor) -> Option<u32> {
        self.buffers
            .iter()
            .position(|b| b.role == BufferRole::Io(t))
            .map(|i| i as u32)
    }
    pub fn bytes(&self) -> u64 {
        self.buffers.iter().map(|b| b.bytes()).sum()
    }
    /// The saved buffers of a backward program ([`BufferRole::Saved`]): (buffer, the forward
    /// buffer it starts from), in declaration order.
    pub fn saved(&self) -> Vec<(u32, u32)> {
        self.buffers
            .iter()
            .enumerate()
            .filter_map(|(i, b)| match b.role {
                BufferRole::Saved { forward } => Some((i as u32, forward)),
                _ => None,
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DevicePlan {
    pub device: u32,
    pub node: u32,
    /// Tokens this device holds (inputs and outputs), in buffer row order.
    pub layout: Vec<TokenSpan>,
    pub forward: Program,
    pub backward: Program,
}

impl DevicePlan {
    pub fn local_tokens(&self) -> u32 {
        self.layout.iter().map(|s| s.len).sum()
    }
}

/// A complete plan for one batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub version: u32,
    /// The planner that made the plan (its CLI name).
    pub planner: String,
    /// Which candidate's program the plan holds when its planner chose among several (`dcp`
    /// returns the `local`, `zigzag` or `ring` plan when the cost model predicts it faster);
    /// `None`: the planner's own. Added in format version 2.
    #[serde(default)]
    pub candidate: Option<crate::planners::PlannerKind>,
    pub batch: BatchSpec,
    pub topology: Topology,
    pub devices: Vec<DevicePlan>,
}

/// Errors reading a serialized plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanFormatError {
    #[error(
        "plan format version {found} is not supported (this build reads versions {oldest} to {expected})"
    )]
    Version {
        found: u32,
        oldest: u32,
        expected: u32,
    },
    #[error("malformed plan JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("malformed binary plan: {0}")]
    Binary(#[from] postcard::Error),
    #[error("binary plan does not start with the DCPP magic")]
    Magic,
}

const MAGIC: &[u8; 4] = b"DCPP";

fn check_version(found: u32) -> Result<(), PlanFormatError> {
    if (PLAN_FORMAT_MIN_VERSION..=PLAN_FORMAT_VERSION).contains(&found) {
        Ok(())
    } else {
        Err(PlanFormatError::Version {
            found,
            oldest: PLAN_FORMAT_MIN_VERSION,
            expected: PLAN_FORMAT_VERSION,
        })
    }
}

impl Plan {
    pub fn n_devices(&self) -> u32 {
        self.devices.len() as u32
    }
    /// `planner`, or `planner:candidate` when the planner returned another candidate's plan
    /// (e.g. `dcp:zigzag`), for tables and logs.
    pub fn label(&self) -> String {
        match self.candidate {
            Some(c) => format!("{}:{c}", self.planner),
            None => self.planner.clone(),
        }
    }
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plans always serialize")
    }
    pub fn from_json(s: &str) -> Result<Self, PlanFormatError> {
        let v: serde_json::Value = serde_json::from_str(s)?;
        let found = v.get("version").and_then(|x| x.as_u64()).unwrap_or(0) as u32;
        check_version(found)?;
        Ok(serde_json::from_value(v)?)
    }
    /// Compact binary form: `DCPP`, u32 LE version, postcard body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&PLAN_FORMAT_VERSION.to_le_bytes());
        out.extend(postcard::to_allocvec(self).expect("plans always serialize"));
        out
    }
    pub fn from_bytes(b: &[u8]) -> Result<Self, PlanFormatError> {
        if b.len() < 8 || &b[..4] != MAGIC {
            return Err(PlanFormatError::Magic);
        }
        let found = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        check_version(found)?;
        Ok(postcard::from_bytes(&b[8..])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_ranges_roundtrip() {
        let rows: Vec<Vec<(u32, u32)>> = (0..20u32)
            .map(|r| {
                if r < 5 {
                    vec![(0, r + 1)]
                } else if r < 12 {
                    vec![(0, 2), (r - 3, r + 1)]
                } else {
                    vec![(3, 9)]
                }
            })
            .collect();
        let rr = RowRanges::from_rows(&rows);
        assert_eq!(rr.segs.len(), 3);
        let mut buf = Vec::new();
        for (r, want) in rows.iter().enumerate() {
            rr.row(r as u32, &mut buf);
            assert_eq!(&buf, want, "row {r}");
        }
        let total: u64 = rows.iter().flatten().map(|&(s, e)| (e - s) as u64).sum();
        assert_eq!(rr.attended(), total);
        assert_eq!(rr.n_rows(), 20);
        let mut b = RowRanges::builder();
        for r in &rows {
            b.push(r);
        }
        assert_eq!(b.finish(), rr);
    }

    fn lr(a: i64, b: i64, slope: i64) -> LinRange {
        use crate::mask::Lin;
        LinRange::new(Lin::c(a), Lin { c: b, slope })
    }

    #[test]
    fn seg_ranges_serialize_like_a_vec() {
        for n in 0..5 {
            let v: Vec<LinRange> = (0..n).map(|k| lr(k, k + 3, k % 2)).collect();
            let s = SegRanges::from(v.clone());
            assert_eq!(
                matches!(s, SegRanges::Inline { .. }),
                n as usize <= SegRanges::INLINE,
                "n {n}"
            );
            assert_eq!(&*s, &v[..]);
            assert_eq!(
                postcard::to_allocvec(&s).unwrap(),
                postcard::to_allocvec(&v).unwrap()
            );
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                serde_json::to_string(&v).unwrap()
            );
            let back: SegRanges =
                postcard::from_bytes(&postcard::to_allocvec(&v).unwrap()).unwrap();
            assert_eq!(back, s);
            let pushed: SegRanges = v.iter().copied().collect();
            assert_eq!(pushed, s);
        }
    }

    #[test]
    fn shifted_ranges_read_the_same_rows() {
        let rows: Vec<Vec<(u32, u32)>> = (0..12u32)
            .map(|r| {
                if r < 6 {
                    vec![(0, r + 1)]
                } else {
                    vec![(1, 3), (r - 2, r)]
                }
            })
            .collect();
        let rr = RowRanges::from_rows(&rows);
        let mut big = RowRanges::default();
        big.push_seg(0, 2, [lr(0, 4, 0)].into_iter().collect());
        big.push_shifted(&rr, 5, 100);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for r in 0..12 {
            rr.row(r, &mut a);
            big.row(r + 5, &mut b);
            let moved: Vec<(u32, u32)> = a.iter().map(|&(s, e)| (s + 100, e + 100)).collect();
            assert_eq!(b, moved, "row {r}");
        }
        big.row(3, &mut b);
        assert!(b.is_empty(), "rows between pushed segments attend nothing");
        assert_eq!(big.attended(), 2 * 4 + rr.attended());
        // A segment continuing the last one with the same ranges extends it.
        let mut c = RowRanges::default();
        c.push_seg(0, 3, [lr(0, 4, 0)].into_iter().collect());
        c.push_seg(3, 2, [lr(0, 4, 0)].into_iter().collect());
        assert_eq!(c.segs.len(), 1);
        assert_eq!(c.n_rows(), 5);
    }

    #[test]
    fn versions_two_to_four_load_others_are_refused() {
        let plan = Plan {
            version: PLAN_FORMAT_VERSION,
            planner: "ring".into(),
            candidate: None,
            batch: BatchSpec {
                seqs: vec![],
                model: Default::default(),
                block_size: 16,
                head_block: 1,
            },
            topology: Topology::parse("1x1").unwrap(),
            devices: vec![],
        };
        for (v, ok) in [(1, false), (2, true), (3, true), (4, true), (5, false)] {
            let p = Plan {
                version: v,
                ..plan.clone()
            };
            let json = serde_json::to_string(&p).unwrap();
            let mut bin = p.to_bytes();
            bin[4..8].copy_from_slice(&v.to_le_bytes());
            for r in [Plan::from_json(&json), Plan::from_bytes(&bin)] {
                match r {
                    Ok(back) => assert!(ok && back.version == v, "version {v}"),
                    Err(PlanFormatError::Version {
                        found,
                        oldest,
                        expected,
                    }) => {
                        assert!(!ok && found == v && oldest == 2 && expected == 4)
                    }
                    Err(e) => panic!("version {v}: {e}"),
                }
            }
        }
    }
}
