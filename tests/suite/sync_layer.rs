//! `SyncBatchNormLayer` over an in-process `ThreadGroup`: ranks with uneven and empty
//! batches give, each, the slice of one layer's training step over the whole batch (y, dx),
//! and all the whole batch's gradients and running statistics, bit-identical on every
//! rank; a global count of one and a failed rank give typed errors on every rank, and no
//! rank hangs.

use crate::common::*;
use wgpu_batchnorm::{
    BatchNormConfig, BatchNormError, BatchNormLayer, Epilogue, LayerState, SyncBatchNormLayer,
    TensorShape, ThreadGroup,
};

/// What one rank's training step gave.
struct Step {
    y: Vec<f32>,
    dx: Vec<f32>,
    grads: (Vec<f32>, Vec<f32>),
    state: LayerState,
}

/// A layer with the given weight and bias.
fn layer(config: BatchNormConfig, gamma: &[f32], beta: &[f32]) -> BatchNormLayer {
    let gpu = gpu();
    let mut layer = BatchNormLayer::new(&gpu.device, config, "bn").unwrap();
    let mut state = layer.state(&gpu.queue).unwrap();
    (state.weight, state.bias) = (Some(gamma.to_vec()), Some(beta.to_vec()));
    layer.load_state(&gpu.queue, &state).unwrap();
    layer
}

/// Reads a rank's or the whole layer's outputs (an empty tensor's buffer holds one
/// placeholder value).
fn finish(layer: &BatchNormLayer, n: usize, y: &wgpu::Buffer, dx: &wgpu::Buffer) -> Step {
    let gpu = gpu();
    let read = |b: &wgpu::Buffer| read_f32(&gpu.device, &gpu.queue, b);
    let (g, b) = layer.grads().unwrap();
    Step {
        y: read(y)[..n].to_vec(),
        dx: read(dx)[..n].to_vec(),
        grads: (read(g), read(b)),
        state: layer.state(&gpu.queue).unwrap(),
    }
}

/// One training step of the plain layer over the whole batch.
fn whole_step(l: &mut BatchNormLayer, shape: &TensorShape, x: &[f32], dy: &[f32]) -> Step {
    let gpu = gpu();
    let up = |v: &[f32]| upload_f32(&gpu.device, v);
    let (xb, dyb) = (up(x), up(dy));
    let (yb, dxb) = (up(&vec![f32::NAN; x.len()]), up(&vec![f32::NAN; x.len()]));
    let mut e = gpu.device.create_command_encoder(&Default::default());
    l.forward(&mut e, shape, xb.slice(..), yb.slice(..))
        .unwrap();
    l.backward(
        &mut e,
        xb.slice(..),
        yb.slice(..),
        dyb.slice(..),
        dxb.slice(..),
    )
    .unwrap();
    gpu.queue.submit([e.finish()]);
    finish(l, x.len(), &yb, &dxb)
}

/// One synchronized training step of a rank; `Err` is the forward's or backward's error.
fn rank_step(
    l: &mut SyncBatchNormLayer<ThreadGroup>,
    shape: &TensorShape,
    x: &[f32],
    dy: &[f32],
) -> Result<Step, BatchNormError> {
    let gpu = gpu();
    let up = |v: &[f32]| upload_f32(&gpu.device, v);
    let (xb, dyb) = (up(x), up(dy));
    let (yb, dxb) = (up(&vec![f32::NAN; x.len()]), up(&vec![f32::NAN; x.len()]));
    l.forward(&gpu.queue, shape, xb.slice(..), yb.slice(..))?;
    l.backward(
        &gpu.queue,
        xb.slice(..),
        yb.slice(..),
        dyb.slice(..),
        dxb.slice(..),
    )?;
    Ok(finish(l.layer(), x.len(), &yb, &dxb))
}

