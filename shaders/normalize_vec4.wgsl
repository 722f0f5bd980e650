// Forward, last pass, as `normalize.wgsl` four elements at a time: x, y and z bound as
// vec4s, where the plan finds the piece in whole, aligned vec4s whose four elements are
// of one channel (inner a multiple of 4) or of four consecutive channels (inner = 1, C a
// multiple of 4: channels-last and (N, C)); see `vec4_piece` in src/batchnorm/vector.rs.
// Where the grid holds a whole sample's vec4s (C * inner / 4), an invocation keeps its
// channel, or its four channels, for the whole loop (its stride is a multiple of a
// sample, `vec4_sample_stride`), so it reads their coefficients once rather than a record
// per vec4: per element, the scalar kernel reads 16 bytes of coefficients besides its 8
// bytes of data, and for neighbouring channels these do not come from one broadcast; a
// CPU adapter reads each record one lane at a time. With fewer invocations than a sample
// (channel-first with fewer samples than vec4s per invocation) they walk the channels.
// Each element computed as in `normalize.wgsl` (`normalized`), so the two agree bit for
// bit, but with the epilogue fixed when the pipeline is built (the overridable constants
// EPILOGUE_RELU and EPILOGUE_RESIDUAL, see `Specialization` in src/kernels.rs) rather than
// tested in `Params::flags` per element.
// CPU twin: `reference::forward`.

@group(0) @binding(1) var<storage, read_write> x: array<vec4<T>>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4<T>>;
// The residual z of `relu(bn(x) + z)` (FLAG_RESIDUAL); an unused binding otherwise.
@group(0) @binding(3) var<storage, read_write> z: array<vec4<T>>;
// The coefficients' bindings start here: `coeffs_chan.wgsl` appended (`normalize_vec4`),
// or `coeffs_running.wgsl` (`normalize_vec4_eval`: an eval forward with running statistics
// in one dispatch, each invocation computing its channels' coefficients; where that would
// compute them more often per channel than `Tuning::one_pass_eval_recomputes` allows, or
// where the invocations walk the channels, `eval_coeffs.wgsl` stores them first).
const COEFFS: u32 = 4u;

// `normalized` of four elements, with the specialization's epilogue. q0 .. q3 are their
// channels' coefficients (shift, scale, bias, 0).
fn normalized4(xv: vec4<T>, q0: vec4<f32>, q1: vec4<f32>, q2: vec4<f32>, q3: vec4<f32>, v: u32) -> vec4<T> {
    let shift = vec4<f32>(q0.x, q1.x, q2.x, q3.x);
    let scale = vec4<f32>(q0.y, q1.y, q2.y, q3.y);
    let bias = vec4<f32>(q0.z, q1.z, q2.z, q3.z);
    var r = (vec4<f32>(xv) - shift) * scale + bias;
    if (EPILOGUE_RESIDUAL) {
        r = r + vec4<f32>(z[v]);
    }
    if (EPILOGUE_RELU) {
        r = vec4<f32>(max0(r.x), max0(r.y), max0(r.z), max0(r.w));
    }
    return vec4<T>(r);
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
            let q = coefficients(walk.c);
            walk = flat_walk_next(walk);
            y[v] = normalized4(x[v], q, q, q, q, v);
        }
        return;
    }
    if (t >= stride) {
        return;
    }
    let c = vec4_channel(t);
    let q0 = coefficients(c);
    var q1 = q0;
    var q2 = q0;
    var q3 = q0;
    if (p.inner == 1u) {
        q1 = coefficients(c + 1u);
        q2 = coefficients(c + 2u);
        q3 = coefficients(c + 3u);
    }
    for (var v = t; v < n; v = v + stride) {
        y[v] = normalized4(x[v], q0, q1, q2, q3, v);
    }
}
