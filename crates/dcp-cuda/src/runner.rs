//! Running plans for benchmarks and checks: the rank's GPU and communicator, deterministic
//! inputs laid out per the plan's layout, forward/backward runs timed with CUDA events, and
//! error measures against a reference (the CPU f64 dense attention for small batches, or the
//! single-device `local` plan run by this same executor for large ones).

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use dcp_core::flops::{attn_bwd_flops, attn_fwd_flops};
use dcp_core::plan::{IoTensor, Plan};
use dcp_core::spec::{BatchSpec, DType};
use dcp_core::validate::ValidatedPlan;
use half::{bf16, f16};
use rayon::prelude::*;

use crate::dist::{Nccl, RankInfo};
use crate::error::{nccl, Result};
use crate::exec::{Kernels, Prepared, TileConfig};
use crate::fault::{Fault, FaultKind, Phase};
use crate::gpu::{Event, Gpu, Stream};
use crate::heartbeat::{Heartbeat, HeartbeatConfig};
use crate::watchdog::{OnExpiry, Watchdog};

/// How a rank reacts to a failed step or peer.
#[derive(Debug, Clone, Copy)]
pub struct RankOptions {
    /// Deadline of every blocking step, and how long a silent peer is tolerated.
    pub timeout: Duration,
    /// Library callers get errors; the CLI exits the process (see [`OnExpiry`]).
    pub on_expiry: OnExpiry,
    /// A fault to inject (normally from `DCP_FAULT`, see [`Fault::from_env`]).
    pub fault: Option<Fault>,
}

impl RankOptions {
    /// For library callers: errors, never a hang, no process exit; the fault from `DCP_FAULT`.
    pub fn library(timeout: Duration) -> Result<Self> {
        Ok(RankOptions {
            timeout,
            on_expiry: OnExpiry::ReturnError,
            fault: Fault::from_env()?,
        })
    }
}

/// This process: its rank, GPU, watchdog, and (world > 1) heartbeat and NCCL communicator.
///
/// Call [`Rank::close`] when done: it tells the peers this rank finished; a rank dropped
/// without it looks to its peers like a rank that exited early.
pub struct Rank {
    pub info: RankInfo,
    // Field order is drop order: the communicator and buffers go before the GPU.
    pub nccl: Option<Nccl>,
    kernels: HashMap<(u32, u32), Rc<Kernels>>,
    scratch: crate::gpu::DevBuf,
    scratch_done: Event,
    pub gpu: Gpu,
    heartbeat: Option<Heartbeat>,
    pub watchdog: Arc<Watchdog>,
    pub timeout: Duration,
    fault: Option<Fault>,
    runs: [u64; 3],
}

impl Rank {
    /// Opens GPU LOCAL_RANK and, when WORLD_SIZE > 1, rendezvous with rank 0 (heartbeat on
    /// the same connections) and the NCCL communicator, each within `opts.timeout`.
    pub fn init(opts: RankOptions) -> Result<Self> {
        let info = RankInfo::from_env()?;
        if let Some(f) = &opts.fault {
            f.check_world(info.world)?;
        }
        let wd = Watchdog::new(info.rank, opts.timeout, opts.on_expiry);
        let mine = if info.rank == 0 && info.world > 1 {
            Some(crate::dist::new_nccl_id()?)
        } else {
            None
        };
        let (id, heartbeat) = crate::dist::join_group(
            &info,
            mine.as_deref(),
            opts.timeout,
            HeartbeatConfig::for_timeout(opts.timeout),
            &wd,
        )?;
        let gpu = Gpu::open(info.local_rank as usize, wd.clone())?;
        if let Some(f) = opts.fault.filter(|f| f.hits(info.rank, Phase::Setup, 0)) {
            f.trigger_process();
        }
        let nccl = if info.world > 1 {
            Some(Nccl::init(&gpu, &info, &id)?)
        } else {
            None
        };
        let scratch = gpu.alloc(1 << 16)?;
        let scratch_done = gpu.event()?;
        let rank = Rank {
            info,
            nccl,
            kernels: HashMap::new(),
            scratch,
            scratch_done,
            gpu,
            heartbeat,
            watchdog: wd,
            timeout: opts.timeout,
            fault: opts.fault,
            runs: [0; 3],
        };
        if let Some(f) = opts
            .fault
            .filter(|f| f.hits(rank.info.rank, Phase::Setup, 0))
        {
            if f.kind == FaultKind::NcclError {
                rank.inject_nccl_error(&f)?;
            }
        }
        Ok(rank)
    }

    /// Finishes cleanly: waits for the GPU, flushes the communicator's operations (both
    /// bounded by the watchdog) and releases it, tells the peers this rank finished, and
    /// releases everything.
    pub fn close(mut self) -> Result<()> {
        self.gpu.sync()?;
        if let Some(n) = self.nccl.take() {
            let peers = self.peers();
            self.watchdog
                .guard("NCCL communicator teardown", &peers, || n.finalize())??;
        }
        if let Some(hb) = self.heartbeat.take() {
            hb.close();
        }
        Ok(())
    }

    /// The other ranks.
    pub fn peers(&self) -> Vec<u32> {
        (0..self.info.world)
            .filter(|&r| r != self.info.rank)
            .collect()
    }

    /// Counts a run of `phase` and performs an injected fault due now. `after_enqueue`: the
    /// program is in flight (process faults fire here); before it, `nccl-error` fires.
    fn fault_point(&mut self, phase: Phase, after_enqueue: bool) -> Result<u64> {
        let i = phase as usize;
        let n = self.runs[i];
        if after_enqueue {
            self.runs[i] += 1;
        }
        if let Some(f) = self.fault.filter(|f| f.hits(self.info.rank, phase, n)) {
            match (f.kind, after_enqueue) {
                (FaultKind::NcclError, false) => self.inject_nccl_error(&f)?,
                (FaultKind::NcclError, true) | (_, false) => {}
                (_, true) => f.trigger_process(),
            }
        }
        Ok(n)
    }

    /// Makes an NCCL call fail (a send to a rank outside the world) and returns its error.
    fn inject_nccl_error(&self, f: &Fault) -> Result<()> {
        let c = self.nccl.as_ref().ok_or_else(|| {
            crate::error::CudaError::Fault("nccl-error needs a communicator".into())
        })?;
        eprintln!("dcp: injected fault {f}: sending to rank {}", c.world);
        let raw = c.raw()?;
        // SAFETY: a one-byte send from our scratch buffer; NCCL rejects the peer before use.
        let r = unsafe {
            cudarc::nccl::result::send(
                self.scratch.device_ptr() as *const std::ffi::c_void,
                1,
                cudarc::nccl::sys::ncclDataType_t::ncclUint8,
                c.world as i32,
                raw,
                self.gpu.raw_stream(Stream::Comm) as _,
            )
        };
        nccl("ncclSend (injected fault)", r)?;
        Err(crate::error::CudaError::Injected(format!(
            "{f}: NCCL accepted a send to a rank outside the world"
        )))
    }

