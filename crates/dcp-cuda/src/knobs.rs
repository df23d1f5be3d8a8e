//! The executor's `DCP_CUDA_*` switches: each parser takes the variable's value (`None` where it
//! is unset), returns the setting or its default, and names the variable and the value in its
//! error. `docs/CUDA.md` lists them with the measurements behind each default; the executor
//! (`exec.rs`) reads the environment and calls these. Generic 0 / 1 switches: [`crate::switch`].

use crate::error::{CudaError, Result};
use crate::switch;

/// [`crate::exec::op_timing_enabled`] on the value of `DCP_CUDA_OP_TIMES`.
pub(crate) fn op_timing_with(v: Option<&str>) -> Result<bool> {
    switch::parse("DCP_CUDA_OP_TIMES", v, false).map_err(CudaError::Unsupported)
}

/// The value of `DCP_CUDA_PARTIAL_FIRST`: whether (forward, backward) launches claim, among tasks
/// of equal length, those with more partial (masked) tiles first. Unset or `bwd` (default since
/// session 36: a full-mask 8 096-token document's backward +11.5 % at D 128, +24 % at D 64, the
/// other shapes within ±1 %; the forward gained nothing): the backward only; `1`: both; `fwd`:
/// the forward only; `0`: neither (longest first alone, as before). Anything else is an error.
pub(crate) fn partial_first_with(v: Option<&str>) -> Result<(bool, bool)> {
    match v.map(str::trim) {
        None | Some("") | Some("bwd") => Ok((false, true)),
        Some("0") => Ok((false, false)),
        Some("1") => Ok((true, true)),
        Some("fwd") => Ok((true, false)),
        Some(o) => Err(CudaError::Unsupported(format!(
            "DCP_CUDA_PARTIAL_FIRST={o}: expected 0, 1, fwd or bwd"
        ))),
    }
}

/// The value of `DCP_CUDA_BWD_OWN_D64`: whether the sm90 backward gives D 64 launches that do not
/// cluster owned dK/dV rows too (a task that alone writes its kv tile's rows stores them, into
/// the converting copy's 16-bit destination where the launch takes that copy over; the float2
/// epilogue honours the task's flags since session 39). Clustered D 64 launches own rows either
/// way. Unset: [`DEFAULT_OWN_D64`] (on since session 39: D 64 backward +9.4 % geomean over ten
/// shapes, 128-token documents +31 %, 512-token causal documents +22 %, causal-blockwise +9 %,
/// none slower, bench/results/gpu-x1-2026-12-01s39/ call 4); `1` / `0`. Anything else is an error.
pub(crate) fn own_d64_with(v: Option<&str>) -> Result<bool> {
    switch::parse("DCP_CUDA_BWD_OWN_D64", v, DEFAULT_OWN_D64).map_err(CudaError::Unsupported)
}

/// The default of `DCP_CUDA_BWD_OWN_D64`.
pub const DEFAULT_OWN_D64: bool = true;

/// Defines for a kernel's variants from `env`, the value of the environment variable `var`
/// (A/B timing in one binary): comma-separated `NAME=VALUE` with NAME one of `names` and VALUE
/// one of `values`; unset or empty: none (the built-in defaults). Anything else is an error
/// naming `var` and the item.
fn variant_defs(
    var: &str,
    env: Option<&str>,
    names: &[&str],
    values: &[&str],
) -> std::result::Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for item in env
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
    {
        match item.split_once('=') {
            Some((n, v)) if names.contains(&n.trim()) && values.contains(&v.trim()) => {
                out.push((n.trim().to_string(), v.trim().to_string()))
            }
            _ => {
                return Err(format!(
                    "{var}: `{item}`: expected NAME={} with NAME one of {}",
                    values.join("|"),
                    names.join(", ")
                ))
            }
        }
    }
    Ok(out)
}

