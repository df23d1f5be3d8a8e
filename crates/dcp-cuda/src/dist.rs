//! Process group: torchrun-style environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
//! MASTER_ADDR, MASTER_PORT), the NCCL unique-id exchange over a tiny TCP rendezvous (rank 0 listens on
//! MASTER_ADDR:MASTER_PORT and sends the 128-byte id to every other rank; the connections stay
//! open for the heartbeat), and the NCCL communicator, created within a deadline, with
//! asynchronous error checking and an abort the watchdog can call from its thread.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use cudarc::nccl::{result as nres, sys as nsys};

use crate::error::{drv, nccl, CudaError, Result};
use crate::gpu::Gpu;
use crate::heartbeat::{Heartbeat, HeartbeatConfig, Link};
use crate::watchdog::{Cause, Failure, Watchdog};

/// Who this process is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankInfo {
    pub rank: u32,
    pub world: u32,
    pub local_rank: u32,
    /// Ranks per node (`LOCAL_WORLD_SIZE`; unset: `world`, one node). Ranks `n·local_world ..
    /// (n+1)·local_world` are node `n`'s, as torchrun numbers them; plans are made for
    /// [`Self::nodes`] × `local_world` GPUs.
    pub local_world: u32,
    pub master_addr: String,
    pub master_port: u16,
}

impl RankInfo {
    /// From the environment; a process without WORLD_SIZE is rank 0 of a world of 1.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let num = |k: &str, default: u32| -> Result<u32> {
            match get(k) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| CudaError::Env(format!("{k}={v:?} is not a number"))),
            }
        };
        let world = num("WORLD_SIZE", 1)?;
        let rank = num("RANK", 0)?;
        if world == 0 || rank >= world {
            return Err(CudaError::Env(format!(
                "RANK={rank} must be below WORLD_SIZE={world}"
            )));
        }
        let local_world = num("LOCAL_WORLD_SIZE", world)?;
        if local_world == 0 || !world.is_multiple_of(local_world) {
            return Err(CudaError::Env(format!(
                "LOCAL_WORLD_SIZE={local_world} must divide WORLD_SIZE={world} (ranks per node, the same on every node)"
            )));
        }
        // The GPU ordinal to open: not checked against RANK, since a launcher may show each
        // process only its own GPU (LOCAL_RANK=0 everywhere).
        let local_rank = num("LOCAL_RANK", rank % local_world)?;
        let master_addr = get("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into());
        let master_port = match get("MASTER_PORT") {
            None => 29500,
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| CudaError::Env(format!("MASTER_PORT={v:?} is not a port")))?,
        };
        if world > 1 && get("MASTER_PORT").is_none() {
            return Err(CudaError::Env(
                "WORLD_SIZE > 1 needs MASTER_ADDR and MASTER_PORT (use `dcp launch -n N -- ...`)"
                    .into(),
            ));
        }
        Ok(RankInfo {
            rank,
            world,
            local_rank,
            local_world,
            master_addr,
            master_port,
        })
    }

    /// Nodes of the job (`world / local_world`).
    pub fn nodes(&self) -> u32 {
        self.world / self.local_world
    }
}

/// First bytes a rank sends to rank 0: magic, rank, world size.
const HELLO_MAGIC: &[u8; 4] = b"DCP1";

/// What the rendezvous leaves behind: rank 0's payload and the open connections (rank 0: one
/// per other rank; other ranks: one to rank 0), which then carry the heartbeat.
pub struct Rendezvous {
    pub payload: Vec<u8>,
    pub links: Vec<(u32, TcpStream)>,
}

impl std::fmt::Debug for Rendezvous {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let peers: Vec<u32> = self.links.iter().map(|l| l.0).collect();
        f.debug_struct("Rendezvous")
            .field("payload_bytes", &self.payload.len())
            .field("peers", &peers)
            .finish()
    }
}

fn stalled(info: &RankInfo, step: &str, peers: Vec<u32>, timeout: Duration) -> CudaError {
    CudaError::Stalled(Box::new(Failure {
        rank: info.rank,
        step: step.into(),
        peers,
        cause: Cause::Deadline {
            secs: timeout.as_secs_f64(),
        },
    }))
}

/// A line on stderr while a wait goes on: the first after `every`, then one per `every`.
struct WaitNote {
    every: Duration,
    next: Instant,
}

