//! The recording API: build pipelines once, record forward and backward passes into the
//! caller's command encoder, on the caller's buffers.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::Mutex;

use crate::config::{BatchNormConfig, DType, Epilogue, Mode, Reduction, VarianceConvention};
use crate::error::{BatchNormError, Result};
use crate::kernels::{
    FLAG_AFFINE, FLAG_BATCH_STATS, FLAG_BIASED_VAR, FLAG_COUNT_ONLY, FLAG_CUMULATIVE, FLAG_MERGE_B,
    FLAG_RELU, FLAG_RESIDUAL, FLAG_SKIP_NON_FINITE, Kernel, Params, Pipelines, WORKGROUP_SIZE,
};
use crate::shape::TensorShape;

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
    /// One `u32`, incremented by every training forward (PyTorch keeps an int64). Required by
    /// forwards that update the running statistics; not read otherwise.
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

/// Gradients of gamma and beta, `C` f32 values each, overwritten by backward.
#[derive(Clone, Copy, Debug)]
pub struct AffineGrads<'a> {
    /// Gradient of gamma: `sum(dy * xhat)` per channel.
    pub dgamma: wgpu::BufferSlice<'a>,
    /// Gradient of beta: `sum(dy)` per channel.
    pub dbeta: wgpu::BufferSlice<'a>,
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

/// Partials per channel aimed at: enough workgroups in all to fill a large GPU.
const TARGET_WORKGROUPS: usize = 2048;
/// At most this many partials per channel, merged sequentially by one invocation.
const MAX_CHUNKS: usize = 256;
/// Each invocation of a partial pass handles at least this many elements.
const MIN_ELEMENTS_PER_INVOCATION: usize = 4;
/// Channel-first tensors in one piece with at most this many values per channel take the
/// one-pass kernels with an invocation per channel (`forward_thin.wgsl`,
/// `backward_thin.wgsl`) instead of a workgroup per channel: a 256-invocation workgroup and
/// its reduction for a handful of values is the cost that made (1, 10^6, 2) take seconds.
pub(crate) const THIN_MAX_COUNT: usize = 64;
/// Entries kept in the cache of parameter buffers before it is emptied.
const PARAMS_CACHE_LIMIT: usize = 256;

/// Fewest channels per workgroup of the `*_rows` partial passes (unless C is smaller): a
/// row of 8 f32 is one 32-byte memory sector, all of it used.
pub(crate) const MIN_LANES: u32 = 8;
/// Most channels per workgroup of the `*_rows` partial passes. Wider blocks read longer runs
/// and need fewer merge steps, but leave fewer workgroups (a 64-channel tensor in blocks of
/// 64 is one block, so at most `MAX_CHUNKS` workgroups).
pub(crate) const MAX_LANES: u32 = 64;

/// Channels per workgroup of the `*_rows` partial passes, used where a channel's elements
/// are C apart (inner = 1: channels-last, and (N, C)); 0 (the per-channel passes) otherwise.
/// The widest power of two from [`MAX_LANES`] down to [`MIN_LANES`] (or C rounded up to a
/// power of two, if smaller) whose plan still has as many workgroups as the GPU wants
/// (`TARGET_WORKGROUPS`, or all the tensor's size allows).
pub(crate) fn row_lanes(shape: &TensorShape) -> u32 {
    if shape.outer_inner().1 != 1 {
        return 0;
    }
    let channels = shape.channels();
    let count = shape.per_channel().max(1);
    let wg = WORKGROUP_SIZE as usize;
    let wanted = TARGET_WORKGROUPS.min(shape.numel().div_ceil(wg * MIN_ELEMENTS_PER_INVOCATION));
    let widest = (channels.next_power_of_two() as u32).min(MAX_LANES);
    let mut lanes = widest;
    while lanes > MIN_LANES {
        let blocks = channels.div_ceil(lanes as usize);
        let (chunks, _) = plan_chunks(count, blocks, wg / lanes as usize);
        if blocks * chunks as usize >= wanted {
            break;
        }
        lanes /= 2;
    }
    lanes
}

/// How a channel's `count` elements are split for the partial passes: `chunks` runs of
/// `chunk_len`, the last possibly shorter. `units` workgroup tasks cover the channels for
/// each chunk (C for the per-channel passes, C / lanes for the row passes), and `threads`
/// invocations share one channel's chunk (the workgroup, or its rows); `chunk_len` is a
/// multiple of `threads`.
pub(crate) fn plan_chunks(count: usize, units: usize, threads: usize) -> (u32, u32) {
    let by_size = count.div_ceil(threads * MIN_ELEMENTS_PER_INVOCATION).max(1);
    let wanted = TARGET_WORKGROUPS.div_ceil(units).max(1);
    let chunks = wanted.min(by_size).min(MAX_CHUNKS);
    let chunk_len = count.div_ceil(chunks).div_ceil(threads) * threads;
    let chunks = count.div_ceil(chunk_len);
    (chunks as u32, chunk_len as u32)
}

/// What a bound slice holds, which sets its expected size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The whole tensor (x, y, dy, dx).
    Tensor,
    /// One f32 per channel.
    PerChannel,
    /// One u32.
    Counter,
    /// One statistics record (4 f32) per channel.
    Stats,
}

/// One bound slice of a call, for the size, alignment and aliasing checks.
struct Bound<'a> {
    name: &'static str,
    slice: wgpu::BufferSlice<'a>,
    written: bool,
    kind: Kind,
}

/// A flat element range `[base, base + len)` of the tensor, bound on its own, and how the
/// partial passes split each channel's elements within it.
#[derive(Clone, Copy, Debug, Default)]
struct Piece {
    base: u64,
    len: u64,
    /// Bytes per element.
    size: u64,
    chunks: u32,
    chunk_len: u32,
    slot_base: u32,
}

