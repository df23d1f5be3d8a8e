//! One GPU: its context, a compute and a communication stream, device memory, events and the
//! compiled kernels. A thin layer over cudarc's driver `result`/`sys` API (no per-slice event
//! tracking: the executor orders streams itself with events).
//!
//! Soundness: safe methods take [`DevBuf`]s and byte ranges checked against them; the entry
//! points that take raw device addresses ([`Gpu::launch`], [`Gpu::copy_dtod_raw`]) are
//! `unsafe fn`s. Every wait is bounded by the rank's [`Watchdog`]. Errors that `Drop` meets are
//! kept and returned by the next call on the [`Gpu`].

use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cudarc::driver::{result, sys, CudaContext};

use crate::error::{drv, CudaError, Result};
use crate::nvrtc::{self, Source};
use crate::pool::{size_class, FreeLists};
use crate::switch;
use crate::watchdog::Watchdog;

/// True when libcuda can be loaded.
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen candidate names.
    unsafe { sys::is_culib_present() }
}

/// Number of visible GPUs (error when no driver).
pub fn device_count() -> Result<usize> {
    if !driver_present() {
        return Err(CudaError::NoDriver);
    }
    drv("cuInit", result::init())?;
    Ok(drv("cuDeviceGetCount", result::device::get_count())? as usize)
}

/// Errors from `Drop` impls (freeing memory, destroying events): kept here and returned by the
/// next call on the [`Gpu`] (see [`Gpu::bind`]) instead of being discarded.
#[derive(Debug, Clone, Default)]
pub(crate) struct Deferred(Arc<Mutex<Vec<String>>>);

impl Deferred {
    fn push(&self, what: String) {
        if let Ok(mut v) = self.0.lock() {
            v.push(what);
        }
    }

    fn take(&self) -> Result<()> {
        let v = std::mem::take(&mut *self.0.lock().map_err(|_| CudaError::Poisoned)?);
        if v.is_empty() {
            Ok(())
        } else {
            Err(CudaError::Deferred(v.join("; ")))
        }
    }
}

/// Bytes the device-memory pool may keep (`DCP_CUDA_POOL_MB`, default 8192; 0 turns it off).
fn pool_cap() -> Result<usize> {
    match std::env::var("DCP_CUDA_POOL_MB") {
        Err(_) => Ok(8192 << 20),
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .and_then(|mb| mb.checked_mul(1 << 20))
            .ok_or_else(|| {
                CudaError::Unsupported(format!(
                    "DCP_CUDA_POOL_MB={v}: expected a number of MiB (0 turns the pool off)"
                ))
            }),
    }
}

/// `DCP_CUDA_PREPARE_SYNC`: `1` makes preparing a program wait for the GPU as before session 18
/// (a pooled buffer returned since the streams were last idle is handed out after a wait, and the
/// descriptor arena's upload waits for the copy); unset or `0`: neither waits (stream order makes
/// them safe, see [`Gpu::alloc`] and [`Gpu::upload_async`]). For A/B runs.
fn prepare_sync_from_env() -> Result<bool> {
    parse_prepare_sync(std::env::var("DCP_CUDA_PREPARE_SYNC").ok().as_deref())
}

fn parse_prepare_sync(v: Option<&str>) -> Result<bool> {
    switch::parse("DCP_CUDA_PREPARE_SYNC", v, false).map_err(CudaError::Unsupported)
}

/// `DCP_CUDA_PINNED_STAGING`: `1` (the default) copies a program's descriptor arena into the
/// page-locked staging pool before its upload ([`Gpu::stage`]); `0` uploads it from pageable
/// memory as in session 18, where the driver may hold the host until the compute stream has run
/// what is queued before the copy. For A/B runs.
fn pinned_staging_from_env() -> Result<bool> {
    parse_pinned_staging(std::env::var("DCP_CUDA_PINNED_STAGING").ok().as_deref())
}

fn parse_pinned_staging(v: Option<&str>) -> Result<bool> {
    switch::parse("DCP_CUDA_PINNED_STAGING", v, true).map_err(CudaError::Unsupported)
}

/// Programmatic dependent launch (`DCP_CUDA_PDL`: 1, the default, or 0): kernels that declare
/// it ([`Kernel::pdl`]) are launched with programmatic stream serialization, so that the GPU may
/// start them while the kernel before them on the stream finishes (they wait for it in
/// `griddepcontrol.wait`, kernels/common.cuh `pdl_wait`).
fn pdl_from_env() -> Result<bool> {
    switch::from_env("DCP_CUDA_PDL", true).map_err(CudaError::Unsupported)
}

/// `[offset, offset + len)` lies inside `bytes` bytes (no overflow).
fn check_range(offset: usize, len: usize, bytes: usize) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= bytes => Ok(()),
        _ => Err(CudaError::OutOfBounds { offset, len, bytes }),
    }
}

/// Device memory freed on drop. The device address is only handed out as a number
/// ([`DevBuf::device_ptr`]); reading or writing through it needs `unsafe` code elsewhere.
#[derive(Debug)]
pub struct DevBuf {
    ptr: u64,
    bytes: usize,
    /// The allocation's size class (its real size); it goes back to `pool` on drop.
    class: usize,
    pool: Pool,
    ctx: Arc<CudaContext>,
    deferred: Deferred,
}

/// Bytes kept in the page-locked staging pool ([`Gpu::pinned`]); more are freed on return.
const PINNED_POOL_CAP: usize = 256 << 20;

/// A copy of some bytes in page-locked host memory ([`Gpu::pinned`]), the source of an upload
/// that must not wait for the GPU: from pageable memory the driver may wait for the stream while
/// it stages the copy. On drop the allocation goes back to the GPU's staging pool (freeing
/// page-locked memory can wait for the device).
#[derive(Debug)]
pub struct PinnedBytes {
    ptr: *mut u8,
    len: usize,
    class: usize,
    pool: PinnedPool,
}

