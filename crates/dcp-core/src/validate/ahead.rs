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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::state::{Few, RowList, Val};
use super::{Item, Local, Validator};
use crate::interp::program;
use crate::plan::{Dir, Instr, Region};
use crate::spec::DType;

/// A send's contents, in its receiver's inbox until the matching receive takes them: 56 bytes
/// (the sender's region kept only as the shape the pair check reads, a row list in
/// [`RowStore`]), where a copy of the region and the row list inline made 88.
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

impl Posted {
    #[inline]
    fn new(h: Head, rows: Payload) -> Self {
        Posted {
            from: h.from,
            tag: h.tag,
            k: h.k,
            len: h.len,
            heads: h.heads,
            width: h.width,
            dtype: h.dtype,
            rows,
        }
    }

    #[inline]
    fn head(&self) -> Head {
        Head {
            from: self.from,
            tag: self.tag,
            k: self.k,
            len: self.len,
            heads: self.heads,
            width: self.width,
            dtype: self.dtype,
        }
    }
}

/// Row lists of posted sends ([`Payload::Rows`]), and the free indices among them.
#[derive(Default)]
struct RowStore {
    rows: Vec<RowList>,
    free: Vec<u32>,
}

impl RowStore {
    /// Keeps `rows` for a receive: its index.
    #[inline]
    fn keep(&mut self, rows: RowList) -> u32 {
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
    #[inline]
    fn take(&mut self, i: u32) -> RowList {
        self.free.push(i);
        std::mem::take(&mut self.rows[i as usize])
    }

    /// What a send carries as posted: its row list kept here.
    #[inline]
    fn payload(&mut self, c: Carried) -> Payload {
        match c {
            Carried::One(v) => Payload::One(v),
            Carried::Rows(r) => Payload::Rows(self.keep(r)),
        }
    }

    /// What a posted send carries: its row list taken back.
    #[inline]
    fn carried(&mut self, p: Payload) -> Carried {
        match p {
            Payload::One(v) => Carried::One(v),
            Payload::Rows(i) => Carried::Rows(self.take(i)),
        }
    }
}

/// What a send carries: one set rectangle's value (a ring step's buffer), or its rows as read
/// (at this index of its inbox's [`RowStore`]).
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
    rows: RowStore,
    ranks: Ranks,
}

/// Per peer, the ranks handed out in the comm instruction at hand: `(generation, next rank)`,
/// valid while its generation is the current one (a new generation per pass over an
/// instruction's ops, instead of resetting the table).
struct Ranks {
    of: Vec<(u32, u32)>,
    gen: u32,
}

impl Ranks {
    fn new(n: usize) -> Self {
        Ranks {
            of: vec![(0, 0); n],
            gen: 0,
        }
    }

    /// Starts a pass over a comm instruction's ops: every peer's rank back to 0.
    #[inline]
    fn restart(&mut self) {
        self.gen = self.gen.wrapping_add(1);
        if self.gen == 0 {
            // Wrapped: no stale generation may look current.
            self.of.fill((0, 0));
            self.gen = 1;
        }
    }

    /// The next rank towards peer `p` (in range) in this pass.
    #[inline]
    fn next(&mut self, p: usize) -> u32 {
        let r = &mut self.of[p];
        if r.0 != self.gen {
            *r = (self.gen, 0);
        }
        r.1 += 1;
        r.1 - 1
    }
}

