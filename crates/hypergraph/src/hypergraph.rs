//! The immutable [`Hypergraph`] (CSR in both directions) and its validating builder.
//!
//! Vertices carry a weight *vector* of a fixed dimension `D >= 1` (`u64`, so there is no
//! NaN / negative weight to reject), nets carry one `u64` weight and a pin list.
//! Storage is compressed-sparse-row both ways (net -> pins, vertex -> incident nets) so
//! that coarsening and refinement can walk either direction without allocation.
//!
//! Builder semantics: duplicate pins inside one net are **deduplicated** (first
//! occurrence kept) rather than rejected; empty nets, out-of-range pins and weight
//! vectors of the wrong length are errors reported by [`HypergraphBuilder::build`].

use crate::error::{Error, Result};

/// Index of a vertex.
pub type VertexId = u32;
/// Index of a net (hyperedge).
pub type NetId = u32;

/// An immutable weighted hypergraph with multi-dimensional vertex weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hypergraph {
    dims: usize,
    vwgt: Vec<u64>,
    nwgt: Vec<u64>,
    net_off: Vec<usize>,
    pins: Vec<u32>,
    v_off: Vec<usize>,
    incident: Vec<u32>,
    total: Vec<u64>,
}

impl Hypergraph {
    /// Internal constructor from already valid CSR net data; builds the incidence side.
    pub(crate) fn from_csr(
        dims: usize,
        vwgt: Vec<u64>,
        nwgt: Vec<u64>,
        net_off: Vec<usize>,
        pins: Vec<u32>,
    ) -> Self {
        let n = vwgt.len() / dims;
        let mut deg = vec![0usize; n + 1];
        for &p in &pins {
            deg[p as usize + 1] += 1;
        }
        for i in 0..n {
            deg[i + 1] += deg[i];
        }
        let v_off = deg.clone();
        let mut fill = deg;
        let mut incident = vec![0u32; pins.len()];
        for e in 0..nwgt.len() {
            for &p in &pins[net_off[e]..net_off[e + 1]] {
                incident[fill[p as usize]] = e as u32;
                fill[p as usize] += 1;
            }
        }
        let mut total = vec![0u64; dims];
        for v in 0..n {
            for d in 0..dims {
                total[d] += vwgt[v * dims + d];
            }
        }
        Hypergraph {
            dims,
            vwgt,
            nwgt,
            net_off,
            pins,
            v_off,
            incident,
            total,
        }
    }

    /// Number of weight dimensions `D`.
    #[inline]
    pub fn dims(&self) -> usize {
        self.dims
    }
    /// Number of vertices.
    #[inline]
    pub fn num_vertices(&self) -> usize {
        self.v_off.len() - 1
    }
    /// Number of nets.
    #[inline]
    pub fn num_nets(&self) -> usize {
        self.nwgt.len()
    }
    /// Total number of pins (sum of net sizes).
    #[inline]
    pub fn num_pins(&self) -> usize {
        self.pins.len()
    }
    /// Weight vector of vertex `v` (length `D`).
    #[inline]
    pub fn vertex_weight(&self, v: VertexId) -> &[u64] {
        let v = v as usize;
        &self.vwgt[v * self.dims..(v + 1) * self.dims]
    }
    /// Weight of net `e`.
    #[inline]
    pub fn net_weight(&self, e: NetId) -> u64 {
        self.nwgt[e as usize]
    }
    /// Pins of net `e`.
    #[inline]
    pub fn pins(&self, e: NetId) -> &[VertexId] {
        &self.pins[self.net_off[e as usize]..self.net_off[e as usize + 1]]
    }
    /// Size (number of pins) of net `e`.
    #[inline]
    pub fn net_size(&self, e: NetId) -> usize {
        self.net_off[e as usize + 1] - self.net_off[e as usize]
    }
    /// Nets incident to vertex `v`.
    #[inline]
    pub fn nets(&self, v: VertexId) -> &[NetId] {
        &self.incident[self.v_off[v as usize]..self.v_off[v as usize + 1]]
    }
    /// Total vertex weight per dimension.
    #[inline]
    pub fn total_weight(&self) -> &[u64] {
        &self.total
    }
    /// Flat vertex weight array (`n * D`, row-major by vertex).
    #[inline]
    pub(crate) fn raw_vertex_weights(&self) -> &[u64] {
        &self.vwgt
    }
}

/// Incremental, validating constructor for [`Hypergraph`].
#[derive(Debug)]
pub struct HypergraphBuilder {
    dims: usize,
    vwgt: Vec<u64>,
    nwgt: Vec<u64>,
    net_off: Vec<usize>,
    pins: Vec<u64>,
    first_error: Option<Error>,
}