// SAFETY: the allocation is plain host memory owned by this value alone until it goes back to
// the pool, which is behind a mutex.
unsafe impl Send for PinnedBytes {}
// SAFETY: shared references only read the bytes.
unsafe impl Sync for PinnedBytes {}

impl PinnedBytes {
    pub fn as_slice(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr` holds `len` initialised bytes (written in `Gpu::pinned`) while self lives.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for PinnedBytes {
    fn drop(&mut self) {
        if self.ptr.is_null() {
            return;
        }
        if let Ok(mut p) = self.pool.0.lock() {
            if p.lists.put(self.class, self.ptr as u64) {
                return;
            }
            // SAFETY: allocated by cuMemHostAlloc (`Gpu::pinned`), owned by this value alone.
            p.free(self.ptr as u64);
        }
    }
}

/// Host bytes handed to [`Gpu::upload_async`], which must outlive the copy: page-locked from the
/// staging pool, or pageable (`DCP_CUDA_PINNED_STAGING=0`).
#[derive(Debug)]
pub enum Staged {
    Pinned(PinnedBytes),
    Pageable(Vec<u8>),
}

impl Staged {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Staged::Pinned(p) => p.as_slice(),
            Staged::Pageable(v) => v,
        }
    }
}

/// Page-locked staging buffers by size class ([`crate::pool::FreeLists`], capped at
/// [`PINNED_POOL_CAP`]), shared by the [`Gpu`] and its [`PinnedBytes`].
#[derive(Debug, Clone)]
pub(crate) struct PinnedPool(Arc<Mutex<PinnedInner>>);

#[derive(Debug)]
struct PinnedInner {
    lists: FreeLists,
    ctx: Arc<CudaContext>,
    deferred: Deferred,
}

impl PinnedInner {
    /// Frees one page-locked allocation (errors reported by the GPU's next call).
    fn free(&self, ptr: u64) {
        if let Err(e) = self.ctx.bind_to_thread() {
            self.deferred
                .push(format!("binding the context to free pinned memory: {e:?}"));
        }
        // SAFETY: a cuMemHostAlloc allocation no longer referenced by any PinnedBytes.
        if let Err(e) = unsafe { result::free_host(ptr as *mut c_void) } {
            self.deferred.push(format!("cuMemFreeHost: {e:?}"));
        }
    }
}

impl Drop for PinnedInner {
    fn drop(&mut self) {
        for p in self.lists.drain() {
            self.free(p);
        }
    }
}

/// The GPU's device-memory pool ([`crate::pool`]), shared by the [`Gpu`] and its buffers; the
/// last owner frees what it holds.
#[derive(Debug, Clone)]
pub(crate) struct Pool(Arc<Mutex<PoolInner>>);

#[derive(Debug)]
struct PoolInner {
    lists: FreeLists,
    ctx: Arc<CudaContext>,
    deferred: Deferred,
}

impl Pool {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, PoolInner>> {
        self.0.lock().map_err(|_| CudaError::Poisoned)
    }
}

/// Frees `ptrs` (allocations of this context), keeping errors for the next call.
fn free_all(ctx: &CudaContext, deferred: &Deferred, ptrs: Vec<u64>) {
    if ptrs.is_empty() {
        return;
    }
    if let Err(e) = ctx.bind_to_thread() {
        deferred.push(format!("binding the context to free memory: {e:?}"));
    }
    for p in ptrs {
        // SAFETY: a pooled allocation of this context, no longer referenced by any DevBuf.
        if let Err(e) = unsafe { result::free_sync(p) } {
            deferred.push(format!("cuMemFree of a pooled buffer: {e:?}"));
        }
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        let ptrs = self.lists.drain();
        free_all(&self.ctx, &self.deferred, ptrs);
    }
}

impl DevBuf {
    /// Size in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Device address of the first byte (0 for an empty buffer).
    pub fn device_ptr(&self) -> u64 {
        self.ptr
    }

    /// Device address of `[offset, offset + len)`, checked to lie inside this buffer.
    pub fn range(&self, offset: usize, len: usize) -> Result<u64> {
        check_range(offset, len, self.bytes).map(|_| self.ptr + offset as u64)
    }
}

impl Drop for DevBuf {
    fn drop(&mut self) {
        if self.ptr != 0 {
            // Kept for reuse when the pool has room (a poisoned lock: freed below).
            if let Ok(mut p) = self.pool.0.lock() {
                if p.lists.put(self.class, self.ptr) {
                    return;
                }
            }
            if let Err(e) = self.ctx.bind_to_thread() {
                self.deferred
                    .push(format!("binding the context to free memory: {e:?}"));
            }
            // SAFETY: allocated by malloc_sync in this context and freed once.
            if let Err(e) = unsafe { result::free_sync(self.ptr) } {
                self.deferred
                    .push(format!("cuMemFree of {} bytes: {e:?}", self.bytes));
            }
        }
    }
}

/// Which of the GPU's two streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Kernels and copies, in program order.
    Compute,
    /// NCCL groups.
    Comm,
}

/// A CUDA event (timing enabled) destroyed on drop.
#[derive(Debug)]
pub struct Event {
    ev: sys::CUevent,
    deferred: Deferred,
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: created by event::create and destroyed once.
        if let Err(e) = unsafe { result::event::destroy(self.ev) } {
            self.deferred.push(format!("cuEventDestroy: {e:?}"));
        }
    }
}

impl Event {
    /// Milliseconds from `self` to `end` (both recorded and complete).
    pub fn elapsed_ms(&self, end: &Event) -> Result<f32> {
        // SAFETY: both events valid (owned by their `Event`s).
        drv("cuEventElapsedTime", unsafe {
            result::event::elapsed(self.ev, end.ev)
        })
    }
    /// Non-blocking completion query.
    pub fn is_done(&self) -> Result<bool> {
        // SAFETY: valid event.
        match unsafe { sys::cuEventQuery(self.ev) } {
            sys::cudaError_enum::CUDA_SUCCESS => Ok(true),
            sys::cudaError_enum::CUDA_ERROR_NOT_READY => Ok(false),
            e => Err(CudaError::Driver {
                call: "cuEventQuery",
                err: format!("{e:?}"),
            }),
        }
    }
}

/// A loaded kernel.
#[derive(Debug, Clone, Copy)]
pub struct Kernel {
    pub f: sys::CUfunction,
    pub regs: i32,
    pub spill_bytes: i32,
    /// The kernel's module declares (symbol `dcp_pdl_<name>`, kernels/common.cuh
    /// `DCP_PDL_KERNEL`) that every thread of it executes `griddepcontrol.wait` before it touches
    /// memory that earlier work on the stream writes or reads, and before it exits: it may be
    /// launched with programmatic stream serialization ([`Gpu::launch`]).
    pub pdl: bool,
}

/// Kernel variant key: source + defines.
type KernelKey = (Source, Vec<(String, String)>);

/// One GPU: its primary context, a compute and a comm stream, compiled kernels, and the rank's
/// [`Watchdog`] that bounds every wait.
pub struct Gpu {
    pub ctx: Arc<CudaContext>,
    pub ordinal: usize,
    pub cc: (i32, i32),
    pub name: String,
    pub sm_count: i32,
    /// The L2 cache's size in bytes.
    pub l2_bytes: u64,
    compute: sys::CUstream,
    comm: sys::CUstream,
    modules: Mutex<HashMap<KernelKey, sys::CUmodule>>,
    deferred: Deferred,
    wd: Arc<Watchdog>,
    pool: Pool,
    pinned: PinnedPool,
    /// Nanoseconds the host spent in [`Gpu::sync`] (see [`Gpu::sync_wait_s`]).
    sync_wait_ns: AtomicU64,
    /// Nanoseconds the host spent in `cuMemAlloc` for pool misses (see [`Gpu::pool_stats`]).
    alloc_ns: AtomicU64,
    /// `DCP_CUDA_PREPARE_SYNC=1` (see [`prepare_sync_from_env`]).
    prepare_sync: bool,
    /// `DCP_CUDA_PINNED_STAGING` (see [`pinned_staging_from_env`]).
    pinned_staging: bool,
    /// Programmatic dependent launch allowed: `DCP_CUDA_PDL` and compute capability 9.0 or later.
    pdl: bool,
}

// SAFETY: CUDA handles (context, streams, modules) are usable from any thread once the context is
// bound, which every method does first; the module map is behind a mutex.
unsafe impl Send for Gpu {}
// SAFETY: as above; no method hands out interior references to mutable state.
unsafe impl Sync for Gpu {}

impl Gpu {
    /// Opens GPU `ordinal` (primary context) with two non-blocking streams; `wd` bounds every
    /// wait on this GPU.
    pub fn open(ordinal: usize, wd: Arc<Watchdog>) -> Result<Self> {
        let n = device_count()?;
        if n == 0 {
            return Err(CudaError::NoDevice("cuDeviceGetCount returned 0".into()));
        }
        if ordinal >= n {
            return Err(CudaError::NoDevice(format!(
                "GPU {ordinal} requested but only {n} visible"
            )));
        }
        let ctx = drv("cuCtx", CudaContext::new(ordinal))?;
        drv("bind", ctx.bind_to_thread())?;
        let cc = drv("compute capability", ctx.compute_capability())?;
        let name = drv("name", ctx.name())?;
        let sm_count = drv(
            "attribute",
            ctx.attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT),
        )?;
        let l2_bytes = drv(
            "attribute",
            ctx.attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE),
        )?
        .max(0) as u64;
        let compute = drv(
            "cuStreamCreate",
            result::stream::create(result::stream::StreamKind::NonBlocking),
        )?;
        let comm = drv(
            "cuStreamCreate",
            result::stream::create(result::stream::StreamKind::NonBlocking),
        )?;
        let deferred = Deferred::default();
        let pinned = PinnedPool(Arc::new(Mutex::new(PinnedInner {
            lists: FreeLists::new(PINNED_POOL_CAP),
            ctx: ctx.clone(),
            deferred: deferred.clone(),
        })));
        let pool = Pool(Arc::new(Mutex::new(PoolInner {
            lists: FreeLists::new(pool_cap()?),
            ctx: ctx.clone(),
            deferred: deferred.clone(),
        })));
        Ok(Gpu {
            ctx,
            ordinal,
            cc,
            name,
            sm_count,
            l2_bytes,
            compute,
            comm,
            modules: Default::default(),
            pinned,
            pool,
            deferred,
            wd,
            alloc_ns: AtomicU64::new(0),
            sync_wait_ns: AtomicU64::new(0),
            prepare_sync: prepare_sync_from_env()?,
            pinned_staging: pinned_staging_from_env()?,
            pdl: pdl_from_env()? && cc.0 >= 9,
        })
    }

    /// Seconds the host has waited in [`Gpu::sync`] since the GPU was opened (callers take
    /// differences around a step to see how much of it was waiting for the device).
    pub fn sync_wait_s(&self) -> f64 {
        self.sync_wait_ns.load(Ordering::Relaxed) as f64 * 1e-9
    }

    /// Whether preparing programs waits for the GPU (`DCP_CUDA_PREPARE_SYNC=1`).
    pub fn prepare_sync(&self) -> bool {
        self.prepare_sync
    }

    /// The watchdog bounding this GPU's waits.
    pub fn watchdog(&self) -> &Arc<Watchdog> {
        &self.wd
    }

    /// Binds the context to this thread. Fails with the errors that `Drop` impls of this GPU's
    /// buffers and events met since the last call, and with a failure the watchdog recorded.
    pub fn bind(&self) -> Result<()> {
        self.wd.check()?;
        self.deferred.take()?;
        drv("bind", self.ctx.bind_to_thread())
    }

    /// The raw handle of stream `s`, for NCCL calls (using it needs `unsafe` code).
    pub fn raw_stream(&self, s: Stream) -> sys::CUstream {
        match s {
            Stream::Compute => self.compute,
            Stream::Comm => self.comm,
        }
    }

    pub fn arch(&self) -> String {
        nvrtc::arch_for(self.cc)
    }

    /// Whether [`Gpu::launch`] uses programmatic dependent launch for kernels that allow it
    /// (`DCP_CUDA_PDL`, compute capability 9.0 or later).
    pub fn pdl(&self) -> bool {
        self.pdl
    }

    /// `bytes` of device memory: a cached buffer of its size class when the pool has one, else
    /// a new allocation; when the device is out of memory, the pool's cached buffers are freed
    /// and the allocation tried once more.
    ///
    /// A cached buffer may have come back while work enqueued before its owner dropped it is
    /// still running. It is handed out without waiting: every use of a buffer is work on this
    /// GPU's compute stream, or on its comm stream after an event of the compute stream, and a
    /// program's last comm work is joined back into the compute stream before its end. So
    /// anything enqueued after the drop runs after the old uses (kernels launched with
    /// programmatic dependent launch wait in `griddepcontrol.wait` before touching memory;
    /// host reads go through [`Gpu::download`], which waits first). With `DCP_CUDA_PREPARE_SYNC=1` it waits for the
    /// streams first, as before session 18.
    pub fn alloc(&self, bytes: usize) -> Result<DevBuf> {
        self.bind()?;
        let buf = |ptr: u64, class: usize| DevBuf {
            ptr,
            bytes,
            class,
            pool: self.pool.clone(),
            ctx: self.ctx.clone(),
            deferred: self.deferred.clone(),
        };
        if bytes == 0 {
            return Ok(buf(0, 0));
        }
        let class = size_class(bytes);
        let hit = self.pool.lock()?.lists.take(class);
        if let Some((ptr, wait)) = hit {
            let b = buf(ptr, class);
            if wait && self.prepare_sync {
                self.sync()?;
            }
            return Ok(b);
        }
        let t0 = std::time::Instant::now();
        // SAFETY: plain allocation in the bound context.
        let ptr = match unsafe { result::malloc_sync(class) } {
            Ok(p) => p,
            Err(e) if e.0 == sys::cudaError_enum::CUDA_ERROR_OUT_OF_MEMORY => {
                self.trim()?;
                // SAFETY: as above.
                drv("cuMemAlloc", unsafe { result::malloc_sync(class) })?
            }
            Err(e) => return drv("cuMemAlloc", Err(e)),
        };
        self.alloc_ns
            .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(buf(ptr, class))
    }

    /// Frees the pool's cached buffers (after the streams are idle, as they may still be in use).
    pub fn trim(&self) -> Result<()> {
        self.sync()?;
        let ptrs = self.pool.lock()?.lists.drain();
        free_all(&self.ctx, &self.deferred, ptrs);
        self.bind()
    }

    /// The pool: (bytes cached, hits, misses, seconds the misses spent in `cuMemAlloc`) since
    /// the GPU was opened.
    pub fn pool_stats(&self) -> Result<(usize, u64, u64, f64)> {
        let p = self.pool.lock()?;
        let alloc_s = self.alloc_ns.load(Ordering::Relaxed) as f64 * 1e-9;
        Ok((p.lists.cached(), p.lists.hits, p.lists.misses, alloc_s))
    }

    /// Copies `data` into `dst` at byte `offset` (checked against the buffer's size), after
    /// all work already on the compute stream, and returns once the copy has landed.
    ///
    /// Not a plain `cuMemcpyHtoD`: from pageable memory that call may return once the data is
    /// staged, before its DMA reaches the device, and it runs on the legacy stream, with which
    /// our non-blocking streams do not synchronise. Work enqueued right after it (the copy of
    /// the forward's Q and KV into the backward program, a run) could read the buffer before
    /// the data arrived: `bench-gpu --check` saw sporadic dQ/dKV errors of 1-3e-2 on both
    /// kernel families while O and LSE were exact.
    pub fn upload(&self, dst: &DevBuf, offset: usize, data: &[u8]) -> Result<()> {
        dst.range(offset, data.len())?;
        if data.is_empty() {
            return Ok(());
        }
        // SAFETY: `data` outlives the copy: we wait for the stream below before returning.
        unsafe { self.copy_htod_async(dst, offset, data)? };
        self.sync()
    }

    /// `data` copied into page-locked host memory (from the staging pool when it holds a buffer
    /// of that size class), for [`Gpu::upload_async`].
    pub fn pinned(&self, data: &[u8]) -> Result<PinnedBytes> {
        let mut p = PinnedBytes {
            ptr: std::ptr::null_mut(),
            len: 0,
            class: 0,
            pool: self.pinned.clone(),
        };
        if data.is_empty() {
            return Ok(p);
        }
        let class = size_class(data.len());
        let hit = self
            .pinned
            .0
            .lock()
            .map_err(|_| CudaError::Poisoned)?
            .lists
            .take(class);
        let ptr = match hit {
            Some((ptr, _)) => ptr as *mut u8,
            None => {
                self.bind()?;
                // SAFETY: a plain page-locked allocation in the bound context.
                drv("cuMemHostAlloc", unsafe { result::malloc_host(class, 0) })? as *mut u8
            }
        };
        (p.ptr, p.len, p.class) = (ptr, data.len(), class);
        // SAFETY: `ptr` holds `class >= data.len()` bytes owned by `p` alone (a fresh allocation,
        // or one returned to the pool by a dropped PinnedBytes whose upload had passed).
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), ptr, data.len()) };
        Ok(p)
    }

    /// `data` as the source of an [`Gpu::upload_async`]: copied into the page-locked staging
    /// pool ([`Gpu::pinned`]), or kept as it is with `DCP_CUDA_PINNED_STAGING=0`.
    pub fn stage(&self, data: Vec<u8>) -> Result<Staged> {
        if self.pinned_staging {
            Ok(Staged::Pinned(self.pinned(&data)?))
        } else {
            Ok(Staged::Pageable(data))
        }
    }

    /// Enqueues the copy of `src` into `dst` at byte `offset` (checked against the buffer's
    /// size) on the compute stream and returns without waiting for the GPU (from page-locked
    /// memory; from pageable memory the driver stages the bytes first and may wait for the
    /// stream to do so): work enqueued after it on the compute stream sees the data.
    ///
    /// # Safety
    /// `src` must not be dropped before the compute stream has passed the copy (keep it with
    /// the buffer's owner, which drops only after its work has passed): pinned memory goes back
    /// to the staging pool and may be overwritten.
    pub unsafe fn upload_async(&self, dst: &DevBuf, offset: usize, src: &Staged) -> Result<()> {
        // SAFETY: forwarded from the caller.
        unsafe { self.copy_htod_async(dst, offset, src.as_slice()) }
    }

    /// # Safety
    /// `data` must stay allocated and unchanged until the compute stream has passed the copy.
    unsafe fn copy_htod_async(&self, dst: &DevBuf, offset: usize, data: &[u8]) -> Result<()> {
        let at = dst.range(offset, data.len())?;
        if data.is_empty() {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: the range lies inside `dst` (checked above); the caller keeps `data` alive.
        drv("cuMemcpyHtoDAsync", unsafe {
            result::memcpy_htod_async(at, data, self.compute)
        })
    }

    /// Copies `out.len()` bytes of `src` from byte `offset` (checked) after both streams finish.
    pub fn download(&self, src: &DevBuf, offset: usize, out: &mut [u8]) -> Result<()> {
        let at = src.range(offset, out.len())?;
        if out.is_empty() {
            return Ok(());
        }
        self.sync()?;
        self.wd.guard("device-to-host copy", &[], || {
            // SAFETY: `at..at + out.len()` lies inside `src` (checked above), which is alive.
            drv("cuMemcpyDtoH", unsafe { result::memcpy_dtoh_sync(out, at) })
        })?
    }

    pub fn event(&self) -> Result<Event> {
        self.bind()?;
        let ev = drv(
            "cuEventCreate",
            result::event::create(sys::CUevent_flags::CU_EVENT_DEFAULT),
        )?;
        Ok(Event {
            ev,
            deferred: self.deferred.clone(),
        })
    }

    /// Records `e` on stream `s`.
    pub fn record(&self, e: &Event, s: Stream) -> Result<()> {
        // SAFETY: valid event and stream of this context.
        drv("cuEventRecord", unsafe {
            result::event::record(e.ev, self.raw_stream(s))
        })
    }

    /// Stream `s` waits for `e`.
    pub fn wait(&self, s: Stream, e: &Event) -> Result<()> {
        // SAFETY: valid stream and event.
        drv("cuStreamWaitEvent", unsafe {
            result::stream::wait_event(
                self.raw_stream(s),
                e.ev,
                sys::CUevent_wait_flags::CU_EVENT_WAIT_DEFAULT,
            )
        })
    }

    /// Waits until `e` completes, within the watchdog's deadline for `step` (which waits on
    /// `peers`).
    pub fn wait_event(&self, e: &Event, step: &str, peers: &[u32]) -> Result<()> {
        self.wd.wait_until(step, peers, || e.is_done())
    }

    /// Waits (bounded by the watchdog) until both streams are idle.
    pub fn sync(&self) -> Result<()> {
        self.bind()?;
        let idle = |s: sys::CUstream| -> Result<bool> {
            // SAFETY: valid stream of this context.
            match unsafe { sys::cuStreamQuery(s) } {
                sys::cudaError_enum::CUDA_SUCCESS => Ok(true),
                sys::cudaError_enum::CUDA_ERROR_NOT_READY => Ok(false),
                e => Err(CudaError::Driver {
                    call: "cuStreamQuery",
                    err: format!("{e:?}"),
                }),
            }
        };
        let t0 = std::time::Instant::now();
        let r = self.wd.wait_until("stream synchronisation", &[], || {
            Ok(idle(self.compute)? && idle(self.comm)?)
        });
        self.sync_wait_ns
            .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        r?;
        // Every buffer returned to the pool before this point is out of use.
        self.pool.lock()?.lists.streams_idle();
        Ok(())
    }

    /// The kernel `name` of `src` compiled with `defines` (compiled and loaded at first use).
    pub fn kernel(&self, src: Source, defines: &[(String, String)], name: &str) -> Result<Kernel> {
        self.bind()?;
        let key = (src, defines.to_vec());
        let mut mods = self.modules.lock().map_err(|_| CudaError::Poisoned)?;
        let module = match mods.get(&key) {
            Some(m) => *m,
            None => {
                let c = nvrtc::compile(src, defines, &self.arch())?;
                // SAFETY: a complete CUBIN image for this device's arch.
                let m = drv("cuModuleLoadData", unsafe {
                    result::module::load_data(c.cubin.as_ptr() as *const c_void)
                })?;
                mods.insert(key, m);
                m
            }
        };
        let cname = CString::new(name)
            .map_err(|_| CudaError::Unsupported(format!("kernel name {name:?} contains NUL")))?;
        // SAFETY: module loaded above.
        let f = drv("cuModuleGetFunction", unsafe {
            result::module::get_function(module, cname)
        })?;
        // SAFETY: valid function.
        let (regs, spill) = unsafe {
            (
                result::function::get_function_attribute(
                    f,
                    sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_NUM_REGS,
                )
                .unwrap_or(0),
                result::function::get_function_attribute(
                    f,
                    sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES,
                )
                .unwrap_or(0),
            )
        };
        // DCP_PDL_KERNEL(name): a module symbol, looked up only where the source declares it
        // (a failed lookup is an API error that compute-sanitizer reports) and only where this
        // GPU launches that way; kernel sources without it (`DCP_CUDA_KERNELS` builds of older
        // sources) launch plainly.
        let pdl = self.pdl
            && src.text().contains(&format!("DCP_PDL_KERNEL({name})"))
            && CString::new(format!("dcp_pdl_{name}"))
                .ok()
                // SAFETY: module loaded above; only looks the symbol up.
                .is_some_and(|sym| unsafe { result::module::get_global(module, sym) }.is_ok());
        Ok(Kernel {
            f,
            regs,
            spill_bytes: spill,
            pdl,
        })
    }

    /// Allows `kernel` to use `bytes` of dynamic shared memory.
    pub fn set_smem(&self, k: &Kernel, bytes: usize) -> Result<()> {
        // SAFETY: valid function.
        drv("cuFuncSetAttribute", unsafe {
            result::function::set_function_attribute(
                k.f,
                sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                bytes as i32,
            )
        })
    }

    /// Launches `k` on stream `s` with a 1-D grid; with programmatic stream serialization where
    /// `k` allows it ([`Kernel::pdl`]) and this GPU uses it ([`Gpu::pdl`]): `k` may then start
    /// before the kernel ahead of it on `s` completes, and waits for it itself.
    ///
    /// # Safety
    ///
    /// `params` must hold one pointer per kernel parameter, in order, each pointing at a value
    /// of that parameter's type and size, and every device address passed (directly or inside
    /// descriptors) must point into live allocations of this context that stay alive, and are
    /// not freed or reused, until the launch completes on the GPU; the kernel must not access
    /// memory outside them. Where `k.pdl` is set, the kernel must do what [`Kernel::pdl`] says.
    pub unsafe fn launch(
        &self,
        k: &Kernel,
        grid: u32,
        block: u32,
        smem: u32,
        s: Stream,
        params: &mut [*mut c_void],
    ) -> Result<()> {
        if grid == 0 {
            return Ok(());
        }
        if !(k.pdl && self.pdl) {
            // SAFETY: the caller guarantees `params` match the kernel and its addresses are valid.
            return drv("cuLaunchKernel", unsafe {
                result::launch_kernel(
                    k.f,
                    (grid, 1, 1),
                    (block, 1, 1),
                    smem,
                    self.raw_stream(s),
                    params,
                )
            });
        }
        // SAFETY: an all-zero attribute value is valid (a plain-old-data union).
        let mut attr: sys::CUlaunchAttribute = unsafe { std::mem::zeroed() };
        attr.id = sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
        attr.value.programmaticStreamSerializationAllowed = 1;
        let cfg = sys::CUlaunchConfig {
            gridDimX: grid,
            gridDimY: 1,
            gridDimZ: 1,
            blockDimX: block,
            blockDimY: 1,
            blockDimZ: 1,
            sharedMemBytes: smem,
            hStream: self.raw_stream(s),
            attrs: &mut attr,
            numAttrs: 1,
        };
        // SAFETY: `cfg` and `attr` outlive the call; the caller guarantees `params` match the
        // kernel, its addresses are valid and the kernel waits as `Kernel::pdl` says.
        drv("cuLaunchKernelEx", unsafe {
            sys::cuLaunchKernelEx(&cfg, k.f, params.as_mut_ptr(), std::ptr::null_mut()).result()
        })
    }

    /// Asynchronous device-to-device copy on stream `s`.
    ///
    /// # Safety
    ///
    /// `src..src + bytes` and `dst..dst + bytes` must lie inside live allocations of this
    /// context that stay alive until the copy completes.
    pub unsafe fn copy_dtod_raw(&self, dst: u64, src: u64, bytes: usize, s: Stream) -> Result<()> {
        // SAFETY: the caller guarantees both ranges are valid.
        drv("cuMemcpyDtoDAsync", unsafe {
            result::memcpy_dtod_async(dst, src, bytes, self.raw_stream(s))
        })
    }

    /// Copies all of `src` into `dst` (same size) on the compute stream and waits for it.
    pub fn copy_buf(&self, dst: &DevBuf, src: &DevBuf) -> Result<()> {
        if dst.bytes != src.bytes {
            return Err(CudaError::OutOfBounds {
                offset: 0,
                len: src.bytes,
                bytes: dst.bytes,
            });
        }
        self.bind()?;
        if src.bytes > 0 {
            // SAFETY: both buffers are alive and hold `src.bytes`; we wait below.
            unsafe { self.copy_dtod_raw(dst.ptr, src.ptr, src.bytes, Stream::Compute)? };
        }
        self.sync()
    }

    /// Sets every byte of `buf` to `value` (on the compute stream) and waits for it.
    pub fn memset(&self, buf: &DevBuf, value: u8) -> Result<()> {
        if buf.bytes == 0 {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: the whole live allocation, which `buf` keeps alive until the wait below.
        drv("cuMemsetD8", unsafe {
            result::memset_d8_async(buf.ptr, value, buf.bytes, self.compute)
        })?;
        self.sync()
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        // No later call can report these: say them on stderr rather than drop them silently.
        let mut errs = Vec::new();
        if let Err(e) = self.deferred.take() {
            errs.push(e.to_string());
        }
        if let Err(e) = drv("bind", self.ctx.bind_to_thread()) {
            errs.push(e.to_string());
        }
        // A bounded wait: an aborted peer must not hang the exit. A recorded failure was
        // already returned to the caller: no need to repeat it here.
        match self.sync() {
            Ok(()) | Err(CudaError::Stalled(_)) => {}
            Err(e) => errs.push(e.to_string()),
        }
        // SAFETY: modules and streams created by this Gpu, destroyed once.
        unsafe {
            if let Ok(mods) = self.modules.lock() {
                for m in mods.values() {
                    if let Err(e) = result::module::unload(*m) {
                        errs.push(format!("cuModuleUnload: {e:?}"));
                    }
                }
            }
            for s in [self.compute, self.comm] {
                if let Err(e) = result::stream::destroy(s) {
                    errs.push(format!("cuStreamDestroy: {e:?}"));
                }
            }
        }
        if !errs.is_empty() {
            eprintln!(
                "dcp-cuda: releasing GPU {}: {}",
                self.ordinal,
                errs.join("; ")
            );
        }
    }
}

/// A TMA tensor map (the driver's 128-byte `CUtensorMap`) of a 2-D fp32 matrix in device
/// memory: `rows` rows of `cols` elements, `stride` elements from one row to the next, read or
/// reduced into in boxes of `box_rows` rows x 32 columns (128 bytes) with the 128-byte shared
/// memory swizzle. Elements outside the matrix are not touched by stores and reductions.
pub fn tensor_map_f32_sw128(
    ptr: u64,
    rows: u32,
    cols: u32,
    stride: u32,
    box_rows: u32,
) -> Result<[u64; 16]> {
    let bad = |what: String| Err(CudaError::Unsupported(format!("TMA tensor map: {what}")));
    if ptr == 0 || !ptr.is_multiple_of(16) {
        return bad(format!(
            "address {ptr:#x} must be non-null and 16-byte aligned"
        ));
    }
    if !(stride as u64 * 4).is_multiple_of(16) || stride < cols || rows == 0 || cols < 32 {
        return bad(format!(
            "{rows} rows of {cols} fp32 (at least 32) at a stride of {stride} (a multiple of 4, \
             at least the row length)"
        ));
    }
    if box_rows == 0 || box_rows > 256 {
        return bad(format!("box of {box_rows} rows (1 to 256)"));
    }
    encode_sw128(
        ptr,
        TmaElem::F32,
        &[cols as u64, rows as u64],
        &[stride as u64],
        &[32, box_rows],
        sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
    )
}

/// Element type of a [`tensor_map_sw128`] tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TmaElem {
    F32,
    Bf16,
    F16,
}

impl TmaElem {
    /// Bytes of one element.
    pub fn bytes(self) -> u64 {
        match self {
            TmaElem::F32 => 4,
            TmaElem::Bf16 | TmaElem::F16 => 2,
        }
    }
}

/// A TMA tensor map (the driver's 128-byte `CUtensorMap`) of a tensor of rank 1 to 5 in device
/// memory, read in boxes with the 128-byte shared-memory swizzle (the layout wgmma's 128B
/// swizzle mode reads when the box lands 1024-byte aligned): `dims` elements per dimension
/// (innermost first), `strides` in elements between consecutive indices of dimensions 1.. (one
/// fewer than `dims`; the innermost is contiguous), `boxd` elements per dimension of a box, whose
/// innermost row must be 16 to 128 bytes (a multiple of 16). Loads fill elements outside the
/// tensor with zeros. Every argument is checked here, naming the bad one, before the driver.
pub fn tensor_map_sw128(
    ptr: u64,
    elem: TmaElem,
    dims: &[u64],
    strides: &[u64],
    boxd: &[u32],
) -> Result<[u64; 16]> {
    let bad = |what: String| Err(CudaError::Unsupported(format!("TMA tensor map: {what}")));
    let rank = dims.len();
    if !(1..=5).contains(&rank) || strides.len() + 1 != rank || boxd.len() != rank {
        return bad(format!(
            "rank {rank} with {} strides and a box of rank {} (rank 1 to 5, rank - 1 strides)",
            strides.len(),
            boxd.len()
        ));
    }
    if ptr == 0 || !ptr.is_multiple_of(16) {
        return bad(format!(
            "address {ptr:#x} must be non-null and 16-byte aligned"
        ));
    }
    let eb = elem.bytes();
    for (i, &n) in dims.iter().enumerate() {
        if n == 0 || n > 1 << 32 {
            return bad(format!("dimension {i} of {n} elements (1 to 2^32)"));
        }
    }
    for (i, &st) in strides.iter().enumerate() {
        let b = st.saturating_mul(eb);
        if !b.is_multiple_of(16) || b >= 1 << 40 || b == 0 {
            return bad(format!(
                "stride {} of {st} elements ({b} bytes: a nonzero multiple of 16 below 2^40)",
                i + 1
            ));
        }
    }
    for (i, &b) in boxd.iter().enumerate() {
        if b == 0 || b > 256 {
            return bad(format!("box dimension {i} of {b} elements (1 to 256)"));
        }
    }
    let row = boxd[0] as u64 * eb;
    if !(16..=128).contains(&row) || !row.is_multiple_of(16) {
        return bad(format!(
            "box rows of {row} bytes (the 128-byte swizzle takes 16 to 128, a multiple of 16)"
        ));
    }
    encode_sw128(
        ptr,
        elem,
        dims,
        strides,
        boxd,
        sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
    )
}

/// `cuTensorMapEncodeTiled` with the 128-byte swizzle, unit element strides and no interleave,
/// on arguments the callers checked (rank 1 to 5, `strides` one fewer than `dims`, in elements).
fn encode_sw128(
    ptr: u64,
    elem: TmaElem,
    dims: &[u64],
    strides: &[u64],
    boxd: &[u32],
    l2: sys::CUtensorMapL2promotion,
) -> Result<[u64; 16]> {
    let rank = dims.len();
    let eb = elem.bytes();
    let dt = match elem {
        TmaElem::F32 => sys::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_FLOAT32,
        TmaElem::Bf16 => sys::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
        TmaElem::F16 => sys::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
    };
    let mut map = sys::CUtensorMap { opaque: [0; 16] };
    let sb: Vec<u64> = strides.iter().map(|&s| s * eb).collect();
    let estr = [1u32; 5];
    // SAFETY: plain host-side encoding into `map`; the arrays outlive the call and have the
    // lengths rank `rank` asks for (strides: rank - 1; the callers checked them).
    let r = unsafe {
        sys::cuTensorMapEncodeTiled(
            &mut map,
            dt,
            rank as u32,
            ptr as *mut c_void,
            dims.as_ptr(),
            sb.as_ptr(),
            boxd.as_ptr(),
            estr.as_ptr(),
            sys::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B,
            l2,
            sys::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    };
    drv("cuTensorMapEncodeTiled", r.result())?;
    Ok(map.opaque)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_staging_switch_defaults_on_and_names_a_bad_value() {
        assert!(parse_pinned_staging(None).unwrap());
        assert!(parse_pinned_staging(Some("1")).unwrap());
        assert!(!parse_pinned_staging(Some("0")).unwrap());
        let e = parse_pinned_staging(Some("on")).unwrap_err().to_string();
        assert!(e.contains("DCP_CUDA_PINNED_STAGING=on"), "{e}");
    }

    #[test]
    fn prepare_sync_switch_takes_0_or_1_and_names_a_bad_value() {
        assert!(!parse_prepare_sync(None).unwrap());
        assert!(!parse_prepare_sync(Some("0")).unwrap());
        assert!(parse_prepare_sync(Some("1")).unwrap());
        let e = parse_prepare_sync(Some("yes")).unwrap_err().to_string();
        assert!(e.contains("DCP_CUDA_PREPARE_SYNC=yes"), "{e}");
    }

    #[test]
    fn ranges_are_checked_without_overflow() {
        assert!(check_range(0, 16, 16).is_ok());
        assert!(check_range(16, 0, 16).is_ok());
        assert!(check_range(8, 8, 16).is_ok());
        assert!(check_range(8, 9, 16).is_err());
        assert!(check_range(17, 0, 16).is_err());
        let e = check_range(usize::MAX, 2, 16).unwrap_err().to_string();
        assert!(e.contains("16 bytes"), "{e}");
    }

    #[test]
    fn tensor_map_arguments_are_checked_before_the_driver() {
        // Each of these fails on its arguments (no driver call), naming what is wrong.
        for (args, says) in [
            ((0u64, 64, 128, 128, 64), "16-byte aligned"),
            ((0x1008, 64, 128, 128, 64), "16-byte aligned"),
            ((0x1000, 64, 16, 16, 64), "at least 32"),
            ((0x1000, 64, 128, 130, 64), "stride of 130"),
            ((0x1000, 64, 128, 64, 64), "stride of 64"),
            ((0x1000, 0, 128, 128, 64), "0 rows"),
            ((0x1000, 64, 128, 128, 0), "box of 0 rows"),
            ((0x1000, 64, 128, 128, 512), "box of 512 rows"),
        ] {
            let (p, r, c, st, b) = args;
            let e = tensor_map_f32_sw128(p, r, c, st, b)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(says) && e.contains("TMA tensor map"),
                "{args:?}: {e}"
            );
        }
    }

    #[test]
    fn generic_tensor_map_arguments_are_checked_before_the_driver() {
        use TmaElem::*;
        let ok_dims: &[u64] = &[128, 4, 1000];
        let ok_str: &[u64] = &[128, 512];
        let ok_box: &[u32] = &[64, 1, 128];
        type Case<'a> = (u64, TmaElem, &'a [u64], &'a [u64], &'a [u32], &'a str);
        let cases: [Case; 13] = [
            (0, Bf16, ok_dims, ok_str, ok_box, "16-byte aligned"),
            (0x1008, Bf16, ok_dims, ok_str, ok_box, "address 0x1008"),
            (0x1000, Bf16, &[], &[], &[], "rank 0"),
            (
                0x1000,
                Bf16,
                &[1, 1, 1, 1, 1, 1],
                &[8, 8, 8, 8, 8],
                &[1; 6],
                "rank 6",
            ),
            (0x1000, Bf16, ok_dims, &[128], ok_box, "with 1 strides"),
            (0x1000, Bf16, ok_dims, ok_str, &[64, 1], "box of rank 2"),
            (
                0x1000,
                Bf16,
                &[128, 0, 1000],
                ok_str,
                ok_box,
                "dimension 1 of 0",
            ),
            (
                0x1000,
                F16,
                &[128, 4, 1 << 33],
                ok_str,
                ok_box,
                "dimension 2 of 8589934592",
            ),
            (
                0x1000,
                Bf16,
                ok_dims,
                &[128, 260],
                ok_box,
                "stride 2 of 260 elements (520 bytes",
            ),
            (
                0x1000,
                F32,
                ok_dims,
                &[128, 1 << 39],
                &[32, 1, 128],
                "stride 2 of",
            ),
            (
                0x1000,
                Bf16,
                ok_dims,
                ok_str,
                &[64, 1, 512],
                "box dimension 2 of 512",
            ),
            (
                0x1000,
                Bf16,
                ok_dims,
                ok_str,
                &[128, 1, 128],
                "box rows of 256 bytes",
            ),
            (
                0x1000,
                F32,
                ok_dims,
                ok_str,
                &[2, 1, 128],
                "box rows of 8 bytes",
            ),
        ];
        for (p, e, d, st, b, says) in cases {
            let msg = tensor_map_sw128(p, e, d, st, b).unwrap_err().to_string();
            assert!(
                msg.contains(says) && msg.contains("TMA tensor map"),
                "{p:#x} {e:?} {d:?} {st:?} {b:?}: {msg}"
            );
        }
        assert_eq!((F32.bytes(), Bf16.bytes(), F16.bytes()), (4, 2, 2));
    }

    #[test]
    fn deferred_drop_errors_are_reported_once() {
        let d = Deferred::default();
        assert!(d.take().is_ok());
        d.clone()
            .push("cuMemFree of 64 bytes: CUDA_ERROR_ILLEGAL_ADDRESS".into());
        d.push("cuEventDestroy: CUDA_ERROR_INVALID_HANDLE".into());
        let e = d.take().unwrap_err().to_string();
        assert!(
            e.contains("cuMemFree of 64 bytes") && e.contains("cuEventDestroy"),
            "{e}"
        );
        assert!(d.take().is_ok());
    }
}
