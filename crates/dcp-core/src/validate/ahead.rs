//! Devices validated one after the other, each as far as its received data allows
//! ([`super::Threads::Ahead`]): a device runs its instructions back to back through many
//! communication groups, as the planner wrote them, so that its state, caches and program stay
//! in cache from one of its instructions to the next. The sequential validator instead runs
//! every device up to its next group, then the group's transfers, then every device again:
//! between two turns of one device, every other device's data passes through the cache (a ring
//! plan on 256 devices: 256 devices' states between a device's step and its next).
//!
//! No skeleton pass and no driver: a device at a communication instruction posts its sends'
//! contents into its peers' inboxes (keyed by sender, tag and the send's rank among the sends
//! to that peer in the instruction), then takes its receives once each has arrived, and ends
//! the group. Devices are visited in order, pass after pass, until all are done; a pass in
//! which no device moves means a receive that no send answers.
//!
//! This path only decides *that* a plan is valid: on any refusal the plan is validated again
//! sequentially, which names the error. It accepts only plans the sequential validator accepts:
//! * the driver ([`crate::interp::drive`]) refuses a device whose tags do not rise along its
//!   list; here too. With rising tags every group of the driver is one tag, met in rising
//!   order, and holds every device whose list has that tag (a device at a higher tag never
//!   meets the lower one again), so
//! * a send is matched to a receive of the same group, pair and rank exactly when its inbox
//!   entry here is taken by that receive: every receive found its entry (else a device blocks
//!   forever and no pass moves), and every entry was taken (checked at the end). Peers out of
//!   range or a device itself are refused, and each pair's shapes are checked as the driver
//!   and the sequential transfer check them;
//! * each device's state goes through the same local instructions in the same order, a send
//!   carries its region's contents as they are when the sender reaches the group (the driver's
//!   transfer reads them then too: a device's state changes only by its own instructions), and
//!   a group's sends and receives on one device touch disjoint regions, or its end refuses the
//!   plan (`CommOverlap`): the contents, and so every check, are the sequential ones.

use std::collections::VecDeque;

use super::state::{Few, RowList, Val};
use super::{Item, Validator};
use crate::interp::program;
use crate::plan::{Dir, Instr, Region};
use crate::spec::DType;

/// A send's contents, in its receiver's inbox until the matching receive takes them.
struct Posted {
    from: u32,
    tag: u32,
    /// Its rank among the sends from `from` to this receiver in that comm instruction.
    k: u32,
    src: Region,
    /// The sender's buffer's width and element type (the pair's shapes are checked on receipt).
    width: u32,
    dtype: DType,
    rows: Payload,
}

/// What a send carries: one set rectangle's value (a ring step's buffer), or its rows as read.
enum Payload {
    One(Val),
    Rows(RowList),
}

/// Where one device is in its program.
#[derive(Default, Clone, Copy, PartialEq)]
struct Cursor {
    pc: usize,
    /// The tag of its last group.
    last: Option<u32>,
    /// Whether the sends of the comm instruction at `pc` have left.
    sent: bool,
    done: bool,
}

