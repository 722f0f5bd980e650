//! Non-finite batch statistics: by default they flow into the running statistics as in
//! PyTorch; with `skip_non_finite_update` the batch's update is skipped and reported. NaN
//! and infinities in x, dy and the residual reach every output as in PyTorch.

use crate::common::*;
use wgpu_batchnorm::{
    BatchNorm, BatchNormConfig, BatchNormError, DType, Epilogue, HostRunningStats, Layout, Mode,
    Reduction, TensorShape, reference,
};

fn to_ref(r: &HostRunningStats) -> reference::RunningStats {
    reference::RunningStats {
        mean: r.mean.iter().map(|&v| f64::from(v)).collect(),
        var: r.var.iter().map(|&v| f64::from(v)).collect(),
        num_batches_tracked: r.num_batches_tracked,
    }
}

#[test]
fn non_finite_batches_default_to_pytorch_and_can_be_skipped() {
    let gpu = gpu();
    let mut rng = rng();
    let shape = TensorShape::channels_first(&[4, 3, 6, 6]).unwrap();
    let affine = Some((&[1.0f32; 3][..], &[0.0f32; 3][..]));
    for poison in [f32::INFINITY, f32::NAN, f32::NEG_INFINITY] {
        let mut bad = normal(&mut rng, shape.numel(), 1.0, 2.0);
        bad[shape.index(1, 17)] = poison;
        let good = normal(&mut rng, shape.numel(), 1.0, 2.0);

        // Default: as PyTorch, the non-finite statistics reach channel 1's running stats.
        let config = BatchNormConfig::new(3);
        let bn = BatchNorm::new(&gpu.device, config).unwrap();
        let mut running = HostRunningStats::new(3);
        let out = bn
            .forward_host(
                &gpu.queue,
                Mode::Train,
                &shape,
                &bad,
                affine,
                Some(&mut running),
            )
            .unwrap();
        assert!(!out.running_update_skipped);
        assert!(!running.var[1].is_finite(), "{poison}: {:?}", running.var);
        assert!(running.mean[0].is_finite() && running.mean[2].is_finite());
        assert_eq!(running.num_batches_tracked, 1);

        // Skipping: nothing changes and the caller is told; the next batch updates as usual.
        let config = BatchNormConfig::new(3).skip_non_finite_update(true);
        let bn = BatchNorm::new(&gpu.device, config).unwrap();
        let start = HostRunningStats {
            mean: normal(&mut rng, 3, 0.0, 1.0),
            var: uniform(&mut rng, 3, 0.5, 2.0),
            num_batches_tracked: 5,
        };
        let mut running = start.clone();
        let mut want = to_ref(&start);
        let out = bn
            .forward_host(
                &gpu.queue,
                Mode::Train,
                &shape,
                &bad,
                affine,
                Some(&mut running),
            )
            .unwrap();
        reference::forward(&config, Mode::Train, &shape, &bad, affine, Some(&mut want));
        assert!(out.running_update_skipped, "{poison}");
        assert_eq!(
            running, start,
            "{poison}: a skipped batch changed the running stats"
        );
        assert_eq!(want, to_ref(&start), "the reference skipped too");
        let out = bn
            .forward_host(
                &gpu.queue,
                Mode::Train,
                &shape,
                &good,
                affine,
                Some(&mut running),
            )
            .unwrap();
        reference::forward(&config, Mode::Train, &shape, &good, affine, Some(&mut want));
        assert!(!out.running_update_skipped);
        assert_close(
            "after a skipped batch",
            "running_mean",
            &running.mean,
            &want.mean,
            TOL,
        );
        assert_close(
            "after a skipped batch",
            "running_var",
            &running.var,
            &want.var,
            TOL,
        );
        assert_eq!(running.num_batches_tracked, 6);
    }
}

#[test]
fn skipping_needs_a_counter_buffer() {
    let gpu = gpu();
    let bn = BatchNorm::new(
        &gpu.device,
        BatchNormConfig::new(2).skip_non_finite_update(true),
    )
    .unwrap();
    let shape = TensorShape::channels_first(&[3, 2]).unwrap();
    let bufs = TrainBufs::new(&gpu.device, &shape);
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    let e = bn
        .forward(&mut encoder, Mode::Train, &shape, &bufs.forward())
        .unwrap_err();
    assert!(
        matches!(
            e,
            BatchNormError::MissingBuffer {
                name: "skipped_batches",
                ..
            }
        ),
        "{e}"
    );
}

