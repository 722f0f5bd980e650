//! A layer synchronized over several devices: the training statistics and the backward's
//! sums are those of the whole batch, exchanged through a [`Collective`] (PyTorch's
//! `SyncBatchNorm`).

use super::BatchNormLayer;
use crate::batchnorm::ReduceBuffers;
use crate::buffers::{read_f32, upload_f32};
use crate::collective::Collective;
use crate::config::Mode;
use crate::error::{BatchNormError, Result};
use crate::shape::TensorShape;
use crate::stats::ChannelStats;
use crate::sums::BackwardSums;

/// A [`BatchNormLayer`] whose training forward normalizes with the statistics of the whole
/// batch, spread over every rank of `C` (each rank its own device, or its own process), and
/// whose backward uses the whole batch's sums, as PyTorch's `SyncBatchNorm`: each rank's
/// `y` and `dx` are the slice of one batch norm over the whole batch, the gradients of
/// weight and bias are the whole batch's, and the running statistics are updated on every
/// rank from the global statistics and count, identically.
///
/// Ranks may hold batches of different sizes, and empty ones. In eval mode nothing is
/// exchanged (the layer's own running statistics are used).
///
/// wgpu has no transfer between devices, so the per-channel records go through the host:
/// a training forward records the local statistics pass, submits it to `queue`, reads the
/// records back (blocking), exchanges them (C records of (count, mean, M2)), writes the
/// merge and records and submits the normalization; the backward likewise with (sum dy,
/// sum dy * (x - mean)). Each costs one submission, one read-back of 16 bytes per
/// channel and one exchange more than an unsynchronized layer. Unlike the layer, these
/// calls submit to the queue: submit the work that produces `x` (and `dy`) before.
pub struct SyncBatchNormLayer<C: Collective> {
    layer: BatchNormLayer,
    collective: C,
    /// This rank's records (statistics in the forward, sums in the backward).
    local: wgpu::Buffer,
    /// The records over every rank.
    global: wgpu::Buffer,
    /// Values per channel over every rank in the last training forward.
    count: u64,
}

impl<C: Collective> std::fmt::Debug for SyncBatchNormLayer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncBatchNormLayer")
            .field("layer", &self.layer)
            .field("rank", &self.collective.rank())
            .field("world_size", &self.collective.world_size())
            .finish_non_exhaustive()
    }
}

impl<C: Collective> SyncBatchNormLayer<C> {
    /// Synchronizes `layer` over the ranks of `collective`. Every rank must wrap a layer of
    /// the same configuration and call the same methods in the same order.
    pub fn new(layer: BatchNormLayer, collective: C) -> Result<Self> {
        let device = layer.batch_norm().device();
        let zeros = vec![0.0; 4 * layer.config().num_features];
        let buffer = |name: &str| upload_f32(device, &format!("{}.{name}", layer.label()), &zeros);
        Ok(Self {
            local: buffer("sync-local")?,
            global: buffer("sync-global")?,
            layer,
            collective,
            count: 0,
        })
    }

    /// The layer (its state, mode and gradients).
    pub fn layer(&self) -> &BatchNormLayer {
        &self.layer
    }

    /// The layer, to change its mode or load its state (do the same on every rank).
    pub fn layer_mut(&mut self) -> &mut BatchNormLayer {
        &mut self.layer
    }

    /// The collective the layer exchanges through.
    pub fn collective(&self) -> &C {
        &self.collective
    }

    /// Runs a forward of this rank's `x` into `y` (both of `shape`), submitted to `queue`;
    /// in training with the statistics of every rank's batch (blocks for the exchange).
    /// If the batches of all ranks together hold one value per channel, every rank gets
    /// [`BatchNormError::TooFewValuesPerChannel`].
    pub fn forward(
        &mut self,
        queue: &wgpu::Queue,
        shape: &TensorShape,
        x: wgpu::BufferSlice<'_>,
        y: wgpu::BufferSlice<'_>,
    ) -> Result<()> {
        self.forward_inner(queue, shape, x, None, y)
    }

    /// As [`forward`](Self::forward), `y = relu(bn(x) + residual)` for a layer configured
    /// with [`Epilogue::AddRelu`](crate::Epilogue::AddRelu).
    pub fn forward_add_relu(
        &mut self,
        queue: &wgpu::Queue,
        shape: &TensorShape,
        x: wgpu::BufferSlice<'_>,
        residual: wgpu::BufferSlice<'_>,
        y: wgpu::BufferSlice<'_>,
    ) -> Result<()> {
        self.forward_inner(queue, shape, x, Some(residual), y)
    }

