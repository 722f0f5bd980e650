//! Compute pipelines: one per kernel, built from the assembled WGSL module
//! (`kernels::module_source`) with a bind group layout from its `KernelSpec`, and the
//! process-wide count of pipelines built.

use std::num::NonZeroU64;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::kernels::*;

/// wgpu's shader runtime checks, all on (bounds, integer division) but loop bounding: wgpu
/// would add a counter to every loop in case it never ends, which cost up to 13% of a
/// backward pass on an H200 (BENCHMARKS.md, "wgpu's loop bounding"); the kernels' loops
/// all end (`kernels::loops`).
const RUNTIME_CHECKS: wgpu::ShaderRuntimeChecks = wgpu::ShaderRuntimeChecks {
    force_loop_bounding: false,
    ..wgpu::ShaderRuntimeChecks::checked()
};

/// A kernel's pipeline and bind group layout.
#[derive(Debug)]
pub(crate) struct Kernel {
    /// The kernel's file name in `shaders/`, without `.wgsl`.
    pub name: &'static str,
    /// The overridable constants it was built with.
    pub special: Specialization,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// Compute pipelines built so far by this process (see [`pipelines_built`]).
static PIPELINES_BUILT: AtomicUsize = AtomicUsize::new(0);

/// Compute pipelines this process has built so far, on every device: a diagnostic for
/// benchmarks and memory budgets. Layers of one device, element type and reduction share
/// their kernels, so only the first of them adds to it (see
/// [`BatchNorm::shares_kernels_with`](crate::BatchNorm::shares_kernels_with)).
pub fn pipelines_built() -> usize {
    PIPELINES_BUILT.load(Ordering::Relaxed)
}

impl Kernel {
    fn new(device: &wgpu::Device, spec: &KernelSpec, subgroups: bool, f16: bool) -> Self {
        Self::specialized(device, spec, subgroups, f16, Specialization::default())
    }

    /// The kernel with the prelude's overridable constants set to `special`.
    fn specialized(
        device: &wgpu::Device,
        spec: &KernelSpec,
        subgroups: bool,
        f16: bool,
        special: Specialization,
    ) -> Self {
        PIPELINES_BUILT.fetch_add(1, Ordering::Relaxed);
        let label = format!("wgpu-batchnorm.{}", spec.name);
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(&label),
            source: wgpu::ShaderSource::Wgsl(module_source(spec, subgroups, f16).into()),
        };
        // SAFETY: RUNTIME_CHECKS turns off only wgpu's loop bounding, whose contract is that
        // no loop of the module is infinite: `kernels::loops` checks every loop of every
        // kernel against forms that end for any parameters the host writes.
        let module = unsafe { device.create_shader_module_trusted(desc, RUNTIME_CHECKS) };
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: NonZeroU64::new(std::mem::size_of::<Params>() as u64),
            },
            count: None,
        }];
        // read_write unless the bindings struct marks the binding `read` (see `bindings!`
        // in src/kernels.rs for when that is safe).
        let storage = spec.storage.iter().zip(spec.read_only).zip(1..);
        entries.extend(storage.map(
            |((&size, &read_only), binding)| wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only },
                    has_dynamic_offset: false,
                    min_binding_size: NonZeroU64::new(size),
                },
                count: None,
            },
        ));
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(&label),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(&label),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &special.constants(),
                ..Default::default()
            },
            cache: None,
        });
        Self {
            name: spec.name,
            special,
            pipeline,
            layout,
        }
    }
}

/// A kernel built once per [`Specialization`] it is used with.
#[derive(Debug)]
pub(crate) struct Specialized {
    kernels: Vec<(Specialization, Kernel)>,
}

impl Specialized {
    /// `spec` built once per specialization in [`specializations`].
    fn new(device: &wgpu::Device, spec: &KernelSpec, (subgroups, f16): (bool, bool)) -> Self {
        let kernels = specializations(spec)
            .into_iter()
            .map(|s| (s, Kernel::specialized(device, spec, subgroups, f16, s)))
            .collect();
        Self { kernels }
    }

    /// The pipeline of `special`.
    pub fn get(&self, special: Specialization) -> &Kernel {
        let found = self.kernels.iter().find(|(s, _)| *s == special);
        &found
            .expect("every specialization a call can ask for is built")
            .1
    }
}

