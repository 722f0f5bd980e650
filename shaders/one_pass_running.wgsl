// Appended to `forward_fused.wgsl` or `forward_thin.wgsl` (then `running_stats.wgsl`,
// which defines the hooks) for the `forward_fused_running` and `forward_thin_running`
// kernels: the running statistics' bindings after the one-pass kernel's own. Taken as
// `stats_finalize_running` is, on a device that binds eleven storage buffers per stage.

@group(0) @binding(9) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(10) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(11) var<storage, read_write> num_batches_tracked: array<vec2<u32>>;
