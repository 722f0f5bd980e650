// Forward, last pass: y = (x - shift[c]) * scale[c] + bias[c], then the fused epilogue
// (+ z, ReLU) when configured, with the coefficients (shift, scale, bias, 0) of
// `coefficients(c)`: the records `stats_finalize.wgsl` (training) or `eval_coeffs.wgsl`
// wrote to chan[c] (`coeffs_chan.wgsl`, appended; its bindings come last as in
// `normalize_vec4.wgsl`, whose eval twin computes them instead). Grid-stride loop over the
// bound piece's elements.
// CPU twin: `reference::forward`.

@group(0) @binding(1) var<storage, read_write> x: array<T>;
@group(0) @binding(2) var<storage, read_write> y: array<T>;
// The residual z of `relu(bn(x) + z)` (FLAG_RESIDUAL); an unused binding otherwise.
@group(0) @binding(3) var<storage, read_write> z: array<T>;
// The coefficients' binding (`coeffs_chan.wgsl`).
const COEFFS: u32 = 4u;

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
        let q = coefficients(walk.c);
        walk = flat_walk_next(walk);
        var zv = 0.0;
        if ((p.flags & FLAG_RESIDUAL) != 0u) {
            zv = f32(z[i]);
        }
        y[i] = T(normalized(f32(x[i]), q, zv));
    }
}
