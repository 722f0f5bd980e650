// Backward, pass 0: per-channel statistics the backward passes use, in chan[C + c]:
//   (mean, invstd, gamma, 0)
// from the saved batch statistics (batch-statistics mode: `stat_b` is the saved invstd) or
// from the running statistics (eval mode: `stat_b` is running_var).
// CPU twin: `reference::backward`.

@group(0) @binding(1) var<storage, read_write> stat_a: array<f32>;
@group(0) @binding(2) var<storage, read_write> stat_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> gamma: array<f32>;
@group(0) @binding(4) var<storage, read_write> chan: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let stride = nwg.x * nwg.y * WG;
    for (var c = linear_workgroup(wid, nwg) * WG + lid; c < p.channels; c = c + stride) {
        var invstd = stat_b[c];
        if ((p.flags & FLAG_BATCH_STATS) == 0u) {
            invstd = 1.0 / sqrt(invstd + p.eps);
        }
        var g = 1.0;
        if ((p.flags & FLAG_AFFINE) != 0u) {
            g = gamma[c];
        }
        chan[p.channels + c] = vec4<f32>(stat_a[c], invstd, g, 0.0);
    }
}
