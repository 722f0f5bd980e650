// Per-channel statistics records (count, mean of x - shift, variance, shift): one invocation per
// channel merges channel c's `slots` records of `a`, then (FLAG_MERGE_B) its record of `b`,
// in that order (Chan), into out[c]. Exports the partial passes' output as one record per
// channel, and merges statistics of micro-batches or devices.
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
    let stride = nwg.x * nwg.y * WG;
    for (var c = linear_workgroup(wid, nwg) * WG + lid; c < p.channels; c = c + stride) {
        var m = welford_empty();
        for (var j = 0u; j < p.slots; j = j + 1u) {
            m = merged_push(m, a[c * p.slots + j]);
        }
        if ((p.flags & FLAG_MERGE_B) != 0u) {
            m = merged_push(m, b[c]);
        }
        out[c] = welford_record(m);
    }
}
