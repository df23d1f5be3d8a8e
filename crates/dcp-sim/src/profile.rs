//! Hardware profiles: the handful of rates the simulator turns into time.
//!
//! A profile is flat JSON so that `dcp calibrate` (the CUDA side) can write one from measurements
//! and users can edit it by hand. Every field has a default (the built-in H100 profile's value);
//! missing and unknown fields are reported as notes, never silently dropped. The schema is
//! documented in `docs/SIMULATOR.md`.
//!
//! Rates mean what the calibration measures:
//! * `attn_fwd_tflops` / `attn_bwd_tflops`: attended-FLOP rate of the attention kernels on a long
//!   causal sequence (32K tokens), forward 4·attended·D per query head, backward `dcp_core::flops::BWD_FLOP_FACTOR` (2.5) × that. The
//!   simulator charges whole tiles (`tile_q` × `tile_k`) and converts the rate accordingly, so
//!   the measured shape costs exactly what was measured.
//! * `mem_gbps`: achieved HBM bandwidth of copy-like kernels (fill, copy, merge, sum).
//! * `intra_gbps` per GPU and direction inside an NVLink domain; `inter_gbps` per NIC and
//!   direction; `nics_per_node` NICs shared by a node's GPUs (equal to the GPUs per node for one
//!   NIC per GPU).
//!
//! A profile is plain data: the kernel model the simulator derives from it
//! ([`crate::cost::KernelModel`]) lives next to it in a [`crate::cost::Hardware`], derived once.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    /// Attended TFLOP/s of the forward kernel (4·attended·D per query head).
    pub attn_fwd_tflops: f64,
    /// Attended TFLOP/s of the backward kernel (counting [`dcp_core::flops::BWD_FLOP_FACTOR`] × the forward FLOPs).
    pub attn_bwd_tflops: f64,
    /// Fixed cost of one kernel launch, µs.
    pub launch_us: f64,
    /// Extra cost per work item of an attention launch (work-list setup), µs.
    pub per_work_us: f64,
    /// Achieved memory bandwidth of copy-like kernels, GB/s.
    pub mem_gbps: f64,
    /// Per-GPU, per-direction bandwidth inside an NVLink domain, GB/s.
    pub intra_gbps: f64,
    pub intra_latency_us: f64,
    /// Per-NIC, per-direction bandwidth across nodes, GB/s.
    pub inter_gbps: f64,
    pub inter_latency_us: f64,
    /// NICs per node; 0 means one per GPU.
    pub nics_per_node: u32,
    /// Query rows per forward CTA (the project's kernel: 64).
    pub tile_q: u32,
    /// Keys per forward key tile (64).
    pub tile_k: u32,
    /// Streaming multiprocessors.
    pub sms: u32,
    /// Whether the numbers come from measurements on real hardware (`dcp calibrate`).
    pub calibrated: bool,
    /// Query rows per backward q tile (64).
    #[serde(default = "d64")]
    pub bwd_tile_q: u32,
    /// Keys per backward CTA (128).
    #[serde(default = "d128")]
    pub bwd_tile_k: u32,
    /// Forward CTAs resident per SM (2: 88 KB of shared memory each).
    #[serde(default = "d2")]
    pub fwd_ctas_per_sm: u32,
    /// Backward CTAs resident per SM (1: 123 KB of shared memory).
    #[serde(default = "d1")]
    pub bwd_ctas_per_sm: u32,
    /// Fixed µs per forward CTA; `None`: fitted on `attn_curve`, else the built-in constant.
    #[serde(default)]
    pub fwd_cta_us: Option<f64>,
    /// Fixed µs per backward CTA (as `fwd_cta_us`).
    #[serde(default)]
    pub bwd_cta_us: Option<f64>,
    /// Cost of a partially masked tile relative to a full one (as `fwd_cta_us`).
    #[serde(default)]
    pub partial_tile_cost: Option<f64>,
    /// Achieved bandwidth of the merge kernel, GB/s (`None`: `mem_gbps`).
    #[serde(default)]
    pub merge_gbps: Option<f64>,
    /// Measured attention kernel times of single sequences (`dcp calibrate`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attn_curve: Vec<AttnPoint>,
    /// Measured NCCL send/recv times inside the NVLink domain by message size.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub p2p_curve: Vec<P2pPoint>,
}

fn d64() -> u32 {
    64
}
fn d128() -> u32 {
    128
}
fn d2() -> u32 {
    2
}
fn d1() -> u32 {
    1
}

/// One point of the calibration's attention curve: one sequence of `len` tokens under `mask` (any
/// [`dcp_core::mask::MaskSpec::parse`] form but explicit ranges: `causal`, `full`,
/// `causal-blockwise`, `lambda:64:4096`, ...), the default model shape (8 query heads, 2 KV
/// heads, head dim 128).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttnPoint {
    pub len: u32,
    pub mask: String,
    pub fwd_ms: f64,
    pub bwd_ms: f64,
}

