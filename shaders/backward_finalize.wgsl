// Backward, pass 2: `merge_rows()` invocations per channel add that channel's partial sums (all
// pieces, all chunks) as a tree in fixed order (`row_tree.wgsl`), writes grad beta = sum dy and
// grad gamma = sum dy * xhat (when affine), and the coefficients chan[c] = (mean, a, k, m) of dx =
// a * (dy - k * (x - mean) - m) (`backward_channel` in common.wgsl).
// CPU twin: `reference::backward`.

@group(0) @binding(1) var<storage, read_write> partials: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> chan: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(4) var<storage, read_write> dbeta: array<f32>;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tasks = merge_tasks();
    for (var g = linear_workgroup(wid, nwg); g < tasks; g = g + nwg.x * nwg.y) {
        let t = merge_task(g, lid);
        let c = t.c;
        var s = vec4<f32>(0.0);
        if (c < p.channels) {
            for (var j = t.row; j < p.slots; j = j + t.rows) {
                s = sums_merge(s, partials[c * p.slots + j]);
            }
        }
        s = sums_rows(lid, WG / t.rows, s);
        if (t.row == 0u && c < p.channels) {
            let f = backward_channel(sums_value(s), chan[p.channels + c]);
            if ((p.flags & FLAG_AFFINE) != 0u) {
                let gb = grads_out(f, vec2<f32>(dgamma[c], dbeta[c]));
                dgamma[c] = gb.x;
                dbeta[c] = gb.y;
            }
            chan[c] = f.coeffs;
        }
    }
}
