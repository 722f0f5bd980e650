//! Bad buffers: sizes, host slice lengths, offsets, usages, limits, missing, unexpected
//! and overlapping bindings.

use super::*;

#[test]
fn buffer_size_mismatch() {
    let dev = Dev::plain();
    let bn = BatchNorm::new(&dev.device, BatchNormConfig::new(3)).unwrap();
    let shape = TensorShape::channels_first(&[2, 3, 4]).unwrap();
    let b = TrainBufs::new(&dev.device, &shape);
    let short = dev.buffer(23);
    let long = dev.buffer(25);
    for (x, expected, got) in [(&short, 96, 92), (&long, 96, 100)] {
        let mut f = b.forward();
        f.x = x.slice(..);
        let e = record(&bn, &dev, Mode::Train, &shape, &f).unwrap_err();
        assert!(
            matches!(e, BatchNormError::BufferSize { name: "x", expected: e2, got: g2, .. } if e2 == expected && g2 == got),
            "{e}"
        );
    }
    let mut f = b.forward();
    f.affine = Some(AffineParams {
        gamma: b.gamma.slice(..),
        beta: short.slice(..8),
    });
    let e = record(&bn, &dev, Mode::Train, &shape, &f).unwrap_err();
    assert!(
        matches!(e, BatchNormError::BufferSize { name: "beta", .. }),
        "{e}"
    );
}

#[test]
fn host_slice_length_mismatch() {
    let dev = Dev::plain();
    let bn = BatchNorm::new(&dev.device, BatchNormConfig::new(3)).unwrap();
    let shape = TensorShape::channels_first(&[2, 3]).unwrap();
    let e = bn
        .forward_host(
            &dev.queue,
            Mode::Train,
            &shape,
            &[0.0; 5],
            Some((&[1.0; 3], &[0.0; 3])),
            Some(&mut HostRunningStats::new(3)),
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            BatchNormError::HostLength {
                name: "x",
                expected: 6,
                got: 5
            }
        ),
        "{e}"
    );
    let e = bn
        .forward_host(
            &dev.queue,
            Mode::Train,
            &shape,
            &[0.0; 6],
            Some((&[1.0; 2], &[0.0; 3])),
            Some(&mut HostRunningStats::new(3)),
        )
        .unwrap_err();
    assert!(
        matches!(e, BatchNormError::HostLength { name: "gamma", .. }),
        "{e}"
    );
}

#[test]
fn misaligned_offset() {
    let dev = Dev::new(
        |l| l.min_storage_buffer_offset_alignment = 256,
        wgpu::Features::empty(),
    );
    let bn = BatchNorm::new(&dev.device, BatchNormConfig::new(3)).unwrap();
    let shape = TensorShape::channels_first(&[2, 3, 4]).unwrap();
    let b = TrainBufs::new(&dev.device, &shape);
    let big = dev.buffer(24 + 64);
    let mut f = b.forward();
    f.y = big.slice(64 * 4..);
    // 256 bytes in: aligned, and accepted.
    record(&bn, &dev, Mode::Train, &shape, &f).unwrap();
    f.y = big.slice(16..16 + 96);
    let e = record(&bn, &dev, Mode::Train, &shape, &f).unwrap_err();
    assert!(
        matches!(
            e,
            BatchNormError::MisalignedOffset {
                name: "y",
                offset: 16,
                alignment: 256
            }
        ),
        "{e}"
    );
}

#[test]
fn buffer_without_storage_usage() {
    let dev = Dev::plain();
    let bn = BatchNorm::new(&dev.device, BatchNormConfig::new(3)).unwrap();
    let shape = TensorShape::channels_first(&[2, 3, 4]).unwrap();
    let b = TrainBufs::new(&dev.device, &shape);
    let copy_only = dev.buffer_with(24, wgpu::BufferUsages::COPY_SRC);
    let mut f = b.forward();
    f.x = copy_only.slice(..);
    let e = record(&bn, &dev, Mode::Train, &shape, &f).unwrap_err();
    assert!(
        matches!(e, BatchNormError::MissingStorageUsage { name: "x", .. }),
        "{e}"
    );
}

#[test]
fn per_channel_buffer_beyond_the_binding_limit() {
    // Tensors beyond the limit are processed in pieces (tests/reliability.rs); a
    // per-channel buffer beyond it is refused.
    let limit = 1 << 12;
    let dev = Dev::new(
        |l| l.max_storage_buffer_binding_size = limit,
        wgpu::Features::empty(),
    );
    let c = 1025;
    let bn = BatchNorm::new(&dev.device, BatchNormConfig::new(c)).unwrap();
    let shape = TensorShape::channels_first(&[2, c]).unwrap();
    let b = TrainBufs::new(&dev.device, &shape);
    let e = record(&bn, &dev, Mode::Train, &shape, &b.forward()).unwrap_err();
    assert!(
        matches!(e, BatchNormError::ExceedsLimit { name: "gamma", limit: l, .. } if l == limit),
        "{e}"
    );
}

