//! Devices validated concurrently, each as far as its own program and its received data allow
//! (no barrier per communication group).
//!
//! Which devices meet in which group, and which send feeds which receive, depends on the
//! instruction lists only, not on buffer contents: one pass of the interpreter's driver with
//! empty local instructions ([`Skeleton`]) gives every device its sequence of groups and every
//! transfer its sender and receiver. Then each device runs on its own: its local instructions up
//! to its next group, its sends (their contents leave into a mailbox), then, once every send
//! to it has arrived, its receives and the group's end. A device waits only for the senders
//! of its own receives, so threads holding blocks of devices pass a ring step along without
//! ever stopping all devices.
//!
//! Every check of the sequential validator runs here too, on the same contents: a device's
//! state goes through the same local instructions, and within one group its receives are
//! written in the driver's order; sends and receives of one device in one group touch disjoint
//! regions, or the group's end refuses the plan (`CommOverlap`). This path only decides *that*
//! a plan is valid: on any error (or any error of the skeleton) it reports failure and the
//! caller validates sequentially, which names the error the sequential order meets first.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::state::{Few, RowList};
use super::{Item, Local, Validator};
use crate::error::PlanError;
use crate::interp::{drive, program, Machine};
use crate::plan::{Instr, Plan, Region};

/// One matched send/receive pair.
struct Xfer {
    from: u32,
    src: Region,
    to: u32,
    dst: Region,
}

/// A device's part in one group: its comm instruction and the transfers it sends and receives
/// (indices into the skeleton's transfers, in the driver's order).
struct Event {
    idx: usize,
    tag: u32,
    sends: Few<u32>,
    recvs: Few<u32>,
}

/// The communication structure of one program: transfers in the driver's order and, per
/// device, its groups in order.
pub(super) struct Skeleton {
    xfers: Vec<Xfer>,
    events: Vec<Vec<Event>>,
    /// Per device, the transfers it sends and receives in the group being recorded: the driver
    /// makes all of a group's transfers, then ends the group on each of its devices (and a
    /// transfer's two devices are both in its group).
    open: Vec<(Few<u32>, Few<u32>)>,
}

impl Machine for Skeleton {
    fn local(&mut self, _dev: u32, _idx: usize, _instr: &Instr) -> Result<(), PlanError> {
        Ok(())
    }

    fn transfer(
        &mut self,
        from: u32,
        src: &Region,
        to: u32,
        dst: &Region,
    ) -> Result<(), PlanError> {
        let x = self.xfers.len() as u32;
        self.open[from as usize].0.push(x);
        self.open[to as usize].1.push(x);
        self.xfers.push(Xfer {
            from,
            src: *src,
            to,
            dst: *dst,
        });
        Ok(())
    }

    fn group_done(
        &mut self,
        dev: u32,
        idx: usize,
        tag: u32,
        _instr: &Instr,
    ) -> Result<(), PlanError> {
        let (sends, recvs) = std::mem::take(&mut self.open[dev as usize]);
        self.events[dev as usize].push(Event {
            idx,
            tag,
            sends,
            recvs,
        });
        Ok(())
    }
}

impl Skeleton {
    /// The communication structure of `plan`'s forward or backward programs; `None` when the
    /// driver refuses them (the sequential validator then names the error).
    pub(super) fn of(plan: &Plan, backward: bool) -> Option<Skeleton> {
        let n = plan.devices.len();
        let mut s = Skeleton {
            xfers: Vec::new(),
            events: (0..n).map(|_| Vec::new()).collect(),
            open: (0..n).map(|_| Default::default()).collect(),
        };
        drive(plan, backward, &mut s).ok()?;
        Some(s)
    }
}

/// Where one device is in its program.
#[derive(Default)]
struct Cursor {
    pc: usize,
    /// Its next group ([`Skeleton::events`]).
    k: usize,
    /// Whether the next group's sends have left.
    sent: bool,
    done: bool,
}

enum Step {
    /// The device finished its program.
    Done,
    /// It waits for a send to it.
    Blocked,
    /// It refused something (the plan is invalid) or did not follow the skeleton.
    Failed,
}

/// What a send carried, until its receiver takes it.
type Mailbox = Mutex<Option<RowList>>;

