//! CPU reference of every mode, in f64, written to be obviously right rather than fast.
//! The tests compare every GPU result with it.

use crate::config::{BatchNormConfig, Epilogue, Mode, MomentumConvention, VarianceConvention};
use crate::shape::TensorShape;

/// Per-channel batch statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    /// Mean per channel.
    pub mean: Vec<f64>,
    /// Biased variance per channel (divided by the count).
    pub var: Vec<f64>,
    /// Values per channel.
    pub count: usize,
}

/// Running statistics in f64.
#[derive(Clone, Debug, PartialEq)]
pub struct RunningStats {
    /// Running mean per channel.
    pub mean: Vec<f64>,
    /// Running unbiased variance per channel.
    pub var: Vec<f64>,
    /// Training forwards seen.
    pub num_batches_tracked: u64,
}

impl RunningStats {
    /// PyTorch's initial state: mean 0, variance 1, no batches.
    pub fn new(channels: usize) -> Self {
        Self {
            mean: vec![0.0; channels],
            var: vec![1.0; channels],
            num_batches_tracked: 0,
        }
    }
}

/// Reference forward result.
#[derive(Clone, Debug, PartialEq)]
pub struct Forward {
    /// Output, in the input's layout.
    pub y: Vec<f64>,
    /// Batch mean and `1 / sqrt(var + eps)` per channel, when batch statistics were used.
    pub saved: Option<(Vec<f64>, Vec<f64>)>,
}

/// Reference backward result.
#[derive(Clone, Debug, PartialEq)]
pub struct Backward {
    /// Gradient with respect to x.
    pub dx: Vec<f64>,
    /// The condition scale of `dx` (see [`scaled_error`]): in training mode
    /// `|gamma * invstd| * (|dy| + |mean(dy)| + |xhat * mean(dy * xhat)|)`, the magnitudes
    /// of the terms that `dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat))`
    /// adds; `|dx|` in eval mode, where nothing cancels.
    pub dx_abs: Vec<f64>,
    /// Gradients of gamma and beta, when affine.
    pub dgamma_dbeta: Option<(Vec<f64>, Vec<f64>)>,
    /// The condition scales of the gradients of gamma and beta, when affine: per channel
    /// `sum(|dy * xhat|)` and `sum(|dy|)`, the sums of the terms' magnitudes. See
    /// [`scaled_error`].
    pub dgamma_dbeta_abs: Option<(Vec<f64>, Vec<f64>)>,
}

/// The values of channel `c`, in order.
fn channel(shape: &TensorShape, data: &[f32], c: usize) -> impl Iterator<Item = f64> {
    (0..shape.per_channel()).map(move |k| f64::from(data[shape.index(c, k)]))
}

/// Two-pass mean and biased variance per channel.
pub fn batch_stats(shape: &TensorShape, x: &[f32]) -> Stats {
    let n = shape.per_channel();
    let (mut mean, mut var) = (Vec::new(), Vec::new());
    for c in 0..shape.channels() {
        let m = channel(shape, x, c).sum::<f64>() / n as f64;
        let v = channel(shape, x, c).map(|v| (v - m) * (v - m)).sum::<f64>() / n as f64;
        mean.push(m);
        var.push(v);
    }
    Stats {
        mean,
        var,
        count: n,
    }
}

/// The running-statistics update: `new = (1 - m) * old + m * batch` with `m` the new
/// batch's weight (`momentum`, or `1 - momentum` in the old-value convention), or
/// `1 / num_batches_tracked` when momentum is `None`; the batch variance unbiased or
/// biased as configured.
/// With `skip_non_finite_update`, a batch with a non-finite mean or variance changes nothing
/// and this returns `false`; otherwise `true`.
pub fn update_running(config: &BatchNormConfig, running: &mut RunningStats, stats: &Stats) -> bool {
    let finite = stats.mean.iter().chain(&stats.var).all(|v| v.is_finite());
    if config.skip_non_finite_update && stats.count > 0 && !finite {
        return false;
    }
    running.num_batches_tracked += 1;
    let m = match config.momentum {
        Some(m) => match config.momentum_convention {
            MomentumConvention::NewBatch => f64::from(m),
            MomentumConvention::OldValue => 1.0 - f64::from(m),
        },
        None => 1.0 / running.num_batches_tracked as f64,
    };
    for c in 0..stats.mean.len() {
        let var = match config.running_var_convention {
            VarianceConvention::Unbiased => unbiased_variance(stats.var[c], stats.count),
            VarianceConvention::Biased => stats.var[c],
        };
        running.mean[c] = (1.0 - m) * running.mean[c] + m * stats.mean[c];
        running.var[c] = (1.0 - m) * running.var[c] + m * var;
    }
    true
}

/// The unbiased variance `count / (count - 1) * var` of a biased variance over `count`
/// values; +inf for a single value (whose variance 0 says nothing), NaN kept.
pub fn unbiased_variance(var: f64, count: usize) -> f64 {
    if count == 1 && var == 0.0 {
        return f64::INFINITY;
    }
    let n = count as f64;
    var * n / (n - 1.0)
}

