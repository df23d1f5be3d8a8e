//! Hardware counters of the calling thread through `perf_event_open(2)` (`validator_bench
//! --counters`): cycles, instructions, branch misses, L1d read misses, last-level read misses and
//! dTLB read misses, counted in user space only, and page faults (a software event, so
//! something is counted even without a PMU). Where the kernel or a container refuses an event
//! (no PMU in a VM, seccomp, `perf_event_paranoid`), `Counters::open` says which and why.

use std::os::raw::{c_int, c_long, c_ulong};

/// `struct perf_event_attr` up to `config2` (`PERF_ATTR_SIZE_VER1`, 72 bytes): what counting
/// needs; the kernel takes the size it is given.
#[repr(C)]
#[derive(Default)]
struct Attr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    /// Bit 0 disabled, bit 5 exclude_kernel, bit 6 exclude_hv.
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
    config2: u64,
}

const _: () = assert!(std::mem::size_of::<Attr>() == 72);

const TYPE_HARDWARE: u32 = 0;
const TYPE_SOFTWARE: u32 = 1;
const TYPE_HW_CACHE: u32 = 3;
/// `PERF_COUNT_HW_CACHE_{L1D, LL, DTLB} | OP_READ << 8 | RESULT_MISS << 16`.
const fn cache_miss(cache: u64) -> u64 {
    cache | (1 << 16)
}

const EVENTS: [(&str, u32, u64); N] = [
    ("cycles", TYPE_HARDWARE, 0),
    ("instructions", TYPE_HARDWARE, 1),
    ("branch-misses", TYPE_HARDWARE, 5),
    ("L1d-read-misses", TYPE_HW_CACHE, cache_miss(0)),
    ("LL-read-misses", TYPE_HW_CACHE, cache_miss(2)),
    ("dTLB-read-misses", TYPE_HW_CACHE, cache_miss(3)),
    ("page-faults", TYPE_SOFTWARE, 2),
];

/// The number of events.
pub const N: usize = 7;

/// The open counters of this thread.
pub struct Counters {
    fds: Vec<(&'static str, c_int)>,
}

/// Counter values at one moment, in `EVENTS` order (`None`: not open).
#[derive(Clone, Copy)]
pub struct Sample(pub [Option<u64>; N]);

impl Counters {
    /// Opens every event it can for the calling thread; the events it could not open are
    /// returned with the OS error, so the caller can say so.
    pub fn open() -> (Counters, Vec<String>) {
        let mut fds = Vec::new();
        let mut refused = Vec::new();
        for (name, kind, config) in EVENTS {
            let attr = Attr {
                kind,
                size: std::mem::size_of::<Attr>() as u32,
                config,
                flags: (1 << 5) | (1 << 6),
                ..Default::default()
            };
            // SAFETY: `attr` is a valid perf_event_attr of the size it states, alive for the
            // call; pid 0 / cpu -1 = this thread on any CPU, no group, no flags.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_perf_event_open,
                    &attr as *const Attr,
                    0 as c_int,
                    -1 as c_int,
                    -1 as c_int,
                    0 as c_ulong,
                )
            } as c_long;
            if fd < 0 {
                refused.push(format!("{name}: {}", std::io::Error::last_os_error()));
            } else {
                fds.push((name, fd as c_int));
            }
        }
        (Counters { fds }, refused)
    }

    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// The current values.
    pub fn sample(&self) -> Sample {
        let mut out = [None; N];
        for (name, fd) in &self.fds {
            let mut v = 0u64;
            // SAFETY: reads 8 bytes into `v`, a valid u64, from an open counter's descriptor.
            let n = unsafe { libc::read(*fd, &mut v as *mut u64 as *mut libc::c_void, 8) };
            if n == 8 {
                let i = EVENTS.iter().position(|e| e.0 == *name).expect("an event");
                out[i] = Some(v);
            }
        }
        Sample(out)
    }

    /// Event names in `Sample` order.
    pub fn names() -> [&'static str; N] {
        EVENTS.map(|e| e.0)
    }
}

impl Sample {
    /// Zero for every event (a sum to `add` into).
    pub fn zero() -> Sample {
        Sample([Some(0); N])
    }

    /// Adds `d` per event (an event missing from either side stays missing).
    pub fn add(&mut self, d: Sample) {
        for (x, y) in self.0.iter_mut().zip(d.0) {
            *x = x.zip(y).map(|(x, y)| x + y);
        }
    }

    /// `self - before`, per event.
    pub fn since(&self, before: &Sample) -> Sample {
        let mut out = [None; N];
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.0[i].zip(before.0[i]).map(|(a, b)| a.saturating_sub(b));
        }
        Sample(out)
    }
}

impl Drop for Counters {
    fn drop(&mut self) {
        for (_, fd) in &self.fds {
            // SAFETY: closes a descriptor this value opened and nothing else uses.
            unsafe { libc::close(*fd) };
        }
    }
}