/// Defines for the chain kernel's variants from `env`, the value of `DCP_CUDA_BWD_CHAIN_DEFS`:
/// `NAME=0|1` of the chain kernel's switches (kernels/attn_bwd_sm90.cu `BWD_CHAIN_ST16`; `=0`
/// gives main's chain kernel of before bench/results/kernels-2026-11-29-kb13).
pub(crate) fn chain_variant_defs(
    env: Option<&str>,
) -> std::result::Result<Vec<(String, String)>, String> {
    variant_defs(
        "DCP_CUDA_BWD_CHAIN_DEFS",
        env,
        &["BWD_CHAIN_ST16"],
        &["0", "1"],
    )
}

/// The forward switches of `kernels/attn_fwd_sm90.cu` that `DCP_CUDA_FWD_SHORT_DEFS` may set in
/// the short-task kernel (the host sets none of them; each defaults by head dim in the source).
const FWD_SHORT_VARIANT_NAMES: [&str; 6] = [
    "FWD_FASTDESC",
    "FWD_LAZY",
    "FWD_SPLIT",
    "FWD_NOMAX",
    "FWD_EPRE",
    "FWD_FIRST0",
];

/// Defines for the short-task forward kernel's variants from `env`, the value of
/// `DCP_CUDA_FWD_SHORT_DEFS` (`NAME=0|1|2`, NAME in [`FWD_SHORT_VARIANT_NAMES`]): for timing
/// the switches tuned at D 128 on other head dims (session 33: at D 64 they compile without
/// spills offline, unmeasured). A combination the source rejects fails the kernel's compile
/// with its `#error`.
pub(crate) fn fwd_short_variant_defs(
    env: Option<&str>,
) -> std::result::Result<Vec<(String, String)>, String> {
    variant_defs(
        "DCP_CUDA_FWD_SHORT_DEFS",
        env,
        &FWD_SHORT_VARIANT_NAMES,
        &["0", "1", "2"],
    )
}

/// The D pre-pass grid's cap per SM that `env`, the value of `DCP_CUDA_BWD_DD_CTAS`, sets for
/// every backward launch (A/B timing; 16 = the elementwise cap, 3 = one wave); `None`: unset.
pub(crate) fn dd_ctas_override(env: Option<&str>) -> Result<Option<u32>> {
    match env.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=64).contains(&n) => Ok(Some(n)),
            _ => Err(CudaError::Unsupported(format!(
                "DCP_CUDA_BWD_DD_CTAS={v}: expected CTAs per SM, 1 to 64"
            ))),
        },
    }
}

/// Dynamic shared memory of the sm90 backward: `formula` unless `env`, the value of
/// `DCP_CUDA_BWD_SMEM`, asks for more (A/B timing of kernel variants read through
/// `DCP_CUDA_KERNELS` whose layout needs more than the built-in one; at most 227 KiB).
pub(crate) fn bwd_smem_override(formula: u32, env: Option<&str>) -> Result<u32> {
    match env {
        None => Ok(formula),
        Some(v) => match v.trim().parse::<u32>() {
            Ok(b) if b <= 232_448 => Ok(b.max(formula)),
            _ => Err(CudaError::Unsupported(format!(
                "DCP_CUDA_BWD_SMEM={v}: expected a byte count of at most 232448"
            ))),
        },
    }
}

pub(crate) fn copy_batch_with(v: Option<&str>) -> Result<bool> {
    switch::parse("DCP_CUDA_COPY_BATCH", v, true).map_err(CudaError::Unsupported)
}

/// `DCP_CUDA_BWD_DD_FLAT`: `1` (the default), a backward launch whose works' dO and O rows are
/// one flat run each (`own::dd_flat`) computes D with the flat pass `dcp_bwd_dd_flat` (session
/// 43); `0`: always the tiled `dcp_bwd_dd`. Other values are errors.
pub(crate) fn dd_flat_with(v: Option<&str>) -> Result<bool> {
    switch::parse("DCP_CUDA_BWD_DD_FLAT", v, true).map_err(CudaError::Unsupported)
}

