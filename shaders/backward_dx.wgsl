// Backward, last pass: dx = a * (dy - k * (x - mean) - m), or a * dy in eval (dy through the
// fused epilogue's ReLU, which also gives the residual's gradient dz) with the per-channel
// coefficients chan[c] = (mean, a, k, m) from `backward_finalize.wgsl` (see
// `backward_channel` and `dx_value` in `common.wgsl`). Grid-stride loop over the
// bound piece's elements.
// CPU twin: `reference::backward`.

@group(0) @binding(1) var<storage, read_write> x: array<T>;
@group(0) @binding(2) var<storage, read_write> dy: array<T>;
@group(0) @binding(3) var<storage, read_write> chan: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> dx: array<T>;
// The forward's output (ReLU mask) and the residual's gradient of a fused epilogue; unused
// bindings otherwise.
@group(0) @binding(5) var<storage, read_write> y: array<T>;
@group(0) @binding(6) var<storage, read_write> dz: array<T>;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let stride = nwg.x * nwg.y * WG;
    let first = linear_workgroup(wid, nwg) * WG + lid;
    var walk = flat_walk_from(p.base + first, stride);
    for (var i = first; i < p.len; i = i + stride) {
        let q = chan[walk.c];
        walk = flat_walk_next(walk);
        var g = f32(dy[i]);
        if ((p.flags & FLAG_RELU) != 0u) {
            g = through_epilogue(g, f32(y[i]));
        }
        dx[i] = T(dx_value(g, f32(x[i]), q));
        if ((p.flags & FLAG_RESIDUAL) != 0u) {
            dz[i] = T(g);
        }
    }
}