    fn forward_inner(
        &mut self,
        queue: &wgpu::Queue,
        shape: &TensorShape,
        x: wgpu::BufferSlice<'_>,
        residual: Option<wgpu::BufferSlice<'_>>,
        y: wgpu::BufferSlice<'_>,
    ) -> Result<()> {
        let device = self.layer.bn.device().clone();
        let mut encoder = device.create_command_encoder(&Default::default());
        if !self.layer.is_training() {
            match residual {
                Some(z) => self.layer.forward_add_relu(&mut encoder, shape, x, z, y)?,
                None => self.layer.forward(&mut encoder, shape, x, y)?,
            }
            queue.submit([encoder.finish()]);
            return Ok(());
        }
        // This rank's statistics; on failure it still takes part in the exchange (with
        // nothing), so that no other rank waits for it.
        let local = (|| {
            self.layer.rank.check(shape)?;
            let bn = &self.layer.bn;
            bn.statistics(&mut encoder, shape, x, self.local.slice(..))?;
            queue.submit([encoder.finish()]);
            ChannelStats::from_gpu(&read_f32(&device, queue, self.local.slice(..))?)
        })();
        let merge = |c: &C, n, l: Option<&_>| c.merge_statistics(n, l);
        let global = self.exchange(queue, local, merge, ChannelStats::to_gpu)?;
        let count = global.count.first().copied().unwrap_or(0.0);
        if count == 1.0 {
            let mut dims = shape.dims().to_vec();
            dims[0] = 1;
            return Err(BatchNormError::TooFewValuesPerChannel { dims });
        }
        let mut encoder = device.create_command_encoder(&Default::default());
        let bufs = self.layer.forward_buffers(Mode::Train, x, residual, y);
        let stats = self.global.slice(..);
        self.layer
            .bn
            .forward_with_statistics(&mut encoder, shape, stats, &bufs)?;
        queue.submit([encoder.finish()]);
        self.layer.remember(shape, Mode::Train);
        self.count = count as u64;
        Ok(())
    }

    /// Runs the backward of the last forward, submitted to `queue`: this rank's `dx` from
    /// its `dy` (and `x`, and `y` with a fused epilogue), with the sums of every rank in
    /// training (blocks for the exchange); the gradients of weight and bias are the whole
    /// batch's, accumulated or overwritten as the layer's [`GradMode`](crate::GradMode) says.
    pub fn backward(
        &mut self,
        queue: &wgpu::Queue,
        x: wgpu::BufferSlice<'_>,
        y: wgpu::BufferSlice<'_>,
        dy: wgpu::BufferSlice<'_>,
        dx: wgpu::BufferSlice<'_>,
    ) -> Result<()> {
        self.backward_inner(queue, x, y, dy, dx, None)
    }

    /// As [`backward`](Self::backward) for [`Epilogue::AddRelu`](crate::Epilogue::AddRelu), also writing the
    /// residual's gradient.
    pub fn backward_add_relu(
        &mut self,
        queue: &wgpu::Queue,
        x: wgpu::BufferSlice<'_>,
        y: wgpu::BufferSlice<'_>,
        dy: wgpu::BufferSlice<'_>,
        dx: wgpu::BufferSlice<'_>,
        dresidual: wgpu::BufferSlice<'_>,
    ) -> Result<()> {
        self.backward_inner(queue, x, y, dy, dx, Some(dresidual))
    }

    fn backward_inner(
        &mut self,
        queue: &wgpu::Queue,
        x: wgpu::BufferSlice<'_>,
        y: wgpu::BufferSlice<'_>,
        dy: wgpu::BufferSlice<'_>,
        dx: wgpu::BufferSlice<'_>,
        dresidual: Option<wgpu::BufferSlice<'_>>,
    ) -> Result<()> {
        let device = self.layer.bn.device().clone();
        let mut encoder = device.create_command_encoder(&Default::default());
        let Some((shape, Mode::Train)) = &self.layer.last else {
            // No forward yet (the layer's error), or an eval forward: nothing to exchange.
            match dresidual {
                Some(dz) => self
                    .layer
                    .backward_add_relu(&mut encoder, x, y, dy, dx, dz)?,
                None => self.layer.backward(&mut encoder, x, y, dy, dx)?,
            }
            queue.submit([encoder.finish()]);
            return Ok(());
        };
        let bufs = self.layer.backward_buffers(true, x, y, dy, dx, dresidual);
        let local = (|| {
            let reduce = ReduceBuffers {
                x,
                dy,
                y: bufs.y,
                saved: bufs.saved.expect("a training forward saves statistics"),
            };
            let bn = &self.layer.bn;
            bn.backward_reduce(&mut encoder, shape, &reduce, self.local.slice(..))?;
            queue.submit([encoder.finish()]);
            BackwardSums::from_gpu(&read_f32(&device, queue, self.local.slice(..))?)
        })();
        let add = |c: &C, n, l: Option<&_>| c.add_sums(n, l);
        self.exchange(queue, local, add, BackwardSums::to_gpu)?;
        let mut encoder = device.create_command_encoder(&Default::default());
        let sums = self.global.slice(..);
        let bn = &self.layer.bn;
        bn.backward_apply(&mut encoder, shape, &bufs, sums, self.count)?;
        queue.submit([encoder.finish()]);
        Ok(())
    }

    /// Exchanges this rank's records (or, when `local` failed, its failure, so that no rank
    /// waits for it) and writes the merge into the global buffer (at the queue's next
    /// submission). This rank's own error comes first.
    fn exchange<T>(
        &self,
        queue: &wgpu::Queue,
        local: Result<T>,
        merge: impl FnOnce(&C, usize, Option<&T>) -> Result<T>,
        records: impl FnOnce(&T) -> Vec<f32>,
    ) -> Result<T> {
        let channels = self.layer.config().num_features;
        let global = merge(&self.collective, channels, local.as_ref().ok());
        let global = local.and(global)?;
        queue.write_buffer(&self.global, 0, bytemuck::cast_slice(&records(&global)));
        Ok(global)
    }
}
