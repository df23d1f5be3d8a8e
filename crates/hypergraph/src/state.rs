//! Incremental partition state shared by initial partitioning, refinement and
//! rebalancing: per-net pin counts per part (`phi`, dense `m * k`), per-net pin counts per
//! topology node (`nphi`), part loads per dimension, and the exact move-gain evaluation.
//!
//! Gain of moving `v` from `a` to `b` (positive = objective decreases), for plain km1:
//! `sum_{e∋v} w(e) [phi(e,a) = 1]  -  sum_{e∋v} w(e) [phi(e,b) = 0]`;
//! with a topology the node term `(f - 1) * (same expression on node pin counts)` is added
//! when `a` and `b` live on different nodes. Pins of a net only need their gains
//! recomputed after a move when a count crosses 0/1/2 (see [`PartState::touches_gains`]).

use crate::config::Topology;
use crate::hypergraph::Hypergraph;

/// Dense topology data (node ids remapped to `0..nnodes`).
#[derive(Debug, Clone)]
pub(crate) struct TopoInfo {
    pub node_of: Vec<u32>,
    pub nnodes: usize,
    pub factor: i64,
}

impl TopoInfo {
    pub fn new(t: &Topology) -> Option<Self> {
        let mut ids: Vec<u32> = t.node_of_part.clone();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() <= 1 || t.inter_node_factor == 1 {
            return None; // reduces to plain km1
        }
        let node_of = t
            .node_of_part
            .iter()
            .map(|n| ids.binary_search(n).unwrap() as u32)
            .collect();
        Some(TopoInfo {
            node_of,
            nnodes: ids.len(),
            factor: t.inter_node_factor as i64,
        })
    }
}

pub(crate) struct PartState<'a> {
    pub hg: &'a Hypergraph,
    pub k: usize,
    pub dims: usize,
    pub caps: &'a [u64],
    pub topo: Option<&'a TopoInfo>,
    pub parts: Vec<u32>,
    pub phi: Vec<u32>,
    pub nphi: Vec<u32>,
    pub loads: Vec<u64>,
    /// Per net, a bitset of the parts it touches (`phi > 0`), `words` u64 per net: gains visit
    /// only a net's parts instead of all k.
    bits: Vec<u64>,
    words: usize,
    conn: Vec<i64>,
    nconn: Vec<i64>,
}

impl<'a> PartState<'a> {
    pub fn new(
        hg: &'a Hypergraph,
        k: usize,
        caps: &'a [u64],
        topo: Option<&'a TopoInfo>,
        parts: Vec<u32>,
    ) -> Self {
        let dims = hg.dims();
        let m = hg.num_nets();
        let nn = topo.map_or(0, |t| t.nnodes);
        let words = k.div_ceil(64);
        let mut s = PartState {
            hg,
            k,
            dims,
            caps,
            topo,
            parts,
            phi: vec![0; m * k],
            nphi: vec![0; m * nn],
            loads: vec![0; k * dims],
            bits: vec![0; m * words],
            words,
            conn: vec![0; k],
            nconn: vec![0; nn],
        };
        for e in 0..m {
            for &v in hg.pins(e as u32) {
                let p = s.parts[v as usize] as usize;
                s.phi[e * k + p] += 1;
                s.bits[e * words + p / 64] |= 1 << (p % 64);
                if let Some(t) = topo {
                    s.nphi[e * nn + t.node_of[p] as usize] += 1;
                }
            }
        }
        let w = hg.raw_vertex_weights();
        for (v, &p) in s.parts.iter().enumerate() {
            for d in 0..dims {
                s.loads[p as usize * dims + d] += w[v * dims + d];
            }
        }
        s
    }

    /// Current objective (km1 or topology cost) from the pin counts.
    pub fn objective(&self) -> i64 {
        let k = self.k;
        let mut total = 0i64;
        for e in 0..self.hg.num_nets() {
            let lam = self.phi[e * k..(e + 1) * k]
                .iter()
                .filter(|&&c| c > 0)
                .count() as i64;
            let w = self.hg.net_weight(e as u32) as i64;
            match self.topo {
                None => total += w * (lam - 1),
                Some(t) => {
                    let nn = t.nnodes;
                    let nu = self.nphi[e * nn..(e + 1) * nn]
                        .iter()
                        .filter(|&&c| c > 0)
                        .count() as i64;
                    total += w * ((nu - 1) * t.factor + lam - nu);
                }
            }
        }
        total
    }

    #[inline]
    pub fn fits(&self, v: u32, p: usize) -> bool {
        let w = self.hg.vertex_weight(v);
        let d = self.dims;
        (0..d).all(|i| self.loads[p * d + i] + w[i] <= self.caps[p * d + i])
    }

    /// Relative load of part `p` after adding `w` (max over dimensions of load / cap).
    #[inline]
    pub fn rel_load_with(&self, p: usize, w: &[u64]) -> f64 {
        let d = self.dims;
        let mut r = 0.0f64;
        for i in 0..d {
            let cap = self.caps[p * d + i].max(1) as f64;
            r = r.max((self.loads[p * d + i] + w[i]) as f64 / cap);
        }
        r
    }

    /// True if some part exceeds its capacity in some dimension.
    pub fn overloaded(&self) -> bool {
        self.loads.iter().zip(self.caps).any(|(l, c)| l > c)
    }

