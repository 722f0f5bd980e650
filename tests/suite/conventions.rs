//! Convention switches: momentum weighting the new batch (PyTorch) or the old value (Keras,
//! ONNX), running variance unbiased or biased, and converting running statistics between
//! them without drift.

use crate::common::*;
use wgpu_batchnorm::{
    BatchNorm, BatchNormConfig, BatchNormError, HostRunningStats, Mode, MomentumConvention,
    TensorShape, VarianceConvention, reference,
};

/// One training forward of `x` (gamma 1, beta 0) through `bn`'s host layer and through the
/// reference, each from its running statistics; asserts the updated running mean and
/// variance agree.
fn train_step(
    bn: &BatchNorm,
    shape: &TensorShape,
    x: &[f32],
    running: &mut HostRunningStats,
    want: &mut reference::RunningStats,
    case: &str,
) {
    let c = shape.channels();
    let (gamma, beta) = (vec![1.0; c], vec![0.0; c]);
    let affine = Some((gamma.as_slice(), beta.as_slice()));
    bn.forward_host(&gpu().queue, Mode::Train, shape, x, affine, Some(running))
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    reference::forward(bn.config(), Mode::Train, shape, x, affine, Some(want));
    assert_close(case, "running_mean", &running.mean, &want.mean, TOL);
    assert_close(case, "running_var", &running.var, &want.var, TOL);
}

/// Six training steps in each convention, running statistics against the reference, then an
/// eval round with them.
#[test]
fn every_convention_over_several_steps() {
    let gpu = gpu();
    let mut rng = rng();
    let shape = TensorShape::channels_first(&[4, 5, 6, 7]).unwrap();
    for (convention, momentum) in [
        (MomentumConvention::NewBatch, Some(0.1)),
        (MomentumConvention::OldValue, Some(0.9)),
        (MomentumConvention::OldValue, Some(0.99)),
        (MomentumConvention::OldValue, None),
    ] {
        for var_convention in [VarianceConvention::Unbiased, VarianceConvention::Biased] {
            let config = BatchNormConfig::new(5)
                .momentum(momentum)
                .momentum_convention(convention)
                .running_var_convention(var_convention);
            let bn = BatchNorm::new(&gpu.device, config).unwrap();
            let mut running = HostRunningStats::new(5);
            let mut want = reference::RunningStats::new(5);
            for step in 1..=6u32 {
                let case = format!("{config:?} step {step}");
                let x = normal(
                    &mut rng,
                    shape.numel(),
                    f64::from(step),
                    1.0 + f64::from(step),
                );
                train_step(&bn, &shape, &x, &mut running, &mut want, &case);
                assert_eq!(running.num_batches_tracked, u64::from(step));
            }
            check(&bn, Mode::Eval, &shape, ORDINARY, TOL, &mut rng);
        }
    }
}

/// `num_batches_tracked` is 64-bit, as PyTorch's int64: three training steps from
/// 2^32 - 2 carry into the high word, and the cumulative average (momentum `None`, weight
/// `1 / num_batches_tracked`) stays finite and equal to the reference's where a u32 count
/// would wrap to 0 and divide by it.
#[test]
fn num_batches_tracked_passes_2_pow_32() {
    let gpu = gpu();
    let mut rng = rng();
    let shape = TensorShape::channels_first(&[4, 3, 5]).unwrap();
    for momentum in [None, Some(0.1)] {
        let config = BatchNormConfig::new(3).momentum(momentum);
        let bn = BatchNorm::new(&gpu.device, config).unwrap();
        let start = (1u64 << 32) - 2;
        let mut running = HostRunningStats {
            num_batches_tracked: start,
            ..HostRunningStats::new(3)
        };
        let mut want = reference::RunningStats {
            num_batches_tracked: start,
            ..reference::RunningStats::new(3)
        };
        for step in 1..=3 {
            let case = format!("momentum {momentum:?}, step {step}");
            let x = normal(&mut rng, shape.numel(), 2.0, 1.5);
            train_step(&bn, &shape, &x, &mut running, &mut want, &case);
            assert_eq!(running.num_batches_tracked, start + step, "{case}");
        }
    }
}

