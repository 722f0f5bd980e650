//! Buffers for the tests: uploads, read-backs, and zeroed buffers for a training forward.

use super::*;

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
            nbt: zeros(1),
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

/// A storage buffer holding f32 values.
pub fn upload_f32(device: &wgpu::Device, v: &[f32]) -> wgpu::Buffer {
    upload_bytes(device, bytemuck::cast_slice(v))
}

/// A tensor of `dtype` holding `v` (f16: rounded, padded to a whole 4-byte word with NaN).
pub fn upload_tensor(device: &wgpu::Device, dtype: DType, v: &[f32]) -> wgpu::Buffer {
    match dtype {
        DType::F32 => upload_f32(device, v),
        DType::F16 => {
            let mut h: Vec<half::f16> = v.iter().map(|&x| half::f16::from_f32(x)).collect();
            if h.len() % 2 == 1 {
                h.push(half::f16::NAN);
            }
            upload_bytes(device, bytemuck::cast_slice(&h))
        }
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
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("test readback"),
        size: buffer.size(),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, buffer.size());
    queue.submit([encoder.finish()]);
    staging
        .slice(..)
        .map_async(wgpu::MapMode::Read, |r| r.unwrap());
    device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    let bytes = staging.slice(..).get_mapped_range().unwrap().to_vec();
    staging.unmap();
    bytes
}

/// The f32 values of `buffer`.
pub fn read_f32(device: &wgpu::Device, queue: &wgpu::Queue, buffer: &wgpu::Buffer) -> Vec<f32> {
    bytemuck::pod_collect_to_vec(&read_bytes(device, queue, buffer))
}

/// The first `n` values of a `dtype` tensor, as f32.
pub fn read_tensor(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    dtype: DType,
    buffer: &wgpu::Buffer,
    n: usize,
) -> Vec<f32> {
    let bytes = read_bytes(device, queue, buffer);
    match dtype {
        DType::F32 => bytemuck::pod_collect_to_vec(&bytes[..4 * n]),
        DType::F16 => {
            let h: Vec<half::f16> = bytemuck::pod_collect_to_vec(&bytes[..(2 * n).div_ceil(4) * 4]);
            h[..n].iter().map(|x| x.to_f32()).collect()
        }
    }
}
