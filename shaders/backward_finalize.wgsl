// Backward, pass 2: `merge_rows()` invocations per channel add that channel's partial sums
// (all pieces, all chunks) as a tree in fixed order, writes grad beta = sum dy and grad gamma = sum dy * xhat (when
// affine), and the coefficients chan[c] = (mean, a, k, m) of dx = a * (dy - k * (x - mean)
// - m) (`backward_channel` in common.wgsl).
// CPU twin: `reference::backward`.

@group(0) @binding(1) var<storage, read_write> partials: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> chan: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(4) var<storage, read_write> dbeta: array<f32>;

var<workgroup> tile: array<vec4<f32>, WG>;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Invocation (row, lane) sums records row, row + rows, ... of channel block + lane;
    // then a shared-memory tree over the rows, in fixed order.
    let rows = merge_rows();
    let lanes = WG / rows;
    let lane = lid % lanes;
    let row = lid / lanes;
    let blocks = (p.channels + lanes - 1u) / lanes;
    for (var g = linear_workgroup(wid, nwg); g < blocks; g = g + nwg.x * nwg.y) {
        let c = g * lanes + lane;
        var s = vec4<f32>(0.0);
        if (c < p.channels) {
            for (var j = row; j < p.slots; j = j + rows) {
                s = sums_merge(s, partials[c * p.slots + j]);
            }
        }
        tile[lid] = s;
        workgroupBarrier();
        // Loop bound from the uniform p.slots alone: the barriers stay in uniform control flow.
        for (var h = rows / 2u; h > 0u; h = h >> 1u) {
            if (row < h) {
                tile[lid] = sums_merge(tile[lid], tile[lid + h * lanes]);
            }
            workgroupBarrier();
        }
        if (row == 0u && c < p.channels) {
            let f = backward_channel(sums_value(tile[lid]), chan[p.channels + c]);
            if ((p.flags & FLAG_AFFINE) != 0u) {
                let gb = grads_out(f, vec2<f32>(dgamma[c], dbeta[c]));
                dgamma[c] = gb.x;
                dbeta[c] = gb.y;
            }
            chan[c] = f.coeffs;
        }
        workgroupBarrier();
    }
}
