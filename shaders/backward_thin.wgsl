// Backward with one invocation per channel, for tensors (any layout) bound in one piece
// with few values per channel (at most `THIN_MAX_COUNT` in `src/batchnorm/path.rs`): each
// invocation sums its channel's (dy, dy * (x - mean)) as `backward_partial.wgsl` does,
// computes dgamma, dbeta and the dx coefficients as `backward_finalize.wgsl` does
// (`backward_channel`), and writes dx (and dz) as `backward_dx.wgsl` does, re-reading its
// few values. No workgroup reduction: a workgroup serves 256 channels. Same bindings as
// `backward_fused.wgsl`; reads chan[C + c] = (mean, invstd, gamma, 0) from
// `backward_prep.wgsl`. CPU twin: `reference::backward`.

@group(0) @binding(1) var<storage, read_write> x: array<T>;
@group(0) @binding(2) var<storage, read_write> dy: array<T>;
@group(0) @binding(3) var<storage, read_write> chan: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(5) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<T>;
// The forward's output (ReLU mask) and the residual's gradient of a fused epilogue; unused
// bindings otherwise.
@group(0) @binding(7) var<storage, read_write> y: array<T>;
@group(0) @binding(8) var<storage, read_write> dz: array<T>;

// dy taken through the fused epilogue's ReLU, as the separate passes take it.
fn grad_out(i: u32) -> f32 {
    var g = f32(dy[i]);
    if ((p.flags & FLAG_RELU) != 0u) {
        g = through_epilogue(g, f32(y[i]));
    }
    return g;
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let stride = nwg.x * nwg.y * WG;
    for (var c = linear_workgroup(wid, nwg) * WG + lid; c < p.channels; c = c + stride) {
        let st = chan[p.channels + c];
        let mean = st.x;
        // Four elements' loads in flight before their sums (BENCHMARKS.md, "Loads in
        // flight"); the same sums in the same order as one at a time.
        var s = vec4<f32>(0.0);
        var walk = walk_from(0u, 1u);
        var k = 0u;
        for (; k + 4u <= p.count; k = k + 4u) {
            let i = walk_take4(&walk, c);
            let d = vec4<f32>(f32(dy[i.x]), f32(dy[i.y]), f32(dy[i.z]), f32(dy[i.w]));
            let xv = vec4<f32>(f32(x[i.x]), f32(x[i.y]), f32(x[i.z]), f32(x[i.w]));
            var yv = vec4<f32>(1.0);
            if ((p.flags & FLAG_RELU) != 0u) {
                yv = vec4<f32>(f32(y[i.x]), f32(y[i.y]), f32(y[i.z]), f32(y[i.w]));
            }
            s = backward_sums_add4(s, d, xv, yv, mean);
        }
        for (; k < p.count; k = k + 1u) {
            let i = walk_index(walk, c);
            walk = walk_next(walk);
            let g_out = grad_out(i);
            s = sums_add(s, vec2<f32>(g_out, g_out * (f32(x[i]) - mean)));
        }
        let f = backward_channel(sums_value(s), st);
        if ((p.flags & FLAG_AFFINE) != 0u) {
            let g = grads_out(f, vec2<f32>(dgamma[c], dbeta[c]));
            dgamma[c] = g.x;
            dbeta[c] = g.y;
        }
        walk = walk_from(0u, 1u);
        k = 0u;
        for (; k + 4u <= p.count; k = k + 4u) {
            let i = walk_take4(&walk, c);
            let g = vec4<f32>(grad_out(i.x), grad_out(i.y), grad_out(i.z), grad_out(i.w));
            let v = vec4<f32>(f32(x[i.x]), f32(x[i.y]), f32(x[i.z]), f32(x[i.w]));
            dx[i.x] = T(dx_value(g.x, v.x, f.coeffs));
            dx[i.y] = T(dx_value(g.y, v.y, f.coeffs));
            dx[i.z] = T(dx_value(g.z, v.z, f.coeffs));
            dx[i.w] = T(dx_value(g.w, v.w, f.coeffs));
            if ((p.flags & FLAG_RESIDUAL) != 0u) {
                dz[i.x] = T(g.x);
                dz[i.y] = T(g.y);
                dz[i.z] = T(g.z);
                dz[i.w] = T(g.w);
            }
        }
        for (; k < p.count; k = k + 1u) {
            let i = walk_index(walk, c);
            walk = walk_next(walk);
            let g = grad_out(i);
            dx[i] = T(dx_value(g, f32(x[i]), f.coeffs));
            if ((p.flags & FLAG_RESIDUAL) != 0u) {
                dz[i] = T(g);
            }
        }
    }
}