impl WaitNote {
    fn new(every: Duration) -> Self {
        WaitNote {
            every,
            next: Instant::now() + every,
        }
    }

    /// Prints `line()` when the next note is due; returns whether it printed.
    fn tick(&mut self, line: impl FnOnce() -> String) -> bool {
        let now = Instant::now();
        if now < self.next {
            return false;
        }
        self.next = now + self.every;
        eprintln!("dcp: {}", line());
        true
    }
}

/// Exchanges `payload` (from rank 0) with every rank over TCP within `timeout`; returns it on
/// every rank with the connections left open. Every rank introduces itself (rank, world size);
/// rank 0 checks them. On expiry the error names the ranks that did not show up.
pub fn rendezvous(
    info: &RankInfo,
    payload: Option<&[u8]>,
    timeout: Duration,
) -> Result<Rendezvous> {
    let rz = |e: std::io::Error, what: &str| {
        CudaError::Rendezvous(format!("rank {}: {what}: {e}", info.rank))
    };
    let addr = (info.master_addr.as_str(), info.master_port)
        .to_socket_addrs()
        .map_err(|e| rz(e, "resolving MASTER_ADDR"))?
        .next()
        .ok_or_else(|| CudaError::Rendezvous("MASTER_ADDR resolves to nothing".into()))?;
    let deadline = crate::watchdog::deadline_after(timeout);
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    // Ranks of other nodes may start much later: say what this one waits for, now and then.
    let mut note = WaitNote::new(Duration::from_secs(10));
    if info.rank == 0 {
        let data = payload
            .ok_or_else(|| CudaError::Rendezvous("rank 0 needs the payload to serve".into()))?
            .to_vec();
        let l = TcpListener::bind(addr).map_err(|e| rz(e, "binding MASTER_ADDR:MASTER_PORT"))?;
        l.set_nonblocking(true).map_err(|e| rz(e, "listener"))?;
        let mut links: Vec<(u32, TcpStream)> = Vec::new();
        while links.len() + 1 < info.world as usize {
            match l.accept() {
                Ok((mut s, from)) => {
                    s.set_nonblocking(false).map_err(|e| rz(e, "socket"))?;
                    s.set_read_timeout(Some(left()))
                        .map_err(|e| rz(e, "socket"))?;
                    let mut hello = [0u8; 12];
                    s.read_exact(&mut hello)
                        .map_err(|e| rz(e, &format!("reading the hello of {from}")))?;
                    let r = u32::from_le_bytes(hello[4..8].try_into().expect("4 bytes"));
                    let w = u32::from_le_bytes(hello[8..12].try_into().expect("4 bytes"));
                    if &hello[..4] != HELLO_MAGIC {
                        return Err(CudaError::Rendezvous(format!(
                            "rank 0: {from} connected to MASTER_PORT but is not a dcp rank"
                        )));
                    }
                    if w != info.world || r == 0 || r >= info.world {
                        return Err(CudaError::Rendezvous(format!(
                            "rank 0: {from} says it is rank {r} of {w}, but WORLD_SIZE is {} here",
                            info.world
                        )));
                    }
                    if links.iter().any(|l| l.0 == r) {
                        return Err(CudaError::Rendezvous(format!(
                            "rank 0: two processes claim RANK={r}"
                        )));
                    }
                    let len = (data.len() as u32).to_le_bytes();
                    s.write_all(&len).map_err(|e| rz(e, "sending the id"))?;
                    s.write_all(&data).map_err(|e| rz(e, "sending the id"))?;
                    let _ = s.set_nodelay(true);
                    links.push((r, s));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let missing = || -> Vec<u32> {
                        (1..info.world)
                            .filter(|r| !links.iter().any(|l| l.0 == *r))
                            .collect()
                    };
                    if Instant::now() >= deadline {
                        return Err(stalled(info, "rendezvous", missing(), timeout));
                    }
                    note.tick(|| {
                        format!(
                            "rank 0: waiting for ranks {:?} to join at {addr} (rendezvous; giving up in {:.0} s)",
                            missing(),
                            left().as_secs_f64()
                        )
                    });
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(rz(e, "accept")),
            }
        }
        links.sort_by_key(|l| l.0);
        Ok(Rendezvous {
            payload: data,
            links,
        })
    } else {
        loop {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                Ok(mut s) => {
                    let mut hello = HELLO_MAGIC.to_vec();
                    hello.extend_from_slice(&info.rank.to_le_bytes());
                    hello.extend_from_slice(&info.world.to_le_bytes());
                    s.write_all(&hello)
                        .map_err(|e| rz(e, "sending the hello"))?;
                    s.set_read_timeout(Some(left()))
                        .map_err(|e| rz(e, "socket"))?;
                    let mut len = [0u8; 4];
                    let timed_out = |e: &std::io::Error| {
                        matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        )
                    };
                    if let Err(e) = s.read_exact(&mut len) {
                        return Err(if timed_out(&e) {
                            stalled(info, "rendezvous", vec![0], timeout)
                        } else {
                            rz(e, "reading the id from rank 0")
                        });
                    }
                    let n = u32::from_le_bytes(len) as usize;
                    if n > 1 << 20 {
                        return Err(CudaError::Rendezvous(format!(
                            "rank {}: rank 0 announced a {n}-byte payload",
                            info.rank
                        )));
                    }
                    let mut data = vec![0u8; n];
                    s.read_exact(&mut data)
                        .map_err(|e| rz(e, "reading the id from rank 0"))?;
                    let _ = s.set_nodelay(true);
                    return Ok(Rendezvous {
                        payload: data,
                        links: vec![(0, s)],
                    });
                }
                Err(_) if Instant::now() < deadline => {
                    note.tick(|| {
                        format!(
                            "rank {}: waiting for rank 0 at {addr} (rendezvous; giving up in {:.0} s)",
                            info.rank,
                            left().as_secs_f64()
                        )
                    });
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(_) => return Err(stalled(info, "rendezvous", vec![0], timeout)),
            }
        }
    }
}

