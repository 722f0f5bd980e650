// Backward, pass 1, for channels-last tensors read as vec4s: as
// `backward_partial_rows.wgsl`, with the layout of `stats_partial_rows_vec4.wgsl` (each
// invocation four consecutive channels, one vec4 of a row; the same conditions). Partial
// sums (sum dy, sum dy * (x - mean)) in two floats per channel, dy taken through the fused
// epilogue's ReLU when there is one, then per channel a fixed-order tree over the rows,
// written as `backward_partial.wgsl` writes them: partials[c * slots + slot_base + chunk].
// CPU twin: `reference::backward`.

@group(0) @binding(1) var<storage, read_write> x: array<vec4<T>>;
@group(0) @binding(2) var<storage, read_write> dy: array<vec4<T>>;
@group(0) @binding(3) var<storage, read_write> chan: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> partials: array<vec4<f32>>;
// The forward's output, for the ReLU mask of a fused epilogue; an unused binding otherwise.
@group(0) @binding(5) var<storage, read_write> y: array<vec4<T>>;

var<workgroup> tile: array<vec4<f32>, WG>;

// The rows' sums of one channel added in a fixed-order tree; invocation (row 0, quad)
// holds the result. Call from uniform control flow.
fn merge_rows(lid: u32, row: u32, quads: u32, s: vec4<f32>) -> vec4<f32> {
    tile[lid] = s;
    workgroupBarrier();
    for (var h = WG / quads / 2u; h > 0u; h = h >> 1u) {
        if (row < h) {
            tile[lid] = sums_merge(tile[lid], tile[lid + h * quads]);
        }
        workgroupBarrier();
    }
    let r = tile[lid];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let quads = p.lanes / 4u;
    // The piece is whole rows: every channel's elements in it are rows k_lo .. k_hi.
    let k_lo = p.base / p.channels;
    let k_hi = (p.base + p.len) / p.channels;
    let tasks = row_tasks();
    for (var g = linear_workgroup(wid, nwg); g < tasks; g = g + nwg.x * nwg.y) {
        let t = row_task_vec4(g, lid);
        let c = t.c;
        var s0 = vec4<f32>(0.0);
        var s1 = vec4<f32>(0.0);
        var s2 = vec4<f32>(0.0);
        var s3 = vec4<f32>(0.0);
        if (c < p.channels) {
            let mean = vec4<f32>(
                chan[p.channels + c].x,
                chan[p.channels + c + 1u].x,
                chan[p.channels + c + 2u].x,
                chan[p.channels + c + 3u].x,
            );
            let start = k_lo + t.chunk * p.chunk_len;
            let end = min(start + p.chunk_len, k_hi);
            let q4 = p.channels / 4u;
            for (var k = start + t.row; k < end; k = k + t.rows) {
                let i = (k - k_lo) * q4 + c / 4u;
                var g_out = vec4<f32>(dy[i]);
                if ((p.flags & FLAG_RELU) != 0u) {
                    let yv = vec4<f32>(y[i]);
                    g_out = vec4<f32>(
                        through_epilogue(g_out.x, yv.x),
                        through_epilogue(g_out.y, yv.y),
                        through_epilogue(g_out.z, yv.z),
                        through_epilogue(g_out.w, yv.w),
                    );
                }
                let d = g_out * (vec4<f32>(x[i]) - mean);
                s0 = sums_add(s0, vec2<f32>(g_out.x, d.x));
                s1 = sums_add(s1, vec2<f32>(g_out.y, d.y));
                s2 = sums_add(s2, vec2<f32>(g_out.z, d.z));
                s3 = sums_add(s3, vec2<f32>(g_out.w, d.w));
            }
        }
        let r0 = merge_rows(lid, t.row, quads, s0);
        let r1 = merge_rows(lid, t.row, quads, s1);
        let r2 = merge_rows(lid, t.row, quads, s2);
        let r3 = merge_rows(lid, t.row, quads, s3);
        if (t.row == 0u && c < p.channels) {
            let slot = p.slot_base + t.chunk;
            partials[c * p.slots + slot] = r0;
            partials[(c + 1u) * p.slots + slot] = r1;
            partials[(c + 2u) * p.slots + slot] = r2;
            partials[(c + 3u) * p.slots + slot] = r3;
        }
    }
}
