//! The recording API: build pipelines once, record forward and backward passes into the
//! caller's command encoder, on the caller's buffers.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::Mutex;

use crate::config::{BatchNormConfig, DType, Epilogue, Mode, Reduction, VarianceConvention};
use crate::error::{BatchNormError, Result};
use crate::kernels::{
    BackwardDxBindings, BackwardFinalizeBindings, BackwardOnePassBindings, BackwardPartialBindings,
    BackwardPrepBindings, EvalCoeffsBindings, ForwardOnePassBindings, MergeBindings,
    NormalizeBindings, NormalizeEvalBindings, RunningUpdateBindings, StatsFinalizeBindings,
    StatsPartialBindings,
};
use crate::kernels::{
    FLAG_ACCUMULATE_GRADS, FLAG_AFFINE, FLAG_BATCH_STATS, FLAG_BIASED_VAR, FLAG_COUNT_ONLY,
    FLAG_CUMULATIVE, FLAG_MERGE_B, FLAG_RELU, FLAG_RESIDUAL, FLAG_SKIP_NON_FINITE, Params,
    Specialization, WORKGROUP_SIZE,
};
use crate::pipelines::{Kernel, Pipelines};
use crate::profiler::DispatchProfiler;
use crate::shape::TensorShape;

mod args;
mod backward;
mod bindings;
mod forward;
mod kernel_set;
mod normalize;
mod path;
mod plan;
mod recording;
mod steps;
mod tuning;
mod vector;

use bindings::*;
use kernel_set::*;
use normalize::*;
use path::*;
use plan::*;
use steps::*;

pub use args::{
    AffineGrads, AffineParams, BackwardBuffers, ForwardBuffers, ReduceBuffers, RunningStats,
    SavedStats,
};
pub use path::KernelPath;
pub use steps::Dispatch;
pub(crate) use steps::buffer_with;
pub use tuning::Tuning;

/// A batch-norm layer's GPU side: pipelines built once for one device and configuration,
/// and internal scratch memory. It holds no tensors; every call records into the caller's
/// encoder on the caller's buffers, and never submits, polls or reads back.
///
/// Calls recorded into one or several encoders may share the scratch memory: each call's
/// dispatches run in queue order, so this is safe as long as all work goes through the one
/// queue of the device, as wgpu requires.
///
/// Tensors of any size the shape allows are processed in pieces of one binding each. The
/// scratch memory needs 32 bytes per channel within one binding
/// (`max_storage_buffer_binding_size`: at most 4,194,304 channels at 128 MiB); a call with
/// more channels returns [`BatchNormError::ExceedsLimit`] naming "scratch per-channel".
pub struct BatchNorm {
    config: BatchNormConfig,
    device: wgpu::Device,
    limits: wgpu::Limits,
    subgroups: bool,
    /// Whether calls may take the one-pass kernels (see [`KernelPath`]).
    one_pass: bool,
    /// Names the compute passes of every call: `{label}.forward`, ... .
    label: String,
    /// The plan's tunables (by adapter kind, or forced).
    tuning: Tuning,
    /// Pipelines, scratch and parameter buffers, shared with every layer of the same
    /// device, element type and reduction.
    set: std::sync::Arc<KernelSet>,
    /// Where calls write a timestamp pair per dispatch (see [`BatchNorm::with_profiler`]).
    profiler: Option<std::sync::Arc<DispatchProfiler>>,
}

impl std::fmt::Debug for BatchNorm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchNorm")
            .field("config", &self.config)
            .field("subgroups", &self.subgroups)
            .finish_non_exhaustive()
    }
}

impl BatchNorm {
    /// Builds every pipeline for `config` on `device`, with subgroup reductions when the
    /// device has `Features::SUBGROUP`.
    pub fn new(device: &wgpu::Device, config: BatchNormConfig) -> Result<Self> {
        Self::with_reduction(device, config, Reduction::Auto)
    }

    /// As [`BatchNorm::new`], choosing the reduction kernels.
    pub fn with_reduction(
        device: &wgpu::Device,
        config: BatchNormConfig,
        reduction: Reduction,
    ) -> Result<Self> {
        config.validate()?;
        let has_subgroups = device.features().contains(wgpu::Features::SUBGROUP);
        let subgroups = match reduction {
            Reduction::Auto => has_subgroups,
            Reduction::Workgroup => false,
            Reduction::Subgroup if has_subgroups => true,
            Reduction::Subgroup => return Err(BatchNormError::SubgroupsUnavailable),
        };
        let f16 = config.dtype == DType::F16;
        if f16 && !device.features().contains(wgpu::Features::SHADER_F16) {
            return Err(BatchNormError::F16Unavailable);
        }
        let limits = device.limits();
        crate::limits::check_limits(&limits)?;

        let set = KernelSet::get(device, subgroups, f16)?;
        Ok(Self {
            config,
            device: device.clone(),
            limits,
            subgroups,
            one_pass: true,
            label: "wgpu-batchnorm".to_string(),
            tuning: Tuning::for_adapter(&device.adapter_info()),
            set,
            profiler: None,
        })
    }

