// Appended to `stats_finalize.wgsl` (then `running_stats.wgsl`, which defines the hooks)
// for the `stats_finalize_running` kernel: the running statistics' bindings after the
// finalize's own. Taken for a training forward with running statistics, a fixed momentum
// and no FLAG_SKIP_NON_FINITE (which decides over every channel first), on a device that
// binds nine storage buffers per stage; `running_update.wgsl` otherwise.

@group(0) @binding(7) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(8) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(9) var<storage, read_write> num_batches_tracked: array<vec2<u32>>;
