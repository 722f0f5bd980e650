// Backward, pass 2: one invocation per channel adds that channel's partial sums (all pieces,
// all chunks) in fixed order, writes grad beta = sum dy and grad gamma = sum dy * xhat (when affine), and the
// coefficients of dx = a * dy + b * (x - mean) + d in chan[c] = (mean, a, b, d):
//   batch statistics: a = gamma * invstd, b = -a * invstd * dgamma / M, d = -a * dbeta / M
//   running statistics (eval): a = gamma * invstd_running, b = d = 0
// CPU twin: `reference::backward`.

@group(0) @binding(1) var<storage, read_write> partials: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> chan: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(4) var<storage, read_write> dbeta: array<f32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let stride = nwg.x * nwg.y * WG;
    for (var c = linear_workgroup(wid, nwg) * WG + lid; c < p.channels; c = c + stride) {
        var s = vec2<f32>(0.0);
        for (var j = 0u; j < p.slots; j = j + 1u) {
            s = s + partials[c * p.slots + j].xy;
        }
        let st = chan[p.channels + c];
        let mean = st.x;
        let invstd = st.y;
        let a = st.z * invstd;
        // An empty batch has zero gradients (the statistics it read are not defined).
        let empty = p.count == 0u;
        let sum_dy = select(s.x, 0.0, empty);
        let sum_dy_xhat = select(s.y * invstd, 0.0, empty);
        if ((p.flags & FLAG_AFFINE) != 0u) {
            dgamma[c] = sum_dy_xhat;
            dbeta[c] = sum_dy;
        }
        if ((p.flags & FLAG_BATCH_STATS) != 0u) {
            let inv_m = 1.0 / f32(p.count);
            chan[c] = vec4<f32>(mean, a, -a * invstd * sum_dy_xhat * inv_m, -a * sum_dy * inv_m);
        } else {
            chan[c] = vec4<f32>(mean, a, 0.0, 0.0);
        }
    }
}
