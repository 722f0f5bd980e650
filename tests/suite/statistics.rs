//! Mergeable statistics: a statistics-only pass, GPU and host merges across micro-batches,
//! and synchronized batch norm (normalizing each micro-batch with the merged statistics)
//! against one batch norm over the whole batch.

use crate::common::*;
use wgpu_batchnorm::{
    AffineParams, BatchNorm, BatchNormConfig, BatchNormError, ChannelStats, ForwardBuffers,
    HostRunningStats, Layout, Mode, RunningStats, SavedStats, TensorShape,
};

fn assert_stats(case: &str, got: &ChannelStats, want: &ChannelStats, tol: f64) {
    assert_eq!(got.count, want.count, "{case}: counts");
    let narrow = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    assert_close(case, "mean", &narrow(&got.mean), &want.mean, tol);
    assert_close(
        case,
        "variance",
        &narrow(&got.variance()),
        &want.variance(),
        tol,
    );
}

/// What one `forward_with_statistics` wrote, from fresh running statistics (mean 0,
/// variance 1, no batches) and NaN-poisoned outputs.
struct WithStats {
    y: Vec<f32>,
    save_mean: Vec<f32>,
    save_invstd: Vec<f32>,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
}

/// Records and runs `forward_with_statistics` of `x` (a tensor of `shape`) with the records
/// in `stats` and affine parameters `gamma`, `beta`.
fn forward_with(
    bn: &BatchNorm,
    shape: &TensorShape,
    stats: &wgpu::Buffer,
    x: &wgpu::Buffer,
    gamma: &wgpu::Buffer,
    beta: &wgpu::Buffer,
) -> WithStats {
    let c = shape.channels();
    let (rm, rv, t) = (
        upload(&vec![0.0; c]),
        upload(&vec![1.0; c]),
        upload(&[0.0; 2]),
    );
    let yb = upload(&vec![f32::NAN; shape.numel()]);
    let (sm, si) = (upload(&vec![f32::NAN; c]), upload(&vec![f32::NAN; c]));
    submit(|e| {
        bn.forward_with_statistics(
            e,
            shape,
            stats.slice(..),
            &ForwardBuffers {
                x: x.slice(..),
                y: yb.slice(..),
                residual: None,
                affine: Some(AffineParams {
                    gamma: gamma.slice(..),
                    beta: beta.slice(..),
                }),
                running: Some(RunningStats {
                    mean: rm.slice(..),
                    var: rv.slice(..),
                    num_batches_tracked: Some(t.slice(..)),
                    skipped_batches: None,
                }),
                saved: Some(SavedStats {
                    mean: sm.slice(..),
                    invstd: si.slice(..),
                }),
            },
        )
        .unwrap()
    });
    WithStats {
        y: read(&yb),
        save_mean: read(&sm),
        save_invstd: read(&si),
        running_mean: read(&rm),
        running_var: read(&rv),
    }
}

