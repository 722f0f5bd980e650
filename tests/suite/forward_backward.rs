//! GPU results against the f64 CPU reference: every mode, option, layout and reduction path,
//! odd sizes, long channels, many channels, several training steps, data far from zero,
//! and run-to-run determinism.

use crate::common::*;
use wgpu_batchnorm::{
    BatchNorm, BatchNormConfig, Epilogue, HostRunningStats, Layout, Mode, Reduction, TensorShape,
    reference,
};

/// Every option combination, both modes, every reduction path, on each shape.
fn every_option(shapes: &[&[usize]], layout: Layout) {
    let mut rng = rng();
    for dims in shapes {
        let shape = TensorShape::new(dims, layout).unwrap();
        for affine in [true, false] {
            for track in [true, false] {
                for momentum in [Some(0.1), None] {
                    let config = BatchNormConfig::new(shape.channels())
                        .affine(affine)
                        .track_running_stats(track)
                        .momentum(momentum);
                    check_every_layer(config, &shape, ORDINARY, TOL, &mut rng);
                }
            }
        }
    }
}

#[test]
fn every_option_and_mode_channels_first() {
    // BatchNorm1d (N, C) and (N, C, L), BatchNorm2d, BatchNorm3d.
    every_option(
        &[&[7, 5], &[3, 5, 11], &[2, 3, 7, 9], &[2, 3, 3, 5, 7]],
        Layout::ChannelsFirst,
    );
}

#[test]
fn every_option_and_mode_channels_last() {
    every_option(
        &[&[7, 5], &[3, 11, 5], &[2, 7, 9, 3], &[2, 3, 5, 7, 3]],
        Layout::ChannelsLast,
    );
}

#[test]
fn eps_and_momentum_values_are_honoured() {
    let gpu = gpu();
    let mut rng = rng();
    let shape = TensorShape::channels_first(&[4, 3, 5, 5]).unwrap();
    for (eps, momentum) in [(1e-3, Some(0.3)), (0.5, Some(1.0)), (0.0, Some(0.0))] {
        let config = BatchNormConfig::new(3).eps(eps).momentum(momentum);
        let bn = BatchNorm::new(&gpu.device, config).unwrap();
        for mode in [Mode::Train, Mode::Eval] {
            check(&bn, mode, &shape, ORDINARY, TOL, &mut rng);
        }
    }
}

#[test]
fn sizes_that_are_not_multiples_of_the_workgroup() {
    let mut rng = rng();
    let shapes: [(&[usize], Layout); 6] = [
        (&[3, 4, 257], Layout::ChannelsFirst),
        (&[5, 2, 1023], Layout::ChannelsFirst),
        (&[1, 3, 17, 31], Layout::ChannelsFirst),
        (&[513, 3], Layout::ChannelsLast),
        (&[2, 13, 19, 7], Layout::ChannelsLast),
        (&[5, 1, 1], Layout::ChannelsFirst),
    ];
    for (dims, layout) in shapes {
        let shape = TensorShape::new(dims, layout).unwrap();
        let config = BatchNormConfig::new(shape.channels());
        check_every_layer(config, &shape, ORDINARY, TOL, &mut rng);
    }
}

#[test]
fn long_channels_split_across_many_workgroups() {
    // 130,000 values per channel: far more than one workgroup's 256 invocations take, so
    // each channel's statistics come from many partials merged in a second dispatch.
    let mut rng = rng();
    let shapes: [(&[usize], Layout); 2] = [
        (&[2, 2, 260, 250], Layout::ChannelsFirst),
        (&[4, 130, 250, 3], Layout::ChannelsLast),
    ];
    for (dims, layout) in shapes {
        let shape = TensorShape::new(dims, layout).unwrap();
        for bn in layers(BatchNormConfig::new(shape.channels())) {
            check(&bn, Mode::Train, &shape, ORDINARY, TOL, &mut rng);
        }
    }
}

#[test]
fn many_channels() {
    // More channels than one workgroup of the per-channel kernels covers.
    let gpu = gpu();
    let mut rng = rng();
    let shapes: [(&[usize], Layout); 3] = [
        (&[6, 1000], Layout::ChannelsFirst),
        (&[2, 300, 3], Layout::ChannelsFirst),
        (&[2, 3, 3, 600], Layout::ChannelsLast),
    ];
    for (dims, layout) in shapes {
        let shape = TensorShape::new(dims, layout).unwrap();
        let bn = BatchNorm::new(&gpu.device, BatchNormConfig::new(shape.channels())).unwrap();
        for mode in [Mode::Train, Mode::Eval] {
            check(&bn, mode, &shape, ORDINARY, TOL, &mut rng);
        }
    }
}

