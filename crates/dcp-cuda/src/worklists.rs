//! The descriptor arrays of one attention launch ([`WorkLists`]), built work by work by the
//! executor's lowering (`exec.rs`): tasks and tile lists, precomputed tile masks, the sm90
//! forward's half tiles and one-step tasks, longest-first and L2-window ordering, and the
//! forward split-K of long works.

use super::*;

/// The descriptor arrays of one attention launch (forward or backward), built work by work:
/// works, KV segments, tasks, tile lists, and every work's per-row ranges as one CSR.
#[derive(Default)]
pub(super) struct WorkLists {
    pub(super) works: Vec<WorkDesc>,
    pub(super) segs: Vec<KvSeg>,
    pub(super) tasks: Vec<TaskDesc>,
    pub(super) tiles: Vec<u32>,
    pub(super) row_ptr: Vec<u32>,
    pub(super) ranges: Vec<[u32; 2]>,
    /// sm90 launches: per entry of `tiles`, the index of its precomputed element mask in
    /// `masks` ([`tilemask::NO_MASK`]: full tile, or the kernel evaluates the ranges), and the
    /// masks ([`tilemask`]). Empty for the mma.sync kernels, which take no masks.
    pub(super) tmask: Vec<u32>,
    pub(super) masks: Vec<u32>,
    pub(super) mask_mode: TileMasks,
    // Scratch of `classify` and of the masks.
    pub(super) touched: Vec<i32>,
    pub(super) full: Vec<i32>,
    pub(super) out: Vec<u32>,
    pub(super) mask_rows: Vec<u128>,
    /// The distinct masks built so far: equal masks are built and uploaded once.
    pub(super) mask_seen: tilemask::Distinct,
    /// The tasks are in launch order already (chains, [`own::order_chains`]): not sorted.
    pub(super) keep_order: bool,
    /// [`Self::finish`]: among tasks of equal length, those with more partial tiles first
    /// (`DCP_CUDA_PARTIAL_FIRST`).
    pub(super) partial_first: bool,
    /// sm90 forward, `DCP_CUDA_FWD_HALF` on: per entry of `tiles`, whether it is a half tile
    /// ([`tilemask::fwd_half`]); [`Self::order_fwd_half`] puts them first in each task's list.
    pub(super) half_mode: bool,
    pub(super) half: Vec<bool>,
    /// With `half_mode` and `DCP_CUDA_FWD_HALFBITS`: per entry of `tiles`, its
    /// [`tilemask::fwd_half_bits`], which [`Self::order_fwd_half`] writes into the half tiles'
    /// words (bits 27-30).
    pub(super) half_bits: bool,
    pub(super) hbits: Vec<u32>,
}

/// Whether a work whose tiles are `partial` of `total` partial gets precomputed tile masks: the
/// masks save the kernels' per-element range tests on partial tiles (causal-blockwise −8 %
/// backward), but cost ~2 µs of host time each per new plan, which a work with few partial
/// tiles (one long causal sequence: 0.2 %) does not win back.
pub(super) fn worth_masks(partial: usize, total: usize) -> bool {
    partial > 0 && partial * 32 >= total
}

/// A backward launch's q tiles of one kv tile before tasks are cut: (work, kv tile, KV heads, q
/// tile words, and for sm90 their mask indices).
pub(super) type KvTileList = (u32, u32, u32, Vec<u32>, Vec<u32>);

/// Whether and in which layout a launch's partial tiles get precomputed masks ([`tilemask`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum TileMasks {
    /// No mask indices at all (mma.sync kernels).
    #[default]
    None,
    /// sm90 kernels with every tile at [`tilemask::NO_MASK`] (`DCP_CUDA_TILE_MASKS=0`: the
    /// kernels evaluate the ranges, for A/B runs and tests of that path).
    Off,
    /// Forward layout, for works where [`worth_masks`].
    Fwd,
    /// Backward layout, for works where [`worth_masks`].
    Bwd,
    /// Forward layout for every partial tile (`DCP_CUDA_TILE_MASKS=all`: A/B runs of the
    /// threshold and measurements of the precomputed path on shapes below it).
    FwdAll,
    /// Backward layout for every partial tile (`DCP_CUDA_TILE_MASKS=all`).
    BwdAll,
}

impl TileMasks {
    /// The mode of an sm90 launch (`fwd`: forward layout), honouring `DCP_CUDA_TILE_MASKS`.
    pub(super) fn sm90(fwd: bool) -> Result<Self> {
        Self::sm90_with(fwd, std::env::var("DCP_CUDA_TILE_MASKS").ok().as_deref())
    }

