//! `--per-dispatch`: each pass recorded again by a batch norm with a
//! [`DispatchProfiler`], one timed compute pass per dispatch, and the median GPU time of
//! each of its dispatches (the statistics' partial pass apart from their finalize, say).
//! The dispatches' times need not add up to the whole call's: the gaps between passes are
//! in neither, and a pass per dispatch may cost a little more.

use wgpu_batchnorm::{Dispatch, DispatchProfiler, HeadlessGpu};

/// Dispatches the profiler holds between readings (repetitions per submission: this over a
/// call's dispatches).
pub(crate) const CAPACITY: u32 = 1024;

/// One dispatch of a pass and its median GPU time.
pub(crate) struct DispatchMedian {
    pub(crate) dispatch: Dispatch,
    pub(crate) ms: f64,
}

/// Records `reps` repetitions with `record` (a call of the batch norm that holds
/// `profiler`, on input set `rep % sets`), as many per submission as the profiler holds,
/// and returns each dispatch's median over them, in the call's order.
pub(crate) fn dispatch_medians(
    gpu: &HeadlessGpu,
    profiler: &DispatchProfiler,
    reps: usize,
    sets: usize,
    mut record: impl FnMut(&mut wgpu::CommandEncoder, usize),
) -> Result<Vec<DispatchMedian>, Box<dyn std::error::Error>> {
    let mut samples: Vec<(Dispatch, Vec<f64>)> = Vec::new();
    let mut per_call = 0;
    let mut rep = 0;
    while rep < reps.max(1) {
        // The first submission holds one call, to learn its dispatches.
        let n = match per_call {
            0 => 1,
            k => (profiler.capacity() as usize / k).clamp(1, reps - rep),
        };
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        for i in 0..n {
            record(&mut encoder, (rep + i) % sets);
        }
        gpu.queue.submit([encoder.finish()]);
        let times = profiler.read(&gpu.queue)?;
        if per_call == 0 {
            per_call = times.len().max(1);
            samples = times.iter().map(|t| (t.dispatch, Vec::new())).collect();
        }
        for call in times.chunks(per_call) {
            for (slot, t) in samples.iter_mut().zip(call) {
                assert_eq!(slot.0, t.dispatch, "every repetition dispatches alike");
                slot.1.push(t.ms);
            }
        }
        rep += n;
    }
    Ok(samples
        .into_iter()
        .map(|(dispatch, mut ms)| {
            ms.sort_by(f64::total_cmp);
            DispatchMedian {
                dispatch,
                ms: ms[ms.len() / 2],
            }
        })
        .collect())
}
