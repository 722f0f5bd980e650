//! The example's own WGSL kernels (linear layers, ReLU, softmax cross-entropy, SGD), built
//! once; each file under `shaders/` is one kernel, `common.wgsl` holds their shared structs.

use bytemuck::{Pod, Zeroable};
use wgpu::util::DeviceExt;

/// A batch's sizes, as `Dims` in `shaders/common.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct Dims {
    pub rows: u32,
    pub inputs: u32,
    pub outputs: u32,
    pub pad: u32,
}

/// What changes per submission, as `Step` in `shaders/common.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct Step {
    pub offset: u32,
    pub slot: u32,
    pub pad: [u32; 2],
}

/// The optimizer's settings, as `Hyper` in `shaders/sgd.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct Hyper {
    pub lr: f32,
    pub momentum: f32,
    pub pad: [f32; 2],
}

/// The example's compute pipelines.
pub struct Kernels {
    pub gather: wgpu::ComputePipeline,
    pub linear_forward: wgpu::ComputePipeline,
    pub linear_backward_input: wgpu::ComputePipeline,
    pub linear_backward_params: wgpu::ComputePipeline,
    pub relu_forward: wgpu::ComputePipeline,
    pub relu_backward: wgpu::ComputePipeline,
    pub cross_entropy: wgpu::ComputePipeline,
    pub loss_reduce: wgpu::ComputePipeline,
    pub sgd: wgpu::ComputePipeline,
}

const COMMON: &str = include_str!("shaders/common.wgsl");

fn pipeline(device: &wgpu::Device, name: &str, source: &str, entry: &str) -> wgpu::ComputePipeline {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(name),
        source: wgpu::ShaderSource::Wgsl(format!("{COMMON}\n{source}").into()),
    });
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(name),
        layout: None,
        module: &module,
        entry_point: Some(entry),
        compilation_options: Default::default(),
        cache: None,
    })
}

impl Kernels {
    pub fn new(device: &wgpu::Device) -> Self {
        Self {
            gather: pipeline(
                device,
                "gather",
                include_str!("shaders/gather.wgsl"),
                "main",
            ),
            linear_forward: pipeline(
                device,
                "linear_forward",
                include_str!("shaders/linear_forward.wgsl"),
                "main",
            ),
            linear_backward_input: pipeline(
                device,
                "linear_backward_input",
                include_str!("shaders/linear_backward_input.wgsl"),
                "main",
            ),
            linear_backward_params: pipeline(
                device,
                "linear_backward_params",
                include_str!("shaders/linear_backward_params.wgsl"),
                "main",
            ),
            relu_forward: pipeline(
                device,
                "relu_forward",
                include_str!("shaders/relu_forward.wgsl"),
                "main",
            ),
            relu_backward: pipeline(
                device,
                "relu_backward",
                include_str!("shaders/relu_backward.wgsl"),
                "main",
            ),
            cross_entropy: pipeline(
                device,
                "cross_entropy",
                include_str!("shaders/cross_entropy.wgsl"),
                "main",
            ),
            loss_reduce: pipeline(
                device,
                "loss_reduce",
                include_str!("shaders/loss_reduce.wgsl"),
                "main",
            ),
            sgd: pipeline(device, "sgd", include_str!("shaders/sgd.wgsl"), "main"),
        }
    }
}

/// One recorded dispatch: a pipeline, its bind group and how many invocations it needs
/// (64 per workgroup).
pub struct Dispatch {
    pipeline: wgpu::ComputePipeline,
    group: wgpu::BindGroup,
    invocations: u32,
}

impl Dispatch {
    /// Binds `resources` at bindings 0, 1, ... of `pipeline`'s group 0.
    pub fn new(
        device: &wgpu::Device,
        pipeline: &wgpu::ComputePipeline,
        resources: &[wgpu::BindingResource<'_>],
        invocations: u32,
    ) -> Self {
        let entries: Vec<_> = resources
            .iter()
            .enumerate()
            .map(|(i, r)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: r.clone(),
            })
            .collect();
        let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        Self {
            pipeline: pipeline.clone(),
            group,
            invocations,
        }
    }

    /// Records the dispatch into `pass`.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.group, &[]);
        pass.dispatch_workgroups(self.invocations.div_ceil(64), 1, 1);
    }
}

/// A storage buffer of `len` zeroed 4-byte values, readable back.
pub fn zeros(device: &wgpu::Device, label: &str, len: usize) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (4 * len.max(1)) as u64,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// A buffer holding `data` (storage or uniform as `usage` says, always writable).
pub fn filled<T: Pod>(
    device: &wgpu::Device,
    label: &str,
    data: &[T],
    usage: wgpu::BufferUsages,
) -> wgpu::Buffer {
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytemuck::cast_slice(data),
        usage: usage | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
    })
}
