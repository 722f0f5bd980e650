//! The recording API: build pipelines once, record forward and backward passes into the
//! caller's command encoder, on the caller's buffers.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::Mutex;

use wgpu::util::DeviceExt;

use crate::config::{BatchNormConfig, Mode, Reduction};
use crate::error::{BatchNormError, Result};
use crate::kernels::{
    FLAG_AFFINE, FLAG_BATCH_STATS, FLAG_CUMULATIVE, Kernel, Params, Pipelines, WORKGROUP_SIZE,
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
/// Entries kept in the cache of parameter buffers before it is emptied.
const PARAMS_CACHE_LIMIT: usize = 256;

/// How a channel's `count` elements are split for the partial passes: `chunks` runs of
/// `chunk_len` (a multiple of the workgroup size), the last possibly shorter.
pub(crate) fn plan_chunks(count: usize, channels: usize) -> (u32, u32) {
    let wg = WORKGROUP_SIZE as usize;
    let by_size = count.div_ceil(wg * MIN_ELEMENTS_PER_INVOCATION).max(1);
    let wanted = TARGET_WORKGROUPS.div_ceil(channels).max(1);
    let chunks = wanted.min(by_size).min(MAX_CHUNKS);
    let chunk_len = count.div_ceil(chunks).div_ceil(wg) * wg;
    let chunks = count.div_ceil(chunk_len);
    (chunks as u32, chunk_len as u32)
}

/// One bound slice of a call, for the size, alignment and aliasing checks.
struct Bound<'a> {
    name: &'static str,
    slice: wgpu::BufferSlice<'a>,
    written: bool,
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
    params: Mutex<HashMap<[u32; 12], wgpu::Buffer>>,
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

        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
        let pipelines = Pipelines::new(device, subgroups);
        let dummy = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-batchnorm.unused-binding"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        // Popping the scopes does not wait for the GPU: pipeline creation errors are known
        // when the calls return.
        let errors = [
            pollster::block_on(internal.pop()),
            pollster::block_on(validation.pop()),
        ];
        if let Some(e) = errors.into_iter().flatten().next() {
            return Err(BatchNormError::Wgpu(e.to_string()));
        }
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
        if shape.channels() != self.config.num_features {
            return Err(BatchNormError::ChannelMismatch {
                expected: self.config.num_features,
                got: shape.channels(),
            });
        }
        if self.config.uses_batch_stats(mode) && shape.per_channel() < 2 {
            return Err(BatchNormError::TooFewValuesPerChannel {
                dims: shape.dims().to_vec(),
            });
        }
        Ok(())
    }

    /// Records a forward pass into `encoder`: in training, batch statistics (saved for
    /// backward), the running-statistics update and `y`; in eval, `y` from the running
    /// statistics (or from batch statistics when they are not tracked).
    pub fn forward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        mode: Mode,
        shape: &TensorShape,
        bufs: &ForwardBuffers<'_>,
    ) -> Result<()> {
        self.check_shape(shape, mode)?;
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

        let mut bound = vec![Bound::input("x", bufs.x), Bound::output("y", bufs.y)];
        if let Some(a) = affine {
            bound.push(Bound::input("gamma", a.gamma));
            bound.push(Bound::input("beta", a.beta));
        }
        if let Some(r) = running {
            bound.push(Bound::new("running_mean", r.mean, update));
            bound.push(Bound::new("running_var", r.var, update));
        }
        if let Some(t) = tracked {
            bound.push(Bound::output("num_batches_tracked", t));
        }
        if let Some(s) = saved {
            bound.push(Bound::output("save_mean", s.mean));
            bound.push(Bound::output("save_invstd", s.invstd));
        }
        self.check_bindings(shape, &bound)?;

        let channels = shape.channels();
        let (chunks, chunk_len) = if batch {
            plan_chunks(shape.per_channel(), channels)
        } else {
            (0, 0)
        };
        let mut flags = 0;
        if cfg.affine {
            flags |= FLAG_AFFINE;
        }
        if cfg.momentum.is_none() {
            flags |= FLAG_CUMULATIVE;
        }
        let params = self.params_buffer(shape, chunks, chunk_len, flags);
        let scratch = self.scratch(channels, chunks as usize)?;
        let (partials, chan) = (scratch.partials(), scratch.chan());
        let dummy = self.dummy.slice(..);
        let (gamma, beta) = affine.map_or((dummy, dummy), |a| (a.gamma, a.beta));
        let p = &self.pipelines;

        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("wgpu-batchnorm.forward"),
            timestamp_writes: None,
        });
        let per_channel = channels.div_ceil(WORKGROUP_SIZE as usize);
        if let Some(s) = saved {
            let groups = channels * chunks as usize;
            self.dispatch(
                &mut pass,
                &p.stats_partial,
                &params,
                &[bufs.x, partials],
                groups,
            );
            self.dispatch(
                &mut pass,
                &p.stats_finalize,
                &params,
                &[partials, gamma, beta, chan, s.mean, s.invstd],
                per_channel,
            );
            if let (Some(r), Some(t)) = (running, tracked) {
                self.dispatch(
                    &mut pass,
                    &p.running_update,
                    &params,
                    &[chan, r.mean, r.var, t],
                    1,
                );
            }
        } else {
            let r = running.expect("eval without batch statistics has running statistics");
            self.dispatch(
                &mut pass,
                &p.eval_coeffs,
                &params,
                &[r.mean, r.var, gamma, beta, chan],
                per_channel,
            );
        }
        let elementwise = self.elementwise_groups(shape);
        self.dispatch(
            &mut pass,
            &p.normalize,
            &params,
            &[bufs.x, chan, bufs.y],
            elementwise,
        );
        Ok(())
    }

    /// Records a backward pass into `encoder`: `dx`, and `dgamma`, `dbeta` when affine.
    /// `mode` is the mode of the forward being differentiated.
    pub fn backward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        mode: Mode,
        shape: &TensorShape,
        bufs: &BackwardBuffers<'_>,
    ) -> Result<()> {
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
        let running = presence(
            "running (running_mean, running_var)",
            bufs.running,
            !batch,
            "backward reads running statistics exactly when the forward used them (eval with track_running_stats)",
        )?;

        let mut bound = vec![
            Bound::input("x", bufs.x),
            Bound::input("dy", bufs.dy),
            Bound::output("dx", bufs.dx),
        ];
        if let Some(g) = gamma {
            bound.push(Bound::input("gamma", g));
        }
        if let Some(g) = grads {
            bound.push(Bound::output("dgamma", g.dgamma));
            bound.push(Bound::output("dbeta", g.dbeta));
        }
        let (stat_a, stat_b) = match (saved, running) {
            (Some(s), _) => {
                bound.push(Bound::input("save_mean", s.mean));
                bound.push(Bound::input("save_invstd", s.invstd));
                (s.mean, s.invstd)
            }
            (None, Some(r)) => {
                bound.push(Bound::input("running_mean", r.mean));
                bound.push(Bound::input("running_var", r.var));
                (r.mean, r.var)
            }
            (None, None) => unreachable!("presence checks give saved or running statistics"),
        };
        self.check_bindings(shape, &bound)?;

        let channels = shape.channels();
        let reduce = batch || cfg.affine;
        let (chunks, chunk_len) = if reduce {
            plan_chunks(shape.per_channel(), channels)
        } else {
            (0, 0)
        };
        let mut flags = 0;
        if cfg.affine {
            flags |= FLAG_AFFINE;
        }
        if batch {
            flags |= FLAG_BATCH_STATS;
        }
        let params = self.params_buffer(shape, chunks, chunk_len, flags);
        let scratch = self.scratch(channels, chunks as usize)?;
        let (partials, chan) = (scratch.partials(), scratch.chan());
        let dummy = self.dummy.slice(..);
        let gamma = gamma.unwrap_or(dummy);
        let (dgamma, dbeta) = grads.map_or((dummy, dummy), |g| (g.dgamma, g.dbeta));
        let p = &self.pipelines;

        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("wgpu-batchnorm.backward"),
            timestamp_writes: None,
        });
        let per_channel = channels.div_ceil(WORKGROUP_SIZE as usize);
        self.dispatch(
            &mut pass,
            &p.backward_prep,
            &params,
            &[stat_a, stat_b, gamma, chan],
            per_channel,
        );
        if reduce {
            let groups = channels * chunks as usize;
            self.dispatch(
                &mut pass,
                &p.backward_partial,
                &params,
                &[bufs.x, bufs.dy, chan, partials],
                groups,
            );
        }
        self.dispatch(
            &mut pass,
            &p.backward_finalize,
            &params,
            &[partials, chan, dgamma, dbeta],
            per_channel,
        );
        let elementwise = self.elementwise_groups(shape);
        self.dispatch(
            &mut pass,
            &p.backward_dx,
            &params,
            &[bufs.x, bufs.dy, chan, bufs.dx],
            elementwise,
        );
        Ok(())
    }

    /// Sizes, alignment, usage, binding limits and aliasing of every bound slice.
    fn check_bindings(&self, shape: &TensorShape, bound: &[Bound<'_>]) -> Result<()> {
        let numel = shape.numel() as u64;
        let channels = shape.channels() as u64;
        let align = self.limits.min_storage_buffer_offset_alignment;
        for b in bound {
            let (expected, what) = match b.name {
                "x" | "y" | "dy" | "dx" => (
                    numel * 4,
                    format!("{numel} f32 for shape {:?}", shape.dims()),
                ),
                "num_batches_tracked" => (4, "one u32".to_string()),
                _ => (channels * 4, format!("{channels} f32, one per channel")),
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
            check_limit(
                b.name,
                expected,
                "max_storage_buffer_binding_size",
                self.limits.max_storage_buffer_binding_size,
            )?;
        }
        for out in bound.iter().filter(|b| b.written) {
            for other in bound.iter().filter(|b| !std::ptr::eq(*b, out)) {
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

    /// The uniform buffer of one call's parameters. Created initialized (never written
    /// through the queue), immutable, and cached by value.
    fn params_buffer(
        &self,
        shape: &TensorShape,
        chunks: u32,
        chunk_len: u32,
        flags: u32,
    ) -> wgpu::Buffer {
        let (outer, inner) = shape.outer_inner();
        let params = Params {
            outer: outer as u32,
            channels: shape.channels() as u32,
            inner: inner as u32,
            count: shape.per_channel() as u32,
            chunks,
            chunk_len,
            total: shape.numel() as u32,
            eps: self.config.eps,
            momentum: self.config.momentum.unwrap_or(0.0),
            flags,
            ..Params::default()
        };
        let key: [u32; 12] = bytemuck::cast(params);
        let mut cache = self.params.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = cache.get(&key) {
            return b.clone();
        }
        if cache.len() >= PARAMS_CACHE_LIMIT {
            cache.clear();
        }
        let buffer = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("wgpu-batchnorm.params"),
                contents: bytemuck::bytes_of(&params),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        cache.insert(key, buffer.clone());
        buffer
    }

    /// Scratch buffers for `channels * chunks` partials and `2 * channels` per-channel
    /// records, grown on demand.
    fn scratch(&self, channels: usize, chunks: usize) -> Result<ScratchBuffers> {
        let partial_bytes = (channels * chunks.max(1) * 16) as u64;
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

    /// Workgroups of a grid-stride elementwise pass over `shape`.
    fn elementwise_groups(&self, shape: &TensorShape) -> usize {
        let max = self.limits.max_compute_workgroups_per_dimension as usize;
        shape.numel().div_ceil(WORKGROUP_SIZE as usize).min(max)
    }

    /// Binds `storage` at bindings 1.. (and the parameters at 0), and dispatches `groups`
    /// workgroups as a 2D grid, x fastest, so that more than 65535 fit.
    fn dispatch(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        kernel: &Kernel,
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
        let max = self.limits.max_compute_workgroups_per_dimension as usize;
        let x = groups.clamp(1, max);
        let y = groups.div_ceil(x).max(1);
        pass.set_pipeline(&kernel.pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(x as u32, y as u32, 1);
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
    fn new(name: &'static str, slice: wgpu::BufferSlice<'a>, written: bool) -> Self {
        Self {
            name,
            slice,
            written,
        }
    }

    fn input(name: &'static str, slice: wgpu::BufferSlice<'a>) -> Self {
        Self::new(name, slice, false)
    }

    fn output(name: &'static str, slice: wgpu::BufferSlice<'a>) -> Self {
        Self::new(name, slice, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_plans_cover_every_element_once() {
        for &(count, channels) in &[
            (1, 1),
            (2, 3),
            (255, 1),
            (257, 2),
            (1 << 20, 3),
            (49, 2048),
            (12544, 64),
            (1_000_003, 1),
        ] {
            let (chunks, len) = plan_chunks(count, channels);
            let (chunks, len) = (chunks as usize, len as usize);
            assert!(
                (1..=MAX_CHUNKS).contains(&chunks),
                "{count} {channels}: {chunks}"
            );
            assert_eq!(len % WORKGROUP_SIZE as usize, 0);
            assert!(chunks * len >= count, "{count}: {chunks} x {len}");
            assert!((chunks - 1) * len < count, "{count}: empty last chunk");
        }
        // A long channel is split across many workgroups.
        assert!(plan_chunks(1 << 20, 1).0 > 100);
    }
}
