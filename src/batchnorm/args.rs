//! The public argument types of the recording API: the caller's buffer slices of a
//! forward or backward call, grouped by role.

/// Per-channel scale gamma and shift beta, `C` f32 values each.
#[derive(Clone, Copy, Debug)]
pub struct AffineParams<'a> {
    /// gamma (PyTorch's `weight`).
    pub gamma: wgpu::BufferSlice<'a>,
    /// beta (PyTorch's `bias`).
    pub beta: wgpu::BufferSlice<'a>,
}

/// Running statistics, `C` f32 values each, updated in place by training forwards.
#[derive(Clone, Copy, Debug)]
pub struct RunningStats<'a> {
    /// Running mean.
    pub mean: wgpu::BufferSlice<'a>,
    /// Running (unbiased) variance.
    pub var: wgpu::BufferSlice<'a>,
    /// One `u64` (8 bytes, little-endian, as PyTorch's int64 `num_batches_tracked`),
    /// incremented by every training forward; it does not wrap after 2^32 batches. Required
    /// by forwards that update the running statistics; not read otherwise.
    pub num_batches_tracked: Option<wgpu::BufferSlice<'a>>,
    /// One `u32`, incremented by every training forward that skipped the update because the
    /// batch statistics were not finite. Required exactly by forwards that update the
    /// running statistics with `config.skip_non_finite_update`.
    pub skipped_batches: Option<wgpu::BufferSlice<'a>>,
}

/// Batch statistics saved by a training forward for the backward pass, `C` f32 values each.
#[derive(Clone, Copy, Debug)]
pub struct SavedStats<'a> {
    /// Batch mean.
    pub mean: wgpu::BufferSlice<'a>,
    /// `1 / sqrt(biased batch variance + eps)`.
    pub invstd: wgpu::BufferSlice<'a>,
}

/// Gradients of gamma and beta, `C` f32 values each, written by backward.
#[derive(Clone, Copy, Debug)]
pub struct AffineGrads<'a> {
    /// Gradient of gamma: `sum(dy * xhat)` per channel.
    pub dgamma: wgpu::BufferSlice<'a>,
    /// Gradient of beta: `sum(dy)` per channel.
    pub dbeta: wgpu::BufferSlice<'a>,
    /// `false`: the call's gradients overwrite `dgamma` and `dbeta`. `true`: they are added
    /// to the values the buffers hold, as PyTorch accumulates into `.grad` (an empty batch
    /// then adds nothing).
    pub accumulate: bool,
}

/// Buffers of a forward call. `x` and `y` hold the tensor in the shape's layout.
///
/// Which optional buffers a call needs follows from the configuration and mode; giving one
/// that is not used is an error too, so a mix-up cannot pass silently:
/// - `affine`: exactly when `config.affine`.
/// - `running`: exactly when `config.track_running_stats`; read in eval, updated in training
///   (which also needs `num_batches_tracked`).
/// - `saved`: exactly when the call uses batch statistics (training, or eval without
///   tracked statistics); written with the batch mean and invstd.
#[derive(Clone, Copy, Debug)]
pub struct ForwardBuffers<'a> {
    /// Input, read.
    pub x: wgpu::BufferSlice<'a>,
    /// Output, written. May not overlap any other binding.
    pub y: wgpu::BufferSlice<'a>,
    /// The residual z of [`Epilogue::AddRelu`](crate::Epilogue::AddRelu), read; exactly
    /// with that epilogue.
    pub residual: Option<wgpu::BufferSlice<'a>>,
    /// gamma and beta.
    pub affine: Option<AffineParams<'a>>,
    /// Running statistics.
    pub running: Option<RunningStats<'a>>,
    /// Saved batch statistics, written.
    pub saved: Option<SavedStats<'a>>,
}

/// Buffers of the reduce part of a synchronized backward
/// ([`BatchNorm::backward_reduce`](crate::BatchNorm::backward_reduce)): what it reads.
#[derive(Clone, Copy, Debug)]
pub struct ReduceBuffers<'a> {
    /// The forward's input, read.
    pub x: wgpu::BufferSlice<'a>,
    /// Gradient of the loss with respect to y, read.
    pub dy: wgpu::BufferSlice<'a>,
    /// The forward's output y, read for the ReLU's mask; exactly with a fused epilogue.
    pub y: Option<wgpu::BufferSlice<'a>>,
    /// The statistics the forward normalized with (the whole batch's, as
    /// `forward_with_statistics` saved them), read.
    pub saved: SavedStats<'a>,
}

/// Buffers of a backward call.
///
/// - `gamma` and `grads`: exactly when `config.affine`.
/// - `saved`: exactly when the forward used batch statistics (training, or eval without
///   tracked statistics): the mean and invstd that forward saved.
/// - `running`: exactly when the forward used running statistics (eval with tracked
///   statistics); `num_batches_tracked` is not read.
#[derive(Clone, Copy, Debug)]
pub struct BackwardBuffers<'a> {
    /// The forward's input, read.
    pub x: wgpu::BufferSlice<'a>,
    /// Gradient of the loss with respect to y, read.
    pub dy: wgpu::BufferSlice<'a>,
    /// Gradient with respect to x, written. May not overlap any other binding.
    pub dx: wgpu::BufferSlice<'a>,
    /// The forward's output y, read for the ReLU's mask; exactly with a fused epilogue
    /// (`dy` is then the gradient of that output).
    pub y: Option<wgpu::BufferSlice<'a>>,
    /// Gradient with respect to the residual z, written; exactly with
    /// [`Epilogue::AddRelu`](crate::Epilogue::AddRelu).
    pub dresidual: Option<wgpu::BufferSlice<'a>>,
    /// gamma, read.
    pub gamma: Option<wgpu::BufferSlice<'a>>,
    /// Gradients of gamma and beta, written.
    pub grads: Option<AffineGrads<'a>>,
    /// Saved batch statistics, read.
    pub saved: Option<SavedStats<'a>>,
    /// Running statistics, read.
    pub running: Option<RunningStats<'a>>,
}
