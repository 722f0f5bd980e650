//! Folding an eval-mode batch norm into the preceding linear or convolution layer, checked
//! against the unfused pair: the layer on the host, then batch norm on the GPU (eval).

#![allow(clippy::needless_range_loop)] // index loops mirror the convolution formula

use crate::common::*;
use rand::rngs::StdRng;
use wgpu_batchnorm::{
    BatchNorm, BatchNormConfig, BatchNormError, FoldParams, HostRunningStats, Mode, TensorShape,
    WeightLayout, fold_into_preceding,
};

/// A 2D convolution without padding, stride 1, in f64 from f32 data. `w(o, i, ky, kx)`
/// reads the weight; the input and output are NCHW or NHWC.
#[allow(clippy::too_many_arguments)]
fn conv2d(
    input: &[f32],
    (n, cin, h, w): (usize, usize, usize, usize),
    cout: usize,
    k: usize,
    weight: impl Fn(usize, usize, usize, usize) -> f32,
    bias: &[f32],
    nhwc: bool,
) -> Vec<f32> {
    let (oh, ow) = (h - k + 1, w - k + 1);
    let at_in = |b: usize, c: usize, y: usize, x: usize| {
        if nhwc {
            ((b * h + y) * w + x) * cin + c
        } else {
            ((b * cin + c) * h + y) * w + x
        }
    };
    let mut out = vec![0.0f32; n * cout * oh * ow];
    for b in 0..n {
        for o in 0..cout {
            for y in 0..oh {
                for x in 0..ow {
                    let mut acc = f64::from(bias[o]);
                    for i in 0..cin {
                        for ky in 0..k {
                            for kx in 0..k {
                                acc += f64::from(input[at_in(b, i, y + ky, x + kx)])
                                    * f64::from(weight(o, i, ky, kx));
                            }
                        }
                    }
                    let at = if nhwc {
                        ((b * oh + y) * ow + x) * cout + o
                    } else {
                        ((b * cout + o) * oh + y) * ow + x
                    };
                    out[at] = acc as f32;
                }
            }
        }
    }
    out
}

struct Bn {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    running: HostRunningStats,
    eps: f32,
}

fn random_bn(rng: &mut StdRng, c: usize) -> Bn {
    Bn {
        gamma: normal(rng, c, 1.0, 0.3),
        beta: normal(rng, c, 0.0, 0.5),
        running: HostRunningStats {
            mean: normal(rng, c, 0.2, 0.5),
            var: uniform(rng, c, 0.3, 3.0),
            num_batches_tracked: 10,
        },
        eps: 1e-3,
    }
}

/// The batch norm's eval output on the GPU for `x` of `shape`.
fn bn_eval(bn: &Bn, affine: bool, shape: &TensorShape, x: &[f32]) -> Vec<f32> {
    let gpu = gpu();
    let config = BatchNormConfig::new(shape.channels())
        .eps(bn.eps)
        .affine(affine);
    let layer = BatchNorm::new(&gpu.device, config).unwrap();
    let mut running = bn.running.clone();
    let affine = affine.then_some((bn.gamma.as_slice(), bn.beta.as_slice()));
    layer
        .forward_host(&gpu.queue, Mode::Eval, shape, x, affine, Some(&mut running))
        .unwrap()
        .y
}

fn params(bn: &Bn, affine: bool) -> FoldParams<'_> {
    FoldParams {
        gamma: affine.then_some(bn.gamma.as_slice()),
        beta: affine.then_some(bn.beta.as_slice()),
        running_mean: &bn.running.mean,
        running_var: &bn.running.var,
        eps: bn.eps,
    }
}

/// Relative L2 error between two f32 results.
fn assert_near(case: &str, got: &[f32], want: &[f32]) {
    let want: Vec<f64> = want.iter().map(|&v| f64::from(v)).collect();
    assert_close(case, "folded output", got, &want, TOL);
}

#[test]
fn linear_layers_pytorch_and_keras_layouts() {
    let mut rng = rng();
    let (n, inp, out) = (16, 7, 5);
    let u = normal(&mut rng, n * inp, 0.0, 1.0);
    for affine in [true, false] {
        for with_bias in [true, false] {
            let bn = random_bn(&mut rng, out);
            let w = normal(&mut rng, out * inp, 0.0, 0.5); // (out, in)
            let b = if with_bias {
                normal(&mut rng, out, 0.0, 0.5)
            } else {
                vec![0.0; out]
            };
            let linear = |w_at: &dyn Fn(usize, usize) -> f32, b: &[f32]| {
                let mut x = vec![0.0f32; n * out];
                for r in 0..n {
                    for o in 0..out {
                        let acc: f64 = f64::from(b[o])
                            + (0..inp)
                                .map(|i| f64::from(u[r * inp + i]) * f64::from(w_at(o, i)))
                                .sum::<f64>();
                        x[r * out + o] = acc as f32;
                    }
                }
                x
            };
            let shape = TensorShape::channels_first(&[n, out]).unwrap();
            let unfused = bn_eval(&bn, affine, &shape, &linear(&|o, i| w[o * inp + i], &b));
            let bias = with_bias.then_some(b.as_slice());
            let case = format!("linear affine={affine} bias={with_bias}");

            let f = fold_into_preceding(&w, bias, WeightLayout::OutputFirst, &params(&bn, affine))
                .unwrap();
            let fused = linear(&|o, i| f.weight[o * inp + i], &f.bias);
            assert_near(&format!("{case} (out, in)"), &fused, &unfused);

            // The same layer in Keras' (in, out) layout.
            let wt: Vec<f32> = (0..inp * out)
                .map(|j| w[(j % out) * inp + j / out])
                .collect();
            let f = fold_into_preceding(&wt, bias, WeightLayout::OutputLast, &params(&bn, affine))
                .unwrap();
            let fused = linear(&|o, i| f.weight[i * out + o], &f.bias);
            assert_near(&format!("{case} (in, out)"), &fused, &unfused);
        }
    }
}

