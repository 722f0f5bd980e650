//! Bad input gets a typed error that says what was wrong, before anything reaches wgpu:
//! every test here runs on its own device whose uncaptured-error handler must stay silent.

use std::sync::{Arc, Mutex};

use crate::common::*;
use wgpu::util::DeviceExt;
use wgpu_batchnorm::{
    AffineGrads, AffineParams, BackwardBuffers, BatchNorm, BatchNormConfig, BatchNormError,
    ForwardBuffers, HostRunningStats, Layout, Mode, Reduction, SavedStats, TensorShape,
};

/// A device from the test adapter with `limits` adjusted and `features`, whose uncaptured
/// errors are collected.
struct Dev {
    device: wgpu::Device,
    queue: wgpu::Queue,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Dev {
    fn new(adjust: impl FnOnce(&mut wgpu::Limits), features: wgpu::Features) -> Self {
        let adapter = &gpu().adapter;
        let mut limits = adapter.limits();
        adjust(&mut limits);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("errors test"),
            required_features: features & adapter.features(),
            required_limits: limits,
            ..Default::default()
        }))
        .expect("device with adjusted limits");
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().unwrap().push(e.to_string());
        }));
        Self {
            device,
            queue,
            errors,
        }
    }

    fn plain() -> Self {
        Self::new(|_| {}, wgpu_batchnorm::USEFUL_FEATURES)
    }

    fn buffer(&self, floats: usize) -> wgpu::Buffer {
        self.buffer_with(floats, wgpu::BufferUsages::STORAGE)
    }

    fn buffer_with(&self, floats: usize, usage: wgpu::BufferUsages) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytemuck::cast_slice(&vec![0.0f32; floats]),
                usage,
            })
    }
}

impl Drop for Dev {
    /// Nothing reached wgpu that it rejected.
    fn drop(&mut self) {
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
        if !std::thread::panicking() {
            let errors = self.errors.lock().unwrap();
            assert!(errors.is_empty(), "wgpu reported errors: {errors:?}");
        }
    }
}

fn record(
    bn: &BatchNorm,
    dev: &Dev,
    mode: Mode,
    shape: &TensorShape,
    bufs: &ForwardBuffers<'_>,
) -> Result<(), BatchNormError> {
    let mut encoder = dev.device.create_command_encoder(&Default::default());
    let r = bn.forward(&mut encoder, mode, shape, bufs);
    dev.queue.submit([encoder.finish()]);
    r
}

#[test]
fn sanity_the_valid_call_records_and_runs() {
    // The baseline every other test breaks one thing of.
    let dev = Dev::plain();
    let shape = TensorShape::channels_first(&[2, 3, 4]).unwrap();
    let bn = BatchNorm::new(&dev.device, BatchNormConfig::new(3)).unwrap();
    let b = TrainBufs::new(&dev.device, &shape);
    record(&bn, &dev, Mode::Train, &shape, &b.forward()).unwrap();
}

#[test]
fn invalid_rank() {
    for dims in [&[5][..], &[2, 3, 4, 5, 6, 7], &[]] {
        for layout in [Layout::ChannelsFirst, Layout::ChannelsLast] {
            let e = TensorShape::new(dims, layout).unwrap_err();
            assert!(
                matches!(e, BatchNormError::InvalidRank { got, .. } if got == dims.len()),
                "{e}"
            );
        }
    }
}

#[test]
fn zero_sized_channel_axis() {
    // An empty batch or spatial extent is accepted (see tests/reliability.rs); no channels
    // is not.
    let e = TensorShape::channels_first(&[2, 0, 4]).unwrap_err();
    assert!(
        matches!(e, BatchNormError::ZeroSizedAxis { axis: 1, .. }),
        "{e}"
    );
    let e = TensorShape::channels_last(&[2, 4, 4, 0]).unwrap_err();
    assert!(
        matches!(e, BatchNormError::ZeroSizedAxis { axis: 3, .. }),
        "{e}"
    );
    assert!(TensorShape::channels_first(&[0, 3, 4]).is_ok());
    assert!(TensorShape::channels_last(&[2, 0, 3]).is_ok());
}