/// Runs `dev` as far as it can go.
fn advance(
    l: &mut Local<'_, '_>,
    c: &mut Cursor,
    sk: &Skeleton,
    mail: &[Mailbox],
    plan: &Plan,
    backward: bool,
) -> Step {
    let prog = program(plan, l.dev as usize, backward);
    let evs = &sk.events[l.dev as usize];
    loop {
        let Some(ev) = evs.get(c.k) else {
            if !c.done {
                if l.run(prog, &mut c.pc).is_err() || c.pc != prog.instrs.len() {
                    return Step::Failed;
                }
                c.done = true;
            }
            return Step::Done;
        };
        if !c.sent {
            if l.run(prog, &mut c.pc).is_err() || c.pc != ev.idx {
                return Step::Failed;
            }
            for &x in ev.sends.iter() {
                let x = x as usize;
                let t = &sk.xfers[x];
                let item = Item::Send { to: t.to };
                if l.check_region(l.dev, ev.idx, &t.src, item).is_err() {
                    return Step::Failed;
                }
                let rows = match l.send_rows(ev.idx, &t.src, t.to) {
                    Ok(r) => r,
                    Err(_) => return Step::Failed,
                };
                *mail[x].lock().expect("mailbox") = Some(rows);
            }
            c.sent = true;
        }
        if ev
            .recvs
            .iter()
            .any(|&x| mail[x as usize].lock().expect("mailbox").is_none())
        {
            return Step::Blocked;
        }
        let sends: Few<Region> = ev.sends.iter().map(|&x| sk.xfers[x as usize].src).collect();
        let mut recvs = Few::Zero;
        for &x in ev.recvs.iter() {
            let t = &sk.xfers[x as usize];
            let item = Item::Recv { from: t.from };
            if l.check_region(l.dev, ev.idx, &t.dst, item).is_err() || t.src.len != t.dst.len {
                return Step::Failed;
            }
            let rows = mail[x as usize]
                .lock()
                .expect("mailbox")
                .take()
                .expect("checked above");
            l.recv_rows(&t.dst, rows);
            recvs.push(t.dst);
        }
        if l.group_end(ev.idx, ev.tag, sends, recvs).is_err() {
            return Step::Failed;
        }
        c.pc += 1;
        c.k += 1;
        c.sent = false;
    }
}

/// Blocks of devices per worker ([`Validator::run_flow`]); 4 measured no better than 1 on two
/// threads.
const BLOCKS_PER_WORKER: usize = 1;

/// A block of consecutive devices and where each is; a worker holding its lock advances them.
struct Block<'v, 'a> {
    devs: Vec<(Local<'v, 'a>, Cursor)>,
    done: bool,
}

impl Block<'_, '_> {
    /// Advances every device of the block as far as it can go; whether any moved, or `None`
    /// when one failed.
    fn pass(
        &mut self,
        sk: &Skeleton,
        mail: &[Mailbox],
        plan: &Plan,
        backward: bool,
    ) -> Option<bool> {
        let mut all_done = true;
        let mut moved = false;
        for (l, c) in &mut self.devs {
            if c.done {
                continue;
            }
            let before = (c.pc, c.k, c.sent);
            match advance(l, c, sk, mail, plan, backward) {
                Step::Done => moved = true,
                Step::Blocked => {
                    all_done = false;
                    moved |= before != (c.pc, c.k, c.sent);
                }
                Step::Failed => return None,
            }
        }
        self.done = all_done;
        Some(moved)
    }
}

impl<'a> Validator<'a> {
    /// Runs every device's program following `sk`, on up to `threads` of rayon's threads;
    /// `false` when a device refused something or the plan did not follow its skeleton.
    ///
    /// Devices are cut into blocks of consecutive devices (a ring's neighbours mostly in one
    /// block), [`BLOCKS_PER_WORKER`] per worker; a worker advances any block whose lock it
    /// gets, from its own share on.
    /// So one worker alone finishes every block: workers that rayon starts late (its threads
    /// busy elsewhere) cost time, never a deadlock.
    pub(super) fn run_flow(&mut self, sk: &Skeleton, threads: usize) -> bool {
        let n = self.devs.len();
        let workers = threads.clamp(1, n);
        // A worker whose blocks wait takes up another's that no worker holds.
        let per = n.div_ceil((BLOCKS_PER_WORKER * workers).min(n));
        let mail: Vec<Mailbox> = (0..sk.xfers.len()).map(|_| Mutex::new(None)).collect();
        let (cx, plan, backward, works) = (self.cx, self.plan, self.backward, self.works);
        let all = self.covs.shared();
        let blocks: Vec<Mutex<Block<'_, 'a>>> = self
            .devs
            .chunks_mut(per)
            .zip(self.caches.chunks_mut(per))
            .enumerate()
            .map(|(b, (devs, caches))| {
                let devs = devs
                    .iter_mut()
                    .zip(caches.iter_mut())
                    .enumerate()
                    .map(|(i, (st, cache))| {
                        let dev = (b * per + i) as u32;
                        let l =
                            Local::shared(cx, backward, dev, st, all, cache, &works[dev as usize]);
                        (l, Cursor::default())
                    })
                    .collect();
                Mutex::new(Block { devs, done: false })
            })
            .collect();
        let failed = AtomicBool::new(false);
        let left = AtomicUsize::new(blocks.len());
        let (mail, failed, left, blocks) = (&mail, &failed, &left, &blocks);
        let work = move |w: usize| {
            let nb = blocks.len();
            let mut idle = 0u32;
            while !failed.load(Ordering::Relaxed) && left.load(Ordering::Acquire) > 0 {
                let mut moved = false;
                let first = w * nb / workers;
                for b in (first..nb).chain(0..first) {
                    let Ok(mut blk) = blocks[b].try_lock() else {
                        continue;
                    };
                    if blk.done {
                        continue;
                    }
                    match blk.pass(sk, mail, plan, backward) {
                        None => {
                            failed.store(true, Ordering::Relaxed);
                            return;
                        }
                        Some(m) => moved |= m,
                    }
                    if blk.done {
                        left.fetch_sub(1, Ordering::AcqRel);
                    }
                }
                if moved {
                    idle = 0;
                } else {
                    idle += 1;
                    if idle < 64 {
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
            }
        };
        rayon::scope(|s| {
            for w in 1..workers {
                s.spawn(move |_| work(w));
            }
            work(0);
        });
        !failed.load(Ordering::Relaxed)
    }
}
