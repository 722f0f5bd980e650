//! A layer's recorded calls: forward (plain and with the residual of add+ReLU) and the
//! backward of its last forward, on the caller's tensors and the layer's own buffers.

use super::{BatchNormLayer, GradMode};
use crate::batchnorm::{
    AffineGrads, AffineParams, BackwardBuffers, ForwardBuffers, RunningStats, SavedStats,
};
use crate::config::Mode;
use crate::error::{BatchNormError, Result};
use crate::shape::TensorShape;

impl BatchNormLayer {
    /// Records a forward of `x` into `y` (both of `shape`), in the layer's mode. Training
    /// saves the batch statistics for the backward and updates the running statistics.
    /// With [`Epilogue::AddRelu`](crate::Epilogue::AddRelu) use
    /// [`forward_add_relu`](Self::forward_add_relu).
    pub fn forward(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        shape: &TensorShape,
        x: wgpu::BufferSlice<'_>,
        y: wgpu::BufferSlice<'_>,
    ) -> Result<()> {
        self.forward_inner(encoder, shape, x, None, y)
    }

    /// Records a forward `y = relu(bn(x) + residual)`, for a layer configured with
    /// [`Epilogue::AddRelu`](crate::Epilogue::AddRelu) (a ResNet block's end).
    pub fn forward_add_relu(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        shape: &TensorShape,
        x: wgpu::BufferSlice<'_>,
        residual: wgpu::BufferSlice<'_>,
        y: wgpu::BufferSlice<'_>,
    ) -> Result<()> {
        self.forward_inner(encoder, shape, x, Some(residual), y)
    }

    fn forward_inner(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        shape: &TensorShape,
        x: wgpu::BufferSlice<'_>,
        residual: Option<wgpu::BufferSlice<'_>>,
        y: wgpu::BufferSlice<'_>,
    ) -> Result<()> {
        self.rank.check(shape)?;
        let mode = self.mode();
        let bufs = self.forward_buffers(mode, x, residual, y);
        self.bn.forward(encoder, mode, shape, &bufs)?;
        self.remember(shape, mode);
        Ok(())
    }

    /// Keeps the shape and mode of a forward for the backward; a training loop repeats the
    /// shape, so it is copied only when it changes.
    pub(super) fn remember(&mut self, shape: &TensorShape, mode: Mode) {
        match &mut self.last {
            Some((last, m)) if last == shape => *m = mode,
            last => *last = Some((shape.clone(), mode)),
        }
    }

    /// Records the backward of the last forward: `dx` from `dy`, and the gradients of weight
    /// and bias (accumulated or overwritten, see [`GradMode`]). `x` is that forward's input,
    /// `y` its output (read for the ReLU's mask with a fused epilogue, else not accessed).
    /// With [`Epilogue::AddRelu`](crate::Epilogue::AddRelu) use
    /// [`backward_add_relu`](Self::backward_add_relu).
    pub fn backward(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        x: wgpu::BufferSlice<'_>,
        y: wgpu::BufferSlice<'_>,
        dy: wgpu::BufferSlice<'_>,
        dx: wgpu::BufferSlice<'_>,
    ) -> Result<()> {
        self.backward_inner(encoder, x, y, dy, dx, None)
    }

    /// As [`backward`](Self::backward) for [`Epilogue::AddRelu`](crate::Epilogue::AddRelu),
    /// also writing the residual's gradient `dresidual`.
    pub fn backward_add_relu(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        x: wgpu::BufferSlice<'_>,
        y: wgpu::BufferSlice<'_>,
        dy: wgpu::BufferSlice<'_>,
        dx: wgpu::BufferSlice<'_>,
        dresidual: wgpu::BufferSlice<'_>,
    ) -> Result<()> {
        self.backward_inner(encoder, x, y, dy, dx, Some(dresidual))
    }

    fn backward_inner(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        x: wgpu::BufferSlice<'_>,
        y: wgpu::BufferSlice<'_>,
        dy: wgpu::BufferSlice<'_>,
        dx: wgpu::BufferSlice<'_>,
        dresidual: Option<wgpu::BufferSlice<'_>>,
    ) -> Result<()> {
        let Some((shape, mode)) = &self.last else {
            return Err(BatchNormError::NoForward {
                label: self.bn.label().to_string(),
            });
        };
        let cfg = self.bn.config();
        let batch = cfg.uses_batch_stats(*mode);
        let bufs = self.backward_buffers(batch, x, y, dy, dx, dresidual);
        self.bn.backward(encoder, *mode, shape, &bufs)
    }
}

impl BatchNormLayer {
    /// The buffers of a forward in `mode` of `x` (with `residual`) into `y`: the caller's
    /// tensors and the layer's own parameters and state.
    pub(super) fn forward_buffers<'a>(
        &'a self,
        mode: Mode,
        x: wgpu::BufferSlice<'a>,
        residual: Option<wgpu::BufferSlice<'a>>,
        y: wgpu::BufferSlice<'a>,
    ) -> ForwardBuffers<'a> {
        let cfg = self.bn.config();
        let o = &self.owned;
        ForwardBuffers {
            x,
            y,
            residual,
            affine: o.weight_bias.as_ref().map(|(g, b)| AffineParams {
                gamma: g.slice(..),
                beta: b.slice(..),
            }),
            running: o.running.as_ref().map(|(m, v, t)| RunningStats {
                mean: m.slice(..),
                var: v.slice(..),
                num_batches_tracked: (mode == Mode::Train).then(|| t.slice(..)),
                skipped_batches: o
                    .skipped
                    .as_ref()
                    .filter(|_| mode == Mode::Train)
                    .map(|k| k.slice(..)),
            }),
            saved: cfg.uses_batch_stats(mode).then(|| SavedStats {
                mean: o.saved.0.slice(..),
                invstd: o.saved.1.slice(..),
            }),
        }
    }

    /// The buffers of the backward of a forward that used batch statistics (`batch`) or
    /// the running ones.
    pub(super) fn backward_buffers<'a>(
        &'a self,
        batch: bool,
        x: wgpu::BufferSlice<'a>,
        y: wgpu::BufferSlice<'a>,
        dy: wgpu::BufferSlice<'a>,
        dx: wgpu::BufferSlice<'a>,
        dresidual: Option<wgpu::BufferSlice<'a>>,
    ) -> BackwardBuffers<'a> {
        let cfg = self.bn.config();
        let o = &self.owned;
        BackwardBuffers {
            x,
            dy,
            dx,
            y: (cfg.epilogue != crate::Epilogue::None).then_some(y),
            dresidual,
            gamma: o.weight_bias.as_ref().map(|(g, _)| g.slice(..)),
            grads: o.grads.as_ref().map(|(g, b)| AffineGrads {
                dgamma: g.slice(..),
                dbeta: b.slice(..),
                accumulate: self.grad_mode == GradMode::Accumulate,
            }),
            saved: batch.then(|| SavedStats {
                mean: o.saved.0.slice(..),
                invstd: o.saved.1.slice(..),
            }),
            running: o
                .running
                .as_ref()
                .filter(|_| !batch)
                .map(|(m, v, _)| RunningStats {
                    mean: m.slice(..),
                    var: v.slice(..),
                    num_batches_tracked: None,
                    skipped_batches: None,
                }),
        }
    }
}