/// Joins the group: the rendezvous (rank 0 serves `payload`, the NCCL id), then the heartbeat
/// on the same connections, registered with `wd` so that a frozen or exited peer fails this
/// rank's current step. Returns the payload and the running heartbeat. World 1: no-op.
pub fn join_group(
    info: &RankInfo,
    payload: Option<&[u8]>,
    timeout: Duration,
    hb: HeartbeatConfig,
    wd: &Watchdog,
) -> Result<(Vec<u8>, Option<Heartbeat>)> {
    if info.world == 1 {
        return Ok((payload.map(<[u8]>::to_vec).unwrap_or_default(), None));
    }
    let rz = rendezvous(info, payload, timeout)?;
    let links = rz
        .links
        .into_iter()
        .map(|(r, s)| (r, Box::new(s) as Box<dyn Link>))
        .collect();
    let beat = Heartbeat::start(info.rank, info.world, links, hb);
    wd.set_health(beat.liveness());
    Ok((rz.payload, Some(beat)))
}

/// True when libnccl can be loaded.
pub fn nccl_present() -> bool {
    // SAFETY: only tries to dlopen candidate names.
    unsafe { nsys::is_culib_present() }
}

/// A fresh NCCL unique id as the 128 bytes the rendezvous carries.
pub fn new_nccl_id() -> Result<Vec<u8>> {
    if !nccl_present() {
        return Err(CudaError::NoNccl);
    }
    let id = nccl("ncclGetUniqueId", nres::get_uniqueid())?;
    Ok(id.internal.iter().map(|&c| c as u8).collect())
}

/// The raw communicator, shared with the watchdog so that it can abort it from its thread.
struct CommSlot {
    comm: Mutex<nsys::ncclComm_t>,
}

// SAFETY: the handle is only used under the mutex (abort) or copied out for a call on the
// owning thread; NCCL allows ncclCommAbort from another thread to unblock a stuck call.
unsafe impl Send for CommSlot {}
// SAFETY: as above.
unsafe impl Sync for CommSlot {}

impl CommSlot {
    fn get(&self) -> Result<nsys::ncclComm_t> {
        let c = *self.comm.lock().map_err(|_| CudaError::Poisoned)?;
        if c.is_null() {
            Err(CudaError::Aborted)
        } else {
            Ok(c)
        }
    }

    fn abort(&self) {
        let mut g = self.comm.lock().unwrap_or_else(|p| p.into_inner());
        if !g.is_null() {
            // SAFETY: valid communicator, aborted once (nulled under the lock).
            if let Err(e) = unsafe { nres::comm_abort(*g) } {
                eprintln!("dcp-cuda: ncclCommAbort failed: {e:?}");
            }
            *g = std::ptr::null_mut();
        }
    }
}

