// Training forward, pass 1: Welford partials of one run (chunk) of one channel's elements
// within the bound piece, one per workgroup, the mean in two floats (`welford_push`).
// Output: partials[c * slots + slot_base + chunk] = (count, mean - shift, biased
// variance, shift) with shift the mean rounded to f32 (`welford_record`);
// count 0 for a chunk past the channel's elements in this piece.
// CPU twin: `reference::batch_stats`.

@group(0) @binding(1) var<storage, read_write> x: array<T>;
@group(0) @binding(2) var<storage, read_write> partials: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Workgroups loop over the (channel, chunk) tasks, so any grid size covers them all.
    let tasks = p.channels * p.chunks;
    for (var g = linear_workgroup(wid, nwg); g < tasks; g = g + nwg.x * nwg.y) {
        let c = g / p.chunks;
        let chunk = g - c * p.chunks;
        let k_lo = first_k_at(c, p.base);
        let k_hi = first_k_at(c, p.base + p.len);
        let start = k_lo + chunk * p.chunk_len;
        let end = min(start + p.chunk_len, k_hi);
        var w = welford_empty();
        var walk = walk_from(start + lid, WG);
        for (var k = start + lid; k < end; k = k + WG) {
            w = welford_push(w, f32(x[walk_index(walk, c) - p.base]));
            walk = walk_next(walk);
        }
        let r = reduce_welford(lid, w);
        if (lid == 0u) {
            partials[c * p.slots + p.slot_base + chunk] = welford_record(r);
        }
    }
}
