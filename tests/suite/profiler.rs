//! `BatchNorm::with_profiler`: a profiled call gives the same results (the case builder,
//! against the reference) and a GPU time for each of its dispatches, the ones
//! `forward_dispatches` and `backward_dispatches` list, in order.

use std::sync::Arc;

use crate::common::*;
use wgpu_batchnorm::{
    AffineGrads, BackwardBuffers, BatchNorm, BatchNormConfig, Dispatch, DispatchProfiler, Mode,
    SavedStats, TensorShape,
};

/// The dispatches of the case builder's training forward and backward of `shape` (affine,
/// tracked running statistics, saved statistics, fresh gradients).
fn train_dispatches(bn: &BatchNorm, shape: &TensorShape) -> (Vec<Dispatch>, Vec<Dispatch>) {
    let device = bn.device();
    let b = TrainBufs::new(device, shape);
    let dy = upload_f32(device, &vec![0.0; shape.numel()]);
    let grads = [0, 1].map(|_| upload_f32(device, &vec![0.0; shape.channels()]));
    let forward = bn
        .forward_dispatches(Mode::Train, shape, &b.forward())
        .unwrap();
    let backward = bn
        .backward_dispatches(
            Mode::Train,
            shape,
            &BackwardBuffers {
                x: b.x.slice(..),
                dy: dy.slice(..),
                dx: b.y.slice(..),
                y: None,
                dresidual: None,
                gamma: Some(b.gamma.slice(..)),
                grads: Some(AffineGrads {
                    dgamma: grads[0].slice(..),
                    dbeta: grads[1].slice(..),
                    accumulate: false,
                }),
                saved: Some(SavedStats {
                    mean: b.sm.slice(..),
                    invstd: b.si.slice(..),
                }),
                running: None,
            },
        )
        .unwrap();
    (forward, backward)
}

#[test]
fn a_profiled_call_times_each_dispatch_and_gives_the_same_results() {
    let gpu = gpu();
    let mut rng = rng();
    let profiler = Arc::new(DispatchProfiler::new(&gpu.device, 64).unwrap());
    // One shape per kernel path: split reduction (two-pass layer), one pass per workgroup,
    // row blocks (channels-last), one pass per invocation (few values per channel).
    let cases = [
        (vec![8, 6, 17, 19], false, false),
        (vec![4, 3, 9, 11], false, true),
        (vec![6, 9, 10, 12], true, true),
        (vec![300, 5], false, true),
    ];
    for (dims, last, one_pass) in cases {
        let shape = match last {
            false => TensorShape::channels_first(&dims),
            true => TensorShape::channels_last(&dims),
        }
        .unwrap();
        let c = shape.channels();
        let mut bn = BatchNorm::new(&gpu.device, BatchNormConfig::new(c)).unwrap();
        if !one_pass {
            bn = bn.without_one_pass_kernels();
        }
        let bn = bn.with_profiler(profiler.clone());
        let (forward, backward) = train_dispatches(&bn, &shape);
        check(&bn, Mode::Train, &shape, ORDINARY, TOL, &mut rng);
        assert_eq!(profiler.pending(), forward.len() + backward.len());
        let times = profiler.read(&gpu.queue).unwrap();
        assert_eq!(profiler.pending(), 0, "reading empties the profiler");
        let case = format!("{dims:?} channels-last {last}, one pass {one_pass}");
        let got = |call: &str| -> Vec<Dispatch> {
            times
                .iter()
                .filter(|t| t.call == call)
                .map(|t| t.dispatch)
                .collect()
        };
        assert_eq!(got("wgpu-batchnorm.forward"), forward, "{case}");
        assert_eq!(got("wgpu-batchnorm.backward"), backward, "{case}");
        assert_eq!(times.len(), forward.len() + backward.len(), "{case}");
        for t in &times {
            assert!(t.ms.is_finite() && t.ms >= 0.0, "{case}: {t:?}");
            assert!(t.ms < 1e4, "{case}: {t:?} (timestamps out of order?)");
        }
        assert!(
            times.iter().any(|t| t.ms > 0.0),
            "{case}: every dispatch took no time: {times:?}"
        );
    }
}
