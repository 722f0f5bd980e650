//! A batch-norm layer that owns its parameters, running statistics, saved statistics and
//! gradients on the GPU, as `torch.nn.BatchNorm1d/2d/3d` does; tensors stay the caller's.

use crate::batchnorm::BatchNorm;
use crate::buffers::{upload_f32, upload_words};
use crate::config::{BatchNormConfig, Mode};
use crate::error::{BatchNormError, Result};
use crate::shape::TensorShape;

mod calls;
mod checkpoint;
mod population;
mod state;
mod sync;

pub use checkpoint::Checkpoint;
pub use population::PopulationStats;
pub use state::LayerState;
pub use sync::SyncBatchNormLayer;

/// Whether a backward overwrites the layer's parameter gradients or adds to them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GradMode {
    /// Add to the held gradients, as PyTorch accumulates into `.grad`; clear them with
    /// [`BatchNormLayer::zero_grad`] before each step (the default, as PyTorch).
    #[default]
    Accumulate,
    /// Each backward overwrites the gradients (no `zero_grad` needed).
    Overwrite,
}

/// Which input ranks a layer accepts, as PyTorch's classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rank {
    Any,
    D1,
    D2,
    D3,
}

impl Rank {
    fn check(self, shape: &TensorShape) -> Result<()> {
        let (layer, expected, ok) = match self {
            Rank::Any => return Ok(()),
            Rank::D1 => (
                "BatchNorm1d",
                "a 2D or 3D input",
                (2..=3).contains(&shape.dims().len()),
            ),
            Rank::D2 => ("BatchNorm2d", "a 4D input", shape.dims().len() == 4),
            Rank::D3 => ("BatchNorm3d", "a 5D input", shape.dims().len() == 5),
        };
        if ok {
            return Ok(());
        }
        Err(BatchNormError::LayerRank {
            layer,
            expected,
            dims: shape.dims().to_vec(),
        })
    }
}

/// The GPU buffers a layer owns, each present as its configuration needs it.
struct Owned {
    /// gamma and beta, when affine.
    weight_bias: Option<(wgpu::Buffer, wgpu::Buffer)>,
    /// Gradients of gamma and beta, when affine.
    grads: Option<(wgpu::Buffer, wgpu::Buffer)>,
    /// Running mean, variance and the u64 `num_batches_tracked`, when tracked.
    running: Option<(wgpu::Buffer, wgpu::Buffer, wgpu::Buffer)>,
    /// The u32 count of skipped updates, with `skip_non_finite_update`.
    skipped: Option<wgpu::Buffer>,
    /// Saved mean and invstd of the last forward that used batch statistics.
    saved: (wgpu::Buffer, wgpu::Buffer),
}

/// A batch-norm layer as `torch.nn.BatchNorm2d`: it owns on the GPU its weight (gamma),
/// bias (beta), running mean and variance, a 64-bit `num_batches_tracked`, the statistics
/// its training forward saves for the backward, and the gradients of weight and bias.
/// Inputs and outputs are the caller's buffer slices; every call records into the caller's
/// encoder and never submits, polls or reads back. The mode follows [`train`](Self::train)
/// and [`eval`](Self::eval) (a new layer trains, as in PyTorch).
///
/// Layers of one device share their kernels ([`BatchNorm::shares_kernels_with`]), so a
/// network of many layers builds its pipelines once. The slice-level [`BatchNorm`] below
/// it stays available for code that manages its own buffers ([`BatchNormLayer::batch_norm`]).
///
/// ```no_run
/// use wgpu_batchnorm::{BatchNormConfig, BatchNormLayer, HeadlessGpu, TensorShape, upload_f32};
///
/// let gpu = HeadlessGpu::open()?;
/// let mut bn = BatchNormLayer::batch_norm_2d(&gpu.device, BatchNormConfig::new(64), "layer1.0.bn1")?;
/// let shape = TensorShape::channels_first(&[8, 64, 56, 56])?;
/// let x = upload_f32(&gpu.device, "x", &vec![0.5; shape.numel()])?;
/// let [y, dy, dx] = ["y", "dy", "dx"].map(|l| upload_f32(&gpu.device, l, &vec![0.0; shape.numel()]));
/// let (y, dy, dx) = (y?, dy?, dx?);
/// let mut encoder = gpu.device.create_command_encoder(&Default::default());
/// bn.zero_grad(&mut encoder);
/// bn.forward(&mut encoder, &shape, x.slice(..), y.slice(..))?;
/// // ... the rest of the network, producing dy ...
/// bn.backward(&mut encoder, x.slice(..), y.slice(..), dy.slice(..), dx.slice(..))?;
/// gpu.queue.submit([encoder.finish()]);
/// # Ok::<(), wgpu_batchnorm::BatchNormError>(())
/// ```
pub struct BatchNormLayer {
    bn: BatchNorm,
    rank: Rank,
    training: bool,
    grad_mode: GradMode,
    owned: Owned,
    /// Shape and mode of the last forward, which the backward differentiates.
    last: Option<(TensorShape, Mode)>,
}

