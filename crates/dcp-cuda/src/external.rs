//! Running plans inside another framework's process (PyTorch through `dcp-python`): the GPU is
//! the framework's device (its primary context), the NCCL communicator is built from a unique id
//! the framework broadcasts (`torch.distributed`), and every call is ordered against the
//! framework's CUDA stream with events:
//!
//! ```text
//! caller stream ──record(in)──┐                                   ┌──wait(out)── caller stream
//!                  compute: wait(in) → copy inputs in → program → copy outputs out → record(out)
//! ```
//!
//! Caller tensors are copied device-to-device into the prepared program's own buffers and back
//! (a first version: it costs two copies of Q/KV/O per call, small next to attention). Prepared
//! programs are cached per (plan fingerprint, rank) in a bounded LRU; an evicted entry's memory
//! is freed after the executor's streams are drained, so scratch never grows with the step count.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use cudarc::driver::{result, sys};
use cudarc::nccl::sys as nsys;
use dcp_core::plan::{IoTensor, Plan};
use dcp_core::spec::ModelShape;
use dcp_core::validate::ValidatedPlan;

use crate::dist::{nccl_present, wait_polling_peers_within, Nccl, RankInfo};
use crate::error::{drv, CudaError, Result};
use crate::exec::{Kernels, Prepared, TileConfig};
use crate::gpu::{Gpu, Stream};
use crate::watchdog::{OnExpiry, Watchdog};

/// Bytes of each saved buffer of rank `rank`'s backward program, in the order
/// [`ExternalExecutor::run`] takes the caller's saved tensors.
pub fn saved_bytes(plan: &Plan, rank: usize) -> Vec<usize> {
    let prog = &plan.devices[rank].backward;
    prog.saved()
        .iter()
        .map(|&(i, _)| prog.buffers[i as usize].bytes() as usize)
        .collect()
}

/// A fresh NCCL unique id (128 bytes) for the caller to broadcast to every rank.
pub fn nccl_unique_id() -> Result<Vec<u8>> {
    crate::dist::new_nccl_id()
}

/// Version of the NCCL this process loaded (e.g. 22809 for 2.28.9).
pub fn nccl_version() -> Result<i32> {
    if !nccl_present() {
        return Err(CudaError::NoNccl);
    }
    let mut v = 0i32;
    // SAFETY: writes one int.
    let r = unsafe { nsys::ncclGetVersion(&mut v) };
    if r != nsys::ncclResult_t::ncclSuccess {
        return Err(CudaError::Nccl {
            call: "ncclGetVersion",
            err: format!("{r:?}"),
        });
    }
    Ok(v)
}

/// Creates rank `rank` of a `world`-rank communicator on `gpu` from a unique id every rank
/// received (NCCL's own bootstrap, bounded by the GPU's watchdog).
pub fn comm_from_id(gpu: &Gpu, id: &[u8], rank: u32, world: u32) -> Result<Nccl> {
    if rank >= world {
        return Err(CudaError::Env(format!(
            "rank {rank} must be below world size {world}"
        )));
    }
    let info = RankInfo {
        rank,
        world,
        local_rank: gpu.ordinal as u32,
        // Not known here and not needed: the caller's plans carry their topology.
        local_world: world,
        master_addr: String::new(),
        master_port: 0,
    };
    Nccl::init(gpu, &info, id)
}

/// A CUDA event of the executor's own, recordable on any stream of the context (the caller's
/// stream included), destroyed on drop.
struct RawEvent(sys::CUevent);

impl RawEvent {
    fn new(gpu: &Gpu) -> Result<Self> {
        gpu.bind()?;
        let ev = drv(
            "cuEventCreate",
            result::event::create(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING),
        )?;
        Ok(RawEvent(ev))
    }

    /// # Safety
    /// `stream` is a live stream of the bound context (0 = the legacy default stream).
    unsafe fn record(&self, stream: sys::CUstream) -> Result<()> {
        // SAFETY: valid event; the caller vouches for the stream.
        drv("cuEventRecord", unsafe {
            result::event::record(self.0, stream)
        })
    }

