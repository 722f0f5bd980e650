// Training forward, pass 1: Welford partials of one run (chunk) of one channel's elements
// within the bound piece, one per workgroup, the mean in two floats: shifted sums per
// invocation (`shifted_sums.wgsl`), merged across the workgroup (Chan).
// Output: partials[c * slots + slot_base + chunk] = (count, mean - shift, biased
// variance, shift) with shift the mean rounded to f32 (`welford_record`);
// count 0 for a chunk past the channel's elements in this piece. Specialized with
// INVOCATION_RECORDS (`Plan::records`): each invocation's own record instead, at
// chunk * WG + lid, with no shared-memory merge and so no barrier in the kernel.
// CPU twin: `reference::batch_stats`.

@group(0) @binding(1) var<storage, read> x: array<T>;
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
        // Shifted sums per invocation (shifted_sums.wgsl), k its first value; four loads in
        // flight before their pushes (BENCHMARKS.md, "Loads in flight").
        var walk = walk_from(start + lid, WG);
        var k = start + lid;
        var first = 0.0;
        if (k < end) {
            first = f32(x[walk_index(walk, c) - p.base]);
        }
        var sh = shifted_empty(first);
        for (; k + 3u * WG < end; k = k + 4u * WG) {
            let i = walk_take4(&walk, c) - vec4<u32>(p.base);
            let v0 = f32(x[i.x]);
            let v1 = f32(x[i.y]);
            let v2 = f32(x[i.z]);
            let v3 = f32(x[i.w]);
            sh = shifted_push4(sh, vec4<f32>(v0, v1, v2, v3));
        }
        for (; k < end; k = k + WG) {
            sh = shifted_push(sh, f32(x[walk_index(walk, c) - p.base]));
            walk = walk_next(walk);
        }
        var w = shifted_welford(sh);
        if (!shifted_finite(sh)) {
            // Overflow of d^2, or a NaN or infinite value: the Welford update, value by value.
            w = welford_empty();
            var redo = walk_from(start + lid, WG);
            for (var kk = start + lid; kk < end; kk = kk + WG) {
                w = welford_push(w, f32(x[walk_index(redo, c) - p.base]));
                redo = walk_next(redo);
            }
        }
        if (INVOCATION_RECORDS) {
            partials[c * p.slots + p.slot_base + chunk * WG + lid] = welford_record(w);
        } else {
            let r = reduce_welford(lid, w);
            if (lid == 0u) {
                partials[c * p.slots + p.slot_base + chunk] = welford_record(r);
            }
        }
    }
}
