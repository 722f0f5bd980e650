//! Timing one repetition of a pass: timestamp queries (or the host's clock), warm-up,
//! medians.

use crate::options::Options;
use std::time::{Duration, Instant};
use wgpu_batchnorm::HeadlessGpu;

/// Repetitions recorded into one submission (two timestamps each).
const BATCH: usize = 256;

/// Least wall time of warm-up for the first figure of a case, right after the seconds of
/// host work that prepare it. An H200 idled at 345-585 MHz (1980 MHz busy) during that work
/// and took up to 0.6 s of steady GPU work to raise its clock again; timed right away, the
/// same kernel on the same buffers measured 1,370 or 3,100 GB/s.
pub(crate) const WARM_UP_FIRST: Duration = Duration::from_millis(1000);

/// Least wall time of warm-up for the other figures of a case.
pub(crate) const WARM_UP: Duration = Duration::from_millis(300);

/// Times `record` (one repetition into the given encoder, for input set `set`) with
/// timestamp queries, or where the adapter has none (or with `--host-clock`) with the
/// host's clock around each repetition's submission and wait; returns the median in
/// milliseconds.
pub(crate) struct Timer<'a> {
    gpu: &'a HeadlessGpu,
    /// `None`: timed with the host's clock.
    stamps: Option<Stamps>,
}

/// The timestamp query set and its readback.
struct Stamps {
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    period_ns: f64,
}

impl<'a> Timer<'a> {
    pub(crate) fn new(gpu: &'a HeadlessGpu, host_clock: bool) -> Self {
        let use_timestamps = !host_clock
            && gpu
                .device
                .features()
                .contains(wgpu::Features::TIMESTAMP_QUERY);
        let stamps = use_timestamps.then(|| {
            let buffer = |usage| {
                gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("bench timestamps"),
                    size: 16 * BATCH as u64,
                    usage,
                    mapped_at_creation: false,
                })
            };
            Stamps {
                queries: gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("bench timestamps"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2 * BATCH as u32,
                }),
                resolve: buffer(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC),
                readback: buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST),
                period_ns: f64::from(gpu.queue.get_timestamp_period()),
            }
        });
        Self { gpu, stamps }
    }

    /// How repetitions are timed, as printed and written to the JSON.
    pub(crate) fn protocol(&self, opts: &Options) -> &'static str {
        if self.stamps.is_none() {
            "host clock around each repetition's submission and wait"
        } else if opts.wait_each {
            "one submission per repetition, waited for"
        } else {
            "repetitions back to back, up to 256 per submission"
        }
    }

    /// An empty compute pass that writes timestamp `index` at its end (once every earlier
    /// command has finished).
    fn stamp(st: &Stamps, encoder: &mut wgpu::CommandEncoder, index: u32) {
        encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("bench timestamp"),
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set: &st.queries,
                beginning_of_pass_write_index: None,
                end_of_pass_write_index: Some(index),
            }),
        });
    }

    /// Records `n` repetitions from `first` back to back in one submission, waits, and
    /// returns each one's GPU time in milliseconds (without timestamp queries: one
    /// submission per repetition, host time from submission to the end of the wait).
    fn batch(
        &self,
        first: usize,
        n: usize,
        sets: usize,
        record: &mut impl FnMut(&mut wgpu::CommandEncoder, usize),
    ) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
        let device = &self.gpu.device;
        let Some(st) = &self.stamps else {
            let mut times = Vec::with_capacity(n);
            for i in 0..n {
                let mut encoder = device.create_command_encoder(&Default::default());
                record(&mut encoder, (first + i) % sets);
                let commands = encoder.finish();
                let started = Instant::now();
                self.gpu.queue.submit([commands]);
                device.poll(wgpu::PollType::wait_indefinitely())?;
                times.push(started.elapsed().as_secs_f64() * 1e3);
            }
            return Ok(times);
        };
        let mut encoder = device.create_command_encoder(&Default::default());
        for i in 0..n {
            Self::stamp(st, &mut encoder, 2 * i as u32);
            record(&mut encoder, (first + i) % sets);
            Self::stamp(st, &mut encoder, 2 * i as u32 + 1);
        }
        let bytes = 16 * n as u64;
        encoder.resolve_query_set(&st.queries, 0..2 * n as u32, &st.resolve, 0);
        encoder.copy_buffer_to_buffer(&st.resolve, 0, &st.readback, 0, bytes);
        self.gpu.queue.submit([encoder.finish()]);
        let slice = st.readback.slice(..bytes);
        slice.map_async(wgpu::MapMode::Read, |r| r.expect("map timestamps"));
        device.poll(wgpu::PollType::wait_indefinitely())?;
        let times = {
            let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&slice.get_mapped_range()?);
            ticks
                .chunks_exact(2)
                .map(|pair| pair[1].wrapping_sub(pair[0]) as f64 * st.period_ns * 1e-6)
                .collect()
        };
        st.readback.unmap();
        Ok(times)
    }

    pub(crate) fn median_ms(
        &self,
        opts: &Options,
        warm_up: Duration,
        sets: usize,
        mut record: impl FnMut(&mut wgpu::CommandEncoder, usize),
    ) -> Result<f64, Box<dyn std::error::Error>> {
        let batch = if opts.wait_each { 1 } else { BATCH };
        // Warm-up: at least `--warmup` repetitions and at least `warm_up` of wall time, so a
        // GPU that lowered its clocks while the host prepared the case has raised them again.
        // Batches double so that the GPU, not the host's submit-and-wait, fills that time.
        let started = Instant::now();
        let mut rep = 0;
        let mut n = opts.warmup.max(1);
        while rep < opts.warmup || started.elapsed() < warm_up {
            let n_now = n.min(batch);
            self.batch(rep, n_now, sets, &mut record)?;
            rep += n_now;
            n *= 2;
        }
        let mut times = Vec::with_capacity(opts.reps);
        while times.len() < opts.reps {
            let n = batch.min(opts.reps - times.len());
            times.extend(self.batch(rep, n, sets, &mut record)?);
            rep += n;
        }
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    }
}