    /// Does moving a pin of `e` from `a` to `b` change gains of other pins of `e`?
    /// Must be called *before* the move.
    #[inline]
    pub fn touches_gains(&self, e: u32, a: usize, b: usize) -> bool {
        let k = self.k;
        let (pa, pb) = (self.phi[e as usize * k + a], self.phi[e as usize * k + b]);
        if pa <= 2 || pb <= 1 {
            return true;
        }
        if let Some(t) = self.topo {
            let (na, nb) = (t.node_of[a] as usize, t.node_of[b] as usize);
            if na != nb {
                let nn = t.nnodes;
                let (qa, qb) = (
                    self.nphi[e as usize * nn + na],
                    self.nphi[e as usize * nn + nb],
                );
                return qa <= 2 || qb <= 1;
            }
        }
        false
    }

    pub fn move_vertex(&mut self, v: u32, to: usize) {
        let from = self.parts[v as usize] as usize;
        if from == to {
            return;
        }
        let k = self.k;
        for &e in self.hg.nets(v) {
            let (ef, et) = (e as usize * k + from, e as usize * k + to);
            self.phi[ef] -= 1;
            self.phi[et] += 1;
            let row = e as usize * self.words;
            if self.phi[ef] == 0 {
                self.bits[row + from / 64] &= !(1 << (from % 64));
            }
            if self.phi[et] == 1 {
                self.bits[row + to / 64] |= 1 << (to % 64);
            }
            if let Some(t) = self.topo {
                let nn = t.nnodes;
                self.nphi[e as usize * nn + t.node_of[from] as usize] -= 1;
                self.nphi[e as usize * nn + t.node_of[to] as usize] += 1;
            }
        }
        let d = self.dims;
        let w = self.hg.vertex_weight(v);
        for i in 0..d {
            self.loads[from * d + i] -= w[i];
            self.loads[to * d + i] += w[i];
        }
        self.parts[v as usize] = to as u32;
    }

    /// Fills the internal per-target gain table for `v`; returns the gains slice
    /// (`gains[part(v)]` is meaningless).
    fn compute_gains(&mut self, v: u32) {
        let k = self.k;
        let a = self.parts[v as usize] as usize;
        self.conn.iter_mut().for_each(|c| *c = 0);
        let mut total = 0i64;
        let mut leave = 0i64;
        for &e in self.hg.nets(v) {
            let w = self.hg.net_weight(e) as i64;
            total += w;
            if self.phi[e as usize * k + a] == 1 {
                leave += w;
            }
            let words = &self.bits[e as usize * self.words..(e as usize + 1) * self.words];
            for (wi, &word) in words.iter().enumerate() {
                let mut x = word;
                while x != 0 {
                    self.conn[wi * 64 + x.trailing_zeros() as usize] += w;
                    x &= x - 1;
                }
            }
        }
        match self.topo {
            None => {
                for c in self.conn.iter_mut() {
                    *c += leave - total;
                }
            }
            Some(t) => {
                let nn = t.nnodes;
                let na = t.node_of[a] as usize;
                self.nconn.iter_mut().for_each(|c| *c = 0);
                let mut nleave = 0i64;
                for &e in self.hg.nets(v) {
                    let w = self.hg.net_weight(e) as i64;
                    let row = &self.nphi[e as usize * nn..(e as usize + 1) * nn];
                    if row[na] == 1 {
                        nleave += w;
                    }
                    for (c, &cnt) in self.nconn.iter_mut().zip(row) {
                        *c += w & -i64::from(cnt > 0);
                    }
                }
                // per-node additive term (nconn is reused to hold it)
                for (n, c) in self.nconn.iter_mut().enumerate() {
                    *c = if n == na {
                        leave - total
                    } else {
                        leave - total + (t.factor - 1) * (nleave - total + *c)
                    };
                }
                for (c, &nb) in self.conn.iter_mut().zip(&t.node_of) {
                    *c += self.nconn[nb as usize];
                }
            }
        }
    }

    /// Exact gain of moving `v` to `b`.
    #[allow(dead_code)]
    pub fn gain(&mut self, v: u32, b: usize) -> i64 {
        self.compute_gains(v);
        self.conn[b]
    }

    /// Gain of [`Self::best_move`] without its target: skips the relative-load tie-break
    /// (and the capacity check of every target that cannot raise the best gain).
    pub fn best_gain(&mut self, v: u32) -> Option<i64> {
        self.compute_gains(v);
        let a = self.parts[v as usize] as usize;
        let mut best: Option<i64> = None;
        for b in 0..self.k {
            let g = self.conn[b];
            if b == a || best.is_some_and(|bg| g <= bg) {
                continue;
            }
            if self.fits(v, b) {
                best = Some(g);
            }
        }
        best
    }

    /// Best capacity-respecting move for `v`: (target, gain). Ties are broken by the
    /// lower relative load of the target after the move, then by the lower part id.
    pub fn best_move(&mut self, v: u32) -> Option<(usize, i64)> {
        self.compute_gains(v);
        let a = self.parts[v as usize] as usize;
        let w = self.hg.vertex_weight(v);
        let mut best: Option<(usize, i64, f64)> = None;
        for b in 0..self.k {
            if b == a {
                continue;
            }
            let g = self.conn[b];
            if let Some((_, bg, _)) = best {
                if g < bg {
                    continue;
                }
            }
            if !self.fits(v, b) {
                continue;
            }
            let r = self.rel_load_with(b, w);
            match best {
                Some((_, bg, br)) if g == bg && r >= br => {}
                _ => best = Some((b, g, r)),
            }
        }
        best.map(|(b, g, _)| (b, g))
    }
}
