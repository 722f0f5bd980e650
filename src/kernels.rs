//! WGSL sources, parameter block and pipelines.
//!
//! Every kernel lives in its own file under `shaders/`. A module is assembled as
//! `common.wgsl` + one reduction helper (`reduce_workgroup.wgsl`, or `reduce_subgroup.wgsl`
//! when subgroup operations are used) + the kernel.

use std::num::NonZeroU64;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Threads per workgroup. Twin: `WG` in `shaders/common.wgsl`.
pub(crate) const WORKGROUP_SIZE: u32 = 256;

/// `Params::flags` bit: gamma and beta are bound and used. Twin: `FLAG_AFFINE` in WGSL.
pub(crate) const FLAG_AFFINE: u32 = 1;
/// `Params::flags` bit: momentum is `None` (cumulative average). Twin: `FLAG_CUMULATIVE`.
pub(crate) const FLAG_CUMULATIVE: u32 = 2;
/// `Params::flags` bit: backward uses batch statistics (saved mean and invstd).
/// Twin: `FLAG_BATCH_STATS`.
pub(crate) const FLAG_BATCH_STATS: u32 = 4;
/// `Params::flags` bit: the running variance averages the biased batch variance.
/// Twin: `FLAG_BIASED_VAR`.
pub(crate) const FLAG_BIASED_VAR: u32 = 8;
/// `Params::flags` bit: skip the running update of a batch with non-finite statistics.
/// Twin: `FLAG_SKIP_NON_FINITE`.
pub(crate) const FLAG_SKIP_NON_FINITE: u32 = 16;
/// `Params::flags` bit: fused ReLU after batch norm. Twin: `FLAG_RELU`.
pub(crate) const FLAG_RELU: u32 = 32;
/// `Params::flags` bit: fused residual add before the ReLU. Twin: `FLAG_RESIDUAL`.
pub(crate) const FLAG_RESIDUAL: u32 = 64;
/// `Params::flags` bit: `stats_merge` also merges its second source. Twin: `FLAG_MERGE_B`.
pub(crate) const FLAG_MERGE_B: u32 = 128;
/// `Params::flags` bit: `running_update` only increments `num_batches_tracked` (the second
/// of its two dispatches where the channels are updated in parallel). Twin:
/// `FLAG_COUNT_ONLY`.
pub(crate) const FLAG_COUNT_ONLY: u32 = 256;

/// Per-call parameters. Twin: `Params` in `shaders/common.wgsl` (same order, 16-byte rows).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    pub outer: u32,
    pub channels: u32,
    pub inner: u32,
    pub count: u32,
    pub base: u32,
    pub len: u32,
    pub chunk_len: u32,
    pub chunks: u32,
    pub slot_base: u32,
    pub slots: u32,
    pub lanes: u32,
    /// Always 0: an operand the shader compiler cannot fold (`opaque` in common.wgsl).
    pub zero: u32,
    pub eps: f32,
    pub momentum: f32,
    pub flags: u32,
    pub _pad2: u32,
}

const COMMON: &str = include_str!("../shaders/common.wgsl");
const REDUCE_WORKGROUP: &str = include_str!("../shaders/reduce_workgroup.wgsl");
const REDUCE_SUBGROUP: &str = include_str!("../shaders/reduce_subgroup.wgsl");

/// One compute kernel: its name, source and the element size in bytes of each storage
/// buffer it binds, at bindings 1, 2, ... (binding 0 is the `Params` uniform): 4 for
/// `array<f32>` / `array<u32>`, 16 for `array<vec4<f32>>`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KernelSpec {
    pub name: &'static str,
    pub source: &'static str,
    pub storage: &'static [u64],
}

macro_rules! kernel {
    ($name:literal, $storage:expr) => {
        KernelSpec {
            name: $name,
            source: include_str!(concat!("../shaders/", $name, ".wgsl")),
            storage: $storage,
        }
    };
}