impl Piece {
    /// This piece of a tensor slice.
    /// Interior pieces hold whole 4-byte words (their length is a multiple of the offset
    /// alignment); the last one is rounded up to one, inside the tensor's padded slice.
    fn of<'a>(&self, tensor: wgpu::BufferSlice<'a>) -> wgpu::BufferSlice<'a> {
        let start = tensor.offset() + self.base * self.size;
        let bytes = (self.len * self.size).div_ceil(4) * 4;
        tensor.buffer().slice(start..start + bytes)
    }
}

/// The pieces of one call, and the partial slots per channel over all of them.
struct Plan {
    pieces: Vec<Piece>,
    slots: u32,
    /// Channels per workgroup of the row partial passes; 0: the per-channel passes.
    lanes: u32,
}

impl Plan {
    /// The plan of the per-channel kernels reading one statistics record per channel
    /// (given or merged statistics): no pieces, one slot.
    fn one_record() -> Self {
        Self {
            pieces: Vec::new(),
            slots: 1,
            lanes: 0,
        }
    }

    /// Workgroup tasks of a partial pass over `piece`: (channel, chunk) pairs, or (block of
    /// `lanes` channels, chunk) pairs for the row passes.
    fn partial_groups(&self, channels: usize, piece: &Piece) -> usize {
        let units = if self.lanes > 0 {
            channels.div_ceil(self.lanes as usize)
        } else {
            channels
        };
        units * piece.chunks as usize
    }
}

#[derive(Default)]
struct Scratch {
    partials: Option<wgpu::Buffer>,
    chan: Option<wgpu::Buffer>,
}

/// A batch-norm layer's GPU side: pipelines built once for one device and configuration,
/// and internal scratch memory. It holds no tensors; every call records into the caller's
/// encoder on the caller's buffers, and never submits, polls or reads back.
///
/// Calls recorded into one or several encoders may share the scratch memory: each call's
/// dispatches run in queue order, so this is safe as long as all work goes through the one
/// queue of the device, as wgpu requires.
pub struct BatchNorm {
    config: BatchNormConfig,
    device: wgpu::Device,
    limits: wgpu::Limits,
    subgroups: bool,
    pipelines: Pipelines,
    dummy: wgpu::Buffer,
    scratch: Mutex<Scratch>,
    params: Mutex<HashMap<[u32; 16], wgpu::Buffer>>,
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
        let needs = [
            (
                "max_storage_buffers_per_shader_stage",
                limits.max_storage_buffers_per_shader_stage,
                6,
            ),
            (
                "max_compute_invocations_per_workgroup",
                limits.max_compute_invocations_per_workgroup,
                WORKGROUP_SIZE,
            ),
            (
                "max_compute_workgroup_size_x",
                limits.max_compute_workgroup_size_x,
                WORKGROUP_SIZE,
            ),
            (
                "max_compute_workgroup_storage_size",
                limits.max_compute_workgroup_storage_size,
                WORKGROUP_SIZE * 16,
            ),
        ];
        for (name, have, need) in needs {
            if have < need {
                return Err(BatchNormError::UnsupportedDevice(format!(
                    "{name} is {have}, the kernels need at least {need}"
                )));
            }
        }