    /// # Safety
    /// As [`RawEvent::record`].
    unsafe fn wait_on(&self, stream: sys::CUstream) -> Result<()> {
        // SAFETY: valid event; the caller vouches for the stream.
        drv("cuStreamWaitEvent", unsafe {
            result::stream::wait_event(
                stream,
                self.0,
                sys::CUevent_wait_flags::CU_EVENT_WAIT_DEFAULT,
            )
        })
    }

    fn is_done(&self) -> Result<bool> {
        // SAFETY: valid event.
        match unsafe { sys::cuEventQuery(self.0) } {
            sys::cudaError_enum::CUDA_SUCCESS => Ok(true),
            sys::cudaError_enum::CUDA_ERROR_NOT_READY => Ok(false),
            e => Err(CudaError::Driver {
                call: "cuEventQuery",
                err: format!("{e:?}"),
            }),
        }
    }
}

impl Drop for RawEvent {
    fn drop(&mut self) {
        // SAFETY: created by event::create and destroyed once.
        unsafe {
            let _ = result::event::destroy(self.0);
        }
    }
}

/// A caller tensor: device address and size in bytes.
#[derive(Debug, Clone, Copy)]
pub struct DevTensor {
    pub ptr: u64,
    pub bytes: usize,
}

struct Entry {
    key: (u64, usize),
    fwd: Option<Prepared>,
    bwd: Option<Prepared>,
    /// Recorded on the compute stream after everything enqueued for this entry (its programs'
    /// uploads, their runs and the copies out): once it has passed, the entry's buffers are out
    /// of use and it can go without draining the streams.
    done: Option<RawEvent>,
}

/// One rank's executor inside a framework process.
pub struct ExternalExecutor {
    pub gpu: Gpu,
    pub nccl: Option<Nccl>,
    kernels: HashMap<(u32, u32), Rc<Kernels>>,
    /// Most recently used last.
    cache: Vec<Entry>,
    capacity: usize,
    in_ev: RawEvent,
    out_ev: RawEvent,
    /// Wait for each program (polling NCCL errors, within the watchdog's deadline) before
    /// returning.
    pub blocking: bool,
    /// See [`ExternalExecutor::host_stats`].
    prepares: u64,
    prepare_s: f64,
    prepare_wait_s: f64,
    evict_s: f64,
}

// SAFETY: the executor's CUDA handles (context, streams, events, modules, device memory) are
// valid on any thread once the context is bound, and every entry point binds it first; the `Rc`s
// of kernels never leave the executor, so moving it moves every clone with it. Callers that share
// it between threads put it behind a lock (PyTorch runs backward on its autograd thread).
unsafe impl Send for ExternalExecutor {}

impl ExternalExecutor {
    /// Opens GPU `device` (the framework's device, primary context) for rank `rank`, with a
    /// watchdog that bounds every blocking step by `timeout`. Join a communicator with
    /// [`comm_from_id`] and store it in `nccl`. `capacity`: prepared plans kept (at least 1).
    pub fn new(device: usize, rank: u32, timeout: Duration, capacity: usize) -> Result<Self> {
        let gpu = Gpu::open(device, Watchdog::new(rank, timeout, OnExpiry::ReturnError))?;
        let in_ev = RawEvent::new(&gpu)?;
        let out_ev = RawEvent::new(&gpu)?;
        Ok(ExternalExecutor {
            gpu,
            nccl: None,
            kernels: HashMap::new(),
            cache: Vec::new(),
            capacity: capacity.max(1),
            in_ev,
            out_ev,
            blocking: false,
            prepares: 0,
            prepare_s: 0.0,
            prepare_wait_s: 0.0,
            evict_s: 0.0,
        })
    }

    /// Prepared plans currently cached.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// Host time spent so far outside the queued GPU work: (programs prepared, seconds preparing
    /// them — lowering, buffer allocation, descriptor upload —, the part of those seconds spent
    /// waiting for the GPU's streams, seconds evicting cached plans — waiting for their own
    /// queued work, freeing buffers). Preparing stalls the caller's thread; the GPU stalls only when the
    /// host work outside the waits outlasts what is queued on it.
    pub fn host_stats(&self) -> (u64, f64, f64, f64) {
        (
            self.prepares,
            self.prepare_s,
            self.prepare_wait_s,
            self.evict_s,
        )
    }

