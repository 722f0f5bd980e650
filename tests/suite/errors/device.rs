//! What the device cannot do, and a failed call's effect on the caller's encoder.

use super::*;

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
            matches!(e, BatchNormError::Wgpu(_)),
            "backward, dy {what}: {e}"
        );
    }
    bn.forward(&mut encoder, Mode::Train, &shape, &b.forward())
        .unwrap();
    dev.queue.submit([encoder.finish()]);
}

/// A dispatch profiler needs timestamp queries and a capacity it can hold; a profiled call
/// on another device, or one that does not fit, is refused and records nothing (the
/// encoder submits clean, checked by `Dev`'s drop), and the profiler stays usable.
#[test]
fn dispatch_profiler_refusals() {
    let bare = Dev::new(|_| {}, wgpu::Features::empty());
    let e = DispatchProfiler::new(&bare.device, 8).unwrap_err();
    assert!(matches!(e, BatchNormError::TimestampsUnavailable), "{e}");

    let dev = Dev::plain();
    if !dev
        .device
        .features()
        .contains(wgpu::Features::TIMESTAMP_QUERY)
    {
        panic!("the test adapter has no TIMESTAMP_QUERY: this test needs it");
    }
    for capacity in [0, MAX_PROFILED_DISPATCHES + 1] {
        let e = DispatchProfiler::new(&dev.device, capacity).unwrap_err();
        assert!(matches!(e, BatchNormError::InvalidConfig(_)), "{e}");
    }
    let c = 3;
    let shape = TensorShape::channels_first(&[2, c, 4]).unwrap();
    let b = TrainBufs::new(&dev.device, &shape);
    // The separate passes: several dispatches.
    let layer = || {
        BatchNorm::new(&dev.device, BatchNormConfig::new(c))
            .unwrap()
            .without_one_pass_kernels()
    };
    let bn = layer();
    let needed = bn
        .forward_dispatches(Mode::Train, &shape, &b.forward())
        .unwrap()
        .len();
    assert!(needed >= 2, "the call must not fit a profiler of 1");

    let small = Arc::new(DispatchProfiler::new(&dev.device, 1).unwrap());
    let other = Dev::plain();
    let foreign = Arc::new(DispatchProfiler::new(&other.device, 64).unwrap());
    let mut encoder = dev.device.create_command_encoder(&Default::default());
    let e = layer()
        .with_profiler(small.clone())
        .forward(&mut encoder, Mode::Train, &shape, &b.forward())
        .unwrap_err();
    assert!(
        matches!(e, BatchNormError::ProfilerFull { capacity: 1, pending: 0, needed: n } if n == needed),
        "{e}"
    );
    assert_eq!(small.pending(), 0, "a refused call reserves nothing");
    let e = layer()
        .with_profiler(foreign.clone())
        .forward(&mut encoder, Mode::Train, &shape, &b.forward())
        .unwrap_err();
    assert!(matches!(e, BatchNormError::InvalidConfig(_)), "{e}");
    assert_eq!(foreign.pending(), 0, "a refused call reserves nothing");
    bn.forward(&mut encoder, Mode::Train, &shape, &b.forward())
        .unwrap();
    dev.queue.submit([encoder.finish()]);
    assert!(small.read(&dev.queue).unwrap().is_empty());
}
