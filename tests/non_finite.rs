//! Non-finite batch statistics: by default they flow into the running statistics as in
//! PyTorch; with `skip_non_finite_update` the batch's update is skipped and reported.

mod common;

use common::*;
use wgpu_batchnorm::{
    BatchNorm, BatchNormConfig, BatchNormError, HostRunningStats, Mode, TensorShape, reference,
};

fn to_ref(r: &HostRunningStats) -> reference::RunningStats {
    reference::RunningStats {
        mean: r.mean.iter().map(|&v| f64::from(v)).collect(),
        var: r.var.iter().map(|&v| f64::from(v)).collect(),
        num_batches_tracked: u64::from(r.num_batches_tracked),
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
