//! Options of a batch-norm layer.

use crate::error::{BatchNormError, Result};

/// Options of a batch-norm layer, with PyTorch's defaults from [`BatchNormConfig::new`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Number of channels C.
    pub num_features: usize,
    /// Added to the variance before the square root. Default `1e-5`.
    pub eps: f32,
    /// Weight of the new batch in the running statistics: `new = (1 - m) * old + m * batch`.
    /// Default `Some(0.1)`. `None` means a cumulative average, `m = 1 / num_batches_tracked`.
    pub momentum: Option<f32>,
    /// Learnable per-channel scale gamma and shift beta. Default `true`.
    pub affine: bool,
    /// Keep running mean and variance, updated in training and used in eval. Default `true`.
    /// When `false`, eval mode normalizes with batch statistics, as PyTorch does.
    pub track_running_stats: bool,
    /// Which value `momentum` weights. Default [`MomentumConvention::NewBatch`] (PyTorch).
    pub momentum_convention: MomentumConvention,
    /// Which batch variance the running variance averages. Default
    /// [`VarianceConvention::Unbiased`] (PyTorch, cuDNN, candle).
    pub running_var_convention: VarianceConvention,
    /// Skip the running-statistics update (and the `num_batches_tracked` increment) of a
    /// training batch whose mean or variance is not finite in any channel, and count it in
    /// `RunningStats::skipped_batches` instead. Default `false`: as PyTorch, non-finite batch
    /// statistics flow into the running statistics.
    pub skip_non_finite_update: bool,
    /// Elementwise work fused into the passes over the tensor. Default
    /// [`Epilogue::None`].
    pub epilogue: Epilogue,
    /// Element type of the tensors (x, y, dy, dx, residual, dresidual). Default
    /// [`DType::F32`]. Statistics, gamma, beta and running statistics are always f32.
    pub dtype: DType,
}

/// Element type of the tensors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float.
    #[default]
    F32,
    /// 16-bit float (IEEE binary16), computed in f32 inside the kernels. Needs a device
    /// with `Features::SHADER_F16`. A tensor of n values occupies `2 * n` bytes rounded up
    /// to a multiple of 4 (wgpu binds whole 4-byte words); the padding is never read or
    /// written.
    F16,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
        }
    }

    /// Bytes a tensor of `numel` values occupies: `numel * size`, rounded up to 4.
    pub fn tensor_bytes(self, numel: u64) -> u64 {
        (numel * self.size()).div_ceil(4) * 4
    }
}

/// Elementwise work fused into batch norm's passes over the tensor, so that it costs no
/// extra pass: the forward writes the epilogue's output, and the backward takes the
/// gradient of that output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Epilogue {
    /// `y = bn(x)`.
    #[default]
    None,
    /// `y = relu(bn(x))`. The backward reads the forward's `y` for the ReLU's mask.
    Relu,
    /// `y = relu(bn(x) + z)` with a residual `z` of x's shape (a ResNet block's end). The
    /// backward reads the forward's `y` and writes `dz` too.
    AddRelu,
}

/// Which value the momentum of the running statistics weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MomentumConvention {
    /// `running = (1 - m) * running + m * batch` (PyTorch, cuDNN's `exponentialAverageFactor`,
    /// candle): typical m = 0.1.
    #[default]
    NewBatch,
    /// `running = m * running + (1 - m) * batch` (Keras, TensorFlow, ONNX): typical m = 0.99
    /// or 0.9.
    OldValue,
}

impl MomentumConvention {
    /// The same momentum written in the `to` convention: `m` itself, or `1 - m`.
    pub fn convert(self, momentum: f32, to: MomentumConvention) -> f32 {
        if self == to { momentum } else { 1.0 - momentum }
    }
}

/// Which batch variance the running variance averages (eval mode normalizes with the
/// running variance as it is stored).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum VarianceConvention {
    /// `M / (M - 1) * var` (PyTorch, cuDNN, candle).
    #[default]
    Unbiased,
    /// `var`, as normalization uses (ONNX, burn).
    Biased,
}

