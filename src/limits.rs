//! The device limits the kernels need, stated once: checked by `BatchNorm::new` and
//! requested exactly by a test.

use crate::error::{BatchNormError, Result};
use crate::kernels::WORKGROUP_SIZE;

/// The smallest limits the crate runs under: wgpu's `downlevel_defaults` (GLES 3.1 class
/// devices) with the four the kernels need raised to their needs: 6 storage buffers per
/// shader stage, workgroups of 256 invocations in x, and 4 KiB of workgroup memory.
/// `BatchNorm::new` refuses a device below any of the four with
/// [`BatchNormError::UnsupportedDevice`]. Everything else adapts: devices with fewer than
/// 8 storage buffers per stage use the separate passes instead of the one-pass kernels,
/// and tensors beyond `max_storage_buffer_binding_size` run in pieces. WebGPU's defaults
/// (`wgpu::Limits::default()`) are above these.
pub fn minimum_limits() -> wgpu::Limits {
    wgpu::Limits {
        max_storage_buffers_per_shader_stage: 6,
        max_compute_invocations_per_workgroup: WORKGROUP_SIZE,
        max_compute_workgroup_size_x: WORKGROUP_SIZE,
        max_compute_workgroup_storage_size: WORKGROUP_SIZE * 16,
        ..wgpu::Limits::downlevel_defaults()
    }
}

/// Whether `have` meets the four limits the kernels need (see [`minimum_limits`]).
pub(crate) fn check_limits(have: &wgpu::Limits) -> Result<()> {
    let need = minimum_limits();
    let pairs = [
        (
            "max_storage_buffers_per_shader_stage",
            have.max_storage_buffers_per_shader_stage,
            need.max_storage_buffers_per_shader_stage,
        ),
        (
            "max_compute_invocations_per_workgroup",
            have.max_compute_invocations_per_workgroup,
            need.max_compute_invocations_per_workgroup,
        ),
        (
            "max_compute_workgroup_size_x",
            have.max_compute_workgroup_size_x,
            need.max_compute_workgroup_size_x,
        ),
        (
            "max_compute_workgroup_storage_size",
            have.max_compute_workgroup_storage_size,
            need.max_compute_workgroup_storage_size,
        ),
    ];
    for (name, have, need) in pairs {
        if have < need {
            return Err(BatchNormError::UnsupportedDevice(format!(
                "{name} is {have}, the kernels need at least {need}"
            )));
        }
    }
    Ok(())
}
