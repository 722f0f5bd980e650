// The coefficients of `normalize.wgsl` / `normalize_vec4.wgsl` as records in chan[c],
// written before by `stats_finalize.wgsl` (training), `eval_coeffs.wgsl` (eval, where
// `normalize_vec4_eval` does not run) or given statistics.
// Appended to the kernel, which sets COEFFS, its first binding after the tensors.

@group(0) @binding(COEFFS) var<storage, read_write> chan: array<vec4<f32>>;

fn coefficients(c: u32) -> vec4<f32> {
    return chan[c];
}