/// Runs one synchronized step on each rank's part, each rank in its own thread.
fn synchronized(
    config: BatchNormConfig,
    parts: &[(TensorShape, Vec<f32>, Vec<f32>)],
    gamma: &[f32],
    beta: &[f32],
) -> Vec<Result<Step, BatchNormError>> {
    let members = ThreadGroup::new(parts.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = members
            .into_iter()
            .zip(parts)
            .map(|(member, (shape, x, dy))| {
                s.spawn(move || {
                    let mut l = SyncBatchNormLayer::new(layer(config, gamma, beta), member)?;
                    rank_step(&mut l, shape, x, dy)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits())
}

#[test]
fn ranks_with_uneven_and_empty_batches_equal_one_layer_over_the_whole_batch() {
    let mut rng = rng();
    let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
    for (dims, sizes, epilogue) in [
        (&[7, 4, 3, 3][..], &[3, 0, 4][..], Epilogue::None),
        (&[6, 5, 4, 2], &[1, 2, 3], Epilogue::Relu),
        (&[9, 6], &[0, 9, 0], Epilogue::None),
    ] {
        let shape = TensorShape::channels_first(dims).unwrap();
        let c = shape.channels();
        let case = format!("{dims:?} ranks {sizes:?} {epilogue:?}");
        let config = BatchNormConfig::new(c).epilogue(epilogue);
        let x = normal(&mut rng, shape.numel(), 1.5, 2.0);
        let dy = normal(&mut rng, shape.numel(), 0.2, 1.0);
        let (gamma, beta) = (normal(&mut rng, c, 1.0, 0.3), normal(&mut rng, c, 0.0, 0.3));
        let whole = whole_step(&mut layer(config, &gamma, &beta), &shape, &x, &dy);
        let parts: Vec<_> = split(&shape, &x, sizes)
            .into_iter()
            .zip(split(&shape, &dy, sizes))
            .map(|((s, xp), (_, dyp))| (s, xp, dyp))
            .collect();
        let ranks: Vec<Step> = synchronized(config, &parts, &gamma, &beta)
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("{case}: {e}")))
            .collect();
        let y: Vec<f32> = ranks.iter().flat_map(|r| r.y.clone()).collect();
        let dx: Vec<f32> = ranks.iter().flat_map(|r| r.dx.clone()).collect();
        assert_close(&case, "y", &y, &widen(&whole.y), TOL);
        assert_close(&case, "dx", &dx, &widen(&whole.dx), TOL);
        let r0 = &ranks[0];
        assert_close(&case, "dgamma", &r0.grads.0, &widen(&whole.grads.0), TOL);
        assert_close(&case, "dbeta", &r0.grads.1, &widen(&whole.grads.1), TOL);
        let running = |s: &LayerState| {
            [
                s.running_mean.clone().unwrap(),
                s.running_var.clone().unwrap(),
            ]
        };
        for (name, got, want) in ["running_mean", "running_var"]
            .into_iter()
            .zip(running(&r0.state))
            .zip(running(&whole.state))
            .map(|((n, g), w)| (n, g, w))
        {
            assert_close(&case, name, &got, &widen(&want), TOL);
        }
        assert_eq!(r0.state.num_batches_tracked, Some(1), "{case}");
        for (rank, r) in ranks.iter().enumerate() {
            let agree = same_bits(&r.grads.0, &r0.grads.0)
                && same_bits(&r.grads.1, &r0.grads.1)
                && running(&r.state)
                    .iter()
                    .zip(running(&r0.state))
                    .all(|(a, b)| same_bits(a, &b))
                && r.state.num_batches_tracked == r0.state.num_batches_tracked;
            assert!(
                agree,
                "{case}: rank {rank}'s gradients or running statistics differ from rank 0's"
            );
        }
    }
}

#[test]
fn a_global_count_of_one_is_refused_on_every_rank() {
    let c = 3;
    let one = TensorShape::channels_first(&[1, c]).unwrap();
    let none = TensorShape::channels_first(&[0, c]).unwrap();
    let parts = vec![
        (none.clone(), vec![], vec![]),
        (one, vec![0.5; c], vec![1.0; c]),
        (none, vec![], vec![]),
    ];
    let results = synchronized(BatchNormConfig::new(c), &parts, &[1.0; 3], &[0.0; 3]);
    for (rank, r) in results.iter().enumerate() {
        assert!(
            matches!(r, Err(BatchNormError::TooFewValuesPerChannel { .. })),
            "rank {rank}: {:?}",
            r.as_ref().err()
        );
    }
}

#[test]
fn a_failed_rank_gives_every_rank_a_typed_error() {
    let c = 3;
    let shape = TensorShape::channels_first(&[2, c]).unwrap();
    // Rank 1's input has the wrong channel count: its statistics pass is refused, and it
    // takes part in the exchange with nothing.
    let wrong = TensorShape::channels_first(&[2, c + 1]).unwrap();
    let parts = vec![
        (shape.clone(), vec![0.5; 2 * c], vec![1.0; 2 * c]),
        (wrong, vec![0.5; 2 * c + 2], vec![1.0; 2 * c + 2]),
        (shape, vec![0.25; 2 * c], vec![1.0; 2 * c]),
    ];
    let results = synchronized(BatchNormConfig::new(c), &parts, &[1.0; 3], &[0.0; 3]);
    assert!(
        matches!(results[1], Err(BatchNormError::ChannelMismatch { .. })),
        "rank 1: {:?}",
        results[1].as_ref().err()
    );
    for rank in [0, 2] {
        assert!(
            matches!(results[rank], Err(BatchNormError::PeerFailed { rank: 1 })),
            "rank {rank}: {:?}",
            results[rank].as_ref().err()
        );
    }
}
