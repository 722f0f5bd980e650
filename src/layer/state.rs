//! A layer's state on the host, as PyTorch's `state_dict()`: read back and loaded.

use super::BatchNormLayer;
use crate::buffers::read_bytes;
use crate::error::{BatchNormError, Result};

/// A layer's state on the host, with the fields of PyTorch's `state_dict()` of a batch-norm
/// module: `weight` and `bias` when affine, `running_mean`, `running_var` and
/// `num_batches_tracked` when the running statistics are tracked (`None` otherwise).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerState {
    /// gamma, `C` values.
    pub weight: Option<Vec<f32>>,
    /// beta, `C` values.
    pub bias: Option<Vec<f32>>,
    /// Running mean, `C` values.
    pub running_mean: Option<Vec<f32>>,
    /// Running (unbiased) variance, `C` values.
    pub running_var: Option<Vec<f32>>,
    /// Training forwards seen (PyTorch's int64).
    pub num_batches_tracked: Option<u64>,
}

impl LayerState {
    /// The state's per-channel tensors by their PyTorch key, in `state_dict()` order.
    pub fn channel_tensors(&self) -> [(&'static str, Option<&Vec<f32>>); 4] {
        [
            ("weight", self.weight.as_ref()),
            ("bias", self.bias.as_ref()),
            ("running_mean", self.running_mean.as_ref()),
            ("running_var", self.running_var.as_ref()),
        ]
    }
}

impl BatchNormLayer {
    /// The layer's state, read back after all work submitted to `queue` so far (blocks).
    pub fn state(&self, queue: &wgpu::Queue) -> Result<LayerState> {
        let o = &self.owned;
        let mut slices = Vec::new();
        if let Some((g, b)) = &o.weight_bias {
            slices.extend([g.slice(..), b.slice(..)]);
        }
        if let Some((m, v, t)) = &o.running {
            slices.extend([m.slice(..), v.slice(..), t.slice(..)]);
        }
        let mut read = read_bytes(self.bn.device(), queue, &slices)?.into_iter();
        let mut floats = || Some(bytemuck::pod_collect_to_vec(&read.next()?));
        let mut state = LayerState::default();
        if o.weight_bias.is_some() {
            (state.weight, state.bias) = (floats(), floats());
        }
        if o.running.is_some() {
            (state.running_mean, state.running_var) = (floats(), floats());
            state.num_batches_tracked = read.next().map(|b| bytemuck::pod_read_unaligned(&b[..8]));
        }
        Ok(state)
    }

    /// Writes `state` into the layer's buffers through `queue.write_buffer` (done at the
    /// queue's next submission, before its command buffers). `state` must hold exactly the
    /// tensors the configuration has (see [`LayerState`]), each of `C` values; on an error
    /// nothing is written.
    pub fn load_state(&mut self, queue: &wgpu::Queue, state: &LayerState) -> Result<()> {
        let cfg = *self.bn.config();
        let c = cfg.num_features;
        let wants = |key: &str| match key {
            "weight" | "bias" => cfg.affine,
            _ => cfg.track_running_stats,
        };
        for (key, values) in state.channel_tensors() {
            check_present(key, values.is_some(), wants(key))?;
            if let Some(v) = values.filter(|v| v.len() != c) {
                return Err(BatchNormError::CheckpointShape {
                    key: key.to_string(),
                    expected: vec![c],
                    got: vec![v.len()],
                });
            }
        }
        let tracked = state.num_batches_tracked;
        check_present(
            "num_batches_tracked",
            tracked.is_some(),
            wants("num_batches_tracked"),
        )?;
        let o = &self.owned;
        let write = |buffer: &wgpu::Buffer, values: &Option<Vec<f32>>| {
            if let Some(v) = values {
                queue.write_buffer(buffer, 0, bytemuck::cast_slice(v));
            }
        };
        if let Some((g, b)) = &o.weight_bias {
            write(g, &state.weight);
            write(b, &state.bias);
        }
        if let (Some((m, v, t)), Some(n)) = (&o.running, tracked) {
            write(m, &state.running_mean);
            write(v, &state.running_var);
            queue.write_buffer(t, 0, &n.to_le_bytes());
        }
        Ok(())
    }
}

/// A state tensor is there exactly when the configuration has it.
fn check_present(key: &str, present: bool, wanted: bool) -> Result<()> {
    match (present, wanted) {
        (false, true) => Err(BatchNormError::CheckpointMissingKey {
            key: key.to_string(),
        }),
        (true, false) => Err(BatchNormError::CheckpointValue {
            key: key.to_string(),
            reason: "the layer's configuration has no such tensor (affine or track_running_stats is off)".to_string(),
        }),
        _ => Ok(()),
    }
}
