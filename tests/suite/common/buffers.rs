//! Buffers for the tests: uploads, read-backs, and zeroed buffers for a training forward.

use super::*;
use wgpu_batchnorm::BatchNormLayer;

/// One forward of `layer` (in its mode) on host `x` of `shape`: uploaded, the output
/// poisoned with NaN, recorded, submitted, and `y` read back.
pub fn layer_forward(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    layer: &mut BatchNormLayer,
    shape: &TensorShape,
    x: &[f32],
) -> Vec<f32> {
    let (xb, yb) = (
        upload_f32(device, x),
        upload_f32(device, &vec![f32::NAN; x.len()]),
    );
    let mut encoder = device.create_command_encoder(&Default::default());
    layer
        .forward(&mut encoder, shape, xb.slice(..), yb.slice(..))
        .unwrap_or_else(|e| panic!("{} forward: {e}", layer.label()));
    queue.submit([encoder.finish()]);
    read_f32(device, queue, &yb)
}

/// A storage buffer holding `bytes`.
pub fn upload_bytes(device: &wgpu::Device, bytes: &[u8]) -> wgpu::Buffer {
    wgpu::util::DeviceExt::create_buffer_init(
        device,
        &wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        },
    )
}

/// Zeroed storage buffers for a full training forward of `shape` (affine, tracked running
/// statistics, saved statistics), for tests that need valid buffers rather than values.
pub struct TrainBufs {
    pub x: wgpu::Buffer,
    pub y: wgpu::Buffer,
    pub gamma: wgpu::Buffer,
    pub beta: wgpu::Buffer,
    pub rm: wgpu::Buffer,
    pub rv: wgpu::Buffer,
    pub nbt: wgpu::Buffer,
    pub sm: wgpu::Buffer,
    pub si: wgpu::Buffer,
}

impl TrainBufs {
    pub fn new(device: &wgpu::Device, shape: &TensorShape) -> Self {
        let (n, c) = (shape.numel(), shape.channels());
        let zeros = |len: usize| upload_f32(device, &vec![0.0; len]);
        Self {
            x: zeros(n),
            y: zeros(n),
            gamma: zeros(c),
            beta: zeros(c),
            rm: zeros(c),
            rv: zeros(c),
            nbt: zeros(2),
            sm: zeros(c),
            si: zeros(c),
        }
    }

    /// The buffers of a training forward, without a residual or skipped-batch counter.
    pub fn forward(&self) -> ForwardBuffers<'_> {
        ForwardBuffers {
            x: self.x.slice(..),
            y: self.y.slice(..),
            residual: None,
            affine: Some(AffineParams {
                gamma: self.gamma.slice(..),
                beta: self.beta.slice(..),
            }),
            running: Some(RunningStats {
                mean: self.rm.slice(..),
                var: self.rv.slice(..),
                num_batches_tracked: Some(self.nbt.slice(..)),
                skipped_batches: None,
            }),
            saved: Some(SavedStats {
                mean: self.sm.slice(..),
                invstd: self.si.slice(..),
            }),
        }
    }
}

/// A storage buffer holding f32 values (the crate's `upload_f32`).
pub fn upload_f32(device: &wgpu::Device, v: &[f32]) -> wgpu::Buffer {
    wgpu_batchnorm::upload_f32(device, "test", v).unwrap()
}

/// A tensor of `dtype` holding `v` (f16: rounded, padded to a whole 4-byte word with NaN;
/// the crate's `upload_f16`).
pub fn upload_tensor(device: &wgpu::Device, dtype: DType, v: &[f32]) -> wgpu::Buffer {
    match dtype {
        DType::F32 => upload_f32(device, v),
        DType::F16 => wgpu_batchnorm::upload_f16(device, "test", v).unwrap(),
    }
}

/// `v` rounded to `dtype` (and back to f32, exactly).
pub fn round_to(dtype: DType, v: &[f32]) -> Vec<f32> {
    match dtype {
        DType::F32 => v.to_vec(),
        DType::F16 => v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect(),
    }
}

/// The bytes of `buffer`, after everything submitted so far.
pub fn read_bytes(device: &wgpu::Device, queue: &wgpu::Queue, buffer: &wgpu::Buffer) -> Vec<u8> {
    bytemuck::cast_slice(&read_f32(device, queue, buffer)).to_vec()
}

/// The f32 values of `buffer` (the crate's `read_f32`).
pub fn read_f32(device: &wgpu::Device, queue: &wgpu::Queue, buffer: &wgpu::Buffer) -> Vec<f32> {
    wgpu_batchnorm::read_f32(device, queue, buffer.slice(..)).unwrap()
}

/// The first `n` values of a `dtype` tensor, as f32 (the crate's `read_f32`, `read_f16`).
pub fn read_tensor(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    dtype: DType,
    buffer: &wgpu::Buffer,
    n: usize,
) -> Vec<f32> {
    match dtype {
        DType::F32 => read_f32(device, queue, buffer)[..n].to_vec(),
        DType::F16 => wgpu_batchnorm::read_f16(device, queue, buffer.slice(..), n).unwrap(),
    }
}

/// A storage buffer on the shared test device holding `data`.
pub fn upload(data: &[f32]) -> wgpu::Buffer {
    upload_f32(&super::gpu().device, data)
}

/// A buffer of the shared test device read back after the submitted work.
pub fn read(buffer: &wgpu::Buffer) -> Vec<f32> {
    let gpu = super::gpu();
    read_f32(&gpu.device, &gpu.queue, buffer)
}

/// Records into a new encoder of the shared test device and submits it.
pub fn submit(record: impl FnOnce(&mut wgpu::CommandEncoder)) {
    let gpu = super::gpu();
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    record(&mut encoder);
    gpu.queue.submit([encoder.finish()]);
}