impl Inboxes {
    fn new(n: usize) -> Self {
        Inboxes {
            q: (0..n).map(|_| VecDeque::new()).collect(),
            spare: Vec::new(),
            rows: RowStore::default(),
            ranks: Ranks::new(n),
        }
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
}

/// What a send carries on its way: one set rectangle's value, or its rows as read.
enum Carried {
    One(Val),
    Rows(RowList),
}

/// A posted send's shape (the pair check's) and its sender, tag and rank.
#[derive(Clone, Copy)]
struct Head {
    from: u32,
    tag: u32,
    k: u32,
    len: u32,
    heads: u32,
    width: u32,
    dtype: DType,
}

/// The inboxes [`advance`] runs against: one thread's ([`Inboxes`]), or those of devices
/// spread over several threads ([`SharedMail`]).
trait Mail {
    /// Devices of the plan.
    fn devices(&self) -> usize;
    /// Starts a pass over a comm instruction's ops: every peer's rank back to 0.
    fn new_ranks(&mut self);
    /// The next rank towards peer `p` (in range) in this pass.
    fn rank(&mut self, p: usize) -> u32;
    /// Posts a send into `p`'s inbox.
    fn post(&mut self, p: usize, h: Head, c: Carried);
    /// Where in `d`'s inbox the `k`-th send from `from` in group `tag` is.
    fn find(&self, d: usize, from: u32, tag: u32, k: u32) -> Option<usize>;
    /// Takes entry `at` of `d`'s inbox.
    fn take(&mut self, d: usize, at: usize) -> (Head, Carried);
}

impl Mail for Inboxes {
    #[inline]
    fn devices(&self) -> usize {
        self.q.len()
    }
    #[inline]
    fn new_ranks(&mut self) {
        self.ranks.restart()
    }
    #[inline]
    fn rank(&mut self, p: usize) -> u32 {
        self.ranks.next(p)
    }
    #[inline]
    fn post(&mut self, p: usize, h: Head, c: Carried) {
        let x = Posted::new(h, self.rows.payload(c));
        Inboxes::post(self, p, x)
    }
    #[inline]
    fn find(&self, d: usize, from: u32, tag: u32, k: u32) -> Option<usize> {
        find(&self.q[d], from, tag, k)
    }
    #[inline]
    fn take(&mut self, d: usize, at: usize) -> (Head, Carried) {
        let x = Inboxes::take(self, d, at);
        (x.head(), self.rows.carried(x.rows))
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
                let prog = program(self.plan, d, self.backward);
                let mut l = self.at_between(d as u32);
                if !advance(&mut l, prog, d, &mut cur[d], &mut inbox) {
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
}

/// Runs device `d` (its view `l`, its program `prog`) as far as its received data allows;
/// `false` when it refused something.
#[inline]
fn advance<M: Mail>(
    l: &mut Local<'_, '_>,
    prog: &crate::plan::Program,
    d: usize,
    c: &mut Cursor,
    inbox: &mut M,
) -> bool {
    let n = inbox.devices();
    let dev = d as u32;
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
                    Some(v) if r.len > 0 && r.heads > 0 => Carried::One(v),
                    _ => match l.read_set(dev, c.pc, r, Item::Send { to: op.peer }) {
                        Ok(rows) => Carried::Rows(rows),
                        Err(_) => return false,
                    },
                };
                let h = Head {
                    from: dev,
                    tag: *tag,
                    k,
                    len: r.len,
                    heads: r.heads,
                    width: b.width,
                    dtype: b.dtype,
                };
                inbox.post(p, h, rows);
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
                let Some(at) = inbox.find(d, r.peer, tag, 0) else {
                    return true;
                };
                if !recv_one(l, prog, inbox, d, at, &r.region)
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
            let Some(at) = inbox.find(d, p, tag, k) else {
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
                inbox.find(d, p, tag, k).expect("found above")
            };
            if !recv_one(l, prog, inbox, d, at, &r) {
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

/// Device `d` (its view `l`, its program `prog`) takes entry `at` of its inbox into region `r`
/// of a receive: `false` when the pair is refused.
#[inline]
fn recv_one<M: Mail>(
    l: &mut Local<'_, '_>,
    prog: &crate::plan::Program,
    inbox: &mut M,
    d: usize,
    at: usize,
    r: &Region,
) -> bool {
    let (x, rows) = inbox.take(d, at);
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
    match rows {
        Carried::One(v) => l.st.bufs[r.buf as usize].write_one(r, v),
        Carried::Rows(rows) => l.recv_rows(r, rows),
    }
    true
}

/// The declaration of `r`'s buffer when `r` lies inside it ([`super::Local::check_region`]'s
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
    // (The deque's two slices: its iterator stayed an out-of-line call once the run-ahead step
    // became generic, +1.3 % instructions on ring 8x8.)
    let is = |x: &Posted| x.from == from && x.tag == tag && x.k == k;
    let (a, b) = inbox.as_slices();
    a.iter()
        .position(is)
        .or_else(|| b.iter().position(is).map(|i| a.len() + i))
}

/// One device's inbox when devices run ahead on several threads ([`Validator::run_ahead_par`]):
/// its posted sends and the row lists they carry; any thread posts, the device's own takes.
#[derive(Default)]
struct Shelf {
    q: VecDeque<Posted>,
    rows: RowStore,
}

/// Every device's [`Shelf`], with what one worker thread keeps beside them.
struct SharedMail<'s> {
    shelves: &'s [Mutex<Shelf>],
    /// Per device, the worker that runs it.
    owner: &'s [u32],
    /// Per worker, set when a send to one of its devices was posted since it last looked.
    mail: &'s [AtomicBool],
    ranks: Ranks,
}

impl SharedMail<'_> {
    fn shelf(&self, d: usize) -> std::sync::MutexGuard<'_, Shelf> {
        self.shelves[d]
            .lock()
            .expect("a shelf's lock (no thread panics holding it)")
    }
}

