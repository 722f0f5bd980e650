//! Folding a batch-norm layer in eval mode into the linear or convolution layer before it.
//!
//! In eval mode batch norm is the per-channel affine map `y = x * s + t` with
//! `s = gamma / sqrt(running_var + eps)` and `t = beta - running_mean * s`. After a layer
//! `x = W u + b` it folds into that layer: `W' = W * s` per output channel and
//! `b' = (b - running_mean) * s + beta`. Computed in f64, returned as f32.

use crate::error::{BatchNormError, Result};

/// Where the output-channel axis of a weight tensor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightLayout {
    /// Output channels outermost: PyTorch's `Linear` `(out, in)` and `Conv1d/2d/3d`
    /// `(out, in / groups, *kernel)`, ONNX `Gemm` with `transB` and `Conv`.
    OutputFirst,
    /// Output channels innermost: Keras `Dense` `(in, out)` and `Conv2D` `(kh, kw, in, out)`
    /// (HWIO), TensorFlow's layouts.
    OutputLast,
}

/// The eval-mode batch-norm parameters to fold, `C` values each (C = output channels).
#[derive(Clone, Copy, Debug)]
pub struct FoldParams<'a> {
    /// gamma, or `None` without affine (gamma = 1).
    pub gamma: Option<&'a [f32]>,
    /// beta, or `None` without affine (beta = 0).
    pub beta: Option<&'a [f32]>,
    /// Running mean.
    pub running_mean: &'a [f32],
    /// Running variance, as eval mode uses it.
    pub running_var: &'a [f32],
    /// eps of the batch-norm layer.
    pub eps: f32,
}

/// Folded weight (same layout and length as the input weight) and bias (one per output
/// channel).
#[derive(Clone, Debug, PartialEq)]
pub struct Folded {
    /// `W * s` per output channel.
    pub weight: Vec<f32>,
    /// `(b - running_mean) * s + beta`.
    pub bias: Vec<f32>,
}

/// Folds batch norm into the preceding layer's `weight` (in `layout`) and `bias` (`None`
/// for a layer without bias). The output-channel count is the length of `running_mean`;
/// `weight.len()` must be a positive multiple of it.
pub fn fold_into_preceding(
    weight: &[f32],
    bias: Option<&[f32]>,
    layout: WeightLayout,
    bn: &FoldParams<'_>,
) -> Result<Folded> {
    let c = bn.running_mean.len();
    let check = |name: &'static str, len: usize| {
        if len == c {
            Ok(())
        } else {
            Err(BatchNormError::HostLength {
                name,
                expected: c,
                got: len,
            })
        }
    };
    check("running_var", bn.running_var.len())?;
    if let Some(g) = bn.gamma {
        check("gamma", g.len())?;
    }
    if let Some(b) = bn.beta {
        check("beta", b.len())?;
    }
    if let Some(b) = bias {
        check("bias", b.len())?;
    }
    if c == 0 || weight.is_empty() || !weight.len().is_multiple_of(c) {
        return Err(BatchNormError::WeightShape {
            len: weight.len(),
            channels: c,
        });
    }
    if !(bn.eps.is_finite() && bn.eps >= 0.0) {
        return Err(BatchNormError::InvalidConfig(format!(
            "eps must be finite and >= 0, got {}",
            bn.eps
        )));
    }
    let scale: Vec<f64> = (0..c)
        .map(|o| {
            let g = bn.gamma.map_or(1.0, |g| f64::from(g[o]));
            g / (f64::from(bn.running_var[o]) + f64::from(bn.eps)).sqrt()
        })
        .collect();
    let per_out = weight.len() / c;
    let out_of = |i: usize| match layout {
        WeightLayout::OutputFirst => i / per_out,
        WeightLayout::OutputLast => i % c,
    };
    let weight = weight
        .iter()
        .enumerate()
        .map(|(i, &w)| (f64::from(w) * scale[out_of(i)]) as f32)
        .collect();
    let bias = (0..c)
        .map(|o| {
            let b = bias.map_or(0.0, |b| f64::from(b[o]));
            let beta = bn.beta.map_or(0.0, |b| f64::from(b[o]));
            ((b - f64::from(bn.running_mean[o])) * scale[o] + beta) as f32
        })
        .collect();
    Ok(Folded { weight, bias })
}