impl std::fmt::Debug for BatchNormLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchNormLayer")
            .field("label", &self.bn.label())
            .field("config", self.bn.config())
            .field("training", &self.training)
            .field("grad_mode", &self.grad_mode)
            .finish_non_exhaustive()
    }
}

impl BatchNormLayer {
    /// A layer for inputs of any rank the shape accepts (2 to 5), with PyTorch's initial
    /// state: weight 1, bias 0, running mean 0, running variance 1, no batches tracked,
    /// gradients 0. `label` names its compute passes ([`BatchNorm::with_label`]).
    pub fn new(device: &wgpu::Device, config: BatchNormConfig, label: &str) -> Result<Self> {
        Self::with_batch_norm(BatchNorm::new(device, config)?.with_label(label))
    }

    /// As `torch.nn.BatchNorm1d`: inputs `(N, C)` or `(N, C, L)` (or channels-last).
    pub fn batch_norm_1d(
        device: &wgpu::Device,
        config: BatchNormConfig,
        label: &str,
    ) -> Result<Self> {
        Self::new(device, config, label).map(|l| l.with_rank(Rank::D1))
    }

    /// As `torch.nn.BatchNorm2d`: inputs `(N, C, H, W)` (or `(N, H, W, C)`).
    pub fn batch_norm_2d(
        device: &wgpu::Device,
        config: BatchNormConfig,
        label: &str,
    ) -> Result<Self> {
        Self::new(device, config, label).map(|l| l.with_rank(Rank::D2))
    }

    /// As `torch.nn.BatchNorm3d`: inputs `(N, C, D, H, W)` (or `(N, D, H, W, C)`).
    pub fn batch_norm_3d(
        device: &wgpu::Device,
        config: BatchNormConfig,
        label: &str,
    ) -> Result<Self> {
        Self::new(device, config, label).map(|l| l.with_rank(Rank::D3))
    }

