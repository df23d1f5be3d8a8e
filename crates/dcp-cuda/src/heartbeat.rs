//! Peer liveness over the rendezvous connections: every rank sends a small heartbeat frame on
//! each of its links every period, and marks a peer failed when nothing arrived for
//! `silent_after` (frozen, SIGSTOPped, host gone) or when the link closed without a goodbye
//! (the process exited or crashed). Links form a star around rank 0, which relays the failures
//! it sees to everyone else, so every rank learns about every peer.
//!
//! Frames: `H` + u16 count + count × (u32 rank, u8 cause) — a heartbeat carrying the failures
//! the sender knows (cause 1 = silent, 2 = exited); `B` — goodbye (the sender finished cleanly).
//! The protocol runs over any [`Link`]; tests drive it with fake links.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::watchdog::{PeerCause, PeerHealth};

/// A bidirectional byte link to one peer.
pub trait Link: Send {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Reads what is available within `wait`: `Ok(None)` when nothing arrived, `Ok(Some(0))`
    /// when the peer closed the link.
    fn recv(&mut self, buf: &mut [u8], wait: Duration) -> io::Result<Option<usize>>;
}

impl Link for TcpStream {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)
    }

    fn recv(&mut self, buf: &mut [u8], wait: Duration) -> io::Result<Option<usize>> {
        self.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        match self.read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Status {
    Alive,
    Finished,
    Failed(PeerCause, Option<u32>),
}

#[derive(Debug)]
struct Peer {
    last: Instant,
    status: Status,
    /// Order in which failures were learnt (the first one is the likely culprit).
    seq: u64,
}

/// What this rank knows about every other rank.
#[derive(Debug)]
pub struct Liveness {
    me: u32,
    peers: Mutex<Vec<Peer>>,
    /// Bumped on every new failure, so links relay it at once.
    version: AtomicU64,
}

impl Liveness {
    fn new(me: u32, world: u32) -> Self {
        let now = Instant::now();
        Liveness {
            me,
            peers: Mutex::new(
                (0..world)
                    .map(|_| Peer {
                        last: now,
                        status: Status::Alive,
                        seq: 0,
                    })
                    .collect(),
            ),
            version: AtomicU64::new(0),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Vec<Peer>) -> T) -> T {
        let mut g = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    fn seen(&self, r: u32) {
        self.with(|p| {
            if let Some(p) = p.get_mut(r as usize) {
                p.last = Instant::now();
            }
        })
    }

    fn set(&self, r: u32, s: Status) {
        if r == self.me {
            return;
        }
        self.with(|p| {
            if let Some(p) = p.get_mut(r as usize) {
                if p.status == Status::Alive {
                    p.status = s;
                    // Under the lock, so sequence numbers follow the order of failures.
                    p.seq = self.version.fetch_add(1, Ordering::SeqCst) + 1;
                }
            }
        });
    }

    fn silent_for(&self, r: u32) -> Duration {
        self.with(|p| {
            p.get(r as usize)
                .map(|p| p.last.elapsed())
                .unwrap_or_default()
        })
    }

    fn failures(&self) -> Vec<(u32, u8)> {
        self.with(|p| {
            p.iter()
                .enumerate()
                .filter_map(|(r, p)| match p.status {
                    Status::Failed(PeerCause::Silent { .. }, _) => Some((r as u32, 1)),
                    Status::Failed(PeerCause::Exited, _) => Some((r as u32, 2)),
                    _ => None,
                })
                .collect()
        })
    }

    /// Whether rank `r` said goodbye.
    pub fn finished(&self, r: u32) -> bool {
        self.with(|p| {
            p.get(r as usize)
                .map(|p| p.status == Status::Finished)
                .unwrap_or(false)
        })
    }
}

impl PeerHealth for Liveness {
    fn failed_peer(&self) -> Option<(u32, PeerCause, Option<u32>)> {
        self.with(|p| {
            p.iter()
                .enumerate()
                .filter_map(|(r, p)| match p.status {
                    Status::Failed(c, via) => Some((p.seq, (r as u32, c, via))),
                    _ => None,
                })
                .min_by_key(|x| x.0)
                .map(|x| x.1)
        })
    }
}

fn encode_heartbeat(failures: &[(u32, u8)]) -> Vec<u8> {
    let mut f = vec![b'H'];
    f.extend_from_slice(&(failures.len().min(u16::MAX as usize) as u16).to_le_bytes());
    for &(r, c) in failures.iter().take(u16::MAX as usize) {
        f.extend_from_slice(&r.to_le_bytes());
        f.push(c);
    }
    f
}

#[derive(Debug, PartialEq)]
enum Frame {
    Heartbeat(Vec<(u32, u8)>),
    Bye,
}

/// Takes complete frames off the front of `buf`; an unknown tag is an error.
fn parse(buf: &mut Vec<u8>) -> io::Result<Vec<Frame>> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        match buf.get(at) {
            None => break,
            Some(b'B') => {
                out.push(Frame::Bye);
                at += 1;
            }
            Some(b'H') => {
                if buf.len() < at + 3 {
                    break;
                }
                let n = u16::from_le_bytes([buf[at + 1], buf[at + 2]]) as usize;
                if buf.len() < at + 3 + 5 * n {
                    break;
                }
                let v = (0..n)
                    .map(|i| {
                        let o = at + 3 + 5 * i;
                        let r = u32::from_le_bytes([buf[o], buf[o + 1], buf[o + 2], buf[o + 3]]);
                        (r, buf[o + 4])
                    })
                    .collect();
                out.push(Frame::Heartbeat(v));
                at += 3 + 5 * n;
            }
            Some(t) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unknown heartbeat frame tag {t}"),
                ))
            }
        }
    }
    buf.drain(..at);
    Ok(out)
}

