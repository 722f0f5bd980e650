//! The two parts of a synchronized backward: `backward_reduce` writes one device's sums,
//! `backward_apply` turns the sums over every device into that device's dx and the whole
//! batch's gradients. Over devices with uneven and empty batches, each device's dx and the
//! gradients equal one backward over the whole batch (reference, and the GPU's own whole
//! backward with the fused epilogues), and every device gets the same gradient bits.

use crate::common::*;
use wgpu_batchnorm::{
    AffineGrads, BackwardBuffers, BackwardSums, BatchNorm, BatchNormConfig, BatchNormError,
    Epilogue, Layout, Mode, ReduceBuffers, SavedStats, TensorShape, reference,
};

/// The whole batch's saved statistics as a training forward writes them (f32 mean and
/// invstd of the biased variance).
fn saved_stats(shape: &TensorShape, x: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let s = reference::batch_stats(shape, x);
    let mean = s.mean.iter().map(|&m| m as f32).collect();
    let eps = f64::from(eps);
    let invstd = s
        .var
        .iter()
        .map(|&v| (1.0 / (v + eps).sqrt()) as f32)
        .collect();
    (mean, invstd)
}

/// One device's tensors and outputs.
struct Device {
    shape: TensorShape,
    x: wgpu::Buffer,
    dy: wgpu::Buffer,
    y: wgpu::Buffer,
    dx: wgpu::Buffer,
    dresidual: wgpu::Buffer,
    sums: wgpu::Buffer,
    dgamma: wgpu::Buffer,
    dbeta: wgpu::Buffer,
}

/// What a synchronized backward over `parts` (sizes along N) gave: the devices' dx and
/// dresidual concatenated, and each device's (dgamma, dbeta).
struct Synced {
    dx: Vec<f32>,
    dresidual: Vec<f32>,
    grads: Vec<(Vec<f32>, Vec<f32>)>,
}

/// Runs the reduce part on every device, adds the sums on the host in rank order, and runs
/// the apply part on every device with the total.
#[allow(clippy::too_many_arguments)]
fn synchronized(
    bn: &BatchNorm,
    shape: &TensorShape,
    parts: &[usize],
    x: &[f32],
    dy: &[f32],
    y: &[f32],
    gamma: &wgpu::Buffer,
    saved: &(wgpu::Buffer, wgpu::Buffer),
) -> Synced {
    let c = shape.channels();
    let cfg = bn.config();
    let (xs, dys, ys) = (
        split(shape, x, parts),
        split(shape, dy, parts),
        split(shape, y, parts),
    );
    let devices: Vec<Device> = xs
        .iter()
        .zip(dys.iter().zip(&ys))
        .map(|((s, xp), ((_, dyp), (_, yp)))| Device {
            shape: s.clone(),
            x: upload(xp),
            dy: upload(dyp),
            y: upload(yp),
            dx: upload(&vec![f32::NAN; s.numel()]),
            dresidual: upload(&vec![f32::NAN; s.numel()]),
            sums: upload(&vec![f32::NAN; 4 * c]),
            dgamma: upload(&vec![f32::NAN; c]),
            dbeta: upload(&vec![f32::NAN; c]),
        })
        .collect();
    let saved = SavedStats {
        mean: saved.0.slice(..),
        invstd: saved.1.slice(..),
    };
    fn bufs<'a>(
        d: &'a Device,
        cfg: &BatchNormConfig,
        gamma: &'a wgpu::Buffer,
        saved: SavedStats<'a>,
    ) -> BackwardBuffers<'a> {
        let fused = cfg.epilogue != Epilogue::None;
        BackwardBuffers {
            x: d.x.slice(..),
            dy: d.dy.slice(..),
            dx: d.dx.slice(..),
            y: fused.then(|| d.y.slice(..)),
            dresidual: (cfg.epilogue == Epilogue::AddRelu).then(|| d.dresidual.slice(..)),
            gamma: cfg.affine.then(|| gamma.slice(..)),
            grads: cfg.affine.then(|| AffineGrads {
                dgamma: d.dgamma.slice(..),
                dbeta: d.dbeta.slice(..),
                accumulate: false,
            }),
            saved: Some(saved),
            running: None,
        }
    }
    submit(|e| {
        for d in &devices {
            let b = bufs(d, cfg, gamma, saved);
            let reduce = ReduceBuffers {
                x: b.x,
                dy: b.dy,
                y: b.y,
                saved,
            };
            bn.backward_reduce(e, &d.shape, &reduce, d.sums.slice(..))
                .unwrap();
        }
    });
    let total = devices
        .iter()
        .map(|d| BackwardSums::from_gpu(&read(&d.sums)).unwrap())
        .reduce(|a, b| a.add(&b).unwrap())
        .unwrap();
    let total = upload(&total.to_gpu());
    let count = shape.per_channel() as u64;
    submit(|e| {
        for d in &devices {
            bn.backward_apply(
                e,
                &d.shape,
                &bufs(d, cfg, gamma, saved),
                total.slice(..),
                count,
            )
            .unwrap();
        }
    });
    let mut out = Synced {
        dx: Vec::new(),
        dresidual: Vec::new(),
        grads: Vec::new(),
    };
    for d in &devices {
        // An empty device's buffers hold one placeholder value.
        let n = d.shape.numel();
        out.dx.extend(&read(&d.dx)[..n]);
        out.dresidual.extend(&read(&d.dresidual)[..n]);
        out.grads.push((read(&d.dgamma), read(&d.dbeta)));
    }
    out
}