impl VarianceConvention {
    /// Converts a running variance kept in convention `self` to convention `to`, for
    /// batches of `count` values per channel (N times the spatial size): multiplies by
    /// `count / (count - 1)` or its inverse. Exact when every batch averaged had `count`
    /// values per channel, as in training with a fixed batch size; the variance's initial
    /// value (1) is scaled too, which is what the other convention would hold only if it
    /// had started from the scaled value.
    ///
    /// `count` must be at least 2 (also when the conventions are equal); below that the
    /// factor is undefined and this returns [`BatchNormError::ConversionCount`] with
    /// `running_var` unchanged.
    pub fn convert(
        self,
        running_var: &mut [f32],
        count: usize,
        to: VarianceConvention,
    ) -> Result<()> {
        if count < 2 {
            return Err(BatchNormError::ConversionCount { count });
        }
        let ratio = count as f64 / (count as f64 - 1.0);
        let factor = match (self, to) {
            (VarianceConvention::Biased, VarianceConvention::Unbiased) => ratio,
            (VarianceConvention::Unbiased, VarianceConvention::Biased) => 1.0 / ratio,
            _ => return Ok(()),
        };
        for v in running_var {
            *v = (f64::from(*v) * factor) as f32;
        }
        Ok(())
    }
}

impl BatchNormConfig {
    /// PyTorch's defaults: `eps = 1e-5`, `momentum = Some(0.1)`, `affine = true`,
    /// `track_running_stats = true`.
    pub fn new(num_features: usize) -> Self {
        Self {
            num_features,
            eps: 1e-5,
            momentum: Some(0.1),
            affine: true,
            track_running_stats: true,
            momentum_convention: MomentumConvention::NewBatch,
            running_var_convention: VarianceConvention::Unbiased,
            skip_non_finite_update: false,
            epilogue: Epilogue::None,
            dtype: DType::F32,
        }
    }

    /// Sets the tensors' element type.
    pub fn dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// Sets the fused epilogue.
    pub fn epilogue(mut self, epilogue: Epilogue) -> Self {
        self.epilogue = epilogue;
        self
    }

    /// Sets `skip_non_finite_update`.
    pub fn skip_non_finite_update(mut self, skip: bool) -> Self {
        self.skip_non_finite_update = skip;
        self
    }

    /// Sets which value `momentum` weights.
    pub fn momentum_convention(mut self, convention: MomentumConvention) -> Self {
        self.momentum_convention = convention;
        self
    }

    /// Sets which batch variance the running variance averages.
    pub fn running_var_convention(mut self, convention: VarianceConvention) -> Self {
        self.running_var_convention = convention;
        self
    }

    /// The weight of the new batch in the running-statistics update, whatever the
    /// convention (`None`: cumulative average).
    pub fn new_batch_weight(&self) -> Option<f32> {
        self.momentum.map(|m| {
            self.momentum_convention
                .convert(m, MomentumConvention::NewBatch)
        })
    }

    /// Sets `eps`.
    pub fn eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }

    /// Sets `momentum` (`None`: cumulative average).
    pub fn momentum(mut self, momentum: Option<f32>) -> Self {
        self.momentum = momentum;
        self
    }

    /// Sets `affine`.
    pub fn affine(mut self, affine: bool) -> Self {
        self.affine = affine;
        self
    }

    /// Sets `track_running_stats`.
    pub fn track_running_stats(mut self, track: bool) -> Self {
        self.track_running_stats = track;
        self
    }

    /// Checks the options: at least one channel, finite `eps >= 0`, momentum in `[0, 1]`.
    pub fn validate(&self) -> Result<()> {
        if self.num_features == 0 || self.num_features > u32::MAX as usize {
            return Err(BatchNormError::InvalidConfig(format!(
                "num_features must be between 1 and {}, got {}",
                u32::MAX,
                self.num_features
            )));
        }
        if !(self.eps.is_finite() && self.eps >= 0.0) {
            return Err(BatchNormError::InvalidConfig(format!(
                "eps must be finite and >= 0, got {}",
                self.eps
            )));
        }
        if let Some(m) = self.momentum.filter(|m| !(0.0..=1.0).contains(m)) {
            return Err(BatchNormError::InvalidConfig(format!(
                "momentum must be in [0, 1] or None, got {m}"
            )));
        }
        Ok(())
    }

    /// Whether a call in `mode` normalizes with statistics of the batch itself.
    pub fn uses_batch_stats(&self, mode: Mode) -> bool {
        mode == Mode::Train || !self.track_running_stats
    }

    /// Whether a forward call in `mode` updates the running statistics.
    pub fn updates_running_stats(&self, mode: Mode) -> bool {
        mode == Mode::Train && self.track_running_stats
    }
}

/// Training or inference, as `module.train()` / `module.eval()` in PyTorch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Batch statistics; running statistics updated (when tracked).
    Train,
    /// Running statistics (when tracked, else batch statistics); nothing updated.
    Eval,
}

/// Which workgroup reduction the kernels use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// Subgroup operations when the device was created with `Features::SUBGROUP`, else
    /// shared memory.
    #[default]
    Auto,
    /// Always shared memory (works everywhere).
    Workgroup,
    /// Always subgroup operations; an error if the device lacks `Features::SUBGROUP`.
    Subgroup,
}
