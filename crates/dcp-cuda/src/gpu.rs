//! One GPU: its context, a compute and a communication stream, device memory, events and the
//! compiled kernels. A thin layer over cudarc's driver `result`/`sys` API (raw device pointers,
//! no per-slice event tracking: the executor orders streams itself with events).

use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::sync::Arc;

use cudarc::driver::{result, sys, CudaContext};

use crate::error::{drv, CudaError, Result};
use crate::nvrtc::{self, Source};

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

/// Device memory freed on drop.
#[derive(Debug)]
pub struct DevBuf {
    pub ptr: u64,
    pub bytes: usize,
    ctx: Arc<CudaContext>,
}

impl Drop for DevBuf {
    fn drop(&mut self) {
        if self.ptr != 0 {
            let _ = self.ctx.bind_to_thread();
            // SAFETY: allocated by malloc_sync in this context and freed once.
            unsafe {
                let _ = result::free_sync(self.ptr);
            }
        }
    }
}

/// A CUDA event (timing enabled) destroyed on drop.
#[derive(Debug)]
pub struct Event {
    pub ev: sys::CUevent,
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: created by event::create and destroyed once.
        unsafe {
            let _ = result::event::destroy(self.ev);
        }
    }
}

impl Event {
    pub fn record(&self, stream: sys::CUstream) -> Result<()> {
        // SAFETY: valid event and stream of the current context.
        drv("cuEventRecord", unsafe {
            result::event::record(self.ev, stream)
        })
    }
    /// Milliseconds from `self` to `end` (both recorded and complete).
    pub fn elapsed_ms(&self, end: &Event) -> Result<f32> {
        // SAFETY: both events valid.
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
}

/// Kernel variant key: source + defines.
type KernelKey = (Source, Vec<(String, String)>);

pub struct Gpu {
    pub ctx: Arc<CudaContext>,
    pub ordinal: usize,
    pub cc: (i32, i32),
    pub name: String,
    pub sm_count: i32,
    pub compute: sys::CUstream,
    pub comm: sys::CUstream,
    modules: std::sync::Mutex<HashMap<KernelKey, sys::CUmodule>>,
}

// SAFETY: CUDA handles are usable from any thread once the context is bound.
unsafe impl Send for Gpu {}
unsafe impl Sync for Gpu {}

impl Gpu {
    /// Opens GPU `ordinal` (primary context) with two non-blocking streams.
    pub fn open(ordinal: usize) -> Result<Self> {
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
        let compute = drv(
            "cuStreamCreate",
            result::stream::create(result::stream::StreamKind::NonBlocking),
        )?;
        let comm = drv(
            "cuStreamCreate",
            result::stream::create(result::stream::StreamKind::NonBlocking),
        )?;
        Ok(Gpu {
            ctx,
            ordinal,
            cc,
            name,
            sm_count,
            compute,
            comm,
            modules: Default::default(),
        })
    }

    pub fn bind(&self) -> Result<()> {
        drv("bind", self.ctx.bind_to_thread())
    }

    pub fn arch(&self) -> String {
        nvrtc::arch_for(self.cc)
    }

    pub fn alloc(&self, bytes: usize) -> Result<DevBuf> {
        self.bind()?;
        let ptr = if bytes == 0 {
            0
        } else {
            // SAFETY: plain allocation in the bound context.
            drv("cuMemAlloc", unsafe { result::malloc_sync(bytes.max(16)) })?
        };
        Ok(DevBuf {
            ptr,
            bytes,
            ctx: self.ctx.clone(),
        })
    }

    pub fn upload(&self, dst: u64, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: dst has at least data.len() bytes (callers size buffers from the same data).
        drv("cuMemcpyHtoD", unsafe {
            result::memcpy_htod_sync(dst, data)
        })
    }

    pub fn download(&self, src: u64, out: &mut [u8]) -> Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        self.bind()?;
        self.sync()?;
        // SAFETY: src has at least out.len() bytes.
        drv("cuMemcpyDtoH", unsafe {
            result::memcpy_dtoh_sync(out, src)
        })
    }

    pub fn event(&self) -> Result<Event> {
        self.bind()?;
        let ev = drv(
            "cuEventCreate",
            result::event::create(sys::CUevent_flags::CU_EVENT_DEFAULT),
        )?;
        Ok(Event { ev })
    }

    /// Stream `s` waits for `e`.
    pub fn wait(&self, s: sys::CUstream, e: &Event) -> Result<()> {
        // SAFETY: valid stream and event.
        drv("cuStreamWaitEvent", unsafe {
            result::stream::wait_event(s, e.ev, sys::CUevent_wait_flags::CU_EVENT_WAIT_DEFAULT)
        })
    }

    pub fn sync(&self) -> Result<()> {
        // SAFETY: valid streams.
        unsafe {
            drv(
                "cuStreamSynchronize",
                result::stream::synchronize(self.compute),
            )?;
            drv(
                "cuStreamSynchronize",
                result::stream::synchronize(self.comm),
            )?;
        }
        Ok(())
    }

    /// The kernel `name` of `src` compiled with `defines` (compiled and loaded at first use).
    pub fn kernel(&self, src: Source, defines: &[(String, String)], name: &str) -> Result<Kernel> {
        self.bind()?;
        let key = (src, defines.to_vec());
        let mut mods = self.modules.lock().expect("module lock");
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
        let cname = CString::new(name).expect("no NUL");
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
        Ok(Kernel {
            f,
            regs,
            spill_bytes: spill,
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

    /// Launches `k` on `stream`. `params` point at the argument values.
    pub fn launch(
        &self,
        k: &Kernel,
        grid: u32,
        block: u32,
        smem: u32,
        stream: sys::CUstream,
        params: &mut [*mut c_void],
    ) -> Result<()> {
        if grid == 0 {
            return Ok(());
        }
        // SAFETY: params match the kernel's signature (checked by the callers' construction).
        drv("cuLaunchKernel", unsafe {
            result::launch_kernel(k.f, (grid, 1, 1), (block, 1, 1), smem, stream, params)
        })
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        let _ = self.bind();
        let _ = self.sync();
        // SAFETY: modules and streams created by this Gpu.
        unsafe {
            for m in self.modules.lock().expect("lock").values() {
                let _ = result::module::unload(*m);
            }
            let _ = result::stream::destroy(self.compute);
            let _ = result::stream::destroy(self.comm);
        }
    }
}