impl HypergraphBuilder {
    /// A builder for vertices with `dims` weights each (`dims == 0` fails at `build`).
    pub fn new(dims: usize) -> Self {
        HypergraphBuilder {
            dims,
            vwgt: Vec::new(),
            nwgt: Vec::new(),
            net_off: vec![0],
            pins: Vec::new(),
            first_error: if dims == 0 {
                Some(Error::ZeroDims)
            } else {
                None
            },
        }
    }

    /// Number of vertices added so far.
    pub fn num_vertices(&self) -> usize {
        self.vwgt.len().checked_div(self.dims).unwrap_or(0)
    }

    /// Adds a vertex with weight vector `w` (must have length `dims`; checked at `build`).
    pub fn add_vertex(&mut self, w: &[u64]) -> VertexId {
        let id = self.num_vertices();
        if w.len() != self.dims {
            if self.first_error.is_none() {
                self.first_error = Some(Error::DimMismatch {
                    vertex: id,
                    expected: self.dims,
                    got: w.len(),
                });
            }
            self.vwgt
                .extend((0..self.dims).map(|d| w.get(d).copied().unwrap_or(0)));
        } else {
            self.vwgt.extend_from_slice(w);
        }
        id as VertexId
    }

    /// Adds a net of weight `weight` over `pins` (validated at `build`; duplicates are
    /// removed).
    pub fn add_net(&mut self, weight: u64, pins: &[VertexId]) -> NetId {
        self.add_net_u64(weight, pins.iter().map(|&p| p as u64))
    }

    pub(crate) fn add_net_u64(
        &mut self,
        weight: u64,
        pins: impl IntoIterator<Item = u64>,
    ) -> NetId {
        let id = self.nwgt.len();
        self.nwgt.push(weight);
        self.pins.extend(pins);
        self.net_off.push(self.pins.len());
        id as NetId
    }

    /// Validates and freezes the hypergraph.
    pub fn build(self) -> Result<Hypergraph> {
        if let Some(e) = self.first_error {
            return Err(e);
        }
        let n = self.num_vertices();
        if n > u32::MAX as usize - 1 {
            return Err(Error::InvalidConfig("too many vertices".into()));
        }
        let mut pins = Vec::with_capacity(self.pins.len());
        let mut net_off = Vec::with_capacity(self.net_off.len());
        net_off.push(0);
        let mut mark = vec![u32::MAX; n];
        for e in 0..self.nwgt.len() {
            let raw = &self.pins[self.net_off[e]..self.net_off[e + 1]];
            if raw.is_empty() {
                return Err(Error::EmptyNet { net: e });
            }
            for &p in raw {
                if p >= n as u64 {
                    return Err(Error::PinOutOfRange {
                        net: e,
                        pin: p,
                        num_vertices: n,
                    });
                }
                if mark[p as usize] != e as u32 {
                    mark[p as usize] = e as u32;
                    pins.push(p as u32);
                }
            }
            net_off.push(pins.len());
        }
        Ok(Hypergraph::from_csr(
            self.dims, self.vwgt, self.nwgt, net_off, pins,
        ))
    }
}

impl Hypergraph {
    /// Sub-hypergraph induced by `verts` (local id `i` = `verts[i]`). Nets keep only
    /// their pins inside `verts` and are dropped when fewer than two remain (cut-net
    /// splitting, which keeps km1 additive under recursive bisection).
    pub(crate) fn induced(&self, verts: &[u32]) -> Hypergraph {
        let dims = self.dims;
        let mut local = vec![u32::MAX; self.num_vertices()];
        let mut vw = Vec::with_capacity(verts.len() * dims);
        for (i, &v) in verts.iter().enumerate() {
            local[v as usize] = i as u32;
            vw.extend_from_slice(self.vertex_weight(v));
        }
        let mut mark = vec![false; self.num_nets()];
        let mut off = vec![0usize];
        let mut pins = Vec::new();
        let mut nw = Vec::new();
        for &v in verts {
            for &e in self.nets(v) {
                if mark[e as usize] {
                    continue;
                }
                mark[e as usize] = true;
                let start = pins.len();
                pins.extend(
                    self.pins(e)
                        .iter()
                        .map(|&p| local[p as usize])
                        .filter(|&l| l != u32::MAX),
                );
                if pins.len() - start < 2 {
                    pins.truncate(start);
                } else {
                    off.push(pins.len());
                    nw.push(self.net_weight(e));
                }
            }
        }
        Hypergraph::from_csr(dims, vw, nw, off, pins)
    }
}