/// One point of the calibration's NCCL send/recv curve: `bytes` took `us` between two GPUs
/// (the planner's cost model takes the same points, [`dcp_core::cost::CurvePoint`]).
pub use dcp_core::cost::CurvePoint as P2pPoint;

const FIELDS: &[&str] = &[
    "name",
    "attn_fwd_tflops",
    "attn_bwd_tflops",
    "launch_us",
    "per_work_us",
    "mem_gbps",
    "intra_gbps",
    "intra_latency_us",
    "inter_gbps",
    "inter_latency_us",
    "nics_per_node",
    "tile_q",
    "tile_k",
    "sms",
    "calibrated",
    "bwd_tile_q",
    "bwd_tile_k",
    "fwd_ctas_per_sm",
    "bwd_ctas_per_sm",
    "fwd_cta_us",
    "bwd_cta_us",
    "partial_tile_cost",
    "merge_gbps",
    "attn_curve",
    "p2p_curve",
    // Written by `dcp calibrate`, informational here.
    "schema",
    "device",
    "world",
    "arch",
];

/// Names of the built-in profiles.
pub const BUILTIN_PROFILES: &[&str] = &["h100", "a100", "a100-1nic"];

/// Errors loading a profile.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("profile is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("profile must be a JSON object of fields (see docs/SIMULATOR.md)")]
    NotObject,
    #[error("profile field `{field}`: {msg}")]
    Field { field: String, msg: String },
    #[error("reading profile {path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("unknown profile `{0}`: give a JSON file or one of h100, a100, a100-1nic")]
    Unknown(String),
}

impl Default for Profile {
    fn default() -> Self {
        Profile::h100()
    }
}

impl Profile {
    /// Uncalibrated H100 SXM numbers: FA2-class kernels (350 / 324 TFLOP/s at 32K causal,
    /// measured with torch's flash backend), NVLink 277 GiB/s per direction (measured NCCL
    /// send/recv), HBM3 ~3 TB/s, one 400 Gb/s NIC per GPU.
    pub fn h100() -> Self {
        Profile {
            name: "h100-default".into(),
            attn_fwd_tflops: 350.0,
            attn_bwd_tflops: 324.0,
            launch_us: 5.0,
            per_work_us: 0.5,
            mem_gbps: 3000.0,
            intra_gbps: 277.0 * 1.073_741_824,
            intra_latency_us: 10.0,
            inter_gbps: 50.0,
            inter_latency_us: 20.0,
            nics_per_node: 0,
            tile_q: 64,
            tile_k: 64,
            sms: 132,
            calibrated: false,
            bwd_tile_q: 64,
            bwd_tile_k: 128,
            fwd_ctas_per_sm: 2,
            bwd_ctas_per_sm: 1,
            fwd_cta_us: None,
            bwd_cta_us: None,
            partial_tile_cost: None,
            merge_gbps: None,
            attn_curve: Vec::new(),
            p2p_curve: Vec::new(),
        }
    }

    /// A100 (the paper's GPUs), uncalibrated: 312 TFLOP/s bf16 peak, FA2 reaches ~190 forward
    /// and ~165 backward; HBM ~2 TB/s; NVLink 600 GB/s total (300 per direction, ~240 achieved);
    /// p4d-style 4 × 100 Gb/s NICs per node.
    pub fn a100() -> Self {
        Profile {
            name: "a100-default".into(),
            attn_fwd_tflops: 190.0,
            attn_bwd_tflops: 165.0,
            launch_us: 5.0,
            per_work_us: 0.5,
            mem_gbps: 2000.0,
            intra_gbps: 240.0,
            intra_latency_us: 10.0,
            inter_gbps: 12.5,
            inter_latency_us: 25.0,
            nics_per_node: 4,
            sms: 108,
            // 164 KB of shared memory per SM: one 88 KB forward CTA at a time.
            fwd_ctas_per_sm: 1,
            ..Profile::h100()
        }
    }

    /// The paper's microbenchmark cluster: A100s with one 100 Gb/s NIC per node.
    pub fn a100_1nic() -> Self {
        Profile {
            name: "a100-1nic-default".into(),
            nics_per_node: 1,
            ..Profile::a100()
        }
    }

