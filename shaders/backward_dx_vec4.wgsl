// Backward, last pass, as `backward_dx.wgsl` four elements at a time: x, dy, dx (and y,
// dz of a fused epilogue) bound as vec4s under the conditions of `normalize_vec4.wgsl`,
// whose loop this is: where the grid holds a whole sample, an invocation keeps its
// channel (or four channels) and reads their coefficients once. Each element computed as
// in `backward_dx.wgsl` (`dx_value`, `through_epilogue`), so the two agree bit for bit,
// but with the epilogue and the choice of statistics fixed when the pipeline is built (the
// overridable constants EPILOGUE_RELU, EPILOGUE_RESIDUAL and BATCH_STATS, see
// `Specialization` in src/kernels.rs) rather than tested in `Params::flags` per element.
// CPU twin: `reference::backward`.

@group(0) @binding(1) var<storage, read_write> x: array<vec4<T>>;
@group(0) @binding(2) var<storage, read_write> dy: array<vec4<T>>;
@group(0) @binding(3) var<storage, read_write> chan: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> dx: array<vec4<T>>;
// The forward's output (ReLU mask) and the residual's gradient of a fused epilogue; unused
// bindings otherwise.
@group(0) @binding(5) var<storage, read_write> y: array<vec4<T>>;
@group(0) @binding(6) var<storage, read_write> dz: array<vec4<T>>;

fn dx4(v: u32, q0: vec4<f32>, q1: vec4<f32>, q2: vec4<f32>, q3: vec4<f32>) {
    var g = vec4<f32>(dy[v]);
    if (EPILOGUE_RELU) {
        let yv = vec4<f32>(y[v]);
        g = vec4<f32>(
            through_epilogue(g.x, yv.x),
            through_epilogue(g.y, yv.y),
            through_epilogue(g.z, yv.z),
            through_epilogue(g.w, yv.w),
        );
    }
    // dx_value's two forms: a * g with running statistics (x not read, so a NaN in x stays
    // out of dx), a * (g - k * (x - mean) - m) with the batch's.
    let a = vec4<f32>(q0.y, q1.y, q2.y, q3.y);
    if (BATCH_STATS) {
        let mean = vec4<f32>(q0.x, q1.x, q2.x, q3.x);
        let k = vec4<f32>(q0.z, q1.z, q2.z, q3.z);
        let m = vec4<f32>(q0.w, q1.w, q2.w, q3.w);
        dx[v] = vec4<T>(a * (g - k * (vec4<f32>(x[v]) - mean) - m));
    } else {
        dx[v] = vec4<T>(a * g);
    }
    if (EPILOGUE_RESIDUAL) {
        dz[v] = vec4<T>(g);
    }
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n = p.len / 4u;
    let threads = nwg.x * nwg.y * WG;
    let t = linear_workgroup(wid, nwg) * WG + lid;
    let stride = vec4_sample_stride(threads);
    if (stride == 0u && p.inner != 1u) {
        var walk = flat_walk_from(p.base + 4u * t, 4u * threads);
        for (var v = t; v < n; v = v + threads) {
            let q = chan[walk.c];
            walk = flat_walk_next(walk);
            dx4(v, q, q, q, q);
        }
        return;
    }
    if (t >= stride) {
        return;
    }
    let c = vec4_channel(t);
    let q0 = chan[c];
    var q1 = q0;
    var q2 = q0;
    var q3 = q0;
    if (p.inner == 1u) {
        q1 = chan[c + 1u];
        q2 = chan[c + 2u];
        q3 = chan[c + 3u];
    }
    for (var v = t; v < n; v = v + stride) {
        dx4(v, q0, q1, q2, q3);
    }
}
