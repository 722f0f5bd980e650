//! One training round and one eval round of batch norm on the default adapter, checked
//! against the f64 CPU reference.
//!
//! ```text
//! cargo run --release --example train_step
//! WGPU_BACKEND=gl cargo run --release --example train_step
//! ```

mod common;

use common::normal;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use wgpu_batchnorm::{
    BatchNorm, BatchNormConfig, HeadlessGpu, HostRunningStats, Mode, TensorShape, reference,
};

fn report(name: &str, got: &[f32], want: &[f64], worst: &mut f64) {
    let (err, at) = reference::relative_l2_error(got, want);
    *worst = worst.max(err);
    println!("  {name:<14} relative L2 error {err:.2e} (largest difference at index {at})");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gpu = HeadlessGpu::open()?;
    println!("adapter: {}", gpu.describe());
    let seed: u64 = rand::rng().random();
    let mut rng = StdRng::seed_from_u64(seed);
    println!("seed: {seed}");

    let (n, c, h, w) = (8, 16, 28, 28);
    let shape = TensorShape::channels_first(&[n, c, h, w])?;
    let config = BatchNormConfig::new(c);
    let bn = BatchNorm::new(&gpu.device, config)?;
    println!(
        "BatchNorm2d({c}), input (N, C, H, W) = {:?}, {} reductions",
        shape.dims(),
        if bn.uses_subgroups() {
            "subgroup"
        } else {
            "workgroup"
        }
    );

    let x = normal(&mut rng, shape.numel(), 3.0, 2.0);
    let dy = normal(&mut rng, shape.numel(), 0.0, 1.0);
    let gamma = normal(&mut rng, c, 1.0, 0.2);
    let beta = normal(&mut rng, c, 0.0, 0.2);
    let mut running = HostRunningStats::new(c);
    let mut ref_running = reference::RunningStats::new(c);
    let mut worst = 0.0f64;

    println!("training forward + backward:");
    let fwd = bn.forward_host(
        &gpu.queue,
        Mode::Train,
        &shape,
        &x,
        Some((&gamma, &beta)),
        Some(&mut running),
    )?;
    let want = reference::forward(
        &config,
        Mode::Train,
        &shape,
        &x,
        Some((&gamma, &beta)),
        Some(&mut ref_running),
    );
    let (save_mean, save_invstd) = fwd.saved.as_ref().expect("training saves statistics");
    let (want_mean, want_invstd) = want.saved.as_ref().expect("training saves statistics");
    report("y", &fwd.y, &want.y, &mut worst);
    report("saved mean", save_mean, want_mean, &mut worst);
    report("saved invstd", save_invstd, want_invstd, &mut worst);
    report("running mean", &running.mean, &ref_running.mean, &mut worst);
    report("running var", &running.var, &ref_running.var, &mut worst);

    let bwd = bn.backward_host(
        &gpu.queue,
        Mode::Train,
        &shape,
        &x,
        &dy,
        Some(&gamma),
        Some((save_mean, save_invstd)),
        None,
    )?;
    let want = reference::backward(
        &config,
        Mode::Train,
        &shape,
        &x,
        &dy,
        Some(&gamma),
        Some((save_mean, save_invstd)),
        None,
    );
    let (dgamma, dbeta) = bwd.dgamma_dbeta.as_ref().expect("affine gives grads");
    let (want_dgamma, want_dbeta) = want.dgamma_dbeta.as_ref().expect("affine gives grads");
    report("dx", &bwd.dx, &want.dx, &mut worst);
    report("dgamma", dgamma, want_dgamma, &mut worst);
    report("dbeta", dbeta, want_dbeta, &mut worst);

    println!("eval forward + backward (running statistics):");
    let fwd = bn.forward_host(
        &gpu.queue,
        Mode::Eval,
        &shape,
        &x,
        Some((&gamma, &beta)),
        Some(&mut running),
    )?;
    let want = reference::forward(
        &config,
        Mode::Eval,
        &shape,
        &x,
        Some((&gamma, &beta)),
        Some(&mut ref_running),
    );
    report("y", &fwd.y, &want.y, &mut worst);
    let bwd = bn.backward_host(
        &gpu.queue,
        Mode::Eval,
        &shape,
        &x,
        &dy,
        Some(&gamma),
        None,
        Some(&running),
    )?;
    let want = reference::backward(
        &config,
        Mode::Eval,
        &shape,
        &x,
        &dy,
        Some(&gamma),
        None,
        Some(&ref_running),
    );
    report("dx", &bwd.dx, &want.dx, &mut worst);

    let bound = 1e-5;
    if worst <= bound {
        println!("ok: every result within relative L2 error {bound:.0e} of the f64 reference");
        Ok(())
    } else {
        Err(format!("largest relative L2 error {worst:.2e} exceeds {bound:.0e}").into())
    }
}