impl Mail for SharedMail<'_> {
    fn devices(&self) -> usize {
        self.shelves.len()
    }
    fn new_ranks(&mut self) {
        self.ranks.restart()
    }
    fn rank(&mut self, p: usize) -> u32 {
        self.ranks.next(p)
    }
    fn post(&mut self, p: usize, h: Head, c: Carried) {
        {
            let mut sh = self.shelf(p);
            let x = Posted::new(h, sh.rows.payload(c));
            sh.q.push_back(x);
        }
        // After the entry is in (the lock's release), so a worker that sees the flag finds it.
        self.mail[self.owner[p] as usize].store(true, Ordering::SeqCst);
    }
    fn find(&self, d: usize, from: u32, tag: u32, k: u32) -> Option<usize> {
        find(&self.shelf(d).q, from, tag, k)
    }
    fn take(&mut self, d: usize, at: usize) -> (Head, Carried) {
        let mut sh = self.shelf(d);
        let x = if at == 0 {
            sh.q.pop_front()
        } else {
            sh.q.remove(at)
        }
        .expect("an entry found");
        (x.head(), sh.rows.carried(x.rows))
    }
}

/// Workers that wait for mail and workers that are done ([`Validator::run_ahead_par`]): when
/// all are one or the other and no mail is pending, no device can move again.
#[derive(Default)]
struct Quiet {
    stuck: usize,
    done: usize,
}