// The binding lists mirror each kernel's `@binding` declarations.
pub(crate) const STATS_PARTIAL: KernelSpec = kernel!("stats_partial", &[4, 16]);
pub(crate) const STATS_PARTIAL_ROWS: KernelSpec = kernel!("stats_partial_rows", &[4, 16]);
pub(crate) const STATS_FINALIZE: KernelSpec = kernel!("stats_finalize", &[16, 4, 4, 16, 4, 4]);
pub(crate) const EVAL_COEFFS: KernelSpec = kernel!("eval_coeffs", &[4, 4, 4, 4, 16]);
pub(crate) const RUNNING_UPDATE: KernelSpec = kernel!("running_update", &[16, 4, 4, 4, 4]);
pub(crate) const NORMALIZE: KernelSpec = kernel!("normalize", &[4, 16, 4, 4]);
pub(crate) const BACKWARD_PREP: KernelSpec = kernel!("backward_prep", &[4, 4, 4, 16]);
pub(crate) const BACKWARD_PARTIAL: KernelSpec = kernel!("backward_partial", &[4, 4, 16, 16, 4]);
pub(crate) const BACKWARD_PARTIAL_ROWS: KernelSpec =
    kernel!("backward_partial_rows", &[4, 4, 16, 16, 4]);
pub(crate) const BACKWARD_FINALIZE: KernelSpec = kernel!("backward_finalize", &[16, 16, 4, 4]);
pub(crate) const STATS_MERGE: KernelSpec = kernel!("stats_merge", &[16, 16, 16]);
pub(crate) const BACKWARD_MERGE: KernelSpec = kernel!("backward_merge", &[16, 16, 16]);
pub(crate) const BACKWARD_DX: KernelSpec = kernel!("backward_dx", &[4, 4, 16, 4, 4, 4]);
pub(crate) const FORWARD_FUSED: KernelSpec = kernel!("forward_fused", &[4, 4, 4, 16, 4, 4, 4, 4]);
pub(crate) const BACKWARD_FUSED: KernelSpec = kernel!("backward_fused", &[4, 4, 16, 4, 4, 4, 4, 4]);
pub(crate) const FORWARD_THIN: KernelSpec = kernel!("forward_thin", &[4, 4, 4, 16, 4, 4, 4, 4]);
pub(crate) const BACKWARD_THIN: KernelSpec = kernel!("backward_thin", &[4, 4, 16, 4, 4, 4, 4, 4]);

/// Storage buffers `forward_fused` and `backward_fused` (and their `_thin` twins) bind;
/// devices with fewer per shader stage use the separate passes.
pub(crate) const FUSED_STORAGE: u32 = 8;

/// Every kernel, in a fixed order (the order of [`Pipelines`]' fields).
#[cfg(test)]
pub(crate) const ALL_KERNELS: [KernelSpec; 17] = [
    STATS_PARTIAL,
    STATS_PARTIAL_ROWS,
    STATS_FINALIZE,
    EVAL_COEFFS,
    RUNNING_UPDATE,
    NORMALIZE,
    BACKWARD_PREP,
    BACKWARD_PARTIAL,
    BACKWARD_PARTIAL_ROWS,
    BACKWARD_FINALIZE,
    BACKWARD_DX,
    STATS_MERGE,
    BACKWARD_MERGE,
    FORWARD_FUSED,
    BACKWARD_FUSED,
    FORWARD_THIN,
    BACKWARD_THIN,
];

/// The full WGSL text of `kernel`, with the subgroup or the shared-memory reduction helper,
/// and the tensor element type `T` (f16 needs `Features::SHADER_F16`).
pub(crate) fn module_source(kernel: &KernelSpec, subgroups: bool, f16: bool) -> String {
    let reduce = if subgroups {
        REDUCE_SUBGROUP
    } else {
        REDUCE_WORKGROUP
    };
    let element = if f16 {
        "enable f16;\nalias T = f16;"
    } else {
        "alias T = f32;"
    };
    format!("{element}\n{COMMON}\n{reduce}\n{}", kernel.source)
}

/// A kernel's pipeline and bind group layout.
#[derive(Debug)]
pub(crate) struct Kernel {
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
        PIPELINES_BUILT.fetch_add(1, Ordering::Relaxed);
        let label = format!("wgpu-batchnorm.{}", spec.name);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(&label),
            source: wgpu::ShaderSource::Wgsl(module_source(spec, subgroups, f16).into()),
        });
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
        // Every tensor binding is read_write, also those the kernel only reads: wgpu forbids
        // one buffer in read-only and read-write storage use within one dispatch, and callers
        // commonly hand out slices of one pooled buffer.
        entries.extend(spec.storage.iter().zip(1..).map(|(&size, binding)| {
            wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: false },
                    has_dynamic_offset: false,
                    min_binding_size: NonZeroU64::new(size),
                },
                count: None,
            }
        }));
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
            compilation_options: Default::default(),
            cache: None,
        });
        Self { pipeline, layout }
    }
}

