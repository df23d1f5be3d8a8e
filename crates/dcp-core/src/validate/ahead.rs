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

/// A send's contents, in its receiver's inbox until the matching receive takes them: 56 bytes
/// (the sender's region kept only as the shape the pair check reads, a row list in
/// [`Inboxes::rows`]), where a copy of the region and the row list inline made 88.
struct Posted {
    from: u32,
    tag: u32,
    /// Its rank among the sends from `from` to this receiver in that comm instruction.
    k: u32,
    /// The sender's region's tokens and heads, its buffer's width and element type (the
    /// pair's shapes are checked on receipt).
    len: u32,
    heads: u32,
    width: u32,
    dtype: DType,
    rows: Payload,
}

const _: () = assert!(std::mem::size_of::<Posted>() <= 56);

/// What a send carries: one set rectangle's value (a ring step's buffer), or its rows as read
/// (at this index of [`Inboxes::rows`]).
enum Payload {
    One(Val),
    Rows(u32),
}

/// Every device's inbox, with what the run-ahead loop keeps beside them.
struct Inboxes {
    q: Vec<VecDeque<Posted>>,
    /// Storage of drained inboxes, handed to the next empty one a send fills: running ahead, a
    /// device fills its successor's inbox with a whole program's sends, which that successor
    /// then drains; the same few deques circulate (in cache) instead of one per device
    /// (256 deques of up to 500 entries, new every validation).
    spare: Vec<VecDeque<Posted>>,
    /// Row lists of posted sends ([`Payload::Rows`]), and the free indices among them.
    rows: Vec<RowList>,
    free: Vec<u32>,
    /// Per peer, the ranks handed out in the comm instruction at hand: `(generation, next
    /// rank)`, valid while its generation is [`Inboxes::gen`] (a new generation per pass over
    /// an instruction's ops, instead of resetting the table).
    ranks: Vec<(u32, u32)>,
    gen: u32,
}

impl Inboxes {
    fn new(n: usize) -> Self {
        Inboxes {
            q: (0..n).map(|_| VecDeque::new()).collect(),
            spare: Vec::new(),
            rows: Vec::new(),
            free: Vec::new(),
            ranks: vec![(0, 0); n],
            gen: 0,
        }
    }

    /// Starts a pass over a comm instruction's ops: every peer's rank back to 0.
    #[inline]
    fn new_ranks(&mut self) {
        self.gen = self.gen.wrapping_add(1);
        if self.gen == 0 {
            // Wrapped: no stale generation may look current.
            self.ranks.fill((0, 0));
            self.gen = 1;
        }
    }

    /// The next rank towards peer `p` (in range) in this pass.
    #[inline]
    fn rank(&mut self, p: usize) -> u32 {
        let r = &mut self.ranks[p];
        if r.0 != self.gen {
            *r = (self.gen, 0);
        }
        r.1 += 1;
        r.1 - 1
    }

    /// Posts `x` into `p`'s inbox.
    #[inline]
    fn post(&mut self, p: usize, x: Posted) {
        let q = &mut self.q[p];
        if q.capacity() == 0 {
            if let Some(s) = self.spare.pop() {
                *q = s;
            }
        }
        q.push_back(x);
    }

    /// Takes entry `at` of `d`'s inbox; a drained inbox's storage goes to the pool.
    #[inline]
    fn take(&mut self, d: usize, at: usize) -> Posted {
        let q = &mut self.q[d];
        let x = if at == 0 { q.pop_front() } else { q.remove(at) }.expect("an entry found");
        if q.is_empty() {
            self.spare.push(std::mem::take(q));
        }
        x
    }