#[test]
fn too_many_elements() {
    let e = TensorShape::channels_first(&[1 << 20, 1 << 12]).unwrap_err();
    assert!(
        matches!(e, BatchNormError::TooManyElements { elements: Some(n), empty: false, .. } if n == 1 << 32),
        "{e}"
    );
    let e = TensorShape::channels_first(&[usize::MAX, 2, usize::MAX]).unwrap_err();
    assert!(
        matches!(e, BatchNormError::TooManyElements { elements: None, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("more than 2^64"), "{e}");
    // Empty tensors whose other axes overflow: refused with the right words, not counted as
    // 2^64 - 1 elements, and no overflow in any later product.
    for dims in [&[usize::MAX, 2, 0][..], &[0, 1, 1 << 40, 1 << 40]] {
        let e = TensorShape::channels_first(dims).unwrap_err();
        assert!(
            matches!(e, BatchNormError::TooManyElements { empty: true, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("non-zero axes"), "{e}");
    }
    // The largest empty tensor accepted has every product in range.
    let s = TensorShape::channels_first(&[0, 1 << 15, 1 << 15, 1]).unwrap();
    assert_eq!(
        (s.numel(), s.per_channel(), s.outer_inner()),
        (0, 0, (0, 1 << 15))
    );
}

#[test]
fn invalid_config() {
    let dev = Dev::plain();
    for config in [
        BatchNormConfig::new(0),
        BatchNormConfig::new(3).eps(-1.0),
        BatchNormConfig::new(3).eps(f32::NAN),
        BatchNormConfig::new(3).momentum(Some(1.5)),
        BatchNormConfig::new(3).momentum(Some(f32::NAN)),
    ] {
        let e = BatchNorm::new(&dev.device, config).unwrap_err();
        assert!(
            matches!(e, BatchNormError::InvalidConfig(_)),
            "{config:?}: {e}"
        );
    }
}

#[test]
fn wrong_channel_count() {
    let dev = Dev::plain();
    let bn = BatchNorm::new(&dev.device, BatchNormConfig::new(3)).unwrap();
    let shape = TensorShape::channels_last(&[2, 4, 4]).unwrap();
    let b = TrainBufs::new(&dev.device, &shape);
    let e = record(&bn, &dev, Mode::Train, &shape, &b.forward()).unwrap_err();
    assert!(
        matches!(
            e,
            BatchNormError::ChannelMismatch {
                expected: 3,
                got: 4
            }
        ),
        "{e}"
    );
}

#[test]
fn one_value_per_channel_in_training() {
    let dev = Dev::plain();
    let bn = BatchNorm::new(&dev.device, BatchNormConfig::new(3)).unwrap();
    for dims in [&[1, 3][..], &[1, 3, 1, 1]] {
        let shape = TensorShape::channels_first(dims).unwrap();
        let b = TrainBufs::new(&dev.device, &shape);
        let e = record(&bn, &dev, Mode::Train, &shape, &b.forward()).unwrap_err();
        assert!(
            matches!(e, BatchNormError::TooFewValuesPerChannel { .. }),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("Expected more than 1 value per channel when training")
        );
        let e = bn
            .forward_host(&dev.queue, Mode::Train, &shape, &[0.0; 3], None, None)
            .unwrap_err();
        assert!(
            matches!(e, BatchNormError::TooFewValuesPerChannel { .. }),
            "{e}"
        );
    }
    // Eval with running statistics is fine with a single value, as in PyTorch ...
    let shape = TensorShape::channels_first(&[1, 3]).unwrap();
    let mut running = HostRunningStats::new(3);
    let out = bn
        .forward_host(
            &dev.queue,
            Mode::Eval,
            &shape,
            &[1.0, 2.0, 3.0],
            Some((&[1.0; 3], &[0.0; 3])),
            Some(&mut running),
        )
        .unwrap();
    assert!(out.y.iter().all(|v| v.is_finite()));
    // ... but not without them (batch statistics).
    let untracked = BatchNorm::new(
        &dev.device,
        BatchNormConfig::new(3).track_running_stats(false),
    )
    .unwrap();
    let e = untracked
        .forward_host(
            &dev.queue,
            Mode::Eval,
            &shape,
            &[1.0, 2.0, 3.0],
            Some((&[1.0; 3], &[0.0; 3])),
            None,
        )
        .unwrap_err();
    assert!(
        matches!(e, BatchNormError::TooFewValuesPerChannel { .. }),
        "{e}"
    );
}

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

#[test]
fn subgroups_requested_without_the_feature() {
    let dev = Dev::new(|_| {}, wgpu::Features::empty());
    let e = BatchNorm::with_reduction(&dev.device, BatchNormConfig::new(3), Reduction::Subgroup)
        .unwrap_err();
    assert!(matches!(e, BatchNormError::SubgroupsUnavailable), "{e}");
    // Auto falls back to shared memory.
    let bn = BatchNorm::new(&dev.device, BatchNormConfig::new(3)).unwrap();
    assert!(!bn.uses_subgroups());
}

#[test]
fn device_below_the_kernels_needs() {
    let dev = Dev::new(
        |l| l.max_storage_buffers_per_shader_stage = 4,
        wgpu::Features::empty(),
    );
    let e = BatchNorm::new(&dev.device, BatchNormConfig::new(3)).unwrap_err();
    assert!(matches!(e, BatchNormError::UnsupportedDevice(_)), "{e}");
    assert!(
        e.to_string()
            .contains("max_storage_buffers_per_shader_stage"),
        "{e}"
    );
}

/// A call that fails on a buffer wgpu rejects (destroyed, or of another device) returns
/// `BatchNormError::Wgpu` and has recorded nothing: the caller's encoder still finishes and
/// submits without a validation error (checked by `Dev`'s drop), here with a valid call
/// recorded before and after the failed ones.
#[test]
fn a_failed_call_leaves_the_encoder_clean() {
    let dev = Dev::plain();
    let other = Dev::plain();
    let c = 3;
    let bn = BatchNorm::new(&dev.device, BatchNormConfig::new(c)).unwrap();
    let shape = TensorShape::channels_first(&[2, c, 4]).unwrap();
    let b = TrainBufs::new(&dev.device, &shape);
    let destroyed = dev.buffer(24);
    destroyed.destroy();
    let foreign = other.buffer(24);
    let stats = dev.buffer(4 * c);
    let destroyed_stats = dev.buffer(4 * c);
    destroyed_stats.destroy();
    let foreign_stats = other.buffer(4 * c);
    let mut encoder = dev.device.create_command_encoder(&Default::default());
    bn.forward(&mut encoder, Mode::Train, &shape, &b.forward())
        .unwrap();
    for (what, x, s) in [
        ("destroyed", &destroyed, &destroyed_stats),
        ("of another device", &foreign, &foreign_stats),
    ] {
        let mut f = b.forward();
        f.x = x.slice(..);
        let e = bn
            .forward(&mut encoder, Mode::Train, &shape, &f)
            .unwrap_err();
        assert!(
            matches!(e, BatchNormError::Wgpu(_)),
            "forward, x {what}: {e}"
        );
        let e = bn
            .statistics(&mut encoder, &shape, x.slice(..), stats.slice(..))
            .unwrap_err();
        assert!(
            matches!(e, BatchNormError::Wgpu(_)),
            "statistics, x {what}: {e}"
        );
        let e = bn
            .merge_statistics(&mut encoder, stats.slice(..), s.slice(..), b.y.slice(..48))
            .unwrap_err();
        assert!(
            matches!(e, BatchNormError::Wgpu(_)),
            "merge_statistics, b {what}: {e}"
        );
        let e = bn
            .backward(
                &mut encoder,
                Mode::Train,
                &shape,
                &BackwardBuffers {
                    x: b.x.slice(..),
                    dy: x.slice(..),
                    dx: b.y.slice(..),
                    y: None,
                    dresidual: None,
                    gamma: Some(b.gamma.slice(..)),
                    grads: Some(AffineGrads {
                        dgamma: b.rm.slice(..),
                        dbeta: b.rv.slice(..),
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
            matches!(e, BatchNormError::Wgpu(_)),
            "backward, dy {what}: {e}"
        );
    }
    bn.forward(&mut encoder, Mode::Train, &shape, &b.forward())
        .unwrap();
    dev.queue.submit([encoder.finish()]);
}