    /// [`TileMasks::sm90`] on the value of `DCP_CUDA_TILE_MASKS`: unset, empty or `1` builds the
    /// masks where [`worth_masks`], `all` for every partial tile, `0` turns them off, anything
    /// else is an error naming the value.
    pub(super) fn sm90_with(fwd: bool, v: Option<&str>) -> Result<Self> {
        match v.map(str::trim) {
            None | Some("") | Some("1") => Ok(if fwd { TileMasks::Fwd } else { TileMasks::Bwd }),
            Some("all") => Ok(if fwd {
                TileMasks::FwdAll
            } else {
                TileMasks::BwdAll
            }),
            Some("0") => Ok(TileMasks::Off),
            Some(o) => Err(CudaError::Unsupported(format!(
                "DCP_CUDA_TILE_MASKS={o}: expected 0, 1 or all"
            ))),
        }
    }

    /// The layout masks are built in (`None`: no masks).
    pub(super) fn layout(self) -> Option<tilemask::Layout> {
        match self {
            TileMasks::Fwd | TileMasks::FwdAll => Some(tilemask::Layout::Fwd),
            TileMasks::Bwd | TileMasks::BwdAll => Some(tilemask::Layout::Bwd),
            TileMasks::None | TileMasks::Off => None,
        }
    }

    /// Whether a work with `partial` of its `total` tiles partial gets masks: [`worth_masks`],
    /// or any partial tile under `DCP_CUDA_TILE_MASKS=all`.
    pub(super) fn wanted(self, partial: usize, total: usize) -> bool {
        match self {
            TileMasks::FwdAll | TileMasks::BwdAll => partial > 0,
            _ => worth_masks(partial, total),
        }
    }
}

/// `TaskDesc.pad` of a forward task that the `FWD_ONE` kernel runs as one step (`FWD_ONE_TASK`
/// in `attn_fwd_sm90.cu`).
pub(super) const FWD_ONE_TASK: u32 = 1;

/// Per unit (`unit[w]`: work `w`'s unit, numbered from 0), its window for
/// [`WorkLists::order_for_l2`]: units in order of their longest task (descending, stable),
/// consecutive ones sharing a window while the `bytes` of their works sum to at most `budget`.
/// The last units, whose tiles sum to at most `tail_pct` % of the launch's, share one final
/// window, run longest first: with every window in turn, the grid's last round would wait for
/// the longest task of the last window (a batch of equal causal documents, one per window,
/// modelled as list scheduling: ~3 % longer, ~1 % with a tail of 10 %).
pub(super) fn l2_windows(
    works: &[WorkDesc],
    unit: &[u32],
    tasks: &[TaskDesc],
    budget: u64,
    tail_pct: u32,
    bytes: impl Fn(&WorkDesc) -> u64,
) -> Vec<u32> {
    let n = unit.iter().map(|&u| u as usize + 1).max().unwrap_or(0);
    let mut longest = vec![0u32; n];
    let mut tiles = vec![0u64; n];
    let mut size = vec![0u64; n];
    for t in tasks {
        let u = unit[t.work as usize] as usize;
        longest[u] = longest[u].max(t.tiles_n);
        tiles[u] += t.tiles_n as u64;
    }
    for (w, &u) in works.iter().zip(unit) {
        size[u as usize] += bytes(w);
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&u| std::cmp::Reverse(longest[u]));
    let total: u64 = tiles.iter().sum();
    let (mut tail, mut acc) = (order.len(), 0u64);
    while tail > 0 && (acc + tiles[order[tail - 1]]) * 100 <= total * tail_pct as u64 {
        tail -= 1;
        acc += tiles[order[tail]];
    }
    let mut window = vec![0u32; n];
    let (mut win, mut acc) = (0u32, 0u64);
    for (i, &u) in order.iter().enumerate() {
        let b = size[u];
        let cut = if i < tail {
            acc > 0 && acc + b > budget
        } else {
            i == tail && i > 0
        };
        if cut {
            win += 1;
            acc = 0;
        }
        window[u] = win;
        acc += b;
    }
    window
}