/// `DCP_CUDA_BWD_HALF` (sm90, head dim 128; opt-in): the least share of a backward launch's
/// steps, in percent, that are half steps (`tilemask::bwd_half_bits`: one 64-key half of the kv
/// tile seen by no row of the q tile) for the launch to take the half-step kernel
/// (`attn_bwd_sm90.cu` `BWD_HALF`). Unset, empty or `0`: never (measured: causal-blockwise 32K
/// +-0, lambda -1.7 %, the build's full steps ~3 % slower; bench/results/kernels-2026-11-29-kbb14).
/// Returned as a fraction.
pub(crate) fn bwd_half_with(v: Option<&str>) -> Result<f64> {
    let bad = |o: &str| {
        CudaError::Unsupported(format!(
            "DCP_CUDA_BWD_HALF={o}: expected a share of half steps in percent (0 = off)"
        ))
    };
    match v.map(str::trim) {
        None | Some("") => Ok(0.0),
        Some(o) => match o.parse::<f64>() {
            Ok(x) if (0.0..=100.0).contains(&x) => Ok(x / 100.0),
            _ => Err(bad(o)),
        },
    }
}

/// `DCP_CUDA_FWD_HALFBITS` at head dim `d` (sm90 forward with half tiles): `1` compiles the
/// half-tile kernel with `FWD_HALFBITS` and writes each half tile's per-warpgroup halves
/// ([`crate::tilemask::fwd_half_bits`]) into its tile word, so the kernel's half step issues its S
/// without first ORing the warpgroup's mask words; `0` off; unset or empty (the default): on at
/// D 128 (measured with `FWD_LATEREL 2` in the half kernel and `FWD_FIRST0`: causal-blockwise
/// +2.0 %, alone +1.1 %; bench/results/kernels-2026-11-29-kf17), off at D 64 (not measured there,
/// where the half kernel is opt-in); anything else is an error naming the value.
pub(crate) fn fwd_halfbits_with(v: Option<&str>, d: u32) -> Result<bool> {
    switch::parse("DCP_CUDA_FWD_HALFBITS", v, d == 128).map_err(CudaError::Unsupported)
}

/// `DCP_CUDA_FWD_HALF` at head dim `d`: `1` puts each sm90 forward task's half tiles first,
/// gives the kernel their count in `TaskDesc.pad`, and launches the half-tile kernel
/// (`attn_fwd_sm90.cu` `FWD_HALF`) where a launch has any; `0` leaves the lists in key order, the
/// counts 0 and the plain kernel; unset or empty (the default): `1` at D 128 and D 64, `0` at
/// other head dims (measured at D 128: causal 32K +6.5 %, shared-question +7.8 %, blockwise
/// +2.8 %, packed +1.8 %, lambda −3.9 %: bench/results/gpu-x1-2026-11-29s11/; at D 64 off until
/// session 40, for lambda's −5 % (session 11) and −6.4 % (session 34, `gpu-x1-2026-12-01s34/`);
/// since session 40 on, with `DCP_CUDA_FWD_HALF_MAX` 2.5 there, which keeps lambda off it:
/// causal 32K +5.3 %, shared-question +6.9 %, causal 512-token documents +4.4 %, packed +4.4 %,
/// lambda and blockwise ±1 %, `gpu-x1-2026-12-02s40/`); anything else is an error naming the
/// value.
pub(crate) fn fwd_half_with(v: Option<&str>, d: u32) -> Result<bool> {
    switch::parse("DCP_CUDA_FWD_HALF", v, d == 128 || d == 64).map_err(CudaError::Unsupported)
}

