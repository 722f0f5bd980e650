// Training forward, pass 2: `merge_rows()` invocations per channel merge that channel's
// partials (all pieces, all chunks) as a tree in fixed order (Chan), the means in two floats,
// writes the saved mean and inverse standard deviation, and the
// per-channel coefficients that `normalize.wgsl` applies:
//   chan[c]     = (shift, scale, bias, 0)   with y = (x - shift) * scale + bias
//   chan[C + c] = (mean, biased variance, count, 0)   read by `running_update.wgsl`
// (`forward_channel` in common.wgsl).
// CPU twin: `reference::batch_stats` and `reference::forward`.

@group(0) @binding(1) var<storage, read_write> partials: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> gamma: array<f32>;
@group(0) @binding(3) var<storage, read_write> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> chan: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> save_mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> save_invstd: array<f32>;

var<workgroup> tile: array<vec4<f32>, WG>;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Invocation (row, lane) merges records row, row + rows, ... of channel block + lane;
    // then a shared-memory tree over the rows, in fixed order.
    let rows = merge_rows();
    let lanes = WG / rows;
    let lane = lid % lanes;
    let row = lid / lanes;
    let blocks = (p.channels + lanes - 1u) / lanes;
    for (var g = linear_workgroup(wid, nwg); g < blocks; g = g + nwg.x * nwg.y) {
        let c = g * lanes + lane;
        var m = welford_empty();
        if (c < p.channels) {
            for (var j = row; j < p.slots; j = j + rows) {
                m = merged_push(m, partials[c * p.slots + j]);
            }
        }
        tile[lid] = welford_pack(m);
        workgroupBarrier();
        // Loop bound from the uniform p.slots alone: the barriers stay in uniform control flow.
        for (var s = rows / 2u; s > 0u; s = s >> 1u) {
            if (row < s) {
                let t = welford_merge(welford_unpack(tile[lid]), welford_unpack(tile[lid + s * lanes]));
                tile[lid] = welford_pack(t);
            }
            workgroupBarrier();
        }
        if (row == 0u && c < p.channels) {
            let merged = welford_unpack(tile[lid]);
            var scale = 1.0;
            var shift = 0.0;
            if ((p.flags & FLAG_AFFINE) != 0u) {
                scale = gamma[c];
                shift = beta[c];
            }
            let f = forward_channel(merged, scale, shift);
            save_mean[c] = f.mean;
            save_invstd[c] = f.invstd;
            chan[c] = f.coeffs;
            chan[p.channels + c] = f.stats;
        }
        workgroupBarrier();
    }
}