#[test]
fn reduce_writes_the_sums_of_the_local_batch() {
    let mut rng = rng();
    for (dims, layout, mean) in [
        (&[5, 3, 7, 6][..], Layout::ChannelsFirst, 1.0),
        (&[4, 5, 6, 3], Layout::ChannelsLast, -3.0),
        (&[64, 7], Layout::ChannelsFirst, 1e4),
        (&[0, 4, 3], Layout::ChannelsFirst, 0.0),
    ] {
        let shape = TensorShape::new(dims, layout).unwrap();
        let c = shape.channels();
        let case = format!("{dims:?} {layout:?} mean {mean}");
        let x = normal(&mut rng, shape.numel(), mean, 1.0);
        let dy = normal(&mut rng, shape.numel(), 0.3, 1.0);
        // The saved mean of some other (global) batch: the sums are around it.
        let saved_mean = normal(&mut rng, c, mean, 0.5);
        let (mb, ib) = (upload(&saved_mean), upload(&vec![1.0; c]));
        for bn in layers(BatchNormConfig::new(c)) {
            let (xb, dyb) = (upload(&x), upload(&dy));
            let sums = upload(&vec![f32::NAN; 4 * c]);
            let bufs = ReduceBuffers {
                x: xb.slice(..),
                dy: dyb.slice(..),
                y: None,
                saved: SavedStats {
                    mean: mb.slice(..),
                    invstd: ib.slice(..),
                },
            };
            submit(|e| {
                bn.backward_reduce(e, &shape, &bufs, sums.slice(..))
                    .unwrap()
            });
            let got = BackwardSums::from_gpu(&read(&sums)).unwrap();
            let shape = &shape;
            let per = |c: usize| (0..shape.per_channel()).map(move |k| shape.index(c, k));
            let (mut want_dy, mut want_xmu, mut abs_dy, mut abs_xmu) =
                (vec![], vec![], vec![], vec![]);
            for (ch, &m) in saved_mean.iter().enumerate() {
                let m = f64::from(m);
                let term = |i: usize| f64::from(dy[i]) * (f64::from(x[i]) - m);
                want_dy.push(per(ch).map(|i| f64::from(dy[i])).sum::<f64>());
                abs_dy.push(per(ch).map(|i| f64::from(dy[i]).abs()).sum::<f64>());
                want_xmu.push(per(ch).map(term).sum::<f64>());
                abs_xmu.push(per(ch).map(|i| term(i).abs()).sum::<f64>());
            }
            let narrow = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
            let case = format!("{case} {:?}", bn.forward_path(shape, Mode::Train));
            assert_close_scaled(
                &case,
                "sum_dy",
                &narrow(&got.sum_dy),
                &want_dy,
                &abs_dy,
                TOL,
            );
            let got_xmu = narrow(&got.sum_dy_xmu);
            assert_close_scaled(&case, "sum_dy_xmu", &got_xmu, &want_xmu, &abs_xmu, TOL);
        }
    }
}

