//! Process group: torchrun-style environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
//! MASTER_PORT), the NCCL unique-id exchange over a tiny TCP rendezvous (rank 0 listens on
//! MASTER_ADDR:MASTER_PORT and sends the 128-byte id to every other rank), and the NCCL
//! communicator with asynchronous error checking and abort.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use cudarc::nccl::{result as nres, sys as nsys};

use crate::error::{nccl, CudaError, Result};

/// Who this process is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankInfo {
    pub rank: u32,
    pub world: u32,
    pub local_rank: u32,
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
        let local_rank = num("LOCAL_RANK", rank)?;
        if world == 0 || rank >= world {
            return Err(CudaError::Env(format!(
                "RANK={rank} must be below WORLD_SIZE={world}"
            )));
        }
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
            master_addr,
            master_port,
        })
    }
}

/// Exchanges `payload` (from rank 0) with every rank over TCP; returns it on every rank.
pub fn rendezvous(info: &RankInfo, payload: Option<&[u8]>, timeout: Duration) -> Result<Vec<u8>> {
    let rz = |e: std::io::Error, what: &str| CudaError::Rendezvous(format!("{what}: {e}"));
    let addr = (info.master_addr.as_str(), info.master_port)
        .to_socket_addrs()
        .map_err(|e| rz(e, "resolving MASTER_ADDR"))?
        .next()
        .ok_or_else(|| CudaError::Rendezvous("MASTER_ADDR resolves to nothing".into()))?;
    let start = Instant::now();
    if info.rank == 0 {
        let data = payload.expect("rank 0 provides the payload").to_vec();
        let l =
            TcpListener::bind(addr).map_err(|e| rz(e, "rank 0 binding MASTER_ADDR:MASTER_PORT"))?;
        l.set_nonblocking(true).map_err(|e| rz(e, "listener"))?;
        let mut served = 0;
        while served + 1 < info.world {
            match l.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).map_err(|e| rz(e, "socket"))?;
                    let len = (data.len() as u32).to_le_bytes();
                    s.write_all(&len).map_err(|e| rz(e, "sending id"))?;
                    s.write_all(&data).map_err(|e| rz(e, "sending id"))?;
                    served += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if start.elapsed() > timeout {
                        return Err(CudaError::Rendezvous(format!(
                            "only {} of {} ranks connected within {:?}",
                            served + 1,
                            info.world,
                            timeout
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(rz(e, "accept")),
            }
        }
        Ok(data)
    } else {
        loop {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                Ok(mut s) => {
                    s.set_read_timeout(Some(timeout))
                        .map_err(|e| rz(e, "socket"))?;
                    let mut len = [0u8; 4];
                    s.read_exact(&mut len).map_err(|e| rz(e, "reading id"))?;
                    let mut data = vec![0u8; u32::from_le_bytes(len) as usize];
                    s.read_exact(&mut data).map_err(|e| rz(e, "reading id"))?;
                    return Ok(data);
                }
                Err(e) => {
                    if start.elapsed() > timeout {
                        return Err(rz(e, "connecting to rank 0"));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

/// True when libnccl can be loaded.
pub fn nccl_present() -> bool {
    // SAFETY: only tries to dlopen candidate names.
    unsafe { nsys::is_culib_present() }
}

/// An NCCL communicator over all ranks (aborted on drop).
pub struct Nccl {
    pub comm: nsys::ncclComm_t,
    pub rank: u32,
    pub world: u32,
}

// SAFETY: the communicator is used from one thread at a time.
unsafe impl Send for Nccl {}

impl Nccl {
    /// Creates the communicator; the GPU context must be bound on this thread.
    pub fn init(info: &RankInfo, timeout: Duration) -> Result<Self> {
        if !nccl_present() {
            return Err(CudaError::NoNccl);
        }
        let id_bytes = if info.rank == 0 {
            let id = nccl("ncclGetUniqueId", nres::get_uniqueid())?;
            let b: Vec<u8> = id.internal.iter().map(|&c| c as u8).collect();
            rendezvous(info, Some(&b), timeout)?
        } else {
            rendezvous(info, None, timeout)?
        };
        if id_bytes.len() != 128 {
            return Err(CudaError::Rendezvous(format!(
                "NCCL id has {} bytes, expected 128",
                id_bytes.len()
            )));
        }
        let mut internal = [0 as std::ffi::c_char; 128];
        for (d, s) in internal.iter_mut().zip(&id_bytes) {
            *d = *s as std::ffi::c_char;
        }
        let id = nsys::ncclUniqueId { internal };
        let mut comm = std::mem::MaybeUninit::uninit();
        // SAFETY: standard blocking init with a valid id; all ranks call it.
        unsafe {
            nccl(
                "ncclCommInitRank",
                nres::comm_init_rank(comm.as_mut_ptr(), info.world as i32, id, info.rank as i32),
            )?;
            Ok(Nccl {
                comm: comm.assume_init(),
                rank: info.rank,
                world: info.world,
            })
        }
    }

    /// The communicator's asynchronous error, if any.
    pub fn async_error(&self) -> Result<()> {
        let mut e = nsys::ncclResult_t::ncclSuccess;
        // SAFETY: valid communicator.
        let r = unsafe { nsys::ncclCommGetAsyncError(self.comm, &mut e) };
        if r != nsys::ncclResult_t::ncclSuccess {
            return Err(CudaError::Nccl {
                call: "ncclCommGetAsyncError",
                err: format!("{r:?}"),
            });
        }
        if e != nsys::ncclResult_t::ncclSuccess && e != nsys::ncclResult_t::ncclInProgress {
            return Err(CudaError::Nccl {
                call: "async",
                err: format!("{e:?}: {}", self.last_error()),
            });
        }
        Ok(())
    }

    fn last_error(&self) -> String {
        // SAFETY: returns a static C string.
        unsafe {
            let p = nsys::ncclGetLastError(self.comm);
            if p.is_null() {
                String::new()
            } else {
                std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        }
    }

    /// Aborts the communicator (unblocks kernels stuck on a dead peer).
    pub fn abort(&mut self) {
        if !self.comm.is_null() {
            // SAFETY: valid communicator, aborted once.
            unsafe {
                let _ = nres::comm_abort(self.comm);
            }
            self.comm = std::ptr::null_mut();
        }
    }
}

impl Drop for Nccl {
    fn drop(&mut self) {
        if !self.comm.is_null() {
            // SAFETY: valid communicator destroyed once.
            unsafe {
                let _ = nres::comm_destroy(self.comm);
            }
        }
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
    }

    #[test]
    fn tcp_rendezvous_delivers_payload() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mk = move |rank| RankInfo {
            rank,
            world: 3,
            local_rank: rank,
            master_addr: "127.0.0.1".into(),
            master_port: port,
        };
        let t = Duration::from_secs(10);
        let h1 = std::thread::spawn(move || rendezvous(&mk(1), None, t).unwrap());
        let h2 = std::thread::spawn(move || rendezvous(&mk(2), None, t).unwrap());
        let payload: Vec<u8> = (0..128u8).collect();
        assert_eq!(rendezvous(&mk(0), Some(&payload), t).unwrap(), payload);
        assert_eq!(h1.join().unwrap(), payload);
        assert_eq!(h2.join().unwrap(), payload);
    }

    #[test]
    fn rendezvous_times_out() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let info = RankInfo {
            rank: 1,
            world: 2,
            local_rank: 1,
            master_addr: "127.0.0.1".into(),
            master_port: port,
        };
        assert!(rendezvous(&info, None, Duration::from_millis(200)).is_err());
    }
}