/// Per work, its unit for [`WorkLists::order_for_l2`] (numbered from 0 in order of first
/// work): works whose KV segments overlap in memory (`segs[kv_first..][..kv_count]`, rows of
/// `stride` 16-bit elements) share one. dcp's own placement of one sequence reads each KV block
/// in many works; separate documents share none.
pub(super) fn kv_units(works: &[WorkDesc], segs: &[KvSeg]) -> Vec<u32> {
    let mut parent: Vec<usize> = (0..works.len()).collect();
    fn root(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    let mut spans: Vec<(u64, u64, usize)> = Vec::new();
    for (w, wd) in works.iter().enumerate() {
        let r = wd.kv_first as usize..(wd.kv_first + wd.kv_count) as usize;
        for sg in &segs[r] {
            let end = sg.k + sg.len as u64 * sg.stride as u64 * 2;
            spans.push((sg.k, end, w));
        }
    }
    spans.sort_unstable();
    let mut cur: Option<(u64, usize)> = None;
    for (start, end, w) in spans {
        match cur {
            Some((e, r)) if start < e => {
                let (a, b) = (root(&mut parent, r), root(&mut parent, w));
                parent[b] = a;
                cur = Some((e.max(end), r));
            }
            _ => cur = Some((end, w)),
        }
    }
    let mut id = vec![u32::MAX; works.len()];
    let mut next = 0u32;
    (0..works.len())
        .map(|w| {
            let r = root(&mut parent, w);
            if id[r] == u32::MAX {
                id[r] = next;
                next += 1;
            }
            id[r]
        })
        .collect()
}

/// [`WorkLists::order_for_l2`] reorders a launch only where its works with tasks number more
/// than the grid's CTAs divided by this: under plain longest-first each work then gets fewer
/// than about 12 CTAs at a time (62 causal documents of 4 096 tokens on 132 SMs: 2), which
/// sweep its q tiles apart instead of together.
pub(super) const L2_SPREAD: u64 = 12;

/// The default L2 window: the card's L2 size divided by this.
pub(super) const L2_WINDOW_DIV: u64 = 8;

/// Whether `one` tasks of `n` reach `min_pct` % (`DCP_CUDA_FWD_SHORT_ONE_MIN`; 0: always).
pub(super) fn one_share(one: usize, n: usize, min_pct: u32) -> bool {
    min_pct == 0 || (one > 0 && one as u64 * 100 >= min_pct as u64 * n as u64)
}

/// Whether a forward launch with these half-tile marks (`half`, one per tile) over `n_qtiles` q
/// tile lists may run half steps: at most `max` half tiles per q tile on average
/// (`DCP_CUDA_FWD_HALF_MAX`; a launch without q tiles: yes).
pub(super) fn half_tiles_ok(half: &[bool], n_qtiles: usize, max: f64) -> bool {
    let n = half.iter().filter(|&&h| h).count();
    n_qtiles == 0 || n as f64 <= max * n_qtiles as f64
}

/// Whether a forward launch's tasks average at most `max` tiles (none: no).
pub(super) fn short_tasks(tasks: &[TaskDesc], max: u32) -> bool {
    let tiles: u64 = tasks.iter().map(|t| t.tiles_n as u64).sum();
    max > 0 && !tasks.is_empty() && tiles <= max as u64 * tasks.len() as u64
}

impl WorkLists {
    /// `FWD_ONE` (the one-step short-task forward, D 64 and 128): flags each task of exactly two full kv
    /// tiles whose work has a single KV region loaded by TMA (`WorkDesc::flags` bit `TMA_KV`, set
    /// by [`fwd_tensor_maps`]) with [`FWD_ONE_TASK`] in its `pad`. The kernel's producer then
    /// loads both tiles' K into one stage and both V into the next, and its consumers run the
    /// task as one step. Other tasks keep `pad` 0 (this kernel has no half tiles). Returns how
    /// many it flagged.
    pub(super) fn mark_fwd_one(&mut self) -> usize {
        let mut n = 0;
        for i in 0..self.tasks.len() {
            if self.one_step(&self.tasks[i]) {
                let t = &mut self.tasks[i];
                debug_assert_eq!(t.pad, 0, "a short-kernel task with half tiles: {t:?}");
                t.pad = FWD_ONE_TASK;
                n += 1;
            }
        }
        n
    }

    /// How many tasks [`WorkLists::mark_fwd_one`] would flag.
    pub(super) fn count_fwd_one(&self) -> usize {
        self.tasks.iter().filter(|t| self.one_step(t)).count()
    }

    /// Whether `FWD_ONE` runs task `t` as one step: two full kv tiles of a work with a single
    /// KV region loaded by TMA.
    pub(super) fn one_step(&self, t: &TaskDesc) -> bool {
        let w = &self.works[t.work as usize];
        let r = t.tiles_off as usize..(t.tiles_off + t.tiles_n) as usize;
        t.tiles_n == 2
            && w.kv_count == 1
            && w.flags & TMA_KV != 0
            && self.tiles[r].iter().all(|&x| x & PARTIAL == 0)
    }

    /// Appends a work's row ranges to the shared CSR; returns the work's own CSR and the offset
    /// of its first row in `row_ptr` (`WorkDesc::row_off`).
    pub(super) fn push_rows(&mut self, rows: &RowRanges, n_rows: u32) -> (RowCsr, u32) {
        let csr = RowCsr::expand(rows, n_rows);
        let row_off = self.row_ptr.len() as u32;
        let base = self.ranges.len() as u32;
        self.row_ptr.extend(csr.ptr.iter().map(|p| p + base));
        self.ranges.extend_from_slice(&csr.ranges);
        (csr, row_off)
    }

    /// The non-empty kv tiles (`bc` keys) of rows `r0..r1`, `PARTIAL` marking partial ones.
    pub(super) fn classify(
        &mut self,
        csr: &RowCsr,
        r0: u32,
        r1: u32,
        n_keys: u32,
        bc: u32,
    ) -> &[u32] {
        classify(
            csr,
            r0 as usize,
            r1 as usize,
            n_keys,
            bc,
            &mut self.touched,
            &mut self.full,
            &mut self.out,
        );
        &self.out
    }

    /// [`Self::classify`] appended to the tile lists: (offset, count) for a `TaskDesc`.
    pub(super) fn classify_into_tiles(
        &mut self,
        csr: &RowCsr,
        r0: u32,
        r1: u32,
        n_keys: u32,
        bc: u32,
    ) -> (u32, u32) {
        self.classify(csr, r0, r1, n_keys, bc);
        let off = self.tiles.len() as u32;
        self.tiles.extend_from_slice(&self.out);
        if self.mask_mode != TileMasks::None {
            // Placeholders: [`Self::fill_fwd_masks`] decides per work.
            self.tmask
                .resize(self.tmask.len() + self.out.len(), tilemask::NO_MASK);
        }
        (off, self.out.len() as u32)
    }

    /// The forward tasks of work `wdx` (rows `0..n_rows` against `n_keys` keys): per q tile of
    /// `br` rows its kv tiles of `bc` keys ([`Self::classify_into_tiles`]) and one task per query
    /// head. Returns the q tiles as `(r0, r1, tiles_off, tiles_n)`.
    #[allow(
        clippy::too_many_arguments,
        reason = "the work's shape and the kernel's tile sizes"
    )]
    pub(super) fn push_fwd_tasks(
        &mut self,
        csr: &RowCsr,
        wdx: u32,
        n_rows: u32,
        n_keys: u32,
        heads: u32,
        br: u32,
        bc: u32,
    ) -> Vec<(u32, u32, u32, u32)> {
        let mut qtiles = Vec::with_capacity(n_rows.div_ceil(br) as usize);
        let mut r0 = 0u32;
        while r0 < n_rows {
            let r1 = (r0 + br).min(n_rows);
            let (off, n) = self.classify_into_tiles(csr, r0, r1, n_keys, bc);
            qtiles.push((r0, r1, off, n));
            for head in 0..heads {
                self.tasks.push(TaskDesc {
                    work: wdx,
                    row0: r0,
                    head,
                    tiles_off: off,
                    tiles_n: n,
                    pad: 0,
                });
            }
            r0 = r1;
        }
        qtiles
    }

    /// Masks for the partial tiles of one forward work whose q tiles `(r0, r1, tiles_off,
    /// tiles_n)` were classified by [`Self::classify_into_tiles`], when it is worth it
    /// ([`worth_masks`]).
    pub(super) fn fill_fwd_masks(
        &mut self,
        csr: &RowCsr,
        qtiles: &[(u32, u32, u32, u32)],
        n_keys: u32,
    ) {
        if self.mask_mode == TileMasks::None {
            return;
        }
        let entries = |&(_, _, off, n): &(u32, u32, u32, u32)| off as usize..(off + n) as usize;
        let total: usize = qtiles.iter().map(|q| entries(q).len()).sum();
        let partial = qtiles
            .iter()
            .flat_map(entries)
            .filter(|&i| self.tiles[i] & PARTIAL != 0)
            .count();
        if !self.mask_mode.wanted(partial, total) {
            return;
        }
        for q in qtiles {
            for i in entries(q) {
                let t = self.tiles[i];
                if t & PARTIAL != 0 {
                    self.tmask[i] = self.tile_mask(csr, q.0, q.1, t & !PARTIAL, n_keys);
                }
            }
        }
    }

    /// With `half_mode`: marks the half tiles ([`tilemask::fwd_half`], partial tiles only) of one
    /// forward work whose q tiles `(r0, r1, tiles_off, tiles_n)` (128 rows, 128-key tiles) were
    /// classified by [`Self::classify_into_tiles`].
    pub(super) fn mark_fwd_half(
        &mut self,
        csr: &RowCsr,
        qtiles: &[(u32, u32, u32, u32)],
        n_keys: u32,
    ) {
        if !self.half_mode {
            return;
        }
        self.half.resize(self.tiles.len(), false);
        if self.half_bits {
            self.hbits.resize(self.tiles.len(), 0);
        }
        for &(r0, r1, off, n) in qtiles {
            let r = off as usize..(off + n) as usize;
            // A full tile is no half tile; its bits say both halves of both warpgroups.
            self.half[r.clone()].fill(false);
            if self.half_bits {
                self.hbits[r.clone()].fill(0xf);
            }
            for i in r {
                let t = self.tiles[i];
                if t & PARTIAL == 0 {
                    continue;
                }
                if self.half_bits {
                    // From the tile's mask where it has one (cheaper than its rows' ranges).
                    let b = match self.tmask.get(i) {
                        Some(&m) if m != tilemask::NO_MASK => self.mask_seen.fwd_half_bits(m),
                        _ => tilemask::fwd_half_bits(csr, r0, r1, t & !PARTIAL, n_keys),
                    };
                    self.half[i] = (0..2).any(|cw| (b >> (2 * cw)) & 3 != 3);
                    self.hbits[i] = b;
                } else {
                    self.half[i] = tilemask::fwd_half(csr, r0, r1, t & !PARTIAL, n_keys);
                }
            }
        }
    }

    /// After marking ([`Self::mark_fwd_half`]) all of a launch's `n_qtiles` q tile lists: with more
    /// than `max` half tiles per q tile on average (`DCP_CUDA_FWD_HALF_MAX`, [`half_tiles_ok`]),
    /// the launch runs without half steps: `half_mode` off and the marks dropped, so its lists
    /// stay in key order (marking changed no list).
    pub(super) fn limit_fwd_half(&mut self, n_qtiles: usize, max: f64) {
        if self.half_mode && !half_tiles_ok(&self.half, n_qtiles, max) {
            self.half_mode = false;
            self.half_bits = false;
            self.half.clear();
            self.hbits.clear();
        }
    }

    /// With `half_mode`, after the split-K rewrite: each task's slice of the tile list (tasks of
    /// one q tile's heads share it, split pieces have disjoint ones) gets its half tiles first,
    /// the rest after them, both in key order (the mask indices move with their tiles), and the
    /// task their count in `pad` (`attn_fwd_sm90.cu` runs that many tiles through its half step).
    /// Without it every count stays 0. The order of a task's tiles does not change its result
    /// (online softmax), only which step computes them.
    pub(super) fn order_fwd_half(&mut self) {
        if !self.half_mode {
            return;
        }
        self.half.resize(self.tiles.len(), false);
        let bits = self.half_bits;
        if bits {
            self.hbits.resize(self.tiles.len(), 0);
        }
        let WorkLists {
            tasks,
            tiles,
            tmask,
            half,
            hbits,
            ..
        } = self;
        let masks = tmask.len() == tiles.len();
        let mut count: HashMap<(u32, u32), u32> = HashMap::new();
        let mut ordered = vec![false; tiles.len()];
        // The half tiles of one slice (tile word as the kernel reads it, mask index): few, so
        // the slice is partitioned in place — they are held, the others move to the slice's
        // end (walking back, so every read precedes the write over it), then they go first.
        let mut held: Vec<(u32, u32)> = Vec::new();
        for t in tasks.iter_mut() {
            let r = t.tiles_off as usize..(t.tiles_off + t.tiles_n) as usize;
            t.pad = *count.entry((t.tiles_off, t.tiles_n)).or_insert_with(|| {
                assert!(
                    !ordered[r.clone()].iter().any(|&o| o),
                    "forward tile lists {r:?} overlap another task's"
                );
                ordered[r.clone()].fill(true);
                held.clear();
                for i in r.clone().filter(|&i| half[i]) {
                    // FWD_HALFBITS: a half tile's word carries its warpgroups' halves.
                    let word = if bits {
                        assert!(
                            tiles[i] & !PARTIAL < 1 << 27,
                            "key tile {} does not fit FWD_HALFBITS' 27 bits",
                            tiles[i] & !PARTIAL
                        );
                        tiles[i] | hbits[i] << 27
                    } else {
                        tiles[i]
                    };
                    held.push((word, if masks { tmask[i] } else { 0 }));
                }
                let n = held.len();
                if n == 0 {
                    return 0;
                }
                let mut w = r.end;
                for i in r.clone().rev() {
                    if !half[i] {
                        w -= 1;
                        tiles[w] = tiles[i];
                        if masks {
                            tmask[w] = tmask[i];
                        }
                    }
                }
                debug_assert_eq!(w, r.start + n);
                for (k, &(word, m)) in held.iter().enumerate() {
                    tiles[r.start + k] = word;
                    if masks {
                        tmask[r.start + k] = m;
                    }
                }
                half[r.clone()]
                    .iter_mut()
                    .enumerate()
                    .for_each(|(k, h)| *h = k < n);
                n as u32
            });
        }
    }

    /// The precomputed mask of the partial tile (rows `r0..r1`, key tile `kt`) in this launch's
    /// layout: its index in `masks`, or [`tilemask::NO_MASK`] when masks are off or the launch
    /// has used its [`tilemask::MAX_MASK_WORDS`].
    pub(super) fn tile_mask(
        &mut self,
        csr: &RowCsr,
        r0: u32,
        r1: u32,
        kt: u32,
        n_keys: u32,
    ) -> u32 {
        let Some(layout) = self.mask_mode.layout() else {
            return tilemask::NO_MASK;
        };
        tilemask::push_distinct(
            layout,
            csr,
            r0,
            r1,
            kt,
            n_keys,
            &mut self.mask_rows,
            &mut self.mask_seen,
            &mut self.masks,
            tilemask::MAX_MASK_WORDS,
        )
        .unwrap_or(tilemask::NO_MASK)
    }

    /// The sm90 kernels' last two arguments: the tiles' mask indices and the masks.
    pub(super) fn mask_args(&self, arena: &mut Arena) -> [Arg; 2] {
        // The kernels index `tmask` like `tiles`: one entry each, or they would read past it.
        assert!(
            self.mask_mode == TileMasks::None || self.tmask.len() == self.tiles.len(),
            "tile mask indices ({}) out of step with the tiles ({})",
            self.tmask.len(),
            self.tiles.len()
        );
        [
            Arg::Arena(arena.push(as_bytes(&self.tmask))),
            Arg::Arena(arena.push(as_bytes(&self.masks))),
        ]
    }

    /// Forward split-K, the part that needs no GPU: which rows of each work are cut into how
    /// many key pieces. A forward task (`br` query rows of one head) walks its kv tiles in one
    /// CTA, so a launch of a few works with long key ranges (a late stage of a dcp plan on one
    /// long causal sequence: 3 works of 1024 rows over 60-90K keys, 192 tasks for 132 SMs), or
    /// of one work where a few rows see far more keys than the rest (causal-blockwise: the last
    /// block attends everything, the others a window), runs at the speed of its longest task.
    /// A task is long when it has more than `max(total tiles / (4 · sms), FWD_SPLIT_MIN_TILES)`
    /// tiles; a work with long tasks has the rows from its first long task's to its last long
    /// task's cut into `ceil(longest / that)` pieces (at most `FWD_SPLIT_MAX`, and within
    /// `scratch_cap` bytes of fp32 partial outputs, where a row of a piece costs
    /// `row_bytes[work]`), its other rows are left whole. Launches that already fill the GPU
    /// (any packed batch, ring steps over thousands of rows) are left as they are.
    pub(super) fn fwd_split(
        &self,
        sms: u64,
        row_bytes: &[u64],
        scratch_cap: u64,
        br: u32,
    ) -> Vec<FwdSplit> {
        let total: u64 = self.tasks.iter().map(|t| t.tiles_n as u64).sum();
        let chunk = total.div_ceil(4 * sms.max(1)).max(FWD_SPLIT_MIN_TILES);
        let mut longest = vec![0u32; self.works.len()];
        let mut span = vec![(u32::MAX, 0u32); self.works.len()];
        for t in &self.tasks {
            let w = t.work as usize;
            longest[w] = longest[w].max(t.tiles_n);
            if t.tiles_n as u64 > chunk {
                let end = (t.row0 + br).min(self.works[w].n_rows);
                span[w] = (span[w].0.min(t.row0), span[w].1.max(end));
            }
        }
        // Longest works first, so that the scratch cap drops the least useful splits.
        let mut order: Vec<usize> = (0..longest.len()).collect();
        order.sort_by_key(|&w| std::cmp::Reverse(longest[w]));
        let mut out = vec![FwdSplit::NONE; longest.len()];
        let mut used = 0u64;
        for w in order {
            let (r0, r1) = span[w];
            if r0 >= r1 {
                continue;
            }
            let want = (longest[w] as u64)
                .div_ceil(chunk)
                .min(FWD_SPLIT_MAX as u64);
            let piece = (r1 - r0) as u64 * row_bytes[w].max(1);
            let np = want.min((scratch_cap - used) / piece);
            if np >= 2 {
                out[w] = FwdSplit {
                    pieces: np as u32,
                    r0,
                    r1,
                };
                used += np * piece;
            }
        }
        // Only where the cut shortens the schedule: the persistent kernel hands out tasks
        // longest first, i.e. list scheduling, whose makespan `lpt_makespan` estimates. A split
        // costs fp32 partial outputs and a merge launch: one 8K full-mask work (512 tasks of 64
        // tiles, cut in 2 at chunk 63 on 132 SMs, the schedule no shorter) ran 557 TFLOP/s split
        // and 642 whole (kernels-2026-11-29-kf13, call 2). Hence a cut must shorten it by 10 %.
        if out.iter().any(|s| s.pieces >= 2) {
            let m = sms.max(1) as usize;
            let whole: Vec<u64> = self.tasks.iter().map(|t| t.tiles_n as u64).collect();
            let mut cut = Vec::with_capacity(self.tasks.len());
            for t in &self.tasks {
                let s = out[t.work as usize];
                let n = t.tiles_n as u64;
                if s.pieces >= 2 && t.row0 >= s.r0 && t.row0 < s.r1 {
                    let np = s.pieces as u64;
                    cut.extend((0..np).map(|p| (n * (p + 1)) / np - (n * p) / np));
                } else {
                    cut.push(n);
                }
            }
            if 10 * lpt_makespan(cut, m) >= 9 * lpt_makespan(whole, m) {
                out.fill(FwdSplit::NONE);
            }
        }
        out
    }

    /// Applies [`Self::fwd_split`]'s splits: a work split into `np` pieces over rows `r0..r1`
    /// gets `np` shadow works (`shadow(w, p, work)` redirects a piece's O / LSE; here they are
    /// already narrowed to those rows: Q moved by `r0` rows of `q_elem`-byte elements, the
    /// CSR offset by `r0`), and each of its tasks in those rows becomes `np` tasks over
    /// consecutive, near-equal slices of its tile list (a slice may be empty: that piece writes
    /// O = 0, LSE = −∞ for those rows); its tasks outside them stay on the work.
    pub(super) fn apply_fwd_split(
        &mut self,
        splits: &[FwdSplit],
        q_elem: u64,
        mut shadow: impl FnMut(usize, u32, WorkDesc) -> WorkDesc,
    ) {
        let mut first = vec![u32::MAX; splits.len()];
        for (w, s) in splits.iter().enumerate() {
            if s.pieces >= 2 {
                first[w] = self.works.len() as u32;
                let wd = self.works[w];
                let base = WorkDesc {
                    q: wd.q + s.r0 as u64 * wd.q_stride as u64 * q_elem,
                    n_rows: s.r1 - s.r0,
                    row_off: wd.row_off + s.r0,
                    ..wd
                };
                for p in 0..s.pieces {
                    self.works.push(shadow(w, p, base));
                }
            }
        }
        let mut out = Vec::with_capacity(self.tasks.len());
        for t in &self.tasks {
            let s = splits[t.work as usize];
            if s.pieces < 2 || t.row0 < s.r0 || t.row0 >= s.r1 {
                out.push(*t);
                continue;
            }
            let (n, np) = (t.tiles_n as u64, s.pieces as u64);
            for p in 0..np {
                let (lo, hi) = (n * p / np, n * (p + 1) / np);
                out.push(TaskDesc {
                    work: first[t.work as usize] + p as u32,
                    row0: t.row0 - s.r0,
                    tiles_off: t.tiles_off + lo as u32,
                    tiles_n: (hi - lo) as u32,
                    ..*t
                });
            }
        }
        self.tasks = out;
    }

    /// Orders the tasks for L2 reuse where the launch's works together do not fit in `budget`
    /// bytes (`bytes`: what one work's tasks keep re-reading or reducing into, e.g. a backward
    /// work's fp32 dQ with its Q and dO). The works, taken longest task first (list order among
    /// equals), are cut into windows of at most `budget` bytes (a larger work alone); the tasks
    /// run window by window, longest first inside each. Plain longest-first across the whole
    /// launch ran the first kv tiles of every document of a batch of short causal documents
    /// together, so the concurrent tasks' dQ reductions spanned the whole batch and went to DRAM.
    /// Only a launch of more than `ctas / L2_SPREAD` works with tasks is reordered: with fewer,
    /// longest first already runs each work's tasks side by side (on 2 GPUs, 8-9 documents of
    /// 4-15K tokens per launch: the windows cost the backward 2-4 %, its concurrent tasks then
    /// reducing into the same dQ rows). `budget` 0, tasks already in launch order (chains), or
    /// works that fit in one window: nothing changes (`finish` sorts longest first).
    ///
    /// With `by_kv` (the forward) the works that read overlapping KV ([`kv_units`]) count as one
    /// unit, windowed and gated together: split apart, their shared K/V would be loaded once per
    /// window (on 2 GPUs, dcp's own placements of one long sequence ran the forward 6-12 %
    /// slower with every work its own unit).
    pub(super) fn order_for_l2(
        &mut self,
        (budget, tail_pct): (u64, u32),
        ctas: u32,
        by_kv: bool,
        bytes: impl Fn(&WorkDesc) -> u64,
    ) {
        if budget == 0 || self.keep_order || self.works.len() < 2 {
            return;
        }
        let unit: Vec<u32> = if by_kv {
            kv_units(&self.works, &self.segs)
        } else {
            (0..self.works.len() as u32).collect()
        };
        let mut has = vec![false; self.works.len()];
        for t in &self.tasks {
            has[unit[t.work as usize] as usize] = true;
        }
        if has.iter().filter(|&&h| h).count() as u64 * L2_SPREAD <= ctas as u64 {
            return;
        }
        let window = l2_windows(&self.works, &unit, &self.tasks, budget, tail_pct, bytes);
        if window.iter().all(|&w| w == 0) {
            return;
        }
        self.tasks.sort_by_key(|t| {
            (
                window[unit[t.work as usize] as usize],
                std::cmp::Reverse(t.tiles_n),
            )
        });
        self.keep_order = true;
    }

    /// The launch order of the tasks (unless [`Self::keep_order`]): longest first, and with
    /// [`Self::partial_first`] among equal lengths those with more partial tiles first. A
    /// partial tile's step runs the masked path, which costs more: one 8 096-token full-mask
    /// document's backward has one masked kv tile list, whose pieces had been claimed last
    /// among their length and ran in the launch's tail (backward +11.5 % at D 128, +24 % at
    /// D 64 with them first; bench/results/gpu-x1-2026-12-01s36/ call 3).
    pub(super) fn sort_tasks(&mut self) {
        if self.keep_order {
            return;
        }
        use std::cmp::Reverse;
        if self.partial_first {
            let tiles = &self.tiles;
            // Stable (keyed with the index), so equal keys keep their list order.
            self.tasks.sort_by_cached_key(|t| {
                let own = &tiles[t.tiles_off as usize..(t.tiles_off + t.tiles_n) as usize];
                let partial = own.iter().filter(|&&x| x & PARTIAL != 0).count();
                (Reverse(t.tiles_n), Reverse(partial))
            });
        } else {
            self.tasks.sort_by_key(|t| Reverse(t.tiles_n));
        }
    }

    /// Orders the tasks ([`Self::sort_tasks`]: longest first, for the tail), counts them, and puts the six
    /// arrays into the arena: the launch's grid and its first six arguments (works, segments,
    /// tasks, tiles, row pointers, ranges).
    pub(super) fn finish(mut self, arena: &mut Arena, stats: &mut ProgramStats) -> (u32, Vec<Arg>) {
        self.sort_tasks();
        stats.attn_tasks += self.tasks.len();
        let args = vec![
            Arg::Arena(arena.push(as_bytes(&self.works))),
            Arg::Arena(arena.push(as_bytes(&self.segs))),
            Arg::Arena(arena.push(as_bytes(&self.tasks))),
            Arg::Arena(arena.push(as_bytes(&self.tiles))),
            Arg::Arena(arena.push(as_bytes(&self.row_ptr))),
            Arg::Arena(arena.push(as_bytes(&self.ranges))),
        ];
        (self.tasks.len() as u32, args)
    }
}