/// The layouts and sizes that take each kernel path: channel-first with at most 64 values
/// per channel (one-pass kernels, an invocation per channel), with every channel one chunk
/// (one-pass kernels, a workgroup per channel), channel-first with several chunks per channel (separate
/// partial, finalize and elementwise passes), and channels-last (row partial passes).
const PATH_SHAPES: [(&[usize], Layout); 4] = [
    (&[2, 3, 5], Layout::ChannelsFirst),
    (&[2, 3, 5, 7], Layout::ChannelsFirst),
    (&[2, 3, 48, 48], Layout::ChannelsFirst),
    (&[3, 4, 4, 3], Layout::ChannelsLast),
];

/// One NaN or infinity in x, dy or the residual, at a random element of channel `c`.
fn injections(
    shape: &TensorShape,
    rng: &mut rand::rngs::StdRng,
    epilogue: Epilogue,
) -> Vec<Inject> {
    use rand::RngExt;
    let mut at = |c: usize| shape.index(c, rng.random_range(0..shape.per_channel()));
    let mut out = Vec::new();
    for v in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        out.push(Inject {
            x: vec![(at(1), v)],
            ..Default::default()
        });
    }
    out.push(Inject {
        dy: vec![(at(0), f32::NAN)],
        ..Default::default()
    });
    if epilogue == Epilogue::AddRelu {
        out.push(Inject {
            z: vec![(at(2), f32::NAN)],
            ..Default::default()
        });
    }
    out
}

/// NaN and infinities propagate as in PyTorch through every output (y, saved and running
/// statistics, dx, dgamma, dbeta, dz) on every path, epilogue, dtype, reduction and mode:
/// a NaN output where the reference has one, the other channels untouched.
#[test]
fn nan_and_inf_propagate_as_in_pytorch() {
    let gpu = gpu();
    let mut rng = rng();
    let mut dtypes = vec![DType::F32];
    if gpu.device.features().contains(wgpu::Features::SHADER_F16) {
        dtypes.push(DType::F16);
    }
    let mut cases = 0;
    for (dims, layout) in PATH_SHAPES {
        let shape = TensorShape::new(dims, layout).unwrap();
        for dtype in &dtypes {
            let tol = if *dtype == DType::F16 { 1e-3 } else { TOL };
            for epilogue in [Epilogue::None, Epilogue::Relu, Epilogue::AddRelu] {
                let config = BatchNormConfig::new(shape.channels())
                    .dtype(*dtype)
                    .epilogue(epilogue);
                for bn in layers(config) {
                    for mode in MODES {
                        for inject in injections(&shape, &mut rng, epilogue) {
                            check_recorded_with(
                                &gpu.device,
                                &gpu.queue,
                                &bn,
                                mode,
                                &shape,
                                ORDINARY,
                                tol,
                                &mut rng,
                                &inject,
                            );
                            cases += 1;
                        }
                    }
                }
            }
        }
    }
    eprintln!("{cases} cases");
}

/// The same for a tensor processed in pieces (a device with a 4 KiB binding limit).
#[test]
fn nan_and_inf_propagate_in_pieces() {
    let (device, queue) = small_binding_device();
    let mut rng = rng();
    let shape = TensorShape::channels_first(&[5, 3, 11, 13]).unwrap();
    for epilogue in [Epilogue::None, Epilogue::AddRelu] {
        let config = BatchNormConfig::new(3).epilogue(epilogue);
        let bn = BatchNorm::with_reduction(&device, config, Reduction::Workgroup).unwrap();
        for mode in MODES {
            for inject in injections(&shape, &mut rng, epilogue) {
                check_recorded_with(
                    &device, &queue, &bn, mode, &shape, ORDINARY, TOL, &mut rng, &inject,
                );
            }
        }
    }
}

/// The reference itself propagates: relu keeps NaN, a NaN output passes the gradient (as
/// PyTorch's `threshold_backward`), and a NaN in x makes its channel's statistics and y NaN.
#[test]
fn the_reference_propagates_nan() {
    assert!(reference::relu(f64::NAN).is_nan());
    assert_eq!(reference::relu(-2.0), 0.0);
    let g = reference::through_epilogue(&[1.0, 2.0, 3.0], &[f32::NAN, 0.0, -1.0], Epilogue::Relu);
    assert_eq!(g, [1.0, 0.0, 0.0]);
    let shape = TensorShape::channels_first(&[2, 2]).unwrap();
    let x = [1.0, f32::NAN, 3.0, 4.0];
    let f = reference::forward(
        &BatchNormConfig::new(2),
        Mode::Train,
        &shape,
        &x,
        None,
        None,
    );
    assert!(f.y[1].is_nan() && f.y[3].is_nan());
    assert!(f.y[0].is_finite() && f.y[2].is_finite());
    let mut y = f.y.clone();
    reference::apply_epilogue(&mut y, None, Epilogue::Relu);
    assert!(y[1].is_nan() && y[3].is_nan());
}