    /// The device-memory pool that serves the programs' buffers: (bytes cached, allocations
    /// served from it, allocations that went to the driver, seconds those spent in the driver).
    pub fn pool_stats(&self) -> Result<(usize, u64, u64, f64)> {
        self.gpu.pool_stats()
    }

    fn kernels(&mut self, model: &ModelShape) -> Result<Rc<Kernels>> {
        let key = (model.head_dim, crate::desc::dtype_code(model.dtype));
        if let Some(k) = self.kernels.get(&key) {
            return Ok(k.clone());
        }
        let k = Rc::new(Kernels::load(&self.gpu, model, TileConfig::from_env()?)?);
        self.kernels.insert(key, k.clone());
        Ok(k)
    }

    /// The cache entry of (fingerprint, rank), most recently used last; evicts the oldest.
    fn entry(&mut self, fingerprint: u64, rank: usize) -> Result<usize> {
        let key = (fingerprint, rank);
        if let Some(i) = self.cache.iter().position(|e| e.key == key) {
            let e = self.cache.remove(i);
            self.cache.push(e);
        } else {
            if self.cache.len() >= self.capacity {
                // Wait until the evicted entry's own work has passed (its buffers may still be
                // in use), not for the streams to drain: work queued since, e.g. the current
                // step's, goes on meanwhile.
                let t0 = std::time::Instant::now();
                if let Some(ev) = &self.cache[0].done {
                    self.wait_event(ev, "evicting a cached plan")?;
                }
                self.cache.remove(0);
                self.evict_s += t0.elapsed().as_secs_f64();
            }
            self.cache.push(Entry {
                key,
                fwd: None,
                bwd: None,
                done: None,
            });
        }
        Ok(self.cache.len() - 1)
    }

    /// Waits until `ev` has passed, polling NCCL's asynchronous error, within the watchdog's
    /// deadline (step `what`).
    fn wait_event(&self, ev: &RawEvent, what: &str) -> Result<()> {
        self.wait_event_within(ev, what, self.gpu.watchdog().timeout())
    }

    /// [`Self::wait_event`] failing after `limit` (or the watchdog's timeout where shorter).
    fn wait_event_within(&self, ev: &RawEvent, what: &str, limit: Duration) -> Result<()> {
        let peers = self.nccl.as_ref().map(|c| c.peers()).unwrap_or_default();
        wait_polling_peers_within(
            self.gpu.watchdog(),
            what,
            &peers,
            self.nccl.as_ref(),
            limit,
            || ev.is_done(),
        )
    }

    /// Records cache entry `ei`'s `done` event on the compute stream (after all work enqueued
    /// for it so far).
    fn mark_done(&mut self, ei: usize) -> Result<()> {
        if self.cache[ei].done.is_none() {
            self.cache[ei].done = Some(RawEvent::new(&self.gpu)?);
        }
        let compute = self.gpu.raw_stream(Stream::Compute);
        let ev = self.cache[ei].done.as_ref().expect("made above");
        // SAFETY: our compute stream.
        unsafe { ev.record(compute) }
    }

    /// Prepares rank `rank`'s forward (`backward` false) or backward program of cache entry
    /// `ei` unless it is there already.
    fn ensure_prepared(
        &mut self,
        ei: usize,
        plan: &ValidatedPlan,
        rank: usize,
        kernels: &Kernels,
        backward: bool,
    ) -> Result<()> {
        let dp = &plan.devices[rank];
        let model = plan.batch.model;
        let slot = if backward {
            &mut self.cache[ei].bwd
        } else {
            &mut self.cache[ei].fwd
        };
        if slot.is_some() {
            return Ok(());
        }
        let prog = if backward { &dp.backward } else { &dp.forward };
        let (t0, w0) = (std::time::Instant::now(), self.gpu.sync_wait_s());
        // Saved buffers of its own: the caller's saved tensors are copied in per call.
        *slot = Some(Prepared::new(
            &self.gpu, kernels, &model, prog, backward, None,
        )?);
        self.prepares += 1;
        self.prepare_s += t0.elapsed().as_secs_f64();
        self.prepare_wait_s += self.gpu.sync_wait_s() - w0;
        self.mark_done(ei)
    }

