//! The interpreter loop shared by the validator and the CPU reference executor: runs all devices'
//! programs together, executing local instructions in order and each communication group when
//! every device named in it has reached it. It enforces the IR's communication rules (tags rise
//! along each list; every send has exactly one matching receive of equal size on its peer in the
//! same group, in the same order per pair) and reports the instruction that breaks them.

use crate::error::{PlanError, PlanErrorKind};
use crate::plan::{Dir, Instr, P2p, Plan, Program, Region};
use crate::prefetch::prefetch_bytes;

/// What a machine does with instructions; the driver decides the order.
pub trait Machine {
    /// Executes one non-communication instruction of `dev`.
    fn local(&mut self, dev: u32, idx: usize, instr: &Instr) -> Result<(), PlanError>;
    /// Executes every device's local instructions from `pc[d]` up to its next communication
    /// instruction (or its end), advancing `pc`; devices in order, stopping at the first error.
    /// A machine may run devices in parallel if it reports the same error (the first failing
    /// device's).
    fn locals(&mut self, progs: &[&Program], pc: &mut [usize]) -> Result<(), PlanError> {
        for (d, prog) in progs.iter().enumerate() {
            while let Some(ins) = prog.instrs.get(pc[d]) {
                if matches!(ins, Instr::Comm { .. }) {
                    break;
                }
                self.local(d as u32, pc[d], ins)?;
                pc[d] += 1;
            }
        }
        Ok(())
    }
    /// Moves `src` (on `from`) into `dst` (on `to`) as part of group `tag`; called for every
    /// matched send/recv pair of the group, then `group_done` once per participating device.
    fn transfer(&mut self, from: u32, src: &Region, to: u32, dst: &Region)
        -> Result<(), PlanError>;
    /// Whether [`drive`] prefetches, while it finds the devices waiting at a communication,
    /// their ops and buffer declarations, which it reads a pass later (a hint for plans whose
    /// devices' data do not stay in cache between phases). No by default.
    fn prefetch_comm(&self) -> bool {
        false
    }
    /// Called after all transfers of a group, once per participating device.
    fn group_done(
        &mut self,
        dev: u32,
        idx: usize,
        tag: u32,
        instr: &Instr,
    ) -> Result<(), PlanError>;
}

pub fn program_name(backward: bool) -> &'static str {
    if backward {
        "backward"
    } else {
        "forward"
    }
}

pub fn program(plan: &Plan, dev: usize, backward: bool) -> &Program {
    if backward {
        &plan.devices[dev].backward
    } else {
        &plan.devices[dev].forward
    }
}

/// One side of a transfer in a group: (sender, receiver, index of the op in its device's list,
/// region).
type Side<'p> = (u32, u32, u32, &'p Region);

