//! The backward's saved buffers ([`BufferRole::Saved`]): a saved buffer starts the backward with
//! the forward's final contents of the forward buffer it names.
//!
//! Values carry over as they are, with two renamings: a partial O or LSE result is the final O or
//! LSE of its token and head when the forward's output buffer on that token's owner ends holding
//! the very same value (same coverage node, so the same pairs), because [`super::Validator::finish`]
//! proved every output cell complete. Such a value becomes the backward input it equals
//! (`In { O | Lse }`), which is what a backward work's O and LSE operands must hold. A partial
//! result that never became the output becomes [`Val::Stale`] (its coverage names the forward's
//! nodes, which the backward does not have), which no backward instruction takes; anything else
//! (a fill, nothing) keeps its forward value. A backward work, merge or sum reading either is
//! refused with the usual "wrong content" error.

use super::state::{continues, Buf, Few1, Part, Rows, Val};
use super::Ctx;
use crate::error::PlanErrorKind;
use crate::plan::{BufferDecl, BufferRole, IoTensor, Program, Region};

/// The forward's final buffer states, per device and buffer.
pub(super) type FwdEnd = Vec<Vec<Buf>>;

/// The initial state of backward buffer `buf` (`decl`, role `Saved { forward }`) of `dev`.
pub(super) fn saved_state(
    cx: &Ctx,
    fwd: &FwdEnd,
    dev: usize,
    buf: u32,
    decl: &BufferDecl,
    forward: u32,
) -> Result<Buf, PlanErrorKind> {
    let bad = |problem: String| PlanErrorKind::SavedBuffer {
        buf,
        name: decl.name.clone(),
        forward,
        problem,
    };
    let fprog = &cx.plan.devices[dev].forward;
    let Some(fd) = fprog.buffers.get(forward as usize) else {
        return Err(bad(format!(
            "the forward program declares only {} buffers",
            fprog.buffers.len()
        )));
    };
    let shape = |b: &BufferDecl| (b.tokens, b.heads, b.width, b.dtype);
    if shape(fd) != shape(decl) {
        return Err(bad(format!(
            "forward buffer `{}` has shape {:?} (tokens, heads, width, dtype), this one {:?}",
            fd.name,
            shape(fd),
            shape(decl)
        )));
    }
    let mut out = Buf::new(decl.tokens, decl.heads, decl.width);
    let all = Region {
        buf: forward,
        tok: 0,
        len: decl.tokens,
        head: 0,
        heads: decl.heads,
    };
    for rows in &fwd[dev][forward as usize].read(&all) {
        for &(c0, c1, v) in &rows.cols {
            let mut put = |r0: u32, r1: u32, v: Val| {
                let r = Region {
                    buf,
                    tok: r0,
                    len: r1 - r0,
                    head: c0,
                    heads: c1 - c0,
                };
                out.write(&r, Few1::One(Rows::one(0, r1 - r0, c1 - c0, v)));
            };
            let Some(t) = final_of(&v) else {
                if !v.is_unset() {
                    put(rows.r0, rows.r1, stale(v));
                }
                continue;
            };
            // The rows may hold several owners' tokens: one piece per owner.
            let mut r = rows.r0;
            while r < rows.r1 {
                let here = v.shift(r - rows.r0, 0);
                let Val::Part { g, head, .. } = here else {
                    unreachable!("a shifted partial result is one")
                };
                let d = cx.gmap.device_at(g, dev);
                let b0 = cx.gmap.base(d as u32);
                let end = b0 + cx.plan.devices[d].local_tokens() as u64;
                let n = ((end - g).min((rows.r1 - r) as u64)) as u32;
                // The owner's rows of this piece: rows g − b0 on, the piece's heads.
                let at = Region {
                    buf: 0,
                    tok: (g - b0) as u32,
                    len: n,
                    head,
                    heads: c1 - c0,
                };
                let v = if holds(cx, fwd, d, t, at, &here) {
                    Val::In { t, g, head }
                } else {
                    stale(here)
                };
                put(r, r + n, v);
                r += n;
            }
        }
    }
    Ok(out)
}

/// A forward value as a backward buffer keeps it: a partial result becomes [`Val::Stale`] (its
/// coverage names the forward's nodes, which the backward does not have).
fn stale(v: Val) -> Val {
    match v {
        Val::Part { p, g, head, .. } => Val::Stale { p, g, head },
        other => other,
    }
}

/// The output tensor a partial result of the forward ends in.
fn final_of(v: &Val) -> Option<IoTensor> {
    match v {
        Val::Part { p: Part::O, .. } => Some(IoTensor::O),
        Val::Part { p: Part::Lse, .. } => Some(IoTensor::Lse),
        _ => None,
    }
}

/// Whether device `d`'s forward output `t` ends holding `v` (and its continuation) at `at`'s
/// rows and heads (its buffer field is ignored).
fn holds(cx: &Ctx, fwd: &FwdEnd, d: usize, t: IoTensor, at: Region, v: &Val) -> bool {
    let Some(ob) = cx.plan.devices[d].forward.io(t) else {
        return false;
    };
    let decl = &cx.plan.devices[d].forward.buffers[ob as usize];
    let r = Region { buf: ob, ..at };
    if r.tok as u64 + r.len as u64 > decl.tokens as u64 || r.head + r.heads > decl.heads {
        return false;
    }
    fwd[d][ob as usize]
        .read(&r)
        .iter()
        .all(|rw| rw.cols.iter().all(|(a, _, w)| continues(v, rw.r0, *a, w)))
}

/// The first instruction of `prog` that writes one of its saved buffers, with the buffer: saved
/// buffers are read-only in the backward, so an executor may hand the forward's own buffers to
/// every backward run after it.
pub(super) fn first_write(prog: &Program) -> Option<(usize, u32)> {
    let saved = |b: u32| {
        matches!(
            prog.buffers.get(b as usize).map(|d| d.role),
            Some(BufferRole::Saved { .. })
        )
    };
    if !(0..prog.buffers.len() as u32).any(saved) {
        return None;
    }
    prog.instrs.iter().enumerate().find_map(|(i, ins)| {
        let mut hit = None;
        ins.for_each_write(|r| {
            if hit.is_none() && saved(r.buf) {
                hit = Some(r.buf);
            }
        });
        hit.map(|b| (i, b))
    })
}
