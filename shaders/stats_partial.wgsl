// Training forward, pass 1: Welford partials of one run (chunk) of one channel per workgroup.
// Values are shifted by the channel's first element so that data whose mean is far from zero
// keeps its precision (x - shift is exact while x and shift are within a factor of two).
// Output: partials[c * chunks + chunk] = (count, mean of x - shift, M2, shift).
// CPU twin: `reference::batch_stats`.

@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<vec4<f32>>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = linear_workgroup(wid, nwg);
    if (g >= p.channels * p.chunks) {
        return;
    }
    let c = g / p.chunks;
    let chunk = g - c * p.chunks;
    let shift = x[elem_index(c, 0u)];
    let start = chunk * p.chunk_len;
    let end = min(start + p.chunk_len, p.count);
    var w = welford_empty();
    for (var k = start + lid; k < end; k = k + WG) {
        w = welford_push(w, x[elem_index(c, k)] - shift);
    }
    let r = reduce_welford(lid, w);
    if (lid == 0u) {
        partials[g] = vec4<f32>(r.n, r.mean, r.m2, shift);
    }
}
