//! Fault injection, for tests and for users checking that their setup survives a failing rank:
//! `DCP_FAULT=rank:2,kind:freeze,phase:backward,repeat:3` makes rank 2 stop making progress
//! in its fourth backward run (repeats count from 0 over this process's runs of that phase,
//! warm-up included). Kinds: `crash` (abort: SIGABRT), `exit` (exit status [`FAULT_EXIT`]),
//! `freeze` (the process stops itself with SIGSTOP; its heartbeat stops too), `nccl-error`
//! (an NCCL call fails: a send to a rank that does not exist). Phases: `setup` (before the
//! communicator is created; `repeat` must be 0), `forward`, `backward` (after the program was
//! enqueued, so the peers are inside NCCL waiting for this rank).

use std::fmt;

use crate::error::{CudaError, Result};

/// Exit status of the `exit` fault.
pub const FAULT_EXIT: i32 = 17;

/// The environment variable read by [`Fault::from_env`].
pub const FAULT_ENV: &str = "DCP_FAULT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    Crash,
    Exit,
    Freeze,
    NcclError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Setup,
    Forward,
    Backward,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::Forward => "forward",
            Phase::Backward => "backward",
        }
    }
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Exit => "exit",
            FaultKind::Freeze => "freeze",
            FaultKind::NcclError => "nccl-error",
        }
    }
}

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub rank: u32,
    pub kind: FaultKind,
    pub phase: Phase,
    pub repeat: u64,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rank:{},kind:{},phase:{},repeat:{}",
            self.rank,
            self.kind.name(),
            self.phase.name(),
            self.repeat
        )
    }
}

const KINDS: &str = "crash, exit, freeze, nccl-error";
const PHASES: &str = "setup, forward, backward";

impl std::str::FromStr for Fault {
    type Err = CudaError;

    /// Parses `rank:R,kind:K[,phase:P][,repeat:N]` (phase defaults to forward, repeat to 0).
    fn from_str(s: &str) -> Result<Self> {
        let bad = |m: String| CudaError::Fault(format!("{m} (in {s:?})"));
        let (mut rank, mut kind, mut phase, mut repeat) = (None, None, None, None);
        for item in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            let (k, v) = item
                .split_once(':')
                .or_else(|| item.split_once('='))
                .ok_or_else(|| bad(format!("`{item}` is not key:value")))?;
            let (k, v) = (k.trim(), v.trim());
            let dup = |set: bool| {
                if set {
                    Err(bad(format!("`{k}` given twice")))
                } else {
                    Ok(())
                }
            };
            match k {
                "rank" => {
                    dup(rank.is_some())?;
                    rank =
                        Some(v.parse::<u32>().map_err(|_| {
                            bad(format!("rank `{v}` is not a non-negative integer"))
                        })?);
                }
                "kind" => {
                    dup(kind.is_some())?;
                    kind = Some(match v {
                        "crash" => FaultKind::Crash,
                        "exit" => FaultKind::Exit,
                        "freeze" => FaultKind::Freeze,
                        "nccl-error" => FaultKind::NcclError,
                        _ => return Err(bad(format!("unknown kind `{v}` (allowed: {KINDS})"))),
                    });
                }
                "phase" => {
                    dup(phase.is_some())?;
                    phase = Some(match v {
                        "setup" => Phase::Setup,
                        "forward" => Phase::Forward,
                        "backward" => Phase::Backward,
                        _ => return Err(bad(format!("unknown phase `{v}` (allowed: {PHASES})"))),
                    });
                }
                "repeat" => {
                    dup(repeat.is_some())?;
                    repeat =
                        Some(v.parse::<u64>().map_err(|_| {
                            bad(format!("repeat `{v}` is not a non-negative integer"))
                        })?);
                }
                _ => {
                    return Err(bad(format!(
                        "unknown key `{k}` (allowed: rank, kind, phase, repeat)"
                    )))
                }
            }
        }
        let f = Fault {
            rank: rank.ok_or_else(|| bad("`rank` is required".into()))?,
            kind: kind.ok_or_else(|| bad(format!("`kind` is required ({KINDS})")))?,
            phase: phase.unwrap_or(Phase::Forward),
            repeat: repeat.unwrap_or(0),
        };
        if f.phase == Phase::Setup && f.repeat != 0 {
            return Err(bad("phase setup happens once: repeat must be 0".into()));
        }
        Ok(f)
    }
}