#[test]
fn micro_batch_statistics_merge_to_the_whole_batch() {
    let gpu = gpu();
    let mut rng = rng();
    for (dims, layout, mean) in [
        (&[7, 3, 9, 10][..], Layout::ChannelsFirst, 0.5),
        (&[7, 6, 5, 4], Layout::ChannelsLast, -2.0),
        (&[7, 3, 9, 10], Layout::ChannelsFirst, 1e4),
    ] {
        let shape = TensorShape::new(dims, layout).unwrap();
        let c = shape.channels();
        let tol = if mean > 100.0 { TOL_FAR_MEAN } else { TOL };
        let case = format!("{dims:?} {layout:?} mean {mean}");
        let x = normal(&mut rng, shape.numel(), mean, 1.0);
        let bn = BatchNorm::new(&gpu.device, BatchNormConfig::new(c)).unwrap();
        let parts = split(&shape, &x, &[2, 4, 1]);
        let records: Vec<wgpu::Buffer> = parts
            .iter()
            .map(|(s, part)| {
                let out = upload(&vec![f32::NAN; 4 * c]);
                let xb = upload(part);
                submit(|e| bn.statistics(e, s, xb.slice(..), out.slice(..)).unwrap());
                let got = ChannelStats::from_gpu(&read(&out)).unwrap();
                assert_stats(
                    &format!("{case} part {:?}", s.dims()),
                    &got,
                    &ChannelStats::of(s, part),
                    tol,
                );
                out
            })
            .collect();
        // GPU merges, in order: (a + b) + c.
        let ab = upload(&vec![f32::NAN; 4 * c]);
        let abc = upload(&vec![f32::NAN; 4 * c]);
        submit(|e| {
            bn.merge_statistics(e, records[0].slice(..), records[1].slice(..), ab.slice(..))
                .unwrap();
            bn.merge_statistics(e, ab.slice(..), records[2].slice(..), abc.slice(..))
                .unwrap();
        });
        let whole = ChannelStats::of(&shape, &x);
        assert_stats(
            &format!("{case} GPU merge"),
            &ChannelStats::from_gpu(&read(&abc)).unwrap(),
            &whole,
            tol,
        );
        // Host merges of the GPU records agree too.
        let host = records
            .iter()
            .map(|r| ChannelStats::from_gpu(&read(r)).unwrap())
            .reduce(|a, b| a.merge(&b).unwrap())
            .unwrap();
        assert_stats(&format!("{case} host merge"), &host, &whole, tol);
        // And host records round-trip through the GPU format.
        let round = ChannelStats::from_gpu(&whole.to_gpu()).unwrap();
        assert_stats(&format!("{case} round trip"), &round, &whole, tol);
    }
}

#[test]
fn synchronized_batch_norm_equals_one_batch_norm_over_the_whole_batch() {
    let gpu = gpu();
    let mut rng = rng();
    let shape = TensorShape::channels_first(&[6, 4, 7, 7]).unwrap();
    let c = 4;
    let config = BatchNormConfig::new(c);
    let bn = BatchNorm::new(&gpu.device, config).unwrap();
    let x = normal(&mut rng, shape.numel(), 1.0, 2.0);
    let gamma = normal(&mut rng, c, 1.0, 0.3);
    let beta = normal(&mut rng, c, 0.0, 0.3);

    // Reference: one training forward over the whole batch.
    let mut whole_running = HostRunningStats::new(c);
    let whole = bn
        .forward_host(
            &gpu.queue,
            Mode::Train,
            &shape,
            &x,
            Some((&gamma, &beta)),
            Some(&mut whole_running),
        )
        .unwrap();

    // "Devices": three micro-batches, statistics merged, each normalized with the merge.
    let parts = split(&shape, &x, &[1, 3, 2]);
    let (gb, bb) = (upload(&gamma), upload(&beta));
    let merged = upload(&vec![f32::NAN; 4 * c]);
    let scratch = upload(&vec![f32::NAN; 4 * c]);
    let records: Vec<wgpu::Buffer> = parts
        .iter()
        .map(|_| upload(&vec![f32::NAN; 4 * c]))
        .collect();
    let inputs: Vec<wgpu::Buffer> = parts.iter().map(|(_, p)| upload(p)).collect();
    submit(|e| {
        for ((s, _), (xb, r)) in parts.iter().zip(inputs.iter().zip(&records)) {
            bn.statistics(e, s, xb.slice(..), r.slice(..)).unwrap();
        }
        bn.merge_statistics(
            e,
            records[0].slice(..),
            records[1].slice(..),
            scratch.slice(..),
        )
        .unwrap();
        bn.merge_statistics(e, scratch.slice(..), records[2].slice(..), merged.slice(..))
            .unwrap();
    });
    let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
    let mut y_all = Vec::new();
    for ((s, _), xb) in parts.iter().zip(&inputs) {
        // Every replica updates its own copy of the running statistics. The first part is a
        // single sample: fine, the statistics are the merged ones.
        let got = forward_with(&bn, s, &merged, xb, &gb, &bb);
        let (wm, ws) = whole.saved.as_ref().unwrap();
        assert_close("sync", "save_mean", &got.save_mean, &widen(wm), TOL);
        assert_close("sync", "save_invstd", &got.save_invstd, &widen(ws), TOL);
        assert_close(
            "sync",
            "running_mean",
            &got.running_mean,
            &widen(&whole_running.mean),
            TOL,
        );
        assert_close(
            "sync",
            "running_var",
            &got.running_var,
            &widen(&whole_running.var),
            TOL,
        );
        y_all.extend(got.y);
    }
    assert_close("sync", "y", &y_all, &widen(&whole.y), TOL);
}

