//! From a plan to recorded work: parameter and scratch buffers, bind groups created before
//! anything is recorded, and one compute pass per call.

use super::*;

/// Entries kept in the cache of parameter buffers before it is emptied (one cache for all
/// the layers of a kernel set: a ResNet-50 training step uses a few hundred).
const PARAMS_CACHE_LIMIT: usize = 4096;

impl BatchNorm {
    /// The uniform buffer of one dispatch's parameters: the whole call's, or one piece's.
    /// Created initialized (never written through the queue), immutable, and cached by
    /// value.
    pub(super) fn params_buffer(
        &self,
        shape: &TensorShape,
        plan: &Plan,
        piece: Option<&Piece>,
        flags: u32,
    ) -> Result<wgpu::Buffer> {
        let count = shape.per_channel() as u32;
        self.params_buffer_counted(shape, plan, piece, flags, count)
    }

    /// As [`params_buffer`](Self::params_buffer) with the values per channel that the
    /// statistics count given (a synchronized backward's total over every device).
    pub(super) fn params_buffer_counted(
        &self,
        shape: &TensorShape,
        plan: &Plan,
        piece: Option<&Piece>,
        flags: u32,
        count: u32,
    ) -> Result<wgpu::Buffer> {
        let (outer, inner) = shape.outer_inner();
        let piece = piece.copied().unwrap_or_default();
        let params = Params {
            outer: outer as u32,
            channels: shape.channels() as u32,
            inner: inner as u32,
            count,
            base: piece.base as u32,
            len: piece.len as u32,
            chunk_len: piece.chunk_len,
            chunks: piece.chunks,
            slot_base: piece.slot_base,
            slots: plan.slots,
            lanes: plan.lanes,
            merge_width: self.tuning.merge_rows_cap(),
            eps: self.config.eps,
            momentum: self.config.new_batch_weight().unwrap_or(0.0),
            flags,
            ..Params::default()
        };
        let key: [u32; 16] = bytemuck::cast(params);
        let mut cache = self.set.params.lock().unwrap_or_else(|e| e.into_inner());
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

    /// Scratch buffers for the partials of `plan` (`channels * slots` records), `2 *
    /// channels` per-channel records and, for a folded plan, two running records per
    /// channel; grown on demand. The per-channel records are the one limit that pieces do
    /// not lift: 32 bytes per channel within `max_storage_buffer_binding_size` (C at most
    /// 4,194,304 at 128 MiB), else `ExceedsLimit` for "scratch per-channel".
    pub(super) fn scratch(&self, channels: usize, plan: &Plan) -> Result<ScratchBuffers> {
        let partial_bytes = (channels * (plan.slots as usize).max(1) * 16) as u64;
        let chan_bytes = (channels * 2 * 16) as u64;
        // Each running record set bound on its own, at an aligned offset.
        let align = u64::from(self.limits.min_storage_buffer_offset_alignment).max(16);
        let folded_half = ((channels * 16) as u64).div_ceil(align) * align;
        let folded_bytes = if plan.fold { 2 * folded_half } else { 0 };
        for (name, bytes) in [
            ("scratch per-channel", chan_bytes),
            ("scratch partials", partial_bytes),
            ("scratch folded records", folded_bytes),
        ] {
            check_limit(
                name,
                bytes,
                "max_storage_buffer_binding_size",
                self.limits.max_storage_buffer_binding_size,
            )?;
            check_limit(name, bytes, "max_buffer_size", self.limits.max_buffer_size)?;
        }
        let mut s = self.set.scratch.lock().unwrap_or_else(|e| e.into_inner());
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
            folded: plan.fold.then(|| {
                let b = grow(
                    &self.device,
                    &mut s.folded,
                    folded_bytes,
                    "wgpu-batchnorm.folded",
                );
                (b, folded_half, (channels * 16) as u64)
            }),
        })
    }

    /// For a folded plan (`Plan::fold`): adds to `steps` the merge of piece `i`'s partials
    /// with the running records of the pieces before it (`merge`: `stats_merge` or
    /// `backward_merge`; piece 0 starts them), and returns the records it writes.
    pub(super) fn fold_piece<'k, 's>(
        &'k self,
        steps: &mut Vec<Step<'k>>,
        merge: &'k Kernel,
        shape: &TensorShape,
        plan: &Plan,
        scratch: &'s ScratchBuffers,
        i: usize,
    ) -> Result<wgpu::BufferSlice<'s>> {
        let (flags, prev) = match i {
            0 => (0, self.set.dummy.slice(..)),
            _ => (FLAG_MERGE_B, scratch.folded(i - 1)),
        };
        let params = self.params_buffer(shape, plan, None, flags)?;
        let out = scratch.folded(i);
        let bindings = MergeBindings {
            a: scratch.partials(),
            b: prev,
            out,
        };
        let groups = self.merge_groups(plan, shape.channels());
        self.dispatch(steps, merge, &params, &bindings.slices(), groups);
        Ok(out)
    }

    /// Workgroups of a merge pass over `plan`'s records per channel, at this layer's merge
    /// width (`Plan::merge_groups`, `Tuning::merge_width`).
    pub(super) fn merge_groups(&self, plan: &Plan, channels: usize) -> usize {
        plan.merge_groups(channels, self.tuning.merge_rows_cap())
    }

    /// Workgroups of a grid-stride elementwise pass over `len` elements: up to
    /// `Tuning::scalar_per_invocation` elements per invocation, fewer (down to one) where
    /// more would leave fewer than `Tuning::target_workgroups` workgroups. On an H200, 16
    /// per invocation made (256, 2048, 7, 7) eval 1.3x faster, and (32, 3, 112, 112)
    /// channels-last (75,000 invocations) 1.2-1.3x slower (BENCHMARKS.md, "device runs 15
    /// and 16").
    pub(super) fn elementwise_groups(&self, len: u64) -> usize {
        let max = u64::from(self.limits.max_compute_workgroups_per_dimension);
        let wg = u64::from(WORKGROUP_SIZE);
        let fill = self.tuning.target_workgroups.max(1) as u64 * wg;
        let most = self.tuning.scalar_per_invocation.max(1) as u64;
        let per = (len / fill).clamp(1, most);
        len.div_ceil(wg * per).min(max) as usize
    }

    /// Adds to `steps` a dispatch of `kernel` over `groups` workgroups (a 2D grid, x
    /// fastest, so that more than 65535 fit) with `storage` at bindings 1.. and the
    /// parameters at 0; its bind group is created now, so that an invalid buffer fails
    /// before anything is recorded.
    pub(super) fn dispatch<'k>(
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
        steps.push(Step {
            kernel,
            bind_group,
            grid: self.grid(groups),
        });
    }

    /// The 2D grid (x fastest) that a dispatch of `groups` workgroups takes. Every kernel
    /// loops over its tasks, so a grid smaller than `groups` (capped by the device's limit)
    /// still covers them all.
    pub(super) fn grid(&self, groups: usize) -> (u32, u32) {
        let max = self.limits.max_compute_workgroups_per_dimension as usize;
        let x = groups.clamp(1, max);
        let y = groups.div_ceil(x).clamp(1, max);
        (x as u32, y as u32)
    }
}

