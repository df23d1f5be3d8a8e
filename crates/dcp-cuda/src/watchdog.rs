//! Deadlines on every blocking step of a rank, and what happens when one expires.
//!
//! A [`Watchdog`] belongs to one rank (one process, or one library caller). Code that blocks
//! (waiting for an event, a stream, an NCCL group, the rendezvous, communicator creation)
//! either polls through [`Watchdog::wait_until`], which returns an error at the deadline, or runs
//! inside [`Watchdog::guard`], which registers the step so that a background thread notices when
//! the deadline passes while this thread is stuck inside a call it cannot poll (`ncclGroupEnd`,
//! `ncclCommInitRank`). The same thread watches peer liveness ([`PeerHealth`], fed by the
//! heartbeat in [`crate::heartbeat`]): a frozen or dead peer is detected even while this rank
//! sits in an NCCL call.
//!
//! On expiry the watchdog records a [`Failure`] naming this rank, the step and the peers it
//! waited for. The next [`Watchdog::check`] (every bounded wait and every [`crate::gpu::Gpu::bind`]
//! calls it) aborts the communicator and returns [`CudaError::Stalled`]. If the owning thread does
//! not pick the failure up within [`GRACE`] while inside a step (it is blocked inside NCCL), the
//! watchdog aborts the communicator itself; with [`OnExpiry::ExitProcess`] (the CLI) it then prints the failure line
//! and exits with [`EXIT_STALLED`] after another [`GRACE`], so a rank never outlives its deadline
//! by more than a few seconds.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::error::{CudaError, Result};

/// Exit status of a rank that gave up on a step or a peer.
pub const EXIT_STALLED: i32 = 3;

/// How long the owning thread has to notice a failure before the watchdog acts itself.
pub const GRACE: Duration = Duration::from_millis(1500);

/// Watchdog thread tick.
const TICK: Duration = Duration::from_millis(20);

/// Set once the failure line was printed (by [`exit_stalled`] or the watchdog's forced exit).
static PRINTED: AtomicBool = AtomicBool::new(false);

/// `timeout` from now; a timeout too large to represent means about a year.
pub fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

/// What the watchdog does when the owning thread stays stuck after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExpiry {
    /// Library callers: abort the communicator (which unblocks NCCL calls) and let the blocked
    /// call return [`CudaError::Stalled`].
    ReturnError,
    /// The CLI: as above, then print the failure and exit the process with [`EXIT_STALLED`].
    ExitProcess,
}

/// Why a peer is considered failed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PeerCause {
    /// No heartbeat for this many seconds (frozen, stopped, or its host unreachable).
    Silent { secs: f64 },
    /// Its connection closed without a goodbye (the process exited or crashed).
    Exited,
}

/// Why a step failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Cause {
    /// The step's deadline passed.
    Deadline { secs: f64 },
    /// A peer failed; `via` is the rank that reported it (rank 0 relays what it sees).
    Peer {
        peer: u32,
        cause: PeerCause,
        via: Option<u32>,
    },
}

/// A failed step: this rank, the step, the peers it waited for, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub rank: u32,
    pub step: String,
    pub peers: Vec<u32>,
    pub cause: Cause,
}

fn rank_list(p: &[u32]) -> String {
    let v: Vec<String> = p.iter().map(|r| r.to_string()).collect();
    format!(
        "rank{} {}",
        if p.len() == 1 { "" } else { "s" },
        v.join(", ")
    )
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waiting = if self.peers.is_empty() {
            "the GPU".to_string()
        } else {
            rank_list(&self.peers)
        };
        match &self.cause {
            Cause::Deadline { secs } => write!(
                f,
                "rank {}: step `{}` timed out after {secs:.1} s waiting for {waiting}",
                self.rank, self.step
            ),
            Cause::Peer { peer, cause, via } => {
                let what = match cause {
                    PeerCause::Silent { secs } => {
                        format!("stopped responding (no heartbeat for {secs:.1} s)")
                    }
                    PeerCause::Exited => "exited (its connection closed)".to_string(),
                };
                let via = match via {
                    Some(v) => format!(", reported by rank {v}"),
                    None => String::new(),
                };
                write!(
                    f,
                    "rank {}: rank {peer} {what}{via}; this rank was in step `{}` waiting for {waiting}",
                    self.rank, self.step
                )
            }
        }
    }
}