    /// Prepares rank `rank`'s forward and backward programs of `plan` now, so that the plan's
    /// first calls do not: call it while the GPU is busy with earlier work (e.g. for the next
    /// step's plan, once this step's backward is queued) and the host time is hidden. Waits for
    /// the GPU only to evict a cached plan whose own work has not finished.
    pub fn prepare(&mut self, fingerprint: u64, plan: &ValidatedPlan, rank: usize) -> Result<()> {
        self.check_plan(plan, rank)?;
        self.gpu.bind()?;
        self.check_peers()?;
        let kernels = self.kernels(&plan.batch.model)?;
        let ei = self.entry(fingerprint, rank)?;
        self.ensure_prepared(ei, plan, rank, &kernels, false)?;
        self.ensure_prepared(ei, plan, rank, &kernels, true)
    }

    fn check_peers(&self) -> Result<()> {
        match &self.nccl {
            Some(c) => c.async_error(),
            None => Ok(()),
        }
    }

    fn check_plan(&self, plan: &Plan, rank: usize) -> Result<()> {
        if rank >= plan.devices.len() {
            return Err(CudaError::Unsupported(format!(
                "rank {rank} is out of range for a plan of {} ranks",
                plan.devices.len()
            )));
        }
        if let Some(c) = &self.nccl {
            if c.rank as usize != rank {
                return Err(CudaError::Unsupported(format!(
                    "this process is rank {} of the communicator but was asked to run rank {rank}'s program",
                    c.rank
                )));
            }
        }
        let world = self.nccl.as_ref().map(|c| c.world).unwrap_or(1) as usize;
        if plan.devices.len() != world {
            return Err(CudaError::Unsupported(format!(
                "the plan has {} ranks but the communicator has {world}",
                plan.devices.len()
            )));
        }
        Ok(())
    }

    /// Copies `t` between a caller tensor and the program's buffer on the compute stream.
    ///
    /// # Safety
    /// `x.ptr` must address `x.bytes` bytes of device memory of this GPU that stay valid until
    /// the compute stream has passed this copy.
    unsafe fn copy_io(&self, p: &Prepared, t: IoTensor, x: DevTensor, into: bool) -> Result<()> {
        let i = p
            .io_index(t)
            .ok_or_else(|| CudaError::Unsupported(format!("program has no {t:?} buffer")))?;
        // SAFETY: forwarded caller contract.
        unsafe { p.copy_buffer(&self.gpu, i, x.ptr, x.bytes, into) }
    }

