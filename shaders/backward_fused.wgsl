// Backward in one pass per channel, for tensors bound in one piece whose channels each fit
// one chunk of the partial pass and whose channel is not the innermost axis: one workgroup
// per channel runs `backward_partial.wgsl` (one chunk), `backward_finalize.wgsl` (one
// partial) and `backward_dx.wgsl` restricted to its channel, with the same arithmetic in
// the same order, so dgamma, dbeta, dx and dz are those of the three passes. The second
// read of the channel's x and dy follows the first within the workgroup, so it comes from
// cache rather than memory, and two dispatches and their barriers are saved. Reads
// chan[C + c] = (mean, invstd, gamma, 0) from `backward_prep.wgsl`.
// CPU twin: `reference::backward`.

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

// dy taken through the fused epilogue's ReLU, as the three passes take it.
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
    for (var c = linear_workgroup(wid, nwg); c < p.channels; c = c + nwg.x * nwg.y) {
        let st = chan[p.channels + c];
        let mean = st.x;
        // Partial sums, as backward_partial.wgsl with one chunk.
        var s = vec4<f32>(0.0);
        var walk = walk_from(lid, WG);
        for (var k = lid; k < p.count; k = k + WG) {
            let i = walk_index(walk, c);
            walk = walk_next(walk);
            let g_out = grad_out(i);
            s = sums_add(s, vec2<f32>(g_out, g_out * (f32(x[i]) - mean)));
        }
        let r = reduce_sums(lid, s);
        // Gradients and dx coefficients, as backward_finalize.wgsl with one partial (valid
        // in invocation 0), handed to the whole workgroup.
        var coeffs = vec4<f32>(0.0);
        if (lid == 0u) {
            // The finalize pass adds the partials to zero.
            let t = sums_merge(vec4<f32>(0.0), r);
            let f = backward_channel(sums_value(t), st);
            if ((p.flags & FLAG_AFFINE) != 0u) {
                let g = grads_out(f, vec2<f32>(dgamma[c], dbeta[c]));
                dgamma[c] = g.x;
                dbeta[c] = g.y;
            }
            coeffs = f.coeffs;
        }
        let q = broadcast_first(lid, coeffs);
        // dx (and dz), as backward_dx.wgsl.
        walk = walk_from(lid, WG);
        for (var k = lid; k < p.count; k = k + WG) {
            let i = walk_index(walk, c);
            walk = walk_next(walk);
            let g = grad_out(i);
            dx[i] = T(dx_value(g, f32(x[i]), q));
            if ((p.flags & FLAG_RESIDUAL) != 0u) {
                dz[i] = T(g);
            }
        }
    }
}
