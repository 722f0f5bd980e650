//! Reliability: tensors larger than one binding, grids beyond the workgroup-count limit,
//! empty batches, several threads, a lost device.

use std::sync::Arc;

use crate::common::*;
use rand::rngs::StdRng;
use wgpu_batchnorm::{
    BatchNorm, BatchNormConfig, BatchNormError, ChannelStats, HeadlessGpu, HostRunningStats,
    Layout, Mode, TensorShape, Tuning, reference,
};

/// Forward and backward of one case on `queue`, compared with the reference.
fn check_case(
    bn: &BatchNorm,
    queue: &wgpu::Queue,
    mode: Mode,
    shape: &TensorShape,
    rng: &mut StdRng,
) {
    check_on(queue, bn, mode, shape, ORDINARY, TOL, rng);
}

/// Shapes whose pieces (1024 values at most, offsets multiples of 64 values) start within
/// rows, within channel planes, and span several rows; the vec4 elementwise kernels take
/// the planes of 100 and 2,500 values and the 12 channels-last ones (pieces of 1,024
/// values then start at channel 4 or 8 of a row).
const PIECE_SHAPES: [(&[usize], Layout); 7] = [
    (&[8, 3, 10, 10], Layout::ChannelsFirst),
    (&[1, 2, 50, 50], Layout::ChannelsFirst),
    (&[3, 5, 7, 11], Layout::ChannelsFirst),
    (&[300, 5], Layout::ChannelsFirst),
    (&[4, 9, 9, 7], Layout::ChannelsLast),
    (&[2, 3, 7, 5, 11], Layout::ChannelsLast),
    (&[3, 7, 5, 12], Layout::ChannelsLast),
];

#[test]
fn tensors_beyond_the_binding_limit_are_processed_in_pieces() {
    // A 4 KiB binding limit and 256-byte offset alignment make small tensors need pieces.
    let (device, queue) = small_binding_device();
    let mut rng = rng();
    for (dims, layout) in PIECE_SHAPES {
        let shape = TensorShape::new(dims, layout).unwrap();
        assert!(shape.numel() * 4 > 4096, "{dims:?} fits one binding");
        for affine in [true, false] {
            for track in [true, false] {
                let config = BatchNormConfig::new(shape.channels())
                    .affine(affine)
                    .track_running_stats(track);
                let bn = BatchNorm::new(&device, config).unwrap();
                for mode in [Mode::Train, Mode::Eval] {
                    check_case(&bn, &queue, mode, &shape, &mut rng);
                }
            }
        }
    }
}

/// Shapes whose partials, over all their pieces, do not fit one 4 KiB binding (100 and 128
/// channels: at most 2 records per channel), so that each piece's partials are
/// folded into running records before the next piece (`Plan::fold`): the hardening
/// issue's 128-channel tensor in 3 pieces among them.
const FOLDED_SHAPES: [(&[usize], Layout); 4] = [
    (&[24, 128], Layout::ChannelsFirst),
    (&[4, 128, 3, 3], Layout::ChannelsFirst),
    (&[2, 5, 5, 128], Layout::ChannelsLast),
    (&[3, 100, 4, 4], Layout::ChannelsFirst),
];

#[test]
fn partials_beyond_one_binding_are_folded_piece_by_piece() {
    let (device, queue) = small_binding_device();
    let mut rng = rng();
    for (dims, layout) in FOLDED_SHAPES {
        let shape = TensorShape::new(dims, layout).unwrap();
        let pieces = (shape.numel() * 4).div_ceil(4096);
        assert!(
            pieces * shape.channels() * 16 > 4096,
            "{dims:?}: the partials of its {pieces} pieces fit one binding"
        );
        for affine in [true, false] {
            let config = BatchNormConfig::new(shape.channels()).affine(affine);
            let bn = BatchNorm::new(&device, config).unwrap();
            for mode in [Mode::Train, Mode::Eval] {
                check_case(&bn, &queue, mode, &shape, &mut rng);
            }
            // The statistics-only pass folds the same way.
            let x = normal(&mut rng, shape.numel(), 0.5, 2.0);
            let xb = upload_f32(&device, &x);
            let out = upload_f32(&device, &vec![f32::NAN; 4 * shape.channels()]);
            let mut encoder = device.create_command_encoder(&Default::default());
            bn.statistics(&mut encoder, &shape, xb.slice(..), out.slice(..))
                .unwrap();
            queue.submit([encoder.finish()]);
            let got = ChannelStats::from_gpu(&read_f32(&device, &queue, &out)).unwrap();
            let want = ChannelStats::of(&shape, &x);
            let case = format!("{dims:?} statistics");
            let mean: Vec<f32> = got.mean.iter().map(|&m| m as f32).collect();
            assert_close(&case, "mean", &mean, &want.mean, TOL);
            let var: Vec<f32> = got.variance().iter().map(|&v| v as f32).collect();
            assert_close(&case, "variance", &var, &want.variance(), TOL);
            assert_eq!(got.count, want.count, "{case}: counts");
        }
    }
}

