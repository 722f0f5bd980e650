// Appended to the kernels that make the statistics (`stats_finalize.wgsl`,
// `forward_fused.wgsl`, `forward_thin.wgsl`) where they leave the running statistics to
// `running_update.wgsl`: the no-op twins of the hooks in `running_stats.wgsl`.

fn running_count() {}

fn running_channel(c: u32, s: vec4<f32>) {}