/// A communicator handle moved out of the creating thread.
struct SentComm(nsys::ncclComm_t);
// SAFETY: an NCCL communicator may be used from another thread once creation returned.
unsafe impl Send for SentComm {}

/// An NCCL communicator over all ranks, released with `ncclCommAbort` on drop: unlike
/// `ncclCommDestroy` it never waits for peers, so a dead peer cannot hang the teardown.
pub struct Nccl {
    slot: Arc<CommSlot>,
    pub rank: u32,
    pub world: u32,
}

impl Nccl {
    /// Creates the communicator from the rendezvous' `id` on `gpu`, within the watchdog's
    /// deadline: `ncclCommInitRank` blocks until every rank joins, so it runs on a helper thread
    /// and an abandoned creation aborts its communicator when it completes. Registers the
    /// abort with the watchdog.
    pub fn init(gpu: &Gpu, info: &RankInfo, id: &[u8]) -> Result<Self> {
        if !nccl_present() {
            return Err(CudaError::NoNccl);
        }
        if id.len() != 128 {
            return Err(CudaError::Rendezvous(format!(
                "NCCL id has {} bytes, expected 128",
                id.len()
            )));
        }
        let mut internal = [0 as std::ffi::c_char; 128];
        for (d, s) in internal.iter_mut().zip(id) {
            *d = *s as std::ffi::c_char;
        }
        let uid = nsys::ncclUniqueId { internal };
        let (world, rank) = (info.world, info.rank);
        let ctx = gpu.ctx.clone();
        let (tx, rx) = mpsc::channel::<Result<SentComm>>();
        std::thread::Builder::new()
            .name("dcp-nccl-init".into())
            .spawn(move || {
                let r = drv("bind", ctx.bind_to_thread()).and_then(|_| {
                    let mut comm = std::mem::MaybeUninit::uninit();
                    // SAFETY: standard blocking init with a valid id; all ranks call it.
                    unsafe {
                        nccl(
                            "ncclCommInitRank",
                            nres::comm_init_rank(comm.as_mut_ptr(), world as i32, uid, rank as i32),
                        )?;
                        Ok(SentComm(comm.assume_init()))
                    }
                });
                if let Err(mpsc::SendError(Ok(c))) = tx.send(r) {
                    // Nobody waits any more: release what came too late.
                    // SAFETY: a valid communicator nobody else holds.
                    unsafe {
                        let _ = nres::comm_abort(c.0);
                    }
                }
            })
            .map_err(|e| CudaError::Rendezvous(format!("spawning the NCCL init thread: {e}")))?;
        let mut got: Option<Result<SentComm>> = None;
        let peers: Vec<u32> = (0..world).filter(|&r| r != rank).collect();
        gpu.watchdog()
            .wait_until("NCCL communicator creation", &peers, || {
                match rx.try_recv() {
                    Ok(r) => got = Some(r),
                    Err(mpsc::TryRecvError::Empty) => return Ok(false),
                    Err(mpsc::TryRecvError::Disconnected) => {
                        return Err(CudaError::Nccl {
                            call: "ncclCommInitRank",
                            err: "the init thread ended without an answer".into(),
                        })
                    }
                }
                Ok(true)
            })?;
        let comm = got.expect("set when the wait succeeds")?;
        let slot = Arc::new(CommSlot {
            comm: Mutex::new(comm.0),
        });
        let s = slot.clone();
        gpu.watchdog().set_abort(Arc::new(move || s.abort()));
        Ok(Nccl { slot, rank, world })
    }

    /// The raw communicator for an NCCL call; fails once it was aborted.
    pub fn raw(&self) -> Result<nsys::ncclComm_t> {
        self.slot.get()
    }

    /// The other ranks.
    pub fn peers(&self) -> Vec<u32> {
        (0..self.world).filter(|&r| r != self.rank).collect()
    }

    /// The communicator's asynchronous error, if any.
    pub fn async_error(&self) -> Result<()> {
        let comm = self.raw()?;
        let mut e = nsys::ncclResult_t::ncclSuccess;
        // SAFETY: valid communicator.
        let r = unsafe { nsys::ncclCommGetAsyncError(comm, &mut e) };
        if r != nsys::ncclResult_t::ncclSuccess {
            return Err(CudaError::Nccl {
                call: "ncclCommGetAsyncError",
                err: format!("{r:?}"),
            });
        }
        if e != nsys::ncclResult_t::ncclSuccess && e != nsys::ncclResult_t::ncclInProgress {
            return Err(CudaError::Nccl {
                call: "async",
                err: format!("{e:?}: {}", last_error(comm)),
            });
        }
        Ok(())
    }