    pub fn builtin(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "h100" | "default" => Some(Profile::h100()),
            "a100" => Some(Profile::a100()),
            "a100-1nic" => Some(Profile::a100_1nic()),
            _ => None,
        }
    }

    /// Parses a profile; returns it with notes on defaulted and ignored fields.
    pub fn from_json(text: &str) -> Result<(Profile, Vec<String>), ProfileError> {
        let v: serde_json::Value = serde_json::from_str(text)?;
        let obj = v.as_object().ok_or(ProfileError::NotObject)?;
        let mut p = Profile::h100();
        p.name = "custom".into();
        // A file is a measurement unless it says otherwise.
        p.calibrated = true;
        let mut notes = Vec::new();
        for key in obj.keys() {
            if !FIELDS.contains(&key.as_str()) {
                notes.push(format!("profile field `{key}` is unknown and was ignored"));
            }
        }
        let num = |f: &str| -> Result<Option<f64>, ProfileError> {
            match obj.get(f) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(x) => match x.as_f64() {
                    Some(n) if n.is_finite() && n >= 0.0 => Ok(Some(n)),
                    _ => Err(ProfileError::Field {
                        field: f.into(),
                        msg: format!("expected a non-negative number, got {x}"),
                    }),
                },
            }
        };
        macro_rules! take {
            ($field:ident, $conv:expr, $positive:expr) => {
                match num(stringify!($field))? {
                    Some(n) => {
                        if $positive && n <= 0.0 {
                            return Err(ProfileError::Field {
                                field: stringify!($field).into(),
                                msg: "must be positive".into(),
                            });
                        }
                        p.$field = $conv(n);
                    }
                    None => notes.push(format!(
                        "profile field `{}` missing: using default {:?}",
                        stringify!($field),
                        p.$field
                    )),
                }
            };
        }
        let f = |n: f64| n;
        let u = |n: f64| n.round() as u32;
        take!(attn_fwd_tflops, f, true);
        take!(attn_bwd_tflops, f, true);
        take!(launch_us, f, false);
        take!(per_work_us, f, false);
        take!(mem_gbps, f, true);
        take!(intra_gbps, f, true);
        take!(intra_latency_us, f, false);
        take!(inter_gbps, f, true);
        take!(inter_latency_us, f, false);
        take!(nics_per_node, u, false);
        // Tile shape and SM count are refinements most profiles leave out: default quietly.
        for (field, slot) in [
            ("tile_q", &mut p.tile_q),
            ("tile_k", &mut p.tile_k),
            ("sms", &mut p.sms),
            ("bwd_tile_q", &mut p.bwd_tile_q),
            ("bwd_tile_k", &mut p.bwd_tile_k),
            ("fwd_ctas_per_sm", &mut p.fwd_ctas_per_sm),
            ("bwd_ctas_per_sm", &mut p.bwd_ctas_per_sm),
        ] {
            if let Some(n) = num(field)? {
                if n < 1.0 {
                    return Err(ProfileError::Field {
                        field: field.into(),
                        msg: "must be at least 1".into(),
                    });
                }
                *slot = n.round() as u32;
            }
        }
        p.fwd_cta_us = num("fwd_cta_us")?;
        p.bwd_cta_us = num("bwd_cta_us")?;
        p.partial_tile_cost = num("partial_tile_cost")?;
        p.merge_gbps = num("merge_gbps")?.filter(|&g| g > 0.0);
        if let Some(v) = obj.get("attn_curve").filter(|v| !v.is_null()) {
            p.attn_curve = serde_json::from_value(v.clone()).map_err(|e| ProfileError::Field {
                field: "attn_curve".into(),
                msg: format!("expected [{{len, mask, fwd_ms, bwd_ms}}, ...]: {e}"),
            })?;
            p.attn_curve.retain(|a| a.len > 0);
            // Any mask dcp runs may be a calibration shape (`dcp calibrate` measures causal and
            // full at every length and sparse masks at the longest); one the fit could not
            // build is an error naming it, not a point dropped.
            for (i, a) in p.attn_curve.iter().enumerate() {
                let bad = |msg: String| ProfileError::Field {
                    field: "attn_curve".into(),
                    msg: format!("point {i} ({} tokens, mask `{}`): {msg}", a.len, a.mask),
                };
                let spec =
                    dcp_core::mask::MaskSpec::parse(&a.mask).map_err(|e| bad(e.to_string()))?;
                if matches!(spec, dcp_core::mask::MaskSpec::Ranges { .. }) {
                    return Err(bad("explicit row ranges are not a calibration shape".into()));
                }
                spec.validate(0, a.len).map_err(|e| bad(e.to_string()))?;
                if !(a.fwd_ms.is_finite() && a.bwd_ms.is_finite()) {
                    return Err(bad("fwd_ms and bwd_ms must be finite".into()));
                }
            }
        }
        if let Some(v) = obj.get("p2p_curve").filter(|v| !v.is_null()) {
            p.p2p_curve = serde_json::from_value(v.clone()).map_err(|e| ProfileError::Field {
                field: "p2p_curve".into(),
                msg: format!("expected [{{bytes, us}}, ...]: {e}"),
            })?;
            p.p2p_curve.retain(|q| q.bytes > 0.0 && q.us > 0.0);
            p.p2p_curve.sort_by(|a, b| a.bytes.total_cmp(&b.bytes));
        }
        match obj.get("name") {
            Some(serde_json::Value::String(s)) => p.name = s.clone(),
            _ => notes.push("profile field `name` missing: using `custom`".into()),
        }
        if let Some(c) = obj.get("calibrated") {
            p.calibrated = c.as_bool().ok_or_else(|| ProfileError::Field {
                field: "calibrated".into(),
                msg: format!("expected true or false, got {c}"),
            })?;
        }
        Ok((p, notes))
    }

    /// A built-in name (`h100`, `a100`, `a100-1nic`) or a JSON file path.
    pub fn load(spec: &str) -> Result<(Profile, Vec<String>), ProfileError> {
        if let Some(p) = Profile::builtin(spec) {
            return Ok((p, Vec::new()));
        }
        let path = std::path::Path::new(spec);
        if !path.exists() {
            return Err(ProfileError::Unknown(spec.into()));
        }
        let text = std::fs::read_to_string(path).map_err(|err| ProfileError::Io {
            path: spec.into(),
            err,
        })?;
        Profile::from_json(&text)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("profiles serialize")
    }

    /// One line saying what the numbers are worth.
    pub fn describe(&self) -> String {
        if self.calibrated {
            format!("profile `{}` (calibrated)", self.name)
        } else {
            format!(
                "profile `{}` (DEFAULT, UNCALIBRATED: absolute times are estimates; ratios are what to read)",
                self.name
            )
        }
    }

    /// NICs per node for a node of `gpus` GPUs.
    pub fn nics_for(&self, gpus: u32) -> u32 {
        if self.nics_per_node == 0 {
            gpus.max(1)
        } else {
            self.nics_per_node
        }
    }

    /// Time (µs) of one NCCL send/recv of `bytes` inside the NVLink domain from `p2p_curve`:
    /// linear between measured sizes, the first point's time below, the last point's rate above.
    pub fn p2p_us(&self, bytes: f64) -> f64 {
        if self.p2p_curve.is_empty() {
            return self.intra_latency_us + bytes / (self.intra_gbps * 1e3);
        }
        dcp_core::cost::curve_us(&self.p2p_curve, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_roundtrip_and_notes() {
        let (p, notes) = Profile::from_json(&Profile::a100().to_json()).unwrap();
        assert_eq!(p, Profile::a100());
        assert!(notes.is_empty(), "{notes:?}");
        let (p, notes) =
            Profile::from_json(r#"{"name": "x", "attn_fwd_tflops": 400, "bogus": 1}"#).unwrap();
        assert_eq!(p.attn_fwd_tflops, 400.0);
        assert_eq!(p.attn_bwd_tflops, Profile::h100().attn_bwd_tflops);
        assert!(p.calibrated);
        assert!(notes.iter().any(|n| n.contains("bogus")));
        assert!(notes.iter().any(|n| n.contains("attn_bwd_tflops")));
        assert!(Profile::from_json(r#"{"mem_gbps": -1}"#).is_err());
        assert!(Profile::from_json(r#"{"mem_gbps": 0}"#).is_err());
        assert!(Profile::from_json("[1]").is_err());
    }

    /// Calibration points may use any mask with its parameters; a mask the fit could not build
    /// is an error naming the point, not a point dropped.
    #[test]
    fn attn_curve_masks_are_checked() {
        let with = |mask: &str, len: u32| {
            Profile::from_json(&format!(
                r#"{{"attn_curve": [{{"len": 8192, "mask": "causal", "fwd_ms": 0.2, "bwd_ms": 0.7}},
                   {{"len": {len}, "mask": "{mask}", "fwd_ms": 0.3, "bwd_ms": 0.9}}]}}"#
            ))
        };
        for mask in [
            "causal-blockwise:256:2",
            "lambda:64:4096",
            "shared-question",
            "full",
        ] {
            let (p, _) = with(mask, 32768).unwrap();
            assert_eq!(p.attn_curve.len(), 2, "{mask}");
            assert_eq!(p.attn_curve[1].mask, mask);
        }
        let err = with("blockwise", 32768).unwrap_err().to_string();
        assert!(
            err.contains("attn_curve") && err.contains("point 1"),
            "{err}"
        );
        assert!(err.contains("`blockwise`"), "{err}");
        // Parameters the mask refuses are refused too.
        let err = with("causal-blockwise:0:2", 4096).unwrap_err().to_string();
        assert!(
            err.contains("point 1") && err.contains("4096 tokens"),
            "{err}"
        );
    }
}
