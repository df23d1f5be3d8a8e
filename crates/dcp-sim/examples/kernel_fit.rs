//! Prints the CTA model a profile yields and its error on the profile's `attn_curve`.
//! `cargo run --release -p dcp-sim --example kernel_fit -- PROFILE`

fn main() {
    let spec = std::env::args().nth(1).unwrap_or("h100".into());
    let (p, _) = dcp_sim::Profile::load(&spec).expect("profile");
    let hw = dcp_sim::Hardware::new(p.clone());
    let km = hw.kernels();
    println!(
        "{spec}: fitted {}\n  fwd {:?}\n  bwd {:?}",
        km.fitted, km.fwd, km.bwd
    );
    for (pt, (f, b)) in p
        .attn_curve
        .iter()
        .zip(dcp_sim::cost::curve_predictions(&hw))
    {
        println!(
            "  {:>6} {:<22} fwd {:8.3} ms model {:8.3} ({:+5.1}%)  bwd {:8.3} ms model {:8.3} ({:+5.1}%)",
            pt.len,
            pt.mask,
            pt.fwd_ms,
            f / 1e3,
            (f / 1e3 / pt.fwd_ms - 1.0) * 100.0,
            pt.bwd_ms,
            b / 1e3,
            (b / 1e3 / pt.bwd_ms - 1.0) * 100.0
        );
    }
}