    /// This layer, taking the separate passes (partial, finalize, elementwise) on every
    /// call, also where a one-pass kernel would serve ([`KernelPath::OnePassWorkgroup`],
    /// [`KernelPath::OnePassInvocation`]): to compare the paths, or on an adapter where the
    /// one-pass kernels are slow. Results agree within rounding (tested).
    pub fn without_one_pass_kernels(mut self) -> Self {
        self.one_pass = false;
        self
    }

    /// This layer with the plan's tunables forced (instead of [`Tuning::for_adapter`]'s).
    pub fn with_tuning(mut self, tuning: Tuning) -> Self {
        self.tuning = tuning;
        self
    }

    /// The plan's tunables in use.
    pub fn tuning(&self) -> Tuning {
        self.tuning
    }

    /// This layer, naming the compute passes of its calls `{label}.forward`,
    /// `{label}.backward`, `{label}.statistics`, ... (default label `wgpu-batchnorm`), so that
    /// a GPU capture or profiler shows which layer ran; each dispatch sits in a debug group
    /// named by its kernel.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// The label of this layer's compute passes (see [`BatchNorm::with_label`]).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// This layer, timing each dispatch of its calls with `profiler` (one compute pass and
    /// a timestamp pair per dispatch; see [`DispatchProfiler`]). A call on a device other
    /// than the profiler's, or one whose dispatches do not fit in it, returns an error.
    pub fn with_profiler(mut self, profiler: std::sync::Arc<DispatchProfiler>) -> Self {
        self.profiler = Some(profiler);
        self
    }

    /// The kernel path a forward of `shape` in `mode` takes (with batch statistics computed
    /// by the call; `forward_with_statistics` is always [`KernelPath::Elementwise`]).
    pub fn forward_path(&self, shape: &TensorShape, mode: Mode) -> Result<KernelPath> {
        self.check_shape(shape, mode)?;
        Ok(self.plan(shape, self.config.uses_batch_stats(mode))?.path)
    }

    /// The kernel path the backward of a forward of `shape` in `mode` takes.
    pub fn backward_path(&self, shape: &TensorShape, mode: Mode) -> Result<KernelPath> {
        self.check_shape(shape, mode)?;
        let reduce = self.config.uses_batch_stats(mode) || self.config.affine;
        Ok(self.plan(shape, reduce)?.path)
    }

    /// Whether `self` and `other` use the same compiled kernels and scratch memory: layers
    /// of one device, element type and reduction share them (only the first builds them),
    /// whatever their other settings.
    pub fn shares_kernels_with(&self, other: &BatchNorm) -> bool {
        std::sync::Arc::ptr_eq(&self.set, &other.set)
    }

    /// The configuration.
    pub fn config(&self) -> &BatchNormConfig {
        &self.config
    }

    /// Whether the kernels use subgroup reductions.
    pub fn uses_subgroups(&self) -> bool {
        self.subgroups
    }

    /// The device the pipelines were built on.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// Checks `shape` against the configuration for a call in `mode`.
    pub fn check_shape(&self, shape: &TensorShape, mode: Mode) -> Result<()> {
        self.check_channels(shape)?;
        if self.config.uses_batch_stats(mode) && shape.per_channel() == 1 {
            return Err(BatchNormError::TooFewValuesPerChannel {
                dims: shape.dims().to_vec(),
            });
        }
        Ok(())
    }