#[test]
fn keras_momentum_is_one_minus_pytorch_momentum() {
    assert_eq!(
        MomentumConvention::OldValue.convert(0.99, MomentumConvention::NewBatch),
        1.0 - 0.99
    );
    assert_eq!(
        MomentumConvention::NewBatch.convert(0.1, MomentumConvention::NewBatch),
        0.1
    );
    let gpu = gpu();
    let mut rng = rng();
    let shape = TensorShape::channels_last(&[8, 5, 5, 3]).unwrap();
    let pytorch = BatchNorm::new(&gpu.device, BatchNormConfig::new(3).momentum(Some(0.1))).unwrap();
    let keras = BatchNorm::new(
        &gpu.device,
        BatchNormConfig::new(3)
            .momentum(Some(0.9))
            .momentum_convention(MomentumConvention::OldValue),
    )
    .unwrap();
    let (mut a, mut b) = (HostRunningStats::new(3), HostRunningStats::new(3));
    for _ in 0..4 {
        let x = normal(&mut rng, shape.numel(), 3.0, 2.0);
        let affine = Some((&[1.0f32; 3][..], &[0.0f32; 3][..]));
        pytorch
            .forward_host(&gpu.queue, Mode::Train, &shape, &x, affine, Some(&mut a))
            .unwrap();
        keras
            .forward_host(&gpu.queue, Mode::Train, &shape, &x, affine, Some(&mut b))
            .unwrap();
    }
    let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
    assert_close(
        "keras vs pytorch",
        "running_mean",
        &b.mean,
        &widen(&a.mean),
        TOL,
    );
    assert_close(
        "keras vs pytorch",
        "running_var",
        &b.var,
        &widen(&a.var),
        TOL,
    );
}

/// Train the same batches in both variance conventions from matching starting points:
/// converting one result gives the other, so a checkpoint moves without drift.
#[test]
fn running_variance_converts_between_conventions_without_drift() {
    let gpu = gpu();
    let mut rng = rng();
    let shape = TensorShape::channels_first(&[3, 4, 5, 5]).unwrap();
    let count = shape.per_channel();
    let config = BatchNormConfig::new(4);
    let unbiased = BatchNorm::new(&gpu.device, config).unwrap();
    let biased = BatchNorm::new(
        &gpu.device,
        config.running_var_convention(VarianceConvention::Biased),
    )
    .unwrap();
    let mut a = HostRunningStats::new(4);
    let mut b = a.clone();
    VarianceConvention::Unbiased
        .convert(&mut b.var, count, VarianceConvention::Biased)
        .unwrap();
    for _ in 0..8 {
        let x = normal(&mut rng, shape.numel(), -1.0, 0.7);
        unbiased
            .forward_host(
                &gpu.queue,
                Mode::Train,
                &shape,
                &x,
                Some((&[1.0; 4], &[0.0; 4])),
                Some(&mut a),
            )
            .unwrap();
        biased
            .forward_host(
                &gpu.queue,
                Mode::Train,
                &shape,
                &x,
                Some((&[1.0; 4], &[0.0; 4])),
                Some(&mut b),
            )
            .unwrap();
    }
    let mut converted = b.var.clone();
    VarianceConvention::Biased
        .convert(&mut converted, count, VarianceConvention::Unbiased)
        .unwrap();
    let want: Vec<f64> = a.var.iter().map(|&v| f64::from(v)).collect();
    assert_close("biased -> unbiased", "running_var", &converted, &want, TOL);
    // Without the conversion the two differ by count / (count - 1).
    let (err, _) = reference::relative_l2_error(&b.var, &want);
    assert!(
        err > 1.0 / count as f64 / 2.0,
        "conventions indistinguishable: {err}"
    );
}

#[test]
fn variance_conversion_needs_two_values_per_channel() {
    for count in [0, 1] {
        for (from, to) in [
            (VarianceConvention::Biased, VarianceConvention::Unbiased),
            (VarianceConvention::Unbiased, VarianceConvention::Biased),
            (VarianceConvention::Biased, VarianceConvention::Biased),
        ] {
            let mut var = vec![2.0f32, 3.0];
            let e = from.convert(&mut var, count, to).unwrap_err();
            assert!(
                matches!(e, BatchNormError::ConversionCount { count: c } if c == count),
                "{e}"
            );
            assert_eq!(var, [2.0, 3.0], "a refused conversion changed the values");
        }
    }
}
