// Training forward, pass 1, for tensors whose channel is the innermost axis (inner = 1:
// channels-last, and (N, C)): element k of channel c lies at k * C + c, so the values of
// neighbouring channels are neighbours in memory. Each workgroup takes a block of
// `p.lanes` channels (8 to 64; see `row_lanes` in src/batchnorm/plan.rs) and one run (chunk)
// of their elements: invocation (row, lane) reads channel block + lane at rows
// start + row, start + row + rows, ..., so the invocations of a row read consecutive
// addresses, where `stats_partial.wgsl` would read one channel with stride C. Per invocation Welford on values shifted by the channel's first
// element in the piece, then a shared-memory tree over the rows of each lane, in fixed
// order. Output as `stats_partial.wgsl`: partials[c * slots + slot_base + chunk] =
// (count, mean of x - shift, biased variance, shift), for the same chunks of each
// channel's elements.
// CPU twin: `reference::batch_stats`.

@group(0) @binding(1) var<storage, read_write> x: array<T>;
@group(0) @binding(2) var<storage, read_write> partials: array<vec4<f32>>;

var<workgroup> tile: array<vec4<f32>, WG>;

@compute @workgroup_size(256)
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
        var shift = 0.0;
        if (c < p.channels) {
            let k_lo = first_k_at(c, p.base);
            let k_hi = first_k_at(c, p.base + p.len);
            if (k_lo < k_hi) {
                shift = f32(x[k_lo * p.channels + c - p.base]);
            }
            let start = k_lo + chunk * p.chunk_len;
            let end = min(start + p.chunk_len, k_hi);
            for (var k = start + row; k < end; k = k + rows) {
                w = welford_push(w, f32(x[k * p.channels + c - p.base]) - shift);
            }
        }
        tile[lid] = vec4<f32>(w.n, w.mean, w.v, 0.0);
        workgroupBarrier();
        // Loop bound from the uniform p.lanes alone: the barriers stay in uniform control flow.
        for (var s = WG / p.lanes / 2u; s > 0u; s = s >> 1u) {
            if (row < s) {
                let a = tile[lid];
                let b = tile[lid + s * p.lanes];
                let m = welford_merge(Welford(a.x, a.y, a.z), Welford(b.x, b.y, b.z));
                tile[lid] = vec4<f32>(m.n, m.mean, m.v, 0.0);
            }
            workgroupBarrier();
        }
        if (row == 0u && c < p.channels) {
            let r = tile[lid];
            partials[c * p.slots + p.slot_base + chunk] = vec4<f32>(r.x, r.y, r.z, shift);
        }
        workgroupBarrier();
    }
}