/// Liveness of the other ranks (the heartbeat implements it; tests fake it).
pub trait PeerHealth: Send + Sync {
    /// The first failed peer (the earliest failure learnt), if any.
    fn failed_peer(&self) -> Option<(u32, PeerCause, Option<u32>)>;
}

type Hook = Arc<dyn Fn() + Send + Sync>;

#[derive(Debug)]
struct Active {
    step: String,
    peers: Vec<u32>,
    deadline: Instant,
}

#[derive(Default)]
struct Inner {
    step: Option<Active>,
    failure: Option<Failure>,
    fired_at: Option<Instant>,
    acked: bool,
    aborted: bool,
}

/// Per-rank deadlines and failure handling (see the module doc).
pub struct Watchdog {
    rank: u32,
    timeout: Duration,
    on_expiry: OnExpiry,
    inner: Mutex<Inner>,
    abort: Mutex<Option<Hook>>,
    health: Mutex<Option<Arc<dyn PeerHealth>>>,
}

impl fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watchdog")
            .field("rank", &self.rank)
            .field("timeout", &self.timeout)
            .field("on_expiry", &self.on_expiry)
            .finish_non_exhaustive()
    }
}

impl Watchdog {
    /// A watchdog for `rank` with `timeout` per step, and its background thread (which stops
    /// when the last `Arc` is dropped).
    pub fn new(rank: u32, timeout: Duration, on_expiry: OnExpiry) -> Arc<Self> {
        let wd = Arc::new(Watchdog {
            rank,
            timeout,
            on_expiry,
            inner: Mutex::new(Inner::default()),
            abort: Mutex::new(None),
            health: Mutex::new(None),
        });
        let weak = Arc::downgrade(&wd);
        // A failed spawn leaves polled waits bounded; only unpollable calls lose their bound.
        let _ = std::thread::Builder::new()
            .name(format!("dcp-watchdog-{rank}"))
            .spawn(move || watch(weak));
        wd
    }

