//! Generates benchmark instances mimicking DCP attention hypergraphs (plus two generic
//! ones) into a directory: `gen_instances OUT_DIR`.
//!
//! DCP model: a batch of sequences (lengths summing to 131072 tokens) is cut into token
//! blocks of `B` tokens. Vertices: one *data* vertex per token block, one *tile* vertex per
//! (q block i, kv block j) pair that the mask touches (same sequence, causal `j <= i`;
//! for the "lambda" mask only tiles containing a sink token (< 64) or within the 4096
//! window). Nets: per block a Q net (data vertex + all tiles of that q block, weight = block
//! tokens) and a KV net (data vertex + all tiles of that kv block, weight = 2 × tokens).
//! Weights (2 dims): tile = [ceil(attended pairs / 256), 0], data = [0, tokens].
//! `*_1d.hgr` folds to one dimension: tile = compute, data vertex = 1 (Mt-KaHyPar needs
//! int32 weights and we want positive weights for all tools).

#![allow(clippy::needless_range_loop)]

use std::path::{Path, PathBuf};

use hypergraph::hmetis::write_hgr_file;
use hypergraph::HypergraphBuilder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TOTAL: usize = 131072;

#[derive(Clone, Copy)]
enum Mask {
    Causal,
    Lambda,
}

fn attended(mask: Mask, q0: usize, q1: usize, k0: usize, k1: usize) -> u64 {
    let mut c = 0u64;
    for q in q0..q1 {
        match mask {
            Mask::Causal => {
                if q >= k0 {
                    c += (q.min(k1 - 1) + 1 - k0) as u64;
                }
            }
            Mask::Lambda => {
                for k in k0..k1.min(q + 1) {
                    if k < 64 || q - k < 4096 {
                        c += 1;
                    }
                }
            }
        }
    }
    c
}

fn dcp(out: &Path, name: &str, seqs: &[usize], b: usize, mask: Mask) {
    for one_d in [false, true] {
        let dims = if one_d { 1 } else { 2 };
        let mut hb = HypergraphBuilder::new(dims);
        let mut nets: Vec<(u64, Vec<u32>)> = Vec::new();
        for &len in seqs {
            let nb = len.div_ceil(b);
            let mut data = Vec::with_capacity(nb);
            for i in 0..nb {
                let toks = (len.min((i + 1) * b) - i * b) as u64;
                let w = if one_d { vec![1] } else { vec![0, toks] };
                data.push(hb.add_vertex(&w));
            }
            let mut qn: Vec<Vec<u32>> = data.iter().map(|&d| vec![d]).collect();
            let mut kn: Vec<Vec<u32>> = data.iter().map(|&d| vec![d]).collect();
            for i in 0..nb {
                for j in 0..=i {
                    let a = attended(
                        mask,
                        i * b,
                        len.min((i + 1) * b),
                        j * b,
                        len.min((j + 1) * b),
                    );
                    if a == 0 {
                        continue;
                    }
                    let c = a.div_ceil(256);
                    let w = if one_d { vec![c] } else { vec![c, 0] };
                    let t = hb.add_vertex(&w);
                    qn[i].push(t);
                    kn[j].push(t);
                }
            }
            for i in 0..nb {
                let toks = (len.min((i + 1) * b) - i * b) as u64;
                nets.push((toks, std::mem::take(&mut qn[i])));
                nets.push((2 * toks, std::mem::take(&mut kn[i])));
            }
        }
        for (w, p) in &nets {
            hb.add_net(*w, p);
        }
        let hg = hb.build().unwrap();
        let f: PathBuf = out.join(format!("{name}{}.hgr", if one_d { "_1d" } else { "_2d" }));
        write_hgr_file(&hg, &f).unwrap();
        println!(
            "{}: n={} m={} pins={}",
            f.display(),
            hg.num_vertices(),
            hg.num_nets(),
            hg.num_pins()
        );
    }
}

fn lognormal_batch(rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut v = Vec::new();
    let mut sum = 0;
    while sum < TOTAL {
        // Box-Muller, median 14000, sigma 0.8
        let u1: f64 = rng.random::<f64>().max(1e-12);
        let u2: f64 = rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        let l = ((14000f64.ln() + 0.8 * z).exp() as usize).clamp(256, TOTAL);
        let l = l.min(TOTAL - sum);
        v.push(l);
        sum += l;
    }
    v
}

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "instances".into()),
    );
    std::fs::create_dir_all(&out).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let long = vec![100_000, 16_000, 8_000, 4_000, 3_072];
    let logn = lognormal_batch(&mut rng);
    for b in [1024, 512] {
        dcp(
            &out,
            &format!("dcp_long_causal_B{b}"),
            &long,
            b,
            Mask::Causal,
        );
        dcp(
            &out,
            &format!("dcp_logn_causal_B{b}"),
            &logn,
            b,
            Mask::Causal,
        );
        dcp(
            &out,
            &format!("dcp_long_lambda_B{b}"),
            &long,
            b,
            Mask::Lambda,
        );
    }
    // generic: random hypergraph
    let mut hb = HypergraphBuilder::new(1);
    let n = 20_000;
    for _ in 0..n {
        hb.add_vertex(&[rng.random_range(1..=4)]);
    }
    for _ in 0..n {
        let s = rng.random_range(2..=8);
        let pins: Vec<u32> = (0..s).map(|_| rng.random_range(0..n as u32)).collect();
        hb.add_net(rng.random_range(1..=3), &pins);
    }
    let hg = hb.build().unwrap();
    write_hgr_file(&hg, &out.join("random_n20000.hgr")).unwrap();
    // generic: 2-D grid, one 5-pin net per cell (its von Neumann neighbourhood)
    let side = 150u32;
    let mut hb = HypergraphBuilder::new(1);
    for _ in 0..side * side {
        hb.add_vertex(&[1]);
    }
    for y in 0..side {
        for x in 0..side {
            let mut p = vec![y * side + x];
            if x > 0 {
                p.push(y * side + x - 1);
            }
            if x + 1 < side {
                p.push(y * side + x + 1);
            }
            if y > 0 {
                p.push((y - 1) * side + x);
            }
            if y + 1 < side {
                p.push((y + 1) * side + x);
            }
            hb.add_net(1, &p);
        }
    }
    let hg = hb.build().unwrap();
    write_hgr_file(&hg, &out.join("grid_150.hgr")).unwrap();
    println!("lognormal batch: {logn:?}");
}
