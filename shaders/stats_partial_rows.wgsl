// Training forward, pass 1, for tensors whose channel is the innermost axis (inner = 1:
// channels-last, and (N, C)): element k of channel c lies at k * C + c, so the values of
// neighbouring channels are neighbours in memory. Each workgroup takes a block of `p.lanes`
// channels (8 to 64; see `row_lanes` in src/batchnorm/plan.rs) and one run (chunk) of their
// elements: invocation (row, lane) reads channel block + lane at rows start + row, start + row +
// rows, ..., so the invocations of a row read consecutive addresses, where `stats_partial.wgsl`
// would read one channel with stride C. Per invocation shifted sums (`shifted_sums.wgsl`, the mean
// in two floats), then a shared-memory tree over the rows of each lane, in fixed order. Output as
// `stats_partial.wgsl`: partials[c * slots + slot_base + chunk] = (count, mean - shift, biased
// variance, shift), for the same chunks of each channel's elements; with
// INVOCATION_RECORDS, each invocation's own record at chunk * rows + row, no tree.
// CPU twin: `reference::batch_stats`.

@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read_write> partials: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tasks = row_tasks();
    for (var g = linear_workgroup(wid, nwg); g < tasks; g = g + nwg.x * nwg.y) {
        let t = row_task(g, lid);
        let c = t.c;
        let chunk = t.chunk;
        let row = t.row;
        let rows = t.rows;
        var w = welford_empty();
        if (c < p.channels) {
            let k_lo = first_k_at(c, p.base);
            let k_hi = first_k_at(c, p.base + p.len);
            let start = k_lo + chunk * p.chunk_len;
            let end = min(start + p.chunk_len, k_hi);
            // Shifted sums per invocation (shifted_sums.wgsl), k its first value; four
            // loads in flight before their pushes (BENCHMARKS.md, "Loads in flight").
            let s = rows * p.channels;
            var k = start + row;
            var first = 0.0;
            if (k < end) {
                first = f32(x[k * p.channels + c - p.base]);
            }
            var sh = shifted_empty(first);
            for (; k + 3u * rows < end; k = k + 4u * rows) {
                let i = k * p.channels + c - p.base;
                let v0 = f32(x[i]);
                let v1 = f32(x[i + s]);
                let v2 = f32(x[i + 2u * s]);
                let v3 = f32(x[i + 3u * s]);
                sh = shifted_push4(sh, vec4<f32>(v0, v1, v2, v3));
            }
            for (; k < end; k = k + rows) {
                sh = shifted_push(sh, f32(x[k * p.channels + c - p.base]));
            }
            w = shifted_welford(sh);
            if (!shifted_finite(sh)) {
                // Overflow of d^2, or a NaN or infinite value: the Welford update.
                w = welford_empty();
                for (var kk = start + row; kk < end; kk = kk + rows) {
                    w = welford_push(w, f32(x[kk * p.channels + c - p.base]));
                }
            }
        }
        if (INVOCATION_RECORDS) {
            if (c < p.channels) {
                partials[c * p.slots + p.slot_base + chunk * rows + row] = welford_record(w);
            }
        } else {
            let r = welford_rows(lid, p.lanes, w);
            if (row == 0u && c < p.channels) {
                partials[c * p.slots + p.slot_base + chunk] = welford_record(r);
            }
        }
    }
}
