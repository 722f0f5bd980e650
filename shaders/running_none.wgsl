// Appended to `stats_finalize.wgsl` for the `stats_finalize` kernel: no running update
// there (`running_update.wgsl` dispatches after it where there is one).

fn running_count() {}

fn running_channel(c: u32, s: vec4<f32>) {}
