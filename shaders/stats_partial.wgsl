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
        var k = start + lid;
        // Four loads in flight before their pushes, in the order of one at a time (the same
        // result to the bit; BENCHMARKS.md, "Loads in flight").
        for (; k + 3u * WG < end; k = k + 4u * WG) {
            let i0 = walk_index(walk, c) - p.base;
            walk = walk_next(walk);
            let i1 = walk_index(walk, c) - p.base;
            walk = walk_next(walk);
            let i2 = walk_index(walk, c) - p.base;
            walk = walk_next(walk);
            let i3 = walk_index(walk, c) - p.base;
            walk = walk_next(walk);
            let v0 = f32(x[i0]);
            let v1 = f32(x[i1]);
            let v2 = f32(x[i2]);
            let v3 = f32(x[i3]);
            w = welford_push(welford_push(welford_push(welford_push(w, v0), v1), v2), v3);
        }
        for (; k < end; k = k + WG) {
            w = welford_push(w, f32(x[walk_index(walk, c) - p.base]));
            walk = walk_next(walk);
        }
        let r = reduce_welford(lid, w);
        if (lid == 0u) {
            partials[c * p.slots + p.slot_base + chunk] = welford_record(r);
        }
    }
}
