//! The cluster's network as a hierarchy of levels, and the links a transfer uses.
//!
//! Level 0 is an NVLink domain of `size` GPUs (a node, or a 72-GPU rack-scale domain): every GPU
//! has its own port, `gbps` per direction. Each higher level `k` joins `size` groups of level
//! `k−1`; a group of level `k−1` reaches the rest through `ports` ports of `gbps` each per
//! direction (level 1 = the NICs of a node: `ports` = NICs per node, GPU i of the node uses port
//! ⌊i·ports/gpus⌋). A transfer between two GPUs whose lowest common level is `k ≥ 1` uses, at every
//! level 1..=k, the sender's outgoing port and the receiver's incoming port, and pays level k's
//! latency; a transfer inside a level-0 domain uses the sender's NVLink out port and the
//! receiver's in port. No limit on the number of levels.
//!
//! Textual forms: `8` or `1x72` (one domain), `4x8` (4 nodes of 8 GPUs, NICs from the profile),
//! `2x4x8` (2 pods of 4 nodes; upper levels default to non-blocking with the inter-node rates),
//! or a JSON file `{"levels": [{"size": 8, "gbps": 297, "latency_us": 10},
//! {"size": 4, "gbps": 50, "latency_us": 20, "ports": 8}]}` (innermost level first).

use serde::{Deserialize, Serialize};

use crate::profile::Profile;
use dcp_core::spec::Topology;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Level {
    /// Members per group: GPUs for level 0, groups of the level below otherwise.
    pub size: u32,
    /// Bandwidth per port and direction, GB/s.
    pub gbps: f64,
    pub latency_us: f64,
    /// Ports per group of the level below (ignored at level 0: one per GPU).
    #[serde(default)]
    pub ports: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    pub levels: Vec<Level>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("bad topology `{0}`: expected N, NODESxGPUS (e.g. 4x8), AxBxC, or a JSON file with {{\"levels\": [...]}}")]
    Syntax(String),
    #[error("topology file {path}: {msg}")]
    File { path: String, msg: String },
}

impl Cluster {
    /// Parses a topology string or file, taking link rates from `profile`.
    pub fn parse(spec: &str, profile: &Profile) -> Result<Cluster, ClusterError> {
        let s = spec.trim();
        let path = std::path::Path::new(s);
        if s.ends_with(".json") || (path.is_file() && !s.chars().all(|c| c.is_ascii_digit())) {
            let text = std::fs::read_to_string(path).map_err(|e| ClusterError::File {
                path: s.into(),
                msg: e.to_string(),
            })?;
            let c: Cluster = serde_json::from_str(&text).map_err(|e| ClusterError::File {
                path: s.into(),
                msg: e.to_string(),
            })?;
            c.check().map_err(|msg| ClusterError::File {
                path: s.into(),
                msg,
            })?;
            return Ok(c);
        }
        let dims: Vec<u32> = s
            .split(['x', 'X'])
            .map(|p| p.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| ClusterError::Syntax(spec.into()))?;
        if dims.is_empty() || dims.contains(&0) {
            return Err(ClusterError::Syntax(spec.into()));
        }
        // Innermost first.
        let sizes: Vec<u32> = dims.iter().rev().copied().collect();
        Ok(Cluster::from_sizes(&sizes, profile))
    }

    /// Levels of the given sizes (innermost first) with the profile's rates.
    pub fn from_sizes(sizes: &[u32], profile: &Profile) -> Cluster {
        let gpus = sizes[0];
        let nics = profile.nics_for(gpus);
        let mut levels = vec![Level {
            size: gpus,
            gbps: profile.intra_gbps,
            latency_us: profile.intra_latency_us,
            ports: 0,
        }];
        let mut below_ports = nics;
        for (k, &size) in sizes.iter().enumerate().skip(1) {
            let ports = if k == 1 {
                nics
            } else {
                // Non-blocking: as many uplinks as the group's NICs.
                below_ports * sizes[k - 1]
            };
            levels.push(Level {
                size,
                gbps: profile.inter_gbps,
                latency_us: profile.inter_latency_us,
                ports,
            });
            below_ports = ports;
        }
        Cluster { levels }
    }

