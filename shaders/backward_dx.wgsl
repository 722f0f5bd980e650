// Backward, last pass: dx = a * dy + b * (x - mean) + d with the per-channel coefficients
// chan[c] = (mean, a, b, d) from `backward_finalize.wgsl`. Grid-stride loop over the
// bound piece's elements.
// CPU twin: `reference::backward`.

@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> chan: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let stride = nwg.x * nwg.y * WG;
    for (var i = linear_workgroup(wid, nwg) * WG + lid; i < p.len; i = i + stride) {
        let q = chan[channel_of(p.base + i)];
        dx[i] = q.y * dy[i] + q.z * (x[i] - q.x) + q.w;
    }
}