/// Runs the forward or backward programs of all devices on `m`.
///
/// Per group, the sends and receives are sorted by (sender, receiver, order in the list) and
/// matched in one walk: the cost is the group's ops, not devices² (a ring plan over 32 devices
/// has 32 devices in every group).
pub fn drive(plan: &Plan, backward: bool, m: &mut impl Machine) -> Result<(), PlanError> {
    let pname = program_name(backward);
    let n = plan.devices.len();
    let progs: Vec<&Program> = (0..n).map(|d| program(plan, d, backward)).collect();
    let mut pc = vec![0usize; n];
    let mut last_tag: Vec<Option<u32>> = vec![None; n];
    // Per device, the comm instruction it waits at: its tag and ops.
    let mut at: Vec<Option<(u32, &[P2p])>> = vec![None; n];
    let mut sends: Vec<Side> = Vec::new();
    let mut recvs: Vec<Side> = Vec::new();
    let prefetch = m.prefetch_comm();
    loop {
        m.locals(&progs, &mut pc)?;
        // Devices waiting at a Comm, with their tags, and the lowest tag.
        let mut low: Option<u32> = None;
        for ((a, prog), &pc) in at.iter_mut().zip(&progs).zip(&pc) {
            *a = match prog.instrs.get(pc) {
                Some(Instr::Comm { tag, ops }) => {
                    if prefetch {
                        // Read by the pass over the group's ops below (two lines each: a
                        // ring step's ops and buffers fit).
                        let b = &prog.buffers[..];
                        prefetch_bytes(ops.as_ptr(), std::mem::size_of_val(&ops[..]).min(128));
                        prefetch_bytes(b.as_ptr(), std::mem::size_of_val(b).min(128));
                    }
                    low = Some(low.map_or(*tag, |l| l.min(*tag)));
                    Some((*tag, &ops[..]))
                }
                _ => None,
            };
        }
        let Some(tag) = low else {
            break;
        };
        let tag_of = |a: &Option<(u32, &[P2p])>| a.map(|(t, _)| t);
        for (d, (a, last)) in at.iter().zip(&last_tag).enumerate() {
            if let (Some((t, _)), Some(prev)) = (*a, *last) {
                if t == tag && tag <= prev {
                    return Err(PlanError::new(
                        d as u32,
                        pname,
                        Some(pc[d]),
                        PlanErrorKind::TagOrder { tag, prev },
                    ));
                }
            }
        }
        sends.clear();
        recvs.clear();
        for (d, a) in at.iter().enumerate() {
            let ops = match *a {
                Some((t, ops)) if t == tag => ops,
                _ => continue,
            };
            for (k, op) in ops.iter().enumerate() {
                let p = op.peer as usize;
                if p >= n || p == d {
                    return Err(PlanError::new(
                        d as u32,
                        pname,
                        Some(pc[d]),
                        PlanErrorKind::BadPeer { tag, peer: op.peer },
                    ));
                }
                if tag_of(&at[p]) != Some(tag) {
                    return Err(PlanError::new(
                        d as u32,
                        pname,
                        Some(pc[d]),
                        PlanErrorKind::PeerNotInGroup {
                            tag,
                            peer: p as u32,
                            send: op.dir == Dir::Send,
                            peer_next: tag_of(&at[p]),
                        },
                    ));
                }
                let (d32, p32, k32) = (d as u32, p as u32, k as u32);
                match op.dir {
                    Dir::Send => sends.push((d32, p32, k32, &op.region)),
                    Dir::Recv => recvs.push((p32, d32, k32, &op.region)),
                }
            }
        }
        // Sends and receives per ordered pair (sender, receiver), pairs in order, each pair's
        // in list order: matched k-th to k-th.
        sort_sides(&mut sends);
        sort_sides(&mut recvs);
        // One matched pair: `k`-th send of `d` to `p` and `k`-th receive of `p` from `d`.
        let mut matched = |k: usize, d: usize, p: usize, s: &Region, r: &Region| {
            let sb = &progs[d].buffers.get(s.buf as usize);
            let rb = &progs[p].buffers.get(r.buf as usize);
            let (Some(sb), Some(rb)) = (sb, rb) else {
                let (dev, buf) = if sb.is_none() { (d, s.buf) } else { (p, r.buf) };
                return Err(PlanError::new(
                    dev as u32,
                    pname,
                    Some(pc[dev]),
                    PlanErrorKind::UndeclaredBuffer {
                        item: format!("comm tag {tag} pair {k}"),
                        buf,
                    },
                ));
            };
            let se = s.len as u64 * s.heads as u64 * sb.width as u64;
            let re = r.len as u64 * r.heads as u64 * rb.width as u64;
            if se != re || sb.dtype != rb.dtype || s.heads != r.heads {
                let shape = |x: &Region, w: u32, t| {
                    format!("{} tokens × {} heads × {w} of {t:?}", x.len, x.heads)
                };
                return Err(PlanError::new(
                    d as u32,
                    pname,
                    Some(pc[d]),
                    PlanErrorKind::SizeMismatch {
                        tag,
                        peer: p as u32,
                        pair: k,
                        send: shape(s, sb.width, sb.dtype),
                        recv: shape(r, rb.width, rb.dtype),
                    },
                ));
            }
            m.transfer(d as u32, s, p as u32, r)
        };
        // Every send lined up with a receive of the same pair (a valid group): matched in one
        // walk, in the same order as below.
        let aligned = sends.len() == recvs.len()
            && sends
                .iter()
                .zip(&recvs)
                .all(|(s, r)| (s.0, s.1) == (r.0, r.1));
        if aligned {
            let mut k = 0;
            for (i, (s, r)) in sends.iter().zip(&recvs).enumerate() {
                if i > 0 && (sends[i - 1].0, sends[i - 1].1) != (s.0, s.1) {
                    k = 0;
                }
                matched(k, s.0 as usize, s.1 as usize, s.3, r.3)?;
                k += 1;
            }
        }
        let (mut i, mut j) = if aligned {
            (sends.len(), recvs.len())
        } else {
            (0, 0)
        };
        while i < sends.len() || j < recvs.len() {
            let pair = match (sends.get(i), recvs.get(j)) {
                (Some(s), Some(r)) => (s.0, s.1).min((r.0, r.1)),
                (Some(s), None) => (s.0, s.1),
                (None, Some(r)) => (r.0, r.1),
                (None, None) => unreachable!(),
            };
            let ns = sends[i..].iter().take_while(|s| (s.0, s.1) == pair).count();
            let nr = recvs[j..].iter().take_while(|r| (r.0, r.1) == pair).count();
            let (d, p) = (pair.0 as usize, pair.1 as usize);
            if ns != nr {
                return Err(PlanError::new(
                    d as u32,
                    pname,
                    Some(pc[d]),
                    PlanErrorKind::UnmatchedSend {
                        tag,
                        peer: p as u32,
                        sends: ns,
                        recvs: nr,
                    },
                ));
            }
            for (k, (s, r)) in sends[i..i + ns].iter().zip(&recvs[j..j + nr]).enumerate() {
                matched(k, d, p, s.3, r.3)?;
            }
            i += ns;
            j += nr;
        }
        for (d, ((a, last), pc)) in at.iter().zip(&mut last_tag).zip(&mut pc).enumerate() {
            if tag_of(a) == Some(tag) {
                m.group_done(d as u32, *pc, tag, &progs[d].instrs[*pc])?;
                *last = Some(tag);
                *pc += 1;
            }
        }
    }
    Ok(())
}