/// A record per invocation of the partial passes (`Tuning::invocation_records`, here for
/// any count of values) in tensors processed in pieces: on a 4 KiB binding their records
/// fold piece by piece ((2048, 2) takes rows of 128 invocations, whose 512 records per
/// channel exceed the 128 one binding holds); on a 64 KiB binding with one chunk per piece,
/// two shapes keep every piece's records side by side (each piece at its own slots).
#[test]
fn invocation_records_in_pieces_and_folds() {
    let mut rng = rng();
    let records = Tuning {
        invocation_records: 1,
        ..Tuning::CPU
    };
    let small = small_binding_device();
    let wide = device_with(|l| {
        l.max_storage_buffer_binding_size = 64 << 10;
        l.min_storage_buffer_offset_alignment = 256;
    });
    let folded = PIECE_SHAPES
        .into_iter()
        .chain(FOLDED_SHAPES)
        .chain([(&[2048, 2][..], Layout::ChannelsFirst)])
        .map(|(dims, layout)| (dims, layout, true));
    let unfolded = [
        (&[8192, 4][..], Layout::ChannelsFirst, false),
        (&[4, 2, 64, 64], Layout::ChannelsFirst, false),
    ];
    let mut with_records = 0;
    for (dims, layout, fold) in folded.chain(unfolded) {
        let ((device, queue), tuning) = match fold {
            true => (&small, records),
            false => (
                &wide,
                Tuning {
                    target_workgroups: 1,
                    ..records
                },
            ),
        };
        let shape = TensorShape::new(dims, layout).unwrap();
        let config = BatchNormConfig::new(shape.channels());
        let bn = BatchNorm::new(device, config).unwrap().with_tuning(tuning);
        let bufs = TrainBufs::new(device, &shape);
        let dispatches = bn
            .forward_dispatches(Mode::Train, &shape, &bufs.forward())
            .unwrap();
        let partials = dispatches.iter().filter(|d| d.invocation_records).count();
        with_records += usize::from(partials > 0);
        if !fold {
            let merges = dispatches
                .iter()
                .filter(|d| d.kernel == "stats_merge")
                .count();
            assert!(partials >= 2 && merges == 0, "{dims:?}: {dispatches:?}");
        }
        for mode in [Mode::Train, Mode::Eval] {
            check_case(&bn, queue, mode, &shape, &mut rng);
        }
    }
    assert!(
        with_records >= 6,
        "only {with_records} shapes took invocation records"
    );
}

#[test]
fn per_channel_scratch_beyond_one_binding_is_a_typed_error() {
    // 32 bytes of per-channel scratch per channel: 129 channels need 4,128 > 4,096.
    let (device, queue) = small_binding_device();
    let shape = TensorShape::channels_first(&[2, 129]).unwrap();
    let bn = BatchNorm::new(&device, BatchNormConfig::new(129)).unwrap();
    let x = vec![0.0; shape.numel()];
    let mut running = HostRunningStats::new(129);
    let err = bn
        .forward_host(
            &queue,
            Mode::Train,
            &shape,
            &x,
            Some((&[1.0; 129], &[0.0; 129])),
            Some(&mut running),
        )
        .unwrap_err();
    match err {
        BatchNormError::ExceedsLimit {
            name: "scratch per-channel",
            bytes: 4128,
            limit_name: "max_storage_buffer_binding_size",
            limit: 4096,
        } => {}
        other => panic!("expected ExceedsLimit for the per-channel scratch, got {other:?}"),
    }
}

#[test]
fn pieces_with_shared_memory_reductions_and_data_far_from_zero() {
    let (device, queue) = small_binding_device();
    let mut rng = rng();
    let shape = TensorShape::channels_first(&[4, 3, 20, 20]).unwrap();
    let config = BatchNormConfig::new(3);
    let bn =
        BatchNorm::with_reduction(&device, config, wgpu_batchnorm::Reduction::Workgroup).unwrap();
    check_case(&bn, &queue, Mode::Train, &shape, &mut rng);
    // Each piece has its own shift; merging them must keep far-from-zero data exact.
    let x = normal(&mut rng, shape.numel(), 1e4, 1.0);
    let mut running = HostRunningStats::new(3);
    let got = bn
        .forward_host(
            &queue,
            Mode::Train,
            &shape,
            &x,
            Some((&[1.0; 3], &[0.0; 3])),
            Some(&mut running),
        )
        .unwrap();
    let want = reference::forward(
        &config,
        Mode::Train,
        &shape,
        &x,
        Some((&[1.0; 3], &[0.0; 3])),
        Some(&mut reference::RunningStats::new(3)),
    );
    assert_close("far from zero, pieces", "y", &got.y, &want.y, TOL_FAR_MEAN);
}

