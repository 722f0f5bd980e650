// Backward partial sums, (hi, hi, lo, lo) of `sums_add` in common.wgsl: `merge_rows()` invocations
// per channel add channel c's `slots` records of `a` as a tree (`row_tree.wgsl`), then
// (FLAG_MERGE_B) its record of `b`, in that order, into out[c]. Folds each piece's partials into
// running records where the partials of all pieces would not fit one binding (`Plan::fold` in
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
    let tasks = merge_tasks();
    for (var g = linear_workgroup(wid, nwg); g < tasks; g = g + nwg.x * nwg.y) {
        let t = merge_task(g, lid);
        let c = t.c;
        var s = vec4<f32>(0.0);
        if (c < p.channels) {
            for (var j = t.row; j < p.slots; j = j + t.rows) {
                s = sums_merge(s, a[c * p.slots + j]);
            }
        }
        s = sums_rows(lid, WG / t.rows, s);
        if (t.row == 0u && c < p.channels) {
            if ((p.flags & FLAG_MERGE_B) != 0u) {
                s = sums_merge(s, b[c]);
            }
            out[c] = s;
        }
    }
}