/// Every pipeline of one batch-norm object, built once.
#[derive(Debug)]
pub(crate) struct Pipelines {
    /// By record per workgroup or per invocation.
    pub stats_partial: Specialized,
    /// By record per workgroup or per invocation.
    pub stats_partial_rows: Specialized,
    pub stats_finalize: Kernel,
    /// `stats_finalize` with the running update; `None` on devices that bind fewer than
    /// nine storage buffers per stage.
    pub stats_finalize_running: Option<Kernel>,
    pub eval_coeffs: Kernel,
    pub running_update: Kernel,
    pub normalize: Kernel,
    /// By epilogue.
    pub normalize_vec4: Specialized,
    /// `normalize_vec4` computing its coefficients from the running statistics (an eval
    /// forward in one dispatch), by epilogue; `None` on devices that bind fewer than seven
    /// storage buffers per stage, which run `eval_coeffs` first.
    pub normalize_vec4_eval: Option<Specialized>,
    pub backward_prep: Kernel,
    /// By record per workgroup or per invocation.
    pub backward_partial: Specialized,
    /// By record per workgroup or per invocation.
    pub backward_partial_rows: Specialized,
    pub backward_finalize: Kernel,
    pub backward_dx: Kernel,
    /// By epilogue and batch statistics.
    pub backward_dx_vec4: Specialized,
    pub stats_merge: Kernel,
    pub backward_merge: Kernel,
    /// The one-pass training forward, where the device binds enough storage buffers.
    pub forward_fused: Option<Kernel>,
    /// `forward_fused` with the running update, where the device binds eleven.
    pub forward_fused_running: Option<Kernel>,
    /// The one-pass backward, likewise.
    pub backward_fused: Option<Kernel>,
    /// The one-pass training forward with an invocation per channel (few values each),
    /// likewise.
    pub forward_thin: Option<Kernel>,
    /// `forward_thin` with the running update, where the device binds eleven.
    pub forward_thin_running: Option<Kernel>,
    /// Its backward, likewise.
    pub backward_thin: Option<Kernel>,
}

impl Pipelines {
    pub(crate) fn new(device: &wgpu::Device, subgroups: bool, f16: bool) -> Self {
        let k = |spec: &KernelSpec| Kernel::new(device, spec, subgroups, f16);
        let storage = device.limits().max_storage_buffers_per_shader_stage;
        let fused = storage >= FUSED_STORAGE;
        let one_pass_running = storage >= ONE_PASS_RUNNING_STORAGE;
        let eval_in_one = storage >= NORMALIZE_EVAL_STORAGE;
        Self {
            stats_partial: Specialized::new(device, &STATS_PARTIAL, (subgroups, f16)),
            stats_partial_rows: Specialized::new(device, &STATS_PARTIAL_ROWS, (subgroups, f16)),
            stats_finalize: k(&STATS_FINALIZE),
            stats_finalize_running: (storage >= FINALIZE_RUNNING_STORAGE)
                .then(|| k(&STATS_FINALIZE_RUNNING)),
            eval_coeffs: k(&EVAL_COEFFS),
            running_update: k(&RUNNING_UPDATE),
            normalize: k(&NORMALIZE),
            normalize_vec4: Specialized::new(device, &NORMALIZE_VEC4, (subgroups, f16)),
            normalize_vec4_eval: eval_in_one
                .then(|| Specialized::new(device, &NORMALIZE_VEC4_EVAL, (subgroups, f16))),
            backward_prep: k(&BACKWARD_PREP),
            backward_partial: Specialized::new(device, &BACKWARD_PARTIAL, (subgroups, f16)),
            backward_partial_rows: Specialized::new(
                device,
                &BACKWARD_PARTIAL_ROWS,
                (subgroups, f16),
            ),
            backward_finalize: k(&BACKWARD_FINALIZE),
            backward_dx: k(&BACKWARD_DX),
            backward_dx_vec4: Specialized::new(device, &BACKWARD_DX_VEC4, (subgroups, f16)),
            stats_merge: k(&STATS_MERGE),
            backward_merge: k(&BACKWARD_MERGE),
            forward_fused: fused.then(|| k(&FORWARD_FUSED)),
            forward_fused_running: one_pass_running.then(|| k(&FORWARD_FUSED_RUNNING)),
            backward_fused: fused.then(|| k(&BACKWARD_FUSED)),
            forward_thin: fused.then(|| k(&FORWARD_THIN)),
            forward_thin_running: one_pass_running.then(|| k(&FORWARD_THIN_RUNNING)),
            backward_thin: fused.then(|| k(&BACKWARD_THIN)),
        }
    }
}
