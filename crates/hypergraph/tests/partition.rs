//! Integration tests: capacities, metric correctness (brute force), determinism, fixed
//! vertices, infeasibility errors, hMETIS round-trip, known optima, topology objective.

use hypergraph::hmetis::{read_fix, read_hgr, write_fix, write_hgr};
use hypergraph::metrics;
use hypergraph::{
    partition, Error, Hypergraph, HypergraphBuilder, PartitionConfig, Preset, Topology,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_hg(seed: u64, n: usize, m: usize, dims: usize) -> Hypergraph {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut b = HypergraphBuilder::new(dims);
    for _ in 0..n {
        let w: Vec<u64> = (0..dims).map(|_| rng.random_range(0..=5)).collect();
        b.add_vertex(&w);
    }
    for _ in 0..m {
        let s = rng.random_range(1..=6);
        let pins: Vec<u32> = (0..s).map(|_| rng.random_range(0..n as u32)).collect();
        b.add_net(rng.random_range(0..=4), &pins);
    }
    b.build().unwrap()
}

fn brute_km1_cut(hg: &Hypergraph, parts: &[u32]) -> (u64, u64) {
    let mut km1 = 0;
    let mut cut = 0;
    for e in 0..hg.num_nets() as u32 {
        let mut ps: Vec<u32> = hg.pins(e).iter().map(|&v| parts[v as usize]).collect();
        ps.sort();
        ps.dedup();
        km1 += hg.net_weight(e) * (ps.len() as u64 - 1);
        if ps.len() > 1 {
            cut += hg.net_weight(e);
        }
    }
    (km1, cut)
}

fn check_caps(hg: &Hypergraph, p: &hypergraph::Partition) {
    let loads = metrics::loads(hg, &p.parts, p.capacities.len() as u32);
    assert_eq!(loads, p.loads);
    for (l, c) in loads.iter().zip(&p.capacities) {
        for d in 0..hg.dims() {
            assert!(l[d] <= c[d], "load {l:?} exceeds capacity {c:?}");
        }
    }
}

#[test]
fn random_instances_respect_caps_and_metrics_are_exact() {
    for seed in 0..12u64 {
        let dims = 1 + (seed as usize % 3);
        let hg = random_hg(seed, 300, 400, dims);
        for k in [2u32, 3, 5, 8] {
            let cfg = PartitionConfig::new(k, 0.05).with_seed(seed);
            let p = partition(&hg, &cfg).unwrap();
            check_caps(&hg, &p);
            let (km1, cut) = brute_km1_cut(&hg, &p.parts);
            assert_eq!((p.km1, p.cut), (km1, cut));
            assert_eq!(p.cost, p.km1);
            assert!(p.parts.iter().all(|&x| x < k));
        }
    }
}

#[test]
fn deterministic_for_a_seed() {
    let hg = random_hg(7, 500, 700, 2);
    for preset in [Preset::Fast, Preset::Default, Preset::Quality] {
        let cfg = PartitionConfig::new(6, 0.03)
            .with_seed(99)
            .with_preset(preset);
        let a = partition(&hg, &cfg).unwrap();
        let b = partition(&hg, &cfg).unwrap();
        assert_eq!(a, b);
    }
}

#[test]
fn fixed_vertices_are_honoured() {
    let hg = random_hg(3, 200, 300, 1);
    let mut cfg = PartitionConfig::new(4, 0.1).with_seed(1);
    cfg.fixed = (0..200)
        .map(|v| (v % 10 == 0).then_some((v / 10 % 4) as u32))
        .collect();
    let p = partition(&hg, &cfg).unwrap();
    check_caps(&hg, &p);
    for (v, f) in cfg.fixed.iter().enumerate() {
        if let Some(f) = f {
            assert_eq!(p.parts[v], *f);
        }
    }
}

#[test]
fn heterogeneous_capacities_two_dims() {
    let hg = random_hg(11, 400, 500, 2);
    let tot = hg.total_weight().to_vec();
    // part 0 gets half of everything, the 3 others share the rest (+5% slack each)
    let caps: Vec<Vec<u64>> = (0..4)
        .map(|p| {
            tot.iter()
                .map(|&t| if p == 0 { t * 53 / 100 } else { t * 18 / 100 })
                .collect()
        })
        .collect();
    let mut cfg = PartitionConfig::new(4, 0.0).with_seed(5);
    cfg.capacities = Some(caps.clone());
    let p = partition(&hg, &cfg).unwrap();
    assert_eq!(p.capacities, caps);
    check_caps(&hg, &p);
}

#[test]
fn infeasible_inputs_are_typed_errors() {
    let hg = random_hg(1, 50, 60, 2);
    let mut cfg = PartitionConfig::new(2, 0.0);
    cfg.capacities = Some(vec![vec![1, 1_000_000]; 2]);
    assert!(matches!(
        partition(&hg, &cfg),
        Err(Error::Infeasible {
            dim: 0,
            part: None,
            ..
        })
    ));
    // fixed vertices overloading a part
    let mut b = HypergraphBuilder::new(1);
    for _ in 0..4 {
        b.add_vertex(&[10]);
    }
    b.add_net(1, &[0, 1, 2, 3]);
    let hg = b.build().unwrap();
    let mut cfg = PartitionConfig::new(2, 0.0);
    cfg.fixed = vec![Some(1), Some(1), Some(1), None];
    assert!(matches!(
        partition(&hg, &cfg),
        Err(Error::Infeasible { part: Some(1), .. })
    ));
    // a vertex heavier than every capacity
    let mut b = HypergraphBuilder::new(1);
    b.add_vertex(&[100]);
    b.add_vertex(&[1]);
    let hg = b.build().unwrap();
    assert!(matches!(
        partition(&hg, &PartitionConfig::new(2, 0.0)),
        Err(Error::Infeasible { part: None, .. })
    ));
    assert!(matches!(
        partition(&hg, &PartitionConfig::new(0, 0.0)),
        Err(Error::ZeroParts)
    ));
    assert!(matches!(
        partition(&hg, &PartitionConfig::new(2, f64::NAN)),
        Err(Error::InvalidConfig(_))
    ));
    let mut cfg = PartitionConfig::new(2, 0.0);
    cfg.fixed = vec![Some(5), None];
    assert!(matches!(
        partition(&hg, &cfg),
        Err(Error::FixedOutOfRange { vertex: 0, .. })
    ));
}

#[test]
fn builder_validation() {
    assert!(matches!(
        HypergraphBuilder::new(0).build(),
        Err(Error::ZeroDims)
    ));
    let mut b = HypergraphBuilder::new(2);
    b.add_vertex(&[1]);
    assert!(matches!(
        b.build(),
        Err(Error::DimMismatch { vertex: 0, .. })
    ));
    let mut b = HypergraphBuilder::new(1);
    b.add_vertex(&[1]);
    b.add_net(1, &[0]);
    b.add_net(1, &[]);
    assert!(matches!(b.build(), Err(Error::EmptyNet { net: 1 })));
    let mut b = HypergraphBuilder::new(1);
    b.add_vertex(&[1]);
    b.add_net(1, &[0, 3]);
    assert!(matches!(
        b.build(),
        Err(Error::PinOutOfRange { net: 0, pin: 3, .. })
    ));
    let mut b = HypergraphBuilder::new(1);
    b.add_vertex(&[1]);
    b.add_vertex(&[1]);
    b.add_net(1, &[1, 0, 1, 1]);
    let hg = b.build().unwrap();
    assert_eq!(hg.pins(0), &[1, 0]); // duplicates removed, first occurrence kept
    assert_eq!(hg.nets(0), &[0]);
}

#[test]
fn two_cliques_joined_by_one_net() {
    let mut b = HypergraphBuilder::new(1);
    for _ in 0..20 {
        b.add_vertex(&[1]);
    }
    for c in 0..2u32 {
        for i in 0..10u32 {
            for j in i + 1..10 {
                b.add_net(10, &[c * 10 + i, c * 10 + j]);
            }
        }
    }
    b.add_net(3, &[4, 15]);
    let hg = b.build().unwrap();
    for seed in 0..5 {
        let p = partition(&hg, &PartitionConfig::new(2, 0.0).with_seed(seed)).unwrap();
        assert_eq!(p.km1, 3);
        assert_eq!(p.cut, 3);
        assert_eq!(p.loads, vec![vec![10], vec![10]]);
    }
}

#[test]
fn topology_cost_reduces_to_km1_and_prefers_intra_node() {
    let hg = random_hg(21, 300, 400, 1);
    let mut cfg = PartitionConfig::new(4, 0.05).with_seed(2);
    cfg.topology = Some(Topology::uniform(4, 4, 5)); // one node: plain km1
    let p = partition(&hg, &cfg).unwrap();
    assert_eq!(p.cost, p.km1);
    cfg.topology = Some(Topology::uniform(4, 2, 5));
    let p = partition(&hg, &cfg).unwrap();
    check_caps(&hg, &p);
    assert_eq!(
        p.cost,
        metrics::topology_cost(&hg, &p.parts, cfg.topology.as_ref())
    );
    assert!(p.cost >= p.km1);
}

#[test]
fn hmetis_round_trip() {
    for dims in [1, 3] {
        let hg = random_hg(5, 40, 30, dims);
        let mut buf = Vec::new();
        write_hgr(&hg, &mut buf).unwrap();
        let back = read_hgr(&buf[..], None).unwrap();
        assert_eq!(hg, back);
    }
    // plain unweighted file with comments
    let txt = "% comment\n2 3\n1 2\n2 3\n";
    let hg = read_hgr(txt.as_bytes(), None).unwrap();
    assert_eq!((hg.num_nets(), hg.num_vertices()), (2, 3));
    assert_eq!(hg.pins(1), &[1, 2]);
    // errors carry line numbers
    let bad = "2 3 1\n1 1 2\n1 4\n";
    match read_hgr(bad.as_bytes(), None) {
        Err(Error::Parse { line: 3, .. }) => {}
        other => panic!("unexpected {other:?}"),
    }
    let bad = "1 2 10 2\n1 2\n1 1\n5\n";
    assert!(matches!(
        read_hgr(bad.as_bytes(), None),
        Err(Error::Parse { line: 4, .. })
    ));
    let fixed = vec![None, Some(3), Some(0)];
    let mut buf = Vec::new();
    write_fix(&fixed, &mut buf).unwrap();
    assert_eq!(read_fix(&buf[..], 3).unwrap(), fixed);
}

#[test]
fn k_one_and_more_parts_than_vertices() {
    let hg = random_hg(2, 5, 6, 1);
    let p = partition(&hg, &PartitionConfig::new(1, 0.0)).unwrap();
    assert_eq!(p.km1, 0);
    let p = partition(&hg, &PartitionConfig::new(8, 1.0)).unwrap();
    check_caps(&hg, &p);
}

#[test]
fn refine_from_moves_load_into_tighter_capacities() {
    let hg = random_hg(21, 400, 500, 2);
    let tot = hg.total_weight().to_vec();
    let mut cfg = PartitionConfig::new(4, 0.0).with_seed(3);
    cfg.capacities = Some(vec![tot.iter().map(|&t| t * 30 / 100).collect(); 4]);
    let p = partition(&hg, &cfg).unwrap();
    check_caps(&hg, &p);
    // Part 0 may now carry at most 15 % of dimension 1; the others take the rest.
    let mut tight = cfg.clone();
    tight.capacities = Some(
        (0..4)
            .map(|q| {
                vec![
                    tot[0] * 30 / 100,
                    tot[1] * if q == 0 { 15 } else { 31 } / 100,
                ]
            })
            .collect(),
    );
    let r = hypergraph::refine_from(&hg, &tight, &p.parts).unwrap();
    check_caps(&hg, &r);
    assert!(r.loads[0][1] <= tot[1] * 15 / 100);
    let (km1, _) = brute_km1_cut(&hg, &r.parts);
    assert_eq!(km1, r.km1);
    // Same inputs, same result.
    assert_eq!(hypergraph::refine_from(&hg, &tight, &p.parts).unwrap(), r);
    // An initial partition of the wrong length or with a part ≥ k is refused by name.
    let e = hypergraph::refine_from(&hg, &tight, &p.parts[1..]).unwrap_err();
    assert!(e.to_string().contains("entries"), "{e}");
    let mut bad = p.parts.clone();
    bad[7] = 9;
    let e = hypergraph::refine_from(&hg, &tight, &bad).unwrap_err();
    assert!(e.to_string().contains("vertex 7"), "{e}");
}
