//! One training step and one eval step of a `BatchNormLayer` on the default adapter, each
//! recorded into one encoder as training code would, every result read back and checked
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
    BatchNormConfig, BatchNormLayer, HeadlessGpu, Mode, TensorShape, read_f32, reference,
    upload_f32,
};

fn report(name: &str, got: &[f32], want: &[f64], worst: &mut f64) {
    let (err, at) = reference::relative_l2_error(got, want);
    *worst = worst.max(err);
    println!("  {name:<14} relative L2 error {err:.2e} (largest difference at index {at})");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gpu = HeadlessGpu::open()?;
    let (device, queue) = (&gpu.device, &gpu.queue);
    println!("adapter: {}", gpu.describe());
    let seed: u64 = rand::rng().random();
    let mut rng = StdRng::seed_from_u64(seed);
    println!("seed: {seed}");

    let (n, c, h, w) = (8, 16, 28, 28);
    let shape = TensorShape::channels_first(&[n, c, h, w])?;
    let config = BatchNormConfig::new(c);
    let mut bn = BatchNormLayer::batch_norm_2d(device, config, "bn1")?;
    let subgroups = bn.batch_norm().uses_subgroups();
    let reduction = if subgroups { "subgroup" } else { "workgroup" };
    println!(
        "BatchNorm2d({c}), input (N, C, H, W) = {:?}, {reduction} reductions",
        shape.dims()
    );

    // Trained weight and bias, as from a checkpoint (`load_checkpoint` reads PyTorch's).
    let gamma = normal(&mut rng, c, 1.0, 0.2);
    let beta = normal(&mut rng, c, 0.0, 0.2);
    let mut state = bn.state(queue)?;
    (state.weight, state.bias) = (Some(gamma.clone()), Some(beta.clone()));
    bn.load_state(queue, &state)?;

    let x = normal(&mut rng, shape.numel(), 3.0, 2.0);
    let dy = normal(&mut rng, shape.numel(), 0.0, 1.0);
    let poison = vec![f32::NAN; shape.numel()];
    let (xb, dyb) = (upload_f32(device, "x", &x)?, upload_f32(device, "dy", &dy)?);
    let (yb, dxb) = (
        upload_f32(device, "y", &poison)?,
        upload_f32(device, "dx", &poison)?,
    );
    let mut ref_running = reference::RunningStats::new(c);
    let affine = Some((gamma.as_slice(), beta.as_slice()));
    let mut worst = 0.0f64;

    for mode in [Mode::Train, Mode::Eval] {
        println!("{mode:?} forward + backward, one encoder:");
        if mode == Mode::Eval {
            bn.eval();
        }
        let mut encoder = device.create_command_encoder(&Default::default());
        bn.zero_grad(&mut encoder);
        bn.forward(&mut encoder, &shape, xb.slice(..), yb.slice(..))?;
        // ... the rest of the network's forward and backward, producing dy ...
        bn.backward(
            &mut encoder,
            xb.slice(..),
            yb.slice(..),
            dyb.slice(..),
            dxb.slice(..),
        )?;
        queue.submit([encoder.finish()]);

        let before = ref_running.clone();
        let want = reference::forward(&config, mode, &shape, &x, affine, Some(&mut ref_running));
        report(
            "y",
            &read_f32(device, queue, yb.slice(..))?,
            &want.y,
            &mut worst,
        );
        let (sm, si) = bn.saved();
        let saved = (
            read_f32(device, queue, sm.slice(..))?,
            read_f32(device, queue, si.slice(..))?,
        );
        if let Some((want_mean, want_invstd)) = &want.saved {
            report("saved mean", &saved.0, want_mean, &mut worst);
            report("saved invstd", &saved.1, want_invstd, &mut worst);
        }
        let state = bn.state(queue)?;
        let running = (
            state.running_mean.unwrap_or_default(),
            state.running_var.unwrap_or_default(),
        );
        report("running mean", &running.0, &ref_running.mean, &mut worst);
        report("running var", &running.1, &ref_running.var, &mut worst);

        let batch = mode == Mode::Train;
        let saved_arg = batch.then_some((saved.0.as_slice(), saved.1.as_slice()));
        let want = reference::backward(
            &config,
            mode,
            &shape,
            &x,
            &dy,
            Some(&gamma),
            saved_arg,
            Some(&before),
        );
        report(
            "dx",
            &read_f32(device, queue, dxb.slice(..))?,
            &want.dx,
            &mut worst,
        );
        let (dgamma, dbeta) = bn.grads().expect("affine gives grads");
        let (want_dgamma, want_dbeta) = want.dgamma_dbeta.as_ref().expect("affine gives grads");
        report(
            "dgamma",
            &read_f32(device, queue, dgamma.slice(..))?,
            want_dgamma,
            &mut worst,
        );
        report(
            "dbeta",
            &read_f32(device, queue, dbeta.slice(..))?,
            want_dbeta,
            &mut worst,
        );
    }

    let bound = 1e-5;
    if worst <= bound {
        println!("ok: every result within relative L2 error {bound:.0e} of the f64 reference");
        Ok(())
    } else {
        Err(format!("largest relative L2 error {worst:.2e} exceeds {bound:.0e}").into())
    }
}