/// Forward split-K of one work ([`WorkLists::fwd_split`]): `pieces` key pieces over its rows
/// `r0..r1`; `pieces` < 2: not split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FwdSplit {
    pub(super) pieces: u32,
    pub(super) r0: u32,
    pub(super) r1: u32,
}

impl FwdSplit {
    pub(super) const NONE: Self = Self {
        pieces: 1,
        r0: 0,
        r1: 0,
    };
}

/// Bytes of one element of a region's dtype code.
pub(super) fn dtype_bytes(code: u32) -> u64 {
    if code == DT_F32 {
        4
    } else {
        2
    }
}

/// Rows `r0..r1` of a region (its first `r0` rows skipped).
pub(super) fn rows_of(r: RegionDesc, r0: u32, r1: u32) -> RegionDesc {
    RegionDesc {
        ptr: r.ptr + r0 as u64 * r.stride as u64 * dtype_bytes(r.dtype),
        len: r1 - r0,
        ..r
    }
}

/// Forward split-K: fewest kv tiles per piece (2048 keys of 128: ~130 MFLOP per head, far
/// above the cost of writing and merging a 128-row fp32 partial output).
pub(super) const FWD_SPLIT_MIN_TILES: u64 = 16;
/// Forward split-K: most pieces per work.
pub(super) const FWD_SPLIT_MAX: u32 = 16;

/// Makespan, in tiles plus one per task (its epilogue), of `lens` (tiles per task) handed out
/// longest first to `m` persistent CTAs, each taking the next task when it finishes one.
pub(super) fn lpt_makespan(mut lens: Vec<u64>, m: usize) -> u64 {
    use std::cmp::Reverse;
    lens.sort_unstable_by(|a, b| b.cmp(a));
    let mut cta: std::collections::BinaryHeap<Reverse<u64>> =
        (0..m.max(1)).map(|_| Reverse(0)).collect();
    for n in lens {
        let Reverse(t) = cta.pop().expect("m >= 1");
        cta.push(Reverse(t + n + 1));
    }
    cta.into_iter().map(|Reverse(t)| t).max().unwrap_or(0)
}
/// Forward split-K: most bytes of fp32 partial outputs per attention instruction.
pub(super) const FWD_SPLIT_SCRATCH: u64 = 128 << 20;
