//! Layout and declarations: every token of every sequence is held by exactly one device, device
//! entries are numbered in order, and each program declares its caller tensors with the layout's
//! shape. Sets up the validator's initial buffer contents from the layout.

use super::state::{Buf, Few1, Rows, Val};
use super::{pairs, Ctx, DevCache, DevState, Validator};
use crate::error::{LayoutFault, PlanError, PlanErrorKind};
use crate::interp::{program, program_name};
use crate::plan::{BufferRole, IoTensor, Plan};

/// Every token of every sequence is held by exactly one device.
pub(super) fn check_layout(plan: &Plan) -> Result<(), PlanError> {
    let err = |dev: u32, seq: u32, token: u32, fault: LayoutFault| {
        PlanError::new(
            dev,
            "layout",
            None,
            PlanErrorKind::Layout { seq, token, fault },
        )
    };
    let mut seen: Vec<Vec<(u32, u32, u32)>> = vec![Vec::new(); plan.batch.seqs.len()];
    for d in &plan.devices {
        for s in &d.layout {
            let Some(seq) = plan.batch.seqs.get(s.seq as usize) else {
                return Err(err(d.device, s.seq, s.start, LayoutFault::UnknownSequence));
            };
            if s.len == 0 || s.start as u64 + s.len as u64 > seq.len as u64 {
                let fault = LayoutFault::BadSpan {
                    start: s.start,
                    end: s.start.saturating_add(s.len),
                    len: seq.len,
                };
                return Err(err(d.device, s.seq, s.start, fault));
            }
            seen[s.seq as usize].push((s.start, s.start + s.len, d.device));
        }
    }
    for (si, spans) in seen.iter_mut().enumerate() {
        spans.sort_unstable();
        let mut at = 0;
        for &(a, b, dev) in spans.iter() {
            if a != at {
                let fault = if a < at {
                    LayoutFault::HeldTwice
                } else {
                    LayoutFault::HeldByNone
                };
                return Err(err(dev, si as u32, at.min(a), fault));
            }
            at = b;
        }
        if at != plan.batch.seqs[si].len {
            return Err(err(0, si as u32, at, LayoutFault::HeldByNone));
        }
    }
    Ok(())
}

fn io_width(t: IoTensor, d: u32) -> u32 {
    match t {
        IoTensor::Kv | IoTensor::DKv => 2 * d,
        IoTensor::Lse => 1,
        _ => d,
    }
}

fn io_heads(t: IoTensor, heads: u32, kv_heads: u32) -> u32 {
    match t {
        IoTensor::Kv | IoTensor::DKv => kv_heads,
        _ => heads,
    }
}

/// Room for the coverage nodes validating one program makes on device `d` (a leaf per forward
/// work, a leaf and a join per backward work's dQ and dKV, a join per merge or sum input):
/// two per instruction, without a pass over them. Measured on 131K-token plans, a device makes
/// at most 0.5 (forward) and 0.8 (backward) per instruction for ring and zigzag, 0.8 and 1.4
/// for usp; dcp's larger stages (up to 4.3) grow the arena instead.
fn cov_nodes(plan: &Plan, d: usize, backward: bool) -> usize {
    2 * program(plan, d, backward).instrs.len()
}

