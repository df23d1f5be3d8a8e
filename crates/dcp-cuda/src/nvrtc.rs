//! Run-time compilation of the kernels with NVRTC for the device's own architecture.
//!
//! Sources live in `kernels/*.cu(h)` and are embedded with `include_str!`; a module is the
//! concatenation of `common.cuh` (+ `mma.cuh`, + `sm90.cuh` for the Hopper kernels, + `bwd_sm90.cuh`
//! for the two Hopper backward kernels) and one `.cu` file, compiled with `-D` defines
//! (head dim, element type, tile shape) to a CUBIN (`--gpu-architecture=sm_XY[a]`). Compiled
//! images are cached per process by (module, defines, arch).
//!
//! `cuda_bf16.h` comes from `DCP_CUDA_INCLUDE`, else `CUDA_HOME`/`CUDA_PATH`/`/usr/local/cuda*`
//! include directories, else a pip `nvidia/cu13/include` (or `nvidia/cuda_runtime/include`)
//! found next to a `libnvrtc` directory on `LD_LIBRARY_PATH` or in the Python site-packages.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cudarc::nvrtc::sys;

use crate::error::{CudaError, Result};

pub const COMMON: &str = include_str!("../kernels/common.cuh");
pub const MMA: &str = include_str!("../kernels/mma.cuh");
pub const UTIL: &str = include_str!("../kernels/util.cu");
pub const ATTN_FWD: &str = include_str!("../kernels/attn_fwd.cu");
pub const ATTN_BWD: &str = include_str!("../kernels/attn_bwd.cu");
pub const SM90: &str = include_str!("../kernels/sm90.cuh");
/// Tile sizes, switches and step helpers shared by the two sm90 backward kernels.
pub const BWD_SM90: &str = include_str!("../kernels/bwd_sm90.cuh");
pub const ATTN_FWD_SM90: &str = include_str!("../kernels/attn_fwd_sm90.cu");
pub const ATTN_BWD_SM90: &str = include_str!("../kernels/attn_bwd_sm90.cu");
pub const ATTN_BWD_CLUSTER_SM90: &str = include_str!("../kernels/attn_bwd_cluster_sm90.cu");

/// Which source a module is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Util,
    AttnFwd,
    AttnBwd,
    /// The Hopper forward (wgmma, warp specialised); needs `sm_90a`.
    AttnFwdSm90,
    /// The Hopper backward (wgmma, warp specialised); needs `sm_90a`.
    AttnBwdSm90,
    /// The Hopper backward of works two kv tiles wide on 2-CTA clusters ([`crate::cluster`]).
    AttnBwdClusterSm90,
}

impl Source {
    /// The module source. `DCP_CUDA_KERNELS=DIR` reads the files from DIR instead of the
    /// embedded copies (A/B timing of kernel versions with one binary; a missing file falls back
    /// to the embedded one).
    pub fn text(self) -> String {
        let dir = std::env::var_os("DCP_CUDA_KERNELS").map(PathBuf::from);
        let rd = |name: &str, embedded: &str| -> String {
            dir.as_ref()
                .and_then(|d| std::fs::read_to_string(d.join(name)).ok())
                .unwrap_or_else(|| embedded.to_string())
        };
        let (common, mma) = (rd("common.cuh", COMMON), rd("mma.cuh", MMA));
        let body = match self {
            Source::Util => format!("{common}\n{}", rd("util.cu", UTIL)),
            Source::AttnFwd => format!("{common}\n{mma}\n{}", rd("attn_fwd.cu", ATTN_FWD)),
            Source::AttnBwd => format!("{common}\n{mma}\n{}", rd("attn_bwd.cu", ATTN_BWD)),
            Source::AttnFwdSm90 => format!(
                "{common}\n{mma}\n{}\n{}",
                rd("sm90.cuh", SM90),
                rd("attn_fwd_sm90.cu", ATTN_FWD_SM90)
            ),
            Source::AttnBwdSm90 => format!(
                "{common}\n{mma}\n{}\n{}\n{}",
                rd("sm90.cuh", SM90),
                rd("bwd_sm90.cuh", BWD_SM90),
                rd("attn_bwd_sm90.cu", ATTN_BWD_SM90)
            ),
            Source::AttnBwdClusterSm90 => format!(
                "{common}\n{mma}\n{}\n{}\n{}",
                rd("sm90.cuh", SM90),
                rd("bwd_sm90.cuh", BWD_SM90),
                rd("attn_bwd_cluster_sm90.cu", ATTN_BWD_CLUSTER_SM90)
            ),
        };
        body.replace("#pragma once", "")
    }
    pub fn name(self) -> &'static str {
        match self {
            Source::Util => "dcp_util.cu",
            Source::AttnFwd => "dcp_attn_fwd.cu",
            Source::AttnBwd => "dcp_attn_bwd.cu",
            Source::AttnFwdSm90 => "dcp_attn_fwd_sm90.cu",
            Source::AttnBwdSm90 => "dcp_attn_bwd_sm90.cu",
            Source::AttnBwdClusterSm90 => "dcp_attn_bwd_cluster_sm90.cu",
        }
    }
}