/// One dispatch of a call, ready to record: the kernel, its bind group (already created and
/// validated) and the grid.
pub(super) struct Step<'k> {
    kernel: &'k Kernel,
    bind_group: wgpu::BindGroup,
    grid: (u32, u32),
}

impl Step<'_> {
    /// What this step dispatches, as data.
    pub(super) fn describe(&self) -> Dispatch {
        Dispatch {
            kernel: self.kernel.name,
            workgroups: self.grid,
            invocation_records: self.kernel.special.invocation_records,
        }
    }

    /// Records this step's dispatch into `pass`, in a debug group named by its kernel.
    pub(super) fn dispatch(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.push_debug_group(self.kernel.name);
        pass.set_pipeline(&self.kernel.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.grid.0, self.grid.1, 1);
        pass.pop_debug_group();
    }
}

/// One dispatch a call records, as data: its kernel (the file name in `shaders/` without
/// `.wgsl`) and its grid of workgroups (x, y). See [`BatchNorm::forward_dispatches`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dispatch {
    /// The kernel, e.g. `"stats_partial"`.
    pub kernel: &'static str,
    /// Workgroups in x and y.
    pub workgroups: (u32, u32),
    /// Whether this partial pass writes a record per invocation, with no shared-memory
    /// merge and no barrier, rather than one per workgroup ([`Tuning::invocation_records`]).
    pub invocation_records: bool,
}

/// Scratch buffers of one call and the bytes it uses of each.
pub(super) struct ScratchBuffers {
    partials: wgpu::Buffer,
    partial_bytes: u64,
    chan: wgpu::Buffer,
    chan_bytes: u64,
    /// The running records of a folded plan: buffer, offset of the second set, bytes of one.
    folded: Option<(wgpu::Buffer, u64, u64)>,
}

impl ScratchBuffers {
    /// Running record set `i % 2` of a folded plan (pieces alternate between the two, each
    /// merging the other's records with its own partials).
    pub(super) fn folded(&self, i: usize) -> wgpu::BufferSlice<'_> {
        let (b, half, bytes) = self.folded.as_ref().expect("a folded plan's scratch");
        let start = (i % 2) as u64 * half;
        b.slice(start..start + bytes)
    }

    pub(super) fn partials(&self) -> wgpu::BufferSlice<'_> {
        self.partials.slice(..self.partial_bytes)
    }

    pub(super) fn chan(&self) -> wgpu::BufferSlice<'_> {
        self.chan.slice(..self.chan_bytes)
    }
}

/// The buffer in `slot`, replaced by a larger one (a power of two) when it holds fewer
/// than `bytes`. Work already recorded keeps the old buffer alive.
pub(super) fn grow(
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
