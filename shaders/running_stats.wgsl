// The running statistics' update of one channel and the 64-bit count, shared by the
// kernels that bind `running_mean`, `running_var` and `num_batches_tracked`: appended after
// the kernel, which declares those bindings (`running_update.wgsl`, or one of the
// `*_running.wgsl` binding files for `stats_finalize_running`, `forward_fused_running` and
// `forward_thin_running`).
// PyTorch's rule: new = (1 - m) * old + m * batch, with the unbiased batch variance
// n / (n - 1) * var (or the biased one, FLAG_BIASED_VAR). CPU twin:
// `reference::update_running`.

// The batch variance the running variance averages, from s = (mean, biased variance,
// count, 0). Unbiased with a count of 1 (possible only through `forward_with_statistics`)
// is +inf as documented, not 0 / 0; a NaN variance stays NaN. CPU twin:
// `reference::unbiased_variance`.
fn batch_var(s: vec4<f32>) -> f32 {
    if ((p.flags & FLAG_BIASED_VAR) != 0u) {
        return s.y;
    }
    if (s.z == 1.0 && s.y == 0.0) {
        return bitcast<f32>(0x7f800000u);
    }
    return s.y * (s.z / (s.z - 1.0));
}

// Channel c's running statistics from its batch statistics s (as above) with m the new
// batch's weight. A channel without values (given statistics of count 0) keeps its own.
fn update(c: u32, s: vec4<f32>, m: f32) {
    if (s.z == 0.0) {
        return;
    }
    running_mean[c] = (1.0 - m) * running_mean[c] + m * s.x;
    running_var[c] = (1.0 - m) * running_var[c] + m * batch_var(s);
}

// num_batches_tracked + 1 as (low, high) words, the carry into the high word included
// (PyTorch's int64: two u32 words, low first, a little-endian u64).
fn incremented_count() -> vec2<u32> {
    let old = num_batches_tracked[0];
    let lo = old.x + 1u;
    return vec2<u32>(lo, old.y + select(0u, 1u, lo == 0u));
}

fn store_count(count: vec2<u32>) {
    num_batches_tracked[0] = count;
}

// The hooks of the kernels that make the statistics (`stats_finalize.wgsl`,
// `forward_fused.wgsl`, `forward_thin.wgsl`) where they update the running statistics
// themselves (a fixed momentum: no channel reads the count, so the first invocation may
// increment it in the same dispatch); `running_none.wgsl` has their no-op twins.
fn running_count() {
    store_count(incremented_count());
}

fn running_channel(c: u32, s: vec4<f32>) {
    update(c, s, p.momentum);
}