    /// A layer over an existing [`BatchNorm`] (its configuration, reduction, label and
    /// kernel choice), for inputs of any rank.
    pub fn with_batch_norm(bn: BatchNorm) -> Result<Self> {
        let cfg = *bn.config();
        let (device, c) = (bn.device(), cfg.num_features);
        let label = bn.label().to_string();
        let f32s = |name: &str, v: f32| upload_f32(device, &format!("{label}.{name}"), &vec![v; c]);
        let pair =
            |a: &str, va: f32, b: &str, vb: f32| -> Result<_> { Ok((f32s(a, va)?, f32s(b, vb)?)) };
        let weight_bias = cfg
            .affine
            .then(|| pair("weight", 1.0, "bias", 0.0))
            .transpose()?;
        let grads = cfg
            .affine
            .then(|| pair("weight.grad", 0.0, "bias.grad", 0.0))
            .transpose()?;
        let running = cfg
            .track_running_stats
            .then(|| -> Result<_> {
                let (m, v) = pair("running_mean", 0.0, "running_var", 1.0)?;
                let usage = crate::UPLOAD_USAGES;
                let t = upload_words(
                    device,
                    &format!("{label}.num_batches_tracked"),
                    &[0u64],
                    usage,
                )?;
                Ok((m, v, t))
            })
            .transpose()?;
        let skipped = (cfg.track_running_stats && cfg.skip_non_finite_update)
            .then(|| {
                upload_words(
                    device,
                    &format!("{label}.skipped"),
                    &[0u32],
                    crate::UPLOAD_USAGES,
                )
            })
            .transpose()?;
        let saved = pair("save_mean", f32::NAN, "save_invstd", f32::NAN)?;
        Ok(Self {
            bn,
            rank: Rank::Any,
            training: true,
            grad_mode: GradMode::default(),
            owned: Owned {
                weight_bias,
                grads,
                running,
                skipped,
                saved,
            },
            last: None,
        })
    }

    fn with_rank(mut self, rank: Rank) -> Self {
        self.rank = rank;
        self
    }

    /// This layer with gradients overwritten or accumulated by each backward (default
    /// [`GradMode::Accumulate`]).
    pub fn with_grad_mode(mut self, mode: GradMode) -> Self {
        self.grad_mode = mode;
        self
    }

    /// Training mode: forwards use and update batch statistics (PyTorch's `train()`).
    pub fn train(&mut self) {
        self.training = true;
    }

    /// Evaluation mode: forwards normalize with the running statistics (PyTorch's `eval()`).
    pub fn eval(&mut self) {
        self.training = false;
    }

    /// Whether the layer is in training mode.
    pub fn is_training(&self) -> bool {
        self.training
    }

    /// The mode of the next forward.
    pub fn mode(&self) -> Mode {
        if self.training {
            Mode::Train
        } else {
            Mode::Eval
        }
    }

    /// Records the clearing of the weight and bias gradients (PyTorch's `zero_grad`).
    pub fn zero_grad(&self, encoder: &mut wgpu::CommandEncoder) {
        if let Some((g, b)) = &self.owned.grads {
            encoder.clear_buffer(g, 0, None);
            encoder.clear_buffer(b, 0, None);
        }
    }

    /// The slice-level layer below, with this layer's configuration and label.
    pub fn batch_norm(&self) -> &BatchNorm {
        &self.bn
    }

    /// The configuration.
    pub fn config(&self) -> &BatchNormConfig {
        self.bn.config()
    }

    /// The label of the layer's compute passes and buffers.
    pub fn label(&self) -> &str {
        self.bn.label()
    }

    /// Weight (gamma) and bias (beta), `C` f32 each, when affine.
    pub fn weight_bias(&self) -> Option<(&wgpu::Buffer, &wgpu::Buffer)> {
        self.owned.weight_bias.as_ref().map(|(g, b)| (g, b))
    }

    /// Gradients of weight and bias, `C` f32 each, when affine.
    pub fn grads(&self) -> Option<(&wgpu::Buffer, &wgpu::Buffer)> {
        self.owned.grads.as_ref().map(|(g, b)| (g, b))
    }

    /// Running mean, running variance (`C` f32 each) and `num_batches_tracked` (one u64),
    /// when tracked.
    pub fn running(&self) -> Option<(&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer)> {
        self.owned.running.as_ref().map(|(m, v, t)| (m, v, t))
    }

    /// Saved mean and invstd of the last forward that used batch statistics, `C` f32 each.
    pub fn saved(&self) -> (&wgpu::Buffer, &wgpu::Buffer) {
        (&self.owned.saved.0, &self.owned.saved.1)
    }

    /// The count (one u32) of training batches whose running update was skipped, with
    /// `skip_non_finite_update`.
    pub fn skipped_batches(&self) -> Option<&wgpu::Buffer> {
        self.owned.skipped.as_ref()
    }
}
