//! Bad input gets a typed error that says what was wrong, before anything reaches wgpu:
//! every test here runs on its own device whose uncaptured-error handler must stay silent.

use std::sync::{Arc, Mutex};

use crate::common::*;
use wgpu::util::DeviceExt;
use wgpu_batchnorm::{
    AffineGrads, AffineParams, BackwardBuffers, BatchNorm, BatchNormConfig, BatchNormError,
    DispatchProfiler, ForwardBuffers, HostRunningStats, Layout, MAX_PROFILED_DISPATCHES, Mode,
    Reduction, SavedStats, TensorShape,
};

mod buffers;
mod device;

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