    /// Runs rank `rank`'s forward (`backward` false: inputs Q `[tokens][heads][D]`, KV
    /// `[tokens][kv heads][K|V]`; outputs O in the model dtype, LSE fp32 `[tokens][heads]`) or
    /// backward program (inputs Q, KV, O, LSE, dO; outputs dQ, dKV) between the caller's stream
    /// and back: copies `inputs` into the program's buffers, runs it, copies `outputs` out.
    /// Inputs the program does not declare are not copied (a backward that starts from saved
    /// buffers reads no Q, KV, O or LSE of the caller's).
    ///
    /// `saved`: one tensor per saved buffer of the rank's backward program
    /// ([`dcp_core::plan::Program::saved`], bytes from [`saved_bytes`]), owned by the caller for
    /// one forward/backward pair: the forward copies the buffers out into them, the backward
    /// copies them back in. So many layers' calls can be in flight with one prepared plan.
    ///
    /// # Safety
    /// `stream` is a live CUDA stream of this GPU's primary context (0 = the legacy default
    /// stream); every tensor addresses its stated bytes of this GPU's memory and stays valid
    /// (not freed or reused) until work queued on `stream` after this call has run.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn run(
        &mut self,
        fingerprint: u64,
        plan: &ValidatedPlan,
        rank: usize,
        stream: u64,
        backward: bool,
        inputs: &[(IoTensor, DevTensor)],
        outputs: &[(IoTensor, DevTensor)],
        saved: &[DevTensor],
    ) -> Result<()> {
        self.check_plan(plan, rank)?;
        let saved_bufs = plan.devices[rank].backward.saved();
        if saved.len() != saved_bufs.len() {
            return Err(CudaError::Unsupported(format!(
                "{} saved tensors given, rank {rank}'s backward program saves {} buffers",
                saved.len(),
                saved_bufs.len()
            )));
        }
        self.gpu.bind()?;
        self.check_peers()?;
        let kernels = self.kernels(&plan.batch.model)?;
        let ei = self.entry(fingerprint, rank)?;
        self.ensure_prepared(ei, plan, rank, &kernels, backward)?;
        let e = &self.cache[ei];
        let p = if backward { &e.bwd } else { &e.fwd }
            .as_ref()
            .expect("prepared above");
        let caller = stream as sys::CUstream;
        let compute = self.gpu.raw_stream(Stream::Compute);
        // SAFETY: the caller's stream (caller contract) and our compute stream, same context.
        unsafe {
            self.in_ev.record(caller)?;
            self.in_ev.wait_on(compute)?;
        }
        for &(t, x) in inputs {
            if p.io_index(t).is_none() {
                continue;
            }
            // SAFETY: forwarded caller contract.
            unsafe { self.copy_io(p, t, x, true)? };
        }
        if backward {
            for (&(i, _), x) in saved_bufs.iter().zip(saved) {
                // SAFETY: forwarded caller contract.
                unsafe { p.copy_buffer(&self.gpu, i as usize, x.ptr, x.bytes, true)? };
            }
        }
        p.enqueue(&self.gpu, &kernels, self.nccl.as_ref())?;
        for &(t, x) in outputs {
            // SAFETY: forwarded caller contract.
            unsafe { self.copy_io(p, t, x, false)? };
        }
        if !backward {
            for (&(_, j), x) in saved_bufs.iter().zip(saved) {
                // SAFETY: forwarded caller contract.
                unsafe { p.copy_buffer(&self.gpu, j as usize, x.ptr, x.bytes, false)? };
            }
        }
        // SAFETY: as above.
        unsafe {
            self.out_ev.record(compute)?;
            self.out_ev.wait_on(caller)?;
        }
        self.mark_done(ei)?;
        if self.blocking {
            let e = &self.cache[ei];
            let p = if backward { &e.bwd } else { &e.fwd }
                .as_ref()
                .expect("prepared above");
            p.finish(&self.gpu, self.nccl.as_ref(), "")?;
            self.gpu.sync()?;
        }
        Ok(())
    }

    /// Waits for all of this executor's work, polling NCCL errors, within the watchdog's
    /// deadline (which aborts the communicator and fails with `Stalled`).
    pub fn synchronize(&mut self) -> Result<()> {
        self.synchronize_within(self.gpu.watchdog().timeout())
    }

    /// [`Self::synchronize`] failing with a deadline [`CudaError::Stalled`] when the work is
    /// not done within `limit` (or the executor's timeout, where that is shorter). Like any
    /// stall, that leaves the executor failed: later calls return the same failure.
    pub fn synchronize_within(&mut self, limit: Duration) -> Result<()> {
        self.gpu.bind()?;
        // SAFETY: our compute stream.
        unsafe { self.out_ev.record(self.gpu.raw_stream(Stream::Compute))? };
        self.wait_event_within(&self.out_ev, "dcp attention (synchronize)", limit)
    }
}

impl Drop for ExternalExecutor {
    fn drop(&mut self) {
        let _ = self.gpu.bind();
        let _ = self.gpu.sync();
        self.cache.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_id_or_typed_error() {
        if !nccl_present() {
            assert!(matches!(nccl_unique_id(), Err(CudaError::NoNccl)));
            return;
        }
        assert_eq!(nccl_unique_id().unwrap().len(), 128);
    }

    #[test]
    fn no_driver_is_an_error() {
        if crate::gpu::driver_present() {
            return;
        }
        assert!(matches!(
            ExternalExecutor::new(0, 0, Duration::from_secs(1), 2),
            Err(CudaError::NoDriver)
        ));
    }
}