#[test]
fn conv2d_oihw_with_nchw_and_hwio_with_nhwc() {
    let mut rng = rng();
    let (n, cin, h, w, cout, k) = (2, 3, 8, 9, 4, 3);
    let (oh, ow) = (h - k + 1, w - k + 1);
    let bn = random_bn(&mut rng, cout);
    let weight = normal(&mut rng, cout * cin * k * k, 0.0, 0.3); // OIHW
    let bias = normal(&mut rng, cout, 0.0, 0.3);
    let oihw = |wt: &[f32], o: usize, i: usize, ky: usize, kx: usize| {
        wt[((o * cin + i) * k + ky) * k + kx]
    };
    let hwio = |wt: &[f32], o: usize, i: usize, ky: usize, kx: usize| {
        wt[((ky * k + kx) * cin + i) * cout + o]
    };

    // NCHW with an OIHW weight (PyTorch).
    let input = normal(&mut rng, n * cin * h * w, 0.5, 1.0);
    let x = conv2d(
        &input,
        (n, cin, h, w),
        cout,
        k,
        |o, i, y, x| oihw(&weight, o, i, y, x),
        &bias,
        false,
    );
    let shape = TensorShape::channels_first(&[n, cout, oh, ow]).unwrap();
    let unfused = bn_eval(&bn, true, &shape, &x);
    let f = fold_into_preceding(
        &weight,
        Some(&bias),
        WeightLayout::OutputFirst,
        &params(&bn, true),
    )
    .unwrap();
    let fused = conv2d(
        &input,
        (n, cin, h, w),
        cout,
        k,
        |o, i, y, x| oihw(&f.weight, o, i, y, x),
        &f.bias,
        false,
    );
    assert_near("conv OIHW / NCHW", &fused, &unfused);

    // NHWC with the same weight in HWIO (TensorFlow / Keras).
    let weight_hwio: Vec<f32> = {
        let mut v = vec![0.0; weight.len()];
        for o in 0..cout {
            for i in 0..cin {
                for ky in 0..k {
                    for kx in 0..k {
                        v[((ky * k + kx) * cin + i) * cout + o] = oihw(&weight, o, i, ky, kx);
                    }
                }
            }
        }
        v
    };
    let input = normal(&mut rng, n * h * w * cin, 0.5, 1.0);
    let x = conv2d(
        &input,
        (n, cin, h, w),
        cout,
        k,
        |o, i, y, x| hwio(&weight_hwio, o, i, y, x),
        &bias,
        true,
    );
    let shape = TensorShape::channels_last(&[n, oh, ow, cout]).unwrap();
    let unfused = bn_eval(&bn, true, &shape, &x);
    let f = fold_into_preceding(
        &weight_hwio,
        Some(&bias),
        WeightLayout::OutputLast,
        &params(&bn, true),
    )
    .unwrap();
    let fused = conv2d(
        &input,
        (n, cin, h, w),
        cout,
        k,
        |o, i, y, x| hwio(&f.weight, o, i, y, x),
        &f.bias,
        true,
    );
    assert_near("conv HWIO / NHWC", &fused, &unfused);
}

#[test]
fn fold_rejects_mismatched_lengths() {
    let mut rng = rng();
    let bn = random_bn(&mut rng, 4);
    let e = fold_into_preceding(
        &[0.0; 10],
        None,
        WeightLayout::OutputFirst,
        &params(&bn, true),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            BatchNormError::WeightShape {
                len: 10,
                channels: 4
            }
        ),
        "{e}"
    );
    let e = fold_into_preceding(
        &[0.0; 8],
        Some(&[0.0; 3]),
        WeightLayout::OutputFirst,
        &params(&bn, true),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            BatchNormError::HostLength {
                name: "bias",
                expected: 4,
                got: 3
            }
        ),
        "{e}"
    );
    let mut p = params(&bn, true);
    p.running_var = &bn.running.var[..3];
    let e = fold_into_preceding(&[0.0; 8], None, WeightLayout::OutputFirst, &p).unwrap_err();
    assert!(
        matches!(
            e,
            BatchNormError::HostLength {
                name: "running_var",
                ..
            }
        ),
        "{e}"
    );
}
