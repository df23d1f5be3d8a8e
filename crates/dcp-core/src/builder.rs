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
    let mut kv_off = Vec::with_capacity(kv_spans.len());
    let mut acc = 0u32;
    for &(_, l) in kv_spans {
        kv_off.push(acc);
        acc += l;
    }
    let mut rows = Vec::new();
    let mut rr = Vec::new();
    let mut attended = 0u64;
    for &(qs, ql) in q_spans {
        for t in qs..qs + ql {
            mask.row_ranges_into(t, &mut rr);
            let mut out = Vec::with_capacity(rr.len());
            for (k, &(ks, kl)) in kv_spans.iter().enumerate() {
                for &(a, b) in &rr {
                    let s = a.max(ks);
                    let e = b.min(ks + kl);
                    if s < e {
                        out.push((s - ks + kv_off[k], e - ks + kv_off[k]));
                    }
                }
            }
            let out = normalize_ranges(&out);
            attended += out.iter().map(|&(s, e)| (e - s) as u64).sum::<u64>();
            rows.push(out);
        }
    }
    (RowRanges::from_rows(&rows), attended)
}