/// Many channels with few values each, on both sides of the per-channel-invocation
/// kernels' bound (64 values): 1 (eval only: training refuses it), 2, 3, 17, 64 and 65 values
/// per channel, channel-first with the values contiguous (1, C, M), strided (M, C) and
/// mixed (2, C, M / 2); every reduction, both modes, with and without the fused epilogue.
#[test]
fn many_channels_with_few_values_each() {
    let mut rng = rng();
    let c = 700;
    for m in [1usize, 2, 3, 17, 64, 65] {
        let mut shapes = vec![vec![1, c, m], vec![m, c]];
        if m % 2 == 0 {
            shapes.push(vec![2, c, m / 2]);
        }
        for dims in shapes {
            let shape = TensorShape::channels_first(&dims).unwrap();
            for epilogue in [Epilogue::None, Epilogue::AddRelu] {
                let config = BatchNormConfig::new(c).epilogue(epilogue);
                for bn in layers(config) {
                    let modes: &[Mode] = if m == 1 { &[Mode::Eval] } else { &MODES };
                    for &mode in modes {
                        let gpu = gpu();
                        check_recorded(&gpu.device, &gpu.queue, &bn, mode, &shape, TOL, &mut rng);
                    }
                }
            }
        }
    }
}

#[test]
fn running_statistics_over_several_training_steps() {
    // 6 channels, and 2,000 (the running update then spans 8 workgroups, all of which must
    // read the count before it is incremented).
    let gpu = gpu();
    let mut rng = rng();
    for dims in [&[4, 6, 9, 11][..], &[3, 2000, 2]] {
        let shape = TensorShape::channels_first(dims).unwrap();
        let c = shape.channels();
        for momentum in [Some(0.1), None] {
            let config = BatchNormConfig::new(c).momentum(momentum);
            let bn = BatchNorm::new(&gpu.device, config).unwrap();
            let mut running = HostRunningStats::new(c);
            let mut want = reference::RunningStats::new(c);
            for step in 1..=6 {
                let case = format!("{dims:?} momentum {momentum:?} step {step}");
                // Each batch from a different distribution, so the average matters.
                let x = normal(
                    &mut rng,
                    shape.numel(),
                    step as f64,
                    1.0 + step as f64 * 0.5,
                );
                let gamma = normal(&mut rng, c, 1.0, 0.3);
                let beta = normal(&mut rng, c, 0.0, 0.3);
                let affine = Some((gamma.as_slice(), beta.as_slice()));
                let got = bn
                    .forward_host(
                        &gpu.queue,
                        Mode::Train,
                        &shape,
                        &x,
                        affine,
                        Some(&mut running),
                    )
                    .unwrap();
                let w =
                    reference::forward(&config, Mode::Train, &shape, &x, affine, Some(&mut want));
                assert_close(&case, "y", &got.y, &w.y, TOL);
                let mean_abs = running_mean_abs(&want.mean, &reference::mean_abs(&shape, &x));
                assert_close_scaled(
                    &case,
                    "running_mean",
                    &running.mean,
                    &want.mean,
                    &mean_abs,
                    TOL,
                );
                assert_close(&case, "running_var", &running.var, &want.var, TOL);
                assert_eq!(running.num_batches_tracked, step, "{case}");
            }
            // Eval with the accumulated statistics.
            check(&bn, Mode::Eval, &shape, ORDINARY, TOL, &mut rng);
        }
    }
}

#[test]
fn data_far_from_zero_mean() {
    // Mean 10^4 times the standard deviation, at two scales: naive E[x^2] - E[x]^2 in f32
    // gives garbage or negative variances here.
    let mut rng = rng();
    let shapes: [(&[usize], Layout); 2] = [
        (&[4, 3, 40, 40], Layout::ChannelsFirst),
        (&[8, 20, 20, 3], Layout::ChannelsLast),
    ];
    for data in [
        Data {
            mean: 1e4,
            std: 1.0,
        },
        Data {
            mean: 1e2,
            std: 1e-2,
        },
    ] {
        for (dims, layout) in shapes {
            let shape = TensorShape::new(dims, layout).unwrap();
            let config = BatchNormConfig::new(shape.channels());
            check_every_layer(config, &shape, data, TOL_FAR_MEAN, &mut rng);
        }
    }
}

