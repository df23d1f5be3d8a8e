//! Hardware profiles: the handful of rates the simulator turns into time.
//!
//! A profile is flat JSON so that `dcp calibrate` (the CUDA side) can write one from measurements
//! and users can edit it by hand. Every field has a default (the built-in H100 profile's value);
//! missing and unknown fields are reported as notes, never silently dropped. The schema is
//! documented in `docs/SIMULATOR.md`.
//!
//! Rates mean what the calibration measures:
//! * `attn_fwd_tflops` / `attn_bwd_tflops`: attended-FLOP rate of the attention kernels on a long
//!   causal sequence (32K tokens), forward 4·attended·D per query head, backward 2.5× that. The
//!   simulator charges whole tiles (`tile_q` × `tile_k`) and converts the rate accordingly, so
//!   the measured shape costs exactly what was measured.
//! * `mem_gbps`: achieved HBM bandwidth of copy-like kernels (fill, copy, merge, sum).
//! * `intra_gbps` per GPU and direction inside an NVLink domain; `inter_gbps` per NIC and
//!   direction; `nics_per_node` NICs shared by a node's GPUs (equal to the GPUs per node for one
//!   NIC per GPU).

use serde::{Deserialize, Serialize};

/// Attention FLOPs of the backward pass relative to the forward pass.
pub const BWD_FLOP_FACTOR: f64 = 2.5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    /// Attended TFLOP/s of the forward kernel (4·attended·D per query head).
    pub attn_fwd_tflops: f64,
    /// Attended TFLOP/s of the backward kernel (counting 2.5× the forward FLOPs).
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
    /// Query rows per attention tile (CTA).
    pub tile_q: u32,
    /// Keys per attention tile.
    pub tile_k: u32,
    /// Streaming multiprocessors (how many tiles run at once).
    pub sms: u32,
    /// Whether the numbers come from measurements on real hardware (`dcp calibrate`).
    pub calibrated: bool,
}

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
            tile_q: 128,
            tile_k: 64,
            sms: 132,
            calibrated: false,
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
            tile_q: 128,
            tile_k: 64,
            sms: 108,
            calibrated: false,
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

    /// Ratio of charged tile elements to attended elements on the calibration shape (one 32K
    /// causal sequence): the profile's attended-FLOP rates divided by it give the tile rate.
    pub fn tile_overhead_at_calibration(&self) -> f64 {
        let n = 32768u64;
        let (tq, tk) = (self.tile_q as u64, self.tile_k as u64);
        let mut tiles = 0u64;
        let mut r0 = 0;
        while r0 < n {
            let r1 = (r0 + tq).min(n);
            tiles += r1.div_ceil(tk);
            r0 = r1;
        }
        let attended = n * (n + 1) / 2;
        (tiles * tq * tk) as f64 / attended as f64
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

    #[test]
    fn calibration_overhead_is_small() {
        let o = Profile::h100().tile_overhead_at_calibration();
        assert!(o > 1.0 && o < 1.01, "{o}");
    }
}
