// Training forward, pass 2: `merge_rows()` invocations per channel merge that channel's
// partials (all pieces, all chunks) as a tree in fixed order (Chan, `row_tree.wgsl`), the
// means in two floats, writes the saved mean and inverse standard deviation, and the
// per-channel coefficients that `normalize.wgsl` applies:
//   chan[c]     = (shift, scale, bias, 0)   with y = (x - shift) * scale + bias
//   chan[C + c] = (mean, biased variance, count, 0)   read by `running_update.wgsl`
// (written by the `running_channel` hook; not by `stats_finalize_running`)
// (`forward_channel` in common.wgsl).
// Two kernels from this file: `stats_finalize` (with `running_none.wgsl` appended: the
// running statistics are `running_update.wgsl`'s) and, where the device binds nine storage
// buffers, `stats_finalize_running` (with `stats_finalize_running.wgsl` and
// `running_stats.wgsl`: each channel's running statistics updated here, and the count by
// the first invocation, one dispatch less; for a fixed momentum only, whose update reads no
// count).
// CPU twin: `reference::batch_stats` and `reference::forward` (`reference::update_running`).

@group(0) @binding(1) var<storage, read_write> partials: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> gamma: array<f32>;
@group(0) @binding(3) var<storage, read_write> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> chan: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> save_mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> save_invstd: array<f32>;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tasks = merge_tasks();
    if (linear_workgroup(wid, nwg) == 0u && lid == 0u) {
        running_count();
    }
    for (var g = linear_workgroup(wid, nwg); g < tasks; g = g + nwg.x * nwg.y) {
        let t = merge_task(g, lid);
        let c = t.c;
        var m = welford_empty();
        if (c < p.channels) {
            for (var j = t.row; j < p.slots; j = j + t.rows) {
                m = merged_push(m, partials[c * p.slots + j]);
            }
        }
        m = welford_rows(lid, WG / t.rows, m);
        if (t.row == 0u && c < p.channels) {
            var scale = 1.0;
            var shift = 0.0;
            if ((p.flags & FLAG_AFFINE) != 0u) {
                scale = gamma[c];
                shift = beta[c];
            }
            let f = forward_channel(m, scale, shift);
            save_mean[c] = f.mean;
            save_invstd[c] = f.invstd;
            chan[c] = f.coeffs;
            running_channel(c, f.stats);
        }
    }
}