/// `DCP_CUDA_FWD_SHORT` at head dim `d`: the largest mean number of tiles per task of a forward
/// launch (without half tiles) that takes the short-task kernel (`attn_fwd_sm90.cu`
/// `FWD_LATEREL 1`); `0` never. Unset or empty (the default): 3 at D 128; 3 at D 64 since
/// session 40 (`gpu-x1-2026-12-02s40/`, calls 3 and 4: 666 documents of 384 tokens, 3-tile
/// tasks, +3.4 % / +3.6 %, the other shapes within ±1 %), 2 there from session 33
/// (bench/results/gpu-x1-2026-11-30s33, 1x H200, alternated x3: 1000 documents of 256 tokens
/// +4.2 %, 2 000 of 128 +5.3 %, 1 000 causal of 256 +5.2 %, but then 3-tile tasks -1.5 % and
/// tasks of 5 tiles -3.5..-4 %; until then 0 there, measured -9-10 % in session 11 with 2
/// stages, kernels-2026-11-29-kbw11); 0 at other head dims. Anything but a number is an error
/// naming the value.
pub(crate) fn fwd_short_with(v: Option<&str>, d: u32) -> Result<u32> {
    match v.map(str::trim) {
        None | Some("") => Ok(match d {
            128 | 64 => 3,
            _ => 0,
        }),
        Some(o) => o.parse().map_err(|_| {
            CudaError::Unsupported(format!(
                "DCP_CUDA_FWD_SHORT={o}: expected a number of tiles per task (0 = off)"
            ))
        }),
    }
}

/// `DCP_CUDA_FWD_HALF_SHORT`: the largest mean number of tiles per task of a forward launch with
/// half tiles that takes the half-tile kernel built with the short-task kernel's Q release
/// (`FWD_LATEREL 3`); `0` never (every such launch takes the half kernel with its own
/// `FWD_LATEREL 2`). Unset or empty (the default): 5, which takes causal documents up to 1 024
/// tokens (4.5 tiles per task) and leaves causal-blockwise, lambda and long causal launches to
/// the half kernel. Only where the half kernel is on (`DCP_CUDA_FWD_HALF`). Anything but a number
/// is an error naming the value.
pub(crate) fn fwd_half_short_with(v: Option<&str>) -> Result<u32> {
    match v.map(str::trim) {
        None | Some("") => Ok(5),
        Some(o) => o.parse().map_err(|_| {
            CudaError::Unsupported(format!(
                "DCP_CUDA_FWD_HALF_SHORT={o}: expected a number of tiles per task (0 = off)"
            ))
        }),
    }
}

/// `DCP_CUDA_FWD_HALF_MAX`: the largest mean number of half tiles per query tile (each task's
/// list of one q tile, [`crate::tilemask::fwd_half`]) of a forward launch that takes a half-tile
/// kernel at head dim `d`; a launch with more keeps its lists in key order and runs without half
/// steps. A causal q tile has one half tile (its diagonal), a lambda one three (sink, window
/// start, diagonal). Unset or empty: 2.5 at D 64 (session 40, `gpu-x1-2026-12-02s40/` call 4:
/// lambda 0.936× with the half kernel, 1.01× at this limit; shared-question +6.9 % under it, lost
/// at 1.5), no limit elsewhere (D 128's lambda gains with it). Anything but a non-negative
/// number is an error naming the value.
pub(crate) fn fwd_half_max_with(v: Option<&str>, d: u32) -> Result<f64> {
    match v.map(str::trim) {
        None | Some("") => Ok(if d == 64 { 2.5 } else { f64::INFINITY }),
        Some(o) => match o.parse::<f64>() {
            Ok(x) if x >= 0.0 => Ok(x),
            _ => Err(CudaError::Unsupported(format!(
                "DCP_CUDA_FWD_HALF_MAX={o}: expected a non-negative number of half tiles per q tile"
            ))),
        },
    }
}