/// Reference forward. `affine` is `(gamma, beta)`; `running` is updated when the call
/// updates running statistics and read in eval.
pub fn forward(
    config: &BatchNormConfig,
    mode: Mode,
    shape: &TensorShape,
    x: &[f32],
    affine: Option<(&[f32], &[f32])>,
    running: Option<&mut RunningStats>,
) -> Forward {
    let eps = f64::from(config.eps);
    let channels = shape.channels();
    let (mean, invstd, saved) = if config.uses_batch_stats(mode) {
        let stats = batch_stats(shape, x);
        if let Some(r) = running.filter(|_| config.updates_running_stats(mode)) {
            update_running(config, r, &stats);
        }
        let invstd: Vec<f64> = stats.var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
        (
            stats.mean.clone(),
            invstd.clone(),
            Some((stats.mean, invstd)),
        )
    } else {
        let r = running.expect("eval with tracked statistics needs running statistics");
        let invstd = r.var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
        (r.mean.clone(), invstd, None)
    };
    let mut y = vec![0.0; x.len()];
    for c in 0..channels {
        let (g, b) = affine.map_or((1.0, 0.0), |(g, b)| (f64::from(g[c]), f64::from(b[c])));
        for k in 0..shape.per_channel() {
            let i = shape.index(c, k);
            y[i] = g * (f64::from(x[i]) - mean[c]) * invstd[c] + b;
        }
    }
    Forward { y, saved }
}

/// Reference backward of a forward in `mode`, with the contract of the GPU backward:
/// from the forward's input `x`, `dy`, gamma and the statistics the forward normalized with.
/// With batch statistics these are `saved` (the forward's saved mean and invstd, as
/// PyTorch's `batch_norm_backward` takes them), or, when `saved` is `None`, recomputed
/// from `x` in f64; in eval with tracked statistics, `running`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    config: &BatchNormConfig,
    mode: Mode,
    shape: &TensorShape,
    x: &[f32],
    dy: &[f32],
    gamma: Option<&[f32]>,
    saved: Option<(&[f32], &[f32])>,
    running: Option<&RunningStats>,
) -> Backward {
    let eps = f64::from(config.eps);
    let batch = config.uses_batch_stats(mode);
    let widen = |v: &[f32]| v.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
    let (mean, invstd): (Vec<f64>, Vec<f64>) = match (batch, saved) {
        (true, Some((m, s))) => (widen(m), widen(s)),
        (true, None) => {
            let s = batch_stats(shape, x);
            let invstd = s.var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
            (s.mean, invstd)
        }
        (false, _) => {
            let r = running.expect("eval with tracked statistics needs running statistics");
            (
                r.mean.clone(),
                r.var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect(),
            )
        }
    };
    let m = shape.per_channel() as f64;
    let mut dx = vec![0.0; x.len()];
    let mut dx_abs = vec![0.0; x.len()];
    let (mut dgamma, mut dbeta) = (Vec::new(), Vec::new());
    let (mut dgamma_abs, mut dbeta_abs) = (Vec::new(), Vec::new());
    for c in 0..shape.channels() {
        let g = gamma.map_or(1.0, |g| f64::from(g[c]));
        let xhat = |i: usize| (f64::from(x[i]) - mean[c]) * invstd[c];
        let idx: Vec<usize> = (0..shape.per_channel())
            .map(|k| shape.index(c, k))
            .collect();
        let sum_dy: f64 = idx.iter().map(|&i| f64::from(dy[i])).sum();
        let sum_dy_xhat: f64 = idx.iter().map(|&i| f64::from(dy[i]) * xhat(i)).sum();
        dgamma_abs.push(
            idx.iter()
                .map(|&i| (f64::from(dy[i]) * xhat(i)).abs())
                .sum(),
        );
        dbeta_abs.push(idx.iter().map(|&i| f64::from(dy[i]).abs()).sum());
        for &i in &idx {
            dx[i] = if batch {
                g * invstd[c] * (f64::from(dy[i]) - sum_dy / m - xhat(i) * sum_dy_xhat / m)
            } else {
                f64::from(dy[i]) * g * invstd[c]
            };
            dx_abs[i] = if batch {
                (g * invstd[c]).abs()
                    * (f64::from(dy[i]).abs()
                        + (sum_dy / m).abs()
                        + (xhat(i) * sum_dy_xhat / m).abs())
            } else {
                dx[i].abs()
            };
        }
        dgamma.push(sum_dy_xhat);
        dbeta.push(sum_dy);
    }
    Backward {
        dx,
        dx_abs,
        dgamma_dbeta: config.affine.then_some((dgamma, dbeta)),
        dgamma_dbeta_abs: config.affine.then_some((dgamma_abs, dbeta_abs)),
    }
}

/// Relative L2 error `||got - want|| / ||want||` (absolute when `want` is all zeros), and
/// the index of the largest difference. Non-finite values must match (see
/// [`non_finite_matches`]); any other NaN or infinity in `got` gives an infinite error.
pub fn relative_l2_error(got: &[f32], want: &[f64]) -> (f64, usize) {
    l2_error(got, want, |w, _| w * w)
}

