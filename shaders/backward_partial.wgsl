// Backward, pass 1: per (channel, chunk) workgroup, the partial sums
//   (sum dy, sum dy * (x - mean))
// in fixed order, written to partials[c * chunks + chunk].
// CPU twin: `reference::backward`.

@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> chan: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> partials: array<vec4<f32>>;

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
    let mean = chan[p.channels + c].x;
    let start = chunk * p.chunk_len;
    let end = min(start + p.chunk_len, p.count);
    var s = vec2<f32>(0.0);
    for (var k = start + lid; k < end; k = k + WG) {
        let i = elem_index(c, k);
        let g_out = dy[i];
        s = s + vec2<f32>(g_out, g_out * (x[i] - mean));
    }
    let r = reduce_sum2(lid, s);
    if (lid == 0u) {
        partials[g] = vec4<f32>(r, 0.0, 0.0);
    }
}
