// Appended to the kernels that make the statistics (`stats_finalize.wgsl`,
// `forward_fused.wgsl`, `forward_thin.wgsl`) where they leave the running statistics to
// `running_update.wgsl`: the twins of the hooks in `running_stats.wgsl`, which hand each
// channel's statistics s = (mean, biased variance, count, 0) to it in chan[C + c] (which
// the kernels that update the running statistics themselves do not write).

fn running_count() {}

fn running_channel(c: u32, s: vec4<f32>) {
    chan[p.channels + c] = s;
}