    pub fn rank(&self) -> u32 {
        self.rank
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Installs what aborts the communicator (called at most once per failure).
    pub fn set_abort(&self, hook: Hook) {
        if let Ok(mut a) = self.abort.lock() {
            *a = Some(hook);
        }
    }

    /// Installs the peers' liveness (the heartbeat).
    pub fn set_health(&self, h: Arc<dyn PeerHealth>) {
        if let Ok(mut s) = self.health.lock() {
            *s = Some(h);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked while holding it; the data is
        // plain and still consistent enough to report a failure.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `f` unless a failure is already recorded (the first one wins).
    pub fn fire(&self, f: Failure) {
        let mut g = self.lock();
        if g.failure.is_none() {
            g.failure = Some(f);
            g.fired_at = Some(Instant::now());
        }
    }

    /// The recorded failure, if any (does not acknowledge it).
    pub fn failure(&self) -> Option<Failure> {
        self.lock().failure.clone()
    }

    fn abort_once(&self) {
        let hook = {
            let mut g = self.lock();
            if g.aborted {
                return;
            }
            g.aborted = true;
            self.abort.lock().ok().and_then(|a| a.clone())
        };
        if let Some(h) = hook {
            h();
        }
    }

    /// Fails with the recorded failure (aborting the communicator first), else Ok.
    pub fn check(&self) -> Result<()> {
        let f = {
            let mut g = self.lock();
            let Some(f) = g.failure.clone() else {
                return Ok(());
            };
            g.acked = true;
            f
        };
        self.abort_once();
        Err(CudaError::Stalled(Box::new(f)))
    }

    /// Sets the current step; returns the previous one (steps nest).
    fn enter(&self, step: &str, peers: &[u32]) -> Option<Active> {
        let mut g = self.lock();
        g.step.replace(Active {
            step: step.to_string(),
            peers: peers.to_vec(),
            deadline: deadline_after(self.timeout),
        })
    }

    fn leave(&self, prev: Option<Active>) {
        self.lock().step = prev;
    }

    /// Runs `f` (a call that may block and cannot be polled) as step `step` waiting on `peers`:
    /// the background thread fires at the deadline and aborts the communicator if `f` is still
    /// stuck then. Returns `f`'s value, or the failure recorded meanwhile.
    pub fn guard<T>(&self, step: &str, peers: &[u32], f: impl FnOnce() -> T) -> Result<T> {
        self.check()?;
        let prev = self.enter(step, peers);
        let v = f();
        self.leave(prev);
        self.check()?;
        Ok(v)
    }

    /// Polls `done` until it returns true, as step `step` waiting on `peers`; fails at the
    /// deadline, on a peer failure, or with `done`'s error.
    pub fn wait_until(
        &self,
        step: &str,
        peers: &[u32],
        done: impl FnMut() -> Result<bool>,
    ) -> Result<()> {
        self.wait_until_within(step, peers, self.timeout, done)
    }

    /// [`Self::wait_until`] with the deadline `limit` from now, or the watchdog's own timeout
    /// where that is shorter. Passing it is a failure like the watchdog's deadline (the
    /// failure names the limit in seconds).
    pub fn wait_until_within(
        &self,
        step: &str,
        peers: &[u32],
        limit: Duration,
        mut done: impl FnMut() -> Result<bool>,
    ) -> Result<()> {
        self.check()?;
        let prev = self.enter(step, peers);
        let limit = limit.min(self.timeout);
        let deadline = deadline_after(limit);
        let mut nap = Duration::from_micros(20);
        let r = loop {
            if let Err(e) = self.check() {
                break Err(e);
            }
            match done() {
                Ok(true) => break Ok(()),
                Ok(false) => {}
                // An error caused by the watchdog's abort: report the failure behind it.
                Err(e) => break self.check().and(Err(e)),
            }
            if Instant::now() >= deadline {
                self.fire(Failure {
                    rank: self.rank,
                    step: step.to_string(),
                    peers: peers.to_vec(),
                    cause: Cause::Deadline {
                        secs: limit.as_secs_f64(),
                    },
                });
                break self.check();
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(1));
        };
        self.leave(prev);
        r
    }

    /// One look at the current step and the peers (the background thread calls this).
    /// Returns what the thread should do next.
    fn tick(&self, now: Instant) -> TickAction {
        let health = self.health.lock().ok().and_then(|h| h.clone());
        let mut g = self.lock();
        if g.failure.is_none() {
            let (step, peers) = match &g.step {
                Some(a) => (a.step.clone(), a.peers.clone()),
                None => ("between steps".to_string(), Vec::new()),
            };
            if let Some((peer, cause, via)) = health.and_then(|h| h.failed_peer()) {
                g.failure = Some(Failure {
                    rank: self.rank,
                    step,
                    peers,
                    cause: Cause::Peer { peer, cause, via },
                });
                g.fired_at = Some(now);
            } else if g.step.as_ref().is_some_and(|a| now >= a.deadline) {
                g.failure = Some(Failure {
                    rank: self.rank,
                    step,
                    peers,
                    cause: Cause::Deadline {
                        secs: self.timeout.as_secs_f64(),
                    },
                });
                g.fired_at = Some(now);
            }
        }
        let Some(at) = g.fired_at else {
            return TickAction::Continue;
        };
        let since = now.saturating_duration_since(at);
        let exit = self.on_expiry == OnExpiry::ExitProcess;
        if exit && since >= 2 * GRACE {
            return TickAction::Exit(g.failure.clone());
        }
        // Abort from this thread only while the owner sits inside a step (a call that NCCL's
        // abort unblocks); between steps the owner's next `check` aborts on its own thread.
        if !g.acked && !g.aborted && g.step.is_some() && since >= GRACE {
            return TickAction::Abort;
        }
        TickAction::Continue
    }
}

enum TickAction {
    Continue,
    Abort,
    Exit(Option<Failure>),
}

fn watch(weak: Weak<Watchdog>) {
    loop {
        std::thread::sleep(TICK);
        let Some(wd) = weak.upgrade() else { return };
        match wd.tick(Instant::now()) {
            TickAction::Continue => {}
            TickAction::Abort => {
                // Abort may block on a wedged NCCL: do it aside, the exit path does not wait.
                let w = wd.clone();
                let _ = std::thread::Builder::new()
                    .name("dcp-abort".into())
                    .spawn(move || w.abort_once());
            }
            TickAction::Exit(f) => {
                if !PRINTED.swap(true, Ordering::SeqCst) {
                    if let Some(f) = f {
                        eprintln!("dcp: {f}");
                    }
                }
                std::process::exit(EXIT_STALLED);
            }
        }
    }
}

/// For the CLI: prints the failure's one line and exits with [`EXIT_STALLED`] after
/// [`RELAY_PAUSE`] (see [`exit_if_stalled`]).
pub fn exit_stalled(f: &Failure) -> ! {
    if !PRINTED.swap(true, Ordering::SeqCst) {
        eprintln!("dcp: {f}");
    }
    std::thread::sleep(RELAY_PAUSE);
    std::process::exit(EXIT_STALLED);
}

/// For the CLI: when `e` is a [`CudaError::Stalled`], prints its one line and exits the process
/// with [`EXIT_STALLED`] (after [`RELAY_PAUSE`], so the heartbeat can relay a failed peer to
/// the other ranks before this rank's connections close); otherwise returns.
pub fn exit_if_stalled(e: &CudaError) {
    if let CudaError::Stalled(f) = e {
        exit_stalled(f);
    }
}

/// How long a failing CLI rank keeps its connections open before exiting.
pub const RELAY_PAUSE: Duration = Duration::from_millis(300);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct FakeHealth(Mutex<Option<(u32, PeerCause, Option<u32>)>>);
    impl PeerHealth for FakeHealth {
        fn failed_peer(&self) -> Option<(u32, PeerCause, Option<u32>)> {
            *self.0.lock().unwrap()
        }
    }

    fn stalled(r: Result<()>) -> Failure {
        match r {
            Err(CudaError::Stalled(f)) => *f,
            other => panic!("expected a stall, got {other:?}"),
        }
    }

    #[test]
    fn a_shorter_limit_fails_at_its_own_deadline_and_names_it() {
        let wd = Watchdog::new(2, Duration::from_secs(60), OnExpiry::ReturnError);
        let t0 = Instant::now();
        let r = wd.wait_until_within("synchronize", &[1], Duration::from_millis(30), || Ok(false));
        let el = t0.elapsed();
        assert!(
            el >= Duration::from_millis(30) && el < Duration::from_secs(10),
            "{el:?}"
        );
        let f = stalled(r);
        assert_eq!(
            (f.rank, f.step.as_str(), f.peers.as_slice()),
            (2, "synchronize", &[1][..])
        );
        match f.cause {
            Cause::Deadline { secs } => assert!((secs - 0.03).abs() < 1e-9, "{secs}"),
            c => panic!("expected the deadline, got {c:?}"),
        }
        // A limit longer than the watchdog's timeout is cut to it.
        let wd = Watchdog::new(3, Duration::from_millis(20), OnExpiry::ReturnError);
        let f = stalled(wd.wait_until_within("x", &[], Duration::from_secs(3600), || Ok(false)));
        assert!(matches!(f.cause, Cause::Deadline { secs } if (secs - 0.02).abs() < 1e-9));
    }

    #[test]
    fn wait_returns_when_done_before_deadline() {
        let wd = Watchdog::new(1, Duration::from_secs(5), OnExpiry::ReturnError);
        let t0 = Instant::now();
        let mut n = 0;
        wd.wait_until("late answer", &[0], || {
            n += 1;
            Ok(t0.elapsed() > Duration::from_millis(50))
        })
        .unwrap();
        assert!(n > 1);
        assert!(wd.failure().is_none());
    }

    #[test]
    fn wait_times_out_naming_rank_step_and_peers() {
        let aborts = Arc::new(AtomicUsize::new(0));
        let wd = Watchdog::new(2, Duration::from_millis(150), OnExpiry::ReturnError);
        let a = aborts.clone();
        wd.set_abort(Arc::new(move || {
            a.fetch_add(1, Ordering::SeqCst);
        }));
        let t0 = Instant::now();
        let f = stalled(wd.wait_until("forward program", &[0, 3], || Ok(false)));
        let el = t0.elapsed();
        assert!(
            el >= Duration::from_millis(150) && el < Duration::from_secs(3),
            "{el:?}"
        );
        assert_eq!(
            (f.rank, f.step.as_str(), &f.peers[..]),
            (2, "forward program", &[0, 3][..])
        );
        assert!(matches!(f.cause, Cause::Deadline { .. }));
        let line = f.to_string();
        assert!(
            line.contains("rank 2")
                && line.contains("forward program")
                && line.contains("ranks 0, 3"),
            "{line}"
        );
        assert_eq!(aborts.load(Ordering::SeqCst), 1);
        // Later calls keep failing, and abort only once.
        assert!(wd.check().is_err());
        assert!(wd.guard("next", &[], || ()).is_err());
        assert_eq!(aborts.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn guard_fires_and_aborts_while_the_caller_is_stuck() {
        // The "stuck" call returns only once the abort hook ran (as ncclCommAbort unblocks NCCL).
        let wd = Watchdog::new(0, Duration::from_millis(100), OnExpiry::ReturnError);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let tx = Mutex::new(tx);
        wd.set_abort(Arc::new(move || {
            let _ = tx.lock().unwrap().send(());
        }));
        let t0 = Instant::now();
        let r = wd.guard("NCCL group", &[1], || {
            rx.recv_timeout(Duration::from_secs(20)).is_ok()
        });
        let el = t0.elapsed();
        let f = stalled(r.map(|unblocked| assert!(unblocked)));
        assert!(el >= GRACE && el < GRACE + Duration::from_secs(3), "{el:?}");
        assert_eq!(f.step, "NCCL group");
    }

    #[test]
    fn guard_passes_through_a_call_that_finishes_in_time() {
        let wd = Watchdog::new(0, Duration::from_millis(500), OnExpiry::ReturnError);
        let v = wd
            .guard("quick", &[1], || {
                std::thread::sleep(Duration::from_millis(50));
                7
            })
            .unwrap();
        assert_eq!(v, 7);
        // No step active: the deadline of a finished step never fires later.
        std::thread::sleep(Duration::from_millis(700));
        assert!(wd.check().is_ok());
    }

    #[test]
    fn a_failed_peer_stops_a_wait_at_once() {
        let wd = Watchdog::new(1, Duration::from_secs(30), OnExpiry::ReturnError);
        let h = Arc::new(FakeHealth(Mutex::new(None)));
        wd.set_health(h.clone());
        let h2 = h.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            *h2.0.lock().unwrap() = Some((2, PeerCause::Exited, Some(0)));
        });
        let t0 = Instant::now();
        let f = stalled(wd.wait_until("barrier", &[0, 2, 3], || Ok(false)));
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert_eq!(
            f.cause,
            Cause::Peer {
                peer: 2,
                cause: PeerCause::Exited,
                via: Some(0)
            }
        );
        let line = f.to_string();
        assert!(
            line.contains("rank 2 exited") && line.contains("barrier"),
            "{line}"
        );
    }

    #[test]
    fn huge_timeouts_do_not_overflow() {
        let wd = Watchdog::new(0, Duration::MAX, OnExpiry::ReturnError);
        wd.wait_until("instant", &[], || Ok(true)).unwrap();
        assert!(deadline_after(Duration::MAX) > Instant::now());
    }

    #[test]
    fn first_failure_wins() {
        let wd = Watchdog::new(0, Duration::from_secs(1), OnExpiry::ReturnError);
        let mk = |step: &str| Failure {
            rank: 0,
            step: step.into(),
            peers: vec![],
            cause: Cause::Deadline { secs: 1.0 },
        };
        wd.fire(mk("a"));
        wd.fire(mk("b"));
        assert_eq!(stalled(wd.check()).step, "a");
    }
}
