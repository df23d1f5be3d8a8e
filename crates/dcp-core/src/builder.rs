//! Helpers planners use to emit programs: buffer declarations with the IO conventions, and the
//! per-row key ranges of a work computed from the mask and the token spans of its query and KV
//! regions.

use crate::mask::{normalize_ranges, CompiledMask};
use crate::plan::{BufferDecl, BufferRole, Instr, IoTensor, Program, Region, RowRanges};
use crate::spec::{DType, ModelShape};

/// Builds one program.
#[derive(Debug, Default)]
pub struct ProgramBuilder {
    pub prog: Program,
}

impl ProgramBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn buffer(
        &mut self,
        name: &str,
        role: BufferRole,
        dtype: DType,
        tokens: u32,
        heads: u32,
        width: u32,
    ) -> u32 {
        self.prog.buffers.push(BufferDecl {
            name: name.to_string(),
            role,
            dtype,
            tokens,
            heads,
            width,
        });
        (self.prog.buffers.len() - 1) as u32
    }

    /// Declares the buffer of a caller tensor with its standard shape.
    pub fn io(&mut self, t: IoTensor, model: &ModelShape, tokens: u32) -> u32 {
        let d = model.head_dim;
        let (heads, width, dtype) = match t {
            IoTensor::Kv | IoTensor::DKv => (model.kv_heads, 2 * d, model.dtype),
            IoTensor::Lse => (model.heads, 1, DType::F32),
            _ => (model.heads, d, model.dtype),
        };
        let name = format!("{t:?}").to_lowercase();
        self.buffer(&name, BufferRole::Io(t), dtype, tokens, heads, width)
    }

    /// Scratch buffer shaped like a caller tensor (`kv` selects KV geometry), in `dtype`.
    pub fn scratch(
        &mut self,
        name: &str,
        model: &ModelShape,
        kind: ScratchKind,
        tokens: u32,
        dtype: DType,
    ) -> u32 {
        let d = model.head_dim;
        let (heads, width) = match kind {
            ScratchKind::Q => (model.heads, d),
            ScratchKind::Kv => (model.kv_heads, 2 * d),
            ScratchKind::Lse => (model.heads, 1),
        };
        self.buffer(name, BufferRole::Scratch, dtype, tokens, heads, width)
    }

    pub fn push(&mut self, i: Instr) {
        self.prog.instrs.push(i);
    }

    /// A region of all heads of `len` rows from `tok`.
    pub fn rows(&self, buf: u32, tok: u32, len: u32) -> Region {
        Region {
            buf,
            tok,
            len,
            head: 0,
            heads: self.prog.buffers[buf as usize].heads,
        }
    }

    pub fn finish(self) -> Program {
        self.prog
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScratchKind {
    Q,
    Kv,
    Lse,
}

/// Row ranges of a work whose query rows are the tokens of `q_spans` (in order) and whose KV is
/// the concatenation of `kv_spans` (token `(start, len)` pairs of the same sequence). Returns the
/// ranges and the attended pairs per head.
pub fn work_rows(
    mask: &CompiledMask,
    q_spans: &[(u32, u32)],
    kv_spans: &[(u32, u32)],
) -> (RowRanges, u64) {
    let sorted = kv_spans.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0);
    if sorted {
        work_rows_linear(mask, q_spans, kv_spans)
    } else {
        work_rows_by_row(mask, q_spans, kv_spans)
    }
}

/// Rows of one query row `t`: the mask's ranges clipped to the KV spans, in concat coordinates.
fn clip_row(
    mask: &CompiledMask,
    t: u32,
    kv_spans: &[(u32, u32)],
    kv_off: &[u32],
    rr: &mut Vec<(u32, u32)>,
    out: &mut Vec<(u32, u32)>,
) {
    mask.row_ranges_into(t, rr);
    out.clear();
    for (k, &(ks, kl)) in kv_spans.iter().enumerate() {
        for &(a, b) in rr.iter() {
            let s = a.max(ks);
            let e = b.min(ks + kl);
            if s < e {
                let r = (s - ks + kv_off[k], e - ks + kv_off[k]);
                match out.last_mut() {
                    Some(last) if last.1 == r.0 => last.1 = r.1,
                    _ => out.push(r),
                }
            }
        }
    }
}

/// Fast path for sorted KV spans: between breakpoints (mask segment edges, rows where a range
/// end crosses a span edge or where a range empties) every clipped range moves linearly, so
/// only two rows per run are evaluated.
fn work_rows_linear(
    mask: &CompiledMask,
    q_spans: &[(u32, u32)],
    kv_spans: &[(u32, u32)],
) -> (RowRanges, u64) {
    // Planners call this once per work (millions of times for a large ring plan): the
    // temporaries live in a per-thread scratch instead of being allocated per call.
    SCRATCH.with(|s| {
        let s = &mut *s.borrow_mut();
        work_rows_linear_in(s, mask, q_spans, kv_spans)
    })
}