impl Validator<'_> {
    /// Runs every device's program in run-ahead order; `false` when a device refused something,
    /// a receive has no send, a send no receive, or tags do not rise along a device's list.
    pub(super) fn run_ahead(&mut self) -> bool {
        let n = self.devs.len();
        let mut cur = vec![Cursor::default(); n];
        let mut inbox: Vec<VecDeque<Posted>> = (0..n).map(|_| VecDeque::new()).collect();
        // Per peer, the ranks handed out in the comm instruction at hand (reset after it).
        let mut ranks = vec![0u32; n];
        let mut left = n;
        while left > 0 {
            let mut moved = false;
            for d in 0..n {
                if cur[d].done {
                    continue;
                }
                let before = cur[d];
                if !self.advance(d, &mut cur[d], &mut inbox, &mut ranks) {
                    return false;
                }
                if cur[d].done {
                    left -= 1;
                }
                moved |= cur[d] != before;
            }
            if !moved {
                return false;
            }
        }
        inbox.iter().all(VecDeque::is_empty)
    }

    /// Runs device `d` as far as its received data allows; `false` when it refused something.
    fn advance(
        &mut self,
        d: usize,
        c: &mut Cursor,
        inbox: &mut [VecDeque<Posted>],
        ranks: &mut [u32],
    ) -> bool {
        let n = inbox.len();
        let plan = self.plan;
        let prog = program(plan, d, self.backward);
        let dev = d as u32;
        let mut l = self.at_between(dev);
        loop {
            if !c.sent {
                if l.run(prog, &mut c.pc).is_err() {
                    return false;
                }
                let Some(Instr::Comm { tag, ops }) = prog.instrs.get(c.pc) else {
                    c.done = true;
                    return true;
                };
                if c.last.is_some_and(|p| *tag <= p) {
                    return false;
                }
                let mut ok = true;
                for op in ops.iter() {
                    let p = op.peer as usize;
                    if p >= n || p == d {
                        ok = false;
                        break;
                    }
                    if op.dir != Dir::Send {
                        continue;
                    }
                    let k = ranks[p];
                    ranks[p] += 1;
                    let item = Item::Send { to: op.peer };
                    let Ok(width) = l.check_region(dev, c.pc, &op.region, item) else {
                        ok = false;
                        break;
                    };
                    // What the sequential transfer moves: one set rectangle as one value
                    // (written by `Buf::write_one`), else the rows as read (checked).
                    let r = &op.region;
                    let one = l.st.bufs[r.buf as usize].read_one(r);
                    let rows = match one {
                        Some(v) if r.len > 0 && r.heads > 0 => Payload::One(v),
                        _ => match l.read_set(dev, c.pc, r, item) {
                            Ok(rows) => Payload::Rows(rows),
                            Err(_) => {
                                ok = false;
                                break;
                            }
                        },
                    };
                    inbox[p].push_back(Posted {
                        from: dev,
                        tag: *tag,
                        k,
                        src: op.region,
                        width,
                        dtype: prog.buffers[op.region.buf as usize].dtype,
                        rows,
                    });
                }
                reset_ranks(ops, ranks, n);
                if !ok {
                    return false;
                }
                c.sent = true;
            }
            let Some(Instr::Comm { tag, ops }) = prog.instrs.get(c.pc) else {
                unreachable!("a device whose sends left waits at a comm instruction");
            };
            let tag = *tag;
            // Every receive's send must have arrived (else the device waits for a later pass).
            let mut all = true;
            for op in ops.iter().filter(|op| op.dir == Dir::Recv) {
                let p = op.peer;
                let k = ranks[p as usize];
                ranks[p as usize] += 1;
                if find(&inbox[d], p, tag, k).is_none() {
                    all = false;
                    break;
                }
            }
            reset_ranks(ops, ranks, n);
            if !all {
                return true;
            }
            let mut sends = Few::Zero;
            let mut recvs = Few::Zero;
            let mut ok = true;
            for op in ops.iter() {
                let r = op.region;
                if op.dir == Dir::Send {
                    sends.push(r);
                    continue;
                }
                let p = op.peer;
                let k = ranks[p as usize];
                ranks[p as usize] += 1;
                let at = find(&inbox[d], p, tag, k).expect("found above");
                let x = if at == 0 {
                    inbox[d].pop_front()
                } else {
                    inbox[d].remove(at)
                }
                .expect("an entry found");
                let item = Item::Recv { from: p };
                let Ok(width) = l.check_region(dev, c.pc, &r, item) else {
                    ok = false;
                    break;
                };
                // The driver's pair check (elements, element type, heads) and the sequential
                // transfer's (as many tokens).
                let (s, dtype) = (&x.src, prog.buffers[r.buf as usize].dtype);
                let se = s.len as u64 * s.heads as u64 * x.width as u64;
                let re = r.len as u64 * r.heads as u64 * width as u64;
                if se != re || x.dtype != dtype || s.heads != r.heads || s.len != r.len {
                    ok = false;
                    break;
                }
                match x.rows {
                    Payload::One(v) => l.st.bufs[r.buf as usize].write_one(&r, v),
                    Payload::Rows(rows) => l.recv_rows(&r, rows),
                }
                recvs.push(r);
            }
            reset_ranks(ops, ranks, n);
            if !ok || l.group_end(c.pc, tag, sends, recvs).is_err() {
                return false;
            }
            c.last = Some(tag);
            c.pc += 1;
            c.sent = false;
        }
    }
}

/// Where in `inbox` the `k`-th send from `from` in group `tag` is (mostly the first entry: a
/// sender's entries arrive in its groups' order, and its receiver takes them in that order).
#[inline]
fn find(inbox: &VecDeque<Posted>, from: u32, tag: u32, k: u32) -> Option<usize> {
    inbox
        .iter()
        .position(|x| x.from == from && x.tag == tag && x.k == k)
}

/// Zeroes the ranks of `ops`' peers (in range).
#[inline]
fn reset_ranks(ops: &[crate::plan::P2p], ranks: &mut [u32], n: usize) {
    for op in ops {
        if (op.peer as usize) < n {
            ranks[op.peer as usize] = 0;
        }
    }
}