impl<'a> Validator<'a> {
    /// `parallel`: local phases run on rayon's threads ([`super::Threads::Phases`]);
    /// `shared`: coverage nodes in arenas that devices running concurrently share (`parallel`,
    /// or [`super::Threads::Flow`]).
    pub(super) fn new(
        cx: &'a Ctx<'a>,
        works: &'a [pairs::WorkArena<'a>],
        backward: bool,
        parallel: bool,
        shared: bool,
        caches: Vec<DevCache<'a>>,
        saved: Option<&super::saved::FwdEnd>,
    ) -> Result<Self, PlanError> {
        let plan = cx.plan;
        let pname = program_name(backward);
        let m = plan.batch.model;
        // Tensors a program may exchange with its caller, and those it must: a backward that
        // reads Q, KV, O or LSE only from the forward's saved buffers need not declare them.
        let (allowed, needed): (&[IoTensor], &[IoTensor]) = if backward {
            (
                &[
                    IoTensor::Q,
                    IoTensor::Kv,
                    IoTensor::O,
                    IoTensor::Lse,
                    IoTensor::DO,
                    IoTensor::DQ,
                    IoTensor::DKv,
                ],
                &[IoTensor::DO, IoTensor::DQ, IoTensor::DKv],
            )
        } else {
            let f = &[IoTensor::Q, IoTensor::Kv, IoTensor::O, IoTensor::Lse];
            (f, f)
        };
        let mut devs = Vec::with_capacity(plan.devices.len());
        for (di, d) in plan.devices.iter().enumerate() {
            let err = |kind| PlanError::new(di as u32, pname, None, kind);
            if d.device != di as u32 {
                return Err(err(PlanErrorKind::DeviceIndex {
                    entry: di,
                    says: d.device,
                }));
            }
            let prog = program(plan, di, backward);
            let local = d.local_tokens();
            let mut bufs = Vec::with_capacity(prog.buffers.len());
            for (bi, b) in prog.buffers.iter().enumerate() {
                let mut buf = Buf::new(b.tokens, b.heads, b.width);
                if let BufferRole::Saved { forward } = b.role {
                    let Some(fwd) = saved.filter(|_| backward) else {
                        return Err(err(PlanErrorKind::SavedInForward {
                            buf: bi as u32,
                            name: b.name.clone(),
                        }));
                    };
                    buf = super::saved::saved_state(cx, fwd, di, bi as u32, b, forward)
                        .map_err(err)?;
                }
                if let BufferRole::Io(t) = b.role {
                    if !allowed.contains(&t) {
                        return Err(err(PlanErrorKind::UnusedIoBuffer {
                            buf: bi as u32,
                            name: b.name.clone(),
                            tensor: t,
                        }));
                    }
                    let want = (
                        local,
                        io_heads(t, m.heads, m.kv_heads),
                        io_width(t, m.head_dim),
                    );
                    if (b.tokens, b.heads, b.width) != want {
                        return Err(err(PlanErrorKind::IoBufferShape {
                            buf: bi as u32,
                            name: b.name.clone(),
                            tensor: t,
                            got: (b.tokens, b.heads, b.width),
                            want,
                        }));
                    }
                    if t.is_input(backward) {
                        let all = crate::plan::Region {
                            buf: bi as u32,
                            tok: 0,
                            len: b.tokens,
                            head: 0,
                            heads: b.heads,
                        };
                        // The device's rows are one run of global rows.
                        let v = Val::In {
                            t,
                            g: cx.gmap.base(di as u32),
                            head: 0,
                        };
                        let rows = Few1::One(Rows::one(0, b.tokens, b.heads, v));
                        buf.write(&all, rows);
                    }
                }
                bufs.push(buf);
            }
            if let Some((i, buf)) = super::saved::first_write(prog) {
                let name = prog.buffers[buf as usize].name.clone();
                let kind = PlanErrorKind::WriteToSaved { buf, name };
                return Err(PlanError::new(di as u32, pname, Some(i), kind));
            }
            for &t in needed {
                if local > 0 && prog.io(t).is_none() {
                    return Err(err(PlanErrorKind::MissingIoBuffer(t)));
                }
            }
            devs.push(DevState {
                bufs,
                // Room for a ring step's groups in flight (no growth from empty).
                pending: Vec::with_capacity(4),
                inflight: Vec::with_capacity(8),
                open: 0,
                recv_bufs: 0,
                send_bufs: 0,
                comm_at: usize::MAX,
            });
        }
        let n = plan.devices.len();
        Ok(Validator {
            cx,
            plan,
            backward,
            parallel,
            devs,
            works,
            covs: pairs::Covs::new(
                (0..n).map(|d| cov_nodes(plan, d, backward)),
                shared || parallel,
            ),
            caches,
        })
    }
}