        let (pipelines, dummy) = scoped(device, || {
            let pipelines = Pipelines::new(device, subgroups, f16);
            let dummy = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("wgpu-batchnorm.unused-binding"),
                size: 16,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            });
            Ok((pipelines, dummy))
        })?;
        Ok(Self {
            config,
            device: device.clone(),
            limits,
            subgroups,
            pipelines,
            dummy,
            scratch: Mutex::default(),
            params: Mutex::default(),
        })
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
        record(encoder, "wgpu-batchnorm.forward", &steps);
        Ok(())
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
        record(encoder, "wgpu-batchnorm.forward-with-statistics", &steps);
        Ok(())
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
            let global = self.params_buffer(shape, &plan, None, 0)?;
            let scratch = self.scratch(shape.channels(), plan.slots as usize)?;
            let partials = scratch.partials();
            let p = &self.pipelines;
            let mut steps = Vec::new();
            self.record_stats_partials(&mut steps, shape, &plan, 0, x, partials)?;
            let dummy = self.dummy.slice(..);
            let per_channel = shape.channels().div_ceil(WORKGROUP_SIZE as usize);
            self.dispatch(
                &mut steps,
                &p.stats_merge,
                &global,
                &[partials, dummy, out],
                per_channel,
            );
            Ok(steps)
        })?;
        record(encoder, "wgpu-batchnorm.statistics", &steps);
        Ok(())
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
            let groups = shape.channels().div_ceil(WORKGROUP_SIZE as usize);
            self.dispatch(
                &mut steps,
                &self.pipelines.stats_merge,
                &params,
                &[a, b, out],
                groups,
            );
            Ok(steps)
        })?;
        record(encoder, "wgpu-batchnorm.merge-statistics", &steps);
        Ok(())
    }

    /// The statistics partial pass over every piece of `x`, into `partials`.
    fn record_stats_partials<'k>(
        &'k self,
        steps: &mut Vec<Step<'k>>,
        shape: &TensorShape,
        plan: &Plan,
        flags: u32,
        x: wgpu::BufferSlice<'_>,
        partials: wgpu::BufferSlice<'_>,
    ) -> Result<()> {
        for piece in &plan.pieces {
            let params = self.params_buffer(shape, plan, Some(piece), flags)?;
            let groups = plan.partial_groups(shape.channels(), piece);
            let kernel = if plan.lanes > 0 {
                &self.pipelines.stats_partial_rows
            } else {
                &self.pipelines.stats_partial
            };
            self.dispatch(steps, kernel, &params, &[piece.of(x), partials], groups);
        }
        Ok(())
    }

    fn check_channels(&self, shape: &TensorShape) -> Result<()> {
        if shape.channels() != self.config.num_features {
            return Err(BatchNormError::ChannelMismatch {
                expected: self.config.num_features,
                got: shape.channels(),
            });
        }
        Ok(())
    }

    /// The dispatches of a forward (or of `forward_with_statistics` with `given`), every
    /// bind group created: nothing is recorded until all of them exist.
    fn forward_steps(
        &self,
        mode: Mode,
        shape: &TensorShape,
        bufs: &ForwardBuffers<'_>,
        given: Option<wgpu::BufferSlice<'_>>,
    ) -> Result<Vec<Step<'_>>> {
        match given {
            None => self.check_shape(shape, mode)?,
            Some(_) => self.check_channels(shape)?,
        }
        let cfg = &self.config;
        let batch = cfg.uses_batch_stats(mode);
        let update = cfg.updates_running_stats(mode);
        let affine = presence("affine (gamma, beta)", bufs.affine, cfg.affine, AFFINE_WHY)?;
        let running = presence(
            "running (running_mean, running_var)",
            bufs.running,
            cfg.track_running_stats,
            RUNNING_WHY,
        )?;
        let saved = presence(
            "saved (save_mean, save_invstd)",
            bufs.saved,
            batch,
            "saved statistics are written exactly when the forward uses batch statistics (training, or eval without tracked running statistics)",
        )?;
        let tracked = match running {
            Some(r) if update => Some(r.num_batches_tracked.ok_or(BatchNormError::MissingBuffer {
                name: "num_batches_tracked",
                why: "a training forward with track_running_stats increments it (and reads it when momentum is None)",
            })?),
            _ => None,
        };
        let residual = presence(
            "residual",
            bufs.residual,
            cfg.epilogue == Epilogue::AddRelu,
            EPILOGUE_WHY,
        )?;
        let skipped = presence(
            "skipped_batches",
            running.and_then(|r| r.skipped_batches),
            update && cfg.skip_non_finite_update,
            "a training forward with track_running_stats and skip_non_finite_update counts skipped batches in it",
        )?;

        let mut bound = vec![
            Bound::tensor("x", bufs.x, false),
            Bound::tensor("y", bufs.y, true),
        ];
        if let Some(z) = residual {
            bound.push(Bound::tensor("residual", z, false));
        }
        if let Some(a) = affine {
            bound.push(Bound::channel("gamma", a.gamma, false));
            bound.push(Bound::channel("beta", a.beta, false));
        }
        if let Some(r) = running {
            bound.push(Bound::channel("running_mean", r.mean, update));
            bound.push(Bound::channel("running_var", r.var, update));
        }
        if let Some(t) = tracked {
            bound.push(Bound::counter("num_batches_tracked", t));
        }
        if let Some(k) = skipped {
            bound.push(Bound::counter("skipped_batches", k));
        }
        if let Some(s) = saved {
            bound.push(Bound::channel("save_mean", s.mean, true));
            bound.push(Bound::channel("save_invstd", s.invstd, true));
        }
        if let Some(g) = given {
            bound.push(Bound::stats("statistics", g, false));
        }
        self.check_bindings(shape, &bound)?;

        let mut flags = 0;
        if cfg.affine {
            flags |= FLAG_AFFINE;
        }
        if cfg.momentum.is_none() {
            flags |= FLAG_CUMULATIVE;
        }
        if cfg.running_var_convention == VarianceConvention::Biased {
            flags |= FLAG_BIASED_VAR;
        }
        if cfg.skip_non_finite_update {
            flags |= FLAG_SKIP_NON_FINITE;
        }
        flags |= epilogue_flags(cfg.epilogue);
        let plan = self.plan(shape, batch && given.is_none())?;
        let one_record = Plan::one_record();
        // Given statistics are read as one partial record per channel.
        let global_plan = given.map_or(&plan, |_| &one_record);
        let global = self.params_buffer(shape, global_plan, None, flags)?;
        let scratch = self.scratch(shape.channels(), plan.slots as usize)?;
        let (partials, chan) = (scratch.partials(), scratch.chan());
        let dummy = self.dummy.slice(..);
        let (gamma, beta) = affine.map_or((dummy, dummy), |a| (a.gamma, a.beta));
        let p = &self.pipelines;
        let per_channel = shape.channels().div_ceil(WORKGROUP_SIZE as usize);
        let empty = plan.pieces.is_empty();

        let mut steps = Vec::new();
        // One pass per channel (statistics, coefficients and y) where each channel is one
        // chunk of one piece and not the innermost axis; see `forward_fused.wgsl`.
        let fused = match (
            one_pass(&p.forward_fused, &p.forward_thin, shape, &plan),
            saved,
        ) {
            (Some((kernel, piece, groups)), Some(s)) if given.is_none() => {
                Some((kernel, piece, groups, s))
            }
            _ => None,
        };
        match (fused, saved, running) {
            (Some((kernel, piece, groups, s)), _, _) => {
                let params = self.params_buffer(shape, &plan, Some(piece), flags)?;
                let (x, y) = (piece.of(bufs.x), piece.of(bufs.y));
                let z = residual.map_or(dummy, |z| piece.of(z));
                self.dispatch(
                    &mut steps,
                    kernel,
                    &params,
                    &[x, gamma, beta, chan, s.mean, s.invstd, y, z],
                    groups,
                );
            }
            (None, Some(s), _) if given.is_some() || !empty => {
                let stats = match given {
                    Some(g) => g,
                    None => {
                        self.record_stats_partials(
                            &mut steps, shape, &plan, flags, bufs.x, partials,
                        )?;
                        partials
                    }
                };
                self.dispatch(
                    &mut steps,
                    &p.stats_finalize,
                    &global,
                    &[stats, gamma, beta, chan, s.mean, s.invstd],
                    per_channel,
                );
            }
            (None, Some(_), _) => {}
            (None, None, Some(r)) => self.dispatch(
                &mut steps,
                &p.eval_coeffs,
                &global,
                &[r.mean, r.var, gamma, beta, chan],
                per_channel,
            ),
            (None, None, None) => {
                unreachable!("presence checks give saved or running statistics")
            }
        }
        if let (Some(r), Some(t)) = (running, tracked) {
            let k = skipped.unwrap_or(dummy);
            let bindings = [chan, r.mean, r.var, t, k];
            if cfg.skip_non_finite_update {
                // One workgroup decides for the whole batch, updates and counts.
                self.dispatch(&mut steps, &p.running_update, &global, &bindings, 1);
            } else {
                // The channels in parallel, then the count (see `running_update.wgsl`).
                self.dispatch(
                    &mut steps,
                    &p.running_update,
                    &global,
                    &bindings,
                    per_channel,
                );
                let count =
                    self.params_buffer(shape, global_plan, None, flags | FLAG_COUNT_ONLY)?;
                self.dispatch(&mut steps, &p.running_update, &count, &bindings, 1);
            }
        }
        let separate_normalize = if fused.is_some() {
            &[][..]
        } else {
            &plan.pieces[..]
        };
        for piece in separate_normalize {
            let params = self.params_buffer(shape, &plan, Some(piece), flags)?;
            let (x, y) = (piece.of(bufs.x), piece.of(bufs.y));
            let z = residual.map_or(dummy, |z| piece.of(z));
            let groups = self.elementwise_groups(piece.len);
            self.dispatch(&mut steps, &p.normalize, &params, &[x, chan, y, z], groups);
        }
        Ok(steps)
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
        let steps = scoped(&self.device, || self.backward_steps(mode, shape, bufs))?;
        record(encoder, "wgpu-batchnorm.backward", &steps);
        Ok(())
    }

    /// The dispatches of a backward, every bind group created.
    fn backward_steps(
        &self,
        mode: Mode,
        shape: &TensorShape,
        bufs: &BackwardBuffers<'_>,
    ) -> Result<Vec<Step<'_>>> {
        self.check_shape(shape, mode)?;
        let cfg = &self.config;
        let batch = cfg.uses_batch_stats(mode);
        let gamma = presence("gamma", bufs.gamma, cfg.affine, AFFINE_WHY)?;
        let grads = presence("grads (dgamma, dbeta)", bufs.grads, cfg.affine, AFFINE_WHY)?;
        let saved = presence(
            "saved (save_mean, save_invstd)",
            bufs.saved,
            batch,
            "backward reads saved statistics exactly when the forward used batch statistics (training, or eval without tracked running statistics)",
        )?;
        let fused = cfg.epilogue != Epilogue::None;
        let y = presence("y", bufs.y, fused, EPILOGUE_WHY)?;
        let dresidual = presence(
            "dresidual",
            bufs.dresidual,
            cfg.epilogue == Epilogue::AddRelu,
            EPILOGUE_WHY,
        )?;
        let running = presence(
            "running (running_mean, running_var)",
            bufs.running,
            !batch,
            "backward reads running statistics exactly when the forward used them (eval with track_running_stats)",
        )?;

        let mut bound = vec![
            Bound::tensor("x", bufs.x, false),
            Bound::tensor("dy", bufs.dy, false),
            Bound::tensor("dx", bufs.dx, true),
        ];
        if let Some(y) = y {
            bound.push(Bound::tensor("y", y, false));
        }
        if let Some(dz) = dresidual {
            bound.push(Bound::tensor("dresidual", dz, true));
        }
        if let Some(g) = gamma {
            bound.push(Bound::channel("gamma", g, false));
        }
        if let Some(g) = grads {
            bound.push(Bound::channel("dgamma", g.dgamma, true));
            bound.push(Bound::channel("dbeta", g.dbeta, true));
        }
        let (stat_a, stat_b) = match (saved, running) {
            (Some(s), _) => {
                bound.push(Bound::channel("save_mean", s.mean, false));
                bound.push(Bound::channel("save_invstd", s.invstd, false));
                (s.mean, s.invstd)
            }
            (None, Some(r)) => {
                bound.push(Bound::channel("running_mean", r.mean, false));
                bound.push(Bound::channel("running_var", r.var, false));
                (r.mean, r.var)
            }
            (None, None) => unreachable!("presence checks give saved or running statistics"),
        };
        self.check_bindings(shape, &bound)?;

        let mut flags = 0;
        if cfg.affine {
            flags |= FLAG_AFFINE;
        }
        if batch {
            flags |= FLAG_BATCH_STATS;
        }
        flags |= epilogue_flags(cfg.epilogue);
        let plan = self.plan(shape, batch || cfg.affine)?;
        let global = self.params_buffer(shape, &plan, None, flags)?;
        let scratch = self.scratch(shape.channels(), plan.slots as usize)?;
        let (partials, chan) = (scratch.partials(), scratch.chan());
        let dummy = self.dummy.slice(..);
        let gamma = gamma.unwrap_or(dummy);
        let (dgamma, dbeta) = grads.map_or((dummy, dummy), |g| (g.dgamma, g.dbeta));
        let p = &self.pipelines;
        let per_channel = shape.channels().div_ceil(WORKGROUP_SIZE as usize);

        let mut steps = Vec::new();
        if !plan.pieces.is_empty() {
            self.dispatch(
                &mut steps,
                &p.backward_prep,
                &global,
                &[stat_a, stat_b, gamma, chan],
                per_channel,
            );
        }
        // One pass per channel (sums, gradients, dx) where each channel is one chunk of one
        // piece and not the innermost axis; see `backward_fused.wgsl`.
        if let Some((kernel, piece, groups)) =
            one_pass(&p.backward_fused, &p.backward_thin, shape, &plan)
        {
            let params = self.params_buffer(shape, &plan, Some(piece), flags)?;
            let (x, dy, dx) = (piece.of(bufs.x), piece.of(bufs.dy), piece.of(bufs.dx));
            let y = y.map_or(dummy, |y| piece.of(y));
            let dz = dresidual.map_or(dummy, |dz| piece.of(dz));
            self.dispatch(
                &mut steps,
                kernel,
                &params,
                &[x, dy, chan, dgamma, dbeta, dx, y, dz],
                groups,
            );
            return Ok(steps);
        }
        for piece in plan.pieces.iter().filter(|pc| pc.chunks > 0) {
            let params = self.params_buffer(shape, &plan, Some(piece), flags)?;
            let groups = plan.partial_groups(shape.channels(), piece);
            let (x, dy) = (piece.of(bufs.x), piece.of(bufs.dy));
            let y = y.map_or(dummy, |y| piece.of(y));
            let kernel = if plan.lanes > 0 {
                &p.backward_partial_rows
            } else {
                &p.backward_partial
            };
            self.dispatch(
                &mut steps,
                kernel,
                &params,
                &[x, dy, chan, partials, y],
                groups,
            );
        }
        if !plan.pieces.is_empty() || cfg.affine {
            self.dispatch(
                &mut steps,
                &p.backward_finalize,
                &global,
                &[partials, chan, dgamma, dbeta],
                per_channel,
            );
        }
        for piece in &plan.pieces {
            let params = self.params_buffer(shape, &plan, Some(piece), flags)?;
            let (x, dy, dx) = (piece.of(bufs.x), piece.of(bufs.dy), piece.of(bufs.dx));
            let y = y.map_or(dummy, |y| piece.of(y));
            let dz = dresidual.map_or(dummy, |dz| piece.of(dz));
            let groups = self.elementwise_groups(piece.len);
            self.dispatch(
                &mut steps,
                &p.backward_dx,
                &params,
                &[x, dy, chan, dx, y, dz],
                groups,
            );
        }
        Ok(steps)
    }

    /// Splits the tensor into pieces that each fit one binding (flat element ranges whose
    /// offsets keep the storage offset alignment), and, when `reduce`, each channel's
    /// elements within each piece into chunks for the partial passes.
    fn plan(&self, shape: &TensorShape, reduce: bool) -> Result<Plan> {
        let numel = shape.numel() as u64;
        let size = self.config.dtype.size();
        let align = u64::from(self.limits.min_storage_buffer_offset_alignment).max(4) / size;
        let max_len = self.limits.max_storage_buffer_binding_size / size / align * align;
        if numel > 0 && max_len == 0 {
            return Err(BatchNormError::UnsupportedDevice(format!(
                "max_storage_buffer_binding_size {} is below min_storage_buffer_offset_alignment {}",
                self.limits.max_storage_buffer_binding_size,
                self.limits.min_storage_buffer_offset_alignment
            )));
        }
        let lanes = if reduce { row_lanes(shape) } else { 0 };
        let (units, threads) = if lanes > 0 {
            let lanes = lanes as usize;
            (
                shape.channels().div_ceil(lanes),
                WORKGROUP_SIZE as usize / lanes,
            )
        } else {
            (shape.channels(), WORKGROUP_SIZE as usize)
        };
        let mut pieces = Vec::new();
        let mut slots = 0u32;
        let mut base = 0u64;
        while base < numel {
            let len = max_len.min(numel - base);
            let (chunks, chunk_len) = if reduce {
                // Longest run of one channel's elements in the piece.
                let longest = if len == numel {
                    shape.per_channel()
                } else {
                    (0..shape.channels())
                        .map(|c| {
                            shape.first_k_at(c, (base + len) as usize)
                                - shape.first_k_at(c, base as usize)
                        })
                        .max()
                        .unwrap_or(0)
                };
                plan_chunks(longest.max(1), units, threads)
            } else {
                (0, 0)
            };
            pieces.push(Piece {
                base,
                len,
                size,
                chunks,
                chunk_len,
                slot_base: slots,
            });
            slots += chunks;
            base += len;
        }
        Ok(Plan {
            pieces,
            slots,
            lanes,
        })
    }

    /// Sizes, alignment, usage, binding limits and aliasing of every bound slice. The
    /// tensor slices of an empty batch are not accessed and not checked.
    fn check_bindings(&self, shape: &TensorShape, bound: &[Bound<'_>]) -> Result<()> {
        let numel = shape.numel() as u64;
        let channels = shape.channels() as u64;
        let align = self.limits.min_storage_buffer_offset_alignment;
        let bound: Vec<&Bound<'_>> = bound
            .iter()
            .filter(|b| numel > 0 || b.kind != Kind::Tensor)
            .collect();
        for b in &bound {
            let (expected, what) = match b.kind {
                Kind::Tensor => (
                    self.config.dtype.tensor_bytes(numel),
                    format!(
                        "{numel} {:?} for shape {:?}, rounded up to 4 bytes",
                        self.config.dtype,
                        shape.dims()
                    ),
                ),
                Kind::Counter => (4, "one u32".to_string()),
                Kind::Stats => (
                    channels * 16,
                    format!("{channels} records of 4 f32 (count, mean - shift, variance, shift)"),
                ),
                Kind::PerChannel => (channels * 4, format!("{channels} f32, one per channel")),
            };
            let usage = b.slice.buffer().usage();
            if !usage.contains(wgpu::BufferUsages::STORAGE) {
                return Err(BatchNormError::MissingStorageUsage {
                    name: b.name,
                    usage,
                });
            }
            if b.slice.size() != expected {
                return Err(BatchNormError::BufferSize {
                    name: b.name,
                    expected,
                    got: b.slice.size(),
                    what,
                });
            }
            if b.slice.offset() % u64::from(align) != 0 {
                return Err(BatchNormError::MisalignedOffset {
                    name: b.name,
                    offset: b.slice.offset(),
                    alignment: align,
                });
            }
            // Tensors larger than one binding are processed in pieces.
            if b.kind != Kind::Tensor {
                check_limit(
                    b.name,
                    expected,
                    "max_storage_buffer_binding_size",
                    self.limits.max_storage_buffer_binding_size,
                )?;
            }
        }
        for out in bound.iter().filter(|b| b.written) {
            for other in bound.iter().filter(|b| !std::ptr::eq(**b, *out)) {
                if out.slice.buffer() == other.slice.buffer() && ranges_overlap(out, other) {
                    return Err(BatchNormError::Overlap {
                        output: out.name,
                        other: other.name,
                    });
                }
            }
        }
        Ok(())
    }

    /// The uniform buffer of one dispatch's parameters: the whole call's, or one piece's.
    /// Created initialized (never written through the queue), immutable, and cached by
    /// value.
    fn params_buffer(
        &self,
        shape: &TensorShape,
        plan: &Plan,
        piece: Option<&Piece>,
        flags: u32,
    ) -> Result<wgpu::Buffer> {
        let (outer, inner) = shape.outer_inner();
        let piece = piece.copied().unwrap_or_default();
        let params = Params {
            outer: outer as u32,
            channels: shape.channels() as u32,
            inner: inner as u32,
            count: shape.per_channel() as u32,
            base: piece.base as u32,
            len: piece.len as u32,
            chunk_len: piece.chunk_len,
            chunks: piece.chunks,
            slot_base: piece.slot_base,
            slots: plan.slots,
            lanes: plan.lanes,
            eps: self.config.eps,
            momentum: self.config.new_batch_weight().unwrap_or(0.0),
            flags,
            ..Params::default()
        };
        let key: [u32; 16] = bytemuck::cast(params);
        let mut cache = self.params.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = cache.get(&key) {
            return Ok(b.clone());
        }
        if cache.len() >= PARAMS_CACHE_LIMIT {
            cache.clear();
        }
        let buffer = buffer_with(
            &self.device,
            "wgpu-batchnorm.params",
            bytemuck::bytes_of(&params),
            wgpu::BufferUsages::UNIFORM,
        )?;
        cache.insert(key, buffer.clone());
        Ok(buffer)
    }

    /// Scratch buffers for `channels * slots` partials and `2 * channels` per-channel
    /// records, grown on demand.
    fn scratch(&self, channels: usize, slots: usize) -> Result<ScratchBuffers> {
        let partial_bytes = (channels * slots.max(1) * 16) as u64;
        let chan_bytes = (channels * 2 * 16) as u64;
        for (name, bytes) in [
            ("scratch partials", partial_bytes),
            ("scratch per-channel", chan_bytes),
        ] {
            check_limit(
                name,
                bytes,
                "max_storage_buffer_binding_size",
                self.limits.max_storage_buffer_binding_size,
            )?;
            check_limit(name, bytes, "max_buffer_size", self.limits.max_buffer_size)?;
        }
        let mut s = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        Ok(ScratchBuffers {
            partials: grow(
                &self.device,
                &mut s.partials,
                partial_bytes,
                "wgpu-batchnorm.partials",
            ),
            partial_bytes,
            chan: grow(
                &self.device,
                &mut s.chan,
                chan_bytes,
                "wgpu-batchnorm.per-channel",
            ),
            chan_bytes,
        })
    }

    /// Workgroups of a grid-stride elementwise pass over `len` elements.
    fn elementwise_groups(&self, len: u64) -> usize {
        let max = u64::from(self.limits.max_compute_workgroups_per_dimension);
        len.div_ceil(u64::from(WORKGROUP_SIZE)).min(max) as usize
    }

    /// Adds to `steps` a dispatch of `kernel` over `groups` workgroups (a 2D grid, x
    /// fastest, so that more than 65535 fit) with `storage` at bindings 1.. and the
    /// parameters at 0; its bind group is created now, so that an invalid buffer fails
    /// before anything is recorded.
    fn dispatch<'k>(
        &self,
        steps: &mut Vec<Step<'k>>,
        kernel: &'k Kernel,
        params: &wgpu::Buffer,
        storage: &[wgpu::BufferSlice<'_>],
        groups: usize,
    ) {
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: params.as_entire_binding(),
        }];
        entries.extend(
            storage
                .iter()
                .zip(1..)
                .map(|(slice, binding)| wgpu::BindGroupEntry {
                    binding,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: slice.buffer(),
                        offset: slice.offset(),
                        size: NonZeroU64::new(slice.size()),
                    }),
                }),
        );
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("wgpu-batchnorm.bind-group"),
            layout: &kernel.layout,
            entries: &entries,
        });
        // Every kernel loops over its tasks, so a grid smaller than `groups` (capped by the
        // device's limit) still covers them all.
        let max = self.limits.max_compute_workgroups_per_dimension as usize;
        let x = groups.clamp(1, max);
        let y = groups.div_ceil(x).clamp(1, max);
        steps.push(Step {
            kernel,
            bind_group,
            grid: (x as u32, y as u32),
        });
    }
}

