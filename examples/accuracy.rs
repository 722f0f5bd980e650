//! Accuracy of every training output on "ordinary" data, each relative to itself, against
//! the f64 CPU reference: per-channel mean 0.01 of the standard deviation, 8,192 and 65,536
//! values per channel, channel-first and channels-last. The hardening issue's yardstick is
//! PyTorch's own f32 error on such data (its CPU path accumulates in double: about 1e-8 on
//! the mean); this prints ours, so a change to the statistics can be judged by it.
//! `tests/suite/pytorch.rs` compares with PyTorch itself on twenty committed cases.
//!
//! ```text
//! cargo run --release --example accuracy
//! WGPU_BACKEND=gl cargo run --release --example accuracy
//! ```

mod common;

use common::normal;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use wgpu_batchnorm::{
    BatchNorm, BatchNormConfig, HeadlessGpu, HostRunningStats, Layout, Mode, TensorShape, reference,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gpu = HeadlessGpu::open()?;
    println!("adapter: {}", gpu.describe());
    let seed: u64 = std::env::var("WGPU_BATCHNORM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    println!("seed: {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "shape", "mean", "invstd", "y", "run_mean", "run_var", "dx", "dgamma", "dbeta"
    );
    let cases: [(&[usize], Layout); 4] = [
        (&[8, 16, 32, 32], Layout::ChannelsFirst),
        (&[16, 16, 64, 64], Layout::ChannelsFirst),
        (&[8, 32, 32, 16], Layout::ChannelsLast),
        (&[16, 64, 64, 16], Layout::ChannelsLast),
    ];
    for (dims, layout) in cases {
        let shape = TensorShape::new(dims, layout)?;
        let c = shape.channels();
        let config = BatchNormConfig::new(c);
        let bn = BatchNorm::new(&gpu.device, config)?;
        let x = normal(&mut rng, shape.numel(), 0.01, 1.0);
        let dy = normal(&mut rng, shape.numel(), 0.0, 1.0);
        let gamma = normal(&mut rng, c, 1.0, 0.2);
        let beta = normal(&mut rng, c, 0.0, 0.2);
        let affine = Some((gamma.as_slice(), beta.as_slice()));
        let mut running = HostRunningStats::new(c);
        let mut want_running = reference::RunningStats::new(c);
        let got = bn.forward_host(
            &gpu.queue,
            Mode::Train,
            &shape,
            &x,
            affine,
            Some(&mut running),
        )?;
        let want = reference::forward(
            &config,
            Mode::Train,
            &shape,
            &x,
            affine,
            Some(&mut want_running),
        );
        let (gm, gi) = got.saved.as_ref().expect("training saves statistics");
        let (wm, wi) = want.saved.as_ref().expect("training saves statistics");
        // The backward from the exact statistics, so that its error includes the forward's.
        let back = bn.backward_host(
            &gpu.queue,
            Mode::Train,
            &shape,
            &x,
            &dy,
            Some(&gamma),
            Some((gm, gi)),
            None,
        )?;
        let want_back = reference::backward(
            &config,
            Mode::Train,
            &shape,
            &x,
            &dy,
            Some(&gamma),
            None,
            None,
        );
        let (gdg, gdb) = back.dgamma_dbeta.as_ref().expect("affine");
        let (wdg, wdb) = want_back.dgamma_dbeta.as_ref().expect("affine");
        let e = |got: &[f32], want: &[f64]| reference::relative_l2_error(got, want).0;
        println!(
            "{:<28} {:>9.2e} {:>9.2e} {:>9.2e} {:>9.2e} {:>9.2e} {:>9.2e} {:>9.2e} {:>9.2e}",
            format!("{layout:?} {dims:?}"),
            e(gm, wm),
            e(gi, wi),
            e(&got.y, &want.y),
            e(&running.mean, &want_running.mean),
            e(&running.var, &want_running.var),
            e(&back.dx, &want_back.dx),
            e(gdg, wdg),
            e(gdb, wdb),
        );
    }
    println!("(relative L2 error of each output against the f64 reference, relative to itself)");
    Ok(())
}