    pub fn kernels(&mut self, model: &dcp_core::spec::ModelShape) -> Result<Rc<Kernels>> {
        let key = (model.head_dim, crate::desc::dtype_code(model.dtype));
        if let Some(k) = self.kernels.get(&key) {
            return Ok(k.clone());
        }
        let k = Rc::new(Kernels::load(&self.gpu, model, TileConfig::from_env()?)?);
        self.kernels.insert(key, k.clone());
        Ok(k)
    }

    /// Element-wise all-reduce (sum or max) of a few f64 over ranks (no-op on one rank), as
    /// step `step`, bounded by the watchdog.
    pub fn allreduce_step(&self, vals: &mut [f64], max: bool, step: &str) -> Result<()> {
        let Some(c) = &self.nccl else { return Ok(()) };
        if vals.len() * 8 > self.scratch.bytes() {
            return Err(crate::error::CudaError::Unsupported(format!(
                "all-reduce of {} values: the scratch buffer holds {}",
                vals.len(),
                self.scratch.bytes() / 8
            )));
        }
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_ne_bytes()).collect();
        self.gpu.upload(&self.scratch, 0, &bytes)?;
        let op = if max {
            cudarc::nccl::sys::ncclRedOp_t::ncclMax
        } else {
            cudarc::nccl::sys::ncclRedOp_t::ncclSum
        };
        let raw = c.raw()?;
        let peers = self.peers();
        let stream = self.gpu.raw_stream(Stream::Comm);
        let ptr = self.scratch.device_ptr();
        self.watchdog.guard(step, &peers, || {
            // SAFETY: in-place all-reduce of `vals.len()` f64 inside our scratch buffer (size
            // checked above), which outlives the wait below.
            unsafe {
                nccl(
                    "ncclAllReduce",
                    cudarc::nccl::result::all_reduce(
                        ptr as *const _,
                        ptr as *mut _,
                        vals.len(),
                        cudarc::nccl::sys::ncclDataType_t::ncclFloat64,
                        op,
                        raw,
                        stream as _,
                    ),
                )
            }
        })??;
        self.gpu.record(&self.scratch_done, Stream::Comm)?;
        self.gpu.watchdog().wait_until(step, &peers, || {
            if self.scratch_done.is_done()? {
                return Ok(true);
            }
            c.async_error().map(|_| false).inspect_err(|_| c.abort())
        })?;
        let mut out = vec![0u8; vals.len() * 8];
        self.gpu.download(&self.scratch, 0, &mut out)?;
        for (v, b) in vals.iter_mut().zip(out.chunks_exact(8)) {
            *v = f64::from_ne_bytes(b.try_into().expect("8 bytes"));
        }
        Ok(())
    }

    /// Element-wise all-reduce (sum or max) of a few f64 over ranks (no-op on one rank).
    pub fn allreduce(&self, vals: &mut [f64], max: bool) -> Result<()> {
        self.allreduce_step(vals, max, "all-reduce of results")
    }

    /// All ranks reach this point before any continues (bounded by the watchdog).
    pub fn barrier(&self) -> Result<()> {
        let mut x = [0.0];
        self.allreduce_step(&mut x, false, "barrier")
    }
}

/// Deterministic input value of tensor `which` (0 = Q, 1 = KV, 2 = dO) at global element `i`.
pub fn input_value(seed: u64, which: u64, i: u64) -> f32 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(which.wrapping_mul(0xD1B5_4A32_D192_ED03))
        .wrapping_add(i.wrapping_mul(0x94D0_49BB_1331_11EB));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let u = (z >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
    let scale = if which == 0 { 2.0 } else { 1.0 };
    (u * 2.0 - 1.0) * scale
}

fn round_to(dt: DType, v: f32) -> f32 {
    match dt {
        DType::Bf16 => bf16::from_f32(v).to_f32(),
        DType::F16 => f16::from_f32(v).to_f32(),
        DType::F32 => v,
    }
}

/// Writes `v` rounded to `dt` into `out` (its size in bytes), little-endian.
fn encode_into(dt: DType, v: f32, out: &mut [u8]) {
    match dt {
        DType::Bf16 => out.copy_from_slice(&bf16::from_f32(v).to_le_bytes()),
        DType::F16 => out.copy_from_slice(&f16::from_f32(v).to_le_bytes()),
        DType::F32 => out.copy_from_slice(&v.to_le_bytes()),
    }
}

#[cfg(test)]
fn encode(dt: DType, v: &[f32]) -> Vec<u8> {
    let size = dt.size() as usize;
    let mut out = vec![0u8; v.len() * size];
    for (x, b) in v.iter().zip(out.chunks_exact_mut(size)) {
        encode_into(dt, *x, b);
    }
    out
}

