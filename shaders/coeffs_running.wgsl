// Eval with running statistics: a channel's coefficients (shift, scale, bias, 0) =
//   (running_mean, gamma / sqrt(running_var + eps), beta, 0)
// so that y = (x - running_mean) * scale + beta; gamma = 1, beta = 0 without FLAG_AFFINE.
// Appended to `normalize_vec4.wgsl` (`normalize_vec4_eval`, the eval forward in one
// dispatch) and to `eval_coeffs.wgsl` (which stores them in chan[c] for
// `coeffs_chan.wgsl`), so both ways compute them alike. The kernel sets COEFFS, the first
// of these four bindings.
// CPU twin: `reference::forward` (eval branch).

@group(0) @binding(COEFFS) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(COEFFS + 1u) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(COEFFS + 2u) var<storage, read_write> gamma: array<f32>;
@group(0) @binding(COEFFS + 3u) var<storage, read_write> beta: array<f32>;

fn coefficients(c: u32) -> vec4<f32> {
    var g = 1.0;
    var b = 0.0;
    if ((p.flags & FLAG_AFFINE) != 0u) {
        g = gamma[c];
        b = beta[c];
    }
    let invstd = 1.0 / sqrt(running_var[c] + p.eps);
    return vec4<f32>(running_mean[c], g * invstd, b, 0.0);
}