/// `DCP_CUDA_FWD_SHORT_PP`: the short-task kernel with the one-time stagger of its two consumer
/// warpgroups per task (`attn_fwd_sm90.cu` `FWD_PP 1`) in tasks of at least `MIN` tiles, given as
/// `MIN` or `MIN:AT` (`FWD_PP_AT`, the go point: 2 after the first P V issue, 3 after the second;
/// unset: the kernel's 3). Unset, empty or `0`: off (the kernel without `FWD_PP`, main's). D 128
/// only (the host adds the defines there). Anything else is an error naming the value.
pub(crate) fn fwd_short_pp_with(v: Option<&str>) -> Result<Option<(u32, Option<u32>)>> {
    let bad = |o: &str| {
        CudaError::Unsupported(format!(
            "DCP_CUDA_FWD_SHORT_PP={o}: expected MIN or MIN:AT (tiles per task >= 1, AT 0..3; 0 = off)"
        ))
    };
    match v.map(str::trim) {
        None | Some("") | Some("0") => Ok(None),
        Some(o) => {
            let (min, at) = match o.split_once(':') {
                Some((m, a)) => (m, Some(a)),
                None => (o, None),
            };
            let min: u32 = min.trim().parse().map_err(|_| bad(o))?;
            let at = match at {
                Some(a) => Some(
                    a.trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|a| *a <= 3)
                        .ok_or_else(|| bad(o))?,
                ),
                None => None,
            };
            if min == 0 {
                return Err(bad(o));
            }
            Ok(Some((min, at)))
        }
    }
}

/// `DCP_CUDA_FWD_SHORT_LATEREL`: the short-task kernel's `FWD_LATEREL`. `1`: the O-storing
/// thread's owed Q release is paid after the next task's first tile step; `2`: at the next task's
/// start, before its first step (and so before a `FWD_PP` turn's wait: kernels-2026-11-29-kf20
/// found the turn delaying that release, and with it the next Q load, in every 2-tile task);
/// `3` (unset or empty: the default): 2 in one-tile tasks, 1 in the others. Under 1 a one-tile
/// task's first step is its end, so the next Q load waited a whole task: 2 000 documents of 128
/// tokens ran at 193 TFLOP/s forward under 1 and 323 under 3, with works1000, blocks256, packed
/// and 3-tile tasks within ±0.6 % (kernels-2026-11-30-s29, alternated ×3; 2 cost those -1.6 %).
/// Anything else is an error naming the value.
pub(crate) fn fwd_short_rel_with(v: Option<&str>) -> Result<u32> {
    match v.map(str::trim) {
        None | Some("") | Some("3") => Ok(3),
        Some("1") => Ok(1),
        Some("2") => Ok(2),
        Some(o) => Err(CudaError::Unsupported(format!(
            "DCP_CUDA_FWD_SHORT_LATEREL={o}: expected 1, 2 or 3"
        ))),
    }
}

/// `DCP_CUDA_FWD_SHORT_OMAP`: whether the short-task kernel's launches get O tensor maps (`1`,
/// unset or empty: the default, the epilogue's tensor store) or none (`0`: the kernel's generic
/// path, 128 threads' 16-byte loads and stores after the warpgroup barrier, no bulk read to wait
/// for). Anything else is an error naming the value.
pub(crate) fn fwd_short_omap_with(v: Option<&str>) -> Result<bool> {
    switch::parse("DCP_CUDA_FWD_SHORT_OMAP", v, true).map_err(CudaError::Unsupported)
}

/// `DCP_CUDA_FWD_SHORT_ONE`: whether short-task launches may take the `FWD_ONE` kernel, which
/// runs a task of two full kv tiles as one step (`1`), or every task runs tile by tile (`0`).
/// Unset or empty: on at D 128 (works1000 +2.1 %, bench/results/kernels-2026-11-30-s27) and at
/// D 64 (works1000 +6.5 %, other shapes within noise once only launches of mostly such tasks
/// take it: bench/results/gpu-x1-2026-12-01s34), off at other head dims; `1` there is an error
/// (the one step is written for D 64 and 128), as is anything but `0` or `1`.
pub(crate) fn fwd_short_one_with(v: Option<&str>, d: u32) -> Result<bool> {
    let on = switch::parse("DCP_CUDA_FWD_SHORT_ONE", v, d == 128 || d == 64)
        .map_err(CudaError::Unsupported)?;
    if on && d != 128 && d != 64 {
        return Err(CudaError::Unsupported(format!(
            "DCP_CUDA_FWD_SHORT_ONE=1 at head dim {d}: the one-step short task is written for \
             head dims 64 and 128"
        )));
    }
    Ok(on)
}

