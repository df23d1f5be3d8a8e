//! hMETIS `.hgr` reading / writing (plus a multi-weight extension) and `.fix` files.
//!
//! Format: comment lines start with `%`; blank lines are skipped. Header:
//! `m n [fmt [D]]` with `fmt` ∈ {0 / absent, 1 = net weights, 10 = vertex weights,
//! 11 = both}. Then `m` net lines `[w] p1 p2 ...` (1-based pins), then, when `fmt` has
//! vertex weights, `n` lines of vertex weights.
//!
//! **Multi-weight extension** (ours): a 4th header field `D` (only meaningful with fmt 10
//! or 11) says each vertex weight line carries `D` numbers, one per dimension. Without
//! it, `D = 1` unless the caller passes `weight_dims`. Without vertex weights every
//! vertex weighs 1 in every dimension.
//!
//! `.fix` files: one line per vertex, `-1` = free, otherwise the 0-based part id.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::hypergraph::{Hypergraph, HypergraphBuilder};

fn perr(line: usize, msg: impl Into<String>) -> Error {
    Error::Parse {
        line,
        msg: msg.into(),
    }
}

fn num(tok: &str, line: usize, what: &str) -> Result<u64> {
    tok.parse::<u64>()
        .map_err(|_| perr(line, format!("invalid {what} '{tok}'")))
}

/// Reads an hMETIS hypergraph. `weight_dims` forces the number of weights per vertex
/// line (an error if the header says otherwise).
pub fn read_hgr<R: Read>(reader: R, weight_dims: Option<usize>) -> Result<Hypergraph> {
    let mut lines = BufReader::new(reader)
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| {
            l.as_ref()
                .map(|s| {
                    let t = s.trim_start();
                    !t.is_empty() && !t.starts_with('%')
                })
                .unwrap_or(true)
        });
    let (hl, header) = lines.next().ok_or_else(|| perr(1, "missing header"))?;
    let header = header?;
    let h: Vec<&str> = header.split_whitespace().collect();
    if h.len() < 2 || h.len() > 4 {
        return Err(perr(hl, "header must be 'm n [fmt [dims]]'"));
    }
    let m = num(h[0], hl, "net count")? as usize;
    let n = num(h[1], hl, "vertex count")? as usize;
    let fmt = if h.len() > 2 {
        num(h[2], hl, "fmt")?
    } else {
        0
    };
    if ![0, 1, 10, 11].contains(&fmt) {
        return Err(perr(
            hl,
            format!("unsupported fmt {fmt} (expected 0, 1, 10 or 11)"),
        ));
    }
    let (has_nw, has_vw) = (fmt % 10 == 1, fmt / 10 == 1);
    let header_dims = if h.len() > 3 {
        Some(num(h[3], hl, "weight dimension count")? as usize)
    } else {
        None
    };
    let dims = match (header_dims, weight_dims) {
        (Some(a), Some(b)) if a != b => {
            return Err(perr(
                hl,
                format!("header says {a} weight dimension(s) but {b} were requested"),
            ))
        }
        (Some(a), _) => a,
        (None, Some(b)) => b,
        (None, None) => 1,
    };
    if dims == 0 {
        return Err(perr(hl, "weight dimension count must be >= 1"));
    }
    let mut b = HypergraphBuilder::new(dims);
    let mut nets: Vec<(u64, Vec<u32>)> = Vec::with_capacity(m);
    for e in 0..m {
        let (ln, l) = lines
            .next()
            .ok_or_else(|| perr(hl, format!("expected {m} nets, file ends after {e}")))?;
        let l = l?;
        let mut toks = l.split_whitespace();
        let w = if has_nw {
            num(toks.next().unwrap_or(""), ln, "net weight")?
        } else {
            1
        };
        let mut pins = Vec::new();
        for t in toks {
            let p = num(t, ln, "pin")?;
            if p == 0 || p > n as u64 {
                return Err(perr(
                    ln,
                    format!("net {e}: pin {p} out of range 1..={n} (pins are 1-based)"),
                ));
            }
            pins.push((p - 1) as u32);
        }
        if pins.is_empty() {
            return Err(perr(ln, format!("net {e} has no pins")));
        }
        nets.push((w, pins));
    }
    let ones = vec![1u64; dims];
    let mut w = vec![0u64; dims];
    for v in 0..n {
        if has_vw {
            let (ln, l) = lines
                .next()
                .ok_or_else(|| perr(hl, format!("expected {n} vertex weight lines, got {v}")))?;
            let l = l?;
            let toks: Vec<&str> = l.split_whitespace().collect();
            if toks.len() != dims {
                return Err(perr(
                    ln,
                    format!("vertex {v}: expected {dims} weight(s), got {}", toks.len()),
                ));
            }
            for (d, t) in toks.iter().enumerate() {
                w[d] = num(t, ln, "vertex weight")?;
            }
            b.add_vertex(&w);
        } else {
            b.add_vertex(&ones);
        }
    }
    if let Some((ln, _)) = lines.next() {
        return Err(perr(ln, "unexpected trailing content"));
    }
    for (w, pins) in &nets {
        b.add_net(*w, pins);
    }
    b.build()
}

