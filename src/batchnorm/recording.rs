//! Recording a call's steps into the caller's encoder: one compute pass per call, or with a
//! [`DispatchProfiler`] one timed pass per dispatch.

use super::*;

impl BatchNorm {
    /// Records `steps` in one compute pass named `{label}.{what}`, or with a profiler one
    /// pass per step, each timed. Refused, with nothing recorded, where the profiler is
    /// full or of another device.
    pub(super) fn record(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        what: &str,
        steps: &[Step<'_>],
    ) -> Result<()> {
        let label = format!("{}.{what}", self.label);
        match &self.profiler {
            None => record(encoder, &label, steps),
            Some(p) => {
                let first = p.reserve(&self.device, &label, steps.iter().map(Step::describe))?;
                record_profiled(encoder, &label, steps, p, first);
            }
        }
        Ok(())
    }
}

/// Records `steps` in order into one compute pass labelled `label`, each dispatch in a
/// debug group named by its kernel, so a GPU capture or profiler shows which layer ran which
/// kernel. Called only once every step exists, so a call that fails records nothing.
fn record(encoder: &mut wgpu::CommandEncoder, label: &str, steps: &[Step<'_>]) {
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: None,
    });
    for step in steps {
        step.dispatch(&mut pass);
    }
}

/// As [`record`], one compute pass per step, each with the timestamp pair `first + 2 i`,
/// `first + 2 i + 1` of `profiler` (reserved by the caller).
fn record_profiled(
    encoder: &mut wgpu::CommandEncoder,
    label: &str,
    steps: &[Step<'_>],
    profiler: &DispatchProfiler,
    first: u32,
) {
    for (i, step) in steps.iter().enumerate() {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(label),
            timestamp_writes: Some(profiler.writes(first + 2 * i as u32)),
        });
        step.dispatch(&mut pass);
    }
}