/// The one-pass kernels: one dispatch per call instead of partial, finalize and elementwise
/// passes, where each channel is one chunk of a channel-first tensor in one piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OnePass {
    /// An invocation per channel (`forward_thin.wgsl`, `backward_thin.wgsl`): at most
    /// [`THIN_MAX_COUNT`] values per channel, 256 channels per workgroup.
    Thin,
    /// A workgroup per channel (`forward_fused.wgsl`, `backward_fused.wgsl`).
    Wide,
}

/// Which one-pass kernel a call with `plan` takes, or `None` where the separate passes run.
fn one_pass_kind(shape: &TensorShape, plan: &Plan) -> Option<OnePass> {
    let [piece] = &plan.pieces[..] else {
        return None;
    };
    if plan.lanes != 0 || piece.chunks != 1 {
        return None;
    }
    Some(if shape.per_channel() <= THIN_MAX_COUNT {
        OnePass::Thin
    } else {
        OnePass::Wide
    })
}

/// The one-pass kernel of a call ([`one_pass_kind`]), the tensor's one piece and the
/// workgroups to dispatch; `None` where the separate passes run, or where the device binds
/// too few storage buffers for the one-pass kernels (`wide` and `thin` are then `None`).
fn one_pass<'k, 'p>(
    wide: &'k Option<Kernel>,
    thin: &'k Option<Kernel>,
    shape: &TensorShape,
    plan: &'p Plan,
) -> Option<(&'k Kernel, &'p Piece, usize)> {
    let piece = plan.pieces.first()?;
    let c = shape.channels();
    match one_pass_kind(shape, plan)? {
        OnePass::Thin => Some((thin.as_ref()?, piece, c.div_ceil(WORKGROUP_SIZE as usize))),
        OnePass::Wide => Some((wide.as_ref()?, piece, c)),
    }
}

