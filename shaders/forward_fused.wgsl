// Training forward in one pass per channel, for tensors bound in one piece whose channels
// each fit one chunk of the partial pass (many channels, or few values per channel) and
// whose channel is not the innermost axis: one workgroup per channel runs
// `stats_partial.wgsl` (one chunk), `stats_finalize.wgsl` (one partial) and
// `normalize.wgsl` restricted to its channel, with the same arithmetic in the same order,
// so the statistics and y are those of the three passes. The second read of the channel
// follows the first within the workgroup, so it comes from cache rather than memory, and two
// dispatches and their barriers are saved. Hands chan[C + c] to `running_update.wgsl`;
// built a second time as `forward_fused_running` (with `one_pass_running.wgsl` and
// `running_stats.wgsl` appended, `running_none.wgsl` otherwise), which updates the running
// statistics itself as `stats_finalize_running` does.
// CPU twin: `reference::batch_stats` and `reference::forward`.

@group(0) @binding(1) var<storage, read_write> x: array<T>;
@group(0) @binding(2) var<storage, read_write> gamma: array<f32>;
@group(0) @binding(3) var<storage, read_write> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> chan: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> save_mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> save_invstd: array<f32>;
@group(0) @binding(7) var<storage, read_write> y: array<T>;
// The residual z of `relu(bn(x) + z)` (FLAG_RESIDUAL); an unused binding otherwise.
@group(0) @binding(8) var<storage, read_write> z: array<T>;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    if (linear_workgroup(wid, nwg) == 0u && lid == 0u) {
        running_count();
    }
    for (var c = linear_workgroup(wid, nwg); c < p.channels; c = c + nwg.x * nwg.y) {
        // Statistics, as stats_partial.wgsl with one chunk (the piece is the whole tensor):
        // shifted sums per invocation, four loads in flight, Welford where not finite.
        var walk = walk_from(lid, WG);
        var k = lid;
        var first = 0.0;
        if (k < p.count) {
            first = f32(x[walk_index(walk, c)]);
        }
        var sh = shifted_empty(first);
        for (; k + 3u * WG < p.count; k = k + 4u * WG) {
            let i = walk_take4(&walk, c);
            let v0 = f32(x[i.x]);
            let v1 = f32(x[i.y]);
            let v2 = f32(x[i.z]);
            let v3 = f32(x[i.w]);
            sh = shifted_push4(sh, vec4<f32>(v0, v1, v2, v3));
        }
        for (; k < p.count; k = k + WG) {
            sh = shifted_push(sh, f32(x[walk_index(walk, c)]));
            walk = walk_next(walk);
        }
        var w = shifted_welford(sh);
        if (!shifted_finite(sh)) {
            w = welford_empty();
            var redo = walk_from(lid, WG);
            for (var kk = lid; kk < p.count; kk = kk + WG) {
                w = welford_push(w, f32(x[walk_index(redo, c)]));
                redo = walk_next(redo);
            }
        }
        let r = reduce_welford(lid, w);
        // Coefficients, as stats_finalize.wgsl with one partial (valid in invocation 0),
        // handed to the whole workgroup.
        var coeffs = vec4<f32>(0.0);
        if (lid == 0u) {
            var g = 1.0;
            var b = 0.0;
            if ((p.flags & FLAG_AFFINE) != 0u) {
                g = gamma[c];
                b = beta[c];
            }
            let f = forward_channel(record_welford(welford_record(r)), g, b);
            save_mean[c] = f.mean;
            save_invstd[c] = f.invstd;
            running_channel(c, f.stats);
            coeffs = f.coeffs;
        }
        let q = broadcast_first(lid, coeffs);
        // y, as normalize.wgsl.
        walk = walk_from(lid, WG);
        for (var k = lid; k < p.count; k = k + WG) {
            let i = walk_index(walk, c);
            walk = walk_next(walk);
            var zv = 0.0;
            if ((p.flags & FLAG_RESIDUAL) != 0u) {
                zv = f32(z[i]);
            }
            y[i] = T(normalized(f32(x[i]), q, zv));
        }
    }
}