    /// Keeps `rows` for a receive ([`Payload::Rows`]).
    fn keep_rows(&mut self, rows: RowList) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.rows[i as usize] = rows;
                i
            }
            None => {
                self.rows.push(rows);
                (self.rows.len() - 1) as u32
            }
        }
    }

    /// The row list kept at `i`, which is free again.
    fn take_rows(&mut self, i: u32) -> RowList {
        self.free.push(i);
        std::mem::take(&mut self.rows[i as usize])
    }
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
        let mut inbox = Inboxes::new(n);
        let mut left = n;
        while left > 0 {
            let mut moved = false;
            for d in 0..n {
                if cur[d].done {
                    continue;
                }
                let before = cur[d];
                if !self.advance(d, &mut cur[d], &mut inbox) {
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
        inbox.q.iter().all(VecDeque::is_empty)
    }

    /// Runs device `d` as far as its received data allows; `false` when it refused something.
    fn advance(&mut self, d: usize, c: &mut Cursor, inbox: &mut Inboxes) -> bool {
        let n = inbox.q.len();
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
                inbox.new_ranks();
                for op in ops.iter() {
                    let p = op.peer as usize;
                    if p >= n || p == d {
                        return false;
                    }
                    if op.dir != Dir::Send {
                        continue;
                    }
                    let k = inbox.rank(p);
                    let r = &op.region;
                    let Some(b) = declared(prog, r) else {
                        return false;
                    };
                    // What the sequential transfer moves: one set rectangle as one value
                    // (written by `Buf::write_one`), else the rows as read (checked).
                    let one = l.st.bufs[r.buf as usize].read_one(r);
                    let rows = match one {
                        Some(v) if r.len > 0 && r.heads > 0 => Payload::One(v),
                        _ => match l.read_set(dev, c.pc, r, Item::Send { to: op.peer }) {
                            Ok(rows) => Payload::Rows(inbox.keep_rows(rows)),
                            Err(_) => return false,
                        },
                    };
                    let x = Posted {
                        from: dev,
                        tag: *tag,
                        k,
                        len: r.len,
                        heads: r.heads,
                        width: b.width,
                        dtype: b.dtype,
                        rows,
                    };
                    inbox.post(p, x);
                }
                c.sent = true;
            }
            let Some(Instr::Comm { tag, ops }) = prog.instrs.get(c.pc) else {
                unreachable!("a device whose sends left waits at a comm instruction");
            };
            let tag = *tag;
            // One send and one receive (a ring or zigzag step's): the loops below without
            // their rank tables and lists (the receive's rank is 0), the same checks.
            if let [a, b] = &ops[..] {
                let pair = match (a.dir, b.dir) {
                    (Dir::Send, Dir::Recv) => Some((a, b)),
                    (Dir::Recv, Dir::Send) => Some((b, a)),
                    _ => None,
                };
                if let Some((s, r)) = pair {
                    let Some(at) = find(&inbox.q[d], r.peer, tag, 0) else {
                        return true;
                    };
                    if !recv_one(&mut l, prog, inbox, d, at, &r.region)
                        || l.group_end_pair(c.pc, tag, s.region, r.region).is_err()
                    {
                        return false;
                    }
                    c.last = Some(tag);
                    c.pc += 1;
                    c.sent = false;
                    continue;
                }
            }
            // Every receive's send must have arrived (else the device waits for a later pass).
            // Where the entry is when there is one receive (nothing taken before it moves it).
            inbox.new_ranks();
            let (mut recvs_n, mut first_at) = (0, 0);
            for op in ops.iter().filter(|op| op.dir == Dir::Recv) {
                let p = op.peer;
                let k = inbox.rank(p as usize);
                let Some(at) = find(&inbox.q[d], p, tag, k) else {
                    return true;
                };
                if recvs_n == 0 {
                    first_at = at;
                }
                recvs_n += 1;
            }
            let mut sends = Few::Zero;
            let mut recvs = Few::Zero;
            inbox.new_ranks();
            for op in ops.iter() {
                let r = op.region;
                if op.dir == Dir::Send {
                    sends.push(r);
                    continue;
                }
                let p = op.peer;
                let at = if recvs_n == 1 {
                    first_at
                } else {
                    let k = inbox.rank(p as usize);
                    find(&inbox.q[d], p, tag, k).expect("found above")
                };
                if !recv_one(&mut l, prog, inbox, d, at, &r) {
                    return false;
                }
                recvs.push(r);
            }
            if l.group_end(c.pc, tag, sends, recvs).is_err() {
                return false;
            }
            c.last = Some(tag);
            c.pc += 1;
            c.sent = false;
        }
    }
}

/// Device `d` (its view `l`, its program `prog`) takes entry `at` of its inbox into region `r`
/// of a receive: `false` when the pair is refused.
#[inline]
fn recv_one(
    l: &mut super::Local<'_, '_>,
    prog: &crate::plan::Program,
    inbox: &mut Inboxes,
    d: usize,
    at: usize,
    r: &Region,
) -> bool {
    let x = inbox.take(d, at);
    let Some(b) = declared(prog, r) else {
        return false;
    };
    // The driver's pair check (elements, element type, heads) and the sequential transfer's
    // (as many tokens).
    let se = x.len as u64 * x.heads as u64 * x.width as u64;
    let re = r.len as u64 * r.heads as u64 * b.width as u64;
    if se != re || x.dtype != b.dtype || x.heads != r.heads || x.len != r.len {
        return false;
    }
    match x.rows {
        Payload::One(v) => l.st.bufs[r.buf as usize].write_one(r, v),
        Payload::Rows(i) => l.recv_rows(r, inbox.take_rows(i)),
    }
    true
}

/// The declaration of `r`'s buffer when `r` lies inside it ([`Validator::check_region`]'s
/// test, without naming the error).
#[inline]
fn declared<'p>(prog: &'p crate::plan::Program, r: &Region) -> Option<&'p crate::plan::BufferDecl> {
    prog.buffers.get(r.buf as usize).filter(|b| {
        r.tok as u64 + r.len as u64 <= b.tokens as u64
            && r.head as u64 + r.heads as u64 <= b.heads as u64
    })
}

/// Where in `inbox` the `k`-th send from `from` in group `tag` is (mostly the first entry: a
/// sender's entries arrive in its groups' order, and its receiver takes them in that order).
#[inline]
fn find(inbox: &VecDeque<Posted>, from: u32, tag: u32, k: u32) -> Option<usize> {
    inbox
        .iter()
        .position(|x| x.from == from && x.tag == tag && x.k == k)
}