/// Whether `got` matches a non-finite reference value `want`: NaN by NaN; an infinity by
/// the same infinity or by NaN. The reference takes a channel's mean in two passes, so a
/// channel holding an infinity has an infinite mean (and a NaN variance); a one-pass
/// (Welford) update, as on the GPU, meets `inf - inf` and gives NaN for that mean. Both
/// are non-finite, and everything computed from that channel is NaN either way.
pub fn non_finite_matches(got: f32, want: f64) -> bool {
    if want.is_nan() {
        got.is_nan()
    } else {
        got.is_nan() || f64::from(got) == want
    }
}

/// `||got - want|| / sqrt(sum of norm2(want[i], i))` over the finite reference values
/// (absolute when that sum is zero), and the index of the largest difference; a
/// non-finite reference value must be matched (see [`non_finite_matches`]), and NaN or
/// infinity in `got` anywhere else gives an infinite error.
fn l2_error(got: &[f32], want: &[f64], norm2: impl Fn(f64, usize) -> f64) -> (f64, usize) {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let mut diff2 = 0.0;
    let mut norm = 0.0;
    let mut worst = (0.0, 0);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if !w.is_finite() {
            if !non_finite_matches(g, w) {
                return (f64::INFINITY, i);
            }
            continue;
        }
        let d = (f64::from(g) - w).abs();
        if !d.is_finite() {
            return (f64::INFINITY, i);
        }
        if d > worst.0 {
            worst = (d, i);
        }
        diff2 += d * d;
        norm += norm2(w, i);
    }
    let err = if norm > 0.0 {
        (diff2 / norm).sqrt()
    } else {
        diff2.sqrt()
    };
    (err, worst.1)
}

/// Per channel, the mean of `|x|`: the condition scale of the channel's mean (see
/// [`scaled_error`]).
pub fn mean_abs(shape: &TensorShape, x: &[f32]) -> Vec<f64> {
    let n = shape.per_channel().max(1) as f64;
    (0..shape.channels())
        .map(|c| channel(shape, x, c).map(f64::abs).sum::<f64>() / n)
        .collect()
}

/// Error of values that are computed by cancellation, measured against their condition:
/// `||got - want|| / ||s||` with `s[i] = max(|want[i]|, scale[i])`, where `scale[i]` is the
/// size of the terms that cancel in `want[i]`, and the index of the largest difference.
///
/// A sum is only as precise as its terms: rounding each to f32 moves it by up to about
/// 6e-8 times the sum of their magnitudes, so a sum whose terms nearly cancel (a channel
/// mean near zero, a `sum(dy)` near zero, a `dx` of a channel with few values, where
/// `dy`, `mean(dy)` and `xhat * mean(dy * xhat)` nearly cancel) cannot be kept to 1e-5 of
/// itself by any f32 computation, but can be kept to 1e-5 of the terms. The scales are
/// [`mean_abs`] for means, [`Backward::dgamma_dbeta_abs`] for the parameter gradients and
/// [`Backward::dx_abs`] for `dx`. Where nothing cancels the scale is `|want|` and this
/// is [`relative_l2_error`].
pub fn scaled_error(got: &[f32], want: &[f64], scale: &[f64]) -> (f64, usize) {
    assert_eq!(scale.len(), want.len(), "lengths differ");
    l2_error(got, want, |w, i| w.abs().max(scale[i]).powi(2))
}

/// Applies a fused epilogue to a reference forward's output in place: adds the residual
/// (for [`Epilogue::AddRelu`]), then the ReLU.
pub fn apply_epilogue(y: &mut [f64], residual: Option<&[f32]>, epilogue: Epilogue) {
    if epilogue == Epilogue::AddRelu {
        let z = residual.expect("AddRelu needs the residual");
        for (v, &z) in y.iter_mut().zip(z) {
            *v += f64::from(z);
        }
    }
    if epilogue != Epilogue::None {
        for v in y.iter_mut() {
            *v = relu(*v);
        }
    }
}

/// PyTorch's `relu`: `max(v, 0)`, NaN kept (`f64::max` would drop it).
pub fn relu(v: f64) -> f64 {
    if v < 0.0 { 0.0 } else { v }
}

/// The gradient reaching batch norm's output through a fused epilogue, given the gradient
/// `dy` of the epilogue's output and that output `y` (the forward's, as the GPU backward
/// takes it): 0 where `y <= 0`, else `dy`, so a NaN `y` passes the gradient as PyTorch's
/// `threshold_backward` does; `dy` itself without an epilogue. With
/// [`Epilogue::AddRelu`] this is also the residual's gradient.
pub fn through_epilogue(dy: &[f32], y: &[f32], epilogue: Epilogue) -> Vec<f32> {
    if epilogue == Epilogue::None {
        return dy.to_vec();
    }
    dy.iter()
        .zip(y)
        .map(|(&g, &y)| if y <= 0.0 { 0.0 } else { g })
        .collect()
}
