// Backward, pass 1, for tensors whose channel is the innermost axis (inner = 1), laid out
// as `stats_partial_rows.wgsl`: a workgroup takes a block of `p.lanes` channels and one run
// (chunk) of their elements, invocations of a row read consecutive addresses. Partial sums
//   (sum dy, sum dy * (x - mean))
// with dy taken through the fused epilogue's ReLU when there is one, per invocation and
// then over the rows of each lane in a fixed-order tree, written as `backward_partial.wgsl`
// writes them: partials[c * slots + slot_base + chunk]; with INVOCATION_RECORDS, each
// invocation's own sums at chunk * rows + row, no tree.
// CPU twin: `reference::backward`.

@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read> dy: array<T>;
@group(0) @binding(3) var<storage, read_write> chan: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> partials: array<vec4<f32>>;
// The forward's output, for the ReLU mask of a fused epilogue; an unused binding otherwise.
@group(0) @binding(5) var<storage, read> y: array<T>;

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
        var s = vec4<f32>(0.0);
        if (c < p.channels) {
            let mean = chan[p.channels + c].x;
            let k_hi = first_k_at(c, p.base + p.len);
            let start = first_k_at(c, p.base) + chunk * p.chunk_len;
            let end = min(start + p.chunk_len, k_hi);
            for (var k = start + row; k < end; k = k + rows) {
                let i = k * p.channels + c - p.base;
                var g_out = f32(dy[i]);
                if ((p.flags & FLAG_RELU) != 0u) {
                    g_out = through_epilogue(g_out, f32(y[i]));
                }
                s = sums_add(s, vec2<f32>(g_out, g_out * (f32(x[i]) - mean)));
            }
        }
        if (INVOCATION_RECORDS) {
            if (c < p.channels) {
                partials[c * p.slots + p.slot_base + chunk * rows + row] = s;
            }
        } else {
            let r = sums_rows(lid, p.lanes, s);
            if (row == 0u && c < p.channels) {
                partials[c * p.slots + p.slot_base + chunk] = r;
            }
        }
    }
}