#[test]
fn grids_beyond_the_workgroup_count_limit() {
    // With at most 4 workgroups per dimension, the partial passes need 2D grids and the
    // elementwise passes loop; results must not change.
    let (device, queue) = device_with(|l| l.max_compute_workgroups_per_dimension = 4);
    let mut rng = rng();
    let shapes: [(&[usize], Layout); 3] = [
        (&[4, 7, 30, 30], Layout::ChannelsFirst),
        (&[8, 2000], Layout::ChannelsFirst),
        (&[4, 30, 30, 5], Layout::ChannelsLast),
    ];
    for (dims, layout) in shapes {
        let shape = TensorShape::new(dims, layout).unwrap();
        let bn = BatchNorm::new(&device, BatchNormConfig::new(shape.channels())).unwrap();
        for mode in [Mode::Train, Mode::Eval] {
            check_case(&bn, &queue, mode, &shape, &mut rng);
        }
    }
}

#[test]
fn empty_batch_behaves_like_pytorch() {
    // PyTorch: an empty output, running mean and variance unchanged, num_batches_tracked
    // incremented by the module, zero gradients for gamma and beta.
    let gpu = gpu();
    let mut rng = rng();
    let shapes: [(&[usize], Layout); 4] = [
        (&[0, 3], Layout::ChannelsFirst),
        (&[0, 3, 4, 4], Layout::ChannelsFirst),
        (&[2, 3, 0], Layout::ChannelsFirst),
        (&[0, 5, 5, 3], Layout::ChannelsLast),
    ];
    for (dims, layout) in shapes {
        let shape = TensorShape::new(dims, layout).unwrap();
        for track in [true, false] {
            let config = BatchNormConfig::new(3).track_running_stats(track);
            let bn = BatchNorm::new(&gpu.device, config).unwrap();
            let gamma = normal(&mut rng, 3, 1.0, 0.3);
            let beta = normal(&mut rng, 3, 0.0, 0.3);
            let start = HostRunningStats {
                mean: normal(&mut rng, 3, 0.0, 1.0),
                var: uniform(&mut rng, 3, 0.5, 2.0),
                num_batches_tracked: 4,
            };
            for mode in [Mode::Train, Mode::Eval] {
                let mut running = track.then(|| start.clone());
                let out = bn
                    .forward_host(
                        &gpu.queue,
                        mode,
                        &shape,
                        &[],
                        Some((&gamma, &beta)),
                        running.as_mut(),
                    )
                    .unwrap();
                assert!(out.y.is_empty());
                if let Some(r) = &running {
                    assert_eq!(r.mean, start.mean);
                    assert_eq!(r.var, start.var);
                    let increments = u32::from(mode == Mode::Train);
                    assert_eq!(
                        r.num_batches_tracked,
                        start.num_batches_tracked + u64::from(increments)
                    );
                }
                let batch = config.uses_batch_stats(mode);
                let stats = [1.0f32; 3];
                let saved = batch.then_some((&stats[..], &stats[..]));
                let eval_running = running.as_ref().filter(|_| !batch);
                let back = bn
                    .backward_host(
                        &gpu.queue,
                        mode,
                        &shape,
                        &[],
                        &[],
                        Some(&gamma),
                        saved,
                        eval_running,
                    )
                    .unwrap();
                assert!(back.dx.is_empty());
                assert_eq!(back.dgamma_dbeta, Some((vec![0.0; 3], vec![0.0; 3])));
            }
        }
    }
}

#[test]
fn batch_norm_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<BatchNorm>();
    check::<HeadlessGpu>();
}

#[test]
fn threads_recording_concurrently_get_correct_results() {
    let gpu = gpu();
    let shape = TensorShape::channels_first(&[4, 6, 13, 17]).unwrap();
    let bn = Arc::new(BatchNorm::new(&gpu.device, BatchNormConfig::new(6)).unwrap());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let bn = bn.clone();
            let shape = shape.clone();
            scope.spawn(move || {
                let mut rng = rng();
                for _ in 0..5 {
                    for mode in [Mode::Train, Mode::Eval] {
                        check_case(&bn, &gpu.queue, mode, &shape, &mut rng);
                    }
                }
            });
        }
    });
}

#[test]
fn lost_device_gives_errors_not_hangs() {
    let (device, queue) = device_with(|_| {});
    let bn = BatchNorm::new(&device, BatchNormConfig::new(3)).unwrap();
    let shape = TensorShape::channels_first(&[4, 3, 5]).unwrap();
    let bufs = TrainBufs::new(&device, &shape);
    device.destroy();
    // The recording API reports the lost device as an error (wgpu's default handler for
    // uncaptured errors would panic).
    let mut encoder = device.create_command_encoder(&Default::default());
    let e = bn
        .forward(&mut encoder, Mode::Train, &shape, &bufs.forward())
        .unwrap_err();
    assert!(matches!(e, BatchNormError::Wgpu(_)), "{e}");
    // So does the blocking layer.
    let x = vec![1.0f32; shape.numel()];
    let e = bn
        .forward_host(
            &queue,
            Mode::Train,
            &shape,
            &x,
            Some((&[1.0; 3], &[0.0; 3])),
            Some(&mut HostRunningStats::new(3)),
        )
        .unwrap_err();
    assert!(
        matches!(e, BatchNormError::Wgpu(_) | BatchNormError::Readback(_)),
        "{e}"
    );
}