/// Reused temporaries of [`work_rows_linear`].
#[derive(Default)]
struct Scratch {
    kv_off: Vec<u32>,
    edges: Vec<i64>,
    rr: Vec<(u32, u32)>,
    a: Vec<(u32, u32)>,
    b: Vec<(u32, u32)>,
    slopes: Vec<(i64, i64)>,
    cuts: Vec<i64>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

fn work_rows_linear_in(
    sc: &mut Scratch,
    mask: &CompiledMask,
    q_spans: &[(u32, u32)],
    kv_spans: &[(u32, u32)],
) -> (RowRanges, u64) {
    let Scratch {
        kv_off,
        edges,
        rr,
        a,
        b,
        slopes,
        cuts,
    } = sc;
    kv_off.clear();
    edges.clear();
    edges.extend([0, mask.len as i64]);
    let mut acc = 0u32;
    for &(ks, kl) in kv_spans {
        kv_off.push(acc);
        acc += kl;
        edges.extend([ks as i64, (ks + kl) as i64]);
    }
    let mut rows = RowRanges::builder();
    let mut attended = 0u64;
    for &(qs, ql) in q_spans {
        let (q0, q1) = (qs as i64, (qs + ql) as i64);
        cuts.clear();
        cuts.extend([q0, q1]);
        let first = mask.segs.partition_point(|s| s.rows.1 <= q0);
        for seg in &mask.segs[first..] {
            if seg.rows.0 >= q1 {
                break;
            }
            cuts.extend([seg.rows.0, seg.rows.1]);
            for r in &seg.ranges {
                for lin in [r.start, r.end] {
                    if lin.slope != 0 {
                        for &e in edges.iter() {
                            let x = (e - lin.c).div_euclid(lin.slope);
                            cuts.extend([x, x + 1]);
                        }
                    }
                }
                if r.start.slope != r.end.slope {
                    let x = (r.start.c - r.end.c).div_euclid(r.end.slope - r.start.slope);
                    cuts.extend([x, x + 1]);
                }
            }
        }
        cuts.retain(|&c| c >= q0 && c <= q1);
        cuts.sort_unstable();
        cuts.dedup();
        for w in cuts.windows(2) {
            let (p, q) = (w[0] as u32, w[1] as u32);
            clip_row(mask, p, kv_spans, kv_off, rr, a);
            let n = q - p;
            if n == 1 {
                rows.push(a);
                attended += a.iter().map(|&(s, e)| (e - s) as u64).sum::<u64>();
                continue;
            }
            clip_row(mask, p + 1, kv_spans, kv_off, rr, b);
            debug_assert_eq!(a.len(), b.len(), "breakpoints must keep the range count");
            slopes.clear();
            slopes.extend(
                a.iter()
                    .zip(b.iter())
                    .map(|(x, y)| (y.0 as i64 - x.0 as i64, y.1 as i64 - x.1 as i64)),
            );
            rows.push_linear(n, a, slopes);
            // Lengths are linear in the row: (first + last) · n / 2.
            for (&(s, e), &(ds, de)) in a.iter().zip(slopes.iter()) {
                let l0 = (e - s) as i64;
                let l1 = l0 + (de - ds) * (n as i64 - 1);
                attended += ((l0 + l1) * n as i64 / 2) as u64;
            }
        }
    }
    (rows.finish(), attended)
}

fn work_rows_by_row(
    mask: &CompiledMask,
    q_spans: &[(u32, u32)],
    kv_spans: &[(u32, u32)],
) -> (RowRanges, u64) {
    let mut kv_off = Vec::with_capacity(kv_spans.len());
    let mut acc = 0u32;
    for &(_, l) in kv_spans {
        kv_off.push(acc);
        acc += l;
    }
    let mut rows = RowRanges::builder();
    let mut rr = Vec::new();
    let mut out: Vec<(u32, u32)> = Vec::new();
    let mut attended = 0u64;
    // KV spans sorted by token, so each row's output comes out sorted when spans are in order.
    let sorted = kv_spans.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0);
    for &(qs, ql) in q_spans {
        for t in qs..qs + ql {
            mask.row_ranges_into(t, &mut rr);
            out.clear();
            for (k, &(ks, kl)) in kv_spans.iter().enumerate() {
                for &(a, b) in &rr {
                    let s = a.max(ks);
                    let e = b.min(ks + kl);
                    if s < e {
                        let r = (s - ks + kv_off[k], e - ks + kv_off[k]);
                        // Ranges touching in concat coordinates merge (contiguous positions).
                        match out.last_mut() {
                            Some(last) if sorted && last.1 == r.0 => last.1 = r.1,
                            _ => out.push(r),
                        }
                    }
                }
            }
            if !sorted {
                let n = normalize_ranges(&out);
                out.clear();
                out.extend(n);
            }
            attended += out.iter().map(|&(s, e)| (e - s) as u64).sum::<u64>();
            rows.push(&out);
        }
    }
    (rows.finish(), attended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::random_case;

    #[test]
    fn linear_rows_equal_row_by_row() {
        let mut buf_a = Vec::new();
        let mut buf_b = Vec::new();
        for seed in 0..300u64 {
            let (batch, _) = random_case(seed, 120);
            for s in &batch.seqs {
                let m = s.mask.compile(s.len);
                let l = s.len;
                let cut = |x: u64| {
                    (seed.wrapping_mul(2654435761).wrapping_add(x) % (l as u64 + 1)) as u32
                };
                let (c1, c2) = {
                    let (a, b) = (cut(1), cut(7));
                    (a.min(b), a.max(b))
                };
                let q_spans = [(0, c1), (c2, l - c2)];
                let kv_spans = [(0, c1.max(1).min(l)), (c2.min(l - 1), l - c2.min(l - 1))];
                let kv_spans: Vec<(u32, u32)> = kv_spans.into_iter().filter(|s| s.1 > 0).collect();
                let kv_sorted = kv_spans.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0);
                if !kv_sorted {
                    continue;
                }
                let (fast, fa) = work_rows_linear(&m, &q_spans, &kv_spans);
                let (slow, sa) = work_rows_by_row(&m, &q_spans, &kv_spans);
                assert_eq!(fa, sa, "seed {seed}");
                assert_eq!(fast.attended(), sa);
                assert_eq!(fast.n_rows(), slow.n_rows());
                for r in 0..slow.n_rows() {
                    fast.row(r, &mut buf_a);
                    slow.row(r, &mut buf_b);
                    assert_eq!(buf_a, buf_b, "seed {seed} row {r} mask {:?}", s.mask);
                }
            }
        }
    }
}