/// One dispatch of a call, ready to record: the kernel, its bind group (already created and
/// validated) and the grid.
struct Step<'k> {
    kernel: &'k Kernel,
    bind_group: wgpu::BindGroup,
    grid: (u32, u32),
}

/// Records `steps` in order into one compute pass labelled `label`. Called only once every
/// step exists, so a call that fails records nothing.
fn record(encoder: &mut wgpu::CommandEncoder, label: &str, steps: &[Step<'_>]) {
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: None,
    });
    for step in steps {
        pass.set_pipeline(&step.kernel.pipeline);
        pass.set_bind_group(0, &step.bind_group, &[]);
        pass.dispatch_workgroups(step.grid.0, step.grid.1, 1);
    }
}

/// Scratch buffers of one call and the bytes it uses of each.
struct ScratchBuffers {
    partials: wgpu::Buffer,
    partial_bytes: u64,
    chan: wgpu::Buffer,
    chan_bytes: u64,
}

impl ScratchBuffers {
    fn partials(&self) -> wgpu::BufferSlice<'_> {
        self.partials.slice(..self.partial_bytes)
    }

    fn chan(&self) -> wgpu::BufferSlice<'_> {
        self.chan.slice(..self.chan_bytes)
    }
}

/// The buffer in `slot`, replaced by a larger one (a power of two) when it holds fewer
/// than `bytes`. Work already recorded keeps the old buffer alive.
fn grow(
    device: &wgpu::Device,
    slot: &mut Option<wgpu::Buffer>,
    bytes: u64,
    label: &str,
) -> wgpu::Buffer {
    match slot {
        Some(b) if b.size() >= bytes => b.clone(),
        _ => {
            let b = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes.next_power_of_two(),
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            });
            *slot = Some(b.clone());
            b
        }
    }
}

