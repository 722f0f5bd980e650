// Eval forward with running statistics, where the normalize pass does not compute the
// coefficients itself (`normalize_vec4_eval`: the scalar pass, invocations that walk the
// channels, more recomputation than the tuning allows, or a device that binds fewer than
// 7 storage buffers): each channel's coefficients (`coeffs_running.wgsl`, appended) stored
// in chan[c] for `coeffs_chan.wgsl`.
// CPU twin: `reference::forward` (eval branch).

// running_mean, running_var, gamma, beta (`coeffs_running.wgsl`) at bindings 1 to 4.
const COEFFS: u32 = 1u;
@group(0) @binding(5) var<storage, read_write> chan: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let stride = nwg.x * nwg.y * WG;
    for (var c = linear_workgroup(wid, nwg) * WG + lid; c < p.channels; c = c + stride) {
        chan[c] = coefficients(c);
    }
}
