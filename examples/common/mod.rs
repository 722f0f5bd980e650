//! Helpers shared by the examples (not an example itself: Cargo takes only `examples/*.rs`
//! and `examples/*/main.rs` as examples).

use rand::{RngExt, rngs::StdRng};

/// `n` normal values with the given mean and standard deviation (Box-Muller).
pub fn normal(rng: &mut StdRng, n: usize, mean: f64, std: f64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random::<f64>();
            (mean + std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        })
        .collect()
}