/// True when libnvrtc can be loaded (cudarc panics on first use otherwise).
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to dlopen candidate names.
    unsafe { sys::is_culib_present() }
}

fn candidates_from_env() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(p) = std::env::var("DCP_CUDA_INCLUDE") {
        v.extend(std::env::split_paths(&p));
    }
    for var in ["CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"] {
        if let Ok(p) = std::env::var(var) {
            v.push(Path::new(&p).join("include"));
        }
    }
    // pip layouts next to library directories on LD_LIBRARY_PATH (…/nvidia/cu13/lib).
    if let Ok(p) = std::env::var("LD_LIBRARY_PATH") {
        for d in std::env::split_paths(&p) {
            if let Some(parent) = d.parent() {
                v.push(parent.join("include"));
                if let Some(nv) = parent.parent() {
                    v.push(nv.join("cu13/include"));
                    v.push(nv.join("cuda_runtime/include"));
                }
            }
        }
    }
    v.push(PathBuf::from("/usr/local/cuda/include"));
    for ver in ["13.0", "13.1", "13.2", "13"] {
        v.push(PathBuf::from(format!("/usr/local/cuda-{ver}/include")));
        v.push(PathBuf::from(format!(
            "/usr/local/cuda-{ver}/targets/x86_64-linux/include"
        )));
    }
    v.push(PathBuf::from("/usr/include"));
    // Python site-packages (the GPU box's torch venv, common system layouts).
    for base in [
        "/opt/torch/.venv/lib",
        "/usr/local/lib",
        "/usr/lib",
        "/root/.local/lib",
    ] {
        if let Ok(rd) = std::fs::read_dir(base) {
            for e in rd.flatten() {
                let p = e.path();
                for sp in ["site-packages", "dist-packages"] {
                    v.push(p.join(sp).join("nvidia/cu13/include"));
                    v.push(p.join(sp).join("nvidia/cuda_runtime/include"));
                }
            }
        }
    }
    v
}

/// The include directory holding `cuda_bf16.h`.
pub fn include_dir() -> Result<PathBuf> {
    static DIR: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        let c = candidates_from_env();
        c.iter()
            .find(|d| d.join("cuda_bf16.h").is_file())
            .cloned()
            .ok_or_else(|| {
                c.iter()
                    .take(8)
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
    })
    .clone()
    .map_err(CudaError::NoHeaders)
}

/// `sm_90a` for compute capability 9.0 (Hopper's arch-specific features), `sm_XY` otherwise.
pub fn arch_for(cc: (i32, i32)) -> String {
    if cc.0 == 9 && cc.1 == 0 {
        "sm_90a".to_string()
    } else {
        format!("sm_{}{}", cc.0, cc.1)
    }
}

fn nvrtc_err(call: &'static str, r: sys::nvrtcResult) -> Result<()> {
    if r == sys::nvrtcResult::NVRTC_SUCCESS {
        Ok(())
    } else {
        Err(CudaError::Compile {
            name: call.to_string(),
            options: vec![],
            log: format!("{r:?}"),
        })
    }
}

/// A compiled image and the compiler's log (ptxas resource usage when asked for).
#[derive(Debug, Clone)]
pub struct Compiled {
    pub cubin: Vec<u8>,
    pub log: String,
}

