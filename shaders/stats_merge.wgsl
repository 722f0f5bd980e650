// Per-channel statistics records (count, mean of x - shift, variance, shift): `merge_rows()`
// invocations per channel merge channel c's `slots` records of `a` as a tree (`row_tree.wgsl`),
// then (FLAG_MERGE_B) its record of `b`, in that order (Chan), into out[c]. Exports the partial
// passes' output as one record per channel, and merges statistics of micro-batches or devices.
// CPU twin: `ChannelStats::merge`.

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
        var m = welford_empty();
        if (c < p.channels) {
            for (var j = t.row; j < p.slots; j = j + t.rows) {
                m = merged_push(m, a[c * p.slots + j]);
            }
        }
        m = welford_rows(lid, WG / t.rows, m);
        if (t.row == 0u && c < p.channels) {
            if ((p.flags & FLAG_MERGE_B) != 0u) {
                m = merged_push(m, b[c]);
            }
            out[c] = welford_record(m);
        }
    }
}