/// `DCP_CUDA_FWD_SHORT_ONE_MIN`: the least share of a short-task launch's tasks, in percent,
/// that run as one step (two full kv tiles, `WorkLists::count_fwd_one` in `worklists.rs`) for the launch to
/// take the `FWD_ONE` kernel; `0`: every short-task launch takes it (sessions 27-33 at D 128).
/// Unset or empty: 50. Compiled into every short-task launch at D 64, `FWD_ONE` cost 1 000
/// causal documents of 256 tokens 5 % and 2 000 of 128 tokens 2 % (none of their tasks is two
/// full tiles); at D 128 the choice measured within noise (bench/results/gpu-x1-2026-12-01s34).
/// Anything but a number from 0 to 100 is an error naming the value.
pub(crate) fn fwd_short_one_min_with(v: Option<&str>) -> Result<u32> {
    match v.map(str::trim) {
        None | Some("") => Ok(50),
        Some(o) => match o.parse::<u32>() {
            Ok(p) if p <= 100 => Ok(p),
            _ => Err(CudaError::Unsupported(format!(
                "DCP_CUDA_FWD_SHORT_ONE_MIN={o}: expected a percentage from 0 to 100"
            ))),
        },
    }
}

/// `DCP_CUDA_FWD_L2_MB` / `DCP_CUDA_BWD_L2_MB` (`name`): the byte budget of a window of works
/// whose tasks run together (`WorkLists::order_for_l2` in `worklists.rs`), in MiB; `0`: off (longest first over
/// the whole launch). Unset or empty: `default` bytes. Anything but a number is an error naming
/// the value.
pub(crate) fn l2_budget_with(name: &str, v: Option<&str>, default: u64) -> Result<u64> {
    match v.map(str::trim) {
        None | Some("") => Ok(default),
        Some(o) => o.parse::<u64>().map(|mb| mb << 20).map_err(|_| {
            CudaError::Unsupported(format!("{name}={o}: expected a number of MiB (0 = off)"))
        }),
    }
}

/// `DCP_CUDA_FWD_L2_TAIL` / `DCP_CUDA_BWD_L2_TAIL` (`name`): the share of a launch's tiles, in %,
/// whose works run as one final L2 window (`l2_windows` in `worklists.rs`). Unset or empty: `default` (10 in the
/// forward, 0 in the backward: there a tail of many small documents spans more dQ than the L2
/// holds, packed 120 documents -6 %); at most 100. Anything else is an error naming the value.
pub(crate) fn l2_tail_with(name: &str, v: Option<&str>, default: u32) -> Result<u32> {
    match v.map(str::trim) {
        None | Some("") => Ok(default),
        Some(o) => o.parse::<u32>().ok().filter(|p| *p <= 100).ok_or_else(|| {
            CudaError::Unsupported(format!("{name}={o}: expected a share in % (0-100)"))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_d64_is_parsed_or_refused() {
        assert_eq!(own_d64_with(None).unwrap(), DEFAULT_OWN_D64);
        assert!(own_d64_with(Some("1")).unwrap());
        assert!(!own_d64_with(Some(" 0 ")).unwrap());
        let e = own_d64_with(Some("yes")).unwrap_err().to_string();
        assert!(e.contains("DCP_CUDA_BWD_OWN_D64=yes"), "{e}");
    }
}
