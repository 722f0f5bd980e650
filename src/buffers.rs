//! Buffer helpers: host data into storage buffers, and buffer slices back to the host, in
//! f32 and f16, blocking and async, so that code around the recording API needs no
//! hand-written staging, mapping or polling.
//!
//! ```no_run
//! # fn demo(gpu: &wgpu_batchnorm::HeadlessGpu) -> wgpu_batchnorm::Result<()> {
//! use wgpu_batchnorm::{read_f32, upload_f32};
//! let x = upload_f32(&gpu.device, "x", &[1.0, 2.0, 3.0, 4.0])?;
//! // ... record work on x.slice(..) and submit it ...
//! let back = read_f32(&gpu.device, &gpu.queue, x.slice(..))?;
//! assert_eq!(back, [1.0, 2.0, 3.0, 4.0]);
//! # Ok(())
//! # }
//! ```

use half::f16;

use crate::batchnorm::buffer_with;
use crate::error::{BatchNormError, Result};

/// Usages of the buffers the upload helpers create: bindable as storage, readable back,
/// writable by the queue.
pub const UPLOAD_USAGES: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// A storage buffer (usages [`UPLOAD_USAGES`]) holding `data` as f32. Empty data gets one
/// 4-byte word (wgpu has no empty buffers), which no call of an empty batch reads.
pub fn upload_f32(device: &wgpu::Device, label: &str, data: &[f32]) -> Result<wgpu::Buffer> {
    upload_words(device, label, data, UPLOAD_USAGES)
}

/// A buffer with `usage` holding `data` (4-byte values); empty data gets one zero word.
pub(crate) fn upload_words<T: bytemuck::Pod>(
    device: &wgpu::Device,
    label: &str,
    data: &[T],
    usage: wgpu::BufferUsages,
) -> Result<wgpu::Buffer> {
    let bytes: &[u8] = if data.is_empty() {
        &[0; 4]
    } else {
        bytemuck::cast_slice(data)
    };
    buffer_with(device, label, bytes, usage)
}

/// A storage buffer (usages [`UPLOAD_USAGES`]) holding `data` rounded to f16 (to nearest,
/// ties to even), for `DType::F16` tensors; an odd count is padded with one f16 NaN to a
/// whole 4-byte word.
pub fn upload_f16(device: &wgpu::Device, label: &str, data: &[f32]) -> Result<wgpu::Buffer> {
    let mut halves: Vec<f16> = data.iter().map(|&v| f16::from_f32(v)).collect();
    // Whole 4-byte words, at least one.
    let words = halves.len().div_ceil(2).max(1);
    halves.resize(2 * words, f16::NAN);
    buffer_with(device, label, bytemuck::cast_slice(&halves), UPLOAD_USAGES)
}

/// The f32 values of `slice` (its buffer needs `COPY_SRC`), after all work submitted to
/// `queue` so far. Blocks until the GPU is done.
pub fn read_f32(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    slice: wgpu::BufferSlice<'_>,
) -> Result<Vec<f32>> {
    let bytes = read_bytes(device, queue, &[slice])?.remove(0);
    Ok(bytemuck::pod_collect_to_vec(&bytes))
}

/// The first `len` values of an f16 tensor in `slice`, widened to f32 (exactly), after all
/// work submitted to `queue` so far. Blocks until the GPU is done.
pub fn read_f16(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    slice: wgpu::BufferSlice<'_>,
    len: usize,
) -> Result<Vec<f32>> {
    let bytes = read_bytes(device, queue, &[slice])?.remove(0);
    widen_f16(&bytes, len)
}

/// [`read_f32`] as a future. It resolves once the device has been polled after the copy
/// completes: on native, by `device.poll` (from a thread of the caller's, say); on the
/// web, by the browser.
pub async fn read_f32_async(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    slice: wgpu::BufferSlice<'_>,
) -> Result<Vec<f32>> {
    let bytes = read_bytes_async(device, queue, &[slice], false)
        .await?
        .remove(0);
    Ok(bytemuck::pod_collect_to_vec(&bytes))
}

/// [`read_f16`] as a future; see [`read_f32_async`] for when it resolves.
pub async fn read_f16_async(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    slice: wgpu::BufferSlice<'_>,
    len: usize,
) -> Result<Vec<f32>> {
    let bytes = read_bytes_async(device, queue, &[slice], false)
        .await?
        .remove(0);
    widen_f16(&bytes, len)
}

fn widen_f16(bytes: &[u8], len: usize) -> Result<Vec<f32>> {
    let halves: Vec<f16> = bytemuck::pod_collect_to_vec(bytes);
    if halves.len() < len {
        return Err(BatchNormError::HostLength {
            name: "f16 slice",
            expected: len,
            got: halves.len(),
        });
    }
    Ok(halves[..len].iter().map(|h| h.to_f32()).collect())
}

/// The bytes of each of `slices` after all work submitted so far, in order; blocks.
pub(crate) fn read_bytes(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    slices: &[wgpu::BufferSlice<'_>],
) -> Result<Vec<Vec<u8>>> {
    pollster::block_on(read_bytes_async(device, queue, slices, true))
}

/// Copies `slices` to staging buffers in one submission, maps them and returns their bytes;
/// with `wait`, polls the device until the copies are done. A slice whose buffer lacks
/// `COPY_SRC`, or whose size is not a multiple of 4, is refused before anything is submitted.
async fn read_bytes_async(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    slices: &[wgpu::BufferSlice<'_>],
    wait: bool,
) -> Result<Vec<Vec<u8>>> {
    for s in slices {
        if !s.buffer().usage().contains(wgpu::BufferUsages::COPY_SRC) {
            return Err(BatchNormError::Readback(format!(
                "the buffer lacks BufferUsages::COPY_SRC (usage {:?})",
                s.buffer().usage()
            )));
        }
        if s.size() % 4 != 0 || s.offset() % 4 != 0 {
            return Err(BatchNormError::Readback(format!(
                "a slice of {} bytes at offset {} is not whole 4-byte words",
                s.size(),
                s.offset()
            )));
        }
    }
    let mut encoder = device.create_command_encoder(&Default::default());
    let staging: Vec<wgpu::Buffer> = slices
        .iter()
        .map(|s| {
            let b = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("wgpu-batchnorm.readback"),
                size: s.size(),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            encoder.copy_buffer_to_buffer(s.buffer(), s.offset(), &b, 0, s.size());
            b
        })
        .collect();
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    queue.submit([encoder.finish()]);
    if let Some(e) = scope.pop().await {
        return Err(BatchNormError::Wgpu(e.to_string()));
    }
    let receivers: Vec<_> = staging
        .iter()
        .map(|s| {
            let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
            s.slice(..).map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
            rx
        })
        .collect();
    if wait {
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| BatchNormError::Readback(e.to_string()))?;
    }
    let mut out = Vec::with_capacity(staging.len());
    for (s, rx) in staging.iter().zip(receivers) {
        match rx.receive().await {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(BatchNormError::Readback(e.to_string())),
            None => return Err(BatchNormError::Readback("map callback dropped".into())),
        }
        let bytes = s
            .slice(..)
            .get_mapped_range()
            .map_err(|e| BatchNormError::Readback(e.to_string()))?
            .to_vec();
        s.unmap();
        out.push(bytes);
    }
    Ok(out)
}