/// Decodes little-endian `dt` elements of `src` into `out` (as many as `out` holds).
#[inline]
fn decode_slice(dt: DType, src: &[u8], out: &mut [f32]) {
    match dt {
        DType::Bf16 => {
            for (x, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                *x = bf16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        DType::F16 => {
            for (x, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                *x = f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        DType::F32 => {
            for (x, c) in out.iter_mut().zip(src.chunks_exact(4)) {
                *x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
    }
}

/// Decodes little-endian `dt` elements to f32 (in parallel).
fn decode(dt: DType, b: &[u8]) -> Vec<f32> {
    let size = dt.size() as usize;
    let mut out = vec![0f32; b.len() / size];
    const CHUNK: usize = 1 << 16;
    out.par_chunks_mut(CHUNK)
        .zip(b.par_chunks(CHUNK * size))
        .for_each(|(o, src)| decode_slice(dt, src, o));
    out
}

/// Elements per token of a caller tensor.
pub fn row_width(batch: &BatchSpec, t: IoTensor) -> usize {
    let m = batch.model;
    match t {
        IoTensor::Kv | IoTensor::DKv => (m.kv_heads * 2 * m.head_dim) as usize,
        IoTensor::Lse => m.heads as usize,
        _ => (m.heads * m.head_dim) as usize,
    }
}

/// Global token index of every local row of device `dev`.
pub fn local_tokens(plan: &Plan, dev: usize) -> Vec<u64> {
    let offs = plan.batch.seq_offsets();
    plan.devices[dev]
        .layout
        .iter()
        .flat_map(|s| {
            let g0 = offs[s.seq as usize] + s.start as u64;
            g0..g0 + s.len as u64
        })
        .collect()
}

/// Which input stream of [`input_value`] feeds tensor `t` (Q, KV, else dO).
fn input_stream(t: IoTensor) -> u64 {
    match t {
        IoTensor::Q => 0,
        IoTensor::Kv => 1,
        _ => 2,
    }
}

/// Rows per parallel task of the host-side loops (inputs, gathers, comparisons): large enough
/// that a task is worth scheduling, small enough to spread a 131072-token batch over 64 cores.
/// Fixed, so that sums over tasks are added in the same order whatever the thread count.
const ROWS_PER_TASK: usize = 512;

/// Local input tensor `which` for the given global tokens (values rounded to `dt`), made in
/// parallel.
pub fn make_input(batch: &BatchSpec, seed: u64, t: IoTensor, tokens: &[u64]) -> Vec<f32> {
    let w = row_width(batch, t);
    let which = input_stream(t);
    let dt = batch.model.dtype;
    let mut v = vec![0f32; tokens.len() * w];
    v.par_chunks_mut(ROWS_PER_TASK * w.max(1))
        .zip(tokens.par_chunks(ROWS_PER_TASK))
        .for_each(|(out, toks)| {
            for (row, &g) in out.chunks_exact_mut(w.max(1)).zip(toks) {
                let base = g * w as u64;
                for (e, x) in row.iter_mut().enumerate() {
                    *x = round_to(dt, input_value(seed, which, base + e as u64));
                }
            }
        });
    v
}

/// Every input of a batch (Q, KV, dO) for all its tokens in global order, encoded in the
/// batch's element type: made once per batch (in parallel) and gathered for each plan's layout,
/// so the inputs never depend on the planner. The same values as [`make_input`].
pub struct GlobalInputs {
    dtype: DType,
    /// Encoded Q, KV, dO.
    data: [Vec<u8>; 3],
    /// Bytes per token row of each.
    row_bytes: [usize; 3],
}

fn input_slot(t: IoTensor) -> usize {
    input_stream(t) as usize
}

impl GlobalInputs {
    /// Generates the inputs of `batch` from `seed` on the rayon pool.
    pub fn new(batch: &BatchSpec, seed: u64) -> Self {
        let dt = batch.model.dtype;
        let size = dt.size() as usize;
        let tokens = batch.total_tokens() as usize;
        let make = |t: IoTensor| {
            let w = row_width(batch, t);
            let which = input_stream(t);
            let mut out = vec![0u8; tokens * w * size];
            out.par_chunks_mut(ROWS_PER_TASK * w * size)
                .enumerate()
                .for_each(|(c, bytes)| {
                    let first = (c * ROWS_PER_TASK * w) as u64;
                    for (e, b) in bytes.chunks_exact_mut(size).enumerate() {
                        let v = input_value(seed, which, first + e as u64);
                        encode_into(dt, v, b);
                    }
                });
            (out, w * size)
        };
        let (q, qr) = make(IoTensor::Q);
        let (kv, kr) = make(IoTensor::Kv);
        let (d_o, dr) = make(IoTensor::DO);
        GlobalInputs {
            dtype: dt,
            data: [q, kv, d_o],
            row_bytes: [qr, kr, dr],
        }
    }

    /// The encoded global tensor `t` (Q, KV or dO).
    pub fn tensor(&self, t: IoTensor) -> &[u8] {
        &self.data[input_slot(t)]
    }

    /// The rows of `tokens` (global indices, in this order) of tensor `t`, encoded.
    pub fn gather(&self, t: IoTensor, tokens: &[u64]) -> Vec<u8> {
        let mut out = Vec::new();
        self.gather_into(t, tokens, &mut out);
        out
    }

    /// [`GlobalInputs::gather`] into `out`, reusing its memory (a fresh multi-MB buffer costs a
    /// page fault per 4 KiB on first touch, more than the copy itself).
    pub fn gather_into(&self, t: IoTensor, tokens: &[u64], out: &mut Vec<u8>) {
        let (src, rb) = (&self.data[input_slot(t)], self.row_bytes[input_slot(t)]);
        out.resize(tokens.len() * rb, 0);
        if rb == 0 {
            return;
        }
        out.par_chunks_mut(ROWS_PER_TASK * rb)
            .zip(tokens.par_chunks(ROWS_PER_TASK))
            .for_each(|(dst, toks)| {
                for (row, &g) in dst.chunks_exact_mut(rb).zip(toks) {
                    let at = g as usize * rb;
                    row.copy_from_slice(&src[at..at + rb]);
                }
            });
    }

    /// Tensor `t` as f64 (the CPU reference's inputs).
    pub fn to_f64(&self, t: IoTensor) -> Vec<f64> {
        decode(self.dtype, self.tensor(t))
            .into_par_iter()
            .map(|x| x as f64)
            .collect()
    }
}

/// One device's prepared forward and backward programs of a plan.
pub struct PlanRun {
    pub kernels: Rc<Kernels>,
    pub fwd: Prepared,
    pub bwd: Prepared,
    pub dev: usize,
    pub tokens: Vec<u64>,
}

/// Local outputs as f32, rows in the device's layout order.
#[derive(Debug, Clone, Default)]
pub struct LocalOutputs {
    pub o: Vec<f32>,
    pub lse: Vec<f32>,
    pub dq: Vec<f32>,
    pub dkv: Vec<f32>,
}

impl PlanRun {
    /// Prepares device `dev`'s programs of a validated plan (regions are bounds-checked again
    /// while lowering).
    pub fn new(rank: &mut Rank, plan: &ValidatedPlan, dev: usize) -> Result<Self> {
        let model = plan.batch.model;
        let kernels = rank.kernels(&model)?;
        let dp = &plan.devices[dev];
        let fwd = Prepared::new(&rank.gpu, &kernels, &model, &dp.forward, false, None)?;
        // The backward's saved buffers are the forward's: each backward run reads what the
        // forward run before it left (bench-gpu always runs them in that order).
        let bwd = Prepared::new(&rank.gpu, &kernels, &model, &dp.backward, true, Some(&fwd))?;
        Ok(PlanRun {
            kernels,
            fwd,
            bwd,
            dev,
            tokens: local_tokens(plan, dev),
        })
    }

    /// Uploads Q, KV (forward and backward) and dO (backward), generated from `seed`.
    pub fn load_inputs(&self, rank: &Rank, batch: &BatchSpec, seed: u64) -> Result<()> {
        self.load_inputs_from(rank, &GlobalInputs::new(batch, seed))
    }

    /// Uploads this device's rows of Q and KV (forward; the backward program copies them on
    /// the device) and dO (backward) from inputs made once per batch.
    pub fn load_inputs_from(&self, rank: &Rank, inputs: &GlobalInputs) -> Result<()> {
        self.load_inputs_with(rank, inputs, &mut Vec::new())
    }

    /// [`PlanRun::load_inputs_from`] through a host buffer reused across plans.
    pub fn load_inputs_with(
        &self,
        rank: &Rank,
        inputs: &GlobalInputs,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        for t in [IoTensor::Q, IoTensor::Kv] {
            inputs.gather_into(t, &self.tokens, buf);
            self.fwd.upload_io(&rank.gpu, t, buf)?;
            // A backward that starts from the forward's saved buffers may not read them.
            if self.bwd.io_index(t).is_some() {
                self.bwd.copy_io_from(&rank.gpu, &self.fwd, t)?;
            }
        }
        inputs.gather_into(IoTensor::DO, &self.tokens, buf);
        self.bwd.upload_io(&rank.gpu, IoTensor::DO, buf)
    }

    /// Runs the forward program once (a fault injected for this run fires here).
    pub fn run_fwd(&self, rank: &mut Rank) -> Result<f32> {
        rank.fault_point(Phase::Forward, false)?;
        self.fwd
            .enqueue(&rank.gpu, &self.kernels, rank.nccl.as_ref())?;
        let n = rank.fault_point(Phase::Forward, true)?;
        self.fwd
            .finish(&rank.gpu, rank.nccl.as_ref(), &format!(" (run {n})"))
    }

    /// Hands the forward's O and LSE to the backward program (when it reads them: a backward
    /// with saved buffers may read the forward's own copies instead).
    pub fn feed_backward(&self, rank: &Rank) -> Result<()> {
        for t in [IoTensor::O, IoTensor::Lse] {
            if self.bwd.io_index(t).is_some() {
                self.bwd.copy_io_from(&rank.gpu, &self.fwd, t)?;
            }
        }
        Ok(())
    }

    /// Runs the backward program once (a fault injected for this run fires here).
    pub fn run_bwd(&self, rank: &mut Rank) -> Result<f32> {
        rank.fault_point(Phase::Backward, false)?;
        self.bwd
            .enqueue(&rank.gpu, &self.kernels, rank.nccl.as_ref())?;
        let n = rank.fault_point(Phase::Backward, true)?;
        self.bwd
            .finish(&rank.gpu, rank.nccl.as_ref(), &format!(" (run {n})"))
    }

    pub fn outputs(&self, rank: &Rank) -> Result<LocalOutputs> {
        Ok(self.raw_outputs(rank)?.decode())
    }

    /// The outputs as downloaded (encoded), for checks that decode rows as they compare.
    pub fn raw_outputs(&self, rank: &Rank) -> Result<RawOutputs> {
        let g = &rank.gpu;
        let dl = |p: &Prepared, t: IoTensor| -> Result<RawTensor> {
            let i = p.io_index(t).ok_or_else(|| {
                crate::error::CudaError::Unsupported(format!("program has no {t:?} buffer"))
            })?;
            Ok(RawTensor {
                dtype: p.decl(i).dtype,
                bytes: p.download_io(g, t)?,
            })
        };
        Ok(RawOutputs {
            o: dl(&self.fwd, IoTensor::O)?,
            lse: dl(&self.fwd, IoTensor::Lse)?,
            dq: dl(&self.bwd, IoTensor::DQ)?,
            dkv: dl(&self.bwd, IoTensor::DKv)?,
        })
    }
}

/// One encoded output tensor, rows in the device's layout order.
#[derive(Debug, Clone)]
pub struct RawTensor {
    pub dtype: DType,
    pub bytes: Vec<u8>,
}

impl RawTensor {
    /// Encodes f32 values (tests and `bench-gpu --host-only` stand in for a download with it).
    pub fn encode(dtype: DType, v: &[f32]) -> Self {
        let size = dtype.size() as usize;
        let mut bytes = vec![0u8; v.len() * size];
        bytes
            .par_chunks_mut(1 << 16)
            .zip(v.par_chunks((1 << 16) / size))
            .for_each(|(b, x)| {
                for (d, &x) in b.chunks_exact_mut(size).zip(x) {
                    encode_into(dtype, x, d);
                }
            });
        RawTensor { dtype, bytes }
    }

    /// Decodes elements `first..first + out.len()` into `out`.
    #[inline]
    fn decode_into(&self, first: usize, out: &mut [f32]) {
        let size = self.dtype.size() as usize;
        decode_slice(
            self.dtype,
            &self.bytes[first * size..(first + out.len()) * size],
            out,
        );
    }
}

/// Local outputs as downloaded (see [`PlanRun::raw_outputs`]).
#[derive(Debug, Clone)]
pub struct RawOutputs {
    pub o: RawTensor,
    pub lse: RawTensor,
    pub dq: RawTensor,
    pub dkv: RawTensor,
}

impl RawOutputs {
    /// As f32.
    pub fn decode(&self) -> LocalOutputs {
        LocalOutputs {
            o: decode(self.o.dtype, &self.o.bytes),
            lse: decode(self.lse.dtype, &self.lse.bytes),
            dq: decode(self.dq.dtype, &self.dq.bytes),
            dkv: decode(self.dkv.dtype, &self.dkv.bytes),
        }
    }
}

/// Where compared rows come from: decoded f32, or encoded bytes decoded row by row.
#[derive(Clone, Copy)]
enum Got<'a> {
    F32(&'a [f32]),
    Raw(&'a RawTensor),
}

impl Got<'_> {
    fn elements(&self) -> usize {
        match self {
            Got::F32(v) => v.len(),
            Got::Raw(r) => r.bytes.len() / r.dtype.size() as usize,
        }
    }

    /// Elements `first..first + out.len()`.
    #[inline]
    fn read(&self, first: usize, out: &mut [f32]) {
        match self {
            Got::F32(v) => out.copy_from_slice(&v[first..first + out.len()]),
            Got::Raw(r) => r.decode_into(first, out),
        }
    }
}

/// Error accumulators: per tensor Σ(got−ref)², Σref², and count of bad elements (NaN, or −∞
/// mismatch in LSE). Summed over ranks, then [`ErrSums::report`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrSums {
    pub v: [f64; 12],
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ErrReport {
    pub o: f64,
    pub lse: f64,
    pub dq: f64,
    pub dkv: f64,
    pub bad: f64,
    pub pass: bool,
}

pub const TOLERANCE: f64 = 1e-2;

impl ErrSums {
    /// Adds tensor `k`'s errors: `got[i]` against `want(i)`.
    #[cfg(test)]
    fn add(&mut self, k: usize, got: &[f32], want: impl Fn(usize) -> f64, lse: bool) {
        for (i, &g) in got.iter().enumerate() {
            self.add_one(k, g, want(i), lse);
        }
    }

    #[inline]
    fn add_one(&mut self, k: usize, g: f32, r: f64, lse: bool) {
        let g = g as f64;
        if lse && (r == f64::NEG_INFINITY || g == f64::NEG_INFINITY) {
            if r != g {
                self.v[3 * k + 2] += 1.0;
            }
            return;
        }
        if !g.is_finite() || !r.is_finite() {
            self.v[3 * k + 2] += 1.0;
            return;
        }
        self.v[3 * k] += (g - r) * (g - r);
        self.v[3 * k + 1] += r * r;
    }

    /// Tensor `k`, rows of `w` elements: local row i against global row `tokens[i]` of
    /// `reference`. In parallel over fixed chunks of rows whose partial sums are added in chunk
    /// order (the result does not depend on the thread count). Rows of finite values take a
    /// branch-free loop; a row with a non-finite value is redone element by element.
    fn add_rows<R: Copy + Into<f64> + Sync>(
        &mut self,
        k: usize,
        got: Got<'_>,
        tokens: &[u64],
        reference: &[R],
        w: usize,
    ) {
        let lse = k == 1;
        let rows = (got.elements() / w.max(1)).min(tokens.len());
        let parts: Vec<[f64; 3]> = tokens[..rows]
            .par_chunks(ROWS_PER_TASK)
            .enumerate()
            .map(|(c, toks)| {
                let mut acc = [0.0f64; 3];
                let mut row = vec![0f32; w];
                for (j, &tok) in toks.iter().enumerate() {
                    got.read((c * ROWS_PER_TASK + j) * w, &mut row);
                    let r = &reference[tok as usize * w..(tok as usize + 1) * w];
                    let (mut num, mut den, mut fin) = (0.0f64, 0.0f64, true);
                    for (&a, &b) in row.iter().zip(r) {
                        let (a, b) = (a as f64, b.into());
                        fin &= a.is_finite() & b.is_finite();
                        num += (a - b) * (a - b);
                        den += b * b;
                    }
                    if fin {
                        acc[0] += num;
                        acc[1] += den;
                    } else {
                        let mut e = ErrSums::default();
                        for (&a, &b) in row.iter().zip(r) {
                            e.add_one(0, a, b.into(), lse);
                        }
                        acc[0] += e.v[0];
                        acc[1] += e.v[1];
                        acc[2] += e.v[2];
                    }
                }
                acc
            })
            .collect();
        for p in parts {
            for (j, x) in p.into_iter().enumerate() {
                self.v[3 * k + j] += x;
            }
        }
    }

    pub fn report(&self) -> ErrReport {
        let rel = |k: usize| {
            let (n, d) = (self.v[3 * k], self.v[3 * k + 1]);
            if d > 0.0 {
                (n / d).sqrt()
            } else {
                n.sqrt()
            }
        };
        let bad = self.v[2] + self.v[5] + self.v[8] + self.v[11];
        let r = ErrReport {
            o: rel(0),
            lse: rel(1),
            dq: rel(2),
            dkv: rel(3),
            bad,
            pass: false,
        };
        ErrReport {
            pass: bad == 0.0
                && r.o <= TOLERANCE
                && r.lse <= TOLERANCE
                && r.dq <= TOLERANCE
                && r.dkv <= TOLERANCE,
            ..r
        }
    }
}

/// Compares local outputs with a global reference (`o`, `lse`, `dq`, `dkv`: global tensors in
/// token order, f64 or f32), in parallel.
pub fn compare_global<R: Copy + Into<f64> + Sync>(
    batch: &BatchSpec,
    tokens: &[u64],
    got: &LocalOutputs,
    o: &[R],
    lse: &[R],
    dq: &[R],
    dkv: &[R],
) -> ErrSums {
    let mut e = ErrSums::default();
    for (k, t, g, r) in [
        (0, IoTensor::O, &got.o, o),
        (1, IoTensor::Lse, &got.lse, lse),
        (2, IoTensor::DQ, &got.dq, dq),
        (3, IoTensor::DKv, &got.dkv, dkv),
    ] {
        e.add_rows(k, Got::F32(g), tokens, r, row_width(batch, t));
    }
    e
}

/// Global reference outputs in token order, f32: what `bench-gpu --check` compares every plan
/// with (from the CPU f64 reference, or scattered from a single-device `local` run).
#[derive(Debug, Clone, Default)]
pub struct GlobalOutputs {
    pub o: Vec<f32>,
    pub lse: Vec<f32>,
    pub dq: Vec<f32>,
    pub dkv: Vec<f32>,
}

impl GlobalOutputs {
    /// The CPU reference rounded to f32.
    pub fn from_f64(r: &dcp_core::cpu::Outputs) -> Self {
        let f = |v: &[f64]| v.par_iter().map(|&x| x as f32).collect::<Vec<f32>>();
        GlobalOutputs {
            o: f(&r.o),
            lse: f(&r.lse),
            dq: f(&r.dq),
            dkv: f(&r.dkv),
        }
    }

    /// Local outputs of a run that covers every token of `batch` (rows `tokens`), in global
    /// order; rows no device wrote stay NaN (and fail every comparison).
    pub fn scatter(batch: &BatchSpec, tokens: &[u64], out: &LocalOutputs) -> Self {
        let t = batch.total_tokens() as usize;
        let scatter = |tt: IoTensor, v: &[f32]| {
            let w = row_width(batch, tt);
            let mut pos = vec![usize::MAX; t];
            for (i, &tok) in tokens.iter().enumerate() {
                pos[tok as usize] = i;
            }
            let mut g = vec![f32::NAN; t * w];
            g.par_chunks_mut(ROWS_PER_TASK * w)
                .zip(pos.par_chunks(ROWS_PER_TASK))
                .for_each(|(dst, ps)| {
                    for (row, &p) in dst.chunks_exact_mut(w).zip(ps) {
                        if p != usize::MAX {
                            row.copy_from_slice(&v[p * w..(p + 1) * w]);
                        }
                    }
                });
            g
        };
        GlobalOutputs {
            o: scatter(IoTensor::O, &out.o),
            lse: scatter(IoTensor::Lse, &out.lse),
            dq: scatter(IoTensor::DQ, &out.dq),
            dkv: scatter(IoTensor::DKv, &out.dkv),
        }
    }

    /// Local outputs of `tokens` taken from this reference (what a correct plan returns).
    pub fn gather(&self, batch: &BatchSpec, tokens: &[u64]) -> LocalOutputs {
        let g = |tt: IoTensor, v: &[f32]| {
            let w = row_width(batch, tt);
            let mut out = vec![0f32; tokens.len() * w];
            out.par_chunks_mut(ROWS_PER_TASK * w)
                .zip(tokens.par_chunks(ROWS_PER_TASK))
                .for_each(|(dst, toks)| {
                    for (row, &tok) in dst.chunks_exact_mut(w).zip(toks) {
                        let at = tok as usize * w;
                        row.copy_from_slice(&v[at..at + w]);
                    }
                });
            out
        };
        LocalOutputs {
            o: g(IoTensor::O, &self.o),
            lse: g(IoTensor::Lse, &self.lse),
            dq: g(IoTensor::DQ, &self.dq),
            dkv: g(IoTensor::DKv, &self.dkv),
        }
    }

    /// Compares a device's local outputs (rows `tokens`) with this reference.
    pub fn compare(&self, batch: &BatchSpec, tokens: &[u64], got: &LocalOutputs) -> ErrSums {
        compare_global(batch, tokens, got, &self.o, &self.lse, &self.dq, &self.dkv)
    }

    /// [`GlobalOutputs::compare`] on downloaded outputs, decoding rows as it goes (no f32
    /// copy of the outputs).
    pub fn compare_raw(&self, batch: &BatchSpec, tokens: &[u64], got: &RawOutputs) -> ErrSums {
        let mut e = ErrSums::default();
        for (k, t, g, r) in [
            (0, IoTensor::O, &got.o, &self.o),
            (1, IoTensor::Lse, &got.lse, &self.lse),
            (2, IoTensor::DQ, &got.dq, &self.dq),
            (3, IoTensor::DKv, &got.dkv, &self.dkv),
        ] {
            e.add_rows(k, Got::Raw(g), tokens, r, row_width(batch, t));
        }
        e
    }

    /// Downloaded outputs of a run that covers every token of `batch` (rows `tokens`) into
    /// this reference, in global order, reusing its memory; rows no device wrote are NaN.
    pub fn scatter_raw_into(&mut self, batch: &BatchSpec, tokens: &[u64], out: &RawOutputs) {
        let t = batch.total_tokens() as usize;
        let mut pos = vec![usize::MAX; t];
        for (i, &tok) in tokens.iter().enumerate() {
            pos[tok as usize] = i;
        }
        for (tt, dst, src) in [
            (IoTensor::O, &mut self.o, &out.o),
            (IoTensor::Lse, &mut self.lse, &out.lse),
            (IoTensor::DQ, &mut self.dq, &out.dq),
            (IoTensor::DKv, &mut self.dkv, &out.dkv),
        ] {
            let w = row_width(batch, tt);
            dst.resize(t * w, 0.0);
            let got = Got::Raw(src);
            dst.par_chunks_mut(ROWS_PER_TASK * w)
                .zip(pos.par_chunks(ROWS_PER_TASK))
                .for_each(|(d, ps)| {
                    for (row, &p) in d.chunks_exact_mut(w).zip(ps) {
                        if p == usize::MAX {
                            row.fill(f32::NAN);
                        } else {
                            got.read(p * w, row);
                        }
                    }
                });
        }
    }
}

/// The CPU f64 dense reference of the whole batch on the same (rounded) inputs.
pub fn cpu_reference(batch: &BatchSpec, seed: u64) -> dcp_core::cpu::Outputs {
    cpu_reference_of(batch, &GlobalInputs::new(batch, seed))
}

/// [`cpu_reference`] on inputs made once per batch.
pub fn cpu_reference_of(batch: &BatchSpec, inputs: &GlobalInputs) -> dcp_core::cpu::Outputs {
    let x = dcp_core::cpu::Tensors {
        q: inputs.to_f64(IoTensor::Q),
        kv: inputs.to_f64(IoTensor::Kv),
        d_o: inputs.to_f64(IoTensor::DO),
    };
    dcp_core::cpu::dense_reference(batch, &x)
}

/// Median of a non-empty list.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    s[s.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_deterministic_and_spread() {
        let a: Vec<f32> = (0..1000).map(|i| input_value(7, 1, i)).collect();
        let b: Vec<f32> = (0..1000).map(|i| input_value(7, 1, i)).collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|x| (-1.0..1.0).contains(x)));
        let mean = a.iter().sum::<f32>() / 1000.0;
        assert!(mean.abs() < 0.1);
        assert_ne!(input_value(7, 0, 3), input_value(8, 0, 3));
    }

    #[test]
    fn err_sums_flag_nan_and_inf_mismatch() {
        let mut e = ErrSums::default();
        e.add(0, &[1.0, 2.0], |i| [1.0, 2.0][i], false);
        e.add(
            1,
            &[f32::NEG_INFINITY, 0.5],
            |i| [f64::NEG_INFINITY, 0.5][i],
            true,
        );
        assert!(e.report().pass);
        e.add(2, &[f32::NAN], |_| 0.0, false);
        assert!(!e.report().pass);
        let mut e = ErrSums::default();
        e.add(1, &[0.0], |_| f64::NEG_INFINITY, true);
        assert!(!e.report().pass);
    }

    fn small_batch() -> BatchSpec {
        let mut b = BatchSpec::uniform(
            &[700, 1, 333],
            dcp_core::mask::MaskSpec::Causal,
            dcp_core::spec::ModelShape::default(),
            64,
        );
        b.head_block = b.model.kv_heads;
        b
    }

    #[test]
    fn global_inputs_equal_make_input_and_gather_rows() {
        let b = small_batch();
        let all: Vec<u64> = (0..b.total_tokens()).collect();
        let g = GlobalInputs::new(&b, 5);
        let dt = b.model.dtype;
        for t in [IoTensor::Q, IoTensor::Kv, IoTensor::DO] {
            assert_eq!(
                g.tensor(t),
                encode(dt, &make_input(&b, 5, t, &all)),
                "{t:?}"
            );
            // A plan's layout: any order of any rows.
            let toks: Vec<u64> = (0..b.total_tokens()).rev().step_by(3).collect();
            assert_eq!(
                g.gather(t, &toks),
                encode(dt, &make_input(&b, 5, t, &toks)),
                "{t:?}"
            );
        }
        assert_ne!(
            GlobalInputs::new(&b, 6).tensor(IoTensor::Q),
            g.tensor(IoTensor::Q)
        );
    }

    #[test]
    fn reference_scatter_gather_compare() {
        let b = small_batch();
        let n = b.total_tokens();
        let r = cpu_reference(&b, 2);
        let g = GlobalOutputs::from_f64(&r);
        // A device holding every other token, in reverse.
        let toks: Vec<u64> = (0..n).rev().step_by(2).collect();
        let local = g.gather(&b, &toks);
        let e = g.compare(&b, &toks, &local).report();
        assert!(e.pass && e.o == 0.0 && e.dq == 0.0 && e.bad == 0.0, "{e:?}");
        // Same sums as against the f64 reference (up to f32 rounding of the reference).
        let e64 = compare_global(&b, &toks, &local, &r.o, &r.lse, &r.dq, &r.dkv).report();
        assert!(e64.pass && e64.o < 1e-6, "{e64:?}");
        // A wrong value and a NaN are seen.
        let mut bad = local.clone();
        bad.dq[17] += 1.0;
        bad.o[3] = f32::NAN;
        let e = g.compare(&b, &toks, &bad).report();
        assert!(!e.pass && e.bad == 1.0 && e.dq > 0.0, "{e:?}");
        // Scatter of a full cover gives the reference back; missing rows stay NaN.
        let all: Vec<u64> = (0..n).rev().collect();
        let back = GlobalOutputs::scatter(&b, &all, &g.gather(&b, &all));
        assert_eq!(back.dkv, g.dkv);
        let half = GlobalOutputs::scatter(&b, &toks, &local);
        // n is even: token 0 is not among `toks`.
        assert_eq!(n % 2, 0);
        assert!(half.o[..row_width(&b, IoTensor::O)]
            .iter()
            .all(|x| x.is_nan()));
        assert!(half.compare(&b, &all, &g.gather(&b, &all)).report().bad > 0.0);
    }

    #[test]
    fn raw_outputs_compare_and_scatter_like_decoded_ones() {
        let b = small_batch();
        let n = b.total_tokens();
        let g = GlobalOutputs::from_f64(&cpu_reference(&b, 4));
        let toks: Vec<u64> = (0..n).rev().step_by(3).collect();
        let mut local = g.gather(&b, &toks);
        local.dq[5] += 0.5;
        local.lse[2] = f32::NEG_INFINITY;
        let raw = |l: &LocalOutputs, dt: DType| RawOutputs {
            o: RawTensor::encode(dt, &l.o),
            lse: RawTensor::encode(DType::F32, &l.lse),
            dq: RawTensor::encode(dt, &l.dq),
            dkv: RawTensor::encode(dt, &l.dkv),
        };
        // f32 encoding is exact: the same sums as the decoded comparison.
        let r32 = raw(&local, DType::F32);
        assert_eq!(
            g.compare_raw(&b, &toks, &r32).v,
            g.compare(&b, &toks, &local).v
        );
        assert_eq!(r32.decode().dq, local.dq);
        let e = g.compare_raw(&b, &toks, &r32).report();
        assert!(!e.pass && e.bad == 1.0 && e.dq > 0.0, "{e:?}");
        // bf16 rounding of exact outputs stays well inside the tolerance.
        let exact = g.gather(&b, &toks);
        let e = g.compare_raw(&b, &toks, &raw(&exact, DType::Bf16)).report();
        assert!(e.pass && e.o > 0.0 && e.o < 4e-3, "{e:?}");
        // Scatter into a reused buffer: a full cover gives the reference back, twice.
        let all: Vec<u64> = (0..n).rev().collect();
        let full = raw(&g.gather(&b, &all), DType::F32);
        let mut into = GlobalOutputs::default();
        for _ in 0..2 {
            into.scatter_raw_into(&b, &all, &full);
            assert_eq!(into.o, g.o);
            assert_eq!(into.dkv, g.dkv);
        }
        // A partial cover (tokens ≡ 1 mod 3) leaves the missing rows NaN.
        assert_eq!((n - 1) % 3, 1);
        into.scatter_raw_into(&b, &toks, &raw(&exact, DType::F32));
        let w = row_width(&b, IoTensor::O);
        assert!(into.o[..w].iter().all(|x| x.is_nan()));
        assert_eq!(into.o[w..2 * w], g.o[w..2 * w]);
    }

    #[test]
    fn encode_decode_roundtrip() {
        let v = vec![1.5f32, -2.25, 0.0];
        for dt in [DType::Bf16, DType::F16, DType::F32] {
            assert_eq!(decode(dt, &encode(dt, &v)), v);
        }
    }
}

/// One point of the attention throughput curve.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AttnPoint {
    pub len: u32,
    pub mask: String,
    pub attended: u64,
    pub fwd_ms: f64,
    pub bwd_ms: f64,
    pub fwd_tflops: f64,
    pub bwd_tflops: f64,
}

/// One point of the NCCL send/recv curve (both directions at once, ranks 0 ↔ 1).
#[derive(Debug, Clone, serde::Serialize)]
pub struct P2pPoint {
    pub bytes: u64,
    pub us: f64,
    pub gbps: f64,
}

/// The simulator profile written by `dcp calibrate` (schema in docs/CUDA.md).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Profile {
    pub schema: u32,
    /// `<device> x<world>`: the profile's name for the simulator and the planner.
    pub name: String,
    pub device: String,
    pub world: u32,
    pub arch: String,
    pub attn_fwd_tflops: f64,
    pub attn_bwd_tflops: f64,
    pub attn_curve: Vec<AttnPoint>,
    pub launch_us: f64,
    pub mem_gbps: f64,
    pub merge_gbps: f64,
    pub intra_gbps: Option<f64>,
    pub intra_latency_us: Option<f64>,
    pub p2p_curve: Vec<P2pPoint>,
}

