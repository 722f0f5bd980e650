//! Population statistics ("PreciseBN"): a layer's input statistics over a whole data set,
//! merged exactly batch by batch, to replace the running averages after training.

use super::BatchNormLayer;
use crate::buffers::{read_f32, upload_f32};
use crate::config::VarianceConvention;
use crate::error::{BatchNormError, Result};
use crate::shape::TensorShape;
use crate::stats::ChannelStats;

/// The statistics of a layer's input over many batches, merged on the GPU with Chan's
/// formula in the order the batches were added: the exact mean and variance of all the
/// values together, not an exponential average of per-batch estimates. After training,
/// feed the training set through the network in eval mode, [`add`](Self::add) each batch of
/// this layer's input, and [`apply`](Self::apply) the result as the layer's running
/// statistics ("compute more stable estimates on a larger set once"; PreciseBN).
///
/// Batches may have any size and layout; empty batches add nothing. Counts are kept in
/// f32 (the statistics records' format): exact up to 2^24 values per channel, beyond that
/// rounded to 6e-8 relative, which weighs the merges as closely.
///
/// ```
/// use wgpu_batchnorm::{BatchNormConfig, BatchNormLayer, HeadlessGpu, PopulationStats, TensorShape, upload_f32};
///
/// let gpu = HeadlessGpu::open()?;
/// let mut bn = BatchNormLayer::batch_norm_1d(&gpu.device, BatchNormConfig::new(4), "bn")?;
/// let mut population = PopulationStats::new(&bn)?;
/// let mut encoder = gpu.device.create_command_encoder(&Default::default());
/// for batch in [vec![1.0; 32], vec![2.0; 16]] {
///     let shape = TensorShape::channels_first(&[batch.len() / 4, 4])?;
///     let x = upload_f32(&gpu.device, "x", &batch)?; // this layer's input for the batch
///     population.add(&bn, &mut encoder, &shape, x.slice(..))?;
/// }
/// gpu.queue.submit([encoder.finish()]);
/// let stats = population.apply(&mut bn, &gpu.queue)?; // running mean and variance replaced
/// assert_eq!(stats.count, vec![12.0; 4]);
/// # Ok::<(), wgpu_batchnorm::BatchNormError>(())
/// ```
#[derive(Debug)]
pub struct PopulationStats {
    /// The running totals, alternately merged into (C records each, count 0 at first).
    totals: [wgpu::Buffer; 2],
    /// One batch's records.
    batch: wgpu::Buffer,
    /// Which of `totals` holds the statistics so far.
    current: usize,
}

impl PopulationStats {
    /// Empty statistics (count 0 in every channel) for `layer`'s channels.
    pub fn new(layer: &BatchNormLayer) -> Result<Self> {
        let device = layer.batch_norm().device();
        let zeros = vec![0.0; 4 * layer.config().num_features];
        let buffer = |name: &str| upload_f32(device, &format!("{}.{name}", layer.label()), &zeros);
        Ok(Self {
            totals: [buffer("population-a")?, buffer("population-b")?],
            batch: buffer("population-batch")?,
            current: 0,
        })
    }

    /// Records into `encoder` the statistics of one batch `x` of `shape` (this layer's
    /// input) and their merge into the totals. On an error nothing is recorded.
    pub fn add(
        &mut self,
        layer: &BatchNormLayer,
        encoder: &mut wgpu::CommandEncoder,
        shape: &TensorShape,
        x: wgpu::BufferSlice<'_>,
    ) -> Result<()> {
        let bn = layer.batch_norm();
        bn.statistics(encoder, shape, x, self.batch.slice(..))?;
        let (from, to) = (&self.totals[self.current], &self.totals[1 - self.current]);
        bn.merge_statistics(encoder, from.slice(..), self.batch.slice(..), to.slice(..))?;
        self.current = 1 - self.current;
        Ok(())
    }

    /// The statistics of every batch added, read back after the work submitted to `queue`
    /// (blocks).
    pub fn read(&self, layer: &BatchNormLayer, queue: &wgpu::Queue) -> Result<ChannelStats> {
        let device = layer.batch_norm().device();
        ChannelStats::from_gpu(&read_f32(
            device,
            queue,
            self.totals[self.current].slice(..),
        )?)
    }

    /// Replaces the layer's running mean and variance with the population's, through
    /// `queue.write_buffer` (done at the queue's next submission), the variance in the
    /// layer's `running_var_convention` (`M2 / (n - 1)` by default, as PyTorch's running
    /// variance, or `M2 / n`); weight, bias and `num_batches_tracked` stay as they are.
    /// Returns the statistics. Needs `track_running_stats` and at least two
    /// values per channel; otherwise an error, and nothing is written.
    pub fn apply(&self, layer: &mut BatchNormLayer, queue: &wgpu::Queue) -> Result<ChannelStats> {
        if !layer.config().track_running_stats {
            return Err(BatchNormError::InvalidConfig(
                "population statistics replace running statistics, and the layer has none (track_running_stats is false)".to_string(),
            ));
        }
        let stats = self.read(layer, queue)?;
        if let Some((c, n)) = stats.count.iter().enumerate().find(|(_, n)| **n < 2.0) {
            return Err(BatchNormError::InvalidConfig(format!(
                "population statistics of channel {c} hold {n} values; a variance needs at least 2"
            )));
        }
        let var = match layer.config().running_var_convention {
            VarianceConvention::Unbiased => stats.unbiased_variance(),
            VarianceConvention::Biased => stats.variance(),
        };
        // Only the running mean and variance change: written directly, without reading the
        // whole state back and writing weight, bias and the count again.
        let (mean_buffer, var_buffer, _) = layer.running().expect("tracked, checked above");
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        queue.write_buffer(mean_buffer, 0, bytemuck::cast_slice(&f32s(&stats.mean)));
        queue.write_buffer(var_buffer, 0, bytemuck::cast_slice(&f32s(&var)));
        Ok(stats)
    }
}