/// Timing of the heartbeat.
#[derive(Debug, Clone, Copy)]
pub struct HeartbeatConfig {
    /// A frame every `period`.
    pub period: Duration,
    /// A peer silent this long is failed.
    pub silent_after: Duration,
}

impl HeartbeatConfig {
    /// For a step deadline of `timeout`: a peer silent for half of it (at least
    /// `min(timeout, 2 s)`, at most 60 s) is failed, so a frozen peer is named before the
    /// steps waiting on it time out; a frame every tenth of that, between 50 ms and 1 s.
    pub fn for_timeout(timeout: Duration) -> Self {
        let silent_after = (timeout / 2)
            .max(timeout.min(Duration::from_secs(2)))
            .min(Duration::from_secs(60));
        HeartbeatConfig {
            period: (silent_after / 10).clamp(Duration::from_millis(50), Duration::from_secs(1)),
            silent_after,
        }
    }
}

/// The heartbeat threads of one rank (one per link). [`Heartbeat::close`] says goodbye; dropping
/// without it just stops, which peers see as this rank exiting.
pub struct Heartbeat {
    live: Arc<Liveness>,
    stop: Arc<AtomicBool>,
    bye: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Heartbeat {
    /// Starts one thread per `(peer, link)` for rank `me` of `world`.
    pub fn start(
        me: u32,
        world: u32,
        links: Vec<(u32, Box<dyn Link>)>,
        cfg: HeartbeatConfig,
    ) -> Self {
        let live = Arc::new(Liveness::new(me, world));
        let stop = Arc::new(AtomicBool::new(false));
        let bye = Arc::new(AtomicBool::new(false));
        let threads = links
            .into_iter()
            .filter_map(|(peer, link)| {
                let (l, s, b) = (live.clone(), stop.clone(), bye.clone());
                std::thread::Builder::new()
                    .name(format!("dcp-heartbeat-{me}-{peer}"))
                    .spawn(move || run_link(peer, link, &l, &s, &b, cfg))
                    .ok()
            })
            .collect();
        Heartbeat {
            live,
            stop,
            bye,
            threads,
        }
    }

    /// What this rank knows about its peers.
    pub fn liveness(&self) -> Arc<Liveness> {
        self.live.clone()
    }

    /// Says goodbye on every link (this rank finished cleanly) and stops.
    pub fn close(mut self) {
        self.bye.store(true, Ordering::SeqCst);
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run_link(
    peer: u32,
    mut link: Box<dyn Link>,
    live: &Liveness,
    stop: &AtomicBool,
    bye: &AtomicBool,
    cfg: HeartbeatConfig,
) {
    let mut last_sent: Option<Instant> = None;
    let mut sent_version = u64::MAX;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    let wait = (cfg.period / 4).clamp(Duration::from_millis(5), Duration::from_millis(100));
    loop {
        let v = live.version.load(Ordering::SeqCst);
        if stop.load(Ordering::SeqCst) {
            // Relay failures not yet sent: the culprit must reach the others before we go.
            if v != sent_version {
                let _ = link.send(&encode_heartbeat(&live.failures()));
            }
            if bye.load(Ordering::SeqCst) {
                let _ = link.send(b"B");
            }
            return;
        }
        if last_sent.is_none_or(|t| t.elapsed() >= cfg.period) || v != sent_version {
            if link.send(&encode_heartbeat(&live.failures())).is_err() {
                live.set(peer, Status::Failed(PeerCause::Exited, None));
                return;
            }
            last_sent = Some(Instant::now());
            sent_version = v;
        }
        match link.recv(&mut chunk, wait) {
            Ok(Some(0)) | Err(_) => {
                live.set(peer, Status::Failed(PeerCause::Exited, None));
                return;
            }
            Ok(Some(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                match parse(&mut buf) {
                    Err(_) => {
                        live.set(peer, Status::Failed(PeerCause::Exited, None));
                        return;
                    }
                    Ok(frames) => {
                        for f in frames {
                            match f {
                                Frame::Bye => {
                                    live.set(peer, Status::Finished);
                                    return;
                                }
                                Frame::Heartbeat(fails) => {
                                    live.seen(peer);
                                    for (r, c) in fails {
                                        let cause = if c == 1 {
                                            PeerCause::Silent {
                                                secs: cfg.silent_after.as_secs_f64(),
                                            }
                                        } else {
                                            PeerCause::Exited
                                        };
                                        live.set(r, Status::Failed(cause, Some(peer)));
                                    }
                                }
                            }
                        }
                    }
                }
            }
            Ok(None) => {}
        }
        let silent = live.silent_for(peer);
        if silent >= cfg.silent_after {
            live.set(
                peer,
                Status::Failed(
                    PeerCause::Silent {
                        secs: silent.as_secs_f64(),
                    },
                    None,
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::mpsc;

    /// A fake peer: answers with heartbeats on a schedule, or never, or closes.
    #[derive(Clone, Copy)]
    enum Script {
        /// Heartbeats every `every` from the start.
        Answers { every: Duration },
        /// Silent until `after`, then heartbeats every 20 ms.
        Late { after: Duration },
        /// Never sends anything.
        Never,
        /// Closes the link after `after`.
        Closes { after: Duration },
        /// Sends one heartbeat reporting rank 2 exited, then closes.
        Relays,
    }

    struct Fake {
        t0: Instant,
        script: Script,
        next: Instant,
        relayed: bool,
        sent: mpsc::Sender<Vec<u8>>,
    }

    impl Link for Fake {
        fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
            let _ = self.sent.send(bytes.to_vec());
            Ok(())
        }
        fn recv(&mut self, buf: &mut [u8], wait: Duration) -> io::Result<Option<usize>> {
            std::thread::sleep(wait.min(Duration::from_millis(5)));
            let now = Instant::now();
            let beat = |s: &mut Self, buf: &mut [u8], every: Duration| {
                if now >= s.next {
                    s.next = now + every;
                    let f = encode_heartbeat(&[]);
                    buf[..f.len()].copy_from_slice(&f);
                    Some(f.len())
                } else {
                    None
                }
            };
            Ok(match self.script {
                Script::Answers { every } => beat(self, buf, every),
                Script::Late { after } if now >= self.t0 + after => {
                    beat(self, buf, Duration::from_millis(20))
                }
                Script::Late { .. } | Script::Never => None,
                Script::Closes { after } => (now >= self.t0 + after).then_some(0),
                Script::Relays if !self.relayed => {
                    self.relayed = true;
                    let f = encode_heartbeat(&[(2, 2)]);
                    buf[..f.len()].copy_from_slice(&f);
                    Some(f.len())
                }
                // Then closes (rank 0 exits after relaying).
                Script::Relays => (now >= self.t0 + Duration::from_millis(100)).then_some(0),
            })
        }
    }

    fn fake(script: Script) -> (Box<dyn Link>, mpsc::Receiver<Vec<u8>>) {
        let (tx, rx) = mpsc::channel();
        let now = Instant::now();
        (
            Box::new(Fake {
                t0: now,
                script,
                next: now,
                relayed: false,
                sent: tx,
            }),
            rx,
        )
    }

    fn cfg(ms: u64) -> HeartbeatConfig {
        HeartbeatConfig {
            period: Duration::from_millis(20),
            silent_after: Duration::from_millis(ms),
        }
    }

    /// Waits (bounded) for a failure.
    fn failure_within(l: &Liveness, d: Duration) -> Option<(u32, PeerCause, Option<u32>)> {
        let t0 = Instant::now();
        while t0.elapsed() < d {
            if let Some(f) = l.failed_peer() {
                return Some(f);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    #[test]
    fn silence_limit_follows_the_timeout() {
        let s = |t: f64| HeartbeatConfig::for_timeout(Duration::from_secs_f64(t));
        assert_eq!(s(20.0).silent_after, Duration::from_secs(10));
        assert_eq!(s(300.0).silent_after, Duration::from_secs(60));
        assert_eq!(s(3.0).silent_after, Duration::from_secs(2));
        assert_eq!(s(1.0).silent_after, Duration::from_secs(1));
        assert_eq!(s(20.0).period, Duration::from_secs(1));
        assert_eq!(s(1.0).period, Duration::from_millis(100));
    }

    #[test]
    fn frames_roundtrip_and_split() {
        let mut b = encode_heartbeat(&[(3, 1), (7, 2)]);
        b.push(b'B');
        let full = b.clone();
        let mut part = full[..4].to_vec();
        assert!(parse(&mut part).unwrap().is_empty());
        part.extend_from_slice(&full[4..]);
        assert_eq!(
            parse(&mut part).unwrap(),
            vec![Frame::Heartbeat(vec![(3, 1), (7, 2)]), Frame::Bye]
        );
        assert!(part.is_empty());
        assert!(parse(&mut vec![b'X']).is_err());
    }

    #[test]
    fn a_peer_that_answers_stays_alive() {
        let (l, sent) = fake(Script::Answers {
            every: Duration::from_millis(20),
        });
        let hb = Heartbeat::start(0, 2, vec![(1, l)], cfg(300));
        assert_eq!(
            failure_within(&hb.liveness(), Duration::from_millis(600)),
            None
        );
        // It sent heartbeats too.
        assert!(sent.try_iter().filter(|f| f[0] == b'H').count() >= 5);
        hb.close();
        assert_eq!(sent.try_iter().last().as_deref(), Some(&b"B"[..]));
    }

    #[test]
    fn a_peer_that_never_answers_is_silent() {
        let (l, _s) = fake(Script::Never);
        let t0 = Instant::now();
        let hb = Heartbeat::start(0, 2, vec![(1, l)], cfg(200));
        let f = failure_within(&hb.liveness(), Duration::from_secs(3)).expect("detected");
        assert!(t0.elapsed() >= Duration::from_millis(200));
        assert!(matches!(f, (1, PeerCause::Silent { secs }, None) if secs >= 0.2));
    }

    #[test]
    fn a_late_answer_within_the_deadline_is_fine() {
        let (l, _s) = fake(Script::Late {
            after: Duration::from_millis(100),
        });
        let hb = Heartbeat::start(0, 2, vec![(1, l)], cfg(400));
        assert_eq!(
            failure_within(&hb.liveness(), Duration::from_millis(800)),
            None
        );
    }

    #[test]
    fn a_late_answer_beyond_the_deadline_fails() {
        let (l, _s) = fake(Script::Late {
            after: Duration::from_millis(600),
        });
        let hb = Heartbeat::start(0, 2, vec![(1, l)], cfg(200));
        let f = failure_within(&hb.liveness(), Duration::from_secs(3)).expect("detected");
        assert!(matches!(f, (1, PeerCause::Silent { .. }, None)));
        // Stays failed when the peer answers afterwards.
        std::thread::sleep(Duration::from_millis(600));
        assert!(matches!(
            hb.liveness().failed_peer(),
            Some((1, PeerCause::Silent { .. }, None))
        ));
    }

    #[test]
    fn a_closed_link_means_the_peer_exited() {
        let (l, _s) = fake(Script::Closes {
            after: Duration::from_millis(50),
        });
        let t0 = Instant::now();
        let hb = Heartbeat::start(0, 2, vec![(1, l)], cfg(5000));
        let f = failure_within(&hb.liveness(), Duration::from_secs(2)).expect("detected");
        assert!(t0.elapsed() < Duration::from_secs(1));
        assert_eq!(f, (1, PeerCause::Exited, None));
    }

    #[test]
    fn relayed_failures_name_the_culprit_and_the_reporter() {
        let (l, _s) = fake(Script::Relays);
        let hb = Heartbeat::start(1, 4, vec![(0, l)], cfg(5000));
        let f = failure_within(&hb.liveness(), Duration::from_secs(2)).expect("relayed");
        assert_eq!(f, (2, PeerCause::Exited, Some(0)));
        // Rank 0 closing afterwards does not hide the culprit learnt first.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            hb.liveness().failed_peer(),
            Some((2, PeerCause::Exited, Some(0)))
        );
    }

    #[test]
    fn tcp_star_detects_exit_and_relays_it() {
        // Rank 0 and ranks 1, 2 over real loopback sockets; rank 2 drops without goodbye.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let c1 = TcpStream::connect(addr).unwrap();
        let (s1, _) = l.accept().unwrap();
        let c2 = TcpStream::connect(addr).unwrap();
        let (s2, _) = l.accept().unwrap();
        let c = cfg(5000);
        let h0 = Heartbeat::start(0, 3, vec![(1, Box::new(s1)), (2, Box::new(s2))], c);
        let h1 = Heartbeat::start(1, 3, vec![(0, Box::new(c1))], c);
        let h2 = Heartbeat::start(2, 3, vec![(0, Box::new(c2))], c);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(h0.liveness().failed_peer(), None);
        assert_eq!(h1.liveness().failed_peer(), None);
        drop(h2);
        let f0 = failure_within(&h0.liveness(), Duration::from_secs(3)).expect("rank 0 sees it");
        assert_eq!(f0, (2, PeerCause::Exited, None));
        let f1 = failure_within(&h1.liveness(), Duration::from_secs(3)).expect("relayed to 1");
        assert_eq!(f1, (2, PeerCause::Exited, Some(0)));
        // A clean goodbye is not a failure.
        let l1 = h0.liveness();
        h1.close();
        let t0 = Instant::now();
        while !l1.finished(1) && t0.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(l1.finished(1));
        assert_eq!(l1.failed_peer(), Some((2, PeerCause::Exited, None)));
    }

    #[test]
    fn tcp_silent_peer_is_detected_while_its_socket_stays_open() {
        // A peer whose process is stopped keeps its socket open but sends nothing.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let _frozen = TcpStream::connect(addr).unwrap();
        let (s, _) = l.accept().unwrap();
        let hb = Heartbeat::start(0, 2, vec![(1, Box::new(s))], cfg(300));
        let f = failure_within(&hb.liveness(), Duration::from_secs(3)).expect("detected");
        assert!(matches!(f, (1, PeerCause::Silent { .. }, None)));
    }
}