    /// The two-level cluster of a core [`Topology`] (its inter bandwidth is per GPU).
    pub fn from_topology(t: &Topology, profile: &Profile) -> Cluster {
        let mut c = Cluster::from_sizes(&[t.gpus_per_node, t.nodes], profile);
        c.levels[0].gbps = t.intra_gbps;
        c.levels[0].latency_us = t.intra_latency_us;
        let ports = c.levels[1].ports.max(1);
        c.levels[1].gbps = t.node_inter_gbps() / ports as f64;
        c.levels[1].latency_us = t.inter_latency_us;
        c
    }

    fn check(&self) -> Result<(), String> {
        if self.levels.is_empty() {
            return Err("needs at least one level".into());
        }
        for (k, l) in self.levels.iter().enumerate() {
            if l.size == 0 {
                return Err(format!("level {k}: size must be at least 1"));
            }
            if !(l.gbps.is_finite()
                && l.gbps > 0.0
                && l.latency_us.is_finite()
                && l.latency_us >= 0.0)
            {
                return Err(format!(
                    "level {k}: gbps must be positive and latency_us non-negative"
                ));
            }
            if k > 0 && l.ports == 0 {
                return Err(format!("level {k}: ports must be at least 1"));
            }
        }
        Ok(())
    }

    /// Overrides the intra-domain bandwidth (GB/s per GPU and direction).
    pub fn set_intra_gbps(&mut self, gbps: f64) {
        self.levels[0].gbps = gbps;
    }

    /// Overrides the inter-node bandwidth, given per GPU (as the CLI's `--inter-gbps`).
    pub fn set_inter_gbps_per_gpu(&mut self, gbps: f64) {
        let gpus = self.levels[0].size as f64;
        if let Some(l) = self.levels.get_mut(1) {
            l.gbps = gbps * gpus / l.ports.max(1) as f64;
        }
    }

    pub fn n_devices(&self) -> u32 {
        self.levels.iter().map(|l| l.size).product()
    }

    pub fn gpus_per_node(&self) -> u32 {
        self.levels[0].size
    }

    /// GPUs per group of level `k` (level −1 = one GPU).
    fn span(&self, k: usize) -> u32 {
        self.levels[..=k].iter().map(|l| l.size).product()
    }

    /// The lowest level at which `a` and `b` share a group.
    pub fn common_level(&self, a: u32, b: u32) -> usize {
        let mut span = 1u32;
        for (k, l) in self.levels.iter().enumerate() {
            span *= l.size;
            if a / span == b / span {
                return k;
            }
        }
        self.levels.len() - 1
    }

    /// The two-level view planners take: nodes = all groups of level 0.
    pub fn core_topology(&self) -> Topology {
        let gpus = self.gpus_per_node();
        let mut t = Topology::new(self.n_devices() / gpus, gpus);
        t.intra_gbps = self.levels[0].gbps;
        t.intra_latency_us = self.levels[0].latency_us;
        if let Some(l) = self.levels.get(1) {
            t.inter_gbps = l.gbps;
            t.nics_per_node = if l.ports == gpus { 0 } else { l.ports };
            t.inter_latency_us = l.latency_us;
        }
        t
    }

    /// Short description, e.g. `4x8 (NVLink 297 GB/s, 8 NICs/node × 50 GB/s)`.
    pub fn describe(&self) -> String {
        let dims: Vec<String> = self
            .levels
            .iter()
            .rev()
            .map(|l| l.size.to_string())
            .collect();
        let mut s = format!(
            "{} (NVLink domain {} GPUs at {:.0} GB/s",
            dims.join("x"),
            self.levels[0].size,
            self.levels[0].gbps
        );
        for (k, l) in self.levels.iter().enumerate().skip(1) {
            s += &format!(
                "; level {k}: {} ports/group × {:.1} GB/s, {:.0} µs",
                l.ports, l.gbps, l.latency_us
            );
        }
        s + ")"
    }
}