#[test]
fn apply_over_uneven_and_empty_devices_equals_the_whole_batch_backward() {
    let mut rng = rng();
    for (dims, layout, parts, affine) in [
        (
            &[7, 3, 5, 6][..],
            Layout::ChannelsFirst,
            &[2, 0, 5][..],
            true,
        ),
        (&[7, 5, 4, 3], Layout::ChannelsLast, &[3, 4, 0], true),
        (&[9, 6], Layout::ChannelsFirst, &[4, 1, 4], false),
        (&[3, 4, 2, 2, 5], Layout::ChannelsFirst, &[1, 1, 1], true),
    ] {
        let shape = TensorShape::new(dims, layout).unwrap();
        let c = shape.channels();
        let case = format!("{dims:?} {layout:?} parts {parts:?} affine {affine}");
        let config = BatchNormConfig::new(c).affine(affine);
        let x = normal(&mut rng, shape.numel(), 2.0, 1.5);
        let dy = normal(&mut rng, shape.numel(), 0.1, 1.0);
        let gamma = normal(&mut rng, c, 1.0, 0.3);
        let (mean, invstd) = saved_stats(&shape, &x, config.eps);
        let saved = (upload(&mean), upload(&invstd));
        let want = reference::backward(
            &config,
            Mode::Train,
            &shape,
            &x,
            &dy,
            affine.then_some(&gamma[..]),
            Some((&mean, &invstd)),
            None,
        );
        for bn in layers(config) {
            let got = synchronized(&bn, &shape, parts, &x, &dy, &x, &upload(&gamma), &saved);
            let (g0, b0) = &got.grads[0];
            let grads = affine.then_some((&g0[..], &b0[..]));
            assert_gradients(&case, &got.dx, grads, &want, TOL);
            for (r, g) in got.grads.iter().enumerate() {
                if affine {
                    let same = |a: &[f32], b: &[f32]| {
                        a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits())
                    };
                    assert!(
                        same(&g.0, g0) && same(&g.1, b0),
                        "{case}: device {r}'s gradients differ from device 0's"
                    );
                }
            }
        }
    }
}