/// Sorts `sides` by (sender, receiver, order in the list), keys distinct. Sends come in sender
/// order and receives in receiver order: a ring's are sorted already or one rotation away
/// (device 0 receives from the last one), found in one pass; anything else is sorted.
fn sort_sides(sides: &mut [Side]) {
    let key = |x: &Side| (x.0, x.1, x.2);
    let mut cut = None;
    for i in 1..sides.len() {
        if key(&sides[i - 1]) > key(&sides[i]) {
            if cut.is_some() {
                sides.sort_unstable_by_key(key);
                return;
            }
            cut = Some(i);
        }
    }
    if let Some(i) = cut {
        // Two sorted runs: the second wholly before the first makes one after a rotation.
        if key(&sides[sides.len() - 1]) < key(&sides[0]) {
            sides.rotate_left(i);
        } else {
            sides.sort_unstable_by_key(key);
        }
    }
    debug_assert!(sides.windows(2).all(|w| key(&w[0]) < key(&w[1])));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sort_sides` orders like a sort by (sender, receiver, order) on sorted, rotated (a
    /// ring's receives), reversed and shuffled lists.
    #[test]
    fn sort_sides_matches_a_sort() {
        let r = Region {
            buf: 0,
            tok: 0,
            len: 1,
            head: 0,
            heads: 1,
        };
        let key = |x: &Side| (x.0, x.1, x.2);
        let sorted: Vec<Side> = (0..12u32)
            .map(|i| (i / 3, (i / 3 + 1) % 5, i % 3, &r))
            .collect();
        let mut cases: Vec<Vec<Side>> = vec![Vec::new(), sorted.clone()];
        for k in 1..sorted.len() {
            let mut v = sorted.clone();
            v.rotate_left(k);
            cases.push(v);
        }
        let mut rev = sorted.clone();
        rev.reverse();
        cases.push(rev);
        // A fixed pseudo-random shuffle, and two rotations glued (two descents).
        let mut shuffled = sorted.clone();
        let mut s = 7u64;
        for i in (1..shuffled.len()).rev() {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        cases.push(shuffled);
        let mut two = sorted[6..].to_vec();
        two.extend_from_slice(&sorted[3..6]);
        two.extend_from_slice(&sorted[..3]);
        cases.push(two);
        for mut v in cases {
            let mut want = v.clone();
            want.sort_unstable_by_key(key);
            sort_sides(&mut v);
            assert_eq!(
                v.iter().map(key).collect::<Vec<_>>(),
                want.iter().map(key).collect::<Vec<_>>()
            );
        }
    }
}