    /// Aborts the communicator (unblocks kernels stuck on a dead peer); later calls fail.
    pub fn abort(&self) {
        self.slot.abort();
    }

    /// Flushes every operation still in flight (`ncclCommFinalize`, which blocks on a dead
    /// peer: run it under a watchdog step, whose abort unblocks it). Dropping afterwards
    /// releases the communicator with nothing left in flight.
    pub fn finalize(&self) -> Result<()> {
        let comm = self.raw()?;
        // SAFETY: a valid communicator; finalize does not free it (the drop's abort does).
        nccl("ncclCommFinalize", unsafe { nres::comm_finalize(comm) }).map(|_| ())
    }
}

/// Waits within `wd`'s deadline (step `step`, waiting for `peers`) until `done` says so,
/// polling `comm`'s asynchronous error meanwhile: on an NCCL error the communicator is aborted
/// and the error returned.
pub fn wait_polling_peers(
    wd: &Watchdog,
    step: &str,
    peers: &[u32],
    comm: Option<&Nccl>,
    done: impl FnMut() -> Result<bool>,
) -> Result<()> {
    wait_polling_peers_within(wd, step, peers, comm, wd.timeout(), done)
}

/// [`wait_polling_peers`] with the deadline `limit` from now, or the watchdog's timeout where
/// that is shorter ([`Watchdog::wait_until_within`]).
pub fn wait_polling_peers_within(
    wd: &Watchdog,
    step: &str,
    peers: &[u32],
    comm: Option<&Nccl>,
    limit: std::time::Duration,
    mut done: impl FnMut() -> Result<bool>,
) -> Result<()> {
    wd.wait_until_within(step, peers, limit, || {
        if done()? {
            return Ok(true);
        }
        if let Some(c) = comm {
            if let Err(e) = c.async_error() {
                c.abort();
                return Err(e);
            }
        }
        Ok(false)
    })
}