#[test]
fn statistics_buffers_are_checked() {
    let gpu = gpu();
    let bn = BatchNorm::new(&gpu.device, BatchNormConfig::new(3)).unwrap();
    let shape = TensorShape::channels_first(&[2, 3, 4]).unwrap();
    let x = upload(&[0.0; 24]);
    let short = upload(&[0.0; 8]);
    let out = upload(&[0.0; 12]);
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    let e = bn
        .statistics(&mut encoder, &shape, x.slice(..), short.slice(..))
        .unwrap_err();
    assert!(
        matches!(
            e,
            BatchNormError::BufferSize {
                name: "statistics",
                expected: 48,
                ..
            }
        ),
        "{e}"
    );
    let e = bn
        .merge_statistics(&mut encoder, out.slice(..), out.slice(..), out.slice(..))
        .unwrap_err();
    assert!(
        matches!(e, BatchNormError::Overlap { output: "out", .. }),
        "{e}"
    );
    let wrong = TensorShape::channels_first(&[2, 4, 3]).unwrap();
    let e = bn
        .statistics(&mut encoder, &wrong, x.slice(..), out.slice(..))
        .unwrap_err();
    assert!(matches!(e, BatchNormError::ChannelMismatch { .. }), "{e}");
}

/// `forward_with_statistics` with a total count of 1 (one sample on one device, nothing to
/// merge): the unbiased variance is +inf as documented (not 0 / 0), the rest finite, and
/// the reference agrees.
#[test]
fn a_total_count_of_one_gives_an_infinite_unbiased_variance() {
    let mut rng = rng();
    let c = 3;
    let shape = TensorShape::channels_first(&[1, c]).unwrap();
    let bn = BatchNorm::new(&gpu().device, BatchNormConfig::new(c)).unwrap();
    let x = normal(&mut rng, c, 1.0, 2.0);
    let (xb, stats) = (upload(&x), upload(&vec![f32::NAN; 4 * c]));
    let (gb, bb) = (upload(&[1.0; 3]), upload(&[0.5; 3]));
    submit(|e| {
        bn.statistics(e, &shape, xb.slice(..), stats.slice(..))
            .unwrap()
    });
    let got = forward_with(&bn, &shape, &stats, &xb, &gb, &bb);
    let mut want = wgpu_batchnorm::reference::RunningStats::new(c);
    let batch = wgpu_batchnorm::reference::batch_stats(&shape, &x);
    wgpu_batchnorm::reference::update_running(&BatchNormConfig::new(c), &mut want, &batch);
    assert!(want.var.iter().all(|v| *v == f64::INFINITY), "{want:?}");
    assert_eq!(got.running_var, [f32::INFINITY; 3]);
    assert_close(
        "count 1",
        "running_mean",
        &got.running_mean,
        &want.mean,
        TOL,
    );
    assert_close("count 1", "y", &got.y, &[0.5; 3], TOL);
    let invstd = 1.0 / 1e-5f64.sqrt();
    assert_close(
        "count 1",
        "save_invstd",
        &got.save_invstd,
        &[invstd; 3],
        TOL,
    );
}
