// Training forward with one invocation per channel, for tensors (any layout) bound in one
// piece with few values per channel (at most `THIN_MAX_COUNT` in `src/batchnorm/path.rs`): each
// invocation runs Welford's algorithm over its channel's values (as the partial passes),
// computes the channel's statistics and coefficients as
// `stats_finalize.wgsl` does (`forward_channel`), and writes y as `normalize.wgsl` does,
// re-reading its few values. No workgroup reduction: a workgroup serves 256 channels, where
// `forward_fused.wgsl` would spend a whole workgroup on a channel of a few values.
// Same bindings as `forward_fused.wgsl`; hands chan[C + c] to `running_update.wgsl` (and
// not chan[c]: the coefficients stay in registers), or, as `forward_thin_running`, updates
// the running statistics itself (see `forward_fused.wgsl`).
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
    let stride = nwg.x * nwg.y * WG;
    for (var c = linear_workgroup(wid, nwg) * WG + lid; c < p.channels; c = c + stride) {
        // Four loads in flight before their pushes (BENCHMARKS.md, "Loads in flight"); the
        // same pushes in the same order as one at a time.
        var w = welford_empty();
        var walk = walk_from(0u, 1u);
        var k = 0u;
        for (; k + 4u <= p.count; k = k + 4u) {
            let i = walk_take4(&walk, c);
            let v = vec4<f32>(f32(x[i.x]), f32(x[i.y]), f32(x[i.z]), f32(x[i.w]));
            w = welford_push(welford_push(welford_push(welford_push(w, v.x), v.y), v.z), v.w);
        }
        for (; k < p.count; k = k + 1u) {
            w = welford_push(w, f32(x[walk_index(walk, c)]));
            walk = walk_next(walk);
        }
        var g = 1.0;
        var b = 0.0;
        if ((p.flags & FLAG_AFFINE) != 0u) {
            g = gamma[c];
            b = beta[c];
        }
        let f = forward_channel(record_welford(welford_record(w)), g, b);
        save_mean[c] = f.mean;
        save_invstd[c] = f.invstd;
        running_channel(c, f.stats);
        walk = walk_from(0u, 1u);
        k = 0u;
        for (; k + 4u <= p.count; k = k + 4u) {
            let i = walk_take4(&walk, c);
            let v = vec4<f32>(f32(x[i.x]), f32(x[i.y]), f32(x[i.z]), f32(x[i.w]));
            var zv = vec4<f32>(0.0);
            if ((p.flags & FLAG_RESIDUAL) != 0u) {
                zv = vec4<f32>(f32(z[i.x]), f32(z[i.y]), f32(z[i.z]), f32(z[i.w]));
            }
            y[i.x] = T(normalized(v.x, f.coeffs, zv.x));
            y[i.y] = T(normalized(v.y, f.coeffs, zv.y));
            y[i.z] = T(normalized(v.z, f.coeffs, zv.z));
            y[i.w] = T(normalized(v.w, f.coeffs, zv.w));
        }
        for (; k < p.count; k = k + 1u) {
            let i = walk_index(walk, c);
            walk = walk_next(walk);
            var zv = 0.0;
            if ((p.flags & FLAG_RESIDUAL) != 0u) {
                zv = f32(z[i]);
            }
            y[i] = T(normalized(f32(x[i]), f.coeffs, zv));
        }
    }
}