/// Reads an hMETIS file from disk.
pub fn read_hgr_file(path: &Path, weight_dims: Option<usize>) -> Result<Hypergraph> {
    read_hgr(File::open(path)?, weight_dims)
}

/// Writes `hg` in hMETIS format (fmt 11 with a 4th header field when `D > 1`).
pub fn write_hgr<W: Write>(hg: &Hypergraph, writer: W) -> Result<()> {
    let mut w = BufWriter::new(writer);
    let dims = hg.dims();
    let has_nw = (0..hg.num_nets() as u32).any(|e| hg.net_weight(e) != 1);
    let has_vw = dims > 1
        || (0..hg.num_vertices() as u32).any(|v| hg.vertex_weight(v).iter().any(|&x| x != 1));
    let fmt = match (has_vw, has_nw) {
        (false, false) => String::new(),
        (false, true) => " 1".into(),
        (true, false) => " 10".into(),
        (true, true) => " 11".into(),
    };
    let ext = if dims > 1 {
        format!(" {dims}")
    } else {
        String::new()
    };
    writeln!(w, "{} {}{fmt}{ext}", hg.num_nets(), hg.num_vertices())?;
    for e in 0..hg.num_nets() as u32 {
        let mut first = true;
        if has_nw {
            write!(w, "{}", hg.net_weight(e))?;
            first = false;
        }
        for &p in hg.pins(e) {
            if first {
                write!(w, "{}", p + 1)?;
                first = false;
            } else {
                write!(w, " {}", p + 1)?;
            }
        }
        writeln!(w)?;
    }
    if has_vw {
        for v in 0..hg.num_vertices() as u32 {
            let ws: Vec<String> = hg.vertex_weight(v).iter().map(|x| x.to_string()).collect();
            writeln!(w, "{}", ws.join(" "))?;
        }
    }
    w.flush()?;
    Ok(())
}

/// Writes `hg` to a file.
pub fn write_hgr_file(hg: &Hypergraph, path: &Path) -> Result<()> {
    write_hgr(hg, File::create(path)?)
}

/// Reads a `.fix` file with exactly `n` entries (`-1` = free).
pub fn read_fix<R: Read>(reader: R, n: usize) -> Result<Vec<Option<u32>>> {
    let mut out = Vec::with_capacity(n);
    for (i, l) in BufReader::new(reader).lines().enumerate() {
        let l = l?;
        let t = l.trim();
        if t.is_empty() || t.starts_with('%') {
            continue;
        }
        let x: i64 = t
            .parse()
            .map_err(|_| perr(i + 1, format!("invalid part id '{t}'")))?;
        if x < -1 || x > u32::MAX as i64 - 1 {
            return Err(perr(i + 1, format!("part id {x} out of range")));
        }
        if out.len() == n {
            return Err(perr(i + 1, format!("more than {n} entries")));
        }
        out.push(if x == -1 { None } else { Some(x as u32) });
    }
    if out.len() != n {
        return Err(perr(0, format!("expected {n} entries, got {}", out.len())));
    }
    Ok(out)
}

/// Writes a `.fix` file.
pub fn write_fix<W: Write>(fixed: &[Option<u32>], writer: W) -> Result<()> {
    let mut w = BufWriter::new(writer);
    for f in fixed {
        match f {
            Some(p) => writeln!(w, "{p}")?,
            None => writeln!(w, "-1")?,
        }
    }
    w.flush()?;
    Ok(())
}