    /// Records a forward pass into `encoder`: in training, batch statistics (saved for
    /// backward), the running-statistics update and `y`; in eval, `y` from the running
    /// statistics (or from batch statistics when they are not tracked).
    ///
    /// An empty batch (a shape with zero elements) records no work on the tensors, whose
    /// slices are then neither checked nor accessed, and leaves `saved` untouched; a training
    /// forward still increments `num_batches_tracked` and leaves the running mean and
    /// variance as they were, as PyTorch does.
    pub fn forward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        mode: Mode,
        shape: &TensorShape,
        bufs: &ForwardBuffers<'_>,
    ) -> Result<()> {
        let steps = scoped(&self.device, || self.forward_steps(mode, shape, bufs, None))?;
        self.record(encoder, "forward", &steps)
    }

    /// The dispatches [`BatchNorm::forward`] would record for these arguments, in order,
    /// without recording anything: the plan's steps as data (kernel and grid). Fails as
    /// `forward` would.
    pub fn forward_dispatches(
        &self,
        mode: Mode,
        shape: &TensorShape,
        bufs: &ForwardBuffers<'_>,
    ) -> Result<Vec<Dispatch>> {
        let steps = scoped(&self.device, || self.forward_steps(mode, shape, bufs, None))?;
        Ok(steps.iter().map(Step::describe).collect())
    }

    /// The dispatches [`BatchNorm::backward`] would record, as
    /// [`BatchNorm::forward_dispatches`].
    pub fn backward_dispatches(
        &self,
        mode: Mode,
        shape: &TensorShape,
        bufs: &BackwardBuffers<'_>,
    ) -> Result<Vec<Dispatch>> {
        let steps = scoped(&self.device, || {
            self.backward_steps(mode, shape, bufs, backward::Part::Whole)
        })?;
        Ok(steps.iter().map(Step::describe).collect())
    }

    /// Records a training forward that normalizes with the given per-channel statistics
    /// instead of the batch's own: those of [`BatchNorm::statistics`], merged over
    /// micro-batches or devices with [`BatchNorm::merge_statistics`] (synchronized batch
    /// norm). Saved statistics and the running-statistics update come from them too (the
    /// unbiased variance uses their total count). `stats` holds C records of 4 f32, see
    /// [`ChannelStats`](crate::ChannelStats). The local batch may have a single value per
    /// channel; a total count of 1 gives an infinite unbiased variance.
    pub fn forward_with_statistics(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        shape: &TensorShape,
        stats: wgpu::BufferSlice<'_>,
        bufs: &ForwardBuffers<'_>,
    ) -> Result<()> {
        let steps = scoped(&self.device, || {
            self.forward_steps(Mode::Train, shape, bufs, Some(stats))
        })?;
        self.record(encoder, "forward-with-statistics", &steps)
    }

    /// Records a statistics-only pass: per-channel (count, mean, variance) of `x` into `out`
    /// (C records of 4 f32, see [`ChannelStats`](crate::ChannelStats)), merged in fixed
    /// order. Nothing else is read or written.
    pub fn statistics(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        shape: &TensorShape,
        x: wgpu::BufferSlice<'_>,
        out: wgpu::BufferSlice<'_>,
    ) -> Result<()> {
        let steps = scoped(&self.device, || {
            self.check_channels(shape)?;
            self.check_bindings(
                shape,
                &[
                    Bound::tensor("x", x, false),
                    Bound::stats("statistics", out, true),
                ],
            )?;
            let plan = self.plan(shape, true)?;
            let one_record = Plan::one_record();
            let merged_plan = if plan.fold { &one_record } else { &plan };
            let global = self.params_buffer(shape, merged_plan, None, 0)?;
            let scratch = self.scratch(shape.channels(), &plan)?;
            let p = &self.set.pipelines;
            let mut steps = Vec::new();
            let partials = self.record_stats_partials(&mut steps, shape, &plan, 0, x, &scratch)?;
            let bindings = MergeBindings {
                a: partials,
                b: self.set.dummy.slice(..),
                out,
            };
            let groups = self.merge_groups(merged_plan, shape.channels());
            let merge = &p.stats_merge;
            self.dispatch(&mut steps, merge, &global, &bindings.slices(), groups);
            Ok(steps)
        })?;
        self.record(encoder, "statistics", &steps)
    }

    /// Records the per-channel merge (Chan's formula, `a` first) of two statistics buffers
    /// into `out`; each holds C records of 4 f32. `out` may not overlap `a` or `b`.
    pub fn merge_statistics(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        a: wgpu::BufferSlice<'_>,
        b: wgpu::BufferSlice<'_>,
        out: wgpu::BufferSlice<'_>,
    ) -> Result<()> {
        let steps = scoped(&self.device, || {
            let shape = TensorShape::channels_first(&[1, self.config.num_features])?;
            self.check_bindings(
                &shape,
                &[
                    Bound::stats("a", a, false),
                    Bound::stats("b", b, false),
                    Bound::stats("out", out, true),
                ],
            )?;
            let params = self.params_buffer(&shape, &Plan::one_record(), None, FLAG_MERGE_B)?;
            let mut steps = Vec::new();
            let groups = self.merge_groups(&Plan::one_record(), shape.channels());
            let merge = &self.set.pipelines.stats_merge;
            let bindings = MergeBindings { a, b, out }.slices();
            self.dispatch(&mut steps, merge, &params, &bindings, groups);
            Ok(steps)
        })?;
        self.record(encoder, "merge-statistics", &steps)
    }

    pub(super) fn check_channels(&self, shape: &TensorShape) -> Result<()> {
        if shape.channels() != self.config.num_features {
            return Err(BatchNormError::ChannelMismatch {
                expected: self.config.num_features,
                got: shape.channels(),
            });
        }
        Ok(())
    }

    /// Records a backward pass into `encoder`: `dx`, and `dgamma`, `dbeta` when affine.
    /// `mode` is the mode of the forward being differentiated. For an empty batch, `dgamma`
    /// and `dbeta` are zero and the tensor slices are neither checked nor accessed.
    pub fn backward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        mode: Mode,
        shape: &TensorShape,
        bufs: &BackwardBuffers<'_>,
    ) -> Result<()> {
        let steps = scoped(&self.device, || {
            self.backward_steps(mode, shape, bufs, backward::Part::Whole)
        })?;
        self.record(encoder, "backward", &steps)
    }
}