/// Data whose variance is finite in f32 but whose sum of squared deviations is not: std
/// 10^18 over 4,800 and 2,400 values per channel (M2 about 5e39 > f32's 3.4e38). The
/// statistics are kept as variances, so every output stays finite and exact; before, y
/// came out as beta and the running variance infinite. Every path: separate passes, rows,
/// a workgroup per channel, an invocation per channel.
#[test]
fn huge_variance_does_not_overflow() {
    let mut rng = rng();
    let shapes: [(&[usize], Layout); 4] = [
        (&[3, 3, 40, 40], Layout::ChannelsFirst),
        (&[6, 20, 20, 3], Layout::ChannelsLast),
        (&[3, 3, 20, 15], Layout::ChannelsFirst),
        (&[2, 3, 30], Layout::ChannelsFirst),
    ];
    for data in [
        Data {
            mean: 0.0,
            std: 1e18,
        },
        Data {
            mean: 3e18,
            std: 1e18,
        },
    ] {
        for (dims, layout) in shapes {
            let shape = TensorShape::new(dims, layout).unwrap();
            let config = BatchNormConfig::new(shape.channels());
            check_every_layer(config, &shape, data, TOL, &mut rng);
        }
    }
}

#[test]
fn two_runs_give_identical_bits() {
    let gpu = gpu();
    let mut rng = rng();
    let shape = TensorShape::channels_first(&[4, 3, 150, 150]).unwrap();
    let x = normal(&mut rng, shape.numel(), 1.0, 3.0);
    let dy = normal(&mut rng, shape.numel(), 0.0, 1.0);
    let gamma = normal(&mut rng, 3, 1.0, 0.3);
    let beta = normal(&mut rng, 3, 0.0, 0.3);
    for reduction in reductions(gpu) {
        let bn =
            BatchNorm::with_reduction(&gpu.device, BatchNormConfig::new(3), reduction).unwrap();
        let run = || {
            let mut running = HostRunningStats::new(3);
            let f = bn
                .forward_host(
                    &gpu.queue,
                    Mode::Train,
                    &shape,
                    &x,
                    Some((&gamma, &beta)),
                    Some(&mut running),
                )
                .unwrap();
            let (m, s) = f.saved.clone().unwrap();
            let b = bn
                .backward_host(
                    &gpu.queue,
                    Mode::Train,
                    &shape,
                    &x,
                    &dy,
                    Some(&gamma),
                    Some((&m, &s)),
                    None,
                )
                .unwrap();
            (f, running, b)
        };
        let first = run();
        let second = run();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&first.0.y), bits(&second.0.y), "{reduction:?}: y");
        let (m1, s1) = first.0.saved.as_ref().unwrap();
        let (m2, s2) = second.0.saved.as_ref().unwrap();
        assert_eq!(bits(m1), bits(m2), "{reduction:?}: save_mean");
        assert_eq!(bits(s1), bits(s2), "{reduction:?}: save_invstd");
        assert_eq!(bits(&first.1.mean), bits(&second.1.mean), "{reduction:?}");
        assert_eq!(bits(&first.1.var), bits(&second.1.var), "{reduction:?}");
        assert_eq!(bits(&first.2.dx), bits(&second.2.dx), "{reduction:?}: dx");
        let (g1, b1) = first.2.dgamma_dbeta.as_ref().unwrap();
        let (g2, b2) = second.2.dgamma_dbeta.as_ref().unwrap();
        assert_eq!(bits(g1), bits(g2), "{reduction:?}: dgamma");
        assert_eq!(bits(b1), bits(b2), "{reduction:?}: dbeta");
    }
}

#[test]
fn subgroup_kernels_are_used_when_available() {
    let gpu = gpu();
    let has = gpu.device.features().contains(wgpu::Features::SUBGROUP);
    let bn = BatchNorm::new(&gpu.device, BatchNormConfig::new(2)).unwrap();
    assert_eq!(bn.uses_subgroups(), has);
    let forced =
        BatchNorm::with_reduction(&gpu.device, BatchNormConfig::new(2), Reduction::Subgroup);
    assert_eq!(forced.is_ok(), has);
}