impl<'a> Validator<'a> {
    /// [`Validator::run_ahead`] with the devices cut into blocks of consecutive devices (a
    /// ring's neighbours mostly in one block), one per worker, on up to `threads` of rayon's
    /// threads: each worker runs its devices ahead as far as their received data allow; a send
    /// to a device of another block goes into that device's locked [`Shelf`] and flags its
    /// worker. A worker none of whose devices can move waits for such a flag; when every
    /// worker waits or is done and no flag is up, a receive has no send and the plan is
    /// refused. Same result as [`Validator::run_ahead`]: each device goes through the same
    /// instructions, sends and receives, in the same order (its receives take its own inbox's
    /// entries, which only their sender could have posted, in that sender's order).
    /// Needs the validator's shared coverage arenas (`concurrent`).
    pub(super) fn run_ahead_par(&mut self, threads: usize) -> bool {
        let n = self.devs.len();
        let workers = threads.clamp(1, n);
        let per = n.div_ceil(workers);
        let workers = n.div_ceil(per);
        let shelves: Vec<Mutex<Shelf>> = (0..n).map(|_| Mutex::default()).collect();
        let owner: Vec<u32> = (0..n).map(|d| (d / per) as u32).collect();
        let mail: Vec<AtomicBool> = (0..workers).map(|_| AtomicBool::new(false)).collect();
        // Per worker, whether all its devices are done (a send to one of them then has no
        // receive: its flag does not count as mail to wait for).
        let finished: Vec<AtomicBool> = (0..workers).map(|_| AtomicBool::new(false)).collect();
        let quiet = Mutex::new(Quiet::default());
        let failed = AtomicBool::new(false);
        let (cx, plan, backward, works) = (self.cx, self.plan, self.backward, self.works);
        let all = self.covs.shared();
        // A worker's devices, their caches (a device takes its block neighbours' checked works,
        // as when running ahead on one thread) and where each is.
        type Block<'v, 'a> = (
            usize,
            &'v mut [super::DevState],
            &'v mut [super::DevCache<'a>],
            Vec<Cursor>,
        );
        let blocks: Vec<Block<'_, 'a>> = self
            .devs
            .chunks_mut(per)
            .zip(self.caches.chunks_mut(per))
            .enumerate()
            .map(|(b, (devs, caches))| {
                let m = devs.len();
                (b * per, devs, caches, vec![Cursor::default(); m])
            })
            .collect();
        let (shelves_r, owner, mail, finished, quiet, failed) =
            (&shelves, &owner, &mail, &finished, &quiet, &failed);
        let lock = || {
            quiet
                .lock()
                .expect("the quiet lock (no thread panics holding it)")
        };
        // Mail a worker still running may take (read under the quiet lock).
        let pending = || {
            (mail.iter().zip(finished))
                .any(|(m, f)| m.load(Ordering::SeqCst) && !f.load(Ordering::SeqCst))
        };
        let work = move |w: usize, blk: Block<'_, 'a>| {
            let (base, devs, caches, mut cur) = blk;
            let mut mb = SharedMail {
                shelves: shelves_r,
                owner,
                mail,
                ranks: Ranks::new(n),
            };
            loop {
                if failed.load(Ordering::Relaxed) {
                    return;
                }
                // Down before the pass: a send posted during it raises it again.
                mail[w].store(false, Ordering::SeqCst);
                let (mut moved, mut all_done) = (false, true);
                for (i, c) in cur.iter_mut().enumerate() {
                    if c.done {
                        continue;
                    }
                    let before = *c;
                    let d = base + i;
                    let covs = super::pairs::Arena {
                        nodes: super::pairs::Nodes::Shared(all),
                        dev: d as u32,
                    };
                    let mut l = Local::near(
                        cx,
                        backward,
                        covs,
                        &mut devs[i],
                        caches,
                        i,
                        &works[d],
                        (true, true),
                    );
                    if !advance(&mut l, program(plan, d, backward), d, c, &mut mb) {
                        failed.store(true, Ordering::Relaxed);
                        return;
                    }
                    moved |= *c != before;
                    all_done &= c.done;
                }
                if all_done {
                    let mut q = lock();
                    finished[w].store(true, Ordering::SeqCst);
                    q.done += 1;
                    if q.done < workers && q.stuck + q.done == workers && !pending() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    return;
                }
                if moved {
                    continue;
                }
                {
                    let mut q = lock();
                    if mail[w].load(Ordering::SeqCst) {
                        continue;
                    }
                    q.stuck += 1;
                    if q.stuck + q.done == workers && !pending() {
                        failed.store(true, Ordering::Relaxed);
                        return;
                    }
                }
                let mut idle = 0u32;
                while !mail[w].load(Ordering::SeqCst) && !failed.load(Ordering::Relaxed) {
                    idle += 1;
                    if idle < 64 {
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
                lock().stuck -= 1;
            }
        };
        let mut blocks = blocks.into_iter();
        let first = blocks.next().expect("a plan has devices");
        rayon::scope(|s| {
            for (w, blk) in blocks.enumerate() {
                s.spawn(move |_| work(w + 1, blk));
            }
            work(0, first);
        });
        !failed.load(Ordering::Relaxed)
            && shelves
                .iter()
                .all(|s| s.lock().expect("a shelf's lock").q.is_empty())
    }
}
