// Backward partial sums, (hi, hi, lo, lo) of `sums_add` in common.wgsl: one invocation
// per channel adds channel c's `slots` records of `a`, then (FLAG_MERGE_B) its record of
// `b`, in that order, into out[c]. Folds each piece's partials into running records where
// the partials of all pieces would not fit one binding (`Plan::fold` in
// src/batchnorm/plan.rs); the backward's twin of `stats_merge.wgsl`.
// CPU twin: `reference::backward` (the sums of dy and dy * (x - mean)).

@group(0) @binding(1) var<storage, read_write> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;

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
            s = sums_merge(s, a[c * p.slots + j]);
        }
        if ((p.flags & FLAG_MERGE_B) != 0u) {
            s = sums_merge(s, b[c]);
        }
        out[c] = s;
    }
}
