// Backward, pass 2: one invocation per channel adds that channel's partial sums (all pieces,
// all chunks) in fixed order, writes grad beta = sum dy and grad gamma = sum dy * xhat (when
// affine), and the coefficients chan[c] = (mean, a, k, m) of dx = a * (dy - k * (x - mean)
// - m) (`backward_channel` in common.wgsl).
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
    let stride = nwg.x * nwg.y * WG;
    for (var c = linear_workgroup(wid, nwg) * WG + lid; c < p.channels; c = c + stride) {
        var s = vec4<f32>(0.0);
        for (var j = 0u; j < p.slots; j = j + 1u) {
            s = sums_merge(s, partials[c * p.slots + j]);
        }
        let f = backward_channel(sums_value(s), chan[p.channels + c]);
        if ((p.flags & FLAG_AFFINE) != 0u) {
            let g = grads_out(f, vec2<f32>(dgamma[c], dbeta[c]));
            dgamma[c] = g.x;
            dbeta[c] = g.y;
        }
        chan[c] = f.coeffs;
    }
}