impl Fault {
    /// The fault in `DCP_FAULT`, if set (an empty value means none).
    pub fn from_env() -> Result<Option<Fault>> {
        match std::env::var(FAULT_ENV) {
            Ok(v) if !v.trim().is_empty() => v.parse().map(Some),
            _ => Ok(None),
        }
    }

    /// Checks the fault fits a world of `world` ranks.
    pub fn check_world(&self, world: u32) -> Result<()> {
        if self.rank >= world {
            return Err(CudaError::Fault(format!(
                "rank {} does not exist in a world of {world}",
                self.rank
            )));
        }
        if self.kind == FaultKind::NcclError && world < 2 {
            return Err(CudaError::Fault(
                "nccl-error needs a communicator (WORLD_SIZE of at least 2)".into(),
            ));
        }
        Ok(())
    }

    /// Whether the fault fires at run `repeat` of `phase` on `rank`.
    pub fn hits(&self, rank: u32, phase: Phase, repeat: u64) -> bool {
        self.rank == rank && self.phase == phase && self.repeat == repeat
    }

    /// Performs a process-level fault (crash, exit, freeze); `nccl-error` is done by the
    /// caller, which owns the communicator. Returns only for `nccl-error`, or when a freeze is
    /// continued (SIGCONT).
    pub fn trigger_process(&self) {
        let msg = format!("dcp: injected fault {self}");
        match self.kind {
            FaultKind::Crash => {
                eprintln!("{msg}: aborting");
                std::process::abort();
            }
            FaultKind::Exit => {
                eprintln!("{msg}: exiting with status {FAULT_EXIT}");
                std::process::exit(FAULT_EXIT);
            }
            FaultKind::Freeze => {
                eprintln!("{msg}: stopping this process (SIGSTOP)");
                // SAFETY: raising a signal on ourselves; SIGSTOP cannot be caught.
                unsafe {
                    libc::raise(libc::SIGSTOP);
                }
            }
            FaultKind::NcclError => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_and_default_specs() {
        let f: Fault = "rank:2,kind:freeze,phase:backward,repeat:3"
            .parse()
            .unwrap();
        assert_eq!(
            f,
            Fault {
                rank: 2,
                kind: FaultKind::Freeze,
                phase: Phase::Backward,
                repeat: 3
            }
        );
        assert_eq!(f.to_string().parse::<Fault>().unwrap(), f);
        let f: Fault = " rank=1 , kind=nccl-error ".parse().unwrap();
        assert_eq!((f.phase, f.repeat), (Phase::Forward, 0));
        for k in ["crash", "exit", "freeze", "nccl-error"] {
            for p in ["setup", "forward", "backward"] {
                let f: Fault = format!("rank:0,kind:{k},phase:{p}").parse().unwrap();
                assert_eq!((f.kind.name(), f.phase.name()), (k, p));
            }
        }
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let cases = [
            ("kind:crash", "`rank` is required"),
            ("rank:1", "`kind` is required"),
            ("rank:1,kind:boom", "unknown kind `boom`"),
            ("rank:1,kind:crash,phase:middle", "unknown phase `middle`"),
            ("rank:-1,kind:crash", "rank `-1`"),
            ("rank:1,kind:crash,repeat:x", "repeat `x`"),
            ("rank:1,kind:crash,when:now", "unknown key `when`"),
            ("rank:1,rank:2,kind:crash", "`rank` given twice"),
            ("rank 1", "is not key:value"),
            ("rank:1,kind:exit,phase:setup,repeat:2", "repeat must be 0"),
        ];
        for (s, want) in cases {
            let e = s.parse::<Fault>().unwrap_err().to_string();
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    #[test]
    fn hits_and_world_checks() {
        let f: Fault = "rank:1,kind:nccl-error,phase:forward,repeat:2"
            .parse()
            .unwrap();
        assert!(f.hits(1, Phase::Forward, 2));
        assert!(!f.hits(1, Phase::Forward, 1));
        assert!(!f.hits(0, Phase::Forward, 2));
        assert!(!f.hits(1, Phase::Backward, 2));
        assert!(f.check_world(2).is_ok());
        assert!(f.check_world(1).is_err());
        let g: Fault = "rank:4,kind:exit".parse().unwrap();
        assert!(g.check_world(4).unwrap_err().to_string().contains("rank 4"));
    }
}