#[test]
fn missing_buffers() {
    let dev = Dev::plain();
    let bn = BatchNorm::new(&dev.device, BatchNormConfig::new(3)).unwrap();
    let shape = TensorShape::channels_first(&[2, 3, 4]).unwrap();
    let b = TrainBufs::new(&dev.device, &shape);
    let mut f = b.forward();
    f.affine = None;
    let e = record(&bn, &dev, Mode::Train, &shape, &f).unwrap_err();
    assert!(
        matches!(e, BatchNormError::MissingBuffer { name, .. } if name.starts_with("affine")),
        "{e}"
    );
    let mut f = b.forward();
    f.saved = None;
    let e = record(&bn, &dev, Mode::Train, &shape, &f).unwrap_err();
    assert!(
        matches!(e, BatchNormError::MissingBuffer { name, .. } if name.starts_with("saved")),
        "{e}"
    );
    let mut f = b.forward();
    f.running.as_mut().unwrap().num_batches_tracked = None;
    let e = record(&bn, &dev, Mode::Train, &shape, &f).unwrap_err();
    assert!(
        matches!(
            e,
            BatchNormError::MissingBuffer {
                name: "num_batches_tracked",
                ..
            }
        ),
        "{e}"
    );
    let mut f = b.forward();
    f.running = None;
    let e = record(&bn, &dev, Mode::Eval, &shape, &f).unwrap_err();
    assert!(
        matches!(e, BatchNormError::MissingBuffer { name, .. } if name.starts_with("running")),
        "{e}"
    );
}

#[test]
fn unexpected_buffers() {
    let dev = Dev::plain();
    let shape = TensorShape::channels_first(&[2, 3, 4]).unwrap();
    let b = TrainBufs::new(&dev.device, &shape);
    let no_affine = BatchNorm::new(&dev.device, BatchNormConfig::new(3).affine(false)).unwrap();
    let e = record(&no_affine, &dev, Mode::Train, &shape, &b.forward()).unwrap_err();
    assert!(
        matches!(e, BatchNormError::UnexpectedBuffer { name, .. } if name.starts_with("affine")),
        "{e}"
    );
    // Eval with running statistics computes no batch statistics to save.
    let bn = BatchNorm::new(&dev.device, BatchNormConfig::new(3)).unwrap();
    let e = record(&bn, &dev, Mode::Eval, &shape, &b.forward()).unwrap_err();
    assert!(
        matches!(e, BatchNormError::UnexpectedBuffer { name, .. } if name.starts_with("saved")),
        "{e}"
    );
    let untracked = BatchNorm::new(
        &dev.device,
        BatchNormConfig::new(3).track_running_stats(false),
    )
    .unwrap();
    let e = record(&untracked, &dev, Mode::Train, &shape, &b.forward()).unwrap_err();
    assert!(
        matches!(e, BatchNormError::UnexpectedBuffer { name, .. } if name.starts_with("running")),
        "{e}"
    );
}

#[test]
fn outputs_overlapping_other_bindings() {
    let dev = Dev::plain();
    let bn = BatchNorm::new(&dev.device, BatchNormConfig::new(3)).unwrap();
    let shape = TensorShape::channels_first(&[2, 3, 4]).unwrap();
    let b = TrainBufs::new(&dev.device, &shape);
    // In place: y is x.
    let mut f = b.forward();
    f.y = b.x.slice(..);
    let e = record(&bn, &dev, Mode::Train, &shape, &f).unwrap_err();
    assert!(matches!(e, BatchNormError::Overlap { .. }), "{e}");
    // save_mean and save_invstd in one buffer: fine apart, an error on the same range.
    let align = u64::from(dev.device.limits().min_storage_buffer_offset_alignment);
    let shared = dev.buffer((align as usize / 4) + 3);
    let mut f = b.forward();
    f.saved = Some(SavedStats {
        mean: shared.slice(0..12),
        invstd: shared.slice(align..align + 12),
    });
    record(&bn, &dev, Mode::Train, &shape, &f).unwrap();
    f.saved = Some(SavedStats {
        mean: shared.slice(0..12),
        invstd: shared.slice(0..12),
    });
    let e = record(&bn, &dev, Mode::Train, &shape, &f).unwrap_err();
    assert!(
        matches!(
            e,
            BatchNormError::Overlap {
                output: "save_mean",
                other: "save_invstd"
            }
        ),
        "{e}"
    );
    // Backward: dgamma written over gamma.
    let dy = dev.buffer(24);
    let dx = dev.buffer(24);
    let mut encoder = dev.device.create_command_encoder(&Default::default());
    let e = bn
        .backward(
            &mut encoder,
            Mode::Train,
            &shape,
            &BackwardBuffers {
                x: b.x.slice(..),
                dy: dy.slice(..),
                dx: dx.slice(..),
                y: None,
                dresidual: None,
                gamma: Some(b.gamma.slice(..)),
                grads: Some(AffineGrads {
                    dgamma: b.gamma.slice(..),
                    dbeta: b.beta.slice(..),
                    accumulate: false,
                }),
                saved: Some(SavedStats {
                    mean: b.sm.slice(..),
                    invstd: b.si.slice(..),
                }),
                running: None,
            },
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            BatchNormError::Overlap {
                output: "dgamma",
                other: "gamma"
            }
        ),
        "{e}"
    );
}