#[test]
fn apply_with_fused_epilogues_equals_the_whole_gpu_backward() {
    let gpu = gpu();
    let mut rng = rng();
    let shape = TensorShape::channels_first(&[6, 4, 5, 5]).unwrap();
    let c = 4;
    for epilogue in [Epilogue::Relu, Epilogue::AddRelu] {
        let config = BatchNormConfig::new(c).epilogue(epilogue);
        let bn = BatchNorm::new(&gpu.device, config).unwrap();
        let x = normal(&mut rng, shape.numel(), 0.5, 1.0);
        let dy = normal(&mut rng, shape.numel(), 0.0, 1.0);
        // A ReLU output: about half zero.
        let y: Vec<f32> = normal(&mut rng, shape.numel(), 0.0, 1.0)
            .iter()
            .map(|v| v.max(0.0))
            .collect();
        let gamma = normal(&mut rng, c, 1.0, 0.3);
        let (mean, invstd) = saved_stats(&shape, &x, config.eps);
        let saved = (upload(&mean), upload(&invstd));
        let gb = upload(&gamma);
        let got = synchronized(&bn, &shape, &[2, 0, 4], &x, &dy, &y, &gb, &saved);
        let whole = synchronized(&bn, &shape, &[6], &x, &dy, &y, &gb, &saved);
        let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
        let case = format!("{epilogue:?}");
        assert_close(&case, "dx", &got.dx, &widen(&whole.dx), TOL);
        assert_close(
            &case,
            "dgamma",
            &got.grads[0].0,
            &widen(&whole.grads[0].0),
            TOL,
        );
        assert_close(
            &case,
            "dbeta",
            &got.grads[0].1,
            &widen(&whole.grads[0].1),
            TOL,
        );
        if epilogue == Epilogue::AddRelu {
            assert_close(
                &case,
                "dresidual",
                &got.dresidual,
                &widen(&whole.dresidual),
                0.0,
            );
        }
        // The one-device split equals the plain backward too.
        let (xb, dyb, yb) = (upload(&x), upload(&dy), upload(&y));
        let (dx, dz) = (
            upload(&vec![f32::NAN; shape.numel()]),
            upload(&vec![f32::NAN; shape.numel()]),
        );
        let (dg, db) = (upload(&vec![f32::NAN; c]), upload(&vec![f32::NAN; c]));
        submit(|e| {
            let bufs = BackwardBuffers {
                x: xb.slice(..),
                dy: dyb.slice(..),
                dx: dx.slice(..),
                y: Some(yb.slice(..)),
                dresidual: (epilogue == Epilogue::AddRelu).then(|| dz.slice(..)),
                gamma: Some(gb.slice(..)),
                grads: Some(AffineGrads {
                    dgamma: dg.slice(..),
                    dbeta: db.slice(..),
                    accumulate: false,
                }),
                saved: Some(SavedStats {
                    mean: saved.0.slice(..),
                    invstd: saved.1.slice(..),
                }),
                running: None,
            };
            bn.backward(e, Mode::Train, &shape, &bufs).unwrap();
        });
        assert_close(&case, "dx whole", &whole.dx, &widen(&read(&dx)), TOL);
        assert_close(
            &case,
            "dgamma whole",
            &whole.grads[0].0,
            &widen(&read(&dg)),
            TOL,
        );
    }
}

#[test]
fn parts_are_checked() {
    let gpu = gpu();
    let c = 3;
    let shape = TensorShape::channels_first(&[4, c]).unwrap();
    let bn = BatchNorm::new(&gpu.device, BatchNormConfig::new(c)).unwrap();
    let t = upload(&vec![1.0; shape.numel()]);
    let ch = upload(&vec![1.0; c]);
    let sums = upload(&vec![0.0; 4 * c]);
    let saved = SavedStats {
        mean: ch.slice(..),
        invstd: ch.slice(..),
    };
    let bufs = BackwardBuffers {
        x: t.slice(..),
        dy: t.slice(..),
        dx: t.slice(..),
        y: None,
        dresidual: None,
        gamma: Some(ch.slice(..)),
        grads: Some(AffineGrads {
            dgamma: ch.slice(..),
            dbeta: ch.slice(..),
            accumulate: false,
        }),
        saved: Some(saved),
        running: None,
    };
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    let reduce = ReduceBuffers {
        x: t.slice(..),
        dy: t.slice(..),
        y: None,
        saved,
    };
    // The reduce part of a fused epilogue needs y.
    let relu = BatchNorm::new(
        &gpu.device,
        BatchNormConfig::new(c).epilogue(Epilogue::Relu),
    )
    .unwrap();
    let err = relu
        .backward_reduce(&mut encoder, &shape, &reduce, sums.slice(..))
        .unwrap_err();
    assert!(
        matches!(err, BatchNormError::MissingBuffer { .. }),
        "{err:?}"
    );
    // The total count cannot be below the local one.
    let err = bn
        .backward_apply(&mut encoder, &shape, &bufs, sums.slice(..), 3)
        .unwrap_err();
    assert!(matches!(err, BatchNormError::InvalidConfig(_)), "{err:?}");
    // The sums hold 4 f32 per channel.
    let short = upload(&vec![0.0; 4 * c - 1]);
    let err = bn
        .backward_reduce(&mut encoder, &shape, &reduce, short.slice(..))
        .unwrap_err();
    assert!(matches!(err, BatchNormError::BufferSize { .. }), "{err:?}");
    gpu.queue.submit([encoder.finish()]);
}
