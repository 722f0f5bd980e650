// Training forward with running statistics: updates running_mean and running_var in place
// from the batch statistics in chan[C + c], and increments num_batches_tracked. An empty
// batch (count 0) only increments num_batches_tracked, as PyTorch's module does. PyTorch's
// rule: new = (1 - m) * old + m * batch, with the unbiased batch variance n / (n - 1) * var
// (or the biased one, FLAG_BIASED_VAR), m the new batch's weight (the host converts
// Keras-style momentum), and m = 1 / num_batches_tracked (after the increment) when momentum
// is None (cumulative average). num_batches_tracked is a 64-bit count, as PyTorch's int64:
// two u32 words, low first (a little-endian u64), so it does not wrap after 2^32 batches.
// The update and the count: `running_stats.wgsl`, appended. A training forward with a
// fixed momentum updates the running statistics in the pass that makes the statistics
// instead where the device binds enough storage buffers (`stats_finalize_running`: nine;
// `forward_fused_running`, `forward_thin_running`: eleven); this kernel serves the other
// cases.
// The channels in parallel over any number of workgroups. With a fixed momentum no channel
// reads the count, and the first invocation increments it in the same dispatch; with
// FLAG_CUMULATIVE every channel reads the old count, and a second dispatch with
// FLAG_COUNT_ONLY increments it. With FLAG_SKIP_NON_FINITE, one dispatch of one workgroup
// does both: a batch whose mean or variance is not finite in any channel leaves every
// running statistic and num_batches_tracked as they were and increments skipped_batches
// instead.
// CPU twin: `reference::update_running`.

@group(0) @binding(1) var<storage, read_write> chan: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(4) var<storage, read_write> num_batches_tracked: array<vec2<u32>>;
@group(0) @binding(5) var<storage, read_write> skipped_batches: array<u32>;

var<workgroup> non_finite: atomic<u32>;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = linear_workgroup(wid, nwg) == 0u && lid == 0u;
    let cumulative = (p.flags & FLAG_CUMULATIVE) != 0u;
    if ((p.flags & FLAG_COUNT_ONLY) != 0u) {
        if (first) {
            store_count(incremented_count());
        }
        return;
    }
    var m = p.momentum;
    if (cumulative) {
        // The nearest f32 to the count, then its reciprocal (the count's low word alone
        // would lose the high one; f32(hi) * 2^32 is exact).
        let tracked = incremented_count();
        m = 1.0 / (f32(tracked.y) * 4294967296.0 + f32(tracked.x));
    }
    var n = p.channels;
    if (p.count == 0u) {
        n = 0u;
    }
    if ((p.flags & FLAG_SKIP_NON_FINITE) == 0u) {
        let stride = nwg.x * nwg.y * WG;
        for (var c = linear_workgroup(wid, nwg) * WG + lid; c < n; c = c + stride) {
            update(c, chan[p.channels + c], m);
        }
        // Only the first invocation reads the count here: no other one can see it change.
        if (first && !cumulative) {
            store_count(incremented_count());
        }
        return;
    }
    // One workgroup: decide for the whole batch, then update and count.
    for (var c = lid; c < n; c = c + WG) {
        let s = chan[p.channels + c];
        if (!is_finite(s.x) || !is_finite(batch_var(s))) {
            atomicOr(&non_finite, 1u);
        }
    }
    workgroupBarrier();
    let skip = atomicLoad(&non_finite) != 0u;
    if (!skip) {
        for (var c = lid; c < n; c = c + WG) {
            update(c, chan[p.channels + c], m);
        }
    }
    // Every invocation has read the old count before invocation 0 writes the new one.
    storageBarrier();
    if (lid == 0u) {
        if (skip) {
            skipped_batches[0] = skipped_batches[0] + 1u;
        } else {
            store_count(incremented_count());
        }
    }
}