/// A buffer created mapped and filled with `bytes` (never written through the queue). Fails,
/// rather than panics as `DeviceExt::create_buffer_init` does, when the device is lost.
pub(crate) fn buffer_with(
    device: &wgpu::Device,
    label: &str,
    bytes: &[u8],
    usage: wgpu::BufferUsages,
) -> Result<wgpu::Buffer> {
    let buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes.len() as u64,
        usage,
        mapped_at_creation: true,
    });
    buffer
        .slice(..)
        .get_mapped_range_mut()
        .map_err(|e| BatchNormError::Wgpu(format!("creating `{label}`: {e}")))?
        .slice(..)
        .copy_from_slice(bytes);
    buffer.unmap();
    Ok(buffer)
}

/// Runs `f` inside error scopes for validation, out-of-memory and internal errors, so that
/// an error wgpu reports while it runs (a lost device, say) comes back as
/// [`BatchNormError::Wgpu`] instead of reaching the device's uncaptured-error handler.
/// Popping the scopes does not wait for the GPU.
pub(crate) fn scoped<T>(device: &wgpu::Device, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let memory = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
    let result = f();
    let errors = [
        pollster::block_on(internal.pop()),
        pollster::block_on(memory.pop()),
        pollster::block_on(validation.pop()),
    ];
    match errors.into_iter().flatten().next() {
        Some(e) => Err(BatchNormError::Wgpu(e.to_string())),
        None => result,
    }
}