/// Link resources (one per port and direction) and each transfer's path over them.
#[derive(Debug, Clone)]
pub struct Links {
    /// Capacity of each link, bytes per µs.
    pub cap: Vec<f64>,
    /// First link id of each level; level 0 has 2 per GPU (out, in).
    base: Vec<usize>,
}

impl Links {
    pub fn new(c: &Cluster) -> Links {
        let n = c.n_devices() as usize;
        let mut cap = vec![c.levels[0].gbps * 1e3; 2 * n];
        let mut base = vec![0];
        for k in 1..c.levels.len() {
            base.push(cap.len());
            let groups = n / c.span(k - 1) as usize;
            let ports = c.levels[k].ports.max(1) as usize;
            cap.extend(std::iter::repeat_n(
                c.levels[k].gbps * 1e3,
                2 * groups * ports,
            ));
        }
        Links { cap, base }
    }

    /// Links used by a transfer from `a` to `b`, and its latency.
    pub fn path(&self, c: &Cluster, a: u32, b: u32, out: &mut Vec<u32>) -> f64 {
        out.clear();
        let k = c.common_level(a, b);
        if k == 0 {
            out.push(2 * a);
            out.push(2 * b + 1);
            return c.levels[0].latency_us;
        }
        for lvl in 1..=k {
            let span = c.span(lvl - 1);
            let ports = c.levels[lvl].ports.max(1);
            let port = |d: u32| {
                let g = d / span;
                let i = d % span;
                g * ports + (i as u64 * ports as u64 / span as u64) as u32
            };
            out.push((self.base[lvl] + 2 * port(a) as usize) as u32);
            out.push((self.base[lvl] + 2 * port(b) as usize + 1) as u32);
        }
        c.levels[k].latency_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_paths() {
        let p = Profile::h100();
        let c = Cluster::parse("4x8", &p).unwrap();
        assert_eq!(c.n_devices(), 32);
        assert_eq!(c.levels[1].ports, 8);
        let l = Links::new(&c);
        assert_eq!(l.cap.len(), 64 + 2 * 4 * 8);
        let mut path = Vec::new();
        assert_eq!(l.path(&c, 1, 2, &mut path), p.intra_latency_us);
        assert_eq!(path, vec![2, 5]);
        assert_eq!(l.path(&c, 1, 9, &mut path), p.inter_latency_us);
        assert_eq!(path, vec![64 + 2, 64 + 2 * 9 + 1]);
        // One NIC per node: every GPU of a node shares it.
        let one = Profile::a100_1nic();
        let c = Cluster::parse("4x4", &one).unwrap();
        let l = Links::new(&c);
        l.path(&c, 1, 5, &mut path);
        assert_eq!(path, vec![32, 32 + 3]);
        l.path(&c, 2, 6, &mut path);
        assert_eq!(path, vec![32, 32 + 3]);
        // Single big domain and three levels.
        assert_eq!(Cluster::parse("72", &p).unwrap().levels.len(), 1);
        assert_eq!(Cluster::parse("1x72", &p).unwrap().n_devices(), 72);
        let c3 = Cluster::parse("2x4x8", &p).unwrap();
        assert_eq!(c3.n_devices(), 64);
        assert_eq!(c3.common_level(0, 40), 2);
        let l3 = Links::new(&c3);
        l3.path(&c3, 0, 40, &mut path);
        assert_eq!(path.len(), 4);
        assert!(Cluster::parse("4x0", &p).is_err());
        assert!(Cluster::parse("abc", &p).is_err());
        let t = c.core_topology();
        assert_eq!((t.nodes, t.gpus_per_node), (4, 4));
        assert!((t.node_inter_gbps() - 12.5).abs() < 1e-9);
        let back = Cluster::from_topology(&t, &one);
        assert!((back.levels[1].gbps - 12.5).abs() < 1e-9);
    }
}