fn last_error(comm: nsys::ncclComm_t) -> String {
    // SAFETY: returns a C string owned by NCCL (or null).
    unsafe {
        let p = nsys::ncclGetLastError(comm);
        if p.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

impl Drop for Nccl {
    fn drop(&mut self) {
        self.slot.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_parsing() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|p| p.0 == k).map(|p| p.1.to_string())
        };
        let r = RankInfo::from_lookup(env(&[])).unwrap();
        assert_eq!((r.rank, r.world), (0, 1));
        let r = RankInfo::from_lookup(env(&[
            ("RANK", "1"),
            ("WORLD_SIZE", "2"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", "1234"),
        ]))
        .unwrap();
        assert_eq!(
            (r.rank, r.world, r.local_rank, r.master_port),
            (1, 2, 1, 1234)
        );
        assert!(RankInfo::from_lookup(env(&[("RANK", "2"), ("WORLD_SIZE", "2")])).is_err());
        assert!(RankInfo::from_lookup(env(&[("RANK", "x")])).is_err());
        assert!(RankInfo::from_lookup(env(&[("RANK", "0"), ("WORLD_SIZE", "2")])).is_err());
        // Two nodes of 4: rank 6 is node 1's local rank 2.
        let two_nodes = |extra: &'static [(&'static str, &'static str)]| {
            let base: &'static [(&'static str, &'static str)] = &[
                ("RANK", "6"),
                ("WORLD_SIZE", "8"),
                ("LOCAL_WORLD_SIZE", "4"),
                ("MASTER_ADDR", "node0"),
                ("MASTER_PORT", "29500"),
            ];
            move |k: &str| {
                extra
                    .iter()
                    .chain(base)
                    .find(|p| p.0 == k)
                    .map(|p| p.1.to_string())
            }
        };
        let r = RankInfo::from_lookup(two_nodes(&[])).unwrap();
        assert_eq!((r.local_rank, r.local_world, r.nodes()), (2, 4, 2));
        assert_eq!(r.master_addr, "node0");
        let r = RankInfo::from_lookup(two_nodes(&[("LOCAL_RANK", "0")])).unwrap();
        assert_eq!((r.local_rank, r.nodes()), (0, 2));
        let err = |e: &'static [(&'static str, &'static str)]| {
            RankInfo::from_lookup(two_nodes(e)).unwrap_err().to_string()
        };
        assert!(err(&[("LOCAL_WORLD_SIZE", "3")]).contains("must divide WORLD_SIZE=8"));
        assert!(err(&[("LOCAL_WORLD_SIZE", "0")]).contains("LOCAL_WORLD_SIZE=0"));
        // Without LOCAL_WORLD_SIZE: one node.
        let r = RankInfo::from_lookup(env(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "4"),
            ("MASTER_PORT", "1"),
        ]))
        .unwrap();
        assert_eq!((r.local_rank, r.nodes()), (3, 1));
    }

    #[test]
    fn wait_notes_come_once_per_period() {
        let mut n = WaitNote::new(Duration::from_millis(40));
        assert!(!n.tick(|| unreachable!("not due yet")));
        std::thread::sleep(Duration::from_millis(50));
        assert!(n.tick(|| "waiting".into()));
        assert!(!n.tick(|| unreachable!("printed just now")));
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn info(rank: u32, world: u32, port: u16) -> RankInfo {
        RankInfo {
            rank,
            world,
            local_rank: rank,
            local_world: world,
            master_addr: "127.0.0.1".into(),
            master_port: port,
        }
    }

    #[test]
    fn tcp_rendezvous_delivers_payload_and_keeps_links() {
        let port = free_port();
        let t = Duration::from_secs(10);
        let h1 = std::thread::spawn(move || rendezvous(&info(1, 3, port), None, t).unwrap());
        let h2 = std::thread::spawn(move || rendezvous(&info(2, 3, port), None, t).unwrap());
        let payload: Vec<u8> = (0..128u8).collect();
        let r0 = rendezvous(&info(0, 3, port), Some(&payload), t).unwrap();
        assert_eq!(r0.payload, payload);
        assert_eq!(r0.links.iter().map(|l| l.0).collect::<Vec<_>>(), vec![1, 2]);
        for h in [h1, h2] {
            let r = h.join().unwrap();
            assert_eq!(r.payload, payload);
            assert_eq!(r.links.len(), 1);
            assert_eq!(r.links[0].0, 0);
        }
    }

    fn stalled_peers(r: Result<Rendezvous>) -> (String, Vec<u32>) {
        match r {
            Err(CudaError::Stalled(f)) => (f.step.clone(), f.peers.clone()),
            other => panic!("expected a stall, got {other:?}"),
        }
    }

    #[test]
    fn rendezvous_times_out_naming_rank_0() {
        let port = free_port();
        let t0 = Instant::now();
        let (step, peers) = stalled_peers(rendezvous(
            &info(1, 2, port),
            None,
            Duration::from_millis(200),
        ));
        assert!(t0.elapsed() < Duration::from_secs(3));
        assert_eq!((step.as_str(), peers), ("rendezvous", vec![0]));
    }

    #[test]
    fn rank_0_names_the_ranks_that_never_came() {
        let port = free_port();
        let t = Duration::from_millis(600);
        let h = std::thread::spawn(move || rendezvous(&info(2, 4, port), None, t));
        let (step, peers) = stalled_peers(rendezvous(&info(0, 4, port), Some(&[1, 2]), t));
        assert_eq!((step.as_str(), peers), ("rendezvous", vec![1, 3]));
        // Rank 2 was served before rank 0 gave up.
        assert_eq!(h.join().unwrap().unwrap().payload, vec![1, 2]);
    }

    #[test]
    fn rank_0_that_accepts_but_never_answers_times_out() {
        // A listener that accepts and then sits still (a frozen rank 0).
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t0 = Instant::now();
        let (step, peers) = stalled_peers(rendezvous(
            &info(1, 2, port),
            None,
            Duration::from_millis(300),
        ));
        assert!(t0.elapsed() < Duration::from_secs(3));
        assert_eq!((step.as_str(), peers), ("rendezvous", vec![0]));
        drop(l);
    }

    #[test]
    fn rendezvous_rejects_mismatched_world_and_duplicate_ranks() {
        let port = free_port();
        let t = Duration::from_secs(5);
        let h = std::thread::spawn(move || rendezvous(&info(1, 3, port), None, t));
        let e = rendezvous(&info(0, 2, port), Some(&[0]), t).unwrap_err();
        assert!(e.to_string().contains("rank 1 of 3"), "{e}");
        let _ = h.join();
        let port = free_port();
        let a = std::thread::spawn(move || rendezvous(&info(1, 3, port), None, t));
        let b = std::thread::spawn(move || rendezvous(&info(1, 3, port), None, t));
        let e = rendezvous(&info(0, 3, port), Some(&[0]), t).unwrap_err();
        assert!(e.to_string().contains("two processes claim RANK=1"), "{e}");
        let _ = (a.join(), b.join());
    }

    /// Three ranks as threads over real loopback sockets: rendezvous, heartbeat, watchdog.
    /// Rank 2 joins and then freezes (its socket stays open, nothing is sent); ranks 0 and 1
    /// sit in a step that never completes (as in an NCCL wait) with a long deadline. Both fail
    /// within the heartbeat's silence limit, naming rank 2; rank 1 learns it from rank 0.
    #[test]
    fn frozen_rank_fails_the_others_within_the_silence_limit() {
        use crate::watchdog::{OnExpiry, PeerCause};
        let port = free_port();
        let t = Duration::from_secs(10);
        let hb = HeartbeatConfig {
            period: Duration::from_millis(50),
            silent_after: Duration::from_millis(500),
        };
        let frozen = std::thread::spawn(move || {
            // Joins like a rank, then stops making progress while keeping its socket.
            let rz = rendezvous(&info(2, 3, port), None, t).unwrap();
            std::thread::sleep(Duration::from_millis(1500));
            drop(rz);
        });
        let survivor = move |rank: u32| {
            std::thread::spawn(move || {
                let wd = Watchdog::new(rank, Duration::from_secs(30), OnExpiry::ReturnError);
                let id: Vec<u8> = (0..128).collect();
                let mine = (rank == 0).then_some(&id[..]);
                let (got, _beat) = join_group(&info(rank, 3, port), mine, t, hb, &wd).unwrap();
                assert_eq!(got, id);
                let t0 = Instant::now();
                let r = wd.wait_until("backward program (run 3)", &[0, 1, 2], || Ok(false));
                (t0.elapsed(), r)
            })
        };
        let (s0, s1) = (survivor(0), survivor(1));
        for (rank, h) in [(0u32, s0), (1, s1)] {
            let (el, r) = h.join().unwrap();
            let f = match r {
                Err(CudaError::Stalled(f)) => f,
                other => panic!("rank {rank}: expected a stall, got {other:?}"),
            };
            assert!(el < Duration::from_secs(3), "rank {rank} took {el:?}");
            assert_eq!(f.rank, rank);
            assert_eq!(f.step, "backward program (run 3)");
            match f.cause {
                Cause::Peer {
                    peer: 2,
                    cause: PeerCause::Silent { .. },
                    via,
                } => assert_eq!(via, if rank == 0 { None } else { Some(0) }),
                c => panic!("rank {rank}: {c:?}"),
            }
            let line = f.to_string();
            assert!(line.contains("rank 2 stopped responding"), "{line}");
        }
        frozen.join().unwrap();
    }

    /// A rank that exits (its sockets close) fails the others at once.
    #[test]
    fn exited_rank_fails_the_others_at_once() {
        use crate::watchdog::{OnExpiry, PeerCause};
        let port = free_port();
        let t = Duration::from_secs(10);
        let hb = HeartbeatConfig::for_timeout(Duration::from_secs(20));
        let quitter = std::thread::spawn(move || {
            let wd = Watchdog::new(1, t, OnExpiry::ReturnError);
            let (_, beat) = join_group(&info(1, 2, port), None, t, hb, &wd).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            drop(beat); // no goodbye: looks like a crash
        });
        let wd = Watchdog::new(0, Duration::from_secs(20), OnExpiry::ReturnError);
        let (_, _beat) = join_group(&info(0, 2, port), Some(&[7]), t, hb, &wd).unwrap();
        let t0 = Instant::now();
        let r = wd.wait_until("barrier", &[1], || Ok(false));
        assert!(t0.elapsed() < Duration::from_secs(3));
        match r {
            Err(CudaError::Stalled(f)) => assert_eq!(
                f.cause,
                Cause::Peer {
                    peer: 1,
                    cause: PeerCause::Exited,
                    via: None
                }
            ),
            other => panic!("expected a stall, got {other:?}"),
        }
        quitter.join().unwrap();
    }
}