/// Every pipeline of one batch-norm object, built once.
#[derive(Debug)]
pub(crate) struct Pipelines {
    pub stats_partial: Kernel,
    pub stats_partial_rows: Kernel,
    pub stats_finalize: Kernel,
    pub eval_coeffs: Kernel,
    pub running_update: Kernel,
    pub normalize: Kernel,
    pub backward_prep: Kernel,
    pub backward_partial: Kernel,
    pub backward_partial_rows: Kernel,
    pub backward_finalize: Kernel,
    pub backward_dx: Kernel,
    pub stats_merge: Kernel,
    pub backward_merge: Kernel,
    /// The one-pass training forward, where the device binds enough storage buffers.
    pub forward_fused: Option<Kernel>,
    /// The one-pass backward, likewise.
    pub backward_fused: Option<Kernel>,
    /// The one-pass training forward with an invocation per channel (few values each),
    /// likewise.
    pub forward_thin: Option<Kernel>,
    /// Its backward, likewise.
    pub backward_thin: Option<Kernel>,
}

impl Pipelines {
    pub(crate) fn new(device: &wgpu::Device, subgroups: bool, f16: bool) -> Self {
        let k = |spec: &KernelSpec| Kernel::new(device, spec, subgroups, f16);
        let fused = device.limits().max_storage_buffers_per_shader_stage >= FUSED_STORAGE;
        Self {
            stats_partial: k(&STATS_PARTIAL),
            stats_partial_rows: k(&STATS_PARTIAL_ROWS),
            stats_finalize: k(&STATS_FINALIZE),
            eval_coeffs: k(&EVAL_COEFFS),
            running_update: k(&RUNNING_UPDATE),
            normalize: k(&NORMALIZE),
            backward_prep: k(&BACKWARD_PREP),
            backward_partial: k(&BACKWARD_PARTIAL),
            backward_partial_rows: k(&BACKWARD_PARTIAL_ROWS),
            backward_finalize: k(&BACKWARD_FINALIZE),
            backward_dx: k(&BACKWARD_DX),
            stats_merge: k(&STATS_MERGE),
            backward_merge: k(&BACKWARD_MERGE),
            forward_fused: fused.then(|| k(&FORWARD_FUSED)),
            backward_fused: fused.then(|| k(&BACKWARD_FUSED)),
            forward_thin: fused.then(|| k(&FORWARD_THIN)),
            backward_thin: fused.then(|| k(&BACKWARD_THIN)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(source: &str, caps: naga::valid::Capabilities) -> Result<(), String> {
        let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
        // The pipelines use entry point `main`, a compute shader of WG invocations.
        let main = module.entry_points.iter().find(|e| e.name == "main");
        match main {
            Some(e)
                if e.stage == naga::ShaderStage::Compute
                    && e.workgroup_size == [WORKGROUP_SIZE, 1, 1] => {}
            _ => return Err("no compute entry point `main` with @workgroup_size(256)".into()),
        }
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
            .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
            .subgroup_operations(naga::valid::SubgroupOperationSet::all())
            .validate(&module)
            .map_err(|e| e.emit_to_string(source))?;
        Ok(())
    }

    /// Every module parses and validates with naga, with and without subgroups; needs no GPU.
    #[test]
    fn every_shader_module_validates() {
        use naga::valid::Capabilities as Caps;
        for spec in ALL_KERNELS {
            for f16 in [false, true] {
                let half = if f16 {
                    Caps::SHADER_FLOAT16
                } else {
                    Caps::empty()
                };
                let plain = module_source(&spec, false, f16);
                validate(&plain, half)
                    .unwrap_or_else(|e| panic!("{} (workgroup, f16 {f16}): {e}", spec.name));
                let sub = module_source(&spec, true, f16);
                validate(&sub, Caps::SUBGROUP | half)
                    .unwrap_or_else(|e| panic!("{} (subgroup, f16 {f16}): {e}", spec.name));
            }
        }
    }

    /// The subgroup variant is rejected without the capability, so a kernel that needs it
    /// can never reach an adapter that lacks it unnoticed.
    #[test]
    fn subgroup_modules_need_the_capability() {
        let sub = module_source(&STATS_PARTIAL, true, false);
        assert!(validate(&sub, naga::valid::Capabilities::empty()).is_err());
        let half = module_source(&STATS_PARTIAL, false, true);
        assert!(validate(&half, naga::valid::Capabilities::empty()).is_err());
    }

    #[test]
    fn params_layout_matches_wgsl() {
        // Four 16-byte rows, as `struct Params` in common.wgsl.
        assert_eq!(std::mem::size_of::<Params>(), 64);
    }
}