/// Compiles `src` with `defines` for `arch` to a CUBIN (cached per process).
pub fn compile(src: Source, defines: &[(String, String)], arch: &str) -> Result<Compiled> {
    static CACHE: OnceLock<Mutex<HashMap<String, Compiled>>> = OnceLock::new();
    let key = format!("{src:?}|{defines:?}|{arch}");
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(c) = cache.lock().expect("cache lock").get(&key) {
        return Ok(c.clone());
    }
    if !nvrtc_present() {
        return Err(CudaError::NoNvrtc);
    }
    let inc = include_dir()?;
    let mut options: Vec<String> = vec![
        format!("--gpu-architecture={arch}"),
        format!("-I{}", inc.display()),
        "-std=c++17".into(),
        "-lineinfo".into(),
        "--ptxas-options=-v".into(),
    ];
    for (k, v) in defines {
        options.push(format!("-D{k}={v}"));
    }
    let text = CString::new(src.text()).expect("kernel sources have no NUL");
    let name = CString::new(src.name()).expect("no NUL");
    let mut prog: sys::nvrtcProgram = std::ptr::null_mut();
    // SAFETY: plain NVRTC calls with valid C strings; the program is destroyed below.
    unsafe {
        nvrtc_err(
            "nvrtcCreateProgram",
            sys::nvrtcCreateProgram(
                &mut prog,
                text.as_ptr(),
                name.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            ),
        )?;
        let copts: Vec<CString> = options
            .iter()
            .map(|o| CString::new(o.as_str()).expect("no NUL"))
            .collect();
        let ptrs: Vec<*const std::ffi::c_char> = copts.iter().map(|c| c.as_ptr()).collect();
        let r = sys::nvrtcCompileProgram(prog, ptrs.len() as i32, ptrs.as_ptr());
        let mut n = 0usize;
        sys::nvrtcGetProgramLogSize(prog, &mut n);
        let mut log = vec![0u8; n.max(1)];
        sys::nvrtcGetProgramLog(prog, log.as_mut_ptr() as *mut std::ffi::c_char);
        let log = CStr::from_bytes_until_nul(&log)
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_default();
        if r != sys::nvrtcResult::NVRTC_SUCCESS {
            sys::nvrtcDestroyProgram(&mut prog);
            return Err(CudaError::Compile {
                name: src.name().into(),
                options,
                log,
            });
        }
        let mut size = 0usize;
        nvrtc_err("nvrtcGetCUBINSize", sys::nvrtcGetCUBINSize(prog, &mut size))?;
        let mut cubin = vec![0u8; size];
        nvrtc_err(
            "nvrtcGetCUBIN",
            sys::nvrtcGetCUBIN(prog, cubin.as_mut_ptr() as *mut std::ffi::c_char),
        )?;
        sys::nvrtcDestroyProgram(&mut prog);
        let c = Compiled { cubin, log };
        cache.lock().expect("cache lock").insert(key, c.clone());
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Programmatic dependent launch (`Gpu::launch`, kernels/common.cuh): every kernel of the
    /// sources that declare it is declared (`DCP_PDL_KERNEL(name)` right before it), and its
    /// body calls `pdl_wait()` before any `return` and before any global access other than the
    /// shared-memory setup, i.e. before its first `__syncthreads`, cluster barrier or loop; the
    /// forward kernels declare nothing (launched plainly).
    #[test]
    fn pdl_kernels_wait_first() {
        let declared = |text: &str| -> Vec<String> {
            text.match_indices("DCP_PDL_KERNEL(")
                .filter(|(i, _)| !text[..*i].ends_with("#define "))
                .map(|(i, m)| {
                    let rest = &text[i + m.len()..];
                    rest[..rest.find(')').expect("closing parenthesis")].to_string()
                })
                .collect()
        };
        for (file, text, n) in [
            ("util.cu", UTIL, 8),
            ("attn_bwd_sm90.cu", ATTN_BWD_SM90, 1),
            ("attn_bwd_cluster_sm90.cu", ATTN_BWD_CLUSTER_SM90, 1),
        ] {
            let kernels: Vec<&str> = text.split("extern \"C\" __global__").skip(1).collect();
            assert_eq!(kernels.len(), n, "{file}: kernels");
            let names = declared(text);
            assert_eq!(names.len(), n, "{file}: DCP_PDL_KERNEL declarations");
            for (body, name) in kernels.iter().zip(&names) {
                let open = body.find(&format!("{name}(")).unwrap_or_else(|| {
                    panic!("{file}: DCP_PDL_KERNEL({name}) not right before its kernel")
                });
                let body = &body[open..];
                let wait = body
                    .find("pdl_wait();")
                    .unwrap_or_else(|| panic!("{file}: {name} never calls pdl_wait"));
                if file == "util.cu" {
                    // The elementwise kernels wait first thing.
                    let first = body[body.find('{').expect("body") + 1..].trim_start();
                    assert!(
                        first.starts_with("pdl_wait();"),
                        "{file}: {name} does something before pdl_wait"
                    );
                }
                for early in [
                    "return;",
                    "__syncthreads",
                    "cluster_sync_all",
                    "sched[",
                    "tasks[",
                    "works[",
                    "ld_",
                    "cp_async",
                    "tma",
                ] {
                    if let Some(at) = body.find(early) {
                        assert!(wait < at, "{file}: {name} has `{early}` before pdl_wait");
                    }
                }
            }
        }
        for (file, text) in [
            ("attn_fwd_sm90.cu", ATTN_FWD_SM90),
            ("attn_fwd.cu", ATTN_FWD),
            ("attn_bwd.cu", ATTN_BWD),
        ] {
            assert!(declared(text).is_empty(), "{file} declares PDL kernels");
        }
        assert!(COMMON.contains("#define DCP_PDL_KERNEL(name) extern"));
    }

    /// Compiles every kernel when NVRTC and the headers are present (no GPU needed).
    #[test]
    fn kernels_compile_when_nvrtc_present() {
        if !nvrtc_present() || include_dir().is_err() {
            eprintln!(
                "skipping: NVRTC or cuda_bf16.h not found (set LD_LIBRARY_PATH / DCP_CUDA_INCLUDE)"
            );
            return;
        }
        for (src, defs) in [
            (Source::Util, vec![]),
            (
                Source::AttnFwd,
                vec![("HEAD_DIM".to_string(), "128".to_string())],
            ),
            (
                Source::AttnBwd,
                vec![("HEAD_DIM".to_string(), "64".to_string())],
            ),
            (
                Source::AttnFwd,
                vec![
                    ("HEAD_DIM".to_string(), "64".to_string()),
                    ("ELEM_F16".to_string(), "1".to_string()),
                ],
            ),
            (
                Source::AttnFwdSm90,
                vec![("HEAD_DIM".to_string(), "128".to_string())],
            ),
            (
                Source::AttnBwdSm90,
                vec![("HEAD_DIM".to_string(), "128".to_string())],
            ),
            (
                Source::AttnBwdSm90,
                vec![
                    ("HEAD_DIM".to_string(), "128".to_string()),
                    ("BWD_DQ_CONV".to_string(), "1".to_string()),
                ],
            ),
            (
                Source::AttnBwdSm90,
                vec![
                    ("HEAD_DIM".to_string(), "64".to_string()),
                    ("ELEM_F16".to_string(), "1".to_string()),
                ],
            ),
            (
                Source::AttnFwdSm90,
                vec![
                    ("HEAD_DIM".to_string(), "64".to_string()),
                    ("ELEM_F16".to_string(), "1".to_string()),
                ],
            ),
            // The half-tile kernel as exec.rs compiles it at D 128 (`fwd_half`, with
            // `DCP_CUDA_FWD_HALFBITS`'s FWD_HALFBITS).
            (
                Source::AttnFwdSm90,
                vec![
                    ("HEAD_DIM".to_string(), "128".to_string()),
                    ("FWD_HALF".to_string(), "1".to_string()),
                    ("FWD_HALFBITS".to_string(), "1".to_string()),
                ],
            ),
            // The clustered backward with D clusters (`bwd_cluster_dsm`, CL_DSM), both head dims.
            (
                Source::AttnBwdClusterSm90,
                vec![
                    ("HEAD_DIM".to_string(), "128".to_string()),
                    ("CL_DSM".to_string(), "1".to_string()),
                ],
            ),
            (
                Source::AttnBwdClusterSm90,
                vec![
                    ("HEAD_DIM".to_string(), "64".to_string()),
                    ("ELEM_F16".to_string(), "1".to_string()),
                    ("CL_DSM".to_string(), "1".to_string()),
                ],
            ),
            // The short-task kernel (exec.rs `fwd_short`: FWD_LATEREL, FWD_T2, FWD_KVREUSE).
            (
                Source::AttnFwdSm90,
                vec![
                    ("HEAD_DIM".to_string(), "128".to_string()),
                    ("FWD_LATEREL".to_string(), "1".to_string()),
                ],
            ),
            (
                Source::AttnFwdSm90,
                vec![
                    ("HEAD_DIM".to_string(), "64".to_string()),
                    ("ELEM_F16".to_string(), "1".to_string()),
                    ("FWD_LATEREL".to_string(), "1".to_string()),
                ],
            ),
            // The short-task kernel with its stagger (`DCP_CUDA_FWD_SHORT_PP=2`).
            (
                Source::AttnFwdSm90,
                vec![
                    ("HEAD_DIM".to_string(), "128".to_string()),
                    ("FWD_LATEREL".to_string(), "1".to_string()),
                    ("FWD_PP".to_string(), "1".to_string()),
                    ("FWD_PP_MIN".to_string(), "2".to_string()),
                ],
            ),
            // The one-step short-task kernel at D 64 (`DCP_CUDA_FWD_SHORT_ONE=1`).
            (
                Source::AttnFwdSm90,
                vec![
                    ("HEAD_DIM".to_string(), "64".to_string()),
                    ("FWD_LATEREL".to_string(), "3".to_string()),
                    ("FWD_ONE".to_string(), "1".to_string()),
                ],
            ),
            // ... with `DCP_CUDA_FWD_SHORT_LATEREL=2`.
            (
                Source::AttnFwdSm90,
                vec![
                    ("HEAD_DIM".to_string(), "128".to_string()),
                    ("FWD_LATEREL".to_string(), "2".to_string()),
                    ("FWD_PP".to_string(), "1".to_string()),
                    ("FWD_PP_MIN".to_string(), "2".to_string()),
                ],
            ),
        ] {
            let c = compile(src, &defs, "sm_90a").unwrap_or_else(|e| panic!("{e}"));
            assert!(!c.cubin.is_empty());
        }
    }
}