const EPILOGUE_WHY: &str = "the forward's residual, and the backward's y and dresidual, are used exactly with the fused epilogue that needs them (config.epilogue)";

/// The `Params::flags` bits of an epilogue.
fn epilogue_flags(epilogue: Epilogue) -> u32 {
    match epilogue {
        Epilogue::None => 0,
        Epilogue::Relu => FLAG_RELU,
        Epilogue::AddRelu => FLAG_RELU | FLAG_RESIDUAL,
    }
}

const AFFINE_WHY: &str =
    "gamma and beta (and their gradients) are used exactly when config.affine is true";
const RUNNING_WHY: &str =
    "running statistics are used exactly when config.track_running_stats is true";

/// `value` when `needed`, an error naming `name` when it is missing or unexpected.
fn presence<T>(
    name: &'static str,
    value: Option<T>,
    needed: bool,
    why: &'static str,
) -> Result<Option<T>> {
    match (value, needed) {
        (Some(v), true) => Ok(Some(v)),
        (None, false) => Ok(None),
        (None, true) => Err(BatchNormError::MissingBuffer { name, why }),
        (Some(_), false) => Err(BatchNormError::UnexpectedBuffer { name, why }),
    }
}

fn check_limit(name: &'static str, bytes: u64, limit_name: &'static str, limit: u64) -> Result<()> {
    if bytes > limit {
        return Err(BatchNormError::ExceedsLimit {
            name,
            bytes,
            limit_name,
            limit,
        });
    }
    Ok(())
}

