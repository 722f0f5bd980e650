// Eval forward with running statistics: per-channel coefficients for `normalize.wgsl`:
//   chan[c] = (running_mean, gamma / sqrt(running_var + eps), beta, 0)
// so that y = (x - running_mean) * scale + beta.
// CPU twin: `reference::forward` (eval branch).

@group(0) @binding(1) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(2) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(3) var<storage, read_write> gamma: array<f32>;
@group(0) @binding(4) var<storage, read_write> beta: array<f32>;
@group(0) @binding(5) var<storage, read_write> chan: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let stride = nwg.x * nwg.y * WG;
    for (var c = linear_workgroup(wid, nwg) * WG + lid; c < p.channels; c = c + stride) {
        var g = 1.0;
        var b = 0.0;
        if ((p.flags & FLAG_AFFINE) != 0u) {
            g = gamma[c];
            b = beta[c];
        }
        let invstd = 1.0 / sqrt(running_var[c] + p.eps);
        chan[c] = vec4<f32>(running_mean[c], g * invstd, b, 0.0);
    }
}
