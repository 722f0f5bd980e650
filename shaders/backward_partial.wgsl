// Backward, pass 1: per (channel, chunk) workgroup, the partial sums over one run of the
// channel's elements within the bound piece
//   (sum dy, sum dy * (x - mean))
// with dy taken through the fused epilogue's ReLU when there is one.
// in fixed order, written to partials[c * slots + slot_base + chunk] (zero past the
// channel's elements in this piece); with INVOCATION_RECORDS, each invocation's own sums
// at chunk * WG + lid, no shared-memory merge, no barrier.
// CPU twin: `reference::backward`.

@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read> dy: array<T>;
@group(0) @binding(3) var<storage, read_write> chan: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> partials: array<vec4<f32>>;
// The forward's output, for the ReLU mask of a fused epilogue; an unused binding otherwise.
@group(0) @binding(5) var<storage, read> y: array<T>;

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
        let mean = chan[p.channels + c].x;
        let k_hi = first_k_at(c, p.base + p.len);
        let start = first_k_at(c, p.base) + chunk * p.chunk_len;
        let end = min(start + p.chunk_len, k_hi);
        var s = vec4<f32>(0.0);
        var walk = walk_from(start + lid, WG);
        var k = start + lid;
        // Four elements' loads in flight before their sums, in the order of one at a time
        // (BENCHMARKS.md, "Loads in flight").
        for (; k + 3u * WG < end; k = k + 4u * WG) {
            let iv = walk_take4(&walk, c) - vec4<u32>(p.base);
            let d = vec4<f32>(f32(dy[iv.x]), f32(dy[iv.y]), f32(dy[iv.z]), f32(dy[iv.w]));
            let xv = vec4<f32>(f32(x[iv.x]), f32(x[iv.y]), f32(x[iv.z]), f32(x[iv.w]));
            var yv = vec4<f32>(1.0);
            if ((p.flags & FLAG_RELU) != 0u) {
                yv = vec4<f32>(f32(y[iv.x]), f32(y[iv.y]), f32(y[iv.z]), f32(y[iv.w]));
            }
            s = backward_sums_add4(s, d, xv, yv, mean);
        }
        for (; k < end; k = k + WG) {
            let i = walk_index(walk, c) - p.base;
            walk = walk_next(walk);
            var g_out = f32(dy[i]);
            if ((p.flags & FLAG_RELU) != 0u) {
                g_out = through_epilogue(g_out, f32(y[i]));
            }
            s = sums_add(s, vec2<f32>(g_out, g_out * (f32(x[i]) - mean)));
        }
        if (INVOCATION_RECORDS) {
            partials[c * p.slots + p.slot_base + chunk * WG + lid] = s;
        } else {
            let r = reduce_sums(lid, s);
            if (lid == 0u) {
                partials[c * p.slots + p.slot_base + chunk] = r;
            }
        }
    }
}