fn ranges_overlap(a: &Bound<'_>, b: &Bound<'_>) -> bool {
    let (a0, b0) = (a.slice.offset(), b.slice.offset());
    a0 < b0 + b.slice.size() && b0 < a0 + a.slice.size()
}

impl<'a> Bound<'a> {
    fn tensor(name: &'static str, slice: wgpu::BufferSlice<'a>, written: bool) -> Self {
        Self {
            name,
            slice,
            written,
            kind: Kind::Tensor,
        }
    }

    fn channel(name: &'static str, slice: wgpu::BufferSlice<'a>, written: bool) -> Self {
        Self {
            name,
            slice,
            written,
            kind: Kind::PerChannel,
        }
    }

    fn stats(name: &'static str, slice: wgpu::BufferSlice<'a>, written: bool) -> Self {
        Self {
            name,
            slice,
            written,
            kind: Kind::Stats,
        }
    }

    fn counter(name: &'static str, slice: wgpu::BufferSlice<'a>) -> Self {
        Self {
            name,
            slice,
            written: true,
            kind: Kind::Counter,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass choice: thin up to `THIN_MAX_COUNT` values per channel, wide above,
    /// none for the row passes, several chunks or several pieces.
    #[test]
    fn one_pass_kernels_are_chosen_by_values_per_channel() {
        let piece = |chunks| Piece {
            len: 1,
            size: 4,
            chunks,
            chunk_len: 1,
            ..Default::default()
        };
        let plan = |pieces: Vec<Piece>, lanes| Plan {
            pieces,
            slots: 1,
            lanes,
        };
        let cf = |dims: &[usize]| TensorShape::channels_first(dims).unwrap();
        let one = plan(vec![piece(1)], 0);
        let m = THIN_MAX_COUNT;
        assert_eq!(one_pass_kind(&cf(&[1, 1000, 2]), &one), Some(OnePass::Thin));
        assert_eq!(one_pass_kind(&cf(&[1, 10, m]), &one), Some(OnePass::Thin));
        assert_eq!(
            one_pass_kind(&cf(&[2, 10, m / 2]), &one),
            Some(OnePass::Thin)
        );
        assert_eq!(
            one_pass_kind(&cf(&[1, 10, m + 1]), &one),
            Some(OnePass::Wide)
        );
        assert_eq!(
            one_pass_kind(&cf(&[4, 3, 9, 11]), &one),
            Some(OnePass::Wide)
        );
        let shape = cf(&[1, 1000, 2]);
        assert_eq!(one_pass_kind(&shape, &plan(vec![piece(2)], 0)), None);
        assert_eq!(one_pass_kind(&shape, &plan(vec![piece(1)], 8)), None);
        assert_eq!(
            one_pass_kind(&shape, &plan(vec![piece(1), piece(1)], 0)),
            None
        );
        assert_eq!(one_pass_kind(&shape, &plan(vec![], 0)), None);
    }

    #[test]
    fn chunk_plans_cover_every_element_once() {
        let wg = WORKGROUP_SIZE as usize;
        for &(count, units, threads) in &[
            (1, 1, wg),
            (2, 3, wg),
            (255, 1, wg),
            (257, 2, wg),
            (1 << 20, 3, wg),
            (49, 2048, wg),
            (12544, 64, wg),
            (1_000_003, 1, wg),
            (1, 1, 4),
            (4096, 64, 4),
            (802_816, 1, 4),
            (12_544, 32, 4),
            (5, 1, 64),
        ] {
            let (chunks, len) = plan_chunks(count, units, threads);
            let (chunks, len) = (chunks as usize, len as usize);
            assert!(
                (1..=MAX_CHUNKS).contains(&chunks),
                "{count} {units}: {chunks}"
            );
            assert_eq!(len % threads, 0);
            assert!(chunks * len >= count, "{count}: {chunks} x {len}");
            assert!((chunks - 1) * len < count, "{count}: empty last chunk");
        }
        // A long channel is split across many workgroups.
        assert!(plan_chunks(1 << 20, 1, wg).0 > 100);
        // Channels-last with 64 channels: eight blocks of 8 lanes (32 rows), 2048 workgroups.
        assert_eq!(8 * plan_chunks(401_408, 8, 32).0, 2048);
    }

    #[test]
    fn row_blocks_are_as_wide_as_filling_the_gpu_allows() {
        let lanes = |dims: &[usize]| row_lanes(&TensorShape::channels_last(dims).unwrap());
        // 64 channels: blocks of 64 would leave at most 256 workgroups.
        assert_eq!(lanes(&[32, 112, 112, 64]), MIN_LANES);
        // 2048 channels: 32 blocks of 64 times 64 chunks fill the GPU.
        assert_eq!(lanes(&[256, 7, 7, 2048]), MAX_LANES);
        // Fewer channels than the narrowest block: one block of C rounded up.
        assert_eq!(lanes(&[100, 3]), 4);
        // Small tensors: as many workgroups as their size allows with any width.
        assert_eq!(lanes(&[2048, 512]), MAX_LANES);
        // Channel-first with spatial axes: the per-channel passes.
        let nchw = TensorShape::channels_first(&[2, 3, 4, 5]).unwrap();
        assert_eq!(row_lanes(&nchw), 0);
        let nc = TensorShape::channels_first(&[4096, 4096]).unwrap();
        assert_eq!(row_lanes(&nc), MAX_LANES);
    }
}