fn time_prepared(rank: &mut Rank, ks: &Kernels, p: &Prepared, reps: usize) -> Result<f64> {
    let mut v = Vec::new();
    for i in 0..reps + 1 {
        rank.barrier()?;
        p.enqueue(&rank.gpu, ks, rank.nccl.as_ref())?;
        let ms = p.finish(
            &rank.gpu,
            rank.nccl.as_ref(),
            &format!(" (calibration {i})"),
        )? as f64;
        if i > 0 {
            v.push(ms);
        }
    }
    rank.allreduce(&mut v, true)?;
    Ok(median(&v))
}

fn program(
    bufs: Vec<dcp_core::plan::BufferDecl>,
    instrs: Vec<dcp_core::plan::Instr>,
) -> dcp_core::plan::Program {
    dcp_core::plan::Program {
        buffers: bufs,
        instrs,
    }
}

fn decl(
    name: &str,
    dtype: DType,
    tokens: u32,
    heads: u32,
    width: u32,
) -> dcp_core::plan::BufferDecl {
    dcp_core::plan::BufferDecl {
        name: name.into(),
        role: dcp_core::plan::BufferRole::Scratch,
        dtype,
        tokens,
        heads,
        width,
    }
}

fn all(buf: u32, tokens: u32, heads: u32) -> dcp_core::plan::Region {
    dcp_core::plan::Region {
        buf,
        tok: 0,
        len: tokens,
        head: 0,
        heads,
    }
}

