// Training forward, pass 1, for channels-last tensors read as vec4s: as
// `stats_partial_rows.wgsl`, but each invocation takes four consecutive channels (one vec4
// of a row) instead of one, so a row of a block of `p.lanes` channels (32 to 256; see
// `row_lanes` in src/batchnorm/plan.rs) is read as p.lanes / 4 vec4s: 16 bytes per
// invocation and load, whole 128-byte lines per row from 32 channels on. Where the plan
// allows it (`vec4_rows` in src/batchnorm/vector.rs): C a multiple of 4, every piece whole
// rows, and [`Tuning::row_vec4`]. Per invocation four Welford states (the mean in two
// floats), then per channel a shared-memory tree over the rows, in fixed order. Output as
// `stats_partial.wgsl`: partials[c * slots + slot_base + chunk].
// CPU twin: `reference::batch_stats`.

@group(0) @binding(1) var<storage, read_write> x: array<vec4<T>>;
@group(0) @binding(2) var<storage, read_write> partials: array<vec4<f32>>;

var<workgroup> tile: array<vec4<f32>, WG>;

// The rows' states of one channel merged in a fixed-order tree; invocation (row 0, quad)
// holds the result. Call from uniform control flow.
fn merge_rows(lid: u32, row: u32, quads: u32, w: Welford) -> Welford {
    tile[lid] = welford_pack(w);
    workgroupBarrier();
    for (var s = WG / quads / 2u; s > 0u; s = s >> 1u) {
        if (row < s) {
            let m = welford_merge(welford_unpack(tile[lid]), welford_unpack(tile[lid + s * quads]));
            tile[lid] = welford_pack(m);
        }
        workgroupBarrier();
    }
    let r = welford_unpack(tile[lid]);
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
        var w0 = welford_empty();
        var w1 = welford_empty();
        var w2 = welford_empty();
        var w3 = welford_empty();
        if (c < p.channels) {
            let start = k_lo + t.chunk * p.chunk_len;
            let end = min(start + p.chunk_len, k_hi);
            let q4 = p.channels / 4u;
            for (var k = start + t.row; k < end; k = k + t.rows) {
                let v = vec4<f32>(x[(k - k_lo) * q4 + c / 4u]);
                w0 = welford_push(w0, v.x);
                w1 = welford_push(w1, v.y);
                w2 = welford_push(w2, v.z);
                w3 = welford_push(w3, v.w);
            }
        }
        let r0 = merge_rows(lid, t.row, quads, w0);
        let r1 = merge_rows(lid, t.row, quads, w1);
        let r2 = merge_rows(lid, t.row, quads, w2);
        let r3 = merge_rows(lid, t.row, quads, w3);
        if (t.row == 0u && c < p.channels) {
            let slot = p.slot_base + t.chunk;
            partials[c * p.slots + slot] = welford_record(r0);
            partials[(c + 1u) * p.slots + slot] = welford_record(r1);
            partials[(c + 2u) * p.slots + slot] = welford_record(r2);
            partials[(c + 3u) * p.slots + slot] = welford_record(r3);
        }
    }
}
