//! GPU time per dispatch: a [`DispatchProfiler`] given to [`BatchNorm::with_profiler`]
//! makes every call of that batch norm record each dispatch in its own compute pass with a
//! timestamp at the pass's beginning and end, so that the statistics' partial pass and
//! their merge, say, are timed apart.
//!
//! [`BatchNorm::with_profiler`]: crate::BatchNorm::with_profiler

use crate::batchnorm::Dispatch;
use crate::buffers::read_bytes;
use crate::{BatchNormError, Result};
use std::sync::Mutex;

/// Bytes of one resolved timestamp.
const STAMP_BYTES: u64 = 8;

/// The most dispatches one profiler holds between readings (two timestamps each, within
/// wgpu's `QUERY_SET_MAX_QUERIES`).
pub const MAX_PROFILED_DISPATCHES: u32 = wgpu::QUERY_SET_MAX_QUERIES / 2;

/// One profiled dispatch and its GPU time.
#[derive(Clone, Debug, PartialEq)]
pub struct DispatchTime {
    /// The compute pass label of the call that recorded it, e.g. `wgpu-batchnorm.forward`
    /// (see [`BatchNorm::with_label`](crate::BatchNorm::with_label)).
    pub call: String,
    /// The dispatch: kernel and grid, as [`BatchNorm::forward_dispatches`] lists them.
    ///
    /// [`BatchNorm::forward_dispatches`]: crate::BatchNorm::forward_dispatches
    pub dispatch: Dispatch,
    /// GPU time from the beginning of its compute pass to the end, in milliseconds.
    pub ms: f64,
}

/// Timestamps for the dispatches of profiled calls, in recording order, read back with
/// [`DispatchProfiler::read`].
///
/// A profiled call records one compute pass per dispatch (named as the call's single pass
/// would be) instead of one pass for all of them, with a timestamp written at each pass's
/// beginning and end; the results are the same. The time between two passes (the barrier a
/// dependent dispatch waits at) is in neither figure, and a profiled call may take a little
/// longer than an unprofiled one: time whole calls without a profiler, split them with one.
///
/// A [`BatchNormLayer`](crate::BatchNormLayer) is profiled by building it
/// [`with_batch_norm`](crate::BatchNormLayer::with_batch_norm) from a profiled batch norm;
/// several batch norms may share one profiler (each time carries its call's label).
///
/// The profiler holds up to its capacity of dispatches between readings; a call that does
/// not fit returns [`BatchNormError::ProfilerFull`] and records nothing. Needs a device
/// created with `Features::TIMESTAMP_QUERY` (Vulkan, Metal, DX12 and GL adapters commonly
/// have it; [`HeadlessGpu`](crate::HeadlessGpu) requests it where the adapter has it).
#[derive(Debug)]
pub struct DispatchProfiler {
    device: wgpu::Device,
    queries: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    capacity: u32,
    /// The dispatches recorded since the last reading, in order: timestamps `2 i` and
    /// `2 i + 1` belong to the `i`th.
    recorded: Mutex<Vec<(String, Dispatch)>>,
}

impl DispatchProfiler {
    /// A profiler for up to `capacity` dispatches between readings (1 to
    /// [`MAX_PROFILED_DISPATCHES`]) on `device`.
    pub fn new(device: &wgpu::Device, capacity: u32) -> Result<Self> {
        if !device.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            return Err(BatchNormError::TimestampsUnavailable);
        }
        if !(1..=MAX_PROFILED_DISPATCHES).contains(&capacity) {
            return Err(BatchNormError::InvalidConfig(format!(
                "a dispatch profiler holds 1 to {MAX_PROFILED_DISPATCHES} dispatches, got capacity {capacity}"
            )));
        }
        let queries = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("wgpu-batchnorm.profiler"),
            ty: wgpu::QueryType::Timestamp,
            count: 2 * capacity,
        });
        let resolved = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgpu-batchnorm.profiler"),
            size: 2 * STAMP_BYTES * u64::from(capacity),
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        Ok(Self {
            device: device.clone(),
            queries,
            resolved,
            capacity,
            recorded: Mutex::new(Vec::new()),
        })
    }

    /// The most dispatches held between readings.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Dispatches recorded since the last reading.
    pub fn pending(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Dispatch)>> {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves timestamps for `dispatches` of the call labelled `call` on `device`;
    /// returns the index of the first one's beginning timestamp. Refuses, reserving
    /// nothing, a call on another device or one that does not fit.
    pub(crate) fn reserve(
        &self,
        device: &wgpu::Device,
        call: &str,
        dispatches: impl ExactSizeIterator<Item = Dispatch>,
    ) -> Result<u32> {
        if *device != self.device {
            return Err(BatchNormError::InvalidConfig(
                "the dispatch profiler was created on another device than the batch norm's".into(),
            ));
        }
        let mut recorded = self.lock();
        let needed = dispatches.len();
        if recorded.len() + needed > self.capacity as usize {
            return Err(BatchNormError::ProfilerFull {
                capacity: self.capacity,
                pending: recorded.len(),
                needed,
            });
        }
        let first = 2 * recorded.len() as u32;
        recorded.extend(dispatches.map(|d| (call.to_string(), d)));
        Ok(first)
    }

    /// The timestamp writes of the pass of the dispatch whose beginning timestamp is
    /// `index`.
    pub(crate) fn writes(&self, index: u32) -> wgpu::ComputePassTimestampWrites<'_> {
        wgpu::ComputePassTimestampWrites {
            query_set: &self.queries,
            beginning_of_pass_write_index: Some(index),
            end_of_pass_write_index: Some(index + 1),
        }
    }

    /// The GPU time of every dispatch recorded since the last reading, in recording order,
    /// and empties the profiler. Call it after submitting the encoders those calls were
    /// recorded into (on `queue`, of the profiler's device): it submits the resolve of the
    /// timestamps and a copy, and waits for them.
    pub fn read(&self, queue: &wgpu::Queue) -> Result<Vec<DispatchTime>> {
        let mut recorded = self.lock();
        if recorded.is_empty() {
            return Ok(Vec::new());
        }
        let stamps = 2 * recorded.len() as u32;
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.resolve_query_set(&self.queries, 0..stamps, &self.resolved, 0);
        queue.submit([encoder.finish()]);
        let bytes = STAMP_BYTES * u64::from(stamps);
        let read = read_bytes(&self.device, queue, &[self.resolved.slice(..bytes)])?;
        let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&read[0]);
        let ns_per_tick = f64::from(queue.get_timestamp_period());
        let times = recorded
            .drain(..)
            .zip(ticks.chunks_exact(2))
            .map(|((call, dispatch), pair)| DispatchTime {
                call,
                dispatch,
                ms: pair[1].wrapping_sub(pair[0]) as f64 * ns_per_tick * 1e-6,
            })
            .collect();
        Ok(times)
    }
}