/// Measures kernel throughput, launch overhead, memory and merge bandwidth, and NCCL
/// send/recv latency and bandwidth between ranks 0 and 1.
pub fn calibrate(rank: &mut Rank, lens: &[u32]) -> Result<Profile> {
    use dcp_core::plan::{Dir, FillValue, Instr, P2p};
    let model = dcp_core::spec::ModelShape::default();
    let ks = rank.kernels(&model)?;
    let mut curve = Vec::new();
    // Causal and full at every length; at the longest, also the two sparse masks whose launches
    // are many short tasks with partial tiles and a few long ones that split-K cuts (the
    // simulator's fit needs them to tell per-CTA from per-launch costs), named with their
    // parameters so that the points keep their meaning if the defaults change.
    let longest = lens.iter().copied().max().unwrap_or(0);
    let shapes = lens.iter().flat_map(|&len| {
        let mut m = vec![
            (len, dcp_core::mask::MaskSpec::Causal, "causal".to_string()),
            (len, dcp_core::mask::MaskSpec::Full, "full".to_string()),
        ];
        if len == longest && len >= 4096 {
            let (block, local, sink, window) = (256, 2, 64, 4096);
            m.push((
                len,
                dcp_core::mask::MaskSpec::CausalBlockwise { block, local },
                format!("causal-blockwise:{block}:{local}"),
            ));
            m.push((
                len,
                dcp_core::mask::MaskSpec::Lambda { sink, window },
                format!("lambda:{sink}:{window}"),
            ));
        }
        m
    });
    for (len, mask, name) in shapes {
        let batch = BatchSpec::uniform(&[len], mask.clone(), model, 1024);
        let plan = dcp_core::planners::make_validated_plan(
            "local",
            &batch,
            &dcp_core::spec::Topology::new(1, 1),
            &Default::default(),
        )
        .map_err(|e| crate::error::CudaError::Unsupported(e.to_string()))?;
        let run = PlanRun::new(rank, &plan, 0)?;
        run.load_inputs(rank, &batch, 1)?;
        let fwd = time_prepared_local(rank, &run, false)?;
        run.feed_backward(rank)?;
        let bwd = time_prepared_local(rank, &run, true)?;
        let attended = mask.compile(len).count_all();
        let head_pairs = model.heads as f64 * attended as f64;
        let (fl, bfl) = (
            attn_fwd_flops(head_pairs, model.head_dim),
            attn_bwd_flops(head_pairs, model.head_dim),
        );
        curve.push(AttnPoint {
            len,
            mask: name,
            attended,
            fwd_ms: fwd,
            bwd_ms: bwd,
            fwd_tflops: fl / (fwd * 1e-3) / 1e12,
            bwd_tflops: bfl / (bwd * 1e-3) / 1e12,
        });
    }
    let best = |f: fn(&AttnPoint) -> f64| curve.iter().map(f).fold(0.0, f64::max);
    // Launch overhead: 200 one-element fills.
    let p = program(
        vec![decl("x", DType::F32, 1, 1, 1)],
        (0..200)
            .map(|_| Instr::Fill {
                dst: all(0, 1, 1),
                value: FillValue::Zero,
            })
            .collect(),
    );
    let prep = Prepared::new(&rank.gpu, &ks, &model, &p, false, None)?;
    let launch_us = time_prepared(rank, &ks, &prep, 5)? * 1e3 / 200.0;
    // Memory bandwidth: 1 GiB device copy (read + write counted).
    let toks = 1u32 << 18;
    let p = program(
        vec![
            decl("a", DType::F32, toks, 8, 128),
            decl("b", DType::F32, toks, 8, 128),
        ],
        vec![Instr::Copy {
            src: all(0, toks, 8),
            dst: all(1, toks, 8),
        }],
    );
    let prep = Prepared::new(&rank.gpu, &ks, &model, &p, false, None)?;
    let ms = time_prepared(rank, &ks, &prep, 5)?;
    let mem_gbps = 2.0 * (toks as f64 * 8.0 * 128.0 * 4.0) / (ms * 1e-3) / 1e9;
    // Merge: two fp32 partials of 131072 tokens × 8 heads × 128 merged in place.
    let t = 131072u32;
    let p = program(
        vec![
            decl("o", DType::F32, t, 8, 128),
            decl("l", DType::F32, t, 8, 1),
            decl("o2", DType::F32, t, 8, 128),
            decl("l2", DType::F32, t, 8, 1),
        ],
        vec![Instr::Merge {
            o: all(0, t, 8),
            lse: all(1, t, 8),
            inputs: vec![(all(0, t, 8), all(1, t, 8)), (all(2, t, 8), all(3, t, 8))],
        }],
    );
    let prep = Prepared::new(&rank.gpu, &ks, &model, &p, false, None)?;
    prep.poison(&rank.gpu)?;
    let ms = time_prepared(rank, &ks, &prep, 5)?;
    let merge_gbps = (3.0 * t as f64 * 8.0 * 129.0 * 4.0) / (ms * 1e-3) / 1e9;
    // NCCL send/recv between ranks 0 and 1.
    let mut p2p = Vec::new();
    if rank.info.world >= 2 {
        let me = rank.info.rank;
        for k in (12..=28).step_by(2) {
            let bytes = 1u64 << k;
            let toks = (bytes / 2) as u32;
            let instrs = if me < 2 {
                let peer = 1 - me;
                vec![
                    Instr::Comm {
                        tag: 0,
                        ops: vec![
                            P2p {
                                dir: Dir::Send,
                                peer,
                                region: all(0, toks, 1),
                            },
                            P2p {
                                dir: Dir::Recv,
                                peer,
                                region: all(1, toks, 1),
                            },
                        ],
                    },
                    Instr::Wait { tag: 0 },
                ]
            } else {
                vec![]
            };
            let p = program(
                vec![
                    decl("s", DType::Bf16, toks, 1, 1),
                    decl("r", DType::Bf16, toks, 1, 1),
                ],
                instrs,
            );
            let prep = Prepared::new(&rank.gpu, &ks, &model, &p, false, None)?;
            let ms = time_prepared(rank, &ks, &prep, 10)?;
            p2p.push(P2pPoint {
                bytes,
                us: ms * 1e3,
                gbps: bytes as f64 / (ms * 1e-3) / 1e9,
            });
        }
    }
    Ok(Profile {
        schema: 1,
        name: format!("{} x{}", rank.gpu.name, rank.info.world),
        device: rank.gpu.name.clone(),
        world: rank.info.world,
        arch: rank.gpu.arch(),
        attn_fwd_tflops: best(|p| p.fwd_tflops),
        attn_bwd_tflops: best(|p| p.bwd_tflops),
        attn_curve: curve,
        launch_us,
        mem_gbps,
        merge_gbps,
        intra_gbps: p2p.last().map(|p| p.gbps),
        intra_latency_us: p2p.first().map(|p| p.us),
        p2p_curve: p2p,
    })
}

fn time_prepared_local(rank: &mut Rank, run: &PlanRun, backward: bool) -> Result<f64> {
    let p = if backward { &run.bwd } else { &run.fwd };
    let mut v = Vec::new();
    for i in 0..4 {
        p.enqueue(&rank.gpu, &run.kernels, None)?;
        let ms = p.finish(&rank.gpu, None, &format!(" (calibration {i})"))? as f64;
        if i > 0 {
            v.push(ms);
        }
    }
    rank.allreduce(&mut v, true)?;
    Ok(median(&v))
}
